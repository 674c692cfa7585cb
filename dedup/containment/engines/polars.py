"""R2D2 step 3 on one machine (the embedded engine).

Per-column value hashes are cached: a table of up to 32 MB is read whole once (kept for the recipes too) and each
column normalised and hashed when a projection first needs it; a larger table is hashed in one streamed pass over
its Parquet row groups (or CSV); a projection's row fingerprints fold the cached column hashes, and its sorted distinct fingerprints with the
first row of each are cached too. The anti-join of A against B is a sorted search of A's distinct fingerprints in
B's (a binary search of one sorted array in the other).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from sift.dedup.containment.cache import LRU
from sift.dedup.containment.engines.base import ContentEngine
from sift.dedup.containment.kernels import (
    Canon,
    canon_hashes,
    canon_nbytes,
    canonical,
    column_hash,
    fold_fingerprints,
)
from sift.dedup.containment.tables import iter_column_batches, read_table, read_tables
from sift.pipelines.core.hashing import GOLDEN

_WHOLE_TABLE_BYTES = 32 << 20  # tables stored in fewer bytes are read whole (one read for hashes and recipes)
_AHEAD_TABLES = 64  # tables read (on threads) and hashed (in one batch per type) together ahead of the checks


def _table_bytes(table: pa.Table) -> int:
    """Memory held by a table just read (its buffers; Table.nbytes, which looks for shared buffers, costs 4x)."""
    return table.get_total_buffer_size()


def _sorted_distinct(x: np.ndarray) -> np.ndarray:
    """np.unique by sorting (numpy's hash-based unique is several times slower on uint64 hashes)."""
    s = np.sort(x)
    if len(s) < 2:
        return s
    keep = np.empty(len(s), dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


@dataclass
class Projection:
    table: int
    keys: tuple[str, ...]
    rows: int
    fps: np.ndarray  # uint64 per row
    uniq: np.ndarray  # sorted distinct fingerprints
    first: np.ndarray  # first row of each distinct fingerprint

    @property
    def nbytes(self) -> int:
        return self.fps.nbytes + self.uniq.nbytes + self.first.nbytes


class PolarsEngine(ContentEngine):
    name = "polars"

    def __init__(self, refs, schemas, cache_bytes: int) -> None:
        super().__init__(refs, schemas, cache_bytes)
        self.columns = LRU(cache_bytes // 4)
        self.projections = LRU(cache_bytes // 4)
        self.uniq_columns = LRU(cache_bytes // 8)
        self.canons = LRU(cache_bytes // 4)
        self.tables = LRU(cache_bytes // 4)

    def table(self, t: int) -> pa.Table:
        """Table t read whole (cached: the hashing and the recipes both need it)."""
        got = self.tables.get(t)
        if got is None:
            got = read_table(self.refs[t])
            self.tables.put(t, got, _table_bytes(got))
        return got

    def prefetch(self, specs: list[tuple[int, tuple[str, ...]]]) -> None:
        """Read the tables these projections need ahead, on a few threads, in order of first need, while they fit
        the table cache (reading dominates hashing; Arrow releases the GIL while it decodes); then normalise and
        hash the columns they need, a batch of tables at a time (`canon_hashes`)."""
        need: dict[int, dict[int, None]] = {}
        for t, keys in specs:
            if self._whole(t) and self.columns.items.get(t) is None:
                by_key = self.schemas[t].by_key
                need.setdefault(t, {}).update(dict.fromkeys(by_key[k].position for k in keys))
        tables = list(need)
        todo = [t for t in tables if self.tables.items.get(t) is None]
        # the next chunk is read on threads while this one is hashed (numpy releases the GIL on whole blocks)
        reads = read_tables([self.refs[t] for t in todo], window=2 * _AHEAD_TABLES)
        try:
            pending = set(todo)
            room = self.tables.budget - self.tables.used
            for start in range(0, len(tables), _AHEAD_TABLES):
                chunk = tables[start : start + _AHEAD_TABLES]
                for t in chunk:
                    if t not in pending:
                        continue
                    _ref, got = next(reads)
                    if isinstance(got, Exception):
                        return  # raised again by the reader that needs the table
                    size = _table_bytes(got)
                    if size > room:
                        return
                    room -= size
                    self.tables.put(t, got, size)
                if not self._hash_ahead({t: need[t] for t in chunk}):
                    return
        finally:
            reads.close()

    def _hash_ahead(self, need: dict[int, dict[int, None]]) -> bool:
        """Normalise and hash the needed columns of these (cached) tables, grouped by Arrow type and class.
        False when the hash cache has no room left for them."""
        groups: dict[tuple[str, pa.DataType], list[tuple[int, int, pa.ChunkedArray]]] = {}
        cells = 0
        for t, positions in need.items():
            table = self.tables.items.get(t)
            if table is None:
                continue
            for pos in positions:
                if self.columns.items.get((t, pos)) is not None:
                    continue
                col = table[0].column(pos)
                if pa.types.is_dictionary(col.type):
                    col = pa.chunked_array([c.dictionary_decode() for c in col.chunks], col.type.value_type)
                klass = self.schemas[t].columns[pos].klass
                groups.setdefault((klass, col.type), []).append((t, pos, col))
                cells += len(col)
        if 8 * cells > self.columns.budget - self.columns.used:
            return False
        for (klass, _type), cols in groups.items():
            for (t, pos, _col), (canon, hashes) in zip(
                cols, canon_hashes([c for _t, _p, c in cols], klass), strict=True
            ):
                self.canons.put((t, pos), canon, canon_nbytes(canon))
                self.columns.put((t, pos), hashes, hashes.nbytes)
        return True

    def column_hashes(self, t: int) -> list[np.ndarray]:
        got = self.columns.get(t)
        if got is not None:
            return got
        s = self.schemas[t]
        parts: list[list[np.ndarray]] = [[] for _ in s.columns]
        batches = 0
        canons: list[Canon] = []
        for batch in iter_column_batches(self.refs[t], [c.position for c in s.columns]):
            batches += 1
            canons = []
            for i, c in enumerate(s.columns):
                canon = canonical(batch.column(i), c.klass)
                canons.append(canon)
                parts[i].append(column_hash(canon))
        if batches == 1:  # keep the normalised values of one-batch tables for the value confirmation
            for c, canon in zip(s.columns, canons, strict=True):
                self.canons.put((t, c.position), canon, canon_nbytes(canon))
        hashes = [np.concatenate(p) if p else np.zeros(0, dtype=np.uint64) for p in parts]
        self.columns.put(t, hashes, sum(h.nbytes for h in hashes))
        return hashes

    def _whole(self, t: int) -> bool:
        return self.refs[t].bytes <= _WHOLE_TABLE_BYTES

    def _num_rows(self, t: int) -> int:
        if not self.schemas[t].columns:
            return 0
        if self._whole(t):
            return self.table(t).num_rows
        return len(self.column_hashes(t)[0])

    def column_hash(self, t: int, position: int) -> np.ndarray:
        """The value hashes of one column. A table read whole has each column normalised and hashed only when a
        projection first needs it (a container's other columns never are); a larger table is streamed once and
        all its columns hashed in that pass."""
        if not self._whole(t):
            return self.column_hashes(t)[position]
        got = self.columns.get((t, position))
        if got is None:
            c = self.schemas[t].columns[position]
            canon = canonical(self.table(t).column(c.position), c.klass)
            self.canons.put((t, c.position), canon, canon_nbytes(canon))
            got = column_hash(canon)
            self.columns.put((t, position), got, got.nbytes)
        return got

    def cached_canon(self, t: int, position: int):
        return self.canons.get((t, position))

    def projection(self, t: int, keys: tuple[str, ...]) -> Projection:
        got = self.projections.get((t, keys))
        if got is not None:
            return got
        s = self.schemas[t]
        n = self._num_rows(t)
        fps = fold_fingerprints([self.column_hash(t, s.by_key[k].position) for k in keys], n)
        uniq, first = np.unique(fps, return_index=True)
        p = Projection(t, keys, n, fps, uniq, first.astype(np.int64))
        self.projections.put((t, keys), p, p.nbytes)
        return p

    def _uniq_column(self, t: int, key: str) -> np.ndarray:
        got = self.uniq_columns.get((t, key))
        if got is None:
            got = _sorted_distinct(self.column_hash(t, self.schemas[t].by_key[key].position))
            self.uniq_columns.put((t, key), got, got.nbytes)
        return got

    def distinct_signature(self, p: Projection) -> tuple[int, int]:
        digest = int(np.bitwise_xor.reduce(p.uniq * GOLDEN)) if len(p.uniq) else 0
        return len(p.uniq), digest

    def column_values_missing(self, a: int, b: int, key: str) -> bool:
        ua, ub = self._uniq_column(a, key), self._uniq_column(b, key)
        return not bool(self._contains(ub, ua).all())

    def _contains(self, uniq: np.ndarray, values: np.ndarray) -> np.ndarray:
        if len(uniq) == 0:
            return np.zeros(len(values), dtype=bool)
        pos = np.minimum(np.searchsorted(uniq, values), len(uniq) - 1)
        return uniq[pos] == values

    def sample_missing(self, pa_: Projection, pb: Projection, rows: np.ndarray) -> int:
        return int((~self._contains(pb.uniq, pa_.fps[rows])).sum())

    def missing(self, pa_: Projection, pb: Projection) -> int:
        # both sides are sorted distinct fingerprints: a binary search of A's in B's is the anti-join (a
        # DataFrame join costs more in setup than the search on these sizes)
        return int(len(pa_.uniq) - self._contains(pb.uniq, pa_.uniq).sum())

    def mapping(self, pa_: Projection, pb: Projection) -> np.ndarray:
        if len(pb.uniq) == 0:
            return np.full(pa_.rows, -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(pb.uniq, pa_.fps), len(pb.uniq) - 1)
        return np.where(pb.uniq[pos] == pa_.fps, pb.first[pos], -1).astype(np.int64)

    def fingerprints_of(self, p: Projection, rows: np.ndarray) -> np.ndarray:
        return p.fps[rows]

    def rows_with_fingerprint(self, p: Projection, fp: int) -> np.ndarray:
        return np.flatnonzero(p.fps == np.uint64(fp)).astype(np.int64)
