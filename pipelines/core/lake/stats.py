"""Counts of an ingest, and an independent count of an input's records for accounting checks.

`ingest_stats` gives the counts in and out, per source and per kind of error (the text before the first colon of a
quarantine row's error). `count_input_records` counts the records of an input without the parsers (JSONL: its
non-blank lines, plus one for a compressed stream cut short; CSV: the records Arrow splits and the ones it cannot;
Parquet: the row counts of its footers; Arrow: its rows), so every record can be checked to be either a document
or a quarantine row.
"""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sift.pipelines.core.lake.compression import CUT_ERRORS, open_bytes
from sift.pipelines.core.lake.csv import csv_blocks
from sift.pipelines.core.lake.files import list_input_files, opener
from sift.pipelines.core.lake.jsonl import is_blank_line
from sift.pipelines.core.lake.parquet import open_parquet


def ingest_stats(docs: pa.Table, quarantine: pa.Table) -> dict[str, Any]:
    """Counts in and out, per source and per kind of error."""
    per_source: dict[str, int] = {}
    if docs.num_rows:
        counts = pc.value_counts(docs.column("source")).to_pylist()
        per_source = {c["values"]: c["counts"] for c in sorted(counts, key=lambda c: c["values"])}
    errors: dict[str, int] = {}
    for err in quarantine.column("error").to_pylist():
        kind = err.split(":")[0]
        errors[kind] = errors.get(kind, 0) + 1
    return {
        "rows_in": docs.num_rows + quarantine.num_rows,
        "documents": docs.num_rows,
        "quarantined": quarantine.num_rows,
        "documents_per_source": per_source,
        "quarantine_by_error": dict(sorted(errors.items())),
        "text_bytes": int(pc.sum(pc.binary_length(docs.column("text"))).as_py() or 0) if docs.num_rows else 0,
    }


def count_input_records(uri: str | os.PathLike[str]) -> int:
    """Count the records of an input independently of the parsers (for accounting checks).

    JSONL: non-blank lines, plus one for a compressed stream cut short; columnar formats: their row counts.
    """
    fs, paths, fmt = list_input_files(uri)
    total = 0
    for path in paths:
        if fmt == "jsonl":
            stream = open_bytes(fs, path)
            try:
                while True:
                    try:
                        line = stream.readline()
                    except CUT_ERRORS:
                        total += 1
                        break
                    if not line:
                        break
                    total += not is_blank_line(line)
            finally:
                stream.close()
        elif fmt == "parquet":
            total += sum(open_parquet(opener(fs, path), path)[1])
        elif fmt == "csv":
            total += sum(len(b.rows) + len(b.bad) for b in csv_blocks(opener(fs, path), path, path))
        else:
            with fs.open(path, "rb") as f:
                total += pa.ipc.open_stream(f.read()).read_all().num_rows
    return total
