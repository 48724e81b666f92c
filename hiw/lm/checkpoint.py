"""A trained language model loaded from its run: the T5 weights of one phase's checkpoint, the run's tokenizer, the
SHIFT tokenizer it speaks, and the lineage that ties them together.

A run folder holds ``tokenizer/`` (text + motion tokens, ``save_pretrained``), and one folder per phase
(``pretrain/``, ``align/``, ``instruct/``) with the shared loop's checkpoints. Loading refuses a tokenizer or a SHIFT
checkpoint that changed since training: their ids are recorded in every checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hiw.errors import ConfigError
from hiw.lm.model import from_weights
from hiw.lm.tasks import Templates, load_templates
from hiw.lm.vocab import MotionVocab
from hiw.models.checkpoints import CHECKPOINTS, LATEST, load_cached, load_state, resolve, stable_path
from hiw.models.shift_checkpoint import LoadedTokenizer, load_tokenizer
from hiw.schemas.ids import file_digest

TOKENIZER_DIR = "tokenizer"
PHASE_ORDER = ("pretrain", "align", "instruct")
TRAIN_COMMAND = "hiw clutch train --stage pretrain"


def tokenizer_digest(folder: Path) -> str:
    return "tk_" + file_digest(folder / "tokenizer.json")[:16]


def latest_phase(run_dir: Path) -> str | None:
    """The last phase of the run that has a checkpoint."""
    done = [p for p in PHASE_ORDER if (run_dir / p / CHECKPOINTS / LATEST).is_file()]
    return done[-1] if done else None


def phase_checkpoint(path: Path) -> Path:
    """A checkpoint file, a phase folder, or a run folder (its latest phase) -> the checkpoint file."""
    if path.is_dir() and not (path / CHECKPOINTS).is_dir() and (phase := latest_phase(path)):
        path = path / phase
    return resolve(path, TRAIN_COMMAND)


@dataclass
class LoadedLM:
    model: Any  # T5ForConditionalGeneration, eval mode
    tokenizer: Any
    vocab: MotionVocab
    motion_base: int  # token id of <motion_id_0>
    shift: LoadedTokenizer
    templates: Templates
    state: dict[str, Any]  # the checkpoint without weights and optimizer state
    path: Path
    checkpoint_id: str

    @property
    def phase(self) -> str:
        return self.state["lm"]["phase"]

    @property
    def max_length(self) -> int:
        return int(self.state["settings"]["max_length"])

    def lineage(self) -> dict[str, Any]:
        lm = self.state["lm"]
        return {
            "checkpoint_id": self.checkpoint_id,
            "checkpoint_path": str(self.path),
            "phase": self.phase,
            "step": int(self.state["step"]),
            "shift": lm["shift"],
            "templates": lm["templates"],
            "tokenizer": lm["tokenizer"],
            "base": lm["base"],
            "data": {k: self.state["data"][k] for k in ("fingerprint", "split", "clips")},
            "code_version": lm["code_version"],
        }


def load_lm(path: Path, device: torch.device | str = "cpu") -> LoadedLM:
    from transformers import AutoTokenizer

    path = phase_checkpoint(path)
    state = load_state(path, device)
    if state.get("kind") != "clutch":
        raise ConfigError(f"{path} is a {state.get('kind', 'shift')} checkpoint, not a CLUTCH language model's")
    path = stable_path(path, int(state["step"]))
    run_dir, lm = path.parent.parent.parent, state["lm"]
    folder = run_dir / TOKENIZER_DIR
    if not (folder / "tokenizer.json").is_file() or tokenizer_digest(folder) != lm["tokenizer"]:
        raise ConfigError(f"{folder} is not the tokenizer {path} was trained with ({lm['tokenizer']})")
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    shift = load_tokenizer(Path(lm["shift"]["path"]), device)
    if shift.checkpoint_id != lm["shift"]["checkpoint_id"]:
        raise ConfigError(
            f"the SHIFT checkpoint at {lm['shift']['path']} is {shift.checkpoint_id}, not {lm['shift']['checkpoint_id']} "
            "that this model was trained on"
        )
    model = from_weights(state["model_config"]["t5"], state.pop("model")).to(device)
    model.eval()
    state.pop("optimizer", None)
    vocab = MotionVocab(lm["vocab"]["codebook_size"], tuple(lm["vocab"]["stream"]))
    templates = load_templates(lm["templates"]["name"])
    return LoadedLM(model, tokenizer, vocab, int(lm["motion_base"]), shift, templates, state, path, "m_" + file_digest(path)[:16])


def cached_lm(path: Path, device: torch.device | str = "cpu") -> LoadedLM:
    return load_cached(phase_checkpoint(path), device, load_lm)
