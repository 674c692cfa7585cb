"""`sift ingest` end to end: exit codes, outputs, summary, and the same rows from Polars and Spark."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_lake_spark import write_wide_jsonl

BAD_MIX = [
    b'{"id": "1", "source": "web", "text": "a good document about lakes"}',
    b'{"id": "2", "source": "web", "text": "malformed because the quote never ends}',
    b'{"id": "3", "source": "web", "text": "invalid utf-8 \xc3\x28 here"}',
    b'{"id": "4", "source": "web"}',
    b'{"id": "5", "source": "books", "text": "another good document"}',
    b'{"id": "1", "source": "books", "text": "a repeated id"}',
    b'{"id": "6", "source": "books", "text": "the last good document"}',
    b'{"id": "7", "source": "books", "text": "truncated in the mid',
]


@pytest.fixture
def bad_jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(BAD_MIX))  # the last record is cut: no closing quote, brace or newline
    return path


def test_cli_ingest_bad_input_exits_0_and_accounts_for_every_row(
    bad_jsonl: Path, tmp_path: Path, sift_cli
) -> None:
    out = tmp_path / "out"
    proc = sift_cli("ingest", str(bad_jsonl), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    docs = pq.read_table(out / "documents.parquet")
    quarantine = pq.read_table(out / "quarantine.parquet")
    assert sorted(docs.column("id").to_pylist()) == ["1", "5", "6"]
    assert quarantine.column("row").to_pylist() == [2, 3, 4, 6, 8]
    assert [e.split(":")[0] for e in quarantine.column("error").to_pylist()] == [
        "malformed JSON",
        "invalid UTF-8",
        "missing required field",
        "duplicate id",
        "malformed JSON",
    ]
    assert set(quarantine.column_names) >= {"row", "error", "payload"}
    stats = json.loads((out / "stats.json").read_text())
    assert stats["rows_in"] == len(BAD_MIX) == stats["documents"] + stats["quarantined"]
    assert "quarantined" in proc.stdout and "documents" in proc.stdout


def test_cli_missing_input_is_one_line_and_exit_2(tmp_path: Path, sift_cli) -> None:
    proc = sift_cli("ingest", str(tmp_path / "nope.jsonl"), "--output", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert "no such file" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_cli_usage_errors_exit_2(tmp_path: Path, sift_cli) -> None:
    assert sift_cli("ingest").returncode == 2
    proc = sift_cli("ingest", str(tmp_path), "--output", str(tmp_path / "o"), "--engine", "duckdb")
    assert proc.returncode == 2 and "engine" in proc.stderr


def test_cli_version_and_help(sift_cli) -> None:
    proc = sift_cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("sift ")
    for cmd in ("ingest", "demo", "config"):
        helped = sift_cli(cmd, "--help")
        assert helped.returncode == 0 and "Usage" in helped.stdout


def test_config_show_layers_toml_env_and_flags(tmp_path: Path, sift_cli, monkeypatch) -> None:
    from sift.pipelines.core.config import ConfigError, load_config
    from sift.pipelines.ingest.config import IngestConfig

    toml = tmp_path / "sift.toml"
    toml.write_text('[ingest]\nid_field = "doc_id"\ntext_field = "body"\n')
    monkeypatch.setenv("SIFT_INGEST__TEXT_FIELD", "content")
    cfg = load_config(IngestConfig, {"source_field": "origin"}, file=toml)
    assert (cfg.id_field, cfg.text_field, cfg.source_field) == ("doc_id", "content", "origin")
    monkeypatch.setenv("SIFT_INGEST__BATCH_ROWS", "-1")
    with pytest.raises(ConfigError, match=r"\[ingest\] batch_rows = '-1' \(environment\)"):
        load_config(IngestConfig, file=toml)
    monkeypatch.delenv("SIFT_INGEST__BATCH_ROWS")
    proc = sift_cli("config", "show", "--config", str(toml))
    assert proc.returncode == 0
    assert 'id_field = "doc_id"' in proc.stdout and "[lake]" in proc.stdout


def _rows(out: Path, name: str) -> list[tuple]:
    table = pq.read_table(out / name)
    return sorted(tuple(str(v) for v in row.values()) for row in table.to_pylist())


OTHER_FIELDS = [
    b'{"doc_id": "a1", "content": "a document whose fields have other names", "lang": "en"}',
    b'{"doc_id": "a2", "content": "another one"}',
    b'{"doc_id": "a3", "content": "and a third", "lang": "de"}',
]


@pytest.fixture
def other_fields_jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "other.jsonl"
    path.write_bytes(b"\n".join(OTHER_FIELDS) + b"\n")
    return path


def _assert_names_the_fields(stderr: str) -> None:
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "all 3 records" in stderr and "missing required field" in stderr
    assert "keys seen: content, doc_id, lang" in stderr
    assert "--id-field doc_id --text-field content" in stderr


def test_cli_ingest_other_field_names_exit_2_naming_keys_and_flags(
    other_fields_jsonl: Path, tmp_path: Path, sift_cli
) -> None:
    out = tmp_path / "out"
    proc = sift_cli("ingest", str(other_fields_jsonl), "--output", str(out))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    _assert_names_the_fields(proc.stderr)
    assert not (out / "documents.parquet").exists()
    # The flags it names work.
    fixed = sift_cli(
        "ingest",
        str(other_fields_jsonl),
        "--output",
        str(out),
        "--id-field",
        "doc_id",
        "--text-field",
        "content",
    )
    assert fixed.returncode == 0, fixed.stderr
    assert pq.read_table(out / "documents.parquet").column("id").to_pylist() == ["a1", "a2", "a3"]


def test_cli_ingest_every_row_failing_one_way_exits_2(tmp_path: Path, sift_cli) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"id": "1", "text": "caf\xe9"}\n{"id": "2", "text": "na\xefve"}\n')
    proc = sift_cli("ingest", str(path), "--output", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "all 2 records" in proc.stderr and "invalid UTF-8" in proc.stderr and "row 1" in proc.stderr


def test_cli_ingest_rows_failing_for_different_reasons_still_exit_0(tmp_path: Path, sift_cli) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"id": "1"}\n{"id": "2", "text": "cut\n')
    proc = sift_cli("ingest", str(path), "--output", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert pq.read_table(tmp_path / "out" / "quarantine.parquet").num_rows == 2


def test_cli_dedup_other_field_names_exit_2_naming_keys_and_flags(
    other_fields_jsonl: Path, tmp_path: Path, sift_cli
) -> None:
    out = tmp_path / "out"
    proc = sift_cli("dedup", str(other_fields_jsonl), "--output", str(out))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    _assert_names_the_fields(proc.stderr)
    assert not (out / "kept.parquet").exists()
    # Run again into the same folder with the flags it names: the refused run's work is not resumed.
    fixed = sift_cli(
        "dedup",
        str(other_fields_jsonl),
        "--output",
        str(out),
        "--id-field",
        "doc_id",
        "--text-field",
        "content",
    )
    assert fixed.returncode == 0, fixed.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert (stats["rows_in"], stats["quarantined"], stats["kept"] + stats["removed"]) == (3, 0, 3)


def _clean_jsonl(path: Path) -> Path:
    """Clean JSONL (Arrow's fast path) with typed extras, a column null in a whole batch, and repeated ids."""
    lines = []
    for i in range(1200):
        rec = {
            "id": str(i % 1100),  # ids 0..99 repeat in the last batch
            "source": ["web", "Books", None][i % 3],
            "text": f"clean document {i} " + "words " * (i % 7),
            "n": i,
            "f": i / 7,
            "flag": i % 2 == 0,
            "label": f"l{i % 5}",
            "sparse": None if i < 600 else i,  # null in the whole first batch (batch_rows=500)
            "empty": None,
        }
        lines.append(json.dumps(rec))
    path.write_text("\n".join(lines) + "\n")
    return path


def _dirty_jsonl(path: Path) -> Path:
    """Bad lines in the first batch only, nested and mixed-type extras (the per-line path), repeated ids."""
    lines = [line.decode("utf-8", "replace") for line in BAD_MIX[:-1]]
    for i in range(1100):
        rec: dict = {"id": f"d{i % 1000}", "text": f"dirty document {i}", "n": i}
        if i < 300:
            rec["meta"] = {"k": i, "tags": ["a", "b"][: i % 3]}
            rec["mixed"] = i if i % 2 else str(i)
        if i % 97 == 0:
            rec["rare"] = 1.5
        lines.append(json.dumps(rec))
    lines[20:20] = ['{"id": "x", "text": 3}', "[1, 2]", '{"id": "", "text": "blank id"}']
    path.write_text("\n".join(lines) + "\n")
    return path


def _typed_parquet(folder: Path) -> Path:
    """Two Parquet files with extras of several types (timestamp, int, float, bool, list, null-heavy) and ids
    repeated across the files."""
    import datetime as dt

    folder.mkdir()
    for part, ids in enumerate((range(0, 700), range(600, 1300))):
        ids = list(ids)
        n = len(ids)
        table = pa.table(
            {
                "id": [f"p{i}" for i in ids],
                "text": [f"parquet document {i}" for i in ids],
                "ts": pa.array(
                    [dt.datetime(2020, 1, 1) + dt.timedelta(hours=i) for i in ids], pa.timestamp("us")
                ),
                "n": pa.array(ids, pa.int64()),
                "small": pa.array([i % 100 for i in ids], pa.int32()),
                "f": pa.array([i / 3 for i in ids], pa.float64()),
                "flag": pa.array([i % 3 == 0 for i in ids], pa.bool_()),
                "tags": pa.array([[f"t{i % 4}"] * (i % 3) for i in ids], pa.list_(pa.string())),
                "sparse": pa.array([i if i % 250 == 0 else None for i in ids], pa.int64()),
                "none": pa.nulls(n, pa.string()),
            }
        )
        if part == 1:
            table = table.drop_columns(["small"])
        pq.write_table(table, folder / f"part-{part}.parquet")
    return folder


def _csv(path: Path) -> Path:
    """CSV with int, float, bool, string and sparse columns, a blank id and repeated ids."""
    lines = ["id,text,n,f,flag,label,sparse"]
    for i in range(1100):
        rid = "" if i == 7 else str(i % 1000)
        lines.append(f'{rid},"csv document {i}, quoted",{i},{i / 4},{str(i % 2 == 0).lower()},l{i % 3},')
    lines[900] += "5"
    path.write_text("\n".join(lines) + "\n")
    return path


def _sorted_rows(table: pa.Table, key: list[str]) -> list[dict]:
    """A table's rows sorted by `key` (the content, whatever the files and row order)."""
    return table.sort_by([(k, "ascending") for k in key]).to_pylist()


@pytest.mark.spark
@pytest.mark.parametrize(
    "kind", ["clean_jsonl", "dirty_jsonl", "bad_mix_jsonl", "typed_parquet", "real_parquet", "csv"]
)
def test_polars_and_spark_ingest_write_the_same_tables(
    kind: str, bad_jsonl: Path, real_docs, tmp_path: Path, spark
) -> None:
    """Every column and its values, and the quarantine, the same from both engines (compared as content: Polars
    writes one file per table, Spark's executors a folder of part files)."""
    from sift.pipelines.ingest import IngestOptions, run_ingest

    if kind == "clean_jsonl":
        uri = _clean_jsonl(tmp_path / "clean.jsonl")
    elif kind == "dirty_jsonl":
        uri = _dirty_jsonl(tmp_path / "dirty.jsonl")
    elif kind == "bad_mix_jsonl":
        uri = bad_jsonl
    elif kind == "typed_parquet":
        uri = _typed_parquet(tmp_path / "typed")
    elif kind == "csv":
        uri = _csv(tmp_path / "docs.csv")
    else:
        uri = tmp_path / "real"
        uri.mkdir()
        pq.write_table(real_docs.slice(0, 1500), uri / "part-0.parquet")
        pq.write_table(real_docs.slice(1400, 600), uri / "part-1.parquet")  # 100 repeated ids across files
    outs, stats = {}, {}
    for engine in ("polars", "spark"):
        outs[engine] = tmp_path / f"out-{engine}"
        stats[engine] = run_ingest(
            str(uri), outs[engine], IngestOptions(batch_rows=500), engine=engine, spark_master="local[2]"
        )
    assert (outs["polars"] / "documents.parquet").is_file() and (outs["spark"] / "documents.parquet").is_dir()
    for name in ("documents.parquet", "quarantine.parquet"):
        polars_table, spark_table = (pq.read_table(outs[e] / name) for e in ("polars", "spark"))
        assert spark_table.column_names == polars_table.column_names
        key = ["id"] if name == "documents.parquet" else ["file", "row"]
        assert _sorted_rows(spark_table, key) == _sorted_rows(polars_table, key)
    for key in (
        "rows_in",
        "documents",
        "quarantined",
        "documents_per_source",
        "quarantine_by_error",
        "text_bytes",
    ):
        assert stats["spark"][key] == stats["polars"][key]
    docs = pq.read_table(outs["spark"] / "documents.parquet")
    quarantine = pq.read_table(outs["spark"] / "quarantine.parquet")
    assert docs.num_rows > 0
    ids = docs.column("id").to_pylist()
    assert len(set(ids)) == len(ids)
    if kind == "clean_jsonl":
        assert docs.schema.field("sparse").type == pa.int64() and docs.schema.field("n").type == pa.int64()
        assert quarantine.num_rows == 100  # the repeated ids
    if kind == "typed_parquet":
        types = {f.name: str(f.type) for f in docs.schema}
        assert types["ts"] == "timestamp[us]" and types["flag"] == "bool" and types["f"] == "double"
        assert docs.schema.field("tags").type.value_type == pa.string() and types["sparse"] == "int64"
        assert docs.column("tags").to_pylist()[:3] == [[], ["t1"], ["t2", "t2"]]
        assert docs.column("ts")[0].as_py().isoformat() == "2020-01-01T00:00:00"
        assert quarantine.num_rows == 100
    if kind == "real_parquet":
        assert quarantine.num_rows == 100


@pytest.mark.spark
def test_spark_ingest_other_field_names_raises_naming_keys_and_flags(other_fields_jsonl: Path, spark) -> None:
    from sift.pipelines.core.errors import InputError
    from sift.pipelines.ingest import IngestOptions, ingest

    with pytest.raises(InputError) as info:
        ingest(str(other_fields_jsonl), IngestOptions(), engine="spark", spark_master="local[2]")
    _assert_names_the_fields(str(info.value))


@pytest.mark.spark
def test_spark_run_ingest_other_field_names_raises_and_writes_nothing(
    other_fields_jsonl: Path, tmp_path: Path, spark
) -> None:
    """The refusal from Spark's counts: the same line as in memory, and no table left in the output folder."""
    from sift.pipelines.core.errors import InputError
    from sift.pipelines.ingest import IngestOptions, run_ingest

    out = tmp_path / "out"
    with pytest.raises(InputError) as info:
        run_ingest(str(other_fields_jsonl), out, IngestOptions(), engine="spark", spark_master="local[2]")
    _assert_names_the_fields(str(info.value))
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.spark
def test_spark_ingest_writes_the_same_bytes_run_to_run(bad_jsonl: Path, tmp_path: Path, spark) -> None:
    """Two Spark runs write the same files with the same bytes: part files named by their place, no _SUCCESS or
    checksum files, stats equal but for the time taken."""
    from sift.pipelines.ingest import IngestOptions, run_ingest

    folder = tmp_path / "in"
    folder.mkdir()
    bad_jsonl.rename(folder / "a-mixed.jsonl")
    _dirty_jsonl(folder / "b-dirty.jsonl")
    _clean_jsonl(folder / "c-clean.jsonl")
    outs = [tmp_path / "one", f"file://{tmp_path / 'two'}"]
    stats = [
        run_ingest(str(folder), out, IngestOptions(batch_rows=300), engine="spark", spark_master="local[2]")
        for out in outs
    ]
    one, two = tmp_path / "one", tmp_path / "two"
    files = sorted(str(p.relative_to(one)) for p in one.rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(two)) for p in two.rglob("*") if p.is_file())
    assert "documents.parquet/part-00000.parquet" in files and "stats.json" in files
    assert all(
        re.fullmatch(r"(documents|quarantine)\.parquet/part-\d{5}\.parquet|stats\.json", f) for f in files
    )
    for f in files:
        if f != "stats.json":
            assert (one / f).read_bytes() == (two / f).read_bytes(), f
    for s in stats:
        s.pop("seconds")
    assert stats[0] == stats[1]


@pytest.fixture
def clean_and_dirty(bad_jsonl: Path, tmp_path: Path) -> Path:
    """A folder of one dirty JSONL file (the per-line path) and one clean one (Arrow's fast path); ids repeat
    across the two."""
    folder = tmp_path / "clean_and_dirty"
    folder.mkdir()
    bad_jsonl.rename(folder / "a-mixed.jsonl")
    _clean_jsonl(folder / "b-clean.jsonl")
    return folder


@pytest.mark.spark_cluster
@pytest.mark.slow
def test_ingest_on_standalone_cluster_matches_polars(
    clean_and_dirty: Path, tmp_path: Path, spark_cluster, sift_cli
) -> None:
    """Input and output given as file:// URLs: the executors open the input files and write the tables."""
    cluster_out, local_out = tmp_path / "cluster", tmp_path / "local"
    proc = sift_cli(
        "ingest",
        clean_and_dirty.as_uri(),
        "--output",
        cluster_out.as_uri(),
        "--engine",
        "spark",
        "--spark-master",
        spark_cluster,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((cluster_out / "stats.json").read_text())["engine"] == "spark"
    assert (cluster_out / "documents.parquet" / "part-00000.parquet").is_file()
    assert sift_cli("ingest", clean_and_dirty.as_uri(), "--output", str(local_out)).returncode == 0
    for name in ("documents.parquet", "quarantine.parquet"):
        assert _rows(cluster_out, name) == _rows(local_out, name)


@pytest.mark.spark_cluster
@pytest.mark.slow
def test_ingest_through_spark_connect_matches_polars(
    clean_and_dirty: Path, tmp_path: Path, spark_connect, sift_cli
) -> None:
    connect_out, local_out = tmp_path / "connect", tmp_path / "local"
    proc = sift_cli(
        "ingest", str(clean_and_dirty), "--output", str(connect_out), "--spark-master", spark_connect
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sift_cli("ingest", str(clean_and_dirty), "--output", str(local_out)).returncode == 0
    assert (connect_out / "documents.parquet").is_dir()
    for name in ("documents.parquet", "quarantine.parquet"):
        assert _rows(connect_out, name) == _rows(local_out, name)


@pytest.mark.spark
@pytest.mark.slow
def test_spark_ingest_under_a_tiny_max_result_size_matches_polars(tmp_path: Path, sift_cli) -> None:
    """`spark.driver.maxResultSize=1m` and ten times that much text: `sift ingest --engine spark` succeeds (no
    document is collected to the driver) and writes the Polars engine's content."""
    folder = write_wide_jsonl(tmp_path / "in")
    spark_out, polars_out = tmp_path / "spark", tmp_path / "polars"
    proc = sift_cli(
        "ingest", str(folder), "-o", str(spark_out), "--engine", "spark", "--spark-master", "local[2]",
        "--spark-conf", "spark.driver.maxResultSize=1m",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sift_cli("ingest", str(folder), "-o", str(polars_out)).returncode == 0
    for name in ("documents.parquet", "quarantine.parquet"):
        assert _rows(spark_out, name) == _rows(polars_out, name)
    stats = json.loads((spark_out / "stats.json").read_text())
    assert (stats["documents"], stats["quarantined"]) == (3600, 3)
