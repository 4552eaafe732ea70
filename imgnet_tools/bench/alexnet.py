"""AlexNet as in Krizhevsky, Sutskever and Hinton (NIPS 2012), and the single-tower variant.

The 2012 network was split over two GTX 580s: conv2, conv4 and conv5 only see the kernel maps of
their own GPU. On one device that is exactly a grouped convolution with ``groups=2``; conv3 and the
fully connected layers see both towers. Local response normalisation (k=2, n=5, alpha=1e-4,
beta=0.75) follows conv1 and conv2, before max pooling. With 1000 classes this has 60,965,224
parameters (the paper's "60 million").

The single-tower variant is the one torchvision ships (64-192-384-256-256 kernels, no LRN, no
groups), 61,100,840 parameters. Both end in an adaptive 6x6 average pool, so they also run on the
reduced resolutions the CPU tests use (``--image-size 64``); at 224 the pool is the identity.
"""

from __future__ import annotations

import torch
from torch import nn

MODELS = ("alexnet2012", "alexnet")


def _lrn() -> nn.Module:
    return nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)


def _classifier(num_classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Dropout(p=dropout),
        nn.Linear(256 * 6 * 6, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(p=dropout),
        nn.Linear(4096, 4096),
        nn.ReLU(inplace=True),
        nn.Linear(4096, num_classes),
    )


class AlexNet(nn.Module):
    """Convolutional ``features``, a 6x6 adaptive pool, and the three fully connected layers."""

    def __init__(self, features: nn.Sequential, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = _classifier(num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def alexnet2012(num_classes: int = 1000) -> AlexNet:
    """The two-tower network of the paper, towers as ``groups=2`` convolutions, with LRN."""
    features = nn.Sequential(
        nn.Conv2d(3, 96, kernel_size=11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        _lrn(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(96, 256, kernel_size=5, padding=2, groups=2),
        nn.ReLU(inplace=True),
        _lrn(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(256, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 384, kernel_size=3, padding=1, groups=2),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1, groups=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )
    return AlexNet(features, num_classes)


def alexnet_single(num_classes: int = 1000) -> AlexNet:
    """The single-tower variant (torchvision's layout): no groups, no LRN."""
    features = nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )
    return AlexNet(features, num_classes)


def build_model(name: str, num_classes: int = 1000) -> AlexNet:
    """The model called ``name`` (one of :data:`MODELS`)."""
    if name == "alexnet2012":
        return alexnet2012(num_classes)
    if name == "alexnet":
        return alexnet_single(num_classes)
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def training_flops_per_image(model: nn.Module, image_size: int) -> float:
    """Approximate FLOPs of one training step per image: 3x the forward multiply-adds times 2.

    Counts convolutions and linear layers only (the rest is noise); backward costs about twice the
    forward, hence the factor 3. At 224 the 2012 AlexNet comes to about 4.3 GFLOP.
    """
    macs = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            macs += output[0].numel() * k
        elif isinstance(module, nn.Linear):
            macs += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, image_size, image_size, device=next(model.parameters()).device))
    finally:
        for h in handles:
            h.remove()
    return 3.0 * 2.0 * macs
