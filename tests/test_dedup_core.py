"""Acceptance tests of SlimPajama near-duplicate dedup (issue 3, SlimPajama-DC section 2) on the Polars engine.

Ground truth is brute force and independent of Sift's kernels: Python normalisation, Python sets of 13-character
substrings, and all pairwise intersections from one sparse incidence-matrix product.
"""

from __future__ import annotations

import json
import random
import string
import unicodedata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import sparse

from sift import dedup
from sift.dedup import DedupConfig
from sift.dedup.config import candidate_probability

OUTPUTS = (
    "kept.parquet",
    "removed.parquet",
    "clusters.parquet",
    "quarantine.parquet",
    "stats.json",
    "report.md",
)


# ---------------------------------------------------------------------------------------------------------------
# Independent reference


def ref_normalise(text: str, unicode_punct: bool = True) -> str:
    text = unicodedata.normalize("NFC", text).lower()
    text = "".join(
        c
        for c in text
        if not (c in string.punctuation or (unicode_punct and unicodedata.category(c).startswith("P")))
    )
    return " ".join(text.split())


def ref_shingles(text: str, n: int = 13) -> set[str]:
    t = ref_normalise(text)
    if not t:
        return set()
    if len(t) < n:
        return {t}
    return {t[i : i + n] for i in range(len(t) - n + 1)}


def ref_jaccard(a: str, b: str) -> float:
    sa, sb = ref_shingles(a), ref_shingles(b)
    return len(sa & sb) / len(sa | sb) if sa | sb else 0.0


def brute_force_pairs(texts: list[str], threshold: float) -> dict[tuple[int, int], float]:
    """Every pair (i < j) with exact Jaccard >= threshold, from all pairwise intersection sizes."""
    vocab: dict[str, int] = {}
    rows, cols = [], []
    sizes = np.zeros(len(texts), np.int64)
    for i, t in enumerate(texts):
        sh = ref_shingles(t)
        sizes[i] = len(sh)
        for s in sh:
            rows.append(i)
            cols.append(vocab.setdefault(s, len(vocab)))
    m = sparse.csr_matrix((np.ones(len(rows), np.int32), (rows, cols)), shape=(len(texts), len(vocab)))
    inter = sparse.triu(m @ m.T, k=1).tocoo()
    union = sizes[inter.row] + sizes[inter.col] - inter.data
    jac = inter.data / np.maximum(union, 1)
    keep = jac >= threshold
    return {
        (int(i), int(j)): float(s)
        for i, j, s in zip(inter.row[keep], inter.col[keep], jac[keep], strict=True)
    }


# ---------------------------------------------------------------------------------------------------------------
# Corpus with injected edits


def edit(text: str, rng: random.Random, rate: float) -> str:
    """Delete, replace or duplicate about `rate` of the words."""
    words = text.split(" ")
    out: list[str] = []
    for w in words:
        r = rng.random()
        if r < rate / 3:
            continue
        if r < 2 * rate / 3:
            out.append(rng.choice(words))
        elif r < rate:
            out.extend([w, w])
        else:
            out.append(w)
    return " ".join(out)


def injected_corpus(real_docs: pa.Table, seed: int = 7) -> pa.Table:
    """The real documents plus edited copies (in the same and in other sources) of a sample of them."""
    rng = random.Random(seed)
    ids = real_docs.column("id").to_pylist()
    sources = real_docs.column("source").to_pylist()
    texts = real_docs.column("text").to_pylist()
    long_docs = [i for i, t in enumerate(texts) if len(t) >= 800]
    picked = rng.sample(long_docs, min(300, len(long_docs)))
    all_sources = sorted(set(sources))
    new = {"id": [], "source": [], "text": []}
    for k, i in enumerate(picked):
        rate = [0.0, 0.01, 0.03, 0.06, 0.12][k % 5]
        copies = 1 + (k % 3 == 0)
        for c in range(copies):
            new["id"].append(f"{ids[i]}#copy{c}")
            new["source"].append(sources[i] if c == 0 else rng.choice(all_sources))
            new["text"].append(edit(texts[i], rng, rate) if rate else texts[i])
    return pa.concat_tables([real_docs.select(["id", "source", "text"]), pa.table(new)])


def read(out: Path, name: str) -> pa.Table:
    return pq.read_table(out / name)


def check_accounting(docs: pa.Table, out: Path) -> None:
    kept, removed, quarantine = (
        read(out, "kept.parquet"),
        read(out, "removed.parquet"),
        read(out, "quarantine.parquet"),
    )
    kept_ids = kept.column("id").to_pylist()
    removed_ids = removed.column("id").to_pylist()
    assert len(kept_ids) == len(set(kept_ids)), "kept ids are not unique"
    assert kept.num_rows + removed.num_rows + quarantine.num_rows == docs.num_rows
    assert sorted(kept_ids + removed_ids) == sorted(docs.column("id").to_pylist())
    kept_set = set(kept_ids)
    for dup in removed.column("duplicate_of").drop_null().to_pylist():
        assert dup in kept_set, f"duplicate_of {dup} is not kept"


@pytest.fixture(scope="module")
def corpus(real_docs: pa.Table) -> pa.Table:
    return injected_corpus(real_docs)


@pytest.fixture(scope="module")
def verified_run(corpus: pa.Table, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("verified")
    dedup.run(corpus, DedupConfig(batch_rows=700), out)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Tests


def test_config_defaults_follow_the_recipe() -> None:
    sp = DedupConfig(mode="slimpajama")
    assert (sp.banding, sp.signature_kind, sp.num_perm, sp.ngram, sp.min_length) == (
        (9, 13),
        "minhash",
        128,
        13,
        200,
    )
    v = DedupConfig()
    bands, rows = v.banding
    assert bands * rows <= 128 and v.signature_kind == "oph"
    assert v.theoretical_recall >= 0.999
    # The recipe's banding finds well under half of the pairs exactly at 0.8.
    assert candidate_probability(0.8, 9, 13) < 0.5


def test_verified_mode_recall_and_invariant_against_brute_force(corpus: pa.Table, verified_run: Path) -> None:
    texts = corpus.column("text").to_pylist()
    ids = corpus.column("id").to_pylist()
    eligible = [len(ref_normalise(t)) >= 200 for t in texts]
    truth = brute_force_pairs(texts, 0.85)
    pairs = [(i, j) for (i, j) in truth if eligible[i] and eligible[j]]
    assert len(pairs) >= 300, "the injected edits should create hundreds of true pairs"

    kept = set(read(verified_run, "kept.parquet").column("id").to_pylist())
    clusters = read(verified_run, "clusters.parquet").to_pydict()
    cluster_of = dict(zip(clusters["id"], clusters["cluster_id"], strict=True))
    deduped = sum(1 for i, j in pairs if not (ids[i] in kept and ids[j] in kept))
    same_cluster = sum(
        1 for i, j in pairs if ids[i] in cluster_of and cluster_of[ids[i]] == cluster_of.get(ids[j])
    )
    assert deduped / len(pairs) >= 0.99, f"only {deduped}/{len(pairs)} true pairs had a copy removed"
    assert same_cluster / len(pairs) >= 0.99, f"only {same_cluster}/{len(pairs)} true pairs share a cluster"

    # Invariant: every duplicate removal points at a kept document at least 0.8 similar, as recorded.
    removed = read(verified_run, "removed.parquet").to_pylist()
    text_of = dict(zip(ids, texts, strict=True))
    for r in removed:
        if r["reason"] == "too_short":
            assert r["duplicate_of"] is None and len(ref_normalise(text_of[r["id"]])) < 200
            continue
        assert r["duplicate_of"] in kept
        exact = ref_jaccard(text_of[r["id"]], text_of[r["duplicate_of"]])
        assert exact >= 0.8 and r["similarity"] == pytest.approx(exact, abs=1e-9), r
        if r["reason"] == "exact_duplicate":
            assert ref_normalise(text_of[r["id"]]) == ref_normalise(text_of[r["duplicate_of"]])
    assert sum(1 for r in removed if r["reason"] == "near_duplicate") > 100
    check_accounting(corpus, verified_run)


def test_too_short_are_exactly_the_short_documents(corpus: pa.Table, verified_run: Path) -> None:
    short = {i for i, t in zip(corpus.column("id").to_pylist(), corpus.column("text").to_pylist(), strict=True)
             if len(ref_normalise(t)) < 200}  # fmt: skip
    removed = read(verified_run, "removed.parquet").to_pylist()
    assert {r["id"] for r in removed if r["reason"] == "too_short"} == short
    stats = json.loads((verified_run / "stats.json").read_text())
    assert stats["removed_by_reason"]["too_short"] == len(short)
    assert stats["kept"] + stats["removed"] + stats["quarantined"] == stats["rows_in"] == corpus.num_rows
    assert (verified_run / "cluster_sizes.png").read_bytes()[:4] == b"\x89PNG"
    assert "| **total** |" in (verified_run / "report.md").read_text()


def _doc(text_seed: int, n_words: int = 300) -> str:
    rng = random.Random(text_seed)
    vocab = [
        "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 9))) for _ in range(2000)
    ]
    return " ".join(rng.choice(vocab) for _ in range(n_words))


def test_global_vs_local_scope_on_cross_source_copies(real_docs: pa.Table, tmp_path: Path) -> None:
    base = real_docs.filter(pa.compute.greater_equal(pa.compute.utf8_length(real_docs.column("text")), 1500))
    base = base.slice(0, 50)
    texts = base.column("text").to_pylist()
    rng = random.Random(3)
    docs = pa.table(
        {
            "id": [f"a{i}" for i in range(50)] + [f"b{i}" for i in range(50)] + [f"c{i}" for i in range(50)],
            "source": ["web"] * 50 + ["books"] * 50 + ["web"] * 50,
            "text": texts + [edit(t, rng, 0.02) for t in texts] + [edit(t, rng, 0.02) for t in texts],
        }
    )
    truth = brute_force_pairs(docs.column("text").to_pylist(), 0.8)
    g = dedup.run(docs, DedupConfig(scope="global", source_priority=["books"]), tmp_path / "g")
    loc = dedup.run(docs, DedupConfig(scope="local", source_priority=["books"]), tmp_path / "l")
    g_removed = read(tmp_path / "g", "removed.parquet").to_pylist()
    l_removed = read(tmp_path / "l", "removed.parquet").to_pylist()
    src = dict(zip(docs.column("id").to_pylist(), docs.column("source").to_pylist(), strict=True))
    # Local scope never links documents of different sources; global scope does, preferring 'books'.
    assert all(src[r["id"]] == src[r["duplicate_of"]] for r in l_removed)
    assert any(src[r["id"]] != src[r["duplicate_of"]] for r in g_removed)
    assert all(src[r["duplicate_of"]] == "books" for r in g_removed if src[r["id"]] != src[r["duplicate_of"]])
    assert g["removed"] > loc["removed"]
    # Every b_i/c_i copy pair that brute force finds across sources is deduplicated globally only.
    g_kept = set(read(tmp_path / "g", "kept.parquet").column("id").to_pylist())
    l_kept = set(read(tmp_path / "l", "kept.parquet").column("id").to_pylist())
    ids = docs.column("id").to_pylist()
    cross = [(ids[i], ids[j]) for i, j in truth if src[ids[i]] != src[ids[j]]]
    assert cross
    assert all(not (a in g_kept and b in g_kept) for a, b in cross)
    # Local scope is exactly one global run per source.
    per_source: set[str] = set()
    for name in ("web", "books"):
        part = docs.filter(pa.compute.equal(docs.column("source"), name))
        dedup.run(part, DedupConfig(scope="global"), tmp_path / name)
        per_source |= set(read(tmp_path / name, "kept.parquet").column("id").to_pylist())
    assert l_kept == per_source
    assert any(a in l_kept and b in l_kept for a, b in cross)
    check_accounting(docs, tmp_path / "g")
    check_accounting(docs, tmp_path / "l")


def test_chain_keeps_both_ends_in_verified_mode_and_merges_in_slimpajama(tmp_path: Path) -> None:
    words = _doc(11, 600).split(" ")
    other = _doc(12, 600).split(" ")
    k = 40
    a = " ".join(words)
    b = " ".join(words[k:] + other[:k])
    c = " ".join(words[2 * k :] + other[: 2 * k])
    assert ref_jaccard(a, b) >= 0.8 and ref_jaccard(b, c) >= 0.8 and ref_jaccard(a, c) < 0.8
    docs = pa.table({"id": ["A", "B", "C"], "source": ["s1", "s2", "s3"], "text": [a, b, c]})
    dedup.run(docs, DedupConfig(source_priority=["s1", "s2", "s3"]), tmp_path / "v")
    kept = set(read(tmp_path / "v", "kept.parquet").column("id").to_pylist())
    removed = read(tmp_path / "v", "removed.parquet").to_pylist()
    assert kept == {"A", "C"}
    assert removed == [
        {"id": "B", "source": "s2", "reason": "near_duplicate", "duplicate_of": "A",
         "similarity": pytest.approx(ref_jaccard(a, b))}
    ]  # fmt: skip
    clusters = read(tmp_path / "v", "clusters.parquet").to_pydict()
    assert set(clusters["id"]) == {"A", "B", "C"} and set(clusters["cluster_id"]) == {"A"}
    # The recipe merges the chain and keeps one document, with no similarity to stand for C's removal.
    dedup.run(
        docs,
        DedupConfig(mode="slimpajama", bands=64, rows=2, source_priority=["s1", "s2", "s3"]),
        tmp_path / "s",
    )
    sp_removed = read(tmp_path / "s", "removed.parquet").to_pylist()
    assert {r["id"] for r in sp_removed} == {"B", "C"}
    assert all(r["duplicate_of"] == "A" and r["similarity"] is None for r in sp_removed)


def test_empty_and_short_documents_never_collapse(tmp_path: Path) -> None:
    texts = ["", " ", "!!!", None, "a", "b", "ab", "short text", "x" * 5, "tiny doc " * 3]
    docs = pa.table({"id": [f"d{i}" for i in range(len(texts))], "source": ["s"] * len(texts),
                     "text": pa.array(texts, pa.string())})  # fmt: skip
    for mode in ("verified", "slimpajama"):
        st = dedup.run(docs, DedupConfig(mode=mode), tmp_path / mode)
        assert st["removed_by_reason"] == {"too_short": len(texts), "exact_duplicate": 0, "near_duplicate": 0}
        assert read(tmp_path / mode, "clusters.parquet").num_rows == 0
        assert read(tmp_path / mode, "removed.parquet").column("duplicate_of").null_count == len(texts)
    # Without a length floor, distinct tiny texts stay apart; only identical normalised texts merge.
    for mode in ("verified", "slimpajama"):
        out = tmp_path / f"{mode}0"
        dedup.run(docs, DedupConfig(mode=mode, min_length=0), out)
        removed = read(out, "removed.parquet").to_pylist()
        norm = {f"d{i}": ref_normalise(t or "") for i, t in enumerate(texts)}
        assert all(norm[r["id"]] == norm[r["duplicate_of"]] for r in removed), removed
        assert len(read(out, "kept.parquet")) == len(set(norm.values()))


def test_ten_thousand_identical_and_templated_documents_cost_linear_work(tmp_path: Path) -> None:
    body = _doc(5, 200)
    n = 10_000
    identical = pa.table({"id": [f"i{k:05d}" for k in range(n)], "source": ["s"] * n, "text": [body] * n})
    st = dedup.run(identical, DedupConfig(), tmp_path / "identical")
    assert st["kept"] == 1 and st["removed_by_reason"]["exact_duplicate"] == n - 1
    assert st["phases"]["candidate_edges"] == 0
    assert st["clusters"]["size_histogram"] == {str(n): 1}
    # Templated boilerplate: all near-identical, not identical, so they fill the same band buckets.
    templated = pa.table(
        {
            "id": [f"t{k:05d}" for k in range(n)],
            "source": ["s"] * n,
            "text": [f"{body} record {k}" for k in range(n)],
        }
    )
    cfg = DedupConfig()
    st = dedup.run(templated, cfg, tmp_path / "templated")
    bands, _ = cfg.banding
    assert st["phases"]["candidate_edges"] <= bands * n  # star edges: linear, never n^2 / 2 = 5e7
    assert st["kept"] == 1 and st["removed_by_reason"]["near_duplicate"] == n - 1
    check_accounting(templated, tmp_path / "templated")


def _files(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in (*OUTPUTS, "cluster_sizes.png")}


def test_output_is_byte_identical_whatever_the_batching(
    corpus: pa.Table, verified_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dedup.run(corpus.to_batches(max_chunksize=97), DedupConfig(batch_rows=100_000), tmp_path / "other")
    assert _files(tmp_path / "other") == _files(verified_run)
    assert not (tmp_path / "other" / "_work").exists()
    # candidate buckets of a few bands per query (as on a corpus too large for one) give the same edges
    from sift.dedup.engines import polars as engine

    monkeypatch.setattr(engine, "BAND_ROWS", 3 * corpus.num_rows)
    dedup.run(corpus, DedupConfig(), tmp_path / "bands")
    assert _files(tmp_path / "bands") == _files(verified_run)


def test_slimpajama_mode_is_deterministic_and_one_survivor_per_component(
    corpus: pa.Table, tmp_path: Path
) -> None:
    sample = corpus.slice(0, 1500)
    st = dedup.run(sample, DedupConfig(mode="slimpajama"), tmp_path / "a")
    dedup.run(sample, DedupConfig(mode="slimpajama", batch_rows=123), tmp_path / "b")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert st["banding"] == {"bands": 9, "rows": 13, "signature": "minhash",
                             "candidate_probability_at_threshold": round(candidate_probability(0.8, 9, 13), 6)}  # fmt: skip
    kept = set(read(tmp_path / "a", "kept.parquet").column("id").to_pylist())
    clusters = read(tmp_path / "a", "clusters.parquet").to_pydict()
    by_cluster: dict[str, list[str]] = {}
    for i, c in zip(clusters["id"], clusters["cluster_id"], strict=True):
        by_cluster.setdefault(c, []).append(i)
    assert by_cluster
    for c, members in by_cluster.items():
        assert [m for m in members if m in kept] == [c]
    for r in read(tmp_path / "a", "removed.parquet").to_pylist():
        if r["reason"] == "near_duplicate":
            assert r["similarity"] is None


@pytest.mark.parametrize("average_text", [40, 3000])
def test_kept_file_bytes_do_not_depend_on_shards_or_runs(
    tmp_path: Path, average_text: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kept.parquet is written from zero-copy slices of the spilled shards (one per run of kept rows): the same
    kept rows give the same bytes whatever the shard sizes, for short and long texts (rows per page follow the
    average text size), across row groups."""
    from sift.dedup import outputs
    from sift.dedup.outputs import write_kept
    from sift.dedup.work import WorkDir, spill

    monkeypatch.setattr(outputs, "ROW_GROUP_ROWS", 1000)

    rng = np.random.default_rng(average_text)
    n = 5000
    texts = ["".join(rng.choice(list(string.ascii_lowercase + " "), int(rng.integers(1, 2 * average_text))))
             for _ in range(n)]  # fmt: skip
    docs = pa.table({"id": [f"d{i}" for i in range(n)], "source": ["s"] * n, "text": texts})
    kept = rng.random(n) < 0.7
    text_bytes = int(sum(len(t) for t, k in zip(texts, kept, strict=True) if k))
    files = []
    for batch in (n, 333, 1024):
        work = WorkDir(tmp_path / str(batch), {"run": batch}, spill="arrow")
        spill(work, docs, batch)
        write_kept(work, kept, tmp_path / f"kept-{batch}.parquet", text_bytes)
        files.append((tmp_path / f"kept-{batch}.parquet").read_bytes())
    assert files[0] == files[1] == files[2]
    back = pq.read_table(tmp_path / f"kept-{n}.parquet")
    assert pq.ParquetFile(tmp_path / f"kept-{n}.parquet").metadata.num_row_groups == -(
        -int(kept.sum()) // 1000
    )
    assert back.column("id").to_pylist() == [f"d{i}" for i in np.flatnonzero(kept)]
    assert back.column("text").to_pylist() == [texts[i] for i in np.flatnonzero(kept)]
