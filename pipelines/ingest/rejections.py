"""Ingest's refusal of an input read with the wrong options: when no record was accepted and every one failed for
the same reason, the run stops with one line naming the reason, the keys the records hold and the flags to use."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa

from sift.pipelines.core.errors import InputError
from sift.pipelines.core.lake import Fields, IngestResult


class Rejections:
    """Watches an ingest's outcome: when no record was accepted and every one failed for the same reason, the
    input was most likely read with the wrong options (say other field names), so the run stops with one line
    that names the reason, the keys the records hold and the flags to use, instead of an empty table."""

    SAMPLE = 1000  # payloads looked at for the keys the records hold

    def __init__(self, fields: Fields) -> None:
        self.fields = fields
        self.documents = 0
        self.quarantined = 0
        self.kinds: set[str] = set()
        self.first: tuple[str, int, str] | None = None
        self.records: list[dict[str, Any]] = []

    def add(self, documents: int, quarantine: pa.Table) -> None:
        self.documents += documents
        self.quarantined += quarantine.num_rows
        if self.documents or len(self.kinds) > 1 or not quarantine.num_rows:
            return  # the run goes on: no need for the details
        files, rows = quarantine.column("file").to_pylist(), quarantine.column("row").to_pylist()
        errors = quarantine.column("error").to_pylist()
        self.kinds.update(e.split(":")[0] for e in errors)
        if self.first is None:
            self.first = (files[0], rows[0], errors[0])
        for payload in quarantine.column("payload").to_pylist()[: self.SAMPLE - len(self.records)]:
            try:
                rec = json.loads(payload)
            except (TypeError, ValueError):
                continue
            if isinstance(rec, dict):
                self.records.append(rec)

    def check(self, uri: str) -> None:
        """Raise `InputError` when every record was rejected for one reason."""
        if self.documents or not self.quarantined or len(self.kinds) != 1 or self.first is None:
            return
        file, row, error = self.first
        n = self.quarantined
        line = (
            f"{uri}: {'all ' + str(n) + ' records were' if n > 1 else 'the only record was'} quarantined, "
            f"each for: {next(iter(self.kinds))} (first at {file} row {row}: {error})"
        )
        keys = sorted({k for rec in self.records for k in rec})
        if keys:
            line += f"; keys seen: {', '.join(keys)}"
            flags = self._flags(keys)
            if flags:
                line += f"; read them with {flags}"
        raise InputError(line)

    def _flags(self, keys: list[str]) -> str:
        """`--id-field X --text-field Y` for the required fields the records lack, X and Y guessed from them."""
        flags = []
        taken = {self.fields.id, self.fields.text}
        if self.fields.id not in keys:
            ids = [k for k in keys if k not in taken and k.lower().endswith("id")]
            ids.sort(key=lambda k: not k.lower().endswith(("_id", "-id")))  # doc_id before, say, uuid
            flags.append(f"--id-field {ids[0] if ids else 'NAME'}")
            taken.update(ids[:1])
        if self.fields.text not in keys:
            size: dict[str, int] = {}
            for rec in self.records:
                for k, v in rec.items():
                    if isinstance(v, str) and k not in taken:
                        size[k] = size.get(k, 0) + len(v)
            longest = max(sorted(size), key=size.__getitem__) if size else "NAME"
            flags.append(f"--text-field {longest}")
        return " ".join(flags)


def refuse_if_all_rejected(parts: Iterable[IngestResult], uri: str, fields: Fields) -> Iterator[IngestResult]:
    """Pass ingest batches through; at the end, raise `InputError` if no record was accepted and every one failed
    for the same reason (see `Rejections`). For readers of `iter_documents` that stream (`sift dedup`)."""
    seen = Rejections(fields)
    for part in parts:
        seen.add(part.documents.num_rows, part.quarantine)
        yield part
    seen.check(uri)
