"""Arrow schemas and tables derived from the pydantic records (the one definition of each record)."""

from __future__ import annotations

import types
from datetime import datetime
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pyarrow as pa
from pydantic import BaseModel

from hiw.schemas.arrays import FrameArray, FrameMask, FrameValues

_SCALARS: dict[Any, pa.DataType] = {
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    bool: pa.bool_(),
    datetime: pa.timestamp("us", tz="UTC"),
}


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], len(args) < len(get_args(annotation))
    return annotation, False


def arrow_type(annotation: Any, metadata: list[Any] | tuple[Any, ...] = ()) -> pa.DataType:
    """Arrow type of one pydantic field annotation (with its Annotated metadata)."""
    for marker in metadata:
        if isinstance(marker, (FrameArray, FrameMask, FrameValues)):
            return marker.arrow_type()
        if isinstance(marker, pa.DataType):
            return marker
    if get_origin(annotation) is Annotated:
        base, *extra = get_args(annotation)
        return arrow_type(base, extra)
    if get_origin(annotation) is Literal:
        return arrow_type(type(get_args(annotation)[0]))
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        return pa.list_(arrow_type(item))
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    raise TypeError(f"no Arrow mapping for {annotation!r}")


def arrow_schema(model: type[BaseModel]) -> pa.Schema:
    fields = []
    for name, info in model.model_fields.items():
        annotation, nullable = _unwrap_optional(info.annotation)
        fields.append(pa.field(name, arrow_type(annotation, info.metadata), nullable=nullable))
    return pa.schema(fields, metadata={"hiw.record": model.__name__})


def to_table(model: type[BaseModel], records: list[BaseModel], created_at: datetime | None = None) -> pa.Table:
    """Records -> Arrow table with the derived schema (array fields go in without Python lists); ``created_at``,
    when given, is every row's (a shard group's rows carry the time the group was first made)."""
    schema = arrow_schema(model)
    columns = []
    for field in schema:
        if created_at is not None and field.name == "created_at":
            columns.append(pa.array([created_at] * len(records), field.type))
            continue
        values = [getattr(r, field.name) for r in records]
        marker = next(
            (m for m in model.model_fields[field.name].metadata if isinstance(m, (FrameArray, FrameMask, FrameValues))),
            None,
        )
        columns.append(marker.to_arrow(values) if marker else pa.array(values, field.type))
    return pa.Table.from_arrays(columns, schema=schema)
