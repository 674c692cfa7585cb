"""`sift dedup`: SlimPajama near-duplicate dedup (SlimPajama-DC section 2) of a documents input, global or local."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sift.pipelines.cli_options import ConfigOpt, EngineOpt, MasterOpt, OutputOpt, SparkConfOpt

console = Console(stderr=True)
out = Console()


def dedup(
    input: Annotated[
        str, typer.Argument(help="Documents: Parquet, JSONL(.gz/.zst), CSV or Arrow; file or folder.")
    ],
    output: OutputOpt,
    engine: EngineOpt = None,
    spark_master: MasterOpt = None,
    spark_conf: SparkConfOpt = None,
    scope: Annotated[
        str | None, typer.Option("--scope", help="global (one index over all sources) or local (per source).")
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option("--mode", help="verified (default: exact Jaccard checked) or slimpajama (the recipe)."),
    ] = None,
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="Jaccard threshold (default 0.8).")
    ] = None,
    id_field: Annotated[str, typer.Option("--id-field", help="Input field holding the id.")] = "id",
    text_field: Annotated[str, typer.Option("--text-field", help="Input field holding the text.")] = "text",
    source_field: Annotated[
        str, typer.Option("--source-field", help="Input field holding the source.")
    ] = "source",
    source_priority: Annotated[
        str | None,
        typer.Option("--source-priority", help="Comma-separated sources, preferred first, for survivors."),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the hash functions.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Remove exact and near-duplicate documents (character 13-gram Jaccard, MinHash LSH).

    Writes OUTPUT/kept.parquet, removed.parquet (id, source, reason, duplicate_of, similarity), clusters.parquet
    (id, cluster_id), quarantine.parquet, stats.json, report.md, cluster_sizes.png and timings.json. A run that
    was killed resumes from OUTPUT/_work when started again with the same input and options.
    """
    from sift.pipelines.fastexit import lean_start

    lean_start()
    from sift import dedup as dedup_pkg
    from sift.dedup.api import local_output
    from sift.pipelines.cli_options import engine_name, stage_config, stage_engine
    from sift.pipelines.core.errors import InputError, check_output_folder
    from sift.pipelines.core.lake import Fields, input_files, iter_documents, skipped_files_line
    from sift.pipelines.core.stage import SparkEngine, input_fingerprint
    from sift.pipelines.ingest import refuse_if_all_rejected
    from sift.pipelines.progress import terminal_progress
    from sift.pipelines.stages import DedupConfig

    check_output_folder(local_output(output))
    name, master = engine_name(engine, spark_master)
    for flag, value, allowed in (
        ("--scope", scope, ("global", "local")),
        ("--mode", mode, ("verified", "slimpajama")),
    ):
        if value is not None and value not in allowed:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(allowed)}", param_hint=flag)
    priority = [s.strip() for s in source_priority.split(",") if s.strip()] if source_priority else None
    cfg = stage_config(
        DedupConfig,
        {"scope": scope, "mode": mode, "threshold": threshold, "source_priority": priority, "seed": seed},
        file=config,
    )
    # The fields read are part of the input's identity: a run refused for other field names must not be resumed.
    fingerprint = f"{input_fingerprint(input)}:{id_field}:{text_field}:{source_field}"
    fields = Fields(id=id_field, text=text_field, source=source_field)
    runtime = stage_engine(name, master, spark_conf, config)
    try:
        with terminal_progress(console):  # a line per phase on a terminal
            if isinstance(runtime, SparkEngine):
                # the input's URI: the executors read it, with the fields the flags name
                stats = dedup_pkg.run(
                    input, cfg, output, runtime, input_fingerprint=fingerprint, fields=fields
                )
                _refuse_if_all_rejected(runtime.session, stats, input, fields, local_output(output))
            else:
                # the documents read here (the stage's second door: documents already read)
                docs = refuse_if_all_rejected(
                    iter_documents(
                        input,
                        id_field=id_field,
                        text_field=text_field,
                        source_field=source_field,
                        batch_rows=cfg.batch_rows,
                    ),
                    input,
                    fields,
                )
                stats = dedup_pkg.run(docs, cfg, output, runtime, input_fingerprint=fingerprint)
    except UnicodeDecodeError as exc:
        raise InputError(f"{input}: {exc}") from exc
    table = Table(title=f"sift dedup ({cfg.mode}, {cfg.scope}): {stats['rows_in']} rows in -> {output}")
    for col in ("source", "documents", "kept", "too_short", "exact_duplicate", "near_duplicate"):
        table.add_column(col, justify="left" if col == "source" else "right")
    for src, v in stats["per_source"].items():
        r = v["removed"]
        table.add_row(
            src, str(v["documents"]), str(v["kept"]), str(r["too_short"]), str(r["exact_duplicate"]),
            str(r["near_duplicate"]),
        )  # fmt: skip
    out.print(table)
    out.print(
        f"kept {stats['kept']}, removed {stats['removed']}, quarantined {stats['quarantined']}; "
        f"{stats['clusters']['count']} duplicate clusters (largest {stats['clusters']['largest']})"
    )
    skipped = skipped_files_line(input_files(input).skipped)
    if skipped:
        out.print(skipped, markup=False, highlight=False, soft_wrap=True)
    if name == "polars":
        from sift.pipelines.fastexit import request

        request()


def _refuse_if_all_rejected(session: Any, stats: dict[str, Any], uri: str, fields: Any, output: Path) -> None:
    """The Spark run's form of `refuse_if_all_rejected`: when no document was accepted, the kinds of error are
    counted by Spark over the quarantine the run wrote, and the keys are taken from its first rows (a bounded
    sample, never the whole quarantine)."""
    if stats["documents"] or not stats["quarantined"]:
        return
    import pyarrow.dataset as ds
    from pyspark.sql import functions as F

    from sift.pipelines.ingest.rejections import Rejections

    table = output / "quarantine.parquet"
    kinds = (
        session.read.parquet(table.resolve().as_uri()).select(F.substring_index("error", ":", 1)).distinct()
    )
    if kinds.limit(2).count() != 1:
        return
    seen = Rejections(fields)
    seen.add(0, ds.dataset(table, format="parquet").head(Rejections.SAMPLE))
    seen.quarantined = stats["quarantined"]
    seen.check(uri)


def register(app: typer.Typer) -> None:
    """Add `dedup` to the sift app."""
    app.command("dedup")(dedup)
