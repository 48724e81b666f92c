"""What the shared training loop (``hiw.models.loop``) is told: its settings, the learning rate of each step,
the device and the precision.

The learning rate follows nanoGPT's ``get_lr``: a linear warm-up over ``warmup_steps``, then either
constant or a cosine from ``lr`` down to ``min_lr`` at the last step. It is a function of the step alone,
so a resumed run continues on the same curve with no scheduler state to save.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext
from typing import Literal, get_args

import torch
from pydantic import BaseModel

from hiw.errors import ConfigError

Schedule = Literal["constant", "cosine"]
# auto: bf16 autocast on a CUDA GPU with native bf16, fp32 elsewhere. CPUs differ: on this project's 2-core CPU
# (AVX512-BF16) --precision bf16 trained the tiny tokenizer 1.3x faster (docs/ARCHITECTURE.md, the training loop), but a
# CPU without native bf16 emulates it, so a CPU gets bf16 only when asked.
Precision = Literal["auto", "fp32", "bf16"]


class LoopSettings(BaseModel):
    """Each model's settings extend these and give ``steps``, ``batch`` and ``lr`` their defaults."""

    steps: int  # total optimizer steps; a resumed run continues up to this
    batch: int  # items per step (the loop reports items per second)
    lr: float  # AdamW, peak learning rate
    weight_decay: float = 0.0
    seed: int = 0
    log_every: int = 100
    checkpoint_every: int = 1000
    keep: int = 3  # step-NNNNNNN.pt files kept besides latest.pt and best.pt
    warmup_steps: int = 0
    schedule: Schedule = "constant"
    min_lr: float = 0.0  # where the cosine ends
    clip_norm: float = 0.0  # largest global gradient norm; 0: no clipping
    val_every: int = 0  # validation loss every this many steps and at the last; 0: no validation
    val_batches: int = 8  # held-out batches, drawn once so every validation sees the same ones
    precision: Precision = "auto"


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_settings(settings: LoopSettings) -> None:
    """Usage errors (named by their command-line flags) before anything trains."""
    for name, kind in (("schedule", Schedule), ("precision", Precision)):
        if getattr(settings, name) not in get_args(kind):
            raise ConfigError(f"{_flag(name)} must be one of {', '.join(get_args(kind))} (got {getattr(settings, name)!r})")
    for name in ("steps", "batch", "log_every", "checkpoint_every", "keep", "val_batches"):
        if getattr(settings, name) < 1:
            raise ConfigError(f"{_flag(name)} must be at least 1 (got {getattr(settings, name)})")
    for name in ("warmup_steps", "val_every", "weight_decay", "min_lr", "clip_norm"):
        value = getattr(settings, name)
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{_flag(name)} must be a finite number >= 0 (got {value})")
    if not math.isfinite(settings.lr) or settings.lr <= 0:
        raise ConfigError(f"--lr must be a finite number > 0 (got {settings.lr})")
    if settings.schedule == "cosine" and settings.min_lr > settings.lr:
        raise ConfigError(f"--min-lr ({settings.min_lr}) is above --lr ({settings.lr})")


def lr_at(step: int, settings: LoopSettings) -> float:
    """The learning rate of optimizer step ``step`` (1 to ``settings.steps``)."""
    if step <= settings.warmup_steps:
        return settings.lr * step / settings.warmup_steps
    if settings.schedule == "constant":
        return settings.lr
    ratio = min((step - settings.warmup_steps) / max(settings.steps - settings.warmup_steps, 1), 1.0)
    return settings.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (settings.lr - settings.min_lr)


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA, else Apple's MPS, else CPU. An explicit device that is not there is a usage error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
        torch.empty(1, device=device)
    except (RuntimeError, AssertionError) as err:
        raise ConfigError(f"device {name!r} is not usable here: {str(err).splitlines()[0]}") from err
    return device


def autocast_dtype(precision: Precision, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of the forward pass and loss (None: plain fp32); bf16 where it cannot run is a usage error."""
    native_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
    if precision == "fp32" or (precision == "auto" and not native_bf16):
        return None
    if device.type == "cuda" and not native_bf16 or not torch.amp.is_autocast_available(device.type):
        raise ConfigError(f"--precision bf16 is not supported on {device}")
    return torch.bfloat16


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager:
    """A fresh context for one forward pass: autocast to ``dtype``, or nothing."""
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)
