"""Unit tests of the SlimPajama-DC dedup kernels (issue 3): normalisation, shingles, exact Jaccard, signatures,
banding and greedy survivors, each against a plain-Python reference."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from test_dedup_core import ref_jaccard, ref_normalise

from sift.dedup import DedupConfig, kernels


@pytest.fixture(scope="module")
def texts(real_docs: pa.Table) -> list[str]:
    return real_docs.column("text").to_pylist()[:400]


def test_normalise_matches_python(texts: list[str]) -> None:
    extra = ["Héllo,  World!!\n\tFoo—bar\u00a0baz  ", "  ..  ", "", "a\u2028b\x1cc", "ＡＢＣ　ｄ"]
    got = kernels.normalise(pa.array(texts + extra + [None])).to_pylist()
    assert got == [ref_normalise(t) for t in texts + extra] + [""]
    ascii_only = kernels.normalise(pa.array(["foo—bar, baz"]), unicode_punctuation=False).to_pylist()
    assert ascii_only == ["foo—bar baz"]


def test_normalise_folds_case_and_nfc_like_pyarrow_and_python() -> None:
    """Case is folded from a per-code-point table and only texts that may not be NFC meet Python's check: on
    random texts of the code points where that matters (case pairs, ones that grow in UTF-8 when lower-cased,
    combining marks, Hangul jamo, singletons NFC replaces, astral ones), the result is NFC, then pyarrow's
    lower case, then the punctuation and whitespace rules."""
    import unicodedata

    rng = np.random.default_rng(11)
    # assigned code points only: Python's and pyarrow's Unicode versions differ on the unassigned ones
    assigned = [chr(c) for c in range(0x80, 0x600) if unicodedata.category(chr(c)) != "Cn"]
    pool = assigned + list("AbZ .,!\n\t-_") + [
        chr(c) for c in (0x23A, 0x23E, 0x130, 0x1E9E, 0x3A3, 0x1100, 0x1161, 0x11A8, 0xAC00, 0x301, 0x308,
                         0x327, 0xF900, 0x212B, 0x2126, 0xFF21, 0x2028, 0x3000, 0x10400, 0x1F600)
    ]  # fmt: skip
    texts = ["".join(rng.choice(pool, rng.integers(0, 50))) for _ in range(3000)]
    nfc_lower = pa.compute.utf8_lower(pa.array([unicodedata.normalize("NFC", t) for t in texts])).to_pylist()
    expected = [" ".join("".join(c for c in t if not unicodedata.category(c).startswith("P")).split())
                for t in nfc_lower]  # fmt: skip
    assert kernels.normalise(pa.array(texts)).to_pylist() == expected
    facts = kernels.document_facts(
        pa.array(texts), normalise_first=True, ngram=5, word=False, seed=1, signature="oph", num_perm=32,
        bands=8, rows=4,
    )  # fmt: skip
    plain = kernels.document_facts(
        pa.array(expected), ngram=5, word=False, seed=1, signature="oph", num_perm=32, bands=8, rows=4
    )
    for key in plain:
        assert np.array_equal(facts[key], plain[key]), key


def test_exact_jaccard_kernels_agree_with_python(texts: list[str]) -> None:
    norm = kernels.normalise(pa.array(texts))
    rng = np.random.default_rng(1)
    a = rng.integers(0, len(texts), 300)
    b = rng.integers(0, len(texts), 300)
    a[:50] = b[:50]  # identical pairs
    hashed = kernels.jaccard_texts(norm, a, b, ngram=13, word=False, seed=5)
    off, vals = kernels.shingle_sets(norm, ngram=13, word=False, seed=5)
    assert np.array_equal(hashed, kernels.jaccard_edges(off, vals, a, b))
    expected = [ref_jaccard(texts[i], texts[j]) for i, j in zip(a, b, strict=True)]
    assert hashed == pytest.approx(expected, abs=1e-12)
    pairs = kernels.jaccard_pairs(
        norm.take(pa.array(a)), norm.take(pa.array(b)), ngram=13, word=False, seed=5
    )
    assert np.array_equal(pairs, hashed)
    # raw texts normalised inside the kernel (the Polars engine's verification) give the same numbers
    raw = pa.array(texts + ["Héllo,  WORLD!!\n\tFoo—bar ÉTÉ " * 20, None])
    fused = kernels.jaccard_texts(raw, a, b, ngram=13, word=False, seed=5, normalise_first=True)
    assert np.array_equal(fused, hashed)
    last = np.array([len(texts), len(texts), 0]), np.array([len(texts), len(texts) + 1, len(texts)])
    direct = kernels.jaccard_texts(kernels.normalise(raw), *last, ngram=13, word=False, seed=5)
    assert np.array_equal(
        kernels.jaccard_texts(raw, *last, ngram=13, word=False, seed=5, normalise_first=True), direct
    )


@pytest.mark.parametrize("word", [False, True])
def test_jaccard_threshold_stops_only_below_it(texts: list[str], word: bool) -> None:
    """With a threshold, the kernel may stop streaming a pair that cannot reach it: every value at or above
    the threshold is still exact, and a stopped pair's value is an upper bound that stays below it."""
    rng = np.random.default_rng(4)
    edited = []
    for t in texts[:120]:  # near-duplicates at every distance: words dropped at rates 0-40%
        words = t.split()
        keep = rng.random(len(words)) >= rng.uniform(0.0, 0.4)
        edited.append(" ".join(w for w, k in zip(words, keep, strict=True) if k))
    raw = pa.array(texts + edited)
    a = np.r_[np.arange(120), rng.integers(0, len(texts), 200)]
    b = np.r_[np.arange(120) + len(texts), rng.integers(0, len(texts), 200)]
    kw = {"ngram": 5 if word else 13, "word": word, "seed": 7, "normalise_first": True}
    exact = kernels.jaccard_texts(raw, a, b, **kw)
    for threshold in (0.5, 0.8, 0.9):
        got = kernels.jaccard_texts(raw, a, b, threshold=threshold, **kw)
        above = exact >= threshold
        assert above.any() and (~above).any()
        assert np.array_equal(got[above], exact[above])
        assert (got[~above] < threshold).all() and (got[~above] >= exact[~above]).all()
        if not word:
            assert (got[~above] > exact[~above]).any()  # some pairs did stop early


def test_fused_character_shingles_equal_the_reference_loop(texts: list[str]) -> None:
    """The character-shingle loop fused into the one-permutation signature and into the Jaccard sets gives the
    values of the reference `_tokens` + `_window_hashes` (the copies are kept for speed; see shingles.py)."""
    from sift.dedup.kernels import jaccard, shingles, signatures

    norm = kernels.normalise(pa.array(texts[:300] + ["ab", "", "x" * 200, "é" * 40]))
    offsets, data = kernels.string_buffers(norm)
    seed, k, ngram = np.uint64(7), 64, 13
    asc = shingles._ascii_tokens(seed)
    for d in range(len(norm)):
        s, e = offsets[d], offsets[d + 1]
        tok, sh = np.empty(max(e - s, 1), np.uint64), np.empty(max(e - s, 1), np.uint64)
        m = shingles._doc_shingles(data, s, e, ngram, False, seed, tok, sh, asc)
        got = np.empty(k, np.uint64)
        assert signatures._oph_char_fused(data, s, e, ngram, seed, k, asc, got)[1] == m
        if m:
            ref = np.empty(k, np.uint64)
            signatures._signature_oph(sh, m, k, seed, ref)
            signatures._densify(got, k, seed)
            assert np.array_equal(got, ref)
        mask = int(jaccard._table_mask(e - s))
        keys = np.zeros(mask + 1, np.uint64)
        assert jaccard._char_set(data, s, e, ngram, seed, asc, keys, mask) == len(set(sh[:m].tolist()))
        assert set(keys[keys != 0].tolist()) == set(sh[:m].tolist())


def test_facts_of_raw_texts_equal_facts_of_normalised(texts: list[str]) -> None:
    raw = pa.array(texts + ["ＡＢＣ　ｄ Café  e\u0301té!!" * 30, None, ""])
    kw = {"ngram": 13, "word": False, "seed": 3, "signature": "oph", "num_perm": 64, "bands": 16, "rows": 4}
    fused = kernels.document_facts(raw, normalise_first=True, **kw)
    plain = kernels.document_facts(kernels.normalise(raw), **kw)
    for key in plain:
        assert np.array_equal(fused[key], plain[key]), key


@pytest.mark.parametrize("signature", ["oph", "minhash"])
def test_signature_agreement_estimates_jaccard(texts: list[str], signature: str) -> None:
    norm = kernels.normalise(pa.array(texts))
    facts = kernels.document_facts(
        norm, ngram=13, word=False, seed=9, signature=signature, num_perm=128, bands=25, rows=5
    )
    ok = np.flatnonzero(facts["nshingles"] >= 200)
    rng = np.random.default_rng(2)
    a, b = rng.choice(ok, 200), rng.choice(ok, 200)
    sig = facts["signature"]
    est = kernels.signature_agreement(sig[a], sig[b]) / 128
    exact = kernels.jaccard_texts(norm, a, b, ngram=13, word=False, seed=9)
    assert np.abs(est - exact).max() < 0.2 and np.abs(est - exact).mean() < 0.03
    # Identical texts share every band key; the exact hash separates different texts.
    same = kernels.document_facts(
        pa.array([norm[int(ok[0])].as_py()] * 2), ngram=13, word=False, seed=9, signature=signature,
        num_perm=128, bands=25, rows=5,
    )  # fmt: skip
    assert np.array_equal(same["bands"][0], same["bands"][1]) and same["h1"][0] == same["h1"][1]
    assert len(set(facts["h1"][ok].tolist())) == len({norm[int(i)].as_py() for i in ok})


def test_recall_banding_and_prefilter() -> None:
    cfg = DedupConfig()
    assert cfg.banding == (25, 5)
    assert kernels.prefilter_count(cfg) == int(np.ceil((0.8 - 0.15) * 128))
    assert kernels.prefilter_count(DedupConfig(mode="slimpajama")) == -1


def test_greedy_survivors_keep_chain_ends_and_point_at_kept() -> None:
    # 0~1 (0.9), 1~2 (0.85), 0 and 2 dissimilar; 3~4 and 3~5, 4~5 missing
    kept, dup, sim = kernels.greedy_survivors(
        6, np.array([0, 1, 3, 3]), np.array([1, 2, 4, 5]), np.array([0.9, 0.85, 0.8, 0.95])
    )
    assert kept.tolist() == [True, False, True, True, False, False]
    assert dup.tolist() == [-1, 0, -1, -1, 3, 3]
    assert sim[1] == 0.9 and sim[5] == 0.95 and np.isnan(sim[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_connected_components_match_scipy(seed: int) -> None:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rng = np.random.default_rng(seed)
    n = 3000
    a = rng.integers(0, n, 2500)
    b = rng.integers(0, n, 2500)
    labels = kernels.connected_components(n, a, b)
    _, ref = connected_components(coo_matrix((np.ones(a.size), (a, b)), shape=(n, n)), directed=False)
    # Same partition, and each label is the smallest node of its component.
    pairs = set(zip(labels.tolist(), ref.tolist(), strict=True))
    assert len(pairs) == len(set(labels.tolist())) == len(set(ref.tolist()))
    assert all(labels[labels[i]] == labels[i] and labels[i] <= i for i in range(n))
