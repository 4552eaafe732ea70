"""One training step, written once for ``imgnet train`` and the GPU check (``bench.gpucheck``).

Forward under autocast (bf16, or fp16 with a gradient scaler; none in fp32), cross-entropy,
backward, SGD with momentum and weight decay as in the AlexNet paper. On a GPU the model and its
inputs use channels_last memory (what cuDNN's fastest convolutions want); ``torch.compile`` is
optional. The learning rate is set per step by the caller (the schedule lives in the loop).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

AMP_CHOICES = ("auto", "off", "bf16", "fp16")


def resolve_device(name: str) -> torch.device:
    """``auto`` (the first GPU when torch sees one, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    from imgnet_tools.errors import InputError

    if name == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: torch sees no CUDA GPU here; pass --device cpu (or auto).")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", 0)
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"--device must be auto, cpu, cuda or cuda:N, not {name!r}.")
    return device


def resolve_amp(amp: str, device: torch.device) -> str:
    """``auto``: bf16 on a GPU, off on the CPU (CPU autocast is slower than fp32 for these models)."""
    if amp == "auto":
        return "bf16" if device.type == "cuda" else "off"
    return amp


def model_input(x: torch.Tensor, layout: str, device: torch.device, channels_last: bool) -> torch.Tensor:
    """NCHW logical view of a loader batch, channels_last in memory when asked (NHWC needs no copy)."""
    if layout == "NHWC":
        x = x.permute(0, 3, 1, 2)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    if device.type == "cpu" and x.dtype != torch.float32:
        x = x.float()  # no half-precision convolutions worth having on the CPU
    return x


class TrainStep:
    """Model, optimizer and the step; ``module`` is the uncompiled model (its state_dict is saved)."""

    def __init__(self, model: nn.Module, device: torch.device, amp: str = "auto", channels_last: bool | None = None,
                 compile: bool | str = False, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 5e-4,
                 layout: str = "NCHW") -> None:
        self.device, self.layout = device, layout
        self.amp = resolve_amp(amp, device)
        self.channels_last = device.type == "cuda" if channels_last is None else channels_last
        self.module = model.to(device)
        if self.channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.forward: Callable[[torch.Tensor], torch.Tensor] = self.module
        if compile:
            backend = compile if isinstance(compile, str) else "inductor"
            self.forward = torch.compile(self.module, backend=backend)  # type: ignore[assignment]
        self.optimizer = torch.optim.SGD(self.module.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp == "fp16")
        self.loss_fn = nn.CrossEntropyLoss()

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.amp)

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def logits(self, x: torch.Tensor, layout: str | None = None) -> torch.Tensor:
        """Forward pass (autocast as configured) on a loader batch in ``layout`` (default: the step's)."""
        x = model_input(x, layout or self.layout, self.device, self.channels_last)
        dtype = self.autocast_dtype
        with torch.autocast(device_type=self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            return self.forward(x)

    def step(self, x: torch.Tensor, y: torch.Tensor, layout: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward, loss, backward, SGD step; returns (loss, logits), both detached, on the device."""
        self.module.train()
        logits = self.logits(x, layout)
        loss = self.loss_fn(logits.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach(), logits.detach()

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps of the step: weights, optimizer and scaler state."""
        return {"model": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {}}

    def load(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state` (weights saved from any device load onto this one)."""
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
