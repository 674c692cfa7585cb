"""Tests of the dedup benchmark (issue 3, SlimPajama-DC dedup): the recipe peers and the harness, end to end.

The peers are run as the benchmark runs them (subprocesses on JSONL files of real text: pydoc topics and the
files the corpus builder collects from the installed system); the assertions are on their output tables.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import bench_module

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
recipe = bench_module("dedup_recipe")


def _real_topics(n: int) -> list[tuple[str, str]]:
    """``n`` pydoc topics of at least 1,000 characters, pairwise far apart (exact Jaccard < 0.3)."""
    from pydoc_data.topics import topics

    chosen: list[tuple[str, str, set[str]]] = []
    for name in sorted(topics):
        text = topics[name]
        if len(text) < 1000:
            continue
        sh = recipe.shingles(recipe.normalise(text))
        if all(recipe.jaccard(sh, other) < 0.3 for _, _, other in chosen):
            chosen.append((name, text, sh))
        if len(chosen) == n:
            break
    assert len(chosen) == n
    return [(name, text) for name, text, _ in chosen]


def _tiny_corpus(path: Path) -> dict[str, str]:
    """A JSONL corpus of 20 distinct real documents plus an exact copy, an edited copy and a short document."""
    docs = _real_topics(20)
    rows = [{"id": f"topic/{name}", "source": "pydoc", "text": text} for name, text in docs]
    first, second = docs[0][1], docs[1][1]
    words = second.split(" ")
    words[len(words) // 2] = "zzzzzz"
    rows.append({"id": "copy-exact", "source": "mirror", "text": first})
    rows.append({"id": "copy-edited", "source": "mirror", "text": " ".join(words)})
    rows.append({"id": "short", "source": "mirror", "text": docs[2][1][:150]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"exact_of": f"topic/{docs[0][0]}", "edited_of": f"topic/{docs[1][0]}", "n": str(len(rows))}


def test_recipe_normalise_and_exact_jaccard() -> None:
    assert recipe.normalise("  Caf\u0065\u0301,  ÉTÉ!\n\tDone.  ") == "café été done"
    a = recipe.shingles("abcdefghijklmnop")
    assert len(a) == 4
    assert recipe.jaccard(a, a) == 1.0
    b = recipe.shingles("abcdefghijklmnoX")
    assert recipe.jaccard(a, b) == pytest.approx(3 / 5)


def test_bucket_edges_link_every_document_sharing_a_band_key() -> None:
    import numpy as np

    keys = np.array([[1, 10], [2, 11], [1, 12], [3, 12], [4, 13]], dtype=np.uint64)
    rows = np.array([0, 1, 2, 3, 4])
    u, v = recipe.bucket_edges(keys, rows)
    labels, survivor = recipe.components_and_survivors(5, u, v)
    assert labels[0] == labels[2] == labels[3]
    assert len({labels[0], labels[1], labels[4]}) == 3
    assert survivor.tolist() == [0, 1, 0, 0, 4]


@pytest.mark.parametrize(
    "peer",
    [
        ["dedup_peer_rensa.py", "--input", "prehashed"],
        ["dedup_peer_rensa.py", "--input", "tokens"],
        ["dedup_peer_datasketch.py"],
    ],
    ids=["rensa-prehashed", "rensa-tokens", "datasketch"],
)
def test_peer_removes_copies_and_short_documents_only(tmp_path: Path, peer: list[str]) -> None:
    corpus = tmp_path / "tiny.jsonl"
    truth = _tiny_corpus(corpus)
    out = tmp_path / "out"
    subprocess.run(
        [sys.executable, str(BENCH / peer[0]), str(corpus), "--output", str(out), *peer[1:]],
        check=True,
        capture_output=True,
    )
    removed = {r["id"]: r for r in pq.read_table(out / "removed.parquet").to_pylist()}
    assert set(removed) == {"copy-exact", "copy-edited", "short"}
    assert removed["short"]["reason"] == "too_short"
    assert removed["copy-exact"]["reason"] == "near_duplicate"
    assert removed["copy-exact"]["duplicate_of"] == truth["exact_of"]
    assert removed["copy-edited"]["duplicate_of"] == truth["edited_of"]
    kept_table = pq.read_table(out / "kept.parquet")
    assert kept_table.column_names == ["id", "source", "text"]
    kept = kept_table.column("id").to_pylist()
    assert len(kept) + len(removed) == int(truth["n"])
    assert truth["exact_of"] in kept and truth["edited_of"] in kept
    clusters = pq.read_table(out / "clusters.parquet").to_pylist()
    by_cluster: dict[int, set[str]] = {}
    for rec in clusters:
        by_cluster.setdefault(rec["cluster_id"], set()).add(rec["id"])
    assert sorted(map(sorted, by_cluster.values())) == sorted(
        [sorted({"copy-exact", truth["exact_of"]}), sorted({"copy-edited", truth["edited_of"]})]
    )
    stats = json.loads((out / "stats.json").read_text())
    assert stats["removed_near_duplicate"] == 2 and stats["removed_too_short"] == 1


def _run_bench(tmp_path: Path, *extra: str) -> dict:
    corpus = tmp_path / "corpus.jsonl"
    if not corpus.exists():
        subprocess.run(
            [
                sys.executable,
                str(BENCH / "dedup_corpus.py"),
                str(corpus),
                "--mb",
                "1",
                "--max-source-mb",
                "0.15",
            ],
            check=True,
            capture_output=True,
        )
    result = tmp_path / "results.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH / "dedup.py"),
            str(corpus),
            "--outdir",
            str(tmp_path / "run"),
            "--json",
            str(result),
            "--sample-pairs",
            "300",
            *extra,
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(result.read_text())
    report["stdout"] = proc.stdout
    return report


def test_bench_runs_peers_end_to_end_and_scores_them(tmp_path: Path) -> None:
    report = _run_bench(tmp_path, "--tools", "rensa,datasketch,sift", "--sift-cmd", "false")
    assert report["corpus_mb"] >= 1.0 and report["documents"] > 100
    for tool in ("rensa", "datasketch"):
        t = report["tools"][tool]
        assert t["returncode"] == 0
        assert t["mb_per_s"] > 0 and t["peak_rss_mb"] > 10 and t["cpu_s"] > 0
        assert t["removed"].get("too_short", 0) > 0
        assert 0.0 <= t["precision"] <= 1.0
        assert t["removals_whose_duplicate_of_is_not_kept"] == 0
        assert t["recall_injected"] is not None and 0.0 <= t["recall_injected"] <= 1.0
    assert report["ground_truth"]["injected"]["pairs_judged"] > 0
    # A tool that fails is reported as failed, not scored, and does not stop the benchmark.
    assert report["tools"]["sift"]["returncode"] != 0 and "precision" not in report["tools"]["sift"]
    assert "FAILED" in report["stdout"] and "precision:" in report["stdout"]


@pytest.mark.slow
def test_bench_runs_sift_against_the_rensa_peer(tmp_path: Path) -> None:
    report = _run_bench(tmp_path, "--tools", "sift,rensa")
    sift = report["tools"]["sift"]
    assert sift["returncode"] == 0, sift
    assert sift["removals_whose_duplicate_of_is_not_kept"] == 0
    assert sift["precision_sample"] > 0, sift  # sift removed near duplicates, and they were judged
    assert sift["precision"] is not None and sift["precision"] >= 0.99, sift
    assert report["sift_throughput_ratio"]["rensa"] > 0
