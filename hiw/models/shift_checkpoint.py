"""A trained tokenizer loaded from its checkpoint (``hiw.models.checkpoints``), with its statistics and lineage ids.

``load_tokenizer`` reads the file every time; ``cached_tokenizer`` loads it once per process for a given file and
device (until the file changes), for jobs and workers that apply the same checkpoint again and again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hiw.data.stats import FeatureStats
from hiw.errors import ConfigError
from hiw.models.checkpoints import load_cached, load_state, resolve, stable_path
from hiw.models.tokenizer import MotionTokenizer, TokenizerConfig
from hiw.schemas.ids import file_digest


@dataclass
class LoadedTokenizer:
    model: MotionTokenizer
    stats: FeatureStats
    state: dict[str, Any]  # the checkpoint without its weights and optimizer state: step, data, settings, ...
    path: Path
    checkpoint_id: str
    codebook_id: str

    @property
    def step(self) -> int:
        return int(self.state["step"])


def load_tokenizer(path: Path, device: torch.device | str = "cpu") -> LoadedTokenizer:
    """The trained tokenizer (eval mode) of a checkpoint file or run folder."""
    path = resolve(path)
    state = load_state(path, device)
    kind = state.get("kind", "shift")  # checkpoints from before the shared loop are all tokenizers
    if kind != "shift":
        raise ConfigError(f"{path} is a {kind} checkpoint, not a motion tokenizer's")
    path = stable_path(path, int(state["step"]))
    model = MotionTokenizer(TokenizerConfig(**state["model_config"])).to(device)
    model.load_state_dict(state.pop("model"))
    model.eval()
    state.pop("optimizer", None)
    return LoadedTokenizer(model, FeatureStats(**state["stats"]), state, path, "k_" + file_digest(path)[:16], codebook_id(model))


def cached_tokenizer(path: Path, device: torch.device | str = "cpu") -> LoadedTokenizer:
    """``load_tokenizer``, once per process per (file, device). The model is shared: use it in eval mode only."""
    return load_cached(path, device, load_tokenizer)


def codebook_id(model: MotionTokenizer) -> str:
    digest = hashlib.sha256()
    for name, codebook in sorted(model.codebooks().items()):
        digest.update(name.encode())
        digest.update(codebook.detach().cpu().numpy().tobytes())
    return "cb_" + digest.hexdigest()[:16]
