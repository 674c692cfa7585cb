"""`sift compile`: compile every numba kernel signature Sift's jobs use into the package-owned kernel cache, once per
installation or cluster image (`sift.pipelines.core.kernel_cache` says why and how the cache is keyed).

The kernels of SlimPajama dedup (facts, normalisation, Jaccard verification, components, survivors) and R2D2
containment's long-value hash are called here exactly as the Polars and Spark engines call them, on a few tiny
inputs that take every path with its own argument types (ASCII, non-ASCII and non-NFC texts, string and
large_string arrays, mutable and immutable (IPC) buffers, each signature kind and shingle kind). A kernel signature
already in the cache is loaded, not compiled, so running it again is quick and changes nothing. Also
`python -m sift.pipelines.compile`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from sift.pipelines.core import kernel_cache

# Texts that take every kernel path: ASCII, non-ASCII in NFC, not in NFC (a combining accent), Unicode
# punctuation, word-shingle input, a text shorter than a shingle, an empty one and a null.
_TEXTS = [
    "The quick brown fox jumps over the lazy dog, again and again and again.",
    "The quick brown fox jumps over the lazy dog, again and again and again!",
    "Café déjà vu — naïve coöperation, «quoted» and ÜBER lower-cased text.",
    "Cafe\u0301 de\u0301ja\u0300 vu, naive cooperation in a text that is not in NFC form.",
    "short",
    "",
    None,
]


@dataclass
class CompileReport:
    folder: Path
    kernels: int
    signatures: int
    compiled: int
    seconds: float


def _documents(text_type: pa.DataType, *, nulls: bool) -> pa.RecordBatch:
    texts = _TEXTS if nulls else [t for t in _TEXTS if t is not None]
    n = len(texts)
    return pa.record_batch(
        {
            "_row": pa.array(range(n), pa.int64()),
            "id": pa.array([f"d{i}" for i in range(n)]),
            "source": pa.array(["a", "b"] * (n // 2) + ["a"] * (n % 2)),
            "text": pa.array(texts, text_type),
        }
    )


def _read_only(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch as Arrow IPC hands it over (Spark's `mapInArrow`, the Polars engine's memory-mapped work
    tables): immutable buffers, which numba types as read-only arrays, a signature of their own (without nulls:
    filling nulls makes a new, mutable buffer)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return pa.ipc.open_stream(sink.getvalue()).read_next_batch()


def _frozen(a: np.ndarray) -> np.ndarray:
    out = a.copy()
    out.flags.writeable = False
    return out


def _dedup_workload() -> None:
    """The dedup kernels as `dedup/engines/polars.py` and `dedup/engines/spark.py` call them."""
    from sift.dedup import kernels
    from sift.dedup.config import DedupConfig

    configs = [
        DedupConfig(),
        DedupConfig(mode="slimpajama"),
        DedupConfig(shingle="word", ngram=3, signature="minhash", unicode_punctuation=False),
        DedupConfig(ngram=100),  # longer than the fused kernels' ring: the token-array path
    ]
    for text_type in (pa.string(), pa.large_string()):
        for batch in (_documents(text_type, nulls=True), _read_only(_documents(text_type, nulls=False))):
            texts = batch.column("text")
            n = batch.num_rows
            a = np.array([0, 0, 2, 4], np.int64)
            b = np.array([1, 3, 3, 5], np.int64)
            for cfg in configs:
                facts = kernels.facts_batch(batch, cfg)
                sig = facts.column("signature").flatten().to_numpy().reshape(n, cfg.num_perm)
                for s in (sig, _frozen(sig)):
                    kernels.signature_agreement(s, rows_a=a, rows_b=b)  # Polars engine
                    kernels.signature_agreement(s[a], s[b])  # Spark engine
                word = cfg.shingle == "word"
                kernels.jaccard_texts(
                    texts, a, b, ngram=cfg.ngram, word=word, seed=cfg.seed, normalise_first=True,
                    unicode_punctuation=cfg.strip_unicode_punctuation, threshold=cfg.threshold,
                )  # fmt: skip
                punct = cfg.strip_unicode_punctuation
                na = kernels.normalise(texts.take(pa.array(a)), unicode_punctuation=punct)
                nb = kernels.normalise(texts.take(pa.array(b)), unicode_punctuation=punct)
                kernels.normalise(texts, unicode_punctuation=punct)
                kernels.jaccard_pairs(
                    na, nb, ngram=cfg.ngram, word=word, seed=cfg.seed, threshold=cfg.threshold
                )
                offsets, values = kernels.shingle_sets(na, ngram=cfg.ngram, word=word, seed=cfg.seed)
                kernels.jaccard_edges(offsets, values, np.array([0, 1], np.int64), np.array([1, 2], np.int64))
            for ea, eb in ((a, b), (_frozen(a), _frozen(b))):
                kernels.connected_components(n, ea, eb)
                kernels.greedy_survivors(n, ea, eb, np.linspace(0.8, 1.0, a.size))


def _containment_workload() -> None:
    """R2D2 containment's numba hash of long values, as `dedup/containment/kernels.py: column_hash` calls it."""
    from sift.dedup.containment.kernels import NULL_HASH, _blob_buffers
    from sift.dedup.containment.kernels_numba import _fold, _hash_bytes, _hash_words

    blobs = pa.array([b"x" * 100, None, b"long value " * 10], pa.large_binary())
    seed = np.uint64(0x5EED)
    for batch in (pa.record_batch({"v": blobs}), _read_only(pa.record_batch({"v": blobs}))):
        offsets, data = _blob_buffers(batch.column("v"))
        valid = np.array([True, False, True])
        h = _hash_bytes(offsets, data, valid, seed, NULL_HASH)
        _hash_words(np.zeros((3, 2), np.int64), valid, seed, NULL_HASH)
        _fold(h, h)


def compile_kernels() -> CompileReport:
    """Compile (or load, when already there) every kernel signature into the package-owned cache. Raises
    `NumbaInternalsChanged` when numba's caching internals changed, `PermissionError` when the cache folder is
    not writable."""
    kernel_cache.check_numba()
    folder = kernel_cache.cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".writable"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise PermissionError(
            f"the kernel cache folder {folder} is not writable: run `sift compile` as the user who installed "
            "Sift (or set SIFT_KERNEL_CACHE to a writable folder the jobs will also see)"
        ) from exc
    start = time.perf_counter()
    _dedup_workload()
    _containment_workload()
    found = kernel_cache.dispatchers()
    signatures = sum(len(d.signatures) for d in found)
    compiled = sum(sum(d.stats.cache_misses.values()) for d in found)
    return CompileReport(folder, len(found), signatures, compiled, time.perf_counter() - start)


def main() -> None:
    report = compile_kernels()
    print(
        f"{report.signatures} signatures of {report.kernels} kernels in {report.folder}: "
        f"{report.compiled} compiled, {report.signatures - report.compiled} loaded ({report.seconds:.1f} s)"
    )


if __name__ == "__main__":
    main()
