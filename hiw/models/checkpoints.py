"""Checkpoint files of any training run (tokenizer, language model, evaluator), and a cache of loaded models.

A run folder holds ``checkpoints/step-NNNNNNN.pt`` (the newest ``keep``), ``checkpoints/latest.pt`` (a copy
of the newest), ``checkpoints/best.pt`` (lowest validation loss, when validation is on), ``metrics.jsonl``
and ``run.json``. Writes are atomic, so an interrupted save leaves the previous file intact. A checkpoint
holds only tensors, numbers, strings, lists and dicts, so it loads with ``torch.load(weights_only=True)``:
opening one never runs code from the file.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import uuid
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from hiw.errors import ConfigError

CHECKPOINTS = "checkpoints"
LATEST = "latest.pt"
BEST = "best.pt"
METRICS_FILE = "metrics.jsonl"
CACHE_SIZE = 4  # loaded models kept per process (a paper-size tokenizer is ~140 MB of weights)

T = TypeVar("T")


def checkpoint_dir(run_dir: Path) -> Path:
    return run_dir / CHECKPOINTS


def _atomic_save(state: dict[str, Any], dest: Path) -> None:
    tmp = dest.parent / f".{uuid.uuid4().hex}.tmp"
    torch.save(state, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, dest)


def save_checkpoint(run_dir: Path, state: dict[str, Any], keep: int = 3) -> Path:
    """Write ``step-NNNNNNN.pt`` and refresh ``latest.pt``; keep only the newest ``keep`` step files."""
    folder = checkpoint_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step-{state['step']:07d}.pt"
    _atomic_save(state, path)
    shutil.copyfile(path, folder / f".{LATEST}.tmp")
    os.replace(folder / f".{LATEST}.tmp", folder / LATEST)
    for old in sorted(folder.glob("step-*.pt"))[:-keep]:
        old.unlink()
    return path


def save_best(run_dir: Path, state: dict[str, Any]) -> Path:
    folder = checkpoint_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_save(state, folder / BEST)
    return folder / BEST


def resolve(path: Path, train: str = "hiw shift train") -> Path:
    """A checkpoint file, or a run folder (its latest checkpoint); ``train`` is the command that makes one."""
    if path.is_dir():
        path = checkpoint_dir(path) / LATEST
    if not path.is_file():
        raise ConfigError(f"no checkpoint at {path} (train one first, e.g. `{train} --run DIR`)")
    return path


def stable_path(path: Path, step: int) -> Path:
    """The name to record for a loaded checkpoint: ``latest.pt`` moves on, so the step file it copies, when kept."""
    step_file = path.parent / f"step-{step:07d}.pt"
    return step_file if path.name == LATEST and step_file.is_file() else path


def load_state(path: Path, device: torch.device | str = "cpu", mmap: bool = False) -> dict[str, Any]:
    """A checkpoint's contents (``path`` as for ``resolve``); an unreadable file is a usage error."""
    path = resolve(path)
    try:
        return torch.load(path, map_location=device, weights_only=True, mmap=mmap)
    except (RuntimeError, EOFError, KeyError, ValueError, pickle.UnpicklingError) as err:
        raise ConfigError(f"{path} is not a readable checkpoint: {str(err).splitlines()[0]}") from err


_LOADED: OrderedDict[tuple, Any] = OrderedDict()


def load_cached(path: Path, device: torch.device | str, load: Callable[[Path, torch.device | str], T]) -> T:
    """``load(path, device)``, once per process for a given file and device: the model comes back from memory
    until the file changes (a rewritten ``latest.pt`` is a new file). Callers share the object: eval only."""
    path = resolve(path).resolve()
    stat = path.stat()
    key = (getattr(load, "__qualname__", repr(load)), str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns, str(device))
    if key in _LOADED:
        _LOADED.move_to_end(key)
        return _LOADED[key]
    value = _LOADED[key] = load(path, device)
    while len(_LOADED) > CACHE_SIZE:
        _LOADED.popitem(last=False)
    return value


def clear_cache() -> None:
    _LOADED.clear()


class MetricsLog:
    """``metrics.jsonl``: one JSON object per logged step, cut back to the checkpoint a run resumes from."""

    def __init__(self, path: Path):
        self.path = path

    def append(self, line: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(line) + "\n")

    def truncate(self, step: int) -> None:
        """Drop lines logged after ``step`` (written between the last save and a crash)."""
        if not self.path.exists():
            return
        lines = [line for line in self.path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        self.path.write_text("".join(line + "\n" for line in lines))
