"""The lake: how every stage reads its inputs into the documents contract and writes lake tables.

Inputs are Parquet (file or folder), JSONL (plain, .gz, .zst), CSV/TSV and Arrow `save_to_disk` folders, on local
paths or any fsspec URL. Every record becomes either a document (ARCHITECTURE.md, "Record tables": `id` string,
unique within the input; `source` string; `text` string; any other columns kept) or a quarantine row (`file`, the
1-based `row`, the `error`, the raw `payload`): malformed JSON, invalid UTF-8, missing or wrong-typed required
fields, empty ids, nesting deeper than MAX_NESTING, CSV rows with the wrong number of fields, the cut record of a
truncated file, the rows of an undecodable Parquet row group and repeated ids (the first occurrence by row number
stays). `count_input_records` counts records by the same rules, independently of the parsers. An input that cannot
be read at all (a folder mixing formats included) raises `InputError`; files of a folder that are not read are
listed by `input_files`.

Modules, by job: `files` (input files, formats, skipped files), `compression` (decompression, cut detection),
`validate` (the documents contract, quarantine rows, the id registry), `jsonl`, `csv`, `parquet` (Parquet and
Arrow) readers, `read` (whole inputs), `stats` (counts), `write` (atomic, deterministic Parquet), `tables` (the
tables of a lake, for containment).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sift.pipelines.core.lake.files import (
        InputFiles,
        detect_format,
        input_files,
        list_input_files,
        skipped_files_line,
    )
    from sift.pipelines.core.lake.jsonl import MAX_NESTING, is_blank_line
    from sift.pipelines.core.lake.read import iter_documents, parse_file, read_documents, read_table
    from sift.pipelines.core.lake.stats import count_input_records, ingest_stats
    from sift.pipelines.core.lake.tables import TableRef, discover_tables, table_from_paths
    from sift.pipelines.core.lake.validate import (
        DOC_SCHEMA,
        QUARANTINE_SCHEMA,
        Batch,
        Fields,
        IngestResult,
        default_source_for,
        extras_table,
        normalise_source,
    )
    from sift.pipelines.core.lake.write import write_table

# Public name -> the module that defines it. Names load on first use, so importing one module of the package
# (`tables`, which `sift contain` imports before it starts its side worker) does not import every reader's
# dependencies (fsspec among them).
_EXPORTS = {
    "InputFiles": "files",
    "detect_format": "files",
    "input_files": "files",
    "list_input_files": "files",
    "skipped_files_line": "files",
    "MAX_NESTING": "jsonl",
    "is_blank_line": "jsonl",
    "iter_documents": "read",
    "parse_file": "read",
    "read_documents": "read",
    "read_table": "read",
    "count_input_records": "stats",
    "ingest_stats": "stats",
    "TableRef": "tables",
    "discover_tables": "tables",
    "table_from_paths": "tables",
    "DOC_SCHEMA": "validate",
    "QUARANTINE_SCHEMA": "validate",
    "Batch": "validate",
    "Fields": "validate",
    "IngestResult": "validate",
    "default_source_for": "validate",
    "extras_table": "validate",
    "normalise_source": "validate",
    "write_table": "write",
}

__all__ = [
    "Batch",
    "DOC_SCHEMA",
    "Fields",
    "IngestResult",
    "InputFiles",
    "MAX_NESTING",
    "QUARANTINE_SCHEMA",
    "TableRef",
    "count_input_records",
    "default_source_for",
    "detect_format",
    "discover_tables",
    "extras_table",
    "ingest_stats",
    "input_files",
    "is_blank_line",
    "iter_documents",
    "list_input_files",
    "normalise_source",
    "parse_file",
    "read_documents",
    "read_table",
    "skipped_files_line",
    "table_from_paths",
    "write_table",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
