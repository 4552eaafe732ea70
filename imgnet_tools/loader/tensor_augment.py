"""The training augmentation on decoded image tensors, on whatever device they live (CPU or GPU).

What the nvJPEG loader runs after ``torchvision.io.decode_jpeg(..., device="cuda")``, and what the
tests run on CPU tensors decoded by PIL: the same random-resized crop as the other loaders (boxes
drawn by :func:`imgnet_tools.loader.augment.crop_box`, torchvision's rule: area 8-100 %, aspect
3/4-4/3, ten tries then a centre crop), a bilinear antialiased resize to ``size`` (``interpolate``
with ``antialias=True``, as PIL's resize and DALI's ``antialias=True`` do), a horizontal flip with
probability 1/2, and the per-channel normalisation with ImageNet's mean and std, into NCHW or NHWC
and fp32, fp16 or bf16. Only torch is used, so the same code runs on both devices.
"""

from __future__ import annotations

import random
from typing import Sequence

import torch
import torch.nn.functional as F

from imgnet_tools.loader.augment import MEAN, STD, crop_box, torch_dtype

Box = tuple[int, int, int, int]  # left, top, width, height


def draw_boxes(shapes: Sequence[tuple[int, int]], rng: random.Random) -> list[Box]:
    """A random-resized-crop box per (height, width), drawn as the PIL and DALI paths draw them."""
    return [crop_box(w, h, rng) for h, w in shapes]


def resized_crops(images: Sequence[torch.Tensor], boxes: Sequence[Box], size: int) -> torch.Tensor:
    """(B, 3, size, size) float32 in 0..255: each CHW uint8 image cropped to its box and resized."""
    out = []
    for img, (left, top, w, h) in zip(images, boxes, strict=True):
        crop = img[:, top:top + h, left:left + w].unsqueeze(0).float()
        out.append(F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=True))
    return torch.cat(out).clamp_(0.0, 255.0)


def flip(batch: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mirror the images (NCHW) where ``mask`` (B,) is true."""
    return torch.where(mask.view(-1, 1, 1, 1), batch.flip(3), batch)


def normalize(batch: torch.Tensor, layout: str, dtype: str) -> torch.Tensor:
    """NCHW 0..255 floats -> (x - mean) / std per channel, in ``layout`` and ``dtype``."""
    mean = torch.tensor([m * 255 for m in MEAN], device=batch.device).view(1, 3, 1, 1)
    std = torch.tensor([s * 255 for s in STD], device=batch.device).view(1, 3, 1, 1)
    out = (batch - mean) / std
    if layout == "NHWC":
        out = out.permute(0, 2, 3, 1)
    return out.contiguous().to(torch_dtype(dtype))


def augment(images: Sequence[torch.Tensor], size: int, rng: random.Random, layout: str = "NCHW",
            dtype: str = "fp32") -> torch.Tensor:
    """Random-resized crop, flip and normalise a list of CHW uint8 images into one batch."""
    boxes = draw_boxes([(int(i.shape[1]), int(i.shape[2])) for i in images], rng)
    batch = resized_crops(images, boxes, size)
    mask = torch.tensor([rng.random() < 0.5 for _ in images], device=batch.device)
    return normalize(flip(batch, mask), layout, dtype)
