"""`sift ingest` end to end: exit codes, outputs, summary, and the same rows from Polars and Spark."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

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
    from pipelines.config import ConfigError, load_config

    toml = tmp_path / "sift.toml"
    toml.write_text('[ingest]\nid_field = "doc_id"\ntext_field = "body"\n')
    monkeypatch.setenv("SIFT_INGEST__TEXT_FIELD", "content")
    cfg = load_config("ingest", {"source_field": "origin"}, file=toml)
    assert (cfg.id_field, cfg.text_field, cfg.source_field) == ("doc_id", "content", "origin")
    monkeypatch.setenv("SIFT_INGEST__BATCH_ROWS", "-1")
    with pytest.raises(ConfigError, match=r"\[ingest\] batch_rows = '-1' \(environment\)"):
        load_config("ingest", file=toml)
    monkeypatch.delenv("SIFT_INGEST__BATCH_ROWS")
    proc = sift_cli("config", "show", "--config", str(toml))
    assert proc.returncode == 0
    assert 'id_field = "doc_id"' in proc.stdout and "[lake]" in proc.stdout


def _rows(out: Path, name: str) -> list[tuple]:
    table = pq.read_table(out / name)
    return sorted(tuple(str(v) for v in row.values()) for row in table.to_pylist())


@pytest.mark.spark
def test_polars_and_spark_ingest_give_the_same_rows(
    bad_jsonl: Path, real_docs, tmp_path: Path, spark
) -> None:
    from pipelines.ingest import IngestOptions, run_ingest

    real = tmp_path / "real"
    real.mkdir()
    pq.write_table(real_docs.slice(0, 1500), real / "part-0.parquet")
    pq.write_table(real_docs.slice(1400, 600), real / "part-1.parquet")  # 100 repeated ids across files
    for uri in (bad_jsonl, real):
        outs = {}
        for engine in ("polars", "spark"):
            outs[engine] = tmp_path / f"{uri.name}-{engine}"
            run_ingest(
                str(uri), outs[engine], IngestOptions(batch_rows=500), engine=engine, spark_master="local[2]"
            )
        for name in ("documents.parquet", "quarantine.parquet"):
            assert _rows(outs["polars"], name) == _rows(outs["spark"], name)
            assert (outs["polars"] / name).read_bytes() == (outs["spark"] / name).read_bytes()
    assert pq.read_table(tmp_path / "real-polars" / "quarantine.parquet").num_rows == 100


@pytest.mark.spark_cluster
@pytest.mark.slow
def test_ingest_on_standalone_cluster_matches_polars(
    bad_jsonl: Path, tmp_path: Path, spark_cluster, sift_cli
) -> None:
    cluster_out, local_out = tmp_path / "cluster", tmp_path / "local"
    proc = sift_cli(
        "ingest",
        str(bad_jsonl),
        "--output",
        str(cluster_out),
        "--engine",
        "spark",
        "--spark-master",
        spark_cluster,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((cluster_out / "stats.json").read_text())["engine"] == "spark"
    assert sift_cli("ingest", str(bad_jsonl), "--output", str(local_out)).returncode == 0
    for name in ("documents.parquet", "quarantine.parquet"):
        assert _rows(cluster_out, name) == _rows(local_out, name)


@pytest.mark.spark_cluster
@pytest.mark.slow
def test_ingest_through_spark_connect_matches_polars(
    bad_jsonl: Path, tmp_path: Path, spark_connect, sift_cli
) -> None:
    connect_out, local_out = tmp_path / "connect", tmp_path / "local"
    proc = sift_cli("ingest", str(bad_jsonl), "--output", str(connect_out), "--spark-master", spark_connect)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sift_cli("ingest", str(bad_jsonl), "--output", str(local_out)).returncode == 0
    for name in ("documents.parquet", "quarantine.parquet"):
        assert (connect_out / name).read_bytes() == (local_out / name).read_bytes()
