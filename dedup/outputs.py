"""Outputs of SlimPajama near-duplicate dedup (SlimPajama-DC section 2 and its per-source duplication table).

A run writes `kept.parquet`, `removed.parquet`, `clusters.parquet`, `quarantine.parquet`, `stats.json`
(deterministic counts), `report.md` (per-source table like SlimPajama's), `cluster_sizes.png`, and `timings.json`
(wall times per phase, the only file that differs between runs). The Polars engine hands over one `decisions`
table (one row per document, sorted by input row) and `finalize` writes each table as one file. The Spark engine
(dedup/engines/spark.py) has its executors write each table as a folder of part files with the same columns and
rows. Both build `stats.json`, `report.md` and the picture from the same aggregates (`compute_stats`), so those are
byte-identical between engines.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sift.dedup.config import DedupConfig
from sift.dedup.plots import cluster_histogram
from sift.dedup.work import WorkDir
from sift.pipelines.core.atomic import atomic_path, write_json, write_parquet, write_text
from sift.pipelines.core.lake import QUARANTINE_SCHEMA

OUTPUT_COMPRESSION = "zstd"
ROW_GROUP_ROWS = 16384
REASONS = ("too_short", "exact_duplicate", "near_duplicate")
DECISIONS_SCHEMA = pa.schema(
    [
        ("_row", pa.int64()),
        ("id", pa.string()),
        ("source", pa.string()),
        ("kept", pa.bool_()),
        ("reason", pa.string()),
        ("duplicate_of", pa.string()),
        ("similarity", pa.float64()),
        ("cluster_id", pa.string()),
        ("nbytes", pa.int64()),
    ]
)
REMOVED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("reason", pa.string()),
        ("duplicate_of", pa.string()),
        ("similarity", pa.float64()),
    ]
)
CLUSTERS_SCHEMA = pa.schema([("id", pa.string()), ("cluster_id", pa.string())])
OUTPUT_FILES = (
    "kept.parquet",
    "removed.parquet",
    "clusters.parquet",
    "quarantine.parquet",
    "stats.json",
    "report.md",
    "cluster_sizes.png",
)


TIMINGS_FILE = "timings.json"
TABLE_TMP_PREFIXES = tuple(f".{name}." for name in OUTPUT_FILES if name.endswith(".parquet"))


def remove_outputs(output_dir: Path) -> list[str]:
    """Remove the output files a previous run left in the folder (before a run writes anything, so that a run that
    fails or is killed never leaves another run's outputs beside its work). Returns the names removed."""
    removed = []
    for name in (*OUTPUT_FILES, TIMINGS_FILE):
        path = output_dir / name
        if path.is_file() or path.is_symlink():
            path.unlink()
            removed.append(name)
        elif path.is_dir():  # a table the Spark engine wrote: a folder of part files
            shutil.rmtree(path)
            removed.append(name)
    if (
        output_dir.is_dir()
    ):  # output folders a killed Spark run was filling (`atomic_dir`'s temporary siblings)
        for path in output_dir.iterdir():
            if path.is_dir() and path.name.endswith(".tmp") and path.name.startswith(TABLE_TMP_PREFIXES):
                shutil.rmtree(path)
    return removed


def _write(table: pa.Table, path: Path) -> None:
    write_parquet(table.combine_chunks(), path, compression=OUTPUT_COMPRESSION, row_group_size=ROW_GROUP_ROWS)


def _unified_schema(work: WorkDir, paths: list[Path]) -> pa.Schema:
    schemas = [work.input_schema(p).remove_metadata() for p in paths]
    if not schemas:
        return pa.schema([("id", pa.string()), ("source", pa.string()), ("text", pa.string())])
    schema = pa.unify_schemas(schemas, promote_options="permissive")
    return pa.schema([f for f in schema if f.name != "_row"])


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    cols = []
    for f in schema:
        if f.name in table.column_names:
            cols.append(table.column(f.name).cast(f.type))
        else:
            cols.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(cols, schema=schema)


PAGE_BYTES = 1 << 20  # about this much text per data page of kept.parquet


def _kept_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, stops) of the runs of True in mask."""
    edges = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def write_kept(work: WorkDir, kept_mask: np.ndarray, path: Path, text_bytes: int) -> None:
    """Write the kept rows (all input columns, input order) in fixed-size row groups straight from the spilled
    shards (memory-mapped): each row group is handed to the writer as zero-copy slices of the runs of kept rows,
    not gathered into fresh memory first (two copies of the kept text, 0.3-0.4 s on the bench corpus).

    The bytes must not depend on how the input was batched, yet Parquet's writer cuts pages by size after each
    batch of rows, and batches restart at every slice. So pages are cut by row count only (`max_rows_per_page`,
    size limit out of reach) and dictionary encoding, whose fallback is checked per batch too, is off: the rows
    per page come from the kept text's average size (`text_bytes` over the kept rows, both fixed by the data),
    about `PAGE_BYTES` of text each."""
    shards = work.input_shards()
    schema = _unified_schema(work, shards)
    average = text_bytes // max(int(kept_mask.sum()), 1)
    page_rows = min(ROW_GROUP_ROWS, max(1, PAGE_BYTES // max(average, 1)))
    pending: list[pa.Table] = []
    pending_rows = 0
    with (
        atomic_path(path) as tmp,
        pq.ParquetWriter(
            tmp,
            schema,
            compression=OUTPUT_COMPRESSION,
            use_dictionary=False,
            data_page_size=1 << 40,
            max_rows_per_page=page_rows,
        ) as writer,
    ):
        for shard, (first, rows) in zip(shards, work.shard_rows(), strict=True):
            mask = kept_mask[first : first + rows]
            if not mask.any():
                continue
            table = _conform(work.read_input(shard), schema)
            for start, stop in zip(*_kept_runs(mask), strict=True):
                pending.append(table.slice(start, stop - start))
                pending_rows += stop - start
            while pending_rows >= ROW_GROUP_ROWS:
                merged = pa.concat_tables(pending)
                writer.write_table(merged.slice(0, ROW_GROUP_ROWS), row_group_size=ROW_GROUP_ROWS)
                rest = merged.slice(ROW_GROUP_ROWS)
                pending, pending_rows = [rest], rest.num_rows
        if pending_rows:
            writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP_ROWS)


def read_quarantine(work: WorkDir) -> pa.Table:
    parts = [pq.read_table(work.quarantine_shard(i)) for i in range(len(work.input_shards()))]
    parts = [p for p in parts if p.num_rows]
    return pa.concat_tables(parts) if parts else QUARANTINE_SCHEMA.empty_table()


def decision_groups(decisions: pa.Table) -> list[tuple[str, bool, str | None, int, int]]:
    """(source, kept, reason, bytes, documents) per group of the decisions: what `compute_stats` counts from."""
    groups = (
        decisions.select(["source", "kept", "reason", "nbytes"])
        .group_by(["source", "kept", "reason"])
        .aggregate([("nbytes", "sum"), ("nbytes", "count")])
    )
    names = ("source", "kept", "reason", "nbytes_sum", "nbytes_count")
    return list(zip(*(groups.column(name).to_pylist() for name in names), strict=True))


def cluster_size_histogram(decisions: pa.Table) -> dict[int, int]:
    """{cluster size: number of clusters} of the decisions' `cluster_id`s."""
    cid = decisions.column("cluster_id").drop_null()
    if len(cid) == 0:
        return {}
    counts = pc.value_counts(cid).field("counts").to_numpy()
    return dict(Counter(int(c) for c in counts))


def compute_stats(
    groups: list[tuple[str, bool, str | None, int, int]],
    size_histogram: dict[int, int],
    quarantined: int,
    config: DedupConfig,
    phases: dict[str, Any],
) -> dict[str, Any]:
    """Counts in and out per source and per reason, bytes, cluster sizes; no timings (stats.json is
    byte-identical between runs and engines).

    Built from aggregates only, so that both engines give it the same inputs: `groups` = (source, kept, reason,
    bytes, documents) per group of decisions (`decision_groups`, or a Spark groupBy), `size_histogram` = {cluster
    size: clusters}, `quarantined` = quarantine rows."""
    per_source: dict[str, dict[str, Any]] = {}
    by_reason: Counter[str] = Counter()
    documents = kept = bytes_in = bytes_kept = 0
    for s, k, r, b, c in groups:
        b, c = int(b), int(c)
        row = per_source.setdefault(
            s,
            {
                "documents": 0,
                "bytes": 0,
                "kept": 0,
                "kept_bytes": 0,
                "removed": dict.fromkeys(REASONS, 0),
                "removed_bytes": dict.fromkeys(REASONS, 0),
            },
        )
        row["documents"] += c
        row["bytes"] += b
        documents += c
        bytes_in += b
        if k:
            row["kept"] += c
            row["kept_bytes"] += b
            kept += c
            bytes_kept += b
        else:
            reason = str(r)  # a removed document always has a reason
            row["removed"][reason] += c
            row["removed_bytes"][reason] += b
            by_reason[reason] += c
    hist = {int(k): int(v) for k, v in size_histogram.items()}
    bands, rows = config.banding
    return {
        "config": config.model_dump(exclude={"keep_work", "batch_rows"}),
        "banding": {
            "bands": bands,
            "rows": rows,
            "signature": config.signature_kind,
            "candidate_probability_at_threshold": round(config.theoretical_recall, 6),
        },
        "rows_in": documents + quarantined,
        "documents": documents,
        "quarantined": quarantined,
        "kept": kept,
        "removed": documents - kept,
        "removed_by_reason": {r: int(by_reason.get(r, 0)) for r in REASONS},
        "bytes_in": bytes_in,
        "bytes_kept": bytes_kept,
        "per_source": dict(sorted(per_source.items())),
        "clusters": {
            "count": sum(hist.values()),
            "documents": sum(k * v for k, v in hist.items()),
            "largest": max(hist) if hist else 0,
            "size_histogram": {str(k): v for k, v in sorted(hist.items())},
        },
        "phases": phases,
    }


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.2f}%" if whole else "-"


def report_markdown(stats: dict[str, Any]) -> str:
    """The per-source duplication table (documents and bytes in, removed by reason), like SlimPajama's."""
    cfg = stats["config"]
    lines = [
        "# Near-duplicate dedup report",
        "",
        f"Mode `{cfg['mode']}`, scope `{cfg['scope']}`, Jaccard threshold {cfg['threshold']}, "
        f"{cfg['shingle']} {cfg['ngram']}-grams, {stats['banding']['signature']} with {cfg['num_perm']} hashes, "
        f"{stats['banding']['bands']} bands x {stats['banding']['rows']} rows "
        f"(candidate probability at the threshold {stats['banding']['candidate_probability_at_threshold']}).",
        "",
        "| source | documents | bytes | too short | exact dup | near dup | removed docs | removed bytes | kept |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = list(stats["per_source"].items())
    total = {
        "documents": stats["documents"],
        "bytes": stats["bytes_in"],
        "kept": stats["kept"],
        "removed": {r: sum(v["removed"][r] for _, v in rows) for r in REASONS},
        "removed_bytes": {r: sum(v["removed_bytes"][r] for _, v in rows) for r in REASONS},
    }
    for name, v in [*rows, ("**total**", total)]:
        docs = v["documents"]
        removed = sum(v["removed"].values())
        removed_bytes = sum(v["removed_bytes"].values())
        lines.append(
            f"| {name} | {docs} | {v['bytes']} | {_pct(v['removed']['too_short'], docs)} | "
            f"{_pct(v['removed']['exact_duplicate'], docs)} | {_pct(v['removed']['near_duplicate'], docs)} | "
            f"{_pct(removed, docs)} | {_pct(removed_bytes, v['bytes'])} | {v['kept']} |"
        )
    cl = stats["clusters"]
    lines += [
        "",
        f"Quarantined rows: {stats['quarantined']}. Duplicate clusters: {cl['count']} holding {cl['documents']} "
        f"documents; largest {cl['largest']}.",
        "",
        "![cluster sizes](cluster_sizes.png)",
        "",
    ]
    return "\n".join(lines)


def finalize(
    work: WorkDir,
    decisions: pa.Table,
    output_dir: str | os.PathLike[str],
    config: DedupConfig,
    phases: dict[str, Any],
) -> dict[str, Any]:
    """Write every output file from the decisions table (sorted by `_row`, one row per document)."""
    out = Path(output_dir)
    decisions = decisions.sort_by("_row")
    n = decisions.num_rows
    if n and not np.array_equal(decisions.column("_row").to_numpy(), np.arange(n)):
        raise RuntimeError("dedup decisions do not cover every input row exactly once")
    kept = decisions.column("kept").to_numpy(zero_copy_only=False)
    quarantine = read_quarantine(work)
    stats = compute_stats(
        decision_groups(decisions), cluster_size_histogram(decisions), quarantine.num_rows, config, phases
    )
    cluster_histogram(stats, out / "cluster_sizes.png")  # Pillow: ~0.1 s
    write_kept(work, kept, out / "kept.parquet", stats["bytes_kept"])
    removed = decisions.filter(pc.invert(decisions.column("kept")))
    _write(removed.select(REMOVED_SCHEMA.names).cast(REMOVED_SCHEMA), out / "removed.parquet")
    clusters = decisions.filter(pc.is_valid(decisions.column("cluster_id")))
    _write(clusters.select(CLUSTERS_SCHEMA.names).cast(CLUSTERS_SCHEMA), out / "clusters.parquet")
    _write(quarantine, out / "quarantine.parquet")
    write_json(stats, out / "stats.json")
    write_text(report_markdown(stats), out / "report.md")
    return stats
