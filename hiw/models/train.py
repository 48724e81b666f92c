"""Training loop of the motion tokenizer: resumable, logged, on the best device available.

``train`` runs until ``settings.steps`` optimizer steps are done. With a checkpoint already in the run
folder it resumes from it (same model config and data required), so a killed run continues where its
last checkpoint left off and a finished one can be extended with a larger ``--steps``. Metrics go to
``metrics.jsonl`` (one JSON object per logged step) and to the ``log`` callback.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel

from hiw.data.sequences import MotionSequence
from hiw.data.stats import FeatureStats
from hiw.data.windows import WINDOW, random_batch
from hiw.errors import ConfigError, HiwError
from hiw.models.checkpoint import LATEST, checkpoint_dir, load_state, save_checkpoint
from hiw.models.tokenizer import MotionTokenizer, TokenizerConfig

METRICS_FILE = "metrics.jsonl"


class TrainSettings(BaseModel):
    steps: int = 100_000
    batch: int = 512
    lr: float = 2e-4  # AdamW, the paper's
    weight_decay: float = 0.0
    seed: int = 0
    log_every: int = 100
    checkpoint_every: int = 1000
    window: int = WINDOW


# Per preset: the paper's optimiser settings, and a short CPU schedule for the tiny model.
TRAIN_PRESETS: dict[str, TrainSettings] = {
    "paper": TrainSettings(),
    "tiny": TrainSettings(steps=1000, batch=32, lr=1e-3, log_every=100, checkpoint_every=250),
}


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


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path | None
    step: int
    resumed_from: int
    seconds: float
    sequences_per_s: float  # training windows per second of the loop
    last: dict[str, float]
    skipped: Counter = field(default_factory=Counter)


def train(
    run_dir: Path,
    model_config: TokenizerConfig,
    settings: TrainSettings,
    sequences: Sequence[MotionSequence],
    stats: FeatureStats,
    data: dict[str, Any],
    device: torch.device,
    log: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train (or resume) the tokenizer on ``sequences`` (already screened); ``data`` describes them for lineage."""
    if not sequences:
        raise ConfigError("no training sequence left after screening; see the skipped counts")
    if settings.window % 2**model_config.down_t:
        raise ConfigError(f"window {settings.window} is not a multiple of the token step {2**model_config.down_t}")
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(settings.seed)
    model = MotionTokenizer(model_config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    rng = np.random.default_rng(settings.seed)
    start = _resume(run_dir, model, optimizer, rng, model_config, data, device)
    _truncate_metrics(run_dir / METRICS_FILE, start)
    skipped: Counter = Counter()
    model.train()
    began, last, path = time.perf_counter(), {}, None
    for step in range(start + 1, settings.steps + 1):
        feats, masks = random_batch(sequences, rng, settings.batch, stats, settings.window, skipped)
        x, mask = torch.from_numpy(feats).to(device), torch.from_numpy(masks).to(device)
        try:
            out = model(x, mask)
        except ValueError as err:  # the quantizer refuses non-finite latents before they reach a codebook
            raise HiwError(f"training stopped at step {step}: {err}") from err
        if not torch.isfinite(out.loss):
            raise HiwError(f"training diverged at step {step} (loss {float(out.loss)}); try a lower --lr")
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        last = {"step": step, **out.terms}
        if step % settings.log_every == 0 or step == settings.steps:
            elapsed = time.perf_counter() - began
            last.update(elapsed_s=round(elapsed, 2), sequences_per_s=round((step - start) * settings.batch / elapsed, 1))
            with open(run_dir / METRICS_FILE, "a") as f:
                f.write(json.dumps(last) + "\n")
            if log:
                log(last)
        if step % settings.checkpoint_every == 0 or step == settings.steps:
            path = save_checkpoint(run_dir, _state(model, optimizer, rng, step, model_config, settings, stats, data))
    seconds = time.perf_counter() - began
    done = max(settings.steps, start)
    return TrainResult(
        run_dir,
        path or (checkpoint_dir(run_dir) / LATEST if start else None),
        done,
        start,
        seconds,
        (done - start) * settings.batch / seconds if done > start else 0.0,
        last,
        skipped,
    )


def _state(model, optimizer, rng, step, model_config, settings, stats, data) -> dict[str, Any]:
    return {
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "model_config": model_config.model_dump(),
        "settings": settings.model_dump(),
        "stats": stats.model_dump(),
        "data": data,
    }


def _resume(run_dir, model, optimizer, rng, model_config, data, device) -> int:
    """Load the run's latest checkpoint into model/optimizer/rng; the step it reached (0 for a new run)."""
    latest = checkpoint_dir(run_dir) / LATEST
    if not latest.is_file():
        return 0
    state = load_state(latest, device)
    if state["model_config"] != model_config.model_dump():
        raise ConfigError(
            f"{run_dir} holds a run with another model config ({state['model_config']}); use --fresh or another --run"
        )
    if state["data"].get("fingerprint") != data.get("fingerprint"):
        raise ConfigError(f"{run_dir} was trained on other data ({state['data'].get('source')}); use --fresh or another --run")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    rng.bit_generator.state = state["rng"]
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"])


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop lines logged after the checkpoint we resume from (a crash between log and save)."""
    if not path.exists():
        return
    lines = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in lines))
