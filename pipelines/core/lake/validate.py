"""The documents contract and the quarantine: what a record must hold, and where every other record goes.

Documents (ARCHITECTURE.md, "Record tables"): `id` (string, unique within the input), `source` (string), `text`
(string), then every other input column (one whose name clashes with a contract column is kept as `NAME_input`).
Which input fields hold the id, text and source is chosen by `Fields`. A record is accepted when it is an object
whose id is a non-blank string or integer (stored as the trimmed string), whose text is a string and whose source,
when present, is a string (normalised by `normalise_source`; a record without one gets its file's
`default_source_for`). Every other record becomes a quarantine row (QUARANTINE_SCHEMA: `file`, the 1-based `row`,
the `error`, the raw `payload`), never dropped. `IdRegistry` keeps the first occurrence of an id by (file, row) and
quarantines the later ones, naming where the first one was (`record_payload`: the repeated record as JSON);
`accepted_table` is a parsed `Batch`'s accepted records as a documents table, and `finish_batch` turns a parsed
`Batch` into a documents table and a quarantine table.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from sift.pipelines.core.errors import InputError
from sift.pipelines.core.lake.compression import strip_compression

DOC_SCHEMA = pa.schema([("id", pa.string()), ("source", pa.string()), ("text", pa.string())])
QUARANTINE_SCHEMA = pa.schema(
    [("file", pa.string()), ("row", pa.int64()), ("error", pa.string()), ("payload", pa.string())]
)
_SOURCE_RE = re.compile(r"[^a-z0-9_.-]+")


@dataclass(frozen=True)
class Fields:
    """Which input fields hold the record id, text and source."""

    id: str = "id"
    text: str = "text"
    source: str = "source"


@dataclass
class IngestResult:
    """Documents that passed validation, the quarantined rows, and counts."""

    documents: pa.Table
    quarantine: pa.Table
    stats: dict[str, Any] = field(default_factory=dict)


def normalise_source(value: str) -> str:
    """A source name that is safe as a partition key and a file name: lower case, [a-z0-9_.-]."""
    s = _SOURCE_RE.sub("_", value.strip().lower()).strip("_")
    return s or "unknown"


@dataclass
class Batch:
    """Rows of one input batch before duplicate-id checks."""

    file: str
    rows: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    extras: list[dict[str, Any]] = field(default_factory=list)
    q_rows: list[int] = field(default_factory=list)
    q_errors: list[str] = field(default_factory=list)
    q_payloads: list[str] = field(default_factory=list)
    # Accepted rows parsed straight into Arrow (id, source, text, other columns); `ids` and `rows` still listed.
    arrow: pa.Table | None = None

    def quarantine(self, row: int, error: str, payload: str) -> None:
        self.q_rows.append(row)
        self.q_errors.append(error)
        self.q_payloads.append(payload)


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", bool: "a boolean", int: "an integer", float: "a number"}.get(
        type(value), "a " + type(value).__name__
    )


def accept_record(
    batch: Batch, row: int, rec: Any, payload: str, fields: Fields, default_source: str
) -> None:
    """Validate one parsed record; append it to the batch or to its quarantine."""
    if not isinstance(rec, dict):
        batch.quarantine(row, f"not an object: the record is {_type_name(rec)}", payload)
        return
    for name in (fields.id, fields.text):
        if name not in rec or rec[name] is None:
            batch.quarantine(row, f"missing required field: '{name}'", payload)
            return
    rid, text = rec[fields.id], rec[fields.text]
    if isinstance(rid, bool) or not isinstance(rid, str | int):
        batch.quarantine(
            row, f"wrong type: '{fields.id}' is {_type_name(rid)}, expected a string or integer", payload
        )
        return
    if not isinstance(text, str):
        batch.quarantine(
            row, f"wrong type: '{fields.text}' is {_type_name(text)}, expected a string", payload
        )
        return
    rid = str(rid).strip()
    if not rid:
        batch.quarantine(row, f"empty id: '{fields.id}' is blank", payload)
        return
    src = rec.get(fields.source)
    if src is not None and not isinstance(src, str):
        batch.quarantine(
            row, f"wrong type: '{fields.source}' is {_type_name(src)}, expected a string", payload
        )
        return
    batch.rows.append(row)
    batch.ids.append(rid)
    batch.sources.append(normalise_source(src) if src else default_source)
    batch.texts.append(text)
    batch.extras.append({k: v for k, v in rec.items() if k not in (fields.id, fields.text, fields.source)})


def check_columns(names: list[str], display: str, fields: Fields) -> None:
    """Refuse a columnar input (`display`) that lacks the id or text column."""
    missing = [name for name in (fields.id, fields.text) if name not in names]
    if missing:
        raise InputError(
            f"{display}: missing required column(s) {missing}; columns are {names} "
            f"(choose others with --id-field/--text-field)"
        )


def default_source_for(path: str) -> str:
    """The source a file's records get when they carry none: the file name without its extensions."""
    name = Path(path).name
    base, _ = strip_compression(name)
    return normalise_source(base.split(".")[0])


def extras_table(extras: list[dict[str, Any]]) -> dict[str, pa.Array]:
    """The other input columns of accepted records, one Arrow array each; a column whose values Arrow cannot hold
    in one type keeps them as JSON text."""
    names: dict[str, None] = {}
    for e in extras:
        names.update(dict.fromkeys(e))
    cols: dict[str, pa.Array] = {}
    for name in names:
        values = [e.get(name) for e in extras]
        try:
            cols[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            cols[name] = pa.array([None if v is None else json.dumps(v, ensure_ascii=False) for v in values])
    return cols


class IdRegistry:
    """First occurrence of an id wins; later ones are quarantined, naming where the first one was."""

    def __init__(self) -> None:
        self.first: dict[str, tuple[str, int]] = {}

    def split(self, batch: Batch) -> tuple[list[int], Batch]:
        keep: list[int] = []
        for i, (rid, row) in enumerate(zip(batch.ids, batch.rows, strict=True)):
            seen = self.first.get(rid)
            if seen is None:
                self.first[rid] = (batch.file, row)
                keep.append(i)
            else:
                where = f"row {seen[1]}" if seen[0] == batch.file else f"{seen[0]} row {seen[1]}"
                batch.quarantine(
                    row, f"duplicate id: '{rid}' first seen at {where}", record_payload(batch, i)
                )
        return keep, batch


def record_payload(batch: Batch, i: int) -> str:
    """The quarantine payload of the i-th accepted record of a batch (a repeated id's record): its documents row
    as JSON, from the batch's table on the fast path, from the parsed record otherwise."""
    if batch.arrow is not None:
        payload = batch.arrow.slice(i, 1).to_pylist()[0]
    else:
        payload = {"id": batch.ids[i], "source": batch.sources[i], "text": batch.texts[i], **batch.extras[i]}
    return json.dumps(payload, ensure_ascii=False, default=str)


def accepted_table(batch: Batch) -> pa.Table:
    """A batch's accepted records as a documents table (id, source, text, other columns), repeated ids included."""
    if batch.arrow is not None:
        return batch.arrow
    cols = {
        "id": pa.array(batch.ids, pa.string()),
        "source": pa.array(batch.sources, pa.string()),
        "text": pa.array(batch.texts, pa.string()),
    }
    for name, arr in extras_table(batch.extras).items():
        # An input column that clashes with a contract column (say `id` while --id-field is `doc_id`) is
        # kept under a suffixed name rather than dropped.
        cols[name if name not in cols else f"{name}_input"] = arr
    return pa.table(cols)


def finish_batch(batch: Batch, registry: IdRegistry) -> IngestResult:
    """A parsed batch as a documents table and a quarantine table (sorted by row), repeated ids settled by
    `registry`."""
    keep, batch = registry.split(batch)
    docs = accepted_table(batch)
    if len(keep) < docs.num_rows:
        docs = docs.take(pa.array(keep, pa.int64()))
    order = sorted(range(len(batch.q_rows)), key=lambda i: batch.q_rows[i])
    quarantine = pa.table(
        {
            "file": pa.array([batch.file] * len(order), pa.string()),
            "row": pa.array([batch.q_rows[i] for i in order], pa.int64()),
            "error": pa.array([batch.q_errors[i] for i in order], pa.string()),
            "payload": pa.array([batch.q_payloads[i] for i in order], pa.string()),
        },
        schema=QUARANTINE_SCHEMA,
    )
    return IngestResult(docs, quarantine, {"rows_in": docs.num_rows + quarantine.num_rows})
