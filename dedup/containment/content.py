"""R2D2 step 3: the content check, with identical tables collapsed and verified edges reused.

Order of work:
1. Tables with the same column keys whose candidate pair survived pruning in both directions and whose
   projections have the same distinct-fingerprint signature are checked once (A in B, confirmed on values); equal
   distinct row sets collapse into one node, represented by the first member by name.
2. The remaining candidate pairs between nodes are visited in order of growing container; before any scan a pair is
   decided from verified facts: A in X and X in B give A in B; B in C and A not in C give A not in B; X in A and X not
   in B give A not in B.
3. Otherwise: an empty A is contained; a column of A with a value missing from B's column rejects the pair; a seeded
   random sample of A's rows is tested against B's projection; then the exact anti-join on fingerprints; and every
   distinct row of A is confirmed against the B row its fingerprint matched by comparing normalised values, with
   colliding fingerprints resolved against every B row of that fingerprint. The result is exact.
"""

from __future__ import annotations

import json
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from sift.dedup.containment.cache import LRU
from sift.dedup.containment.engines.base import ContentEngine
from sift.dedup.containment.kernels import Canon, canon_equal, canon_nbytes, canonical
from sift.dedup.containment.schema import TableSchema
from sift.dedup.containment.tables import TableRef, read_columns


@dataclass
class Edge:
    contained: int
    container: int
    method: str
    evidence: dict = field(default_factory=dict)


def _keys(s: TableSchema) -> tuple[str, ...]:
    return tuple(sorted(s.keys))


class RowComparer:
    """Compares rows of A and B on the given column keys by their normalised values (exact, no hashing)."""

    def __init__(self, ca: list[Canon], cb: list[Canon]) -> None:
        self.ca, self.cb = ca, cb

    def equal(self, a_rows: np.ndarray | None, b_rows: np.ndarray) -> np.ndarray:
        """Row a_rows[i] of A against row b_rows[i] of B (a_rows None: every row of A in order)."""
        ok = np.ones(len(b_rows), dtype=bool)
        for ca, cb in zip(self.ca, self.cb, strict=True):
            ok &= canon_equal(ca if a_rows is None else ca.take(a_rows), cb.take(b_rows))
        return ok


class ContentCheck:
    """Decides every surviving candidate pair; collects edges and step-3 statistics."""

    def __init__(
        self,
        refs: list[TableRef],
        schemas: list[TableSchema],
        rows: list[int],
        engine: ContentEngine,
        sample_rows: int = 64,
        seed: int = 0,
        canon_cache_bytes: int = 256 << 20,
    ) -> None:
        self.refs, self.schemas, self.rows, self.engine = refs, schemas, rows, engine
        self.sample_rows, self.seed = sample_rows, seed
        self.stats: dict[str, int | float] = defaultdict(int)
        self.canon_cache = LRU(canon_cache_bytes)

    # -- one pair -----------------------------------------------------------------------------------------------
    def check(self, a: int, b: int) -> tuple[bool, str, dict]:
        """Exact containment of table a in table b (columns already known to match)."""
        keys = _keys(self.schemas[a])
        if self.rows[a] == 0:
            self.stats["decided_empty"] += 1
            return True, "empty", {"rows": 0}
        for k in keys:
            if self.engine.column_values_missing(a, b, k):
                self.stats["rejected_column_values"] += 1
                return False, "column_values", {"column": self.schemas[a].by_key[k].name}
        e = self.engine
        pa_, pb = e.projection(a, keys), e.projection(b, keys)
        rows = self._sample(a, b)
        if rows is not None:
            miss = e.sample_missing(pa_, pb, rows)
            self.stats["sampled"] += 1
            if miss:
                self.stats["rejected_sample"] += 1
                return False, "sample", {"sample": int(self.sample_rows), "missing": miss}
        miss = e.missing(pa_, pb)
        self.stats["anti_joins"] += 1
        if miss:
            self.stats["rejected_anti_join"] += 1
            return False, "anti_join", {"missing": True}
        return self._confirm(a, b, keys, pa_, pb)

    def _confirm(self, a: int, b: int, keys, pa_, pb) -> tuple[bool, str, dict]:
        """Every row of A against the B row its fingerprint matched; mismatches (hash collisions, in B or
        within A) are resolved against every B row with that fingerprint. An engine that confirms on its own
        workers (`ContentEngine.confirm`) does the same there and returns only the counts."""
        e = self.engine
        done = e.confirm(pa_, pb)
        if done is not None:
            self.stats["confirmed_rows"] += done.rows
            self.stats["hash_collisions"] += done.collisions
            if done.unresolved is not None:
                return False, "confirm", {"row": done.unresolved, "hash_collision": True}
            return True, "content", {"rows": done.rows, "hash_collisions_resolved": done.collisions}
        mapping = e.mapping(pa_, pb)
        if (mapping < 0).any():  # cannot happen after an empty anti-join; refuse rather than guess
            return False, "confirm", {"unmatched_rows": int((mapping < 0).sum())}
        cmp = RowComparer(self._canons(a, keys), self._canons(b, keys))
        ok = cmp.equal(None, mapping)
        self.stats["confirmed_rows"] += len(mapping)
        bad = np.flatnonzero(~ok)
        self.stats["hash_collisions"] += len(bad)
        if len(bad):
            fps = e.fingerprints_of(pa_, bad)
            cache: dict[int, np.ndarray] = {}
            for row, fp in zip(bad, fps, strict=True):
                if int(fp) not in cache:
                    cache[int(fp)] = e.rows_with_fingerprint(pb, int(fp))
                cands = cache[int(fp)]
                if not cmp.equal(np.full(len(cands), row, dtype=np.int64), cands).any():
                    return False, "confirm", {"row": int(row), "hash_collision": True}
        return True, "content", {"rows": int(len(mapping)), "hash_collisions_resolved": int(len(bad))}

    def _sample(self, a: int, b: int) -> np.ndarray | None:
        """The seeded random rows of A tested first against B (None when A is not larger than the sample)."""
        n = self.rows[a]
        if not self.sample_rows or n <= self.sample_rows:
            return None
        h = zlib.crc32(f"{self.refs[a].name}\0{self.refs[b].name}".encode())
        rng = np.random.default_rng([self.seed, h])
        return np.sort(rng.choice(n, size=self.sample_rows, replace=False))

    def _canons(self, t: int, keys: tuple[str, ...]) -> list[Canon]:
        """Normalised columns of table t (cached per column, read together when missing)."""
        s = self.schemas[t]
        for k in keys:
            if self.canon_cache.get((t, k)) is None:
                held = self.engine.cached_canon(t, s.by_key[k].position)
                if held is not None:
                    self.canon_cache.put((t, k), held, 0)  # memory already counted by the engine
        missing = [k for k in keys if self.canon_cache.get((t, k)) is None]
        if missing:
            table = read_columns(self.refs[t], [s.by_key[k].position for k in missing])
            for i, k in enumerate(missing):
                c = canonical(table.column(i), s.by_key[k].klass)
                self.canon_cache.put((t, k), c, canon_nbytes(c))
        out = []
        for k in keys:
            c = self.canon_cache.get((t, k))
            if c is None:  # evicted meanwhile by a tiny budget: read it alone
                c = canonical(read_columns(self.refs[t], [s.by_key[k].position]).column(0), s.by_key[k].klass)
            out.append(c)
        return out

    def _needs(self, pairs: list[tuple[int, int]], both: bool = False) -> list[tuple[int, tuple[str, ...]]]:
        """Projections the checks of these pairs read: A and B on A's keys, and every single column."""
        out: list[tuple[int, tuple[str, ...]]] = []
        for a, b in pairs:
            if self.rows[a] == 0:
                continue
            keys = _keys(self.schemas[a])
            out += [(a, keys), (b, keys)] + [(t, (k,)) for k in keys for t in (a, b)]
        return out

    def _prefetches_pairs(self) -> bool:
        """Whether the engine tests pairs ahead (else the list of pairs and samples is not built)."""
        return type(self.engine).prefetch_pairs is not ContentEngine.prefetch_pairs

    # -- the whole step -----------------------------------------------------------------------------------------
    def run(self, candidates: list[tuple[int, int]]) -> tuple[list[Edge], dict[int, int], dict]:
        t0 = time.perf_counter()
        cand = set(candidates)
        names = [r.name for r in self.refs]
        # 1. identical tables
        parent = list(range(len(self.refs)))

        def find(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        identical_evidence: dict[tuple[int, int], dict] = {}
        mutual = sorted(
            (a, b)
            for a, b in cand
            if a < b and (b, a) in cand and self.schemas[a].keys == self.schemas[b].keys
        )
        self.stats["identical_candidates"] = len(mutual)
        sig_cache: dict[int, tuple[int, int]] = {}
        self.engine.prefetch(self._needs(mutual, both=True))
        for a, b in mutual:
            for t in (a, b):
                if self.rows[t] > 0 and t not in sig_cache:
                    sig_cache[t] = self.engine.distinct_signature(
                        self.engine.projection(t, _keys(self.schemas[t]))
                    )
        if self._prefetches_pairs():
            self.engine.prefetch_pairs(
                [
                    (a, b, _keys(self.schemas[a]), self._sample(a, b))
                    for a, b in mutual
                    if self.rows[a] > 0 and self.rows[b] > 0 and sig_cache[a] == sig_cache[b]
                ]
            )
        for a, b in mutual:
            if find(a) == find(b):
                continue
            if self.rows[a] == 0 or self.rows[b] == 0:
                same = self.rows[a] == self.rows[b]
            else:
                same = sig_cache[a] == sig_cache[b] and self.check(a, b)[0]
            if same:
                ra, rb = find(a), find(b)
                keep, drop = sorted((ra, rb), key=lambda t: names[t])
                parent[drop] = keep
                identical_evidence[(a, b)] = {"distinct_rows": sig_cache.get(a, (0, 0))[0]}
        rep = {t: find(t) for t in range(len(self.refs))}
        members: dict[int, list[int]] = defaultdict(list)
        for t, r in rep.items():
            members[r].append(t)
        self.stats["identical_groups"] = sum(1 for m in members.values() if len(m) > 1)
        self.stats["tables_collapsed"] = sum(len(m) - 1 for m in members.values())
        t1 = time.perf_counter()

        # 2./3. pairs between nodes
        node_pairs = sorted(
            {(rep[a], rep[b]) for a, b in cand if rep[a] != rep[b]},
            key=lambda p: (self.rows[p[1]], -self.rows[p[0]], names[p[1]], names[p[0]]),
        )
        self.stats["node_pairs"] = len(node_pairs)
        self.engine.prefetch(self._needs(node_pairs))
        if self._prefetches_pairs():
            self.engine.prefetch_pairs(
                [
                    (a, b, _keys(self.schemas[a]), self._sample(a, b))
                    for a, b in node_pairs
                    if self.rows[a] > 0
                ]
            )
        true_out: dict[int, set[int]] = defaultdict(set)
        true_in: dict[int, set[int]] = defaultdict(set)
        false_out: dict[int, set[int]] = defaultdict(set)
        false_in: dict[int, set[int]] = defaultdict(set)
        decided: dict[tuple[int, int], tuple[bool, str, dict]] = {}
        for a, b in node_pairs:
            via = true_out[a] & true_in[b]
            if via:
                x = min(via, key=lambda t: names[t])
                res = (True, "inferred", {"via": names[x], "rule": "A<=X, X<=B"})
                self.stats["inferred_contained"] += 1
            elif true_out[b] & false_out[a]:
                c = min(true_out[b] & false_out[a], key=lambda t: names[t])
                res = (False, "inferred", {"via": names[c], "rule": "B<=C, not A<=C"})
                self.stats["inferred_not_contained"] += 1
            elif true_in[a] & false_in[b]:
                x = min(true_in[a] & false_in[b], key=lambda t: names[t])
                res = (False, "inferred", {"via": names[x], "rule": "X<=A, not X<=B"})
                self.stats["inferred_not_contained"] += 1
            else:
                res = self.check(a, b)
            decided[(a, b)] = res
            if res[0]:
                true_out[a].add(b)
                true_in[b].add(a)
            else:
                false_out[a].add(b)
                false_in[b].add(a)
        t2 = time.perf_counter()

        # expand nodes back to tables (only pairs whose schemas match)
        edges: list[Edge] = []
        for a, b in sorted(cand):
            ra, rb = rep[a], rep[b]
            if ra == rb:
                ev = identical_evidence.get((min(a, b), max(a, b)), {})
                edges.append(Edge(a, b, "identical", {**ev, "group": names[ra]}))
                continue
            found = decided.get((ra, rb))
            if found and found[0]:
                ev = dict(found[2])
                if (ra, rb) != (a, b):
                    ev["decided_on"] = [names[ra], names[rb]]
                edges.append(Edge(a, b, found[1], ev))
        self.stats["contained_pairs"] = len(edges)
        timings = {"identical_s": t1 - t0, "pairs_s": t2 - t1}
        return edges, rep, timings


def evidence_json(ev: dict) -> str:
    return json.dumps(ev, sort_keys=True, default=str)
