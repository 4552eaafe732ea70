"""The augmentation both loaders apply, written once: constants, the PIL half, the torch half.

Training augmentation is ImageNet's standard one: a random-resized crop (area 8-100 %, aspect
3/4-4/3) resized to ``image_size``, a horizontal flip with probability 1/2, then per-channel
normalisation with ImageNet's mean and std. DALI does all of it in its pipeline; the baseline does
the crop and flip with PIL in DataLoader workers and normalises the uint8 batch on the device (the
usual fast PyTorch recipe, which keeps host-to-device copies at one byte per pixel).
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch
    from PIL import Image

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
AREA = (0.08, 1.0)
ASPECT = (3.0 / 4.0, 4.0 / 3.0)
ATTEMPTS = 10


def decode_rgb(data: bytes) -> "Image.Image":
    """Decode image bytes to an upright RGB PIL image (the codec's one pixel policy)."""
    from imgnet_tools.images.codec import decode_rgb as codec_decode

    return codec_decode(data)


def crop_box(width: int, height: int, rng: random.Random) -> tuple[int, int, int, int]:
    """(left, top, w, h) of a random-resized crop, drawn as torchvision does (fallback: centre)."""
    area = width * height
    log_ratio = (math.log(ASPECT[0]), math.log(ASPECT[1]))
    for _ in range(ATTEMPTS):
        target = area * rng.uniform(*AREA)
        ratio = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * ratio)))
        h = int(round(math.sqrt(target / ratio)))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, width - w), rng.randint(0, height - h), w, h
    ratio = width / height
    if ratio < ASPECT[0]:
        w, h = width, int(round(width / ASPECT[0]))
    elif ratio > ASPECT[1]:
        w, h = int(round(height * ASPECT[1])), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def random_resized_crop_flip(img: "Image.Image", size: int, rng: random.Random) -> "np.ndarray":
    """Crop, resize to ``size`` x ``size`` (bilinear, antialiased), maybe flip; HWC uint8."""
    import numpy as np
    from PIL import Image

    left, top, w, h = crop_box(img.width, img.height, rng)
    out = img.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h))
    if rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.array(out, dtype=np.uint8)


def resize_exact(img: "Image.Image", size: int) -> "np.ndarray":
    """Deterministic resize to ``size`` x ``size`` (bilinear, antialiased); HWC uint8. Used by check."""
    import numpy as np
    from PIL import Image

    return np.array(img.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def torch_dtype(name: str) -> "torch.dtype":
    """torch dtype for ``fp32`` / ``fp16`` / ``bf16``."""
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def normalize_batch(batch: "torch.Tensor", layout: str, dtype: str) -> "torch.Tensor":
    """uint8 NHWC batch (on its device) to a normalised float batch in ``layout`` and ``dtype``."""
    import torch

    mean = torch.tensor([m * 255 for m in MEAN], device=batch.device)
    std = torch.tensor([s * 255 for s in STD], device=batch.device)
    out = (batch.float() - mean) / std
    if layout == "NCHW":
        out = out.permute(0, 3, 1, 2)
    return out.contiguous().to(torch_dtype(dtype))
