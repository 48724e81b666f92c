"""Training the evaluator: its settings and presets, and the ``Trainable`` it hands to the shared loop.

A batch is ``batch`` distinct training clips, each with one of its captions (drawn at random) and a random
144-frame crop of its motion. The loss is TM2T's contrastive margin loss on Euclidean distances between text and
motion embeddings: matching pairs are pulled together (d^2), other pairs pushed beyond ``margin``
(max(0, margin - d)^2). Every other clip of the batch is a negative (the authors pair each text with one random
motion, and their permutation can pair an item with itself), but a caption that is also one of the clip's own is
never one. Negatives whose verbs differ from the clip's are preferred: where a clip has any, only those count.
The authors' variant squares the squared distance; TM2T's original, used here, does not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from hiw.data.stats import FeatureStats
from hiw.data.windows import WINDOW
from hiw.errors import ConfigError
from hiw.eval.data import EvalClip, motion_batch
from hiw.eval.evaluator import Evaluator, EvaluatorConfig
from hiw.eval.text import TextProcessor
from hiw.models.loop_settings import LoopSettings, Precision


class EvaluatorSettings(LoopSettings):
    steps: int = 20_000
    batch: int = 32  # clips per step (the hinted paper run: bs 16)
    lr: float = 1e-4
    margin: float = 10.0  # TM2T's
    precision: Precision = "fp32"  # GRUs gain little from bf16 autocast on a CPU; unmeasured on a GPU
    window: int = WINDOW


TRAIN_PRESETS: dict[str, EvaluatorSettings] = {
    "paper": EvaluatorSettings(),
    "tiny": EvaluatorSettings(steps=600, batch=32, lr=1e-3, log_every=50, checkpoint_every=200),
}


class EvaluatorJob:
    """The evaluator as the loop sees it: (captions, motions) in, the contrastive loss out."""

    kind = "evaluator"

    def __init__(
        self,
        config: EvaluatorConfig,
        settings: EvaluatorSettings,
        clips: list[EvalClip],
        val_clips: list[EvalClip],
        processor: TextProcessor,
        stats: FeatureStats,
        data: dict[str, Any],
        word_vectors: str | None = None,
    ):
        if len(clips) < 2:
            raise ConfigError(f"the evaluator needs at least 2 training clips to contrast (have {len(clips)})")
        self.model_config, self.settings, self.stats, self.processor = config, settings, stats, processor
        self.config, self.data, self.word_vectors = config.model_dump(), data, word_vectors
        self.train_set, self.val_set = _Indexed(clips, processor), (_Indexed(val_clips, processor) if val_clips else None)

    def build(self, device: torch.device) -> nn.Module:
        return Evaluator(self.model_config).to(device)

    def batch(self, rng: np.random.Generator, device: torch.device) -> dict[str, torch.Tensor]:
        return self.train_set.batch(rng, min(self.settings.batch, len(self.train_set.clips)), self.stats, device)

    def val_batches(self, rng: np.random.Generator, device: torch.device, n: int) -> list[dict[str, torch.Tensor]]:
        if self.val_set is None or len(self.val_set.clips) < 2:
            raise ConfigError("--val-every needs validation data, and the val split has fewer than 2 usable clips")
        size = min(self.settings.batch, len(self.val_set.clips))
        return [self.val_set.batch(rng, size, self.stats, device) for _ in range(n)]

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        text = model.text(batch["words"], batch["pos"], batch["lengths"])
        motion = model.motion(batch["features"], batch["mask"], batch["frames"])
        return contrastive_loss(text, motion, batch["negatives"], self.settings.margin)

    def extra(self) -> dict[str, Any]:
        # how to rebuild the text processing when the checkpoint is loaded (checked against its id then)
        rebuild = {"word_vectors_spec": self.word_vectors, "tagger_name": self.processor.tagger.name}
        return {"stats": self.stats.model_dump(), "text": self.processor.describe() | rebuild}


def contrastive_loss(
    text: torch.Tensor, motion: torch.Tensor, negatives: torch.Tensor, margin: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """Pull matching pairs (the diagonal) together, push the ``negatives`` (B, B) pairs beyond ``margin``."""
    dist = torch.cdist(text.float(), motion.float())  # fp32 distances, whatever the autocast
    positive = dist.diagonal()
    pushed = torch.clamp(margin - dist[negatives], min=0.0)
    loss = (positive**2).mean() + ((pushed**2).mean() if len(pushed) else 0.0)
    with torch.no_grad():
        hits = (dist.argmin(dim=1) == torch.arange(len(dist), device=dist.device)).float().mean()
        terms = {
            "loss": float(loss),
            "positive_dist": float(positive.mean()),
            "negative_dist": float(dist[negatives].mean()) if len(pushed) else 0.0,
            "batch_top1": float(hits),
        }
    return loss, terms


class _Indexed:
    """A split's clips with their captions encoded once (word ids and POS ids, not vectors, to stay small)."""

    def __init__(self, clips: list[EvalClip], processor: TextProcessor):
        self.clips = clips
        self.captions = [c for clip in clips for c in clip.captions]
        self.texts = processor.index(self.captions)
        ends = np.cumsum([len(clip.captions) for clip in clips])
        self.first = np.concatenate([[0], ends[:-1]])  # each clip's first caption row
        self.count = np.asarray([len(clip.captions) for clip in clips])
        self.caption_sets = [set(clip.captions) for clip in clips]

    def batch(self, rng: np.random.Generator, size: int, stats: FeatureStats, device: torch.device) -> dict[str, torch.Tensor]:
        picked = rng.choice(len(self.clips), size, replace=False)
        rows = self.first[picked] + rng.integers(self.count[picked])
        text = self.texts.gather(rows)
        feats, mask, frames = motion_batch([self.clips[i].motion for i in picked], stats, rng)
        negatives = self.negatives(picked, [self.captions[r] for r in rows])
        tensors = {
            "words": text.word_embs,
            "pos": text.pos_onehot,
            "lengths": text.lengths,
            "features": feats,
            "mask": mask,
            "frames": frames,
            "negatives": negatives,
        }
        return {k: torch.from_numpy(v).to(device) for k, v in tensors.items()}

    def negatives(self, picked: np.ndarray, chosen: list[str]) -> np.ndarray:
        """(B, B) pairs (text i, motion j) to push apart: never a caption of clip j itself; for a text whose clip
        has other clips in the batch with no verb in common, only those."""
        size = len(picked)
        allowed = np.array([[i != j and chosen[i] not in self.caption_sets[picked[j]] for j in range(size)] for i in range(size)])
        verbs = [self.clips[k].verbs for k in picked]
        preferred = allowed & np.array([[not (verbs[i] & verbs[j]) for j in range(size)] for i in range(size)])
        return np.where(preferred.any(axis=1, keepdims=True), preferred, allowed)
