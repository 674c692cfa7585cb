"""R2D2 step 1: the schema containment graph.

Every column gets a key (its name, lower-cased when matching is case-insensitive; the k-th repeat of a duplicated
name becomes `name#k`) and a comparable type class: numbers (all integer and float widths together), booleans,
strings (and string categoricals), instants (dates and timestamps), binary, decimals, the all-NULL type (comparable
with every class, its values are all NULL) and, for any other type, the exact type. A candidate edge A -> B exists
when every column key of A is a column key of B with a comparable class. The graph is built from an inverted index
(column key -> tables): the candidates of A are the tables on the posting list of A's rarest column, so pairs of
tables that share no rare column are never compared.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.types as pt

NUM, BOOL, STR, TIME, BIN, DEC, NULL = "num", "bool", "str", "time", "bin", "dec", "null"


def type_class(t: pa.DataType) -> str:
    """The comparable type class of an Arrow type."""
    if pt.is_dictionary(t):
        return type_class(t.value_type)
    if pt.is_integer(t) or pt.is_floating(t):
        return NUM
    if pt.is_boolean(t):
        return BOOL
    if pt.is_string(t) or pt.is_large_string(t) or pt.is_string_view(t):
        return STR
    if pt.is_date(t) or pt.is_timestamp(t):
        return TIME
    if pt.is_binary(t) or pt.is_large_binary(t) or pt.is_fixed_size_binary(t) or pt.is_binary_view(t):
        return BIN
    if pt.is_decimal(t):
        return DEC
    if pt.is_null(t):
        return NULL
    return "other:" + str(t)


def comparable(a: str, b: str) -> bool:
    """Whether a column of class `a` can be contained in a column of class `b`."""
    return a in (b, NULL) or b == NULL


@dataclass(frozen=True)
class ColumnInfo:
    position: int
    name: str
    key: str
    klass: str
    type: pa.DataType


@dataclass
class TableSchema:
    """A table's columns with their keys and classes."""

    index: int
    name: str
    schema: pa.Schema
    columns: list[ColumnInfo]

    def __post_init__(self) -> None:
        self.by_key = {c.key: c for c in self.columns}
        self.keys = frozenset(self.by_key)


def column_infos(schema: pa.Schema, case_insensitive: bool = False) -> list[ColumnInfo]:
    """Column keys for matching: the name, or its lower case with `case_insensitive`.

    Names that collide ignoring case (`Lp4` and `LP4`) keep their exact names as keys even with
    `case_insensitive`, so they match by exact name and never by position; a name repeated exactly gets `#n`.
    """
    folded: dict[str, int] = defaultdict(int)
    if case_insensitive:
        for f in schema:
            folded[f.name.lower()] += 1
    seen: dict[str, int] = defaultdict(int)
    out = []
    for i, f in enumerate(schema):
        base = f.name.lower() if case_insensitive and folded[f.name.lower()] == 1 else f.name
        seen[base] += 1
        key = base if seen[base] == 1 else f"{base}#{seen[base]}"
        out.append(ColumnInfo(i, f.name, key, type_class(f.type), f.type))
    return out


def column_set_contained(a: TableSchema, b: TableSchema) -> bool:
    """All columns of `a` are columns of `b` with comparable classes."""
    for c in a.columns:
        d = b.by_key.get(c.key)
        if d is None or not comparable(c.klass, d.klass):
            return False
    return True


def schema_graph(schemas: list[TableSchema]) -> tuple[list[tuple[int, int]], dict]:
    """Candidate pairs (a, b) with a's columns contained in b's, found through an inverted column index.

    Tables without columns take part in no pair. Returns the pairs and counts for stats.json.
    """
    postings: dict[str, list[int]] = defaultdict(list)
    for s in schemas:
        for k in s.keys:
            postings[k].append(s.index)
    pairs: list[tuple[int, int]] = []
    examined = 0
    for a in schemas:
        if not a.columns:
            continue
        rarest = min(a.keys, key=lambda k: (len(postings[k]), k))
        for bi in postings[rarest]:
            if bi == a.index:
                continue
            examined += 1
            if column_set_contained(a, schemas[bi]):
                pairs.append((a.index, bi))
    n = len(schemas)
    return sorted(pairs), {
        "all_pairs": n * (n - 1),
        "pairs_examined_via_index": examined,
        "candidates": len(pairs),
    }
