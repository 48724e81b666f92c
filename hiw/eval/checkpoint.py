"""A trained evaluator loaded from its checkpoint, and the embeddings every metric is computed on.

A checkpoint carries what scoring needs besides the weights: the feature statistics, the text processing (word
vectors and tagger, with the id of each) and the lineage of its training data. Loading rebuilds the text
processor and refuses to score when it no longer matches (a GloVe folder edited since training, or spaCy
missing where it tagged the training captions): the embeddings would silently shift.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hiw.data.sequences import MotionSequence
from hiw.data.stats import FeatureStats
from hiw.errors import ConfigError
from hiw.eval.data import motion_batch
from hiw.eval.evaluator import Evaluator, EvaluatorConfig
from hiw.eval.text import TextProcessor, load_text_processor
from hiw.models.checkpoints import load_cached, load_state, resolve, stable_path
from hiw.schemas.ids import file_digest

KIND = "evaluator"
_BATCH = 256


@dataclass
class LoadedEvaluator:
    model: Evaluator
    stats: FeatureStats
    processor: TextProcessor
    state: dict[str, Any]  # the checkpoint without weights and optimizer state
    path: Path
    checkpoint_id: str

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def embed_texts(self, captions: Sequence[str]) -> np.ndarray:
        """(N, output) embeddings; every caption must have a word (``TextProcessor.is_usable``)."""
        out = []
        for at in range(0, len(captions), _BATCH):
            batch = self.processor.encode(list(captions[at : at + _BATCH]))
            words, pos, lengths = (
                torch.from_numpy(a).to(self.device) for a in (batch.word_embs, batch.pos_onehot, batch.lengths)
            )
            out.append(self.model.text(words, pos, lengths).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.config.output), np.float32)

    @torch.no_grad()
    def embed_motions(self, sequences: Sequence[MotionSequence]) -> np.ndarray:
        """(N, output) embeddings of each sequence's first 144 frames."""
        out = []
        for at in range(0, len(sequences), _BATCH):
            feats, mask, frames = (
                torch.from_numpy(a).to(self.device) for a in motion_batch(sequences[at : at + _BATCH], self.stats)
            )
            out.append(self.model.motion(feats, mask, frames).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.config.output), np.float32)

    def lineage(self) -> dict[str, Any]:
        data = self.state["data"]
        return {
            "checkpoint_id": self.checkpoint_id,
            "checkpoint_path": str(self.path),
            "step": int(self.state["step"]),
            "dataset": data["fingerprint"],
            "split": data["split"],
            "stats_id": self.stats.stats_id,
            "text": self.state["text"],
            "code_version": data["code_version"],
        }


def load_evaluator(path: Path, device: torch.device | str = "cpu") -> LoadedEvaluator:
    path = resolve(path)
    state = load_state(path, device)
    if state.get("kind") != KIND:
        raise ConfigError(f"{path} is a {state.get('kind', 'shift')} checkpoint, not an evaluator's (train one: hiw eval train)")
    path = stable_path(path, int(state["step"]))
    text = state["text"]
    processor = load_text_processor(text["word_vectors_spec"], text["tagger_name"])
    if processor.id != text["id"]:
        raise ConfigError(
            f"{path} was trained with other text processing ({text['id']}, now {processor.id}): "
            f"the word vectors ({text['word_vectors_spec'] or 'minilm'}) or the tagger changed; retrain the evaluator"
        )
    model = Evaluator(EvaluatorConfig(**state["model_config"])).to(device)
    model.load_state_dict(state.pop("model"))
    model.eval()
    state.pop("optimizer", None)
    return LoadedEvaluator(model, FeatureStats(**state["stats"]), processor, state, path, "e_" + file_digest(path)[:16])


def cached_evaluator(path: Path, device: torch.device | str = "cpu") -> LoadedEvaluator:
    """``load_evaluator`` once per process per (file, device); the model is shared, in eval mode."""
    return load_cached(path, device, load_evaluator)
