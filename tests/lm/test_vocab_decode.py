"""The motion vocabulary's layout, token strings through a real tokenizer, the repair rules and the decoding
constraint."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from hiw.lm.decode import allowed_tokens, read_motion
from hiw.lm.model import add_motion_vocab, from_weights, init_base, load_base
from hiw.lm.vocab import MotionVocab

SHIFT_STREAM = ("left-traj", "left-pose", "right-traj", "right-pose")
K = 8
VOCAB = MotionVocab(K, SHIFT_STREAM)


def test_the_layout_is_the_authors_trajectory_then_pose_then_start_end_mask():
    paper = MotionVocab(4096, SHIFT_STREAM)
    assert paper.size == 8195 and (paper.start, paper.end, paper.mask) == (8192, 8193, 8194)
    assert [paper.offset(s) for s in range(4)] == [0, 4096, 0, 4096]
    assert paper.tokens()[0] == "<motion_id_0>" and paper.tokens()[-1] == "<motion_id_8194>"
    codes = np.array([[1, 2, 3, 4], [5, 6, 7, 0]])
    assert VOCAB.encode(codes) == [16, 1, 10, 3, 12, 5, 14, 7, 8, 17]
    assert VOCAB.string([16, 1, 17]) == "<motion_id_16><motion_id_1><motion_id_17>"


def test_a_missing_hand_is_the_mask_token_and_comes_back_missing():
    codes = np.array([[1, 2, 3, 4], [5, 6, 7, 0]])
    valid = np.array([[True, False], [True, True]])
    ids = VOCAB.encode(codes, valid)
    assert ids[3:5] == [VOCAB.mask, VOCAB.mask]
    back = read_motion([100 + i for i in ids], VOCAB, 100, Counter())
    assert back.step_valid.tolist() == valid.tolist()
    assert back.codes[:, :2].tolist() == codes[:, :2].tolist() and back.codes[1].tolist() == codes[1].tolist()


@pytest.fixture(scope="module")
def tokenizer_and_model(tmp_path_factory):
    folder = init_base(tmp_path_factory.mktemp("t5") / "base", "tiny", ["the right hand waves", "both hands tap the table"] * 20)
    model, tokenizer = load_base(folder)
    base = add_motion_vocab(model, tokenizer, VOCAB)
    return tokenizer, model, base


def test_token_strings_round_trip_through_the_trained_tokenizer(tokenizer_and_model):
    tokenizer, model, base = tokenizer_and_model
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)
    rng = np.random.default_rng(0)
    codes = rng.integers(0, K, (9, 4))
    valid = rng.random((9, 2)) > 0.2
    text = "Generate text: " + VOCAB.string(VOCAB.encode(codes, valid))
    ids = tokenizer(text).input_ids
    back = read_motion(ids, VOCAB, base, counts := Counter())
    assert not counts, counts
    assert back.step_valid.tolist() == valid.tolist()
    for hand, slots in ((0, [0, 1]), (1, [2, 3])):
        rows = valid[:, hand]
        assert back.codes[rows][:, slots].tolist() == codes[rows][:, slots].tolist()
    # adding the vocabulary again (a later phase) finds it in place
    assert add_motion_vocab(model, tokenizer, VOCAB) == base


def test_a_tokenizer_with_another_motion_vocabulary_is_refused(tokenizer_and_model):
    tokenizer, model, _ = tokenizer_and_model
    from hiw.errors import ConfigError

    with pytest.raises(ConfigError, match="do not match"):
        add_motion_vocab(model, tokenizer, MotionVocab(4, SHIFT_STREAM))


BASE = 1000
S, E, M = BASE + VOCAB.start, BASE + VOCAB.end, BASE + VOCAB.mask
TEXT = 5  # any non-motion token


def _ids(*rows):
    return [BASE + c for row in rows for c in row]


@pytest.mark.parametrize(
    "ids, codes, valid, counted",
    [
        ([S, *_ids([1, 9, 2, 10]), E], [[1, 1, 2, 2]], [[1, 1]], {}),  # well formed
        (_ids([1, 9, 2, 10]) + [E], [[1, 1, 2, 2]], [[1, 1]], {"no_start": 1}),
        ([S, *_ids([1, 9, 2, 10])], [[1, 1, 2, 2]], [[1, 1]], {"no_end": 1}),
        ([S, BASE + 1, TEXT, *_ids([9, 2, 10]), E], [[1, 1, 2, 2]], [[1, 1]], {"text_in_motion": 1}),
        ([S, *_ids([1, 9, 2, 10, 3]), E], [[1, 1, 2, 2]], [[1, 1]], {"partial_step": 1}),
        # a pose code in a trajectory slot holds the slot's previous code; at the first step, the next one
        ([S, *_ids([1, 9, 2, 10], [12, 11, 4, 12]), E], [[1, 1, 2, 2], [1, 3, 4, 4]], [[1, 1], [1, 1]], {"wrong_range": 1}),
        ([S, *_ids([12, 9, 2, 10], [3, 11, 4, 12]), E], [[3, 1, 2, 2], [3, 3, 4, 4]], [[1, 1], [1, 1]], {"wrong_range": 1}),
        ([S, *_ids([1, 9]), M, M, E], [[1, 1, 0, 0]], [[1, 0]], {}),  # the mask token: that hand is absent
    ],
)
def test_repair_rules(ids, codes, valid, counted):
    counts = Counter()
    out = read_motion(ids, VOCAB, BASE, counts)
    assert out.codes.tolist() == codes and out.step_valid.astype(int).tolist() == valid
    assert dict(counts) == counted


@pytest.mark.parametrize("ids", [[S, E], [TEXT, TEXT], [S, *_ids([1, 9]), E], [S, M, M, M, M, E]])
def test_an_empty_stream_makes_nothing_and_is_counted(ids):
    counts = Counter()
    assert read_motion(ids, VOCAB, BASE, counts) is None and counts["empty"] == 1


def test_the_constraint_allows_only_well_formed_streams():
    allowed = allowed_tokens(VOCAB, BASE, eos=1, pad=0, max_steps=2)

    def step(*generated):
        return set(allowed(0, torch.tensor([0, *generated])))

    assert step() == {S}
    trajectory = {BASE + c for c in range(K)} | {M}
    pose = {BASE + K + c for c in range(K)} | {M}
    assert step(S) == trajectory  # no end before a whole step
    assert step(S, BASE + 1) == pose
    assert step(S, *_ids([1, 9, 2, 10])) == trajectory | {E}
    assert step(S, *_ids([1, 9, 2, 10], [1, 9, 2, 10])) == {E}  # max_steps reached
    assert step(S, *_ids([1, 9, 2, 10]), E) == {1} and step(S, E, 1) == {0}


def test_a_base_with_its_own_output_layer_keeps_it_through_a_checkpoint(tmp_path):
    """flan-t5's layout: an output layer apart from the embeddings, which transformers 5 would tie on construction."""
    model, tokenizer = load_base(init_base(tmp_path / "tiny", "tiny", ["the right hand waves", "both hands open"] * 20))
    model.lm_head.weight = torch.nn.Parameter(torch.randn_like(model.shared.weight) * 0.05)
    model.config.tie_word_embeddings = False
    model.save_pretrained(tmp_path / "flan-like")
    tokenizer.save_pretrained(tmp_path / "flan-like")
    base, _ = load_base(tmp_path / "flan-like")
    assert not torch.equal(base.lm_head.weight, base.shared.weight)
    restored = from_weights(base.config.to_dict(), base.state_dict())  # how a later phase and generation load it
    assert torch.equal(restored.lm_head.weight, base.lm_head.weight) and torch.equal(restored.shared.weight, base.shared.weight)
