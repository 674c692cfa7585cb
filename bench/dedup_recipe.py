"""The SlimPajama near-duplicate recipe as the benchmark's peers run it (SlimPajama-DC, MinHash dedup step).

Shared by the peer pipelines (``dedup_peer_datasketch.py``, ``dedup_peer_rensa.py``) and by the ground truth of
``bench/dedup.py``, so that every peer normalises, shingles, bands and picks survivors the same way and only the
MinHash library differs:

- NFC normalisation, lowercase, ASCII punctuation stripped, whitespace collapsed (SlimPajama's ``normalize``);
- documents whose normalised text is shorter than 200 characters dropped (reason ``too_short``);
- character 13-gram shingle sets; MinHash with 128 permutations; LSH with 9 bands of 13 rows;
- each band bucket links its documents, connected components, one survivor per component (the first document of
  the component in input order; SlimPajama's was arbitrary).

This module is benchmark code: it is never imported by ``dedup/`` or ``pipelines/``.
"""

from __future__ import annotations

import json
import re
import string
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.json as pj
import pyarrow.parquet as pq
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

NGRAM = 13
NUM_PERM = 128
BANDS = 9
ROWS = 13
MIN_CHARS = 200
THRESHOLD = 0.8

_PUNCT = str.maketrans("", "", string.punctuation)
_WS = re.compile(r"\s+")


def normalise(text: str) -> str:
    """SlimPajama's normalisation: NFC, lowercase, ASCII punctuation removed, whitespace collapsed and stripped."""
    text = unicodedata.normalize("NFC", text).lower().translate(_PUNCT)
    return _WS.sub(" ", text).strip()


def shingles(norm: str, n: int = NGRAM) -> set[str]:
    """The set of character ``n``-grams of a normalised text (the whole text when it is shorter than ``n``)."""
    if len(norm) <= n:
        return {norm}
    return {norm[i : i + n] for i in range(len(norm) - n + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    """Exact Jaccard similarity of two shingle sets."""
    if not a and not b:
        return 1.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


@dataclass
class Batch:
    """One batch of corpus rows: the global row numbers, ids, sources and texts."""

    start: int
    ids: list[str]
    sources: list[str]
    texts: list[str]


def iter_corpus(
    path: str | Path,
    *,
    batch_rows: int = 8192,
    id_field: str = "id",
    text_field: str = "text",
    source_field: str = "source",
) -> Iterator[Batch]:
    """Stream a JSONL corpus in batches of at most ``batch_rows`` rows (pyarrow's streaming JSON reader)."""
    reader = pj.open_json(str(path), read_options=pj.ReadOptions(block_size=16 << 20))
    start = 0
    for record_batch in reader:
        for offset in range(0, record_batch.num_rows, batch_rows):
            rb = record_batch.slice(offset, batch_rows)
            ids = [str(v) for v in rb.column(id_field).to_pylist()]
            sources = [str(v) for v in rb.column(source_field).to_pylist()]
            texts = [v or "" for v in rb.column(text_field).to_pylist()]
            yield Batch(start, ids, sources, texts)
            start += len(ids)


def band_keys(signatures: np.ndarray, bands: int = BANDS, rows: int = ROWS) -> np.ndarray:
    """Hash each band of ``rows`` signature values into one uint64 key: shape (n_docs, bands).

    The key is a 64-bit multiply-xorshift mix of the band's values; two documents share a bucket when they share
    the key of some band (a 64-bit collision between different bands is negligible at benchmark scale).
    """
    sig = signatures[:, : bands * rows].astype(np.uint64).reshape(len(signatures), bands, rows)
    keys = np.full((len(signatures), bands), np.uint64(0x9E3779B97F4A7C15), dtype=np.uint64)
    mult = np.uint64(0xFF51AFD7ED558CCD)
    with np.errstate(over="ignore"):
        for r in range(rows):
            keys = (keys ^ sig[:, :, r]) * mult
            keys ^= keys >> np.uint64(29)
        keys += np.arange(bands, dtype=np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
    return keys


def bucket_edges(keys: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges linking each document of a band bucket to the bucket's first document (a star per bucket).

    ``keys`` is (n, bands) band keys, ``rows`` the (n,) global row numbers. A star keeps the same components as
    all-pairs linking at linear cost.
    """
    flat = keys.ravel()
    doc = np.repeat(rows, keys.shape[1])
    order = np.lexsort((doc, flat))
    flat, doc = flat[order], doc[order]
    new_bucket = np.ones(len(flat), dtype=bool)
    new_bucket[1:] = flat[1:] != flat[:-1]
    head = doc[np.maximum.accumulate(np.where(new_bucket, np.arange(len(flat)), 0))]
    linked = ~new_bucket
    return head[linked], doc[linked]


def components_and_survivors(n_docs: int, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of the candidate graph and each document's survivor (lowest row of its component)."""
    graph = coo_matrix((np.ones(len(u), dtype=np.int8), (u, v)), shape=(n_docs, n_docs)).tocsr()
    _, labels = connected_components(graph, directed=False)
    first = np.full(labels.max() + 1 if n_docs else 0, n_docs, dtype=np.int64)
    np.minimum.at(first, labels, np.arange(n_docs))
    return labels, first[labels]


def write_kept(corpus: str | Path, keep: np.ndarray, path: Path) -> None:
    """Stream the corpus again and write the rows where ``keep`` is true, all columns, to one Parquet file."""
    reader = pj.open_json(str(corpus), read_options=pj.ReadOptions(block_size=16 << 20))
    writer: pq.ParquetWriter | None = None
    start = 0
    try:
        for rb in reader:
            mask = pa.array(keep[start : start + rb.num_rows])
            start += rb.num_rows
            part = pa.Table.from_batches([rb]).filter(mask)
            if writer is None:
                writer = pq.ParquetWriter(path, part.schema)
            writer.write_table(part.cast(writer.schema))
    finally:
        if writer is not None:
            writer.close()


def write_outputs(
    out_dir: str | Path,
    ids: list[str],
    sources: list[str],
    too_short: np.ndarray,
    survivor: np.ndarray,
    labels: np.ndarray,
    stats: dict,
    corpus: str | Path | None = None,
) -> dict:
    """Write ``kept.parquet``, ``removed.parquet``, ``clusters.parquet`` and ``stats.json`` (Sift's contract).

    With ``corpus``, ``kept.parquet`` holds the kept documents with all their input columns (a second streaming
    pass over the corpus, as Sift's output has them); without it, only their ids and sources.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = len(ids)
    rows = np.arange(n)
    near = (~too_short) & (survivor != rows)
    removed_rows = np.flatnonzero(too_short | near)
    id_arr = np.array(ids, dtype=object)
    src_arr = np.array(sources, dtype=object)
    dup_of = [ids[survivor[r]] if near[r] else None for r in removed_rows]
    removed = pa.table(
        {
            "id": pa.array(id_arr[removed_rows], pa.string()),
            "source": pa.array(src_arr[removed_rows], pa.string()),
            "reason": pa.array(
                ["near_duplicate" if near[r] else "too_short" for r in removed_rows], pa.string()
            ),
            "duplicate_of": pa.array(dup_of, pa.string()),
            "similarity": pa.nulls(len(removed_rows), pa.float64()),
        }
    )
    pq.write_table(removed, out / "removed.parquet")
    keep = ~(too_short | near)
    kept_rows = np.flatnonzero(keep)
    if corpus is not None:
        write_kept(corpus, keep, out / "kept.parquet")
    else:
        pq.write_table(
            pa.table(
                {
                    "id": pa.array(id_arr[kept_rows], pa.string()),
                    "source": pa.array(src_arr[kept_rows], pa.string()),
                }
            ),
            out / "kept.parquet",
        )
    eligible = np.flatnonzero(~too_short)
    sizes = np.bincount(labels[eligible], minlength=labels.max() + 1 if n else 0)
    in_cluster = eligible[sizes[labels[eligible]] >= 2]
    pq.write_table(
        pa.table(
            {
                "id": pa.array(id_arr[in_cluster], pa.string()),
                "cluster_id": pa.array(labels[in_cluster].astype(np.int64)),
            }
        ),
        out / "clusters.parquet",
    )
    stats = dict(stats)
    stats.update(
        documents_in=n,
        kept=len(kept_rows),
        removed_too_short=int(too_short.sum()),
        removed_near_duplicate=int(near.sum()),
        largest_cluster=int(sizes.max()) if len(sizes) else 0,
    )
    (out / "stats.json").write_text(json.dumps(stats, indent=2))
    return stats
