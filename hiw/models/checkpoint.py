"""Checkpoints of a tokenizer run: everything needed to resume training or to decode tokens later.

A run folder holds ``checkpoints/step-NNNNNNN.pt`` files and ``checkpoints/latest.pt`` (a copy of the
newest), ``metrics.jsonl`` and ``run.json``. Each checkpoint carries the model config, the training
settings, the feature statistics, the data fingerprint, model/optimizer/RNG state and the step. Writes are
atomic, so an interrupted save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hiw.data.stats import FeatureStats
from hiw.errors import ConfigError
from hiw.models.tokenizer import MotionTokenizer, TokenizerConfig
from hiw.schemas.ids import file_digest

CHECKPOINTS = "checkpoints"
LATEST = "latest.pt"


def checkpoint_dir(run_dir: Path) -> Path:
    return run_dir / CHECKPOINTS


def save_checkpoint(run_dir: Path, state: dict[str, Any], keep: int = 3) -> Path:
    """Write ``step-NNNNNNN.pt`` and refresh ``latest.pt``; keep only the newest ``keep`` step files."""
    folder = checkpoint_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step-{state['step']:07d}.pt"
    tmp = folder / f".{uuid.uuid4().hex}.tmp"
    torch.save(state, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    shutil.copyfile(tmp, folder / f".{LATEST}.tmp")
    os.replace(tmp, path)
    os.replace(folder / f".{LATEST}.tmp", folder / LATEST)
    for old in sorted(folder.glob("step-*.pt"))[:-keep]:
        old.unlink()
    return path


def resolve(path: Path) -> Path:
    """A checkpoint file, or a run folder (its latest checkpoint)."""
    if path.is_dir():
        path = checkpoint_dir(path) / LATEST
    if not path.is_file():
        raise ConfigError(f"no checkpoint at {path} (train one with `hiw shift train --run DIR`)")
    return path


def load_state(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    try:
        return torch.load(resolve(path), map_location=device, weights_only=False)
    except (RuntimeError, EOFError, KeyError) as err:
        raise ConfigError(f"{path} is not a readable checkpoint: {err}") from err


@dataclass
class LoadedTokenizer:
    model: MotionTokenizer
    stats: FeatureStats
    state: dict[str, Any]
    path: Path
    checkpoint_id: str
    codebook_id: str

    @property
    def step(self) -> int:
        return int(self.state["step"])


def load_tokenizer(path: Path, device: torch.device | str = "cpu") -> LoadedTokenizer:
    """The trained tokenizer (eval mode) with its statistics and lineage ids."""
    path = resolve(path)
    state = load_state(path, device)
    step_file = path.parent / f"step-{state['step']:07d}.pt"
    if path.name == LATEST and step_file.is_file():  # record the stable name; latest.pt moves on
        path = step_file
    model = MotionTokenizer(TokenizerConfig(**state["model_config"])).to(device)
    model.load_state_dict(state["model"])
    model.eval()
    return LoadedTokenizer(model, FeatureStats(**state["stats"]), state, path, "k_" + file_digest(path)[:16], codebook_id(model))


def codebook_id(model: MotionTokenizer) -> str:
    digest = hashlib.sha256()
    for name, codebook in sorted(model.codebooks().items()):
        digest.update(name.encode())
        digest.update(codebook.detach().cpu().numpy().tobytes())
    return "cb_" + digest.hexdigest()[:16]
