"""Export in the HumanML3D folder layout, so text-to-motion code written for it (T2M, MotionGPT, MoMask-style
loaders) reads hand motion with only its feature size changed to 198::

    out/new_joint_vecs/<id>.npy   (T, 198) float32, the paper's features at 15 fps (zeros where a hand is missing)
    out/texts/<id>.txt            one caption a line: ``caption#word/POS word/POS ...#0.0#0.0`` (whole sequence)
    out/train.txt, val.txt, test.txt, all.txt   ids, one a line
    out/Mean.npy, out/Std.npy     (198,) float32 over valid frames of the train split
    out/meta.json                 hiw's own record (fps, layout, counts, versions); loaders ignore it

HumanML3D tags its captions with spaCy (lemmas of nouns and verbs, non-alphabetic words dropped). No spaCy
model can be installed here, so ``tag`` is a small deterministic stand-in: closed-class word lists, the
caption's own verbs and the vocabulary's verbs as VERB, a few inflection rules, NOUN otherwise. It is right on
the plain "subject verbs object" sentences hiw's captions are made of and will mis-tag unusual syntax; the
tokens only feed the word-vector features of T2M-style evaluators.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import simplemma

from hiw.data.sequences import MotionSequence
from hiw.data.splits import SPLITS
from hiw.export.common import ExportFormat, ExportRun, ExportSummary, Progress, run_export, save_npy, stats_arrays

_CLOSED = {  # a word in two lists takes the first ("her": DET); "to" is ADP unless a verb follows
    "DET": "a an the this that these those each every some any no another both all either neither his her its their my your our",
    "PRON": "it they them he him she i we us you me itself themselves himself herself something someone somebody anything "
    "everything nothing one",
    "ADP": "of in on into onto from with at by for under over inside near beside across through towards toward around "
    "behind above below between against along without upon within about like via per off out up down",
    "AUX": "is are was were be been being am has have had do does did can could will would shall should may might must",
    "CCONJ": "and or but nor yet",
    "SCONJ": "as while because if when before after until though although whereas whether than",
    "PART": "not",
    "NUM": "zero two three four five six seven eight nine ten eleven twelve twenty hundred",
    "ADV": "only then again also very still just too once twice here there now away back together apart slightly almost",
    "ADJ": "left right visible invisible slow fast quick small large big long short high low open closed other same "
    "different whole full empty",
}
_TAGS = {word: pos for pos, words in reversed(_CLOSED.items()) for word in words.split()}  # the first list wins
_ADJ_SUFFIXES = ("ful", "ous", "less")


def _lemma(word: str) -> str:
    return simplemma.lemmatize(word, lang="en").lower()


def tag(text: str, verbs: set[str] = frozenset()) -> list[tuple[str, str]]:
    """Alphabetic words of ``text`` as (word, POS), nouns and verbs lemmatised as HumanML3D does.

    ``verbs``: lemmas known to be verbs here (the caption's own verbs, the vocabulary's).
    """
    stripped = (w.strip(".,;:!?\"'()[]") for w in text.replace("-", "").lower().split())
    words = [w for w in stripped if w.isalpha()]
    out: list[tuple[str, str]] = []
    for i, word in enumerate(words):
        lemma, prev = _lemma(word), out[-1][1] if out else None
        if lemma in verbs and word not in ("left", "right"):
            pos = "VERB"
        elif word == "to":
            pos = "PART" if i + 1 < len(words) and _lemma(words[i + 1]) in verbs else "ADP"
        elif word in _TAGS:
            pos = _TAGS[word]
        elif word.endswith("ly") and len(word) > 4:
            pos = "ADV"
        elif lemma != word and (
            (word.endswith("s") and prev in ("NOUN", "PRON") and (len(out) < 2 or out[-2][1] != "ADP"))  # "the hand moves"
            or (word.endswith("s") and prev == "CCONJ" and any(p == "VERB" for _, p in out))  # "moves and closes"
            or word.endswith("ing")  # "as if grasping"
            or (prev == "AUX" and word.endswith("ed"))  # "is lifted"
        ):
            pos = "VERB"
        elif word.endswith(_ADJ_SUFFIXES):
            pos = "ADJ"
        else:
            pos = "NOUN"
        out.append((lemma if pos in ("NOUN", "VERB") else word, pos))
    return out


def text_line(text: str, verbs: set[str]) -> str:
    tokens = " ".join(f"{w}/{p}" for w, p in tag(text, verbs))
    return f"{text}#{tokens}#0.0#0.0"


class HumanML3DFormat(ExportFormat):
    name = "humanml3d"

    def __init__(self, vocabulary_verbs: set[str]):
        self.vocabulary_verbs = vocabulary_verbs

    def features_path(self, folder: Path, clip_id: str) -> Path:
        return folder / "new_joint_vecs" / f"{clip_id}.npy"

    def write_clip(self, run: ExportRun, seq: MotionSequence, split: str) -> None:
        save_npy(self.features_path(run.folder, seq.clip_id), seq.features.astype(np.float32))
        lines = []
        for caption in run.captions[seq.clip_id]:
            verbs = self.vocabulary_verbs | {_lemma(v.split()[0]) for v in caption.verbs if v.strip()}
            lines.append(text_line(caption.text, verbs))
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
        return {"files": {"motions": "new_joint_vecs/<id>.npy", "texts": "texts/<id>.txt"}, "pos_tagger": "hiw rule-based"}


def _write_ids(path: Path, ids: list[str]) -> None:
    path.write_text("".join(f"{i}\n" for i in ids))


def export_humanml3d(
    con: duckdb.DuckDBPyConnection,
    out: Path,
    *,
    splits: pa.Table | None = None,
    progress: Progress | None = None,
    dataset_version: str | None = None,
    min_frames: int = 1,
) -> ExportSummary:
    """Write the accepted clips of ``splits`` (default: ``dataset_splits(con)``) in the HumanML3D layout at ``out``."""
    rows = con.sql("SELECT word, canonical FROM vocabulary WHERE kind = 'verb'").fetchall()
    verbs = {_lemma(w.split()[0]) for row in rows for w in row if w and w.strip()}
    return run_export(con, out, HumanML3DFormat(verbs), splits, progress, dataset_version, min_frames)
