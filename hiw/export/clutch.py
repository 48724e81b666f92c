"""Export in the CLUTCH authors' own layout (CLUTCH_CODE.md section 1, checklist in section 6): their released loader
and stage configs train on an hiw dataset once the ``DATASET`` keys of ``clutch_dataset.yaml`` are merged into a
stage config (dataset paths and split sizes; nothing else changes)::

    out/hawor_recon/<video_id>/<clip_id>/mano_smoothened_w_gaus_tr_sig2_rotated_180.npy
        np.save'd dict of torch float32 tensors, hand index 0 = left, 1 = right: pred_trans (2, T, 3) MANO transl,
        pred_rot (2, T, 3) and pred_hand_pose (2, T, 15, 3) axis-angle, pred_valid (2, T) bool (hiw's hand masks;
        their loader ignores it, ``hiw build --tracker precomputed`` reads it back)
    out/VLM_annotations/<video_id>/<clip_id>/<kind>.json      {"summary": caption}, one per caption kind the clip has,
        and the two files their LM configs read (SLOTS)
    out/splits.json              {"train": [{"hawor_recon_file": ABSOLUTE path}, ...], "val": [...], "test": [...]}
    out/mean_std.npy             {"mean", "std"}: torch (1, 1, 198) over the train split's valid frames, their layout
    out/template_*.json          hiw's task templates in their format and placeholders (TEMPLATE_FILES)
    out/tokens/<name>/npy/<clip_id>.npy   with ``tokens``: SHIFT codes, int64 (1, L), their stream order
    out/clutch_dataset.yaml      the DATASET keys; out/meta.json, written last

Frames: their loader drops the first and last frame and keeps every second one (``uniform_sampling``, factor 2). A
clip of n frames at 15 fps is written as T = 2n + 1 frames at 30 fps, each frame twice, then the last once more,
so the loader returns hiw's n frames exactly; so does ``hiw build --tracker precomputed``, which reads these files as
their loader does (first and last frame dropped, then 30 fps resampled to 15).
Their loader keeps at most ``max_frames`` = 144 of them (9.6 s): longer clips are cut there (counted in meta.json).

Where a hand is missing: rotations are zero (identity; their 6D feature is the identity's, where hiw's is zeros) and
the translation is hiw's origin (the same zero relative position hiw's features hold), except on the first frame,
where a missing hand is placed opposite the other one about the origin: their loader shifts translations by the
midpoint of both hands' first frame, and this makes that midpoint hiw's origin, so every valid frame's relative wrist
position comes out as hiw's.

Tokens: per 4-frame step ``[right-traj, right-pose + K, left-traj, left-pose + K]`` (their first hand is the right
one), over the clip's whole steps up to 144 frames, as their ``extract_codes.py`` writes them. Their config's
``code_num`` must then be 2K for hiw's K codes per codebook. A step where a hand is missing carries the code hiw's
encoder gives its masked input (their vocabulary has no "absent" code).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import roma
import torch
import yaml

from hiw.data.captions import FALLBACK, PREFERRED
from hiw.data.sequences import MotionSequence
from hiw.data.splits import SPLITS
from hiw.errors import ConfigError
from hiw.export.common import ExportFormat, ExportRun, ExportSummary, run_export, stats_arrays, write_json
from hiw.lm.tasks import load_templates
from hiw.motion.features import HAND_FEATURES, canonical_origin, hand_features, hand_params
from hiw.pickles import load_npy
from hiw.schemas import HANDS

RECON_FILE = "mano_smoothened_w_gaus_tr_sig2_rotated_180.npy"  # their configs' dict_file_to_load
INDEX_FILE = "splits.json"
NORM_FILE = "mean_std.npy"  # their loader normalises only when the name holds "mean_std"
MAX_FRAMES = 144
MIN_PER_SPLIT = 2  # their loader asserts len([start, end]) <= len(entries) for every split in seqs_split
# their two caption files (stage 2-4 configs, ann_sample_probs 0.5 / 0.5) hold hiw's draw (hiw.data.captions):
# each prefers one of the two VLM kinds, so a clip with both gets each half the time, as hiw's models draw them
SLOTS = {
    "vila_cpot_cls_summ.json": (PREFERRED[0], PREFERRED[1], *FALLBACK),
    "naive_claude_summary.json": (PREFERRED[1], PREFERRED[0], *FALLBACK),
}
# hiw template set -> their file names (stage 2/3, stage 4; template_pretrain.json is read by their validation)
TEMPLATE_FILES = {
    "template_pretrain.json": "pretrain",
    "template_pretrain_w_hand_2_hand_w_text.json": "pretrain",
    "template_instructions_hand_motion.json": "instruct",
}
GROUPS = {"t2m": "Text-to-Motion", "h2h": "Text-to-Motion", "m2t": "Motion-to-Text", "t2t": "Text-to-Text"}
PLACEHOLDERS = {  # hiw template field -> theirs (CLUTCH_CODE.md 2.4); t2t's other caption becomes the caption itself
    "caption": "<Caption_Placeholder>",
    "other_caption": "<Caption_Placeholder>",
    "motion": "<Motion_Placeholder>",
    "src_hand": "<src_hand>",
    "trg_hand": "<trg_hand>",
    "src_motion": "<Motion_Placeholder_src_hand>",
    "trg_motion": "<Motion_Placeholder_trg_hand>",
    "masked_motion": "<Motion_Placeholder_masked_hand>",
}


def raw_frames(n: int) -> np.ndarray:
    """Which hiw frame each of the 2n + 1 written frames holds."""
    return np.minimum(np.arange(2 * n + 1) // 2, n - 1)


def loader_frames(t: int) -> np.ndarray:
    """Which of t written frames their loader keeps (drop the first and last, then every second one), before its
    cut at ``MAX_FRAMES``."""
    return np.arange(1, t - 1, 2)


def recon_arrays(seq: MotionSequence) -> dict[str, torch.Tensor]:
    """A clip as their reconstruction dict (see the module docstring for missing hands and frames)."""
    n, origin = seq.n_frames, np.asarray(seq.origin, np.float32)
    rotvecs, transl = np.zeros((2, n, 16, 3), np.float32), np.zeros((2, n, 3), np.float32)
    for h in range(len(HANDS)):
        rot, rel = hand_params(torch.from_numpy(seq.features[:, h * HAND_FEATURES : (h + 1) * HAND_FEATURES]))
        rotvecs[h] = roma.rotmat_to_rotvec(rot).numpy()
        transl[h] = rel.numpy()  # relative to the origin; zero where the hand is missing
    valid = seq.mask.T.copy()
    rotvecs[~valid] = 0.0
    for h in range(len(HANDS)):
        if not valid[h, 0]:
            transl[h, 0] = -transl[1 - h, 0] if valid[1 - h, 0] else 0.0
    frames = raw_frames(n)
    return {
        "pred_trans": torch.from_numpy(transl[:, frames] + origin),
        "pred_rot": torch.from_numpy(rotvecs[:, frames, 0]),
        "pred_hand_pose": torch.from_numpy(np.ascontiguousarray(rotvecs[:, frames, 1:])),
        "pred_valid": torch.from_numpy(valid[:, frames]),
    }


def recon_features(data: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """A written reconstruction dict back to hiw's (n, 198) features and (n, 2) mask (the frames their loader keeps)."""
    arrays = {k: torch.as_tensor(v) for k, v in data.items()}
    keep = loader_frames(arrays["pred_trans"].shape[1])
    valid = dict(zip(HANDS, arrays["pred_valid"][:, keep].numpy().astype(bool)))
    transl = dict(zip(HANDS, arrays["pred_trans"][:, keep].float().numpy()))
    origin = canonical_origin(transl, valid)
    parts = []
    for h, side in enumerate(HANDS):
        axis_angle = torch.cat([arrays["pred_rot"][h, keep, None], arrays["pred_hand_pose"][h, keep]], dim=1).float()
        feats = hand_features(roma.rotvec_to_rotmat(axis_angle).numpy(), transl[side] - origin)
        feats[~valid[side]] = 0.0
        parts.append(feats)
    return np.concatenate(parts, axis=1).astype(np.float32), np.stack([valid[s] for s in HANDS], axis=1)


def their_templates(name: str) -> dict[str, dict[str, dict]]:
    """An hiw template set in their shape: ``{group: {task: {"class", "input", "output"}}}``."""
    out: dict[str, dict[str, dict]] = {}
    for task, t in load_templates(name).tasks.items():
        patterns = {side: [p.format_map(PLACEHOLDERS) for p in getattr(t, side + "s")] for side in ("input", "output")}
        out.setdefault(GROUPS[task], {})[task] = {"class": task, **patterns}
    return out


class ClutchFormat(ExportFormat):
    name = "clutch"

    def __init__(self, out: Path, tokens: Path | None = None):
        self.out = Path(out).resolve()  # where the folder will be published: the index holds absolute paths
        self.tokenizer = None
        self.truncated = 0  # clips longer than their loader keeps
        self._recon: dict[str, Path] = {}  # clip_id -> its reconstruction file, relative to the export folder
        if tokens is not None:
            from hiw.models.shift_checkpoint import load_tokenizer

            self.tokenizer = load_tokenizer(tokens)
            if (variant := self.tokenizer.model.config.variant) != "shift":
                raise ConfigError(f"--tokens needs a SHIFT tokenizer (variant shift); {tokens} is {variant}")
            self.code_path = f"tokens/{self.tokenizer.codebook_id}/npy"

    def _clip_dir(self, run: ExportRun, clip_id: str) -> Path:
        return Path("hawor_recon") / run.videos[clip_id] / clip_id

    def features_path(self, folder: Path, clip_id: str) -> Path:
        raise NotImplementedError("the clutch layout stores parameters, not features: use read_features")

    def read_features(self, folder: Path, clip_id: str) -> np.ndarray:
        return recon_features(load_npy(folder / self._recon[clip_id]))[0]

    def check_splits(self, counts: dict[str, int]) -> None:
        short = {s: n for s, n in counts.items() if n < MIN_PER_SPLIT}
        if short:
            have = ", ".join(f"{s} has {n}" for s, n in short.items())
            raise ConfigError(
                f"the clutch layout needs at least {MIN_PER_SPLIT} clips in every split, or the authors' loader fails "
                f"({have}); export more clips, or give --fractions that leave each split {MIN_PER_SPLIT}"
            )

    def write_clip(self, run: ExportRun, seq: MotionSequence, split: str) -> None:
        folder = self._clip_dir(run, seq.clip_id)
        (run.folder / folder).mkdir(parents=True, exist_ok=True)
        self._recon[seq.clip_id] = folder / RECON_FILE
        np.save(run.folder / folder / RECON_FILE, recon_arrays(seq), allow_pickle=True)  # type: ignore[arg-type]
        self.truncated += seq.n_frames > MAX_FRAMES
        captions = run.captions[seq.clip_id]
        notes = run.folder / "VLM_annotations" / folder.relative_to("hawor_recon")
        notes.mkdir(parents=True, exist_ok=True)
        by_kind: dict[str, str] = {}
        for caption in captions:
            by_kind.setdefault(caption.kind, caption.text)
        files = {f"{kind}.json": text for kind, text in by_kind.items()}
        for slot, kinds in SLOTS.items():
            files[slot] = next((by_kind[k] for k in kinds if k in by_kind), captions[0].text)
        for name, text in files.items():
            write_json(notes / name, {"summary": text})
        if self.tokenizer is not None:
            self._write_tokens(run, seq)

    def _write_tokens(self, run: ExportRun, seq: MotionSequence) -> None:
        from hiw.models import codec

        loaded = self.tokenizer
        step, k = loaded.model.step, loaded.model.config.codebook_size
        ((codes, _),) = codec.encode(loaded.model, loaded.stats, [seq])
        steps = min(seq.n_frames, MAX_FRAMES) // step
        left_traj, left_pose, right_traj, right_pose = codes[:steps].T  # hiw's stream: left-traj, left-pose, right-...
        theirs = np.stack([right_traj, right_pose + k, left_traj, left_pose + k], axis=1).reshape(1, -1).astype(np.int64)
        path = run.folder / self.code_path / f"{seq.clip_id}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, theirs)

    def finish(self, run: ExportRun) -> dict[str, Any]:
        index = {s: [{"hawor_recon_file": str(self.out / self._recon[c])} for c in run.ids(s)] for s in SPLITS}
        write_json(run.folder / INDEX_FILE, index)
        mean, std = stats_arrays(run)
        swap = np.r_[HAND_FEATURES : 2 * HAND_FEATURES, 0:HAND_FEATURES]  # their 198 put the right hand first
        norm = {key: torch.from_numpy(a[swap].reshape(1, 1, -1).copy()) for key, a in (("mean", mean), ("std", std))}
        np.save(run.folder / NORM_FILE, norm, allow_pickle=True)  # type: ignore[arg-type]
        for file, template_set in TEMPLATE_FILES.items():
            write_json(run.folder / file, their_templates(template_set))
        dataset = {
            "dataset_dir": str(self.out),
            "index_file": INDEX_FILE,
            "dict_file_to_load": RECON_FILE,
            "annotation_file_to_load": list(SLOTS),
            "ann_sample_probs": [0.5, 0.5],
            "norm_dict_file_to_load": NORM_FILE,
            "seqs_split": {s: [0, len(index[s])] for s in SPLITS},
            "max_frames": MAX_FRAMES,
            "sampling_type": "uniform_sampling",
            "down_sample": True,
            "down_sample_factor": 2,
            "fps": 15,
            "shift_pos_to_origin": True,
            "egovid5M_to_load": True,
            "GRAB_to_load": False,
        }
        extra: dict[str, Any] = {
            "files": {"recon": f"hawor_recon/<video_id>/<clip_id>/{RECON_FILE}", "index": INDEX_FILE, "norm": NORM_FILE},
            "norm_layout": "their 198: right hand [0, 99), left hand [99, 198); per hand as in features",
        }
        if self.tokenizer is not None:
            dataset["CODE_PATH"] = self.code_path
            extra["tokens"] = {
                "code_path": self.code_path,
                "shift_checkpoint": str(self.tokenizer.path),
                "checkpoint_id": self.tokenizer.checkpoint_id,
                "codebook_size": self.tokenizer.model.config.codebook_size,
                "code_num": 2 * self.tokenizer.model.config.codebook_size,
            }
        header = (
            "# DATASET keys for the CLUTCH authors' stage configs: merge them into a released stage config's DATASET.\n"
            f"# Written by hiw export --format clutch. Their model's code_num must be {self._code_num()}.\n"
        )
        (run.folder / "clutch_dataset.yaml").write_text(header + yaml.safe_dump({"DATASET": dataset}, sort_keys=False))
        extra["clips_beyond_max_frames"] = {"max_frames": MAX_FRAMES, "clips": int(self.truncated)}
        return extra

    def _code_num(self) -> str:
        if self.tokenizer is None:
            return "2 x the codes per codebook of the SHIFT checkpoint whose tokens you train on"
        return str(2 * self.tokenizer.model.config.codebook_size)


def export_clutch(con: duckdb.DuckDBPyConnection, out: Path, *, tokens: Path | None = None, **options: Any) -> ExportSummary:
    """The CLUTCH authors' layout at ``out`` (``run_export``'s keywords: splits, progress, dataset_version,
    min_frames); with ``tokens`` (a SHIFT run folder or checkpoint), their token files too."""
    fmt = ClutchFormat(out, tokens)
    if fmt.tokenizer is not None:  # a clip needs one whole token step
        options["min_frames"] = max(options.get("min_frames", 1), fmt.tokenizer.model.step)
    return run_export(con, out, fmt, **options)
