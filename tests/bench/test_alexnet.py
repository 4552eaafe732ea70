"""AlexNet: the 2012 two-tower network and the single-tower variant, shapes and parameter counts."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from imgnet_tools.bench.alexnet import MODELS, build_model, count_parameters, training_flops_per_image


@functools.lru_cache(maxsize=None)
def _model(name: str, num_classes: int = 1000) -> nn.Module:
    """Built once per test module: 60M random weights take a while to initialise."""
    return build_model(name, num_classes).eval()


def _by_hand_2012() -> int:
    """Parameter count of the paper's layers, written out: weights + biases per layer."""
    convs = [(3, 96, 11, 1), (96, 256, 5, 2), (256, 384, 3, 1), (384, 384, 3, 2), (384, 256, 3, 2)]
    total = sum(cin // g * k * k * cout + cout for cin, cout, k, g in convs)
    return total + (9216 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)


def test_2012_parameter_count_matches_the_paper_layers() -> None:
    model = _model("alexnet2012")
    assert count_parameters(model) == _by_hand_2012()
    assert round(count_parameters(model) / 1e6, 1) == 61.0  # "60 million" in the paper: 60.97M


def test_single_tower_parameter_count() -> None:
    assert round(count_parameters(_model("alexnet")) / 1e6, 1) == 61.1


def test_2012_has_two_towers_and_lrn() -> None:
    model = _model("alexnet2012")
    groups = [m.groups for m in model.features if isinstance(m, nn.Conv2d)]
    assert groups == [1, 2, 1, 2, 2]  # conv3 sees both towers, as in the paper
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in model.features) == 2
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in _model("alexnet").features)


@pytest.mark.parametrize("name", MODELS)
def test_feature_map_is_256x6x6_at_224(name: str) -> None:
    model = _model(name)
    with torch.no_grad():
        assert model.features(torch.zeros(1, 3, 224, 224)).shape == (1, 256, 6, 6)


@pytest.mark.parametrize("name", MODELS)
def test_logits_shape_at_reduced_resolution(name: str) -> None:
    """--image-size 64 (the CI setting) still gives one logit per class; the 6x6 pool adapts."""
    model = _model(name)
    with torch.no_grad():
        assert model.features(torch.zeros(2, 3, 64, 64)).shape == (2, 256, 1, 1)
        assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 1000)


def test_training_flops_are_about_4_gflop_at_224() -> None:
    flops = training_flops_per_image(_model("alexnet2012"), 224)
    assert 4.0e9 < flops < 4.5e9
    assert training_flops_per_image(_model("alexnet2012"), 64) < flops / 2


def test_unknown_model_is_refused() -> None:
    with pytest.raises(ValueError, match="alexnet2012"):
        build_model("vgg16")


def test_smallest_input_is_63_pixels_and_params_enforce_it() -> None:
    """63 px is the smallest input AlexNet's three max-pools accept; BenchParams refuses less."""
    from imgnet_tools.bench.params import BenchParams
    from imgnet_tools.errors import InputError

    model = build_model("alexnet2012")
    assert model(torch.zeros(1, 3, 63, 63)).shape == (1, 1000)
    with pytest.raises(RuntimeError):
        model(torch.zeros(1, 3, 62, 62))
    with pytest.raises(InputError, match="63"):
        BenchParams(shards="x", image_size=62)


def test_lenet5_has_the_paper_layers_and_about_60k_parameters() -> None:
    """Two conv + pool stages and three fully connected layers; 62,006 parameters (RGB, 10 classes)."""
    from imgnet_tools.bench.models import build_model as any_model

    model = any_model("lenet5", 10).eval()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    fcs = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [(3, 6, (5, 5)), (6, 16, (5, 5))]
    assert [(f.in_features, f.out_features) for f in fcs] == [(400, 120), (120, 84), (84, 10)]
    by_hand = (3 * 25 * 6 + 6) + (6 * 25 * 16 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    assert count_parameters(model) == by_hand == 62_006
    with torch.no_grad():
        assert model.features(torch.zeros(2, 3, 32, 32)).shape == (2, 16, 5, 5)
        assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 10)  # the adaptive pool takes larger inputs
    with pytest.raises(RuntimeError):
        model(torch.zeros(1, 3, 12, 12))
    assert 0 < training_flops_per_image(model, 32) < 2e7


def test_bench_params_take_lenet5_at_32_pixels_but_alexnet_not() -> None:
    from imgnet_tools.bench.params import BenchParams
    from imgnet_tools.errors import InputError

    assert BenchParams(shards="x", model="lenet5", image_size=32).image_size == 32
    with pytest.raises(InputError, match="63 for alexnet2012"):
        BenchParams(shards="x", model="alexnet2012", image_size=32)
