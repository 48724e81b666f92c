"""Reading pickles that come from outside without running them.

A pickle names the functions that rebuild its objects, and ``pickle.load`` calls them: loading a hostile file
runs its code. ``unpickle`` admits only plain containers (lists, dicts, strings, numbers) plus the globals a caller
allows, from a short list of constructors that build data and nothing else: numpy arrays and scalars, and torch
tensors. A torch tensor pickled with plain ``pickle`` (as ``np.save`` does for a dict of tensors) carries its storage
as ``torch.save`` bytes, which torch would load with its full unpickler; here they go through ``torch.load`` with
``weights_only=True``, torch's own restricted one.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

NUMPY = frozenset(
    {(module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray") for name in ("_reconstruct", "scalar")}
    | {("numpy", "ndarray"), ("numpy", "dtype")}
)
TORCH = frozenset({("torch._utils", "_rebuild_tensor_v2"), ("torch.storage", "_load_from_bytes"), ("collections", "OrderedDict")})


class _Allowlist(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, allowed: frozenset[tuple[str, str]]):
        super().__init__(file)
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._allowed:
            raise pickle.UnpicklingError(f"refused to load {module}.{name} (a pickle may only hold plain data here)")
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return _storage_from_bytes
        return super().find_class(module, name)


def _storage_from_bytes(data: bytes) -> Any:
    import torch

    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")  # files saved from a GPU load here too


def unpickle(data: bytes, allowed: frozenset[tuple[str, str]] = frozenset()) -> Any:
    """The object pickled in ``data``; ``pickle.UnpicklingError`` (or another error) for anything not admitted."""
    return _Allowlist(io.BytesIO(data), allowed).load()


def load_npy(path: Path) -> Any:
    """A ``.npy`` file: a numeric array as numpy reads it, or the object a pickled (object-dtype) file holds, rebuilt
    from numpy arrays, torch tensors and plain containers only (``np.load(allow_pickle=True)`` would run it).
    Raises ``ValueError``/``pickle.UnpicklingError``/``OSError`` on a file that is neither."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f".npy format version {version} is not supported")
        if not dtype.hasobject:
            f.seek(0)
            return np.load(f, allow_pickle=False)
        array = unpickle(f.read(), NUMPY | TORCH)
    if not isinstance(array, np.ndarray) or array.shape != shape:
        raise ValueError(f"the pickle holds a {type(array).__name__}, not the {shape} array its header announces")
    return array.item() if array.shape == () else array
