"""Lake I/O: every format, every kind of bad row, truncated inputs, atomic writes."""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from sift.pipelines.core.errors import InputError
from sift.pipelines.core.lake import (
    count_input_records,
    read_documents,
    write_table,
)

GOOD = [
    {"id": "a", "source": "web", "text": "first document", "lang": "en"},
    {"id": 2, "source": "Books Three", "text": "second document"},
    {"id": "c", "text": "third document without a source"},
]


def _jsonl(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _dump(rec: dict) -> bytes:
    return json.dumps(rec).encode()


def test_reads_good_jsonl_and_normalises_ids_and_sources(tmp_path: Path) -> None:
    r = read_documents(_jsonl(tmp_path / "docs.jsonl", [_dump(d) for d in GOOD]))
    assert r.documents.column("id").to_pylist() == ["a", "2", "c"]
    assert r.documents.column("source").to_pylist() == ["web", "books_three", "docs"]
    assert r.documents.column("lang").to_pylist() == ["en", None, None]
    assert r.quarantine.num_rows == 0


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b'{"id": "x", "text": "cut', "malformed JSON"),
        (b'{"id": "x", "text": "bad \xff\xfe byte"}', "invalid UTF-8"),
        (b'{"id": "x", "source": "web"}', "missing required field"),
        (b'{"text": "no id at all"}', "missing required field"),
        (b'{"id": "x", "text": 42}', "wrong type"),
        (b'{"id": ["x"], "text": "list id"}', "wrong type"),
        (b'{"id": "  ", "text": "blank id"}', "empty id"),
        (b'["not", "an", "object"]', "not an object"),
        (b'{"id": "a", "text": "a repeated id"}', "duplicate id"),
    ],
)
def test_each_bad_row_is_quarantined_with_row_error_and_payload(
    tmp_path: Path, line: bytes, error: str
) -> None:
    lines = [_dump(GOOD[0]), line, _dump(GOOD[2])]
    r = read_documents(_jsonl(tmp_path / "in.jsonl", lines))
    assert r.documents.column("id").to_pylist() == ["a", "c"]
    q = r.quarantine.to_pylist()
    assert len(q) == 1
    assert q[0]["row"] == 2
    assert q[0]["error"].startswith(error)
    assert q[0]["payload"]


def test_first_occurrence_of_a_repeated_id_stays(tmp_path: Path) -> None:
    lines = [_dump({"id": "k", "text": "first"}), _dump({"id": "k", "text": "second"})]
    r = read_documents(_jsonl(tmp_path / "in.jsonl", lines))
    assert r.documents.column("text").to_pylist() == ["first"]
    assert r.quarantine.column("error").to_pylist() == ["duplicate id: 'k' first seen at row 1"]


def test_truncated_plain_file_keeps_every_whole_record(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl"
    path.write_bytes(b"\n".join(_dump(d) for d in GOOD) + b'\n{"id": "z", "text": "cut in the mi')
    r = read_documents(path)
    assert r.documents.num_rows == 3
    assert r.quarantine.column("row").to_pylist() == [4]
    assert count_input_records(path) == r.documents.num_rows + r.quarantine.num_rows


@pytest.mark.parametrize("codec", ["gz", "zst"])
def test_truncated_compressed_file_keeps_records_before_the_cut(tmp_path: Path, codec: str) -> None:
    body = (
        b"\n".join(_dump({"id": str(i), "text": f"document number {i} " * 20}) for i in range(2000)) + b"\n"
    )
    packed = gzip.compress(body) if codec == "gz" else zstandard.ZstdCompressor().compress(body)
    whole = tmp_path / f"whole.jsonl.{codec}"
    whole.write_bytes(packed)
    assert read_documents(whole).documents.num_rows == 2000
    cut = tmp_path / f"cut.jsonl.{codec}"
    cut.write_bytes(packed[: len(packed) // 2])
    r = read_documents(cut)
    assert 0 < r.documents.num_rows < 2000
    assert r.documents.column("id").to_pylist() == [str(i) for i in range(r.documents.num_rows)]
    assert r.quarantine.num_rows >= 1
    assert r.quarantine.column("error").to_pylist()[-1].startswith(("truncated input", "malformed JSON"))
    assert count_input_records(cut) == r.documents.num_rows + r.quarantine.num_rows


def test_parquet_file_and_folder(tmp_path: Path) -> None:
    table = pa.table({"doc": ["1", "2", "1"], "body": ["x", None, "z"], "source": ["s", "s", "t"]})
    pq.write_table(table, tmp_path / "one.parquet")
    folder = tmp_path / "folder"
    folder.mkdir()
    pq.write_table(table.slice(0, 2), folder / "part-0.parquet")
    pq.write_table(table.slice(2), folder / "part-1.parquet")
    for uri in (tmp_path / "one.parquet", folder):
        r = read_documents(uri, id_field="doc", text_field="body")
        assert r.documents.column("id").to_pylist() == ["1"]
        errors = r.quarantine.column("error").to_pylist()
        assert errors[0].startswith("missing required field") and errors[1].startswith("duplicate id")


def test_csv_and_arrow_folder(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text('id,text,source\n1,"hello, world",a\n2,second,b\n')
    assert read_documents(tmp_path / "d.csv").documents.num_rows == 2
    arrow_dir = tmp_path / "hf"
    arrow_dir.mkdir()
    table = pa.table({"id": ["1", "2"], "text": ["a", "b"]})
    with pa.ipc.new_stream(arrow_dir / "data-00000-of-00001.arrow", table.schema) as w:
        w.write_table(table)
    (arrow_dir / "state.json").write_text("{}")
    assert read_documents(arrow_dir).documents.column("source").to_pylist() == ["data-00000-of-00001"] * 2


def test_unreadable_whole_inputs_raise_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_documents(tmp_path / "missing.jsonl")
    (tmp_path / "x.xlsx").write_bytes(b"PK")
    with pytest.raises(InputError, match="unknown file format"):
        read_documents(tmp_path / "x.xlsx")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="not a readable Parquet"):
        read_documents(tmp_path / "bad.parquet")
    pq.write_table(pa.table({"id": ["1"]}), tmp_path / "notext.parquet")
    with pytest.raises(InputError, match="missing required column"):
        read_documents(tmp_path / "notext.parquet")


def test_atomic_write_replaces_whole_and_leaves_no_temporaries(tmp_path: Path) -> None:
    target = tmp_path / "t" / "table.parquet"
    write_table(pa.table({"a": [1, 2, 3]}), target)
    write_table(pa.table({"a": [4]}), target)
    assert pq.read_table(target).column("a").to_pylist() == [4]
    assert [p.name for p in target.parent.iterdir()] == ["table.parquet"]
    first = target.read_bytes()
    write_table(pa.table({"a": [4]}), target)
    assert target.read_bytes() == first


def test_arrow_fast_path_and_per_line_path_read_the_same_documents(
    tmp_path: Path, real_docs, monkeypatch
) -> None:
    from sift.pipelines.core.lake import jsonl

    rows = real_docs.slice(0, 300).to_pylist()
    for i, r in enumerate(rows):
        r["n"] = i
        r["score"] = i / 7
        r["flag"] = i % 2 == 0
        if i % 5 == 0:
            r["id"] = i  # integer ids are normalised to strings on both paths
        if i % 9 == 0:
            del r["source"]
    lines = [json.dumps(r, ensure_ascii=False).encode() for r in rows]
    lines.insert(150, json.dumps(rows[3]).encode())  # a repeated id
    path = _jsonl(tmp_path / "real.jsonl", lines)
    fast = read_documents(path)
    monkeypatch.setattr(jsonl, "_parse_jsonl_block", lambda *a, **k: None)
    slow = read_documents(path)
    assert fast.documents.equals(slow.documents)
    assert fast.quarantine.column("error").to_pylist() == slow.quarantine.column("error").to_pylist()
    assert fast.documents.num_rows == 300


@pytest.mark.parametrize(
    "batch_rows,batch_bytes,read_size",
    [(7, 1 << 20, 1 << 24), (1000, 300, 1 << 24), (3, 64, 1 << 24), (50, 40, 97)],
)
def test_jsonl_blocks_number_every_line_whatever_the_batching(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_rows: int, batch_bytes: int, read_size: int
) -> None:
    """Blocks are cut by rows and bytes without Python per line; blank, whitespace-only, CRLF and malformed
    lines in a block send it down the per-line path, so rows, quarantine and documents match it exactly."""
    import random

    from sift.pipelines.core.lake import iter_documents, jsonl

    rng = random.Random(batch_rows)
    lines: list[bytes] = []
    for i in range(400):
        kind = rng.random()
        rec = _dump({"id": f"d{i}", "source": "s", "text": "word " * rng.randint(1, 80)})
        if kind < 0.03:
            lines.append(b"")
        elif kind < 0.05:
            lines.append(b" \t ")
        elif kind < 0.08:
            lines.append(rec + b"\r")
        elif kind < 0.10:
            lines.append(b'{"id": "broken", "text": ')
        else:
            lines.append(rec)
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines))  # no newline after the last line
    monkeypatch.setattr(jsonl, "BATCH_BYTES", batch_bytes)
    monkeypatch.setattr(jsonl, "_READ", read_size)  # 97: lines longer than the buffer make it grow
    batches = list(iter_documents(path, batch_rows=batch_rows))
    assert all(b.stats["rows_in"] <= batch_rows for b in batches)
    docs = pa.concat_tables([b.documents for b in batches])
    quarantine = pa.concat_tables([b.quarantine for b in batches])
    monkeypatch.setattr(jsonl, "_parse_jsonl_block", lambda *a, **k: None)
    monkeypatch.setattr(jsonl, "_parse_jsonl_arrow", lambda *a, **k: None)
    slow = read_documents(path)
    assert docs.equals(slow.documents)
    assert quarantine.equals(slow.quarantine)
    blank = sum(1 for line in lines if not line.strip())
    assert docs.num_rows + quarantine.num_rows + blank == len(lines)
    broken_rows = [i + 1 for i, line in enumerate(lines) if line.startswith(b'{"id": "broken"')]
    assert quarantine.column("row").to_pylist() == broken_rows


# ---------------------------------------------------------------------------------------------------------------
# Issue 9: rows that vanished, folders that hid files, crashes on bad input


def _ingest_cli(sift_cli, src: Path, out: Path) -> tuple[int, dict, pa.Table, pa.Table, str]:
    proc = sift_cli("ingest", str(src), "--output", str(out), timeout=120)
    if proc.returncode != 0:
        return proc.returncode, {}, pa.table({}), pa.table({}), proc.stdout + proc.stderr
    stats = json.loads((out / "stats.json").read_text())
    docs = pq.read_table(out / "documents.parquet")
    quarantine = pq.read_table(out / "quarantine.parquet")
    return 0, stats, docs, quarantine, proc.stdout + proc.stderr


def test_csv_column_whose_type_changes_after_the_first_block_loses_no_row(tmp_path: Path) -> None:
    """Arrow infers a column's type from the first 4 MB; a later cell of another type must not end the file."""
    lines = ["id,text,extra"] + [f"{i},text {i} {'x' * 150},{i}" for i in range(30000)]
    lines[29001] = "29000,a row far past the first block,not a number"
    path = tmp_path / "types.csv"
    path.write_text("\n".join(lines) + "\n")
    assert len("\n".join(lines[:29001])) > 1 << 22  # the odd cell lies past the first 4 MB block
    r = read_documents(path)
    assert r.documents.num_rows == 30000
    assert r.quarantine.num_rows == 0
    assert r.stats["rows_in"] == 30000 == count_input_records(path)
    extra = r.documents.column("extra").to_pylist()
    assert extra[0] == "0" and extra[29000] == "not a number"


def test_folder_mixing_arrow_with_other_formats_is_refused(tmp_path: Path, sift_cli) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    _jsonl(folder / "a.jsonl", [_dump(d) for d in GOOD])
    table = pa.table({"id": ["x"], "text": ["from arrow"]})
    with pa.ipc.new_stream(folder / "data-00000.arrow", table.schema) as w:
        w.write_table(table)
    with pytest.raises(InputError, match="mixes formats"):
        read_documents(folder)
    proc = sift_cli("ingest", str(folder), "--output", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "mixes formats" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_files_skipped_for_their_extension_are_listed_in_stats_and_summary(tmp_path: Path, sift_cli) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    _jsonl(folder / "a.jsonl", [_dump(d) for d in GOOD])
    (folder / "README.md").write_text("about these documents\n")
    (folder / "notes.txt").write_text("x\n")
    rc, stats, docs, _, output = _ingest_cli(sift_cli, folder, tmp_path / "out")
    assert rc == 0, output
    assert docs.num_rows == 3
    assert stats["skipped_files"] == {"README.md": "unknown format", "notes.txt": "unknown format"}
    assert "skipped 2 file(s) not read: README.md (unknown format), notes.txt (unknown format)" in output
    proc = sift_cli("dedup", str(folder), "--output", str(tmp_path / "dedup"))
    assert proc.returncode == 0, proc.stderr
    assert "skipped 2 file(s) not read: README.md (unknown format), notes.txt (unknown format)" in proc.stdout


def test_arrow_dataset_folder_reads_its_arrow_files_and_lists_its_metadata_as_skipped(tmp_path: Path) -> None:
    from sift.pipelines.core.lake import input_files

    folder = tmp_path / "hf"
    folder.mkdir()
    table = pa.table({"id": ["1", "2"], "text": ["a", "b"]})
    for name in ("data-00000-of-00002.arrow", "data-00001-of-00002.arrow"):
        with pa.ipc.new_stream(folder / name, table.schema) as w:
            w.write_table(table.slice(int(name[5:10]), 1))
    (folder / "state.json").write_text("{}")
    (folder / "dataset_info.json").write_text("{}")
    found = input_files(folder)
    assert found.format == "arrow"
    assert [Path(p).name for p in found.paths] == ["data-00000-of-00002.arrow", "data-00001-of-00002.arrow"]
    assert found.skipped == {
        "dataset_info.json": "Arrow dataset metadata",
        "state.json": "Arrow dataset metadata",
    }
    assert read_documents(folder).documents.column("id").to_pylist() == ["1", "2"]


@pytest.mark.parametrize("odd", [b"\xc2\xa0", b"\x1c", b"\xe2\x80\xa8", b" \xc2\xa0\t"])
def test_lines_of_unicode_only_whitespace_are_quarantined_and_counted(tmp_path: Path, odd: bytes) -> None:
    """One blank-line rule (ASCII whitespace only, as JSON defines it) for the parser and the record count."""
    path = _jsonl(tmp_path / "odd.jsonl", [_dump(GOOD[0]), odd, b"", b"  \t", _dump(GOOD[2])])
    r = read_documents(path)
    assert r.documents.column("id").to_pylist() == ["a", "c"]
    assert r.quarantine.column("row").to_pylist() == [2]
    assert r.quarantine.column("error").to_pylist()[0].startswith("malformed JSON")
    assert count_input_records(path) == 3 == r.documents.num_rows + r.quarantine.num_rows


def test_csv_row_with_invalid_utf8_is_quarantined_alone(tmp_path: Path, sift_cli) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"id,text,note\n1,ok,n\n2,bad \xff byte,n\n3,fine,n\n")
    r = read_documents(path)
    assert r.documents.column("id").to_pylist() == ["1", "3"]
    q = r.quarantine.to_pylist()
    assert [(x["row"], x["error"].split(":")[0]) for x in q] == [(2, "invalid UTF-8")]
    assert "'text'" in q[0]["error"]
    assert json.loads(q[0]["payload"]) == {"id": "2", "text": "bad \\xff byte", "note": "n"}
    assert count_input_records(path) == 3
    rc, stats, docs, quarantine, output = _ingest_cli(sift_cli, path, tmp_path / "out")
    assert rc == 0, output
    assert (stats["documents"], stats["quarantined"], stats["rows_in"]) == (2, 1, 3)


@pytest.mark.parametrize(("depth", "error"), [(100_000, "malformed JSON"), (1000, "too deeply nested")])
def test_deeply_nested_json_is_quarantined_not_a_crash(
    tmp_path: Path, sift_cli, depth: int, error: str
) -> None:
    """Arrow's JSON reader crashed on deep nesting; orjson refuses 100,000 levels, and 1,000 levels (which orjson
    takes) are refused as deeper than Python's json module and Arrow's converters can write back."""
    deep = b'{"id": "c", "text": "t", "x": ' + b"[" * depth + b"]" * depth + b"}"
    path = _jsonl(tmp_path / "deep.jsonl", [_dump(GOOD[0]), deep, _dump(GOOD[2])])
    rc, stats, docs, quarantine, output = _ingest_cli(sift_cli, path, tmp_path / "out")
    assert rc == 0, output
    assert docs.column("id").to_pylist() == ["a", "c"]
    assert quarantine.column("row").to_pylist() == [2]
    assert quarantine.column("error").to_pylist()[0].startswith(error)
    assert stats["rows_in"] == 3 == count_input_records(path)


@pytest.mark.parametrize("quoted", [False, True])
def test_truncated_csv_gz_keeps_whole_records_and_quarantines_the_cut(
    tmp_path: Path, sift_cli, quoted: bool
) -> None:
    """A cut inside a quoted field that spans lines must not hand Arrow half a record (it reads one as whole)."""
    texts = [f"{i} {'word ' * 20}" + ('\nits second line, "quoted"' if quoted else "") for i in range(20000)]
    cells = ['"' + t.replace('"', '""') + '"' if quoted else t for t in texts]
    body = "id,text,n\n" + "".join(f"{i},{c},{i}\n" for i, c in enumerate(cells))
    packed = gzip.compress(body.encode())
    whole = tmp_path / "whole.csv.gz"
    whole.write_bytes(packed)
    assert read_documents(whole).documents.num_rows == 20000
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    rc, stats, docs, quarantine, output = _ingest_cli(sift_cli, cut, tmp_path / "out")
    assert rc == 0, output
    n = docs.num_rows
    assert 0 < n < 20000
    assert docs.column("id").to_pylist() == [str(i) for i in range(n)]
    assert docs.column("text").to_pylist() == texts[:n]
    q = quarantine.to_pylist()
    assert [(x["row"], x["error"].split(":")[0]) for x in q] == [(n + 1, "truncated input")]
    decoded = zlib.decompressobj(wbits=31).decompress(cut.read_bytes())
    whole = "id,text,n\n" + "".join(f"{i},{c},{i}\n" for i, c in enumerate(cells[:n]))
    assert q[0]["payload"] == decoded[len(whole.encode()) :].decode()
    assert stats["rows_in"] == n + 1 == count_input_records(cut)


def _parquet_with_corrupt_middle_row_group(path: Path) -> None:
    table = pa.table(
        {"id": [str(i) for i in range(30)], "text": [f"document number {i:04d}" for i in range(30)]}
    )
    pq.write_table(table, path, row_group_size=10, compression="none", use_dictionary=False)
    data = bytearray(path.read_bytes())
    at = data.find(b"document number 0015")
    assert at > 0
    data[at - 4 : at] = b"\xff\xff\xff\x7f"  # the PLAIN length prefix of a value: far past the page's end
    path.write_bytes(bytes(data))


def test_parquet_with_a_corrupt_data_page_quarantines_that_row_group(tmp_path: Path, sift_cli) -> None:
    path = tmp_path / "corrupt.parquet"
    _parquet_with_corrupt_middle_row_group(path)
    r = read_documents(path)
    assert r.documents.column("id").to_pylist() == [str(i) for i in (*range(10), *range(20, 30))]
    q = r.quarantine.to_pylist()
    assert [x["row"] for x in q] == list(range(11, 21))
    assert all(x["error"].startswith("unreadable Parquet row group 1 (rows 11-20): ") for x in q)
    assert [json.loads(x["payload"]) for x in q] == [
        {"id": str(i)} for i in range(10, 20)
    ]  # what still reads
    assert count_input_records(path) == 30
    folder = tmp_path / "lake"
    folder.mkdir()
    path.rename(folder / "corrupt.parquet")
    pq.write_table(pa.table({"id": ["x"], "text": ["an intact file"]}), folder / "other.parquet")
    rc, stats, docs, quarantine, output = _ingest_cli(sift_cli, folder, tmp_path / "out")
    assert rc == 0, output
    assert (stats["documents"], stats["quarantined"], stats["rows_in"]) == (21, 10, 31)
    assert "x" in docs.column("id").to_pylist()


def test_parquet_string_with_invalid_utf8_is_quarantined_alone(tmp_path: Path) -> None:
    """Arrow writes string cells without checking them; reading one back as Python text raised a trace."""
    texts = [b"fine", b"bad \xff byte", b"also fine"]
    data = b"".join(texts)
    offsets = [0]
    for t in texts:
        offsets.append(offsets[-1] + len(t))
    text = pa.Array.from_buffers(
        pa.string(), 3, [None, pa.py_buffer(pa.array(offsets, pa.int32()).buffers()[1]), pa.py_buffer(data)]
    )
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"id": ["1", "2", "3"], "text": text}), path)
    r = read_documents(path)
    assert r.documents.column("id").to_pylist() == ["1", "3"]
    q = r.quarantine.to_pylist()
    assert [(x["row"], x["error"]) for x in q] == [(2, "invalid UTF-8: column(s) ['text']")]
    assert json.loads(q[0]["payload"]) == {"id": "2", "text": "bad \\xff byte"}
