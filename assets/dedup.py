"""Dedup assets (issue 3, SlimPajama-DC section 2: global/local MinHash near-duplicate dedup), thin over `dedup`.

- `dedup_signatures` (partitioned by source): per-document facts of one source's raw documents (exact hash of the
  normalised text, lengths, LSH band keys, signature), `<lake>/dedup/signatures/<source>.parquet`, stamped with a
  schema version, the config fingerprint and the raw file it was computed from; metadata: documents, too short,
  exact duplicates inside the source.
- `duplicate_clusters`: the full dedup plan over every source's raw documents (global or local scope per config),
  written to `<lake>/dedup/run/` (kept, removed, clusters, quarantine, stats, report, histogram). On the Polars
  engine it reads the signatures: before the run, each source's current signatures (same schema version, config
  and raw file) are put into the run's work folder as finished facts shards, which the run then resumes from
  (`dedup.run`'s resume contract: a work folder with the same fingerprint keeps its finished shards); a source
  without current signatures has its facts computed by the run. The Spark engine computes the facts on the cluster.
- `deduplicated_documents`: the kept documents as `<lake>/dedup/deduplicated_documents.parquet`, with checks that
  every input row is kept, removed or quarantined exactly once, that kept ids are unique, and that every
  `duplicate_of` is a kept document (blocking checks: a failed one fails the run).
"""

import glob
import json
import os
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sift.pipelines.core.atomic import write_parquet
from sift.pipelines.progress import forward_progress
from sift.pipelines.resources import SOURCES_PARTITIONS, EngineResource, LakeResource

GROUP = "dedup"
STAGE = "dedup"
SIGNATURES_KEY = b"sift.dedup.signatures"  # Parquet key-value metadata of a signatures file
SIGNATURES_SCHEMA_VERSION = 1


class DedupRunConfig(dg.Config):
    """Run config of the dedup assets (None = the [dedup] stage config from sift.toml / environment)."""

    mode: str | None = None
    scope: str | None = None
    threshold: float | None = None
    seed: int | None = None


def _config(run_config: DedupRunConfig):
    from sift.dedup.config import DedupConfig
    from sift.pipelines.core.config import load_config

    return load_config(DedupConfig, run_config.model_dump())


def _raw_files(lake: LakeResource) -> list[str]:
    return sorted(glob.glob(os.path.join(lake.local("raw_documents", stage=STAGE), "*.parquet")))


def _stamp(cfg: Any, raw_file: str) -> dict[str, Any]:
    """What a signatures file must match to stand for a raw file's facts under a config."""
    return {
        "schema_version": SIGNATURES_SCHEMA_VERSION,
        "config": cfg.fingerprint(),
        "raw": {"size": os.path.getsize(raw_file), "mtime": os.path.getmtime(raw_file)},
    }


def _current_signatures(path: str, cfg: Any, raw_file: str) -> pa.Table | None:
    """The facts in a signatures file if it was written for this raw file and config, else None."""
    if not os.path.exists(path):
        return None
    meta = pq.read_schema(path).metadata or {}
    if SIGNATURES_KEY not in meta or json.loads(meta[SIGNATURES_KEY]) != _stamp(cfg, raw_file):
        return None
    return pq.read_table(path).replace_schema_metadata(None)


@dg.asset(
    group_name=GROUP,
    owners=["team:data-platform"],
    partitions_def=SOURCES_PARTITIONS,
    deps=["raw_documents"],
    kinds={"numba", "parquet"},
    description="MinHash/OPH LSH band keys, signatures and exact hashes of one source's documents (dedup facts); "
    "duplicate_clusters reads them on the Polars engine instead of computing them again.",
)
def dedup_signatures(
    context: dg.AssetExecutionContext, config: DedupRunConfig, lake: LakeResource
) -> dg.MaterializeResult:
    from sift.dedup import kernels

    cfg = _config(config)
    source = context.partition_key
    raw_file = lake.local("raw_documents", f"{source}.parquet", stage=STAGE)
    docs = pq.read_table(raw_file, columns=["id", "source", "text"])
    # the columns as the dedup run hands them to the kernels (strings), with the row number inside the source
    docs = pa.table(
        {
            "_row": pa.array(range(docs.num_rows), pa.int64()),
            **{c: docs.column(c).cast(pa.string()) for c in ("id", "source", "text")},
        }
    )
    context.log.info(f"dedup: facts (source {source}, {docs.num_rows} documents)")
    facts = pa.Table.from_batches([kernels.facts_batch(docs, cfg)]) if docs.num_rows else None
    path = lake.local("dedup", "signatures", f"{source}.parquet", stage=STAGE)
    if facts is None:
        facts = pa.table({"_row": pa.array([], pa.int64())})
    stamp = json.dumps(_stamp(cfg, raw_file), sort_keys=True).encode()
    write_parquet(facts.replace_schema_metadata({SIGNATURES_KEY: stamp}), path)
    short = int(pc.sum(pc.less(facts.column("nchars"), cfg.min_length)).as_py() or 0) if docs.num_rows else 0
    exact = 0
    if docs.num_rows:
        keys = pa.table({"h1": facts.column("h1"), "h2": facts.column("h2")})
        exact = docs.num_rows - keys.group_by(["h1", "h2"]).aggregate([]).num_rows
    bands, rows = cfg.banding
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": facts.num_rows,
            "path": dg.MetadataValue.path(path),
            "too_short": short,
            "exact_duplicates_within_source": exact,
            "banding": f"{bands} bands x {rows} rows ({cfg.signature_kind})",
        }
    )


def _seed_facts(lake: LakeResource, files: list[str], cfg: Any, out: str, fingerprint: str) -> list[str]:
    """Put the current signatures of each raw file into the run's work folder as finished facts shards (the
    shards the run will cut: `batch_rows` rows of one file at a time, rows numbered across the files in order);
    returns the sources whose signatures were used."""
    from sift.dedup.api import work_fingerprint
    from sift.dedup.work import WorkDir, write_work_table
    from sift.pipelines.core.locks import output_lock

    used = []
    with output_lock(out):
        work = WorkDir(out, work_fingerprint(cfg, fingerprint), spill="arrow")
        if (work.root / "input" / "_SUCCESS").exists():
            return used  # a run over this input already read it: it resumes from its own facts
        shard = 0
        first = 0
        for f in files:
            source = os.path.basename(f).removesuffix(".parquet")
            sig = _current_signatures(
                lake.local("dedup", "signatures", f"{source}.parquet", stage=STAGE), cfg, f
            )
            start = 0
            for batch in pq.ParquetFile(f).iter_batches(batch_size=cfg.batch_rows, columns=["id"]):
                n = batch.num_rows
                path = work.facts_shard(shard)
                if sig is not None and sig.num_rows >= start + n and not work.done(path):
                    part = sig.slice(start, n).combine_chunks()
                    part = part.set_column(0, "_row", pa.array(range(first, first + n), pa.int64()))
                    write_work_table(part, path)
                    work.mark(path)
                shard, start, first = shard + 1, start + n, first + n
            if sig is not None and sig.num_rows == start:
                used.append(source)
    return used


@dg.asset(
    group_name=GROUP,
    owners=["team:data-platform"],
    deps=["raw_documents", dedup_signatures],
    pool="spark",  # Spark-heavy: runs in a slot of the `spark` pool (pipelines/automation.py)
    kinds={"polars", "spark", "parquet"},
    description="Exact and near-duplicate clusters over all sources (candidate edges verified by exact Jaccard "
    "in verified mode), survivors and removal reasons; the run folder <lake>/dedup/run/. Reads the raw documents "
    "and, on the Polars engine, each source's current dedup signatures.",
)
def duplicate_clusters(
    context: dg.AssetExecutionContext, config: DedupRunConfig, lake: LakeResource, engine: EngineResource
) -> dg.MaterializeResult:
    from sift import dedup

    cfg = _config(config)
    files = _raw_files(lake)
    out = lake.local("dedup", "run", stage=STAGE)

    def batches():
        for f in files:
            yield from pq.ParquetFile(f).iter_batches(batch_size=cfg.batch_rows)

    fingerprint = json.dumps([(f, os.path.getsize(f), os.path.getmtime(f)) for f in files])
    reused: list[str] = []
    if engine.name == "polars":
        reused = _seed_facts(lake, files, cfg, out, fingerprint)
        context.log.info(f"dedup: signatures of {len(reused)} of {len(files)} sources reused")
    spark = engine.spark() if engine.name == "spark" else None
    with forward_progress(context.log.info):  # the run's phases in the Dagster run log
        stats = dedup.run(batches(), cfg, out, engine=engine.name, spark=spark, input_fingerprint=fingerprint)
    with open(os.path.join(out, "report.md")) as f:
        report = f.read()
    png = os.path.join(out, "cluster_sizes.png")
    context.log.info(
        f"dedup: kept {stats['kept']} of {stats['documents']}; {stats['clusters']['count']} clusters"
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": stats["clusters"]["documents"],
            "clusters": stats["clusters"]["count"],
            "largest_cluster": stats["clusters"]["largest"],
            "documents": stats["documents"],
            "kept": stats["kept"],
            "removed_by_reason": dg.MetadataValue.json(stats["removed_by_reason"]),
            "per_source": dg.MetadataValue.json(stats["per_source"]),
            "phases": dg.MetadataValue.json(stats["phases"]),
            "report": dg.MetadataValue.md(report.replace("![cluster sizes](cluster_sizes.png)", "")),
            "cluster_sizes": dg.MetadataValue.path(png),
            "run_folder": dg.MetadataValue.path(out),
            "signatures_reused": dg.MetadataValue.json(reused),
            "engine": engine.name,
        }
    )


@dg.asset(
    group_name=GROUP,
    owners=["team:data-platform"],
    deps=["raw_documents", duplicate_clusters],
    kinds={"parquet"},
    description="The deduplicated corpus: every kept document with all its input columns.",
    check_specs=[
        dg.AssetCheckSpec(
            "every_row_accounted_once",
            asset="deduplicated_documents",
            description="every raw document is kept, removed or quarantined exactly once",
            blocking=True,
        ),
        dg.AssetCheckSpec(
            "kept_ids_unique",
            asset="deduplicated_documents",
            description="kept ids are unique",
            blocking=True,
        ),
        dg.AssetCheckSpec(
            "duplicate_of_is_kept",
            asset="deduplicated_documents",
            description="every removed document's duplicate_of is a kept document",
            blocking=True,
        ),
    ],
)
def deduplicated_documents(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    run = lake.local("dedup", "run", stage=STAGE)
    kept = pq.read_table(os.path.join(run, "kept.parquet"))
    removed = pq.read_table(os.path.join(run, "removed.parquet"))
    quarantine = pq.read_table(os.path.join(run, "quarantine.parquet"))
    path = lake.local("dedup", "deduplicated_documents.parquet", stage=STAGE)
    write_parquet(kept, path)

    raw_ids: list[str] = []
    for f in _raw_files(lake):
        raw_ids += pq.read_table(f, columns=["id"]).column("id").to_pylist()
    out_ids = kept.column("id").to_pylist() + removed.column("id").to_pylist()
    accounted = sorted(out_ids) == sorted(raw_ids) and quarantine.num_rows == 0
    kept_ids = set(kept.column("id").to_pylist())
    dups = removed.column("duplicate_of").drop_null().to_pylist()
    missing = sorted({d for d in dups if d not in kept_ids})
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": kept.num_rows,
            "dagster/column_schema": dg.TableSchema(
                columns=[dg.TableColumn(f.name, str(f.type)) for f in kept.schema]
            ),
            "path": dg.MetadataValue.path(path),
            "removed": removed.num_rows,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="every_row_accounted_once",
                passed=accounted,
                metadata={
                    "raw_documents": len(raw_ids),
                    "kept": kept.num_rows,
                    "removed": removed.num_rows,
                    "quarantined": quarantine.num_rows,
                },
            ),
            dg.AssetCheckResult(
                check_name="kept_ids_unique",
                passed=len(kept_ids) == kept.num_rows,
                metadata={"kept": kept.num_rows},
            ),
            dg.AssetCheckResult(
                check_name="duplicate_of_is_kept",
                passed=not missing,
                metadata={
                    "removed_with_duplicate_of": len(dups),
                    "missing": dg.MetadataValue.json(missing[:20]),
                },
            ),
        ],
    )


ASSETS = [dedup_signatures, duplicate_clusters, deduplicated_documents]
CHECKS: list = []
