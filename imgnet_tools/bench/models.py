"""The models ``imgnet bench``, ``imgnet train`` and ``imgnet predict`` build, by name.

``alexnet2012`` and ``alexnet`` (:mod:`.alexnet`) and ``lenet5`` (:mod:`.lenet`). Each has a
native input size (what ``imgnet train`` crops to by default) and a smallest accepted one.
"""

from __future__ import annotations

from torch import nn

from imgnet_tools.bench.params import MODEL_CHOICES

MODELS = MODEL_CHOICES
NATIVE_SIZE = {"alexnet2012": 224, "alexnet": 224, "lenet5": 32}


def build_model(name: str, num_classes: int = 1000) -> nn.Module:
    """The model called ``name`` (one of :data:`MODELS`) with ``num_classes`` outputs."""
    if name == "lenet5":
        from imgnet_tools.bench.lenet import lenet5

        return lenet5(num_classes)
    from imgnet_tools.bench.alexnet import build_model as alexnet

    return alexnet(name, num_classes)
