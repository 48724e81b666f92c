"""The training loop every hiw model trains through: the SHIFT tokenizer, and next the language model and the
text-motion evaluator.

A model brings a ``Trainable``: how to build it, draw a batch, compute a loss, and what to keep beside its
weights. The loop owns the rest: device and precision (``hiw.models.loop_settings``), seeds and RNG state,
AdamW steps with warm-up + cosine learning rate and gradient clipping, a validation loss on fixed held-out
batches, the checkpoints (``hiw.models.checkpoints``: rolling step files, ``latest.pt``, ``best.pt``), resuming,
``metrics.jsonl`` and a progress callback. With its defaults (constant lr, no clipping, no validation, fp32)
it takes the same steps as the tokenizer's own loop did before it was shared.

``train`` runs until ``settings.steps`` optimizer steps are done. With a checkpoint in the run folder it
resumes from it, after checking that the model's kind and config and the data's fingerprint are the ones the
run was started with: a killed run continues where its last checkpoint left off, and a finished one can be
extended with a larger ``steps``.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from hiw.errors import ConfigError, HiwError
from hiw.models.checkpoints import BEST, LATEST, METRICS_FILE, MetricsLog, checkpoint_dir, load_state, save_best, save_checkpoint
from hiw.models.loop_settings import LoopSettings, autocast, autocast_dtype, check_settings, lr_at


class Trainable(Protocol):
    """What a model brings. ``config`` and ``data`` are JSON-like; ``data["fingerprint"]`` names the training data."""

    kind: str  # "shift", "lm", ...: a run folder holds one kind
    config: dict[str, Any]  # the model's config: a run resumes only with the same one
    data: dict[str, Any]  # lineage of the training data, stored in every checkpoint

    def build(self, device: torch.device) -> nn.Module:
        """The model on ``device``; called once, after the loop seeded torch (scratch, local weights, or a checkpoint)."""

    def batch(self, rng: np.random.Generator, device: torch.device) -> Any:
        """One training batch drawn with ``rng`` (the loop's, saved in checkpoints: a resumed run draws the same)."""

    def val_batches(self, rng: np.random.Generator, device: torch.device, n: int) -> list[Any]:
        """``n`` held-out batches, drawn once per ``train`` call with a generator of their own."""

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """The scalar loss to minimise and the numbers to log (floats)."""

    def extra(self) -> dict[str, Any]:
        """Saved at the top level of each checkpoint beside the loop's keys (e.g. the feature statistics)."""

    # Optional: ``begin_step(step)`` is called before each step's batch, for a loss that anneals with the step
    # (the language model's Gumbel temperature); a resumed run calls it from the step it resumes at.


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path | None
    step: int
    resumed_from: int
    seconds: float
    sequences_per_s: float  # training items per second of the loop, validation excluded
    last: dict[str, float]
    best: Path | None = None  # best.pt, when validation ran
    best_val_loss: float | None = None
    skipped: Counter = field(default_factory=Counter)  # inputs the model's batches skipped, by reason


def train(
    run_dir: Path,
    job: Trainable,
    settings: LoopSettings,
    device: torch.device,
    log: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    check_settings(settings)
    dtype = autocast_dtype(settings.precision, device)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(settings.seed)
    model = job.build(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    rng = np.random.default_rng(settings.seed)
    start, best = _resume(run_dir, job, model, optimizer, rng, device)
    metrics = MetricsLog(run_dir / METRICS_FILE)
    metrics.truncate(start)
    validating = settings.val_every > 0 and start < settings.steps
    held_out = job.val_batches(np.random.default_rng([settings.seed, 1]), device, settings.val_batches) if validating else []

    def state(step: int) -> dict[str, Any]:
        return _state(job, model, optimizer, rng, step, settings, best, device)

    model.train()
    began, val_s, last, path = time.perf_counter(), 0.0, {}, None
    for step in range(start + 1, settings.steps + 1):
        lr = lr_at(step, settings)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if begin_step := getattr(job, "begin_step", None):  # optional: models whose loss depends on the step
            begin_step(step)
        batch = job.batch(rng, device)
        try:
            with autocast(device, dtype):
                loss, terms = job.loss(model, batch)
        except ValueError as err:  # e.g. the quantizer refuses non-finite latents before they reach a codebook
            raise HiwError(f"training stopped at step {step}: {err}") from err
        if not torch.isfinite(loss):
            raise HiwError(f"training diverged at step {step} (loss {float(loss)}); try a lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        last = {"step": step, "lr": lr, **terms}
        if settings.clip_norm:
            last["grad_norm"] = float(nn.utils.clip_grad_norm_(model.parameters(), settings.clip_norm))
        optimizer.step()
        validated = validating and (step % settings.val_every == 0 or step == settings.steps)
        if validated:
            began_val = time.perf_counter()
            last.update(_validate(job, model, held_out, device, dtype))
            val_s += time.perf_counter() - began_val
            if last["val_loss"] < (best["val_loss"] if best else math.inf):
                best = {"step": step, "val_loss": last["val_loss"]}
                save_best(run_dir, state(step))
        if step % settings.log_every == 0 or step == settings.steps or validated:
            elapsed = time.perf_counter() - began
            rate = (step - start) * settings.batch / max(elapsed - val_s, 1e-9)
            last.update(elapsed_s=round(elapsed, 2), sequences_per_s=round(rate, 1))
            metrics.append(last)
            if log:
                log(last)
        if step % settings.checkpoint_every == 0 or step == settings.steps:
            path = save_checkpoint(run_dir, state(step), settings.keep)
    seconds = time.perf_counter() - began
    done = max(settings.steps, start)
    best_file = checkpoint_dir(run_dir) / BEST
    return TrainResult(
        run_dir,
        path or (checkpoint_dir(run_dir) / LATEST if start else None),
        done,
        start,
        seconds,
        (done - start) * settings.batch / max(seconds - val_s, 1e-9) if done > start else 0.0,
        last,
        best_file if best and best_file.is_file() else None,
        best["val_loss"] if best else None,
    )


@torch.no_grad()
def _validate(
    job: Trainable, model: nn.Module, batches: list[Any], device: torch.device, dtype: torch.dtype | None
) -> dict[str, float]:
    """Mean loss and logged numbers over the held-out batches, in eval mode (no codebook or dropout updates)."""
    model.eval()
    sums: Counter = Counter()
    try:
        for batch in batches:
            with autocast(device, dtype):
                loss, terms = job.loss(model, batch)
            sums.update({**terms, "loss": float(loss)})
    finally:
        model.train()
    return {f"val_{name}": total / len(batches) for name, total in sums.items()}


def _state(job, model, optimizer, rng, step, settings, best, device) -> dict[str, Any]:
    state = {
        "kind": job.kind,
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "model_config": job.config,
        "settings": settings.model_dump(),
        "data": job.data,
        "best": best,
    }
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    extra = job.extra()
    if clash := state.keys() & extra.keys():
        raise ValueError(f"checkpoint keys {sorted(clash)} belong to the training loop")
    return state | extra


def _resume(run_dir, job, model, optimizer, rng, device) -> tuple[int, dict[str, Any] | None]:
    """Load the run's latest checkpoint into model/optimizer/RNGs: the step it reached (0 for a new run) and the best
    validation so far. A best.pt newer than that step belongs to the lost tail of the run (as do its metrics lines)."""
    latest = checkpoint_dir(run_dir) / LATEST
    start, best = 0, None
    if latest.is_file():
        state = load_state(latest)  # on the CPU: the RNG states must be, and load_state_dict copies to the model's device
        if state.get("kind", job.kind) != job.kind:  # checkpoints from before the shared loop name no kind
            raise ConfigError(f"{run_dir} holds a {state['kind']} run, not {job.kind}; use --fresh or another --run")
        if state["model_config"] != job.config:
            raise ConfigError(
                f"{run_dir} holds a run with another model config ({state['model_config']}); use --fresh or another --run"
            )
        if state["data"].get("fingerprint") != job.data.get("fingerprint"):
            raise ConfigError(
                f"{run_dir} was trained on other data ({state['data'].get('source')}); use --fresh or another --run"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        start, best = int(state["step"]), state.get("best")
    best_file = checkpoint_dir(run_dir) / BEST
    if best_file.is_file() and int(load_state(best_file, mmap=True)["step"]) > start:
        best_file.unlink()
    return start, best
