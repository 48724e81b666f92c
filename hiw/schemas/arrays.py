"""Array-valued record fields and how they map to Arrow.

Per-frame arrays are stored as ``list<fixed_size_list<float32, width>>``: one outer entry per frame,
``width`` numbers per frame (e.g. 21 keypoints x 3 = 63). The clip length varies, the per-frame
layout does not, so the width lives in the schema and readers get a typed, zero-copy column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic_core import core_schema


def _offsets(arrays: list[np.ndarray]) -> pa.Array:
    """Arrow list offsets for one entry per frame of each array."""
    return pa.array(np.concatenate([[0], np.cumsum([len(a) for a in arrays])]).astype(np.int32))


@dataclass(frozen=True)
class FrameArray:
    """Marker for a (frames, width) float32 array field, e.g. ``Annotated[np.ndarray, FrameArray(63)]``."""

    width: int

    def arrow_type(self) -> pa.DataType:
        return pa.list_(pa.list_(pa.float32(), self.width))

    def coerce(self, value: Any) -> np.ndarray:
        arr = np.asarray(value, dtype=np.float32)
        if arr.ndim == 0 or arr.size % self.width:
            raise ValueError(f"expected frames x {self.width} numbers, got shape {arr.shape}")
        return arr.reshape(-1, self.width)

    def to_arrow(self, arrays: list[np.ndarray]) -> pa.Array:
        offsets = _offsets(arrays)
        flat = np.concatenate([a.reshape(-1) for a in arrays]) if arrays else np.zeros(0, np.float32)
        frames = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), self.width)
        return pa.ListArray.from_arrays(offsets, frames)

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(self.coerce)


@dataclass(frozen=True)
class FrameValues:
    """Marker for one float32 per frame: ``Annotated[np.ndarray, FrameValues()]`` -> ``list<float32>``."""

    def arrow_type(self) -> pa.DataType:
        return pa.list_(pa.float32())

    def coerce(self, value: Any) -> np.ndarray:
        arr = np.asarray(value, dtype=np.float32)
        if arr.ndim != 1:
            raise ValueError(f"expected one value per frame, got shape {arr.shape}")
        return arr

    def to_arrow(self, arrays: list[np.ndarray]) -> pa.Array:
        offsets = _offsets(arrays)
        flat = np.concatenate(arrays) if arrays else np.zeros(0, np.float32)
        return pa.ListArray.from_arrays(offsets, pa.array(flat, pa.float32()))

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(self.coerce)


@dataclass(frozen=True)
class FrameMask:
    """Marker for a per-frame boolean mask field: ``Annotated[np.ndarray, FrameMask()]``."""

    def arrow_type(self) -> pa.DataType:
        return pa.list_(pa.bool_())

    def coerce(self, value: Any) -> np.ndarray:
        arr = np.asarray(value)
        if arr.ndim != 1:
            raise ValueError(f"expected a 1-D per-frame mask, got shape {arr.shape}")
        return arr.astype(bool)

    def to_arrow(self, arrays: list[np.ndarray]) -> pa.Array:
        return pa.array([a.tolist() for a in arrays], self.arrow_type())

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(self.coerce)
