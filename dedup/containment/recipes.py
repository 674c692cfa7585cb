"""R2D2 lossless deletion: exact rebuild recipes, checksums, rebuild and verification.

A recipe rebuilds a deleted table from its kept container: the container's columns to take (by position, in the
deleted table's column order), the deleted table's Arrow schema (names, types, metadata), and the container row of
every row of the deleted table in its original order with multiplicity, stored as zig-zag deltas compressed with
zstd. The checksum is SHA-256 of the table's Arrow IPC stream (schema and values after combining chunks), so a
rebuilt table that matches it equals the original row for row.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.types as pt
import zstandard

from dedup.containment.schema import TableSchema
from dedup.containment.tables import TableRef, read_table

RECIPE_SCHEMA = pa.schema(
    [
        ("table", pa.string()),
        ("container", pa.string()),
        ("container_paths", pa.list_(pa.string())),
        ("container_format", pa.string()),
        ("container_columns", pa.list_(pa.int32())),
        ("schema", pa.binary()),
        ("rows", pa.binary()),
        ("num_rows", pa.int64()),
        ("checksum", pa.string()),
        ("container_checksum", pa.string()),
        ("verified", pa.bool_()),
        ("error", pa.string()),
    ]
)


def table_checksum(table: pa.Table) -> str:
    """SHA-256 of the Arrow IPC stream of the table with its chunks combined."""
    table = table.combine_chunks()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def encode_rows(rows: np.ndarray) -> bytes:
    rows = np.asarray(rows, dtype=np.int64)
    delta = np.diff(rows, prepend=np.int64(0))
    zigzag = ((delta << 1) ^ (delta >> 63)).astype(np.uint64)
    return zstandard.ZstdCompressor(level=10).compress(zigzag.tobytes())


def decode_rows(blob: bytes, n: int) -> np.ndarray:
    raw = zstandard.ZstdDecompressor().decompress(blob, max_output_size=max(8 * n, 1))
    z = np.frombuffer(raw, dtype=np.uint64, count=n)
    delta = (z >> np.uint64(1)).astype(np.int64) ^ -(z & np.uint64(1)).astype(np.int64)
    return np.cumsum(delta, dtype=np.int64)


def serialize_schema(schema: pa.Schema) -> bytes:
    return schema.serialize().to_pybytes()


def _cast(col: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray | pa.Array:
    if col.type.equals(target):
        return col
    if pt.is_null(target):
        return pa.nulls(len(col))
    return col.cast(target, safe=True)


def rebuild(recipe: dict, container_table: pa.Table | None = None) -> pa.Table:
    """The deleted table, rebuilt from its container (read from the recipe's paths unless given)."""
    schema = pa.ipc.read_schema(pa.py_buffer(recipe["schema"]))
    cols = list(recipe["container_columns"])
    if container_table is None:
        ref = TableRef(recipe["container"], tuple(recipe["container_paths"]), recipe["container_format"], 0)
        container_table = read_table(ref, cols)
    else:
        container_table = container_table.select(cols)
    rows = decode_rows(recipe["rows"], recipe["num_rows"])
    taken = container_table.take(pa.array(rows, type=pa.int64()))
    arrays = [_cast(taken.column(i), f.type) for i, f in enumerate(schema)]
    return pa.Table.from_arrays(arrays, schema=schema)


def make_recipe(
    table: TableRef,
    ts: TableSchema,
    container: TableRef,
    cs: TableSchema,
    mapping: np.ndarray,
    case_insensitive: bool = False,
) -> dict:
    """Recipe for rebuilding `table` from `container`, verified by rebuilding it now."""
    original = read_table(table)
    recipe = {
        "table": table.name,
        "container": container.name,
        "container_paths": list(container.paths),
        "container_format": container.format,
        "container_columns": [cs.by_key[c.key].position for c in ts.columns],
        "schema": serialize_schema(original.schema),
        "rows": encode_rows(mapping),
        "num_rows": int(len(mapping)),
        "checksum": table_checksum(original),
        "container_checksum": None,
        "verified": False,
        "error": None,
    }
    if (mapping < 0).any():
        recipe["error"] = "some rows have no matching container row"
        return recipe
    return verify(recipe)


def verify(recipe: dict) -> dict:
    """Rebuild from the recipe and compare checksums; sets `verified` and `error`."""
    try:
        got = table_checksum(rebuild(recipe))
    except Exception as exc:  # a failed rebuild is a failed verification, never a crash
        recipe["verified"] = False
        recipe["error"] = f"rebuild failed: {type(exc).__name__}: {exc}"
        return recipe
    recipe["verified"] = got == recipe["checksum"]
    recipe["error"] = (
        None if recipe["verified"] else "checksum of the rebuilt table differs from the original"
    )
    return recipe
