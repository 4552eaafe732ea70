"""LeNet-5 as in LeCun, Bottou, Bengio and Haffner, "Gradient-based learning applied to document
recognition" (Proc. IEEE, 1998), on RGB inputs.

The layers of the paper, on a 32x32 input: C1 six 5x5 convolutions (28x28), S2 2x2 subsampling
(14x14), C3 sixteen 5x5 convolutions (10x10), S4 2x2 subsampling (5x5), then three fully connected
layers: C5 (120 units; a 5x5 convolution over a 5x5 map is a fully connected layer), F6 (84) and the
output layer, with tanh squashing in between. Two departures, both the usual modern reading: S2/S4
are plain average pooling (the paper's subsampling had a trainable coefficient and bias per map),
C3 connects every input map (the paper's sparse table saved parameters on a 1990s machine), and the
output is a linear layer under softmax cross-entropy instead of Euclidean RBF units.

Parameters with 3 input channels and 10 classes: 456 + 2,416 + 48,120 + 10,164 + 850 = 62,006
("about 60,000" in the paper, which had one grey channel and the sparse C3). An adaptive 5x5 pool
before C5 lets larger inputs through (at 32x32 it is the identity), as AlexNet's 6x6 pool does.
"""

from __future__ import annotations

import torch
from torch import nn

INPUT_SIZE = 32


class LeNet5(nn.Module):
    """C1-S2-C3-S4 ``features``, an adaptive 5x5 pool, and the C5-F6-output ``classifier``."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5),
            nn.Tanh(),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.Tanh(),
            nn.AvgPool2d(kernel_size=2, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((5, 5))
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120),
            nn.Tanh(),
            nn.Linear(120, 84),
            nn.Tanh(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def lenet5(num_classes: int = 10) -> LeNet5:
    """LeNet-5 for RGB inputs of at least 32x32."""
    return LeNet5(num_classes)
