"""Exports for the downstream stages (model compression and training): one table as Parquet shards and JSONL.zst
shards of bounded size, with a `manifest.json`, published atomically.

Layout of an export folder `OUT`:

    OUT/current -> versions/<name>          a symlink, swapped in one rename: readers open OUT/current/...
    OUT/versions/<name>/manifest.json       rows, bytes and SHA-256 per shard, the schema, whatever the caller adds
    OUT/versions/<name>/parquet/part-00000.parquet ...
    OUT/versions/<name>/jsonl/part-00000.jsonl.zst ...

A version is built under `versions/.<name>.tmp`, renamed to `versions/<name>` once every file is written, and only
then does `current` point at it (a new symlink renamed over the old one: `rename(2)` is atomic, so a reader resolves
the old version or the new one, never a half-written one). The previous version is kept, so a reader that resolved
it just before the swap can finish; older ones are removed. A run killed before the swap leaves `current` as it was
(the `.tmp` folder and pointer of a killed run are removed by the next export).

Shards: rows are cut in order into shards of at most `max_rows` rows and at most `max_bytes` bytes of JSON lines
(uncompressed; a single row larger than that is a shard of its own); the Parquet shard i and the JSONL shard i hold
the same rows. The files are deterministic: the same table and limits give the same bytes (the zstd level is fixed,
one thread; the Parquet writer is given fixed options).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from sift.pipelines.core.atomic import kill_point

MANIFEST_VERSION = 1
CURRENT = "current"
VERSIONS = "versions"


@dataclass(frozen=True)
class ShardLimits:
    """The bound on every shard: rows, and bytes of uncompressed JSON lines."""

    max_rows: int = 100_000
    max_bytes: int = 256 * 1024 * 1024
    zstd_level: int = 10

    def __post_init__(self) -> None:
        if self.max_rows < 1 or self.max_bytes < 1:
            raise ValueError(
                f"shard limits must be positive: max_rows={self.max_rows}, max_bytes={self.max_bytes}"
            )


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def json_lines(table: pa.Table) -> list[bytes]:
    """One JSON line per row (columns in table order, a trailing newline each)."""
    return [orjson.dumps(row, default=_json_default) + b"\n" for row in table.to_pylist()]


def cut_shards(sizes: list[int], limits: ShardLimits) -> list[tuple[int, int]]:
    """(offset, length) of each shard over rows of the given byte sizes, in order, within the limits."""
    shards: list[tuple[int, int]] = []
    start, nbytes = 0, 0
    for i, size in enumerate(sizes):
        rows = i - start
        if rows and (rows >= limits.max_rows or nbytes + size > limits.max_bytes):
            shards.append((start, rows))
            start, nbytes = i, 0
        nbytes += size
    if len(sizes) > start or not shards:
        shards.append((start, len(sizes) - start))
    return shards


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _entry(path: Path, root: Path, rows: int, data_bytes: int) -> dict[str, Any]:
    return {
        "path": path.relative_to(root).as_posix(),
        "rows": rows,
        "bytes": path.stat().st_size,
        "data_bytes": data_bytes,
        "sha256": _sha256(path),
    }


def schema_fields(schema: pa.Schema) -> list[dict[str, Any]]:
    """The schema as the manifest records it: name, Arrow type and nullability of every column."""
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]


def write_shards(table: pa.Table, folder: Path, limits: ShardLimits) -> dict[str, list[dict[str, Any]]]:
    """Write the table's Parquet and JSONL.zst shards under `folder`; their manifest entries by format."""
    table = table.replace_schema_metadata(None).combine_chunks()
    lines = json_lines(table)
    (folder / "parquet").mkdir(parents=True, exist_ok=True)
    (folder / "jsonl").mkdir(parents=True, exist_ok=True)
    compressor = zstandard.ZstdCompressor(level=limits.zstd_level, threads=0)
    entries: dict[str, list[dict[str, Any]]] = {"parquet": [], "jsonl.zst": []}
    for n, (offset, length) in enumerate(cut_shards([len(line) for line in lines], limits)):
        part = table.slice(offset, length)
        data = b"".join(lines[offset : offset + length])
        pq_path = folder / "parquet" / f"part-{n:05d}.parquet"
        pq.write_table(part, pq_path, compression="zstd", write_statistics=True, store_schema=True)
        js_path = folder / "jsonl" / f"part-{n:05d}.jsonl.zst"
        js_path.write_bytes(compressor.compress(data))
        entries["parquet"].append(_entry(pq_path, folder, length, len(data)))
        entries["jsonl.zst"].append(_entry(js_path, folder, length, len(data)))
    return entries


def export_table(
    table: pa.Table,
    out: str | os.PathLike[str],
    name: str,
    limits: ShardLimits,
    manifest: dict[str, Any] | None = None,
) -> Path:
    """Publish `table` as version `name` of the export folder `out` (see the module docstring); `manifest` adds
    fields to the manifest (the run, the stages' configs, counts removed per stage). Returns the published folder
    (`out/versions/<name>`); readers use `out/current`."""
    if "/" in name or name.startswith(".") or name == CURRENT:
        raise ValueError(f"export version name {name!r}: a plain folder name is needed")
    root = Path(out)
    versions = root / VERSIONS
    versions.mkdir(parents=True, exist_ok=True)
    for stale in versions.glob(".*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)  # a killed export's half-built version
    for stale in root.glob(f".{CURRENT}.*.tmp"):
        stale.unlink()  # a killed export's new pointer, never renamed into place
    build = versions / f".{name}.tmp"
    build.mkdir()
    shards = write_shards(table, build, limits)
    body = {
        "manifest_version": MANIFEST_VERSION,
        "version": name,
        "rows": table.num_rows,
        "schema": schema_fields(table.schema),
        "limits": {
            "max_rows": limits.max_rows,
            "max_bytes": limits.max_bytes,
            "zstd_level": limits.zstd_level,
        },
        "shards": shards,
        **(manifest or {}),
    }
    (build / "manifest.json").write_bytes(json.dumps(body, indent=1, sort_keys=True).encode() + b"\n")
    final = versions / name
    previous = _current(root)
    if final.exists():
        if previous is not None and previous.name == name:
            raise FileExistsError(f"export version {name} is the current one under {root}")
        shutil.rmtree(final)
    kill_point(final)  # test hook: a run killed here leaves `current` as it was
    os.rename(build, final)
    link = root / f".{CURRENT}.{os.getpid()}.tmp"
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(Path(VERSIONS) / name, link)
    kill_point(root / CURRENT)
    os.replace(link, root / CURRENT)
    keep = {name} | ({previous.name} if previous is not None else set())
    for old in versions.iterdir():
        if old.name not in keep and not old.name.startswith("."):
            shutil.rmtree(old, ignore_errors=True)
    return final


def _current(root: Path) -> Path | None:
    """The version folder `root/current` points at, if any."""
    link = root / CURRENT
    return link.resolve() if link.is_symlink() else None


def read_manifest(out: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of the current version of an export folder."""
    return dict(json.loads((Path(out) / CURRENT / "manifest.json").read_text()))


def verify(out: str | os.PathLike[str]) -> list[str]:
    """The shards of the current version whose size or SHA-256 differ from the manifest (empty: all match)."""
    folder = Path(out) / CURRENT
    manifest = read_manifest(out)
    bad = []
    for entries in manifest["shards"].values():
        for e in entries:
            p = folder / e["path"]
            if not p.is_file() or p.stat().st_size != e["bytes"] or _sha256(p) != e["sha256"]:
                bad.append(e["path"])
    return bad


__all__ = [
    "CURRENT",
    "MANIFEST_VERSION",
    "ShardLimits",
    "cut_shards",
    "export_table",
    "json_lines",
    "read_manifest",
    "schema_fields",
    "verify",
    "write_shards",
]
