"""Fuzz the input readers: mutated JSONL, CSV and Parquet files (plain and compressed) through `sift ingest`.

Every input, however broken, must end `sift ingest` with exit 0 (every record accounted for: the records counted
by `count_input_records` = documents + quarantined) or exit 2 (one clear line), never a crash, a trace or a hang.
Inputs are valid seed files mutated by truncation, byte flips and inserted bytes (Hypothesis, derandomised so CI
sees the same examples every run; SIFT_FUZZ_EXAMPLES=N runs N fresh random examples per format instead).

A crash in native code (a segfault, an abort) must fail the example rather than the test run, so the examples run
in one worker subprocess that serves them one after another (`sift`'s own `main`, in-process there): a worker that
dies or stops answering fails the example it was given, and a fresh worker takes the next one.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import select
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("SIFT_FUZZ_EXAMPLES") or 60)
EXPLORE = bool(os.environ.get("SIFT_FUZZ_EXAMPLES"))
ANSWER_SECONDS = 60.0

# ---------------------------------------------------------------------------------------------------------------
# Seed files


def _records() -> list[dict]:
    return [
        {"id": "a", "source": "web", "text": "first document, with a comma", "lang": "en", "n": 1},
        {"id": 2, "source": "Books Three", "text": 'a "quoted" word\nand a second line', "score": 0.5},
        {"id": "c", "text": "unicode: naïve café — 東京", "flag": True},
        {"id": "d", "source": "web", "text": "x" * 300, "tags": ["p", "q"], "meta": {"k": [1, 2]}},
        {"id": "e", "source": "", "text": ""},
    ]


def _jsonl() -> bytes:
    rows = [{**r, "id": i if i % 5 == 1 else f"{r['id']}-{i}"} for i, r in enumerate(_records() * 4)]
    return b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in rows)


def _csv() -> bytes:
    out = io.StringIO()
    out.write("id,source,text,n\n")
    for i, r in enumerate(_records() * 4):
        text = '"' + r["text"].replace('"', '""') + '"'
        out.write(f"{r['id']}-{i},{r.get('source', '')},{text},{i}\n")
    return out.getvalue().encode()


def _parquet(compression: str, dictionary: bool) -> bytes:
    rows = _records() * 4
    table = pa.table(
        {
            "id": [f"{r['id']}-{i}" for i, r in enumerate(rows)],
            "source": [r.get("source") for r in rows],
            "text": [r["text"] for r in rows],
            "n": list(range(len(rows))),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=7, compression=compression, use_dictionary=dictionary)
    return sink.getvalue()


SEEDS: dict[str, list[tuple[str, bytes]]] = {
    "jsonl": [
        ("in.jsonl", _jsonl()),
        ("in.jsonl.gz", gzip.compress(_jsonl(), mtime=0)),
        ("in.jsonl.zst", zstandard.ZstdCompressor().compress(_jsonl())),
    ],
    "csv": [("in.csv", _csv()), ("in.csv.gz", gzip.compress(_csv(), mtime=0))],
    "parquet": [
        ("in.parquet", _parquet("none", False)),
        ("in.parquet", _parquet("zstd", True)),
        ("in.parquet", _parquet("snappy", False)),
    ],
}

# Bytes that matter to the parsers, inserted more often than chance would.
TOKENS = [b"\n", b'"', b",", b"{", b"[", b"}", b"\\", b"\xff", b"\x00", b"\xc2\xa0", b"\x1c", b"\r\n", b'""']

_position = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
MUTATION = st.one_of(
    st.tuples(st.just("truncate"), _position, st.just(b"")),
    st.tuples(st.just("flip"), _position, st.integers(1, 255).map(lambda x: bytes([x]))),
    st.tuples(
        st.just("insert"), _position, st.one_of(st.sampled_from(TOKENS), st.binary(min_size=1, max_size=6))
    ),
)


def mutate(data: bytes, mutations: list[tuple[str, float, bytes]]) -> bytes:
    """Apply mutations in order; each position is a fraction of the current length."""
    buf = bytearray(data)
    for kind, where, arg in mutations:
        at = min(int(where * len(buf)), max(len(buf) - 1, 0))
        if kind == "truncate":
            del buf[at:]
        elif kind == "flip" and buf:
            buf[at] ^= arg[0]
        elif kind == "insert":
            buf[at:at] = arg
    return bytes(buf)


# ---------------------------------------------------------------------------------------------------------------
# The worker: `sift ingest` in-process, one example after another, answers on its own pipe


def _serve() -> None:
    """Worker loop: read 'input<TAB>output' lines on stdin, answer one JSON line each on the original stdout."""
    answers = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # the CLI's own printing goes nowhere; stderr stays for a crash's last words
    from sift.pipelines.cli import main
    from sift.pipelines.core.lake import count_input_records

    for line in sys.stdin:
        src, out = line.rstrip("\n").split("\t")
        sys.argv = ["sift", "ingest", src, "--output", out]
        answer: dict = {}
        try:
            main()
            answer["code"] = 0
        except SystemExit as exc:
            answer["code"] = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            answer["code"] = 1
            answer["trace"] = traceback.format_exc()[-3000:]
        if answer["code"] == 0:
            stats = json.loads((Path(out) / "stats.json").read_text())
            answer.update(documents=stats["documents"], quarantined=stats["quarantined"])
            try:
                answer["records"] = count_input_records(src)
            except BaseException:
                answer["records"] = None
                answer["trace"] = traceback.format_exc()[-3000:]
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


class Worker:
    """The worker subprocess, started again after it dies."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="sift-fuzz-", suffix=".log", delete=False)  # noqa: SIM115

    def _start(self) -> subprocess.Popen[str]:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                [sys.executable, __file__, "--serve"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.log,
                text=True,
                env={**os.environ, "PYTHONFAULTHANDLER": "1"},
            )
        return self.proc

    def ingest(self, src: Path, out: Path) -> dict:
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(f"{src}\t{out}\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], ANSWER_SECONDS)
        line = proc.stdout.readline() if ready else ""
        if line:
            return json.loads(line)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            return {"code": "hang", "trace": f"no answer in {ANSWER_SECONDS} s"}
        self.log.flush()
        tail = Path(self.log.name).read_text(errors="replace")[-3000:]
        return {"code": proc.returncode, "trace": tail}

    def close(self) -> int | None:
        if self.proc is None:
            return 0
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        rc = self.proc.wait(timeout=60)
        os.unlink(self.log.name)
        return rc


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    w = Worker()
    yield w
    # A worker that ends its last example cleanly must also exit cleanly (no abort from a native thread at exit).
    assert w.close() == 0


def _check(worker: Worker, name: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="sift-fuzz-") as tmp:
        src = Path(tmp) / name
        src.write_bytes(data)
        answer = worker.ingest(src, Path(tmp) / "out")
    assert answer["code"] in (0, 2), f"sift ingest {name} ended with {answer['code']}:\n{answer.get('trace')}"
    if answer["code"] == 0:
        assert answer["records"] == answer["documents"] + answer["quarantined"], answer


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # the worker's own answer timeout stands for it
    derandomize=not EXPLORE,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.parametrize("fmt", sorted(SEEDS))
def test_seed_files_ingest_whole(worker: Worker, fmt: str) -> None:
    """The unmutated seeds are valid: every record becomes a document (the fuzz starts from good files)."""
    for name, data in SEEDS[fmt]:
        with tempfile.TemporaryDirectory(prefix="sift-fuzz-") as tmp:
            src = Path(tmp) / name
            src.write_bytes(data)
            answer = worker.ingest(src, Path(tmp) / "out")
        assert answer["code"] == 0, answer
        assert answer["quarantined"] == 0 and answer["documents"] == answer["records"] == 20, answer


@pytest.mark.parametrize("fmt", sorted(SEEDS))
def test_mutated_inputs_exit_0_or_2_and_account_for_every_record(worker: Worker, fmt: str) -> None:
    @FUZZ
    @given(seed=st.sampled_from(SEEDS[fmt]), mutations=st.lists(MUTATION, min_size=1, max_size=4))
    def run(seed: tuple[str, bytes], mutations: list[tuple[str, float, bytes]]) -> None:
        name, data = seed
        _check(worker, name, mutate(data, mutations))

    run()


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    _serve()
