"""Progress bars of embedding and scoring (issue 12): the stage logs a progress record per chunk through
`logging.getLogger("sift.select")`; on a terminal the CLI draws them as a rich bar with items per second and the
time left, between the plain phase lines; the Dagster forwarder passes them on at most once per task every few
seconds (the first and the last always); the real embedding loop emits them."""

from __future__ import annotations

import logging
from io import StringIO

import pytest
from rich.console import Console

from sift.pipelines.progress import PROGRESS_KEY, forward_progress, progress_of, terminal_progress

LOG = logging.getLogger("sift.select")


def _record(task: str, done: int, total: int, unit: str = "instructions") -> None:
    LOG.info(
        "select: %s %d/%d %s", task, done, total, unit,
        extra={PROGRESS_KEY: {"task": task, "done": done, "total": total, "unit": unit}},
    )  # fmt: skip


def test_a_terminal_shows_a_bar_with_the_rate_between_the_phase_lines() -> None:
    buf = StringIO()
    console = Console(force_terminal=True, file=buf, width=120, color_system=None)
    with terminal_progress(console):
        LOG.info("select: embedding 40 instructions")
        for done in range(0, 41, 8):
            _record("embedding", done, 40)
        LOG.info("select: clustering (S2RIC)")
    shown = buf.getvalue()
    assert "━" in shown  # the bar
    assert "40/40" in shown and "instructions/s" in shown and "ETA" in shown
    # the phase lines are printed as before, each with the seconds since the start; the records are not
    before, after = (
        shown.index("select: embedding 40 instructions"),
        shown.index("select: clustering (S2RIC)"),
    )
    assert before < shown.index("40/40") < after
    assert "select: embedding 8/40" not in shown


def test_a_piped_console_gets_nothing() -> None:
    buf = StringIO()
    with terminal_progress(Console(force_terminal=False, file=buf)):
        LOG.info("select: embedding 40 instructions")
        _record("embedding", 40, 40)
    assert buf.getvalue() == ""


def test_the_forwarder_passes_one_record_per_task_every_five_seconds_and_the_last() -> None:
    now = [0.0]
    lines: list[str] = []
    with forward_progress(lines.append, clock=lambda: now[0]):
        LOG.info("select: embedding 100 instructions")
        for done in range(0, 101, 10):  # one record per 2 seconds
            _record("embedding", done, 100)
            _record("scoring", done, 100, "samples")  # another task has its own clock
            now[0] += 2.0
        LOG.info("select: clustering (S2RIC)")
    embedding = [line for line in lines if line.startswith("select: embedding ")]
    # t = 0, 6, 12, 18 pass (5 s apart at least), then the last at t = 20
    assert embedding == [
        "select: embedding 100 instructions",
        "select: embedding 0/100 instructions",
        "select: embedding 30/100 instructions",
        "select: embedding 60/100 instructions",
        "select: embedding 90/100 instructions",
        "select: embedding 100/100 instructions",
    ]
    assert [line for line in lines if line.startswith("select: scoring")][
        -1
    ] == "select: scoring 100/100 samples"
    assert lines[-1] == "select: clustering (S2RIC)"  # plain lines are never held back


def test_the_embedding_loop_logs_progress_records(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("sentence_transformers")
    from sift.selection.kernels.embed import default_embedder, embed_cached

    texts = [f"Which character has the Unicode name LATIN SMALL LETTER {c}?" for c in "ABCDEFGHIJ"]
    with caplog.at_level(logging.INFO, logger="sift.select"):
        vectors, _ = embed_cached(texts, default_embedder(), max_tokens=64, batch_size=2, cache_dir=tmp_path)
    progress = [progress_of(r) for r in caplog.records if progress_of(r) is not None]
    assert vectors.shape == (10, 384)
    # one record before the first chunk and one after each chunk of 16 batches (here one chunk: 10 texts)
    assert progress == [
        {"task": "embedding", "done": 0, "total": 10, "unit": "instructions"},
        {"task": "embedding", "done": 10, "total": 10, "unit": "instructions"},
    ]
    assert "instructions/s" in caplog.records[-1].getMessage()
