"""R2D2 lossless deletion: exact rebuild recipes, checksums, rebuild and verification.

A recipe rebuilds a deleted table from its kept container: the container's columns to take (by position, in the
deleted table's column order), the deleted table's Arrow schema (names, types, metadata), and the container row of
every row of the deleted table in its original order with multiplicity, stored as zig-zag deltas compressed with
zstd. The checksum is SHA-256 of the table's exact Arrow schema and of its values in row order (independent of
chunking and dictionary layout), so a rebuilt table that matches it equals the original row for row.

A recipe of a planned deletion also records the deleted table's files as they were at planning (path, size, mtime,
SHA-256 of the bytes), which `--apply` checks again just before it moves them, and for a CSV table whose text
pyarrow's CSV writer would not give back byte for byte (`00123`, `N/A`, quoting, ...), that text, zstd-compressed, so
that `sift rebuild` writes the same file back.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.types as pt
import zstandard

from sift.dedup.containment.schema import TableSchema
from sift.dedup.containment.tables import TableRef, read_table

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
        ("verified", pa.bool_()),
        ("error", pa.string()),
        # the deleted table's files at planning, checked again before --apply moves them
        (
            "source_files",
            pa.list_(
                pa.struct(
                    [
                        ("path", pa.string()),
                        ("bytes", pa.int64()),
                        ("mtime_ns", pa.int64()),
                        ("sha256", pa.string()),
                    ]
                )
            ),
        ),
        ("original_file", pa.binary()),  # a CSV's text (zstd) where pyarrow's writer would not give it back
    ]
)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def table_files(location: str) -> list[str]:
    """Every file that makes up a table as it lies in the lake: the file, or every file under the folder
    (markers and hidden files included: moving the table moves them all)."""
    if not os.path.isdir(location):
        return [location]
    out = []
    for dirpath, _dirs, files in os.walk(location):
        out += [os.path.join(dirpath, f) for f in files]
    return sorted(out)


def file_signatures(location: str) -> list[dict]:
    """Path, size, mtime and SHA-256 of every file of a table (see `table_files`)."""
    out = []
    for p in table_files(location):
        st = os.stat(p, follow_symlinks=False)
        out.append({"path": p, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": _sha256(p)})
    return out


def csv_text(path: str) -> bytes:
    """The text of a CSV table's file (decompressed for `.csv.gz`)."""
    with open(path, "rb") as f:
        raw = f.read()
    return gzip.decompress(raw) if path.lower().endswith(".gz") else raw


def source_record(ref: TableRef, table: pa.Table, files: bool = True) -> dict:
    """What a recipe keeps of the table it deletes: its files' signatures (with `files`; what `--apply` checks
    again) and, for a CSV that pyarrow's writer would not write back byte for byte from `table`, its text (zstd,
    with zstd's content checksum)."""
    record: dict = {"source_files": file_signatures(ref.location) if files else None, "original_file": None}
    if ref.format == "csv":
        text = csv_text(ref.paths[0])
        written = io.BytesIO()
        pacsv.write_csv(table, written)
        if written.getvalue() != text:
            record["original_file"] = zstandard.ZstdCompressor(level=3, write_checksum=True).compress(text)
    return record


def original_text(recipe: dict) -> bytes | None:
    """The CSV text kept by the recipe (checked against the recipe's checksum), or None when it keeps none."""
    blob = recipe.get("original_file")
    if blob is None:
        return None
    text = zstandard.ZstdDecompressor().decompress(blob)
    if table_checksum(pacsv.read_csv(io.BytesIO(text))) != recipe["checksum"]:
        raise ValueError(f"{recipe['table']}: the kept CSV text does not match the table's checksum")
    return text


def _column_digest(col: pa.ChunkedArray, h) -> None:
    """Feed one column's logical values to the hash, independent of chunking, slicing, buffer padding and
    dictionary layout (the exact type is part of the schema, hashed separately)."""
    arr = col.combine_chunks() if col.num_chunks else pa.array([], type=col.type)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pt.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    t = arr.type
    nulls = arr.null_count > 0

    def filled(a: pa.Array, value) -> pa.Array:
        """fill_null, skipped without NULLs (where it changes nothing but costs a kernel call)."""
        return a.fill_null(value) if nulls else a

    if nulls:
        valid = arr.is_valid().to_numpy(zero_copy_only=False).astype(np.uint8)
    else:
        valid = np.ones(len(arr), dtype=np.uint8)
    h.update(len(arr).to_bytes(8, "little"))
    h.update(np.packbits(valid).tobytes())
    if pt.is_null(t):
        return
    if pt.is_boolean(t):
        h.update(filled(arr, False).to_numpy(zero_copy_only=False).astype(np.uint8).tobytes())
    elif pt.is_floating(t):
        x = filled(arr if pt.is_float64(t) else arr.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False)
        x = np.where(np.isnan(x), np.nan, x)  # one NaN bit pattern; -0.0 stays distinct from 0.0
        h.update(x.tobytes())
    elif pt.is_integer(t):
        h.update(
            filled(arr, 0)
            .to_numpy(zero_copy_only=False)
            .astype(np.int64 if pt.is_signed_integer(t) else np.uint64)
            .tobytes()
        )
    elif pt.is_temporal(t) and t.bit_width in (32, 64):
        phys = pa.int64() if t.bit_width == 64 else pa.int32()
        h.update(filled(arr.view(phys), 0).to_numpy(zero_copy_only=False).astype(np.int64).tobytes())
    elif (
        pt.is_string(t)
        or pt.is_large_string(t)
        or pt.is_binary(t)
        or pt.is_large_binary(t)
        or pt.is_string_view(t)
        or pt.is_binary_view(t)
    ):
        if pt.is_string_view(t):
            arr = arr.cast(pa.large_string())
        b = filled(arr.cast(pa.large_binary()), b"")
        offsets = np.frombuffer(b.buffers()[1], dtype=np.int64, count=len(b) + 1 + b.offset)[b.offset :]
        h.update((offsets - offsets[0]).tobytes())
        if b.buffers()[2] is not None and len(b):
            h.update(memoryview(b.buffers()[2])[int(offsets[0]) : int(offsets[-1])])
    else:  # decimals, nested and other exotic types: their Python values
        h.update(repr(arr.to_pylist()).encode())


def table_checksum(table: pa.Table) -> str:
    """SHA-256 of the table's exact schema (names, types, metadata) and its values in row order, independent of
    how the values are laid out in memory (chunks, slices, dictionary order)."""
    h = hashlib.sha256()
    h.update(table.schema.serialize().to_pybytes())
    h.update(table.num_rows.to_bytes(8, "little"))
    for col in table.columns:
        _column_digest(col, h)
    return h.hexdigest()


def encode_rows(rows: np.ndarray) -> bytes:
    rows = np.asarray(rows, dtype=np.int64)
    delta = np.diff(rows, prepend=np.int64(0))
    zigzag = ((delta << 1) ^ (delta >> 63)).astype(np.uint64)
    # level 3: within 10% of level 10's size on row deltas (2% of the deleted bytes either way), 10x faster
    return zstandard.ZstdCompressor(level=3).compress(zigzag.tobytes())


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
    original: pa.Table | None = None,
    container_table: pa.Table | None = None,
) -> dict:
    """Recipe for rebuilding `table` from `container`, verified by rebuilding it now (the tables may be passed
    in when the caller already read them)."""
    columns = [cs.by_key[c.key].position for c in ts.columns]
    return recipe_from(table, container, columns, mapping, original, container_table)


def recipe_from(
    table: TableRef,
    container: TableRef,
    container_columns: list[int],
    mapping: np.ndarray,
    original: pa.Table | None = None,
    container_table: pa.Table | None = None,
) -> dict:
    """`make_recipe` given the container's column positions in the table's column order."""
    original = read_table(table) if original is None else original
    recipe = {
        "table": table.name,
        "container": container.name,
        "container_paths": list(container.paths),
        "container_format": container.format,
        "container_columns": list(container_columns),
        "schema": serialize_schema(original.schema),
        "rows": encode_rows(mapping),
        "num_rows": int(len(mapping)),
        "checksum": table_checksum(original),
        "verified": False,
        "error": None,
    }
    if (mapping < 0).any():
        recipe["error"] = "some rows have no matching container row"
        return recipe
    return verify(recipe, container_table)


def verify(recipe: dict, container_table: pa.Table | None = None) -> dict:
    """Rebuild from the recipe and compare checksums; sets `verified` and `error`."""
    try:
        got = table_checksum(rebuild(recipe, container_table))
    except Exception as exc:  # a failed rebuild is a failed verification, never a crash
        recipe["verified"] = False
        recipe["error"] = f"rebuild failed: {type(exc).__name__}: {exc}"
        return recipe
    recipe["verified"] = got == recipe["checksum"]
    recipe["error"] = (
        None if recipe["verified"] else "checksum of the rebuilt table differs from the original"
    )
    return recipe
