"""Export in the HumanML3D folder layout, so text-to-motion code written for it (T2M, MotionGPT, MoMask-style
loaders) reads hand motion with only its feature size changed to 198::

    out/new_joint_vecs/<id>.npy   (T, 198) float32, the paper's features at 15 fps (zeros where a hand is missing)
    out/texts/<id>.txt            one caption a line: ``caption#word/POS word/POS ...#0.0#0.0`` (whole sequence)
    out/train.txt, val.txt, test.txt, all.txt   ids, one a line
    out/Mean.npy, out/Std.npy     (198,) float32 over valid frames of the train split
    out/meta.json                 hiw's own record (fps, layout, counts, versions); loaders ignore it

Captions are tagged as HumanML3D tags them (``hiw.annotators.pos``: spaCy's en_core_web_sm, lemmas of nouns
and verbs, non-alphabetic words dropped; the rule tagger where spaCy is missing), with universal POS tags.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from hiw.annotators.pos import Tagger, kept_words, make_tagger
from hiw.data.sequences import MotionSequence
from hiw.data.splits import SPLITS
from hiw.export.common import ExportFormat, ExportRun, ExportSummary, run_export, save_npy, stats_arrays


def text_lines(tagger: Tagger, captions: list[str]) -> list[str]:
    """``caption#word/POS word/POS ...#0.0#0.0`` per caption (the whole sequence: start and end 0)."""
    return [
        f"{c}#{' '.join(f'{w}/{p}' for w, p, _ in words)}#0.0#0.0" for c, words in zip(captions, kept_words(tagger, captions))
    ]


class HumanML3DFormat(ExportFormat):
    name = "humanml3d"

    def __init__(self, tagger: Tagger):
        self.tagger = tagger

    def features_path(self, folder: Path, clip_id: str) -> Path:
        return folder / "new_joint_vecs" / f"{clip_id}.npy"

    def write_clip(self, run: ExportRun, seq: MotionSequence, split: str) -> None:
        save_npy(self.features_path(run.folder, seq.clip_id), seq.features.astype(np.float32))
        lines = text_lines(self.tagger, [caption.text for caption in run.captions[seq.clip_id]])
        path = run.folder / "texts" / f"{seq.clip_id}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")

    def finish(self, run: ExportRun) -> dict[str, Any]:
        for split in SPLITS:
            _write_ids(run.folder / f"{split}.txt", run.ids(split))
        _write_ids(run.folder / "all.txt", run.ids())
        mean, std = stats_arrays(run)
        np.save(run.folder / "Mean.npy", mean)
        np.save(run.folder / "Std.npy", std)
        return {"files": {"motions": "new_joint_vecs/<id>.npy", "texts": "texts/<id>.txt"}, "pos_tagger": self.tagger.version}


def _write_ids(path: Path, ids: list[str]) -> None:
    path.write_text("".join(f"{i}\n" for i in ids))


def export_humanml3d(con: duckdb.DuckDBPyConnection, out: Path, **options: Any) -> ExportSummary:
    """The HumanML3D layout at ``out`` (``run_export``'s keywords: splits, progress, dataset_version, min_frames)."""
    return run_export(con, out, HumanML3DFormat(make_tagger()), **options)
