"""Spark settings come from the cluster: `spark-defaults.conf` (in `$SPARK_CONF_DIR`) < `[spark] conf` (TOML or
`SIFT_SPARK__CONF`) < `--spark-conf key=value`; Sift forces only Arrow and UTC, and its output does not depend on
the number of shuffle partitions."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sift.pipelines.core import engines
from sift.pipelines.core.config import ConfigError, SparkConfig, load_config
from sift.pipelines.core.engines import REQUIRED, session_conf, spark_defaults


def _conf_dir(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "spark-conf"
    folder.mkdir(exist_ok=True)
    (folder / "spark-defaults.conf").write_text(text, encoding="utf-8")
    return folder


def test_spark_defaults_file_is_read_from_spark_conf_dir(tmp_path: Path, monkeypatch) -> None:
    folder = _conf_dir(
        tmp_path,
        "# a comment\nspark.sql.shuffle.partitions   3\nspark.ui.enabled=true\n\n! other\nspark.a.b : c d\n",
    )
    monkeypatch.setenv("SPARK_CONF_DIR", str(folder))
    assert spark_defaults() == {
        "spark.sql.shuffle.partitions": "3",
        "spark.ui.enabled": "true",
        "spark.a.b": "c d",
    }


def test_session_conf_sets_only_what_sift_needs(tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("SPARK_CONF_DIR", str(_conf_dir(tmp_path, "spark.ui.enabled true\n")))
    monkeypatch.delenv("SIFT_SPARK_DRIVER_HOST", raising=False)
    conf = session_conf("local[2]")
    # nothing about partitions, parallelism or memory: those are the cluster's
    assert not {k for k in conf if "partitions" in k or "parallelism" in k or "memory" in k}
    assert "spark.ui.enabled" not in conf  # spark-defaults.conf says it: Sift's convenience yields
    assert conf["spark.driver.host"] == "127.0.0.1" and all(conf[k] == v for k, v in REQUIRED.items())
    # a real cluster's driver host is its own
    assert "spark.driver.host" not in session_conf("spark://spark-master:7077")
    assert session_conf("sc://127.0.0.1:15002") == REQUIRED
    with caplog.at_level(logging.WARNING, logger="sift.spark"):
        conf = session_conf("local[2]", {"spark.sql.session.timeZone": "Europe/Paris", "spark.x": "1"})
    assert conf["spark.sql.session.timeZone"] == "UTC" and conf["spark.x"] == "1"
    assert "spark.sql.session.timeZone=Europe/Paris ignored" in caplog.text


def test_spark_section_from_toml_and_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("SIFT_SPARK__CONF", raising=False)
    toml = tmp_path / "sift.toml"
    toml.write_text(
        '[spark.conf]\nspark.sql.shuffle.partitions = 5\n"spark.executor.memory" = "1g"\nspark.x.flag = true\n'
    )
    assert load_config(SparkConfig, file=toml).conf == {
        "spark.sql.shuffle.partitions": "5",
        "spark.executor.memory": "1g",
        "spark.x.flag": "true",
    }
    monkeypatch.setenv("SIFT_SPARK__CONF", "spark.a=1, spark.b=two")
    assert load_config(SparkConfig, file=toml).conf == {"spark.a": "1", "spark.b": "two"}
    monkeypatch.setenv("SIFT_SPARK__CONF", '{"spark.a": 1}')
    assert load_config(SparkConfig, file=toml).conf == {"spark.a": "1"}
    monkeypatch.setenv("SIFT_SPARK__CONF", "spark.a")
    with pytest.raises(ConfigError, match="SIFT|environment"):
        load_config(SparkConfig, file=toml)


class _Started(Exception):
    pass


def test_cli_passes_toml_and_flags_to_the_session(tmp_path: Path, monkeypatch) -> None:
    """`--spark-conf` over `[spark] conf`, handed to the session the command starts (no JVM: recorded)."""
    from sift.pipelines.cli import app

    monkeypatch.delenv("SIFT_SPARK__CONF", raising=False)
    toml = tmp_path / "sift.toml"
    toml.write_text('[spark.conf]\n"spark.sql.shuffle.partitions" = "5"\n"spark.sift.origin" = "toml"\n')
    asked: list[tuple[str | None, dict[str, str] | None]] = []

    def fake_get_spark(master=None, app_name="sift", conf=None):
        asked.append((master, None if conf is None else dict(conf)))
        raise _Started

    monkeypatch.setattr(engines, "get_spark", fake_get_spark)
    monkeypatch.setattr("sift.pipelines.fastexit.lean_start", lambda: None)
    docs = tmp_path / "in.parquet"
    pq.write_table(
        pa.table({"id": ["a", "b"], "source": ["s", "s"], "text": ["one text", "another text"]}), docs
    )
    common = ["--engine", "spark", "--spark-master", "local[1]", "--config", str(toml)]
    for command in ("ingest", "dedup", "contain"):
        with pytest.raises(_Started):
            app([command, str(docs if command != "contain" else tmp_path), "-o", str(tmp_path / command), *common,
                 "--spark-conf", "spark.sift.origin=flag", "--spark-conf", "spark.y = a=b"],
                standalone_mode=False)  # fmt: skip
        assert asked.pop() == (
            "local[1]",
            {"spark.sql.shuffle.partitions": "5", "spark.sift.origin": "flag", "spark.y": "a=b"},
        ), command


def test_malformed_spark_conf_is_one_line_exit_2(tmp_path: Path, sift_cli) -> None:
    proc = sift_cli(
        "ingest", str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out"), "--spark-conf", "nokey"
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--spark-conf" in lines[0] and "'nokey' is not key=value" in lines[0], (
        proc.stderr
    )


def _properties(events: Path) -> dict[str, str]:
    """The Spark properties a session started with, from its event log."""
    for log in sorted(p for p in events.rglob("*") if p.is_file() and not p.name.startswith(".")):
        for line in log.read_text(encoding="utf-8").splitlines():
            event = json.loads(line)
            if event["Event"] == "SparkListenerEnvironmentUpdate":
                return dict(event["Spark Properties"])
    raise AssertionError(f"no environment update under {events}")


@pytest.mark.spark
@pytest.mark.slow
def test_cluster_settings_reach_the_session_and_output_ignores_partitions(
    real_docs: pa.Table, tmp_path: Path, monkeypatch, sift_cli
) -> None:
    """Two `sift dedup --engine spark` runs in subprocesses (a fresh session each) under one spark-defaults.conf:
    the first keeps the file's 3 shuffle partitions, the second's flags make them 61 (no adaptive coalescing) and
    try to change the time zone; the outputs are the same."""
    from test_dedup_core import injected_corpus

    events = tmp_path / "events"
    folder = _conf_dir(
        tmp_path,
        f"spark.sql.shuffle.partitions 3\nspark.eventLog.enabled true\nspark.eventLog.compress false\n"
        f"spark.eventLog.dir {events.as_uri()}\n",
    )
    monkeypatch.setenv("SPARK_CONF_DIR", str(folder))
    monkeypatch.delenv("SIFT_SPARK__CONF", raising=False)
    toml = tmp_path / "sift.toml"
    toml.write_text('[spark.conf]\n"spark.sift.origin" = "toml"\n')
    src = tmp_path / "docs.parquet"
    pq.write_table(injected_corpus(real_docs.slice(0, 700), seed=11), src)
    common = ("--engine", "spark", "--spark-master", "local[2]", "--config", str(toml), "--seed", "7")
    runs = {
        "file": (),
        "flags": ("--spark-conf", "spark.sql.shuffle.partitions=61", "--spark-conf", "spark.sift.origin=flag",
                  "--spark-conf", "spark.sql.adaptive.coalescePartitions.enabled=false",
                  "--spark-conf", "spark.sql.session.timeZone=America/New_York"),
    }  # fmt: skip
    props = {}
    for name, flags in runs.items():
        events.mkdir()
        proc = sift_cli("dedup", str(src), "--output", str(tmp_path / name), *common, *flags)
        assert proc.returncode == 0, proc.stderr[-3000:]
        props[name] = _properties(events)
        events.rename(tmp_path / f"events-{name}")
    assert props["file"]["spark.sql.shuffle.partitions"] == "3"  # spark-defaults.conf, not overridden
    assert props["file"]["spark.eventLog.enabled"] == "true" and props["file"]["spark.sift.origin"] == "toml"
    assert "spark.default.parallelism" not in props["file"] and "spark.driver.memory" not in props["file"]
    assert (
        props["flags"]["spark.sql.shuffle.partitions"] == "61"
        and props["flags"]["spark.sift.origin"] == "flag"
    )
    for p in props.values():
        assert p["spark.sql.session.timeZone"] == "UTC"
        assert p["spark.sql.execution.arrow.pyspark.enabled"] == "true"
    assert "spark.sql.session.timeZone=America/New_York ignored" in proc.stderr
    for table in ("kept.parquet", "removed.parquet", "clusters.parquet", "quarantine.parquet"):
        a, b = pq.read_table(tmp_path / "file" / table), pq.read_table(tmp_path / "flags" / table)
        assert a.num_rows > 0 or table == "quarantine.parquet"
        assert a.equals(b), table
    stats = [json.loads((tmp_path / n / "stats.json").read_text()) for n in runs]
    for s in stats:
        s.pop("timings", None)
        s.pop("seconds", None)
    assert stats[0] == stats[1]
