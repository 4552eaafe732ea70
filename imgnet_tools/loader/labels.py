"""Class labels from ``KEY.cls`` bytes (ASCII decimal), in torch, on any device.

DALI reads ``.cls`` as raw uint8 and pads a batch to its longest member with zeros, so a batch is a
(B, L) uint8 tensor like ``[[0x34, 0x32, 0], [0x37, 0, 0]]`` for labels 42 and 7.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch


def parse_cls(padded: "torch.Tensor") -> "torch.Tensor":
    """int64 labels from a zero-padded (B, L) uint8 tensor of ASCII digits (whitespace ignored);
    a ``-`` makes the row negative (``-1``: an unlabelled sample, as shards write it)."""
    import torch

    codes = padded.to(torch.int64)
    digit = (codes >= 48) & (codes <= 57)
    values = torch.where(digit, codes - 48, torch.zeros_like(codes))
    # Position of each digit counted from the last digit of its row: 10**k weights.
    after = digit.flip(1).cumsum(1).flip(1) - digit.to(torch.int64)
    weights = torch.pow(torch.tensor(10, dtype=torch.int64, device=codes.device), after)
    magnitude = (values * weights * digit).sum(1)
    return torch.where((codes == 45).any(1), -magnitude, magnitude)


def parse_cls_bytes(data: bytes) -> int:
    """The label in one ``.cls`` member; ValueError if it is not a decimal integer."""
    return int(data.decode("ascii").strip())
