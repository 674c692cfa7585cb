"""Scale-up of near-duplicate dedup (SlimPajama-DC section 2) on every engine, and the Spark driver's memory bound.

``python bench/spark_scale.py scale CORPUS.jsonl [--base-mb 16] [--scales 1,4,16] [--engines polars,local,cluster]``
grows a slice of the bench corpus (``bench/dedup_corpus.py``) to 1x, 4x and 16x: copy ``c`` of a document gets the
fresh id ``<id>~c`` and a few percent of its words edited, so the duplicates grow with the corpus. Each size is
deduplicated (``--mode verified``) by the Polars engine, by Spark ``local[2]`` and by a standalone cluster started
here on 127.0.0.1 (a master and ``--workers`` workers of one core each). Printed per run: wall seconds, MB/s, the
cost per MB relative to the 1x run of the same engine (1.0 = linear), the driver's peak RSS (the Python process and
the driver JVM apart; in ``local[2]`` the driver JVM also runs the executors), the executors' peak RSS, executor
run time per phase (from Spark's event log: each task is counted in the phase whose start the driver logged last
before the task was launched), and whether the kept ids equal the Polars engine's.

``python bench/spark_scale.py driver CORPUS.jsonl [--documents 600000] [--doc-bytes 500]`` is the issue's memory
acceptance run: ``--documents`` documents of about ``--doc-bytes`` bytes each cut from the corpus (with repeats and
edited copies), ``sift ingest`` and ``sift dedup`` on Spark ``local[2]`` with ``spark.driver.maxResultSize=32m`` in
``spark-defaults.conf`` (a ``SPARK_CONF_DIR`` made for the run), checked against the Polars engine's content, with
the driver Python process's peak RSS (target: under 400 MB).

Peak RSS is each process's ``VmHWM`` from ``/proc``, polled every 0.1 s over the process trees; a process that lives
less than 0.1 s can be missed. Runs, logs and corpora go under ``--outdir`` (default ``.bench/scale``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
# `sift` with its phase lines on stderr, each stamped with the epoch time (the CLI shows them only on a terminal).
SIFT = (
    "import logging, sys;"
    "logging.basicConfig(level=logging.WARNING, format='%(created).3f %(name)s %(message)s', stream=sys.stderr);"
    "logging.getLogger('sift').setLevel(logging.INFO);"
    "sys.argv = ['sift', *sys.argv[1:]];"
    "from sift.pipelines.cli import main; main()"
)
PHASE_LINE = re.compile(r"^(\d+\.\d+) sift\.\w+ \w+: ([a-z][a-z ]*?)(?: \(|$)")


# ---------------------------------------------------------------------------------------------- corpora


def _base_docs(corpus: Path, mb: float) -> Iterator[dict[str, Any]]:
    """The corpus's first documents, up to `mb` megabytes of JSONL."""
    limit = int(mb * 1e6)
    seen = 0
    with corpus.open("rb") as f:
        for line in f:
            seen += len(line)
            if seen > limit:
                return
            yield json.loads(line)


def _edit(text: str, rng: random.Random, rate: float) -> str:
    words = text.split(" ")
    for _ in range(max(1, int(len(words) * rate))):
        i = rng.randrange(len(words))
        words[i] = rng.choice(("data", "lake", "sift", "cluster", words[i][::-1]))
    return " ".join(words)


def grow(corpus: Path, out: Path, copies: int, base_mb: float, seed: int) -> dict[str, Any]:
    """`copies` copies of the corpus slice: copy 0 as it is, copy c with fresh ids and 0-5% of words edited."""
    rng = random.Random(seed)
    docs = list(_base_docs(corpus, base_mb))
    n = 0
    with out.open("w", encoding="utf-8") as f:
        for c in range(copies):
            for d in docs:
                text = d["text"] if c == 0 else _edit(d["text"], rng, rng.uniform(0.0, 0.05))
                doc = {"id": d["id"] if c == 0 else f"{d['id']}~{c}", "source": d["source"], "text": text}
                f.write(json.dumps(doc, ensure_ascii=False) + "\n")
                n += 1
    return {"path": str(out), "documents": n, "bytes": out.stat().st_size}


def short_documents(corpus: Path, out: Path, documents: int, doc_bytes: int, seed: int) -> dict[str, Any]:
    """`documents` documents of about `doc_bytes` bytes: consecutive cuts of the corpus's texts, then (once the
    corpus is used up) repeats and edited copies of earlier cuts, so exact and near duplicates are both present."""
    rng = random.Random(seed)
    cuts: list[tuple[str, str]] = []
    n = 0
    with out.open("w", encoding="utf-8") as f, corpus.open("rb") as src:
        for line in src:
            d = json.loads(line)
            text = d["text"]
            for start in range(0, len(text) - doc_bytes // 2, doc_bytes):
                cut = text[start : start + doc_bytes]
                cuts.append((d["source"], cut))
                f.write(json.dumps({"id": f"d{n:07d}", "source": d["source"], "text": cut}) + "\n")
                n += 1
                if n >= documents * 0.8:
                    break
            if n >= documents * 0.8:
                break
        while n < documents:
            source, cut = rng.choice(cuts)
            text = cut if rng.random() < 0.5 else _edit(cut, rng, 0.03)
            f.write(json.dumps({"id": f"d{n:07d}", "source": source, "text": text}) + "\n")
            n += 1
    return {"path": str(out), "documents": n, "bytes": out.stat().st_size}


# ---------------------------------------------------------------------------------------------- processes


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def _kind(pid: int, root: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "gone"
    if pid == root:
        return "driver python"
    java = os.path.basename(cmd.split(" ", 1)[0]) == "java" and "org.apache.spark.launcher.Main" not in cmd
    if java and "CoarseGrainedExecutorBackend" in cmd:
        return "executor jvm"
    if java and ("SparkSubmit" in cmd or "SparkConnectServer" in cmd):
        return "driver jvm"
    if "pyspark.daemon" in cmd or "pyspark.worker" in cmd or "pyspark/daemon" in cmd:
        return "python worker"
    return "other"


def _hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Watch:
    """Peak RSS per process kind over the trees under `roots` (polled every 0.1 s until stopped)."""

    def __init__(self, root: int, extra_roots: list[int]) -> None:
        self.root = root
        self.roots = [root, *extra_roots]
        self.peak: dict[int, tuple[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            kids = _children()
            todo = list(self.roots)
            while todo:
                pid = todo.pop()
                todo.extend(kids.get(pid, []))
                hwm = _hwm_kb(pid)
                if hwm:
                    kind = _kind(
                        pid, self.root
                    )  # each poll: spark-submit's shell execs the JVM under its pid
                    self.peak[pid] = (kind, max(hwm, self.peak.get(pid, ("", 0))[1]))
            self._stop.wait(0.1)

    def stop(self) -> dict[str, float]:
        """Largest peak RSS (MB) of a single process of each kind."""
        self._stop.set()
        self._thread.join()
        out: dict[str, float] = {}
        for kind, kb in self.peak.values():
            if kind not in ("other", "gone"):
                out[kind] = max(out.get(kind, 0.0), round(kb / 1024, 1))
        return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(predicate: Callable[[], bool], what: str, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.5)


class Cluster:
    """A standalone Spark cluster on 127.0.0.1 from the pyspark install: one master, `workers` workers."""

    def __init__(self, workers: int, cores: int, memory: str, logs: Path) -> None:
        import pyspark

        home = Path(pyspark.__file__).parent
        spark_class = str(home / "bin" / "spark-class")
        logs.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": PYTHON}
        port = _free_port()
        self.url = f"spark://127.0.0.1:{port}"
        self.procs: list[subprocess.Popen[bytes]] = []
        master_log = logs / "master.log"
        self.procs.append(
            subprocess.Popen(
                [
                    spark_class,
                    "org.apache.spark.deploy.master.Master",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ]
                + ["--webui-port", str(_free_port())],
                stdout=master_log.open("wb"),
                stderr=subprocess.STDOUT,
                env=env,
            )
        )

        def master_up() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        _wait(master_up, "the Spark master", master_log)
        for w in range(workers):
            log = logs / f"worker{w}.log"
            self.procs.append(
                subprocess.Popen(
                    [spark_class, "org.apache.spark.deploy.worker.Worker", self.url, "--host", "127.0.0.1"]
                    + ["--cores", str(cores), "--memory", memory, "--webui-port", str(_free_port())]
                    + ["--work-dir", str(logs / f"work{w}")],
                    stdout=log.open("wb"),
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
            _wait(lambda log=log: b"Successfully registered" in log.read_bytes(), f"worker {w}", log)

    @property
    def worker_pids(self) -> list[int]:
        return [p.pid for p in self.procs[1:]]

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def run_sift(
    args: list[str], log: Path, extra_roots: list[int] | None = None, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run `sift ARGS` in a child process; wall seconds, exit code, peak RSS per process kind, phase starts."""
    start = time.time()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [PYTHON, "-c", SIFT, *args], stdout=out, stderr=subprocess.STDOUT, env=env or dict(os.environ)
        )
        watch = Watch(proc.pid, extra_roots or [])
        rc = proc.wait()
        peaks = watch.stop()
    wall = time.time() - start
    phases = []
    for line in log.read_text(errors="replace").splitlines():
        m = PHASE_LINE.match(line)
        if m:
            phases.append((float(m.group(1)), m.group(2)))
    return {"wall": wall, "rc": rc, "peak_mb": peaks, "phases": phases, "start": start}


def executor_time(event_dir: Path, phases: list[tuple[float, str]]) -> dict[str, float]:
    """Executor run time (s) per phase, from the newest Spark event log in `event_dir` (Spark 4 writes a folder of
    rolled files per application)."""
    logs = sorted(event_dir.glob("*"), key=lambda p: p.stat().st_mtime)
    if not logs or not phases:
        return {}
    newest = logs[-1]
    files = sorted(newest.iterdir()) if newest.is_dir() else [newest]
    out: dict[str, float] = {}
    for path in files:
        if path.name.startswith("appstatus"):
            continue
        for line in path.open():
            if '"SparkListenerTaskEnd"' not in line:
                continue
            event = json.loads(line)
            launched = event["Task Info"]["Launch Time"] / 1000
            run_ms = (event.get("Task Metrics") or {}).get("Executor Run Time", 0)
            name = phases[0][1]
            for t, p in phases:
                if t <= launched:
                    name = p
            out[name] = out.get(name, 0.0) + run_ms / 1000
    return {k: round(v, 1) for k, v in out.items()}


def _ids(path: Path, column: str = "id") -> list[str]:
    return sorted(ds.dataset(path, format="parquet").to_table(columns=[column]).column(column).to_pylist())


def _removed(path: Path) -> list[tuple[Any, ...]]:
    t = ds.dataset(path, format="parquet").to_table(columns=["id", "reason", "duplicate_of", "similarity"])
    rows = zip(*(t.column(c).to_pylist() for c in t.column_names), strict=True)
    return sorted((i, r, d, None if s is None else round(s, 9)) for i, r, d, s in rows)


# ---------------------------------------------------------------------------------------------- commands


def scale(a: argparse.Namespace) -> list[dict[str, Any]]:
    out = Path(a.outdir)
    out.mkdir(parents=True, exist_ok=True)
    engines = a.engines.split(",")
    cluster = Cluster(a.workers, 1, a.worker_memory, out / "cluster") if "cluster" in engines else None
    results: list[dict[str, Any]] = []
    try:
        for k in (int(s) for s in a.scales.split(",")):
            corpus = out / f"corpus-{k}x.jsonl"
            info = grow(Path(a.corpus), corpus, k, a.base_mb, a.seed)
            mb = info["bytes"] / 1e6
            print(f"\n{k}x: {info['documents']:,} documents, {mb:.1f} MB", flush=True)
            for engine in engines:
                run_dir = out / f"{engine}-{k}x"
                shutil.rmtree(run_dir, ignore_errors=True)
                events = out / f"events-{engine}-{k}x"
                shutil.rmtree(events, ignore_errors=True)
                events.mkdir(parents=True)
                args = ["dedup", str(corpus), "--output", str(run_dir), "--mode", "verified"]
                roots: list[int] = []
                if engine != "polars":
                    master = cluster.url if engine == "cluster" and cluster else "local[2]"
                    args += ["--engine", "spark", "--spark-master", master]
                    args += [
                        "--spark-conf",
                        "spark.eventLog.enabled=true",
                        "--spark-conf",
                        "spark.eventLog.compress=false",
                    ]
                    args += ["--spark-conf", f"spark.eventLog.dir=file://{events}"]
                    roots = cluster.worker_pids if engine == "cluster" and cluster else []
                r = run_sift(args, out / f"{engine}-{k}x.log", roots)
                r.update(engine=engine, scale=k, documents=info["documents"], mb=round(mb, 2))
                if r["rc"] != 0:
                    print(
                        f"  {engine}: FAILED (exit {r['rc']}), log {out / f'{engine}-{k}x.log'}", flush=True
                    )
                    results.append(r)
                    continue
                r["mb_per_s"] = round(mb / r["wall"], 2)
                r["executor_s"] = executor_time(events, r["phases"]) if engine != "polars" else {}
                timings = json.loads((run_dir / "timings.json").read_text())["seconds"]
                r["timings"] = timings
                polars_dir = out / f"polars-{k}x"
                if engine != "polars" and polars_dir.exists():
                    r["same_kept"] = _ids(run_dir / "kept.parquet") == _ids(polars_dir / "kept.parquet")
                results.append(r)
                print(f"  {engine}: {r['wall']:.1f} s, {r['mb_per_s']} MB/s, peak {r['peak_mb']}", flush=True)
    finally:
        if cluster:
            cluster.stop()
    _print_scale(results)
    (out / "scale.json").write_text(json.dumps(results, indent=2, default=str))
    return results


def _print_scale(results: list[dict[str, Any]]) -> None:
    base: dict[str, float] = {}
    previous: dict[str, tuple[float, float]] = {}
    print(
        "\n| engine | scale | documents | MB | wall s | MB/s | cost per MB vs 1x | marginal s per MB "
        "| driver python MB | driver JVM MB | executor JVM MB | executor s per phase | kept = polars |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for r in results:
        if r["rc"] != 0:
            print(
                f"| {r['engine']} | {r['scale']}x | {r['documents']:,} | {r['mb']} | failed | | | | | | | |"
            )
            continue
        per_mb = r["wall"] / r["mb"]
        base.setdefault(r["engine"], per_mb)
        last = previous.get(r["engine"])
        marginal = f"{(r['wall'] - last[0]) / (r['mb'] - last[1]):.3f}" if last else "-"
        previous[r["engine"]] = (r["wall"], r["mb"])
        peaks = r["peak_mb"]
        phases = ", ".join(f"{k} {v}" for k, v in r.get("executor_s", {}).items()) or "-"
        print(
            f"| {r['engine']} | {r['scale']}x | {r['documents']:,} | {r['mb']} | {r['wall']:.1f} | {r['mb_per_s']} "
            f"| {per_mb / base[r['engine']]:.2f} | {marginal} | {peaks.get('driver python', '-')} | {peaks.get('driver jvm', '-')} "
            f"| {peaks.get('executor jvm', '-')} | {phases} | {r.get('same_kept', '-')} |"
        )


def report(a: argparse.Namespace) -> None:
    """The table again from a finished run's `scale.json` and event logs."""
    out = Path(a.outdir)
    results = json.loads((out / "scale.json").read_text())
    for r in results:
        if r["rc"] == 0 and r["engine"] != "polars":
            phases = [(float(t), str(p)) for t, p in r["phases"]]
            r["executor_s"] = executor_time(out / f"events-{r['engine']}-{r['scale']}x", phases)
    _print_scale(results)


def driver(a: argparse.Namespace) -> dict[str, Any]:
    out = Path(a.outdir)
    out.mkdir(parents=True, exist_ok=True)
    corpus = out / f"short-{a.documents}.jsonl"
    if not corpus.exists():
        info = short_documents(Path(a.corpus), corpus, a.documents, a.doc_bytes, a.seed)
    else:
        info = {"path": str(corpus), "documents": a.documents, "bytes": corpus.stat().st_size}
    print(f"{info['documents']:,} documents, {info['bytes'] / 1e6:.1f} MB", flush=True)
    conf_dir = out / "spark-conf"
    conf_dir.mkdir(exist_ok=True)
    (conf_dir / "spark-defaults.conf").write_text(f"spark.driver.maxResultSize {a.max_result_size}\n")
    env = {**os.environ, "SPARK_CONF_DIR": str(conf_dir)}
    report: dict[str, Any] = {"corpus": info, "maxResultSize": a.max_result_size}
    for stage in ("ingest", "dedup"):
        for engine in ("polars", "spark"):
            run_dir = out / f"{stage}-{engine}"
            shutil.rmtree(run_dir, ignore_errors=True)
            args = [stage, str(corpus), "--output", str(run_dir)]
            if engine == "spark":
                args += ["--engine", "spark", "--spark-master", "local[2]"]
            r = run_sift(args, out / f"{stage}-{engine}.log", env=env)
            report[f"{stage}-{engine}"] = {k: r[k] for k in ("wall", "rc", "peak_mb")}
            state = "ok" if r["rc"] == 0 else f"FAILED (exit {r['rc']}; log {out / f'{stage}-{engine}.log'})"
            print(f"{stage} {engine}: {state}, {r['wall']:.1f} s, peak RSS MB {r['peak_mb']}", flush=True)
    if all(report[f"{s}-{e}"]["rc"] == 0 for s in ("ingest", "dedup") for e in ("polars", "spark")):
        report["ingest_same"] = _ids(out / "ingest-polars" / "documents.parquet") == _ids(
            out / "ingest-spark" / "documents.parquet"
        ) and _ids(out / "ingest-polars" / "quarantine.parquet", "error") == _ids(
            out / "ingest-spark" / "quarantine.parquet", "error"
        )
        report["dedup_same"] = _ids(out / "dedup-polars" / "kept.parquet") == _ids(
            out / "dedup-spark" / "kept.parquet"
        ) and _removed(out / "dedup-polars" / "removed.parquet") == _removed(
            out / "dedup-spark" / "removed.parquet"
        )
        for stage in ("ingest", "dedup"):
            python_mb = report[f"{stage}-spark"]["peak_mb"].get("driver python", 0.0)
            report[f"{stage}_driver_python_under_400mb"] = python_mb < 400
    print(json.dumps(report, indent=2))
    (out / "driver.json").write_text(json.dumps(report, indent=2))
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("scale", help="the scale-up table")
    s.add_argument("corpus")
    s.add_argument("--base-mb", type=float, default=16.0)
    s.add_argument("--scales", default="1,4,16")
    s.add_argument("--engines", default="polars,local,cluster")
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--worker-memory", default="3g")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--outdir", default=".bench/scale")
    r = sub.add_parser("report", help="print a finished scale run's table again")
    r.add_argument("--outdir", default=".bench/scale")
    d = sub.add_parser("driver", help="the driver memory acceptance run")
    d.add_argument("corpus")
    d.add_argument("--documents", type=int, default=600_000)
    d.add_argument("--doc-bytes", type=int, default=500)
    d.add_argument("--max-result-size", default="32m")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--outdir", default=".bench/driver")
    a = p.parse_args()
    if a.command == "scale":
        scale(a)
    elif a.command == "report":
        report(a)
    else:
        driver(a)


if __name__ == "__main__":
    main()
