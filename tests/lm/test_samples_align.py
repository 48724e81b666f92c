"""Training samples (span corruption, templates, caption choice) and the geometric alignment loss, on procedural
clips encoded by a real (randomly initialised, codebook-fitted) SHIFT tokenizer."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from hiw.data.sources import DataSource
from hiw.data.stats import compute_stats
from hiw.lm.align import alignment_loss, temperature
from hiw.lm.data import LMClip, load_lm_set, sample_caption
from hiw.lm.model import add_motion_vocab, init_base, load_base, sentinel_ids
from hiw.lm.samples import IGNORE, SampleMaker, noise_mask, span_corrupt
from hiw.lm.tasks import load_templates
from hiw.lm.vocab import MotionVocab
from hiw.models import shift_train
from hiw.models.shift_checkpoint import LoadedTokenizer
from hiw.models.shift_train import TRAIN_PRESETS
from hiw.models.tokenizer import PRESETS, MotionTokenizer


def test_noise_mask_hides_about_15_percent_in_spans_and_keeps_the_first_token():
    rng = np.random.default_rng(0)
    masks = [noise_mask(100, rng) for _ in range(50)]
    assert all(m.sum() == 15 and not m[0] for m in masks)
    spans = [int(np.sum(np.diff(m.astype(int)) == 1)) for m in masks]
    assert set(spans) == {5}  # 15 hidden tokens / mean span 3


def test_span_corruption_hides_tokens_behind_sentinels_that_the_target_gives_back():
    rng = np.random.default_rng(1)
    ids = list(range(10, 60))
    source, target = span_corrupt(ids, [900, 901, 902, 903, 904, 905], rng)
    # putting each sentinel's span back in place restores the sequence
    spans, current = {}, None
    for t in target:
        if t >= 900:
            current = spans.setdefault(t, [])
        else:
            current.append(t)
    restored = [x for s in source for x in (spans[s] if s >= 900 else [s])]
    assert restored == ids and len(spans) >= 1 and len(source) < len(ids)


def test_captions_are_drawn_as_the_paper_says():
    rng = np.random.default_rng(0)
    both = {"closed_vocab": ("a",), "pcot_summary": ("b",), "narration": ("c",), "kinematic": ("d",)}
    drawn = Counter(sample_caption(both, rng) for _ in range(2000))
    assert set(drawn) == {"a", "b"} and abs(drawn["a"] - 1000) < 100
    assert sample_caption({"narration": ("c",), "kinematic": ("d",)}, rng) == "c"
    assert sample_caption({"kinematic": ("d",)}, rng) == "d"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    sequences = DataSource(kind="procedural", clips=60).load("train")
    stats = compute_stats(sequences, "procedural-test")
    config = PRESETS["tiny"].model_copy(update={"codebook_size": 16})
    settings = TRAIN_PRESETS["tiny"].model_copy(update={"steps": 60, "batch": 16, "checkpoint_every": 60})
    run = tmp_path_factory.mktemp("shift")
    shift_train.train(run, config, settings, sequences, stats, {"fingerprint": "test"}, torch.device("cpu"))
    shift = MotionTokenizer(config)
    shift.load_state_dict(torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["model"])
    shift.eval()
    loaded = LoadedTokenizer(shift, stats, {}, Path("shift.pt"), "k_test", "cb_test")
    clips = load_lm_set(DataSource(kind="procedural", clips=60), "train", loaded)
    vocab = MotionVocab(16, tuple(shift.stream))
    folder = init_base(tmp_path_factory.mktemp("t5") / "base", "tiny", [c for clip in clips.clips for c in clip.all_captions()])
    model, tokenizer = load_base(folder)
    base = add_motion_vocab(model, tokenizer, vocab)
    maker = SampleMaker(tokenizer, vocab, base, load_templates("pretrain"), sentinel_ids(tokenizer), 160)
    return loaded, clips.clips, vocab, model, tokenizer, base, maker


def test_clips_carry_36_steps_of_codes_at_most_and_their_captions(setup):
    _, clips, vocab, *_ = setup
    assert clips and all(1 <= len(c.codes) <= 36 and c.codes.shape[1] == vocab.width for c in clips)
    assert all(len(c.features) == 4 * len(c.codes) and c.captions["label"] for c in clips)


def test_hand_to_hand_samples_agree_on_which_hand_is_the_target(setup):
    _, clips, vocab, _, tokenizer, base, maker = setup
    rng = np.random.default_rng(0)
    two_handed = [c for c in clips if c.step_valid.all(axis=1).any()]
    for clip in two_handed[:10]:
        task, source, target = maker.supervised(clip, "h2h", rng)
        assert task == "h2h"
        trg = "left" if "Generate the left hand" in source or "What does the left hand do" in source else "right"
        hand = 0 if trg == "left" else 1
        assert target == maker.motion(clip, hand=hand)


def test_clips_with_no_tokens_or_no_caption_are_set_aside_and_counted(setup, monkeypatch):
    loaded = setup[0]
    good = DataSource(kind="procedural", clips=60).load("train")[:4]
    short = replace(good[0], clip_id="short", features=good[0].features[:3], mask=good[0].mask[:3])  # < one 4-frame step
    handless = replace(good[1], clip_id="handless", mask=np.zeros_like(good[1].mask))
    silent = replace(good[2], clip_id="silent", text="  ")
    monkeypatch.setattr(DataSource, "load", lambda self, split: [short, handless, silent, good[3]])
    clips = load_lm_set(DataSource(kind="procedural", clips=60), "train", loaded)
    assert [c.clip_id for c in clips.clips] == [good[3].clip_id]
    assert clips.skipped == Counter(too_short=1, all_masked=1, no_caption=1)
    assert clips.describe() == "1 clips kept; skipped: 1 all_masked, 1 no_caption, 1 too_short"


def test_a_caption_longer_than_the_maximum_is_cut_and_counted(setup):
    _, clips, vocab, _, tokenizer, base, maker = setup
    long = LMClip(
        clips[0].clip_id,
        {"label": (" ".join(["wave"] * 400),)},
        *[getattr(clips[0], f) for f in ("codes", "step_valid", "features", "mask", "rest")],
    )
    batch = maker.batch([long, clips[1]], "supervised", ["t2m", "m2t"], np.random.default_rng(0))
    assert batch.input_ids.shape[1] == 160 and maker.counts["truncated_input"] == 1
    assert batch.aligned == [0] and (batch.labels[1] != IGNORE).sum() > 0


def test_alignment_loss_decreases_and_never_touches_the_shift_weights(setup):
    loaded, clips, vocab, model, tokenizer, base, maker = setup
    rng = np.random.default_rng(0)
    batch = maker.batch(clips[:8], "supervised", ["t2m"] * 8, rng)
    before = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    for p in loaded.model.parameters():
        p.requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    losses = []
    model.train()
    for step in range(1, 31):
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels)
        rec, terms = alignment_loss(out.logits, batch, vocab, base, loaded, temperature(step, 30, 1.0, 0.1), 10.0)
        optimizer.zero_grad()
        rec.backward()
        if step == 1:
            assert model.lm_head.weight.grad[base : base + 2 * vocab.codebook_size].abs().sum() > 0
            assert all(p.grad is None for p in loaded.model.parameters())
        optimizer.step()
        losses.append(rec.item())
    assert np.mean(losses[-5:]) < 0.9 * np.mean(losses[:5]), losses
    assert terms["rec_keypoint_mm"] > 0 and terms["tau"] == pytest.approx(0.1)
    after = loaded.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_hand_absent_from_a_clip_leaves_the_alignment_loss_and_its_gradient_finite(setup):
    """F-PHAB's layout: no left hand anywhere, so its rest skeleton is NaN, its slots carry the mask token, and the
    statistics hold a zero mean for it (a degenerate rotation where its features are zero)."""
    loaded, clips, vocab, model, tokenizer, base, maker = setup
    mean = list(loaded.stats.mean)
    mean[:99] = [0.0] * 99
    loaded = replace(loaded, stats=loaded.stats.model_copy(update={"mean": mean}))
    right_only = []
    for clip in clips[:4]:
        rest, mask, step_valid = clip.rest.copy(), clip.mask.copy(), clip.step_valid.copy()
        features = clip.features.copy()
        rest[0], mask[:, 0], step_valid[:, 0], features[:, :99] = np.nan, False, False, 0.0
        right_only.append(replace(clip, rest=rest, mask=mask, step_valid=step_valid, features=features))
    batch = maker.batch(right_only, "supervised", ["t2m"] * 4, np.random.default_rng(0))
    model.zero_grad()
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels)
    rec, terms = alignment_loss(out.logits, batch, vocab, base, loaded, 0.5, 10.0)
    rec.backward()
    assert np.isfinite(rec.item()) and terms["rec_keypoint_mm"] > 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
