"""Issue 11: Sift's jobs through `spark-submit` (the job script shipped in the package, `sift spark-job`) on a real
standalone cluster, in client deploy mode, give the same content as the Polars engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from sift.pipelines.spark_job import path as job_path


def _rows(path: Path, columns: list[str]) -> list[tuple[object, ...]]:
    """The rows of a Parquet file or folder of part files, sorted."""
    t = ds.dataset(path, format="parquet").to_table(columns=columns)
    return sorted(zip(*(t.column(c).to_pylist() for c in columns), strict=True), key=repr)


def test_sift_spark_job_prints_the_shipped_script(sift_cli) -> None:
    proc = sift_cli("spark-job")
    assert proc.returncode == 0, proc.stderr
    script = Path(proc.stdout.strip())
    assert script == Path(job_path()) and script.is_file()
    assert "adopt_spark" in script.read_text()


@pytest.mark.spark_cluster
@pytest.mark.slow
def test_spark_submit_dedup_on_standalone_cluster_matches_polars(
    spark_cluster: str, real_docs: pa.Table, tmp_path: Path, sift_cli
) -> None:
    import pyspark

    docs = tmp_path / "docs.jsonl"
    with docs.open("w") as f:
        for row in real_docs.slice(0, 400).to_pylist():
            f.write(json.dumps({"id": row["id"], "source": row["source"], "text": row["text"]}) + "\n")
        f.write(json.dumps({"id": "copy", "source": "x", "text": real_docs.column("text")[0].as_py()}) + "\n")
        f.write('{"id": "broken", "text": \n')
    submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    out = tmp_path / "submitted"
    proc = subprocess.run(
        [str(submit), "--master", spark_cluster, "--deploy-mode", "client"]
        + ["--conf", "spark.ui.enabled=false", "--conf", "spark.driver.host=127.0.0.1"]
        + [job_path(), "dedup", str(docs), "--output", str(out), "--seed", "3"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "timings.json").read_text())["engine"] == "spark"
    polars = tmp_path / "polars"
    proc = sift_cli("dedup", str(docs), "--output", str(polars), "--seed", "3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _rows(out / "kept.parquet", ["id"]) == _rows(polars / "kept.parquet", ["id"])
    removed = ["id", "reason", "duplicate_of", "similarity"]
    assert _rows(out / "removed.parquet", removed) == _rows(polars / "removed.parquet", removed)
    assert _rows(out / "quarantine.parquet", ["row", "error"]) == _rows(
        polars / "quarantine.parquet", ["row", "error"]
    )
    assert json.loads((out / "stats.json").read_text()) == json.loads((polars / "stats.json").read_text())
