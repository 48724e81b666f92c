"""The three training phases (PAPER.md section 4; "stages" in the paper and the CLI's ``--stage``) as one table:
what each starts from, which templates and task mix it trains on, and its optimiser settings per preset.

- ``pretrain``: per batch, span corruption of text (p 0.2) or motion (0.2), or supervised templates (0.6) with the
  task of each row drawn uniformly from t2m, m2t and h2h (the authors' mix). Starts from the base model (``--lm``
  or the preset's).
- ``align``: supervised pretraining templates only (t2m 0.5, m2t 0.25, h2h 0.25), plus the geometric
  reconstruction loss on the t2m rows (``hiw.lm.align``). Starts from pretrain.
- ``instruct``: instruction templates, t2m 0.4, m2t 0.4, t2t 0.2. Starts from align, or from pretrain where the
  run has no align phase (the ablation: pretrain continued, then instruct).
"""

from __future__ import annotations

from dataclasses import dataclass

from hiw.lm.train import LMSettings


@dataclass(frozen=True)
class Phase:
    name: str
    templates: str
    modes: dict[str, float]  # text / motion (span corruption), supervised
    tasks: dict[str, float]  # of supervised rows
    starts_from: tuple[str, ...]  # earlier phases, the latest present first
    align: bool = False


PHASES: dict[str, Phase] = {
    "pretrain": Phase(
        "pretrain", "pretrain", {"text": 0.2, "motion": 0.2, "supervised": 0.6}, {"t2m": 1, "m2t": 1, "h2h": 1}, ()
    ),
    "align": Phase("align", "pretrain", {"supervised": 1.0}, {"t2m": 0.5, "m2t": 0.25, "h2h": 0.25}, ("pretrain",), align=True),
    "instruct": Phase("instruct", "instruct", {"supervised": 1.0}, {"t2m": 0.4, "m2t": 0.4, "t2t": 0.2}, ("align", "pretrain")),
}

# Per preset and phase. paper: the authors' AdamW (lr 2e-4, betas as torch's default) and batch sizes, cosine to 1e-6;
# tiny: a CPU schedule that trains in minutes.
TRAIN_PRESETS: dict[str, dict[str, LMSettings]] = {
    "paper": {
        "pretrain": LMSettings(steps=100_000, batch=36, lr=2e-4, schedule="cosine", min_lr=1e-6),
        "align": LMSettings(steps=20_000, batch=64, lr=2e-4, schedule="cosine", min_lr=1e-6),
        "instruct": LMSettings(steps=100_000, batch=72, lr=2e-4, schedule="cosine", min_lr=1e-6),
    },
    "tiny": {
        "pretrain": LMSettings(steps=2000, batch=32, lr=1e-3, log_every=50, checkpoint_every=500),
        "align": LMSettings(steps=500, batch=32, lr=5e-4, log_every=50, checkpoint_every=250),
        "instruct": LMSettings(steps=500, batch=32, lr=5e-4, log_every=50, checkpoint_every=250),
    },
}
TRAIN_PRESETS["base"] = TRAIN_PRESETS["paper"]  # flan-t5-base's shape, random weights: the paper's schedule
