"""hiw's own trainer layout: the paper's 198 features per frame as one .npy per clip, with the hand masks that the
authors' layout (``--format clutch``) and HumanML3D's cannot carry. For a trainer of your own::

    out/motions/<clip_id>.npy   (T, 198) float32, 15 fps, zeros where a hand is missing (PAPER.md section 2)
    out/masks/<clip_id>.npy     (T, 2) bool, left and right hand valid
    out/captions.json           {clip_id: [caption, ...]} best first: QA-passed closed_vocab, pcot_summary, then
                                narration, then kinematic
    out/splits.json             {"train": [...], "val": [...], "test": [...]}, a clip's split is its video's
    out/mean.npy, out/std.npy   (198,) float32 over valid frames of the train split (std floored, hiw.data.stats)
    out/meta.json               fps, feature layout, counts, dataset_version, code_version; written last

Windows of 144 frames, truncation and zero padding are the trainer's business: clips are exported whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from hiw.data.sequences import MotionSequence
from hiw.data.splits import SPLITS
from hiw.export.common import ExportFormat, ExportRun, ExportSummary, run_export, save_npy, stats_arrays, write_json


class NpyFormat(ExportFormat):
    name = "npy"

    def features_path(self, folder: Path, clip_id: str) -> Path:
        return folder / "motions" / f"{clip_id}.npy"

    def write_clip(self, run: ExportRun, seq: MotionSequence, split: str) -> None:
        save_npy(self.features_path(run.folder, seq.clip_id), seq.features.astype(np.float32))
        save_npy(run.folder / "masks" / f"{seq.clip_id}.npy", seq.mask.astype(bool))

    def finish(self, run: ExportRun) -> dict[str, Any]:
        write_json(run.folder / "captions.json", {c: [cap.text for cap in run.captions[c]] for c in run.ids()})
        write_json(run.folder / "splits.json", {s: run.ids(s) for s in SPLITS})
        mean, std = stats_arrays(run)
        np.save(run.folder / "mean.npy", mean)
        np.save(run.folder / "std.npy", std)
        return {"files": {"motions": "motions/<clip_id>.npy", "masks": "masks/<clip_id>.npy", "captions": "captions.json"}}


def export_npy(con: duckdb.DuckDBPyConnection, out: Path, **options: Any) -> ExportSummary:
    """hiw's npy layout at ``out`` (``run_export``'s keywords: splits, progress, dataset_version, min_frames)."""
    return run_export(con, out, NpyFormat(), **options)
