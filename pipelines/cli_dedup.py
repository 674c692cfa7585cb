"""`sift dedup`: SlimPajama near-duplicate dedup (SlimPajama-DC section 2) of a documents input, global or local."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)
out = Console()


def input_fingerprint(uri: str) -> str:
    """Identity of an input for resuming: every file's path, size and modification time."""
    from sift.pipelines.core.lake import list_input_files

    fs, paths, fmt = list_input_files(uri)
    h = hashlib.sha256(fmt.encode())
    for p in paths:
        info = fs.info(p)
        h.update(f"{p}\0{info.get('size')}\0{info.get('mtime', info.get('LastModified', ''))}\n".encode())
    return h.hexdigest()[:16]


def dedup(
    input: Annotated[
        str, typer.Argument(help="Documents: Parquet, JSONL(.gz/.zst), CSV or Arrow; file or folder.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder of the run.")],
    engine: Annotated[str | None, typer.Option("--engine", help="polars (default) or spark.")] = None,
    spark_master: Annotated[
        str | None,
        typer.Option("--spark-master", help="Spark master: local[*], spark://host:7077 or sc://..."),
    ] = None,
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
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML config file (its dedup table).")
    ] = None,
) -> None:
    """Remove exact and near-duplicate documents (character 13-gram Jaccard, MinHash LSH).

    Writes OUTPUT/kept.parquet, removed.parquet (id, source, reason, duplicate_of, similarity), clusters.parquet
    (id, cluster_id), quarantine.parquet, stats.json, report.md, cluster_sizes.png and timings.json. A run that
    was killed resumes from OUTPUT/_work when started again with the same input and options.
    """
    from sift.pipelines.fastexit import lean_start

    lean_start()
    from sift import dedup as dedup_pkg
    from sift.pipelines.config import engine_choice, load_config
    from sift.pipelines.core.errors import InputError, check_output_folder
    from sift.pipelines.core.lake import Fields, input_files, iter_documents, skipped_files_line
    from sift.pipelines.ingest import refuse_if_all_rejected
    from sift.pipelines.progress import terminal_progress

    check_output_folder(output)
    name, master = engine_choice(engine, spark_master)
    for flag, value, allowed in (
        ("--scope", scope, ("global", "local")),
        ("--mode", mode, ("verified", "slimpajama")),
    ):
        if value is not None and value not in allowed:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(allowed)}", param_hint=flag)
    priority = [s.strip() for s in source_priority.split(",") if s.strip()] if source_priority else None
    cfg = load_config(
        "dedup",
        {"scope": scope, "mode": mode, "threshold": threshold, "source_priority": priority, "seed": seed},
        file=config,
    )
    # The fields read are part of the input's identity: a run refused for other field names must not be resumed.
    fingerprint = f"{input_fingerprint(input)}:{id_field}:{text_field}:{source_field}"
    docs = refuse_if_all_rejected(
        iter_documents(
            input,
            id_field=id_field,
            text_field=text_field,
            source_field=source_field,
            batch_rows=cfg.batch_rows,  # type: ignore[attr-defined]
        ),
        input,
        Fields(id=id_field, text=text_field, source=source_field),
    )
    spark = None
    if name == "spark":
        from sift.pipelines.core.engines import get_spark

        spark = get_spark(master)
    try:
        with terminal_progress(console):  # a line per phase on a terminal
            stats = dedup_pkg.run(docs, cfg, output, engine=name, spark=spark, input_fingerprint=fingerprint)
    except UnicodeDecodeError as exc:
        raise InputError(f"{input}: {exc}") from exc
    table = Table(title=f"sift dedup ({cfg.mode}, {cfg.scope}): {stats['rows_in']} rows in -> {output}")  # type: ignore[attr-defined]
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
    if spark is None:
        from sift.pipelines.fastexit import request

        request()


def register(app: typer.Typer) -> None:
    """Add `dedup` to the sift app."""
    app.command("dedup")(dedup)
