"""The evaluator's encoders, its contrastive loss and negatives, and generations written and read back as data."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from hiw.data.sequences import procedural_sequences
from hiw.data.sources import DataSource
from hiw.data.stats import compute_stats
from hiw.errors import ConfigError
from hiw.eval import runs
from hiw.eval.checkpoint import load_evaluator
from hiw.eval.data import EvalClip, motion_batch
from hiw.eval.evaluator import PRESETS, Evaluator, EvaluatorConfig
from hiw.eval.generations import motion_records, read_motion_generations
from hiw.eval.text import load_text_processor
from hiw.eval.train import _Indexed, contrastive_loss
from hiw.schemas import GenerationRecord, to_table
from tests.eval.test_word_vectors import write_glove


@pytest.fixture(scope="module")
def processor():
    return load_text_processor(tagger="rules")


@pytest.fixture(scope="module")
def sequences():
    return procedural_sequences(12, seed=3)


def _model(processor) -> Evaluator:
    torch.manual_seed(0)
    return Evaluator(EvaluatorConfig(word_size=processor.vectors.dim, **PRESETS["tiny"])).eval()


def test_motion_embedding_ignores_padding(processor, sequences):
    """Packed by length: a clip's embedding is the same in a 144-frame window as in a 64-frame one (the authors'
    encoder runs its GRU over the padding, so theirs would differ)."""
    model, stats = _model(processor), compute_stats(sequences, "x")
    seq = next(s for s in sequences if s.n_frames >= 64)
    short = seq.__class__(seq.clip_id, seq.features[:60], seq.mask[:60], seq.rest, seq.origin)
    with torch.no_grad():
        wide = model.motion(*(torch.from_numpy(a) for a in motion_batch([short], stats, window=144)))
        narrow = model.motion(*(torch.from_numpy(a) for a in motion_batch([short], stats, window=64)))
        longer = model.motion(*(torch.from_numpy(a) for a in motion_batch([seq], stats, window=144)))
    assert torch.allclose(wide, narrow, atol=1e-5)
    assert not torch.allclose(wide, longer, atol=1e-3)  # the frames after 60 do count when they are real


def test_text_embedding_ignores_padding_and_sees_words(processor):
    model = _model(processor)
    batch = processor.encode(["the right hand slowly opens", "the left hand closes into a fist"])
    with torch.no_grad():
        full = model.text(*(torch.from_numpy(a) for a in (batch.word_embs, batch.pos_onehot, batch.lengths)))
        cut = model.text(
            *(torch.from_numpy(a[:, :9]) for a in (batch.word_embs, batch.pos_onehot)), torch.from_numpy(batch.lengths)
        )
    assert batch.lengths.tolist() == [7, 9]  # sos + words + eos
    assert torch.allclose(full, cut, atol=1e-5)
    assert not torch.allclose(full[0], full[1], atol=1e-3)


def test_contrastive_loss_by_hand():
    text = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    motion = torch.zeros(2, 2)
    negatives = torch.tensor([[False, True], [True, False]])
    loss, terms = contrastive_loss(text, motion, negatives, margin=10.0)
    # distances [[0, 0], [5, 5]]: positives 0 and 5 -> (0 + 25) / 2; negatives 0 and 5 -> ((10-0)^2 + (10-5)^2) / 2
    assert float(loss) == pytest.approx(12.5 + 62.5)
    assert terms["positive_dist"] == pytest.approx(2.5) and terms["negative_dist"] == pytest.approx(2.5)
    far = contrastive_loss(torch.tensor([[0.0, 0.0], [30.0, 40.0]]), torch.tensor([[0.0, 0.0], [30.0, 40.0]]), negatives, 10.0)
    assert float(far[0]) == 0.0 and far[1]["batch_top1"] == 1.0  # matched pairs at 0, others beyond the margin


def test_negatives_skip_own_captions_and_prefer_other_verbs(processor, sequences):
    captions = [
        ("the right hand opens",),
        ("the right hand opens", "the right hand opens up"),  # shares a caption with clip 0
        ("the left hand opens slowly",),  # same verb as clips 0 and 1
        ("both hands wave",),  # another verb
    ]
    clips = [
        EvalClip(f"c{i}", sequences[i], texts, frozenset().union(*processor.verbs(list(texts))))
        for i, texts in enumerate(captions)
    ]
    indexed = _Indexed(clips, processor)
    picked = np.arange(4)
    negatives = indexed.negatives(
        picked, ["the right hand opens", "the right hand opens", "the left hand opens slowly", "both hands wave"]
    )
    assert not negatives.diagonal().any()
    assert not negatives[0, 1] and not negatives[1, 0]  # the same caption belongs to both clips
    assert negatives[0].tolist() == [False, False, False, True]  # "wave" has no verb in common with "open"
    assert negatives[3].tolist() == [True, True, True, False]
    batch = indexed.batch(np.random.default_rng(0), 4, compute_stats(sequences, "x"), torch.device("cpu"))
    assert batch["words"].shape[:2] == (4, 42) and batch["features"].shape == (4, 144, 198)


def test_generations_round_trip_and_bad_rows_are_recorded(processor, sequences, tmp_path):
    """Motion written in the motion table's columns reads back as the same features; bad rows are counted."""
    items = [(s.clip_id, None, 0, s) for s in sequences[:4]] + [(None, "both hands wave", 0, sequences[4])]
    records = motion_records("test-gen", {"note": "unit test"}, items)
    rows = to_table(GenerationRecord, records).to_pylist()
    bad_nan = dict(rows[0], generation_id="bad", clip_id=sequences[5].clip_id)
    bad_nan["left_transl"] = np.full_like(np.asarray(rows[0]["left_transl"], float), np.nan).tolist()
    extra = [
        bad_nan,
        dict(rows[1], generation_id="x1", clip_id="c_not_in_split"),
        dict(rows[1], generation_id="x2", clip_id=None, text=None),
        dict(rows[1], generation_id="x3", clip_id=None, text="?!"),
        dict(rows[2], generation_id="x4", fps=30.0),
    ]
    path = tmp_path / "gen.parquet"
    pq.write_table(pa.Table.from_pylist(rows + extra, schema=to_table(GenerationRecord, records).schema), path)
    split = {s.clip_id for s in sequences}
    got = read_motion_generations(path, split, processor, fps=15.0)
    assert got.generator == "test-gen" and got.lineage == {"note": "unit test"}
    assert got.rejected == Counter(nan=1, clip_not_in_split=1, no_prompt=1, empty_caption=1, fps_mismatch=1)
    assert [g.clip_id for g in got.items] == [s.clip_id for s in sequences[:4]] + [None]
    for original, generated in zip(sequences[:5], got.items):
        assert np.allclose(generated.motion.features, original.features, atol=1e-4)
        assert (generated.motion.mask == original.mask).all()


def test_an_evaluator_on_glove_files_records_them_and_refuses_them_changed(tmp_path):
    """--word-vectors DIR end to end: trained, loaded back from any folder, refused once the files change."""

    words = ["unk", "sos", "eos", "the", "right", "left", "hand", "both", "hands", "open", "close", "wave", "tap", "reach"]
    glove = write_glove(tmp_path / "glove", words)
    run = tmp_path / "run"
    settings = runs.train_settings("tiny", steps=3, batch=8)
    runs.train_run(run, DataSource.parse("procedural", 60, 0), "tiny", settings, word_vectors=str(glove), tagger="rules")
    loaded = load_evaluator(run)
    assert loaded.state["text"]["word_vectors_spec"] == str(glove.resolve()) and loaded.processor.vectors.dim == 300
    assert loaded.embed_texts(["the right hand waves"]).shape == (1, 128)
    write_glove(glove, words, data=np.ones((len(words), 300), np.float32))
    with pytest.raises(ConfigError, match="trained with other text processing"):
        load_evaluator(run)
