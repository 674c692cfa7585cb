"""Python entry point of PASER recovery-data selection (the five steps of the paper), shared by the CLI and tests.

`run(inputs, config, output, engine, scores=..., original=..., pruned=...)` reads the instructions (`id`,
`instruction`, optional `input`, `output`) with the lake's readers, gets each sample's degradation score (a SCORES
table `id`, `jsd` [, `tokens`], or the JSD of an original/pruned model pair, kernels/degradation.py), embeds the
instructions (kernels/embed.py, cached in `output/_work/`), clusters them (S2RIC, kernels/cluster.py), splits the
budget by cluster degradation and ranks inside clusters (kernels/budget.py), and takes samples in rank order
through the concept consistency filter (kernels/concepts.py) until every cluster's share is filled, sharing again
what a cluster cannot fill. The random and length baselines take the budget without clusters or scores.

Every input record ends in exactly one place: selected.parquet, clusters.parquet with status `not_selected`
(cluster and rank given), or rejected.parquet with its reason (unreadable record, empty instruction, no or bad
score, empty response, concept conflict); stats.json counts them and report.md shows the cluster map and the
budget per cluster. Runs on one machine (PolarsEngine) or on Spark (SparkEngine, engines/spark.py: the executors
read, score, embed and write, and `decide` runs on the driver); the clustering holds the embedding matrix in memory.

On one machine, the steps that produce the inputs of the clustering also run alone, for the Dagster assets: `read_instructions`
(the usable instructions and the rejected records), `embed_instructions` (an embeddings table `id`, `vector`) and
`score_instructions` (a SCORES table `id`, `jsd`, `tokens`); `run(..., embeddings=TABLE, scores=TABLE)` then
selects from those tables instead of embedding and scoring again.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sift.pipelines.core.atomic import remove_tmp_files, write_json
from sift.pipelines.core.errors import InputError
from sift.pipelines.core.lake.write import write_table
from sift.pipelines.core.locks import output_lock
from sift.pipelines.core.stage import Engine, PolarsEngine, SparkEngine, one_input
from sift.pipelines.core.workdir import WorkDir
from sift.selection.config import SelectionConfig, budget_count
from sift.selection.kernels.budget import allocate, efficiency, rank_within

if TYPE_CHECKING:
    from sift.selection.kernels.concepts import ConceptGraph

PROGRESS = logging.getLogger("sift.select")
OUTPUTS = ("selected.parquet", "clusters.parquet", "rejected.parquet", "stats.json", "report.md",
           "cluster_map.png", "cluster_budget.png")  # fmt: skip
REJECTED_SCHEMA = pa.schema(
    [("id", pa.string()), ("reason", pa.string()), ("cluster", pa.int64()), ("file", pa.string()),
     ("row", pa.int64())]
)  # fmt: skip


def phase(name: str) -> None:
    PROGRESS.info("select: %s", name)


class _Rejected:
    """Rejected records, in the order they are found."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, id_: str | None, reason: str, *, cluster: int | None = None, file: str | None = None,
            row: int | None = None) -> None:  # fmt: skip
        self.rows.append({"id": id_, "reason": reason, "cluster": cluster, "file": file, "row": row})

    def table(self) -> pa.Table:
        return pa.Table.from_pylist(self.rows, schema=REJECTED_SCHEMA)


def _read(uri: str, rejected: _Rejected) -> pa.Table:
    """The instructions with a usable id and a non-empty instruction; every other record is rejected."""
    from sift.pipelines.core.lake import iter_documents

    parts = []
    for batch in iter_documents(uri, text_field="instruction"):
        q = batch.quarantine
        if q.num_rows:
            for f, r, err in zip(*(q.column(c).to_pylist() for c in ("file", "row", "error")), strict=True):
                rejected.add(None, f"unreadable record: {err}", file=f, row=r)
        parts.append(batch.documents)
    docs = pa.concat_tables(parts, promote_options="permissive") if parts else None
    if docs is None or docs.num_rows == 0:
        reasons = {r["reason"] for r in rejected.rows}
        if any("'instruction'" in r for r in reasons):
            raise InputError(
                f"{uri}: no record has an `instruction` field (the instruction column is missing)"
            )
        raise InputError(f"{uri}: no instruction to select from")
    docs = docs.rename_columns(["instruction" if c == "text" else c for c in docs.column_names])
    for col in ("input", "output"):
        if col not in docs.column_names:
            docs = docs.append_column(col, pa.nulls(docs.num_rows, pa.string()))
        elif docs.schema.field(col).type != pa.string():
            docs = docs.set_column(docs.column_names.index(col), col, pc.cast(docs.column(col), pa.string()))
    empty = pc.equal(pc.utf8_trim_whitespace(docs.column("instruction")), "")
    for id_ in docs.filter(empty).column("id").to_pylist():
        rejected.add(id_, "empty instruction")
    return docs.filter(pc.invert(empty))


def score_reason(jsd: float | None, given: str | None = None) -> str | None:
    """Why a sample's SCORES value (None: no row for its id) cannot be used; None when it can. `given`: the
    SCORES row's own `reason` (a sample its scorer could not score, as `score_instructions` records it)."""
    if given is not None:
        return given
    if jsd is None:
        return "no degradation score: id missing from SCORES"
    if math.isnan(jsd):
        return "degradation score is NaN"
    if jsd < 0:
        return f"degradation score is negative ({jsd:g})"
    if not math.isfinite(jsd):
        return "degradation score is infinite"
    return None


def read_scores(
    path: str,
) -> tuple[pa.Table, np.ndarray, np.ndarray | None, dict[str, int], list[str | None] | None]:
    """The SCORES table at `path` checked (one clear line when it is not a table of unique ids and numeric jsd):
    the table, its JSD, its token lengths when it has them, the row of each id, and the rows' own `reason` (why a
    row has no score) when the table has that column."""
    from sift.pipelines.core.lake import read_table

    try:
        table = read_table(path)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"--scores {path}: cannot be read ({exc})") from exc
    missing = [c for c in ("id", "jsd") if c not in table.column_names]
    if missing:
        raise InputError(f"--scores {path}: no `{'`, `'.join(missing)}` column (a table of id, jsd)")
    ids = pc.cast(table.column("id"), pa.string()).to_pylist()
    try:
        jsd = np.asarray(
            pc.cast(table.column("jsd"), pa.float64()).to_numpy(zero_copy_only=False), np.float64
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InputError(f"--scores {path}: `jsd` is not numeric ({exc})") from exc
    seen: dict[str, int] = {}
    for i, id_ in enumerate(ids):
        if id_ in seen:
            raise InputError(f"--scores {path}: id {id_!r} appears twice (rows {seen[id_] + 1} and {i + 1})")
        seen[id_] = i
    given: list[str | None] | None = None
    if "reason" in table.column_names:
        given = [None if r is None else str(r) for r in table.column("reason").to_pylist()]
    has_tokens = "tokens" in table.column_names
    if has_tokens and any(
        t is None and (given is None or given[i] is None)
        for i, t in enumerate(table.column("tokens").to_pylist())
    ):
        raise InputError(
            f"--scores {path}: `tokens` has empty values (give every scored row a token count, or no column)"
        )
    try:
        tok = (
            pc.fill_null(pc.cast(table.column("tokens"), pa.int64()), 0).to_numpy(zero_copy_only=False)
            if has_tokens
            else None
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InputError(f"--scores {path}: `tokens` is not a whole number ({exc})") from exc
    return table, jsd, tok, seen, given


def _scores_table(
    path: str, docs: pa.Table, rejected: _Rejected
) -> tuple[pa.Table, np.ndarray, np.ndarray | None]:
    """The pool with a valid SCORES row, its JSD and, when SCORES has them, its token lengths."""
    _, jsd, tok, seen, given = read_scores(path)
    keep, scores, lengths = [], [], []
    for row, id_ in enumerate(docs.column("id").to_pylist()):
        at = seen.get(id_)
        reason = score_reason(
            None if at is None else float(jsd[at]), None if at is None or given is None else given[at]
        )
        if reason is not None:
            rejected.add(id_, reason)
        else:
            assert at is not None
            keep.append(row)
            scores.append(jsd[at])
            if tok is not None:
                lengths.append(tok[at])
    return (
        docs.take(keep),
        np.asarray(scores, dtype=np.float64),
        np.asarray(lengths, dtype=np.int64) if tok is not None else None,
    )


def _model_scores(
    original: str, pruned: str, docs: pa.Table, config: SelectionConfig, rejected: _Rejected
) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """The pool with a response to score, its JSD between the model pair, and its scored token lengths."""
    from sift.selection.kernels.degradation import load_causal_lm, prompt_text, score_pairs

    orig = load_causal_lm(original, "--original")
    prun = load_causal_lm(pruned, "--pruned")
    outputs = docs.column("output").to_pylist()
    has = [i for i, o in enumerate(outputs) if o is not None and o.strip()]
    for i in sorted(set(range(docs.num_rows)) - set(has)):
        rejected.add(docs.column("id")[i].as_py(), "empty response: nothing to score")
    docs = docs.take(has)
    prompts = [
        prompt_text(a, b)
        for a, b in zip(docs.column("instruction").to_pylist(), docs.column("input").to_pylist(), strict=True)
    ]
    t0 = time.perf_counter()

    def progress(done: int) -> None:
        rate = done / max(time.perf_counter() - t0, 1e-9)
        PROGRESS.info(
            "select: scored %d/%d samples (%.1f samples/s)", done, len(prompts), rate,
            extra=progress_extra("scoring", done, len(prompts), "samples"),
        )  # fmt: skip

    progress(0)

    jsd, tokens = score_pairs(
        orig, prun, prompts, docs.column("output").to_pylist(), max_tokens=config.max_tokens,
        batch_size=config.score_batch, progress=progress,
    )  # fmt: skip
    ok = ~np.isnan(jsd)
    for id_ in docs.filter(pa.array(~ok)).column("id").to_pylist():
        rejected.add(id_, "response has no token within max_tokens")
    return docs.filter(pa.array(ok)), jsd[ok], tokens[ok]


def progress_extra(task: str, done: int, total: int, unit: str) -> dict[str, Any]:
    """The `extra` of a progress record (a task's items done of its total), which a progress display turns into a
    bar (sift.pipelines.progress); the record's message says the same in words."""
    return {"sift_progress": {"task": task, "done": done, "total": total, "unit": unit}}


def _texts(docs: pa.Table, with_output: bool) -> list[str]:
    inst = docs.column("instruction").to_pylist()
    inp = docs.column("input").to_pylist()
    out = docs.column("output").to_pylist() if with_output else [None] * len(inst)
    return ["\n\n".join(part for part in (a, b, c) if part) for a, b, c in zip(inst, inp, out, strict=True)]


def _embed(
    docs: pa.Table, config: SelectionConfig, embedder: str, cache_dir: Path
) -> tuple[np.ndarray, dict]:
    """Embeddings of the instructions (instruction + input), through the cache in `cache_dir`."""
    from sift.selection.kernels.embed import embed_cached

    phase(f"embedding {docs.num_rows} instructions")
    return embed_cached(
        _texts(docs, with_output=False), embedder, max_tokens=config.max_tokens, batch_size=config.embed_batch,
        cache_dir=cache_dir, backend=config.embed_backend,
    )  # fmt: skip


def _lookup_embeddings(path: str, ids: list[str]) -> tuple[np.ndarray, dict]:
    """The rows of an embeddings table (`id`, `vector`, as `embed_instructions` writes it) for `ids`, in order."""
    from sift.pipelines.core.lake import read_table

    try:
        table = read_table(path)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"embeddings {path}: cannot be read ({exc})") from exc
    if "id" not in table.column_names or "vector" not in table.column_names:
        raise InputError(f"embeddings {path}: no `id` and `vector` columns (a table of id, vector)")
    index: dict[str, int] = {}
    for i, id_ in enumerate(pc.cast(table.column("id"), pa.string()).to_pylist()):
        if id_ in index:
            raise InputError(f"embeddings {path}: id {id_!r} appears twice")
        index[id_] = i
    absent = [i for i in ids if i not in index]
    if absent:
        raise InputError(
            f"embeddings {path}: no vector for {len(absent)} instructions (first: {absent[0]!r})"
        )
    vectors = table.column("vector").combine_chunks()
    dim = len(vectors[0]) if len(vectors) else 0
    matrix = np.asarray(vectors.flatten(), dtype=np.float32).reshape(-1, dim)
    rows = np.asarray([index[i] for i in ids], dtype=np.int64)
    return matrix[rows], {"embeddings": path, "reused": len(ids), "embedded": 0}


def _score(
    docs: pa.Table, config: SelectionConfig, rejected: _Rejected, timings: dict[str, float], *,
    scores: str | None, original: str | None, pruned: str | None,
) -> tuple[pa.Table, np.ndarray, np.ndarray | None]:  # fmt: skip
    """Step 2: the pool with a degradation score, its JSD and token lengths (None when SCORES has none)."""
    if scores is not None:
        return _scores_table(scores, docs, rejected)
    assert original is not None and pruned is not None
    phase("scoring the model pair")
    t = time.perf_counter()
    scored = _model_scores(original, pruned, docs, config, rejected)
    timings["score"] = time.perf_counter() - t
    return scored


def read_instructions(uri: str) -> tuple[pa.Table, pa.Table]:
    """The usable instructions at `uri` (`id`, `instruction`, `input`, `output` and any other column) and the
    records rejected on the way (`id`, `reason`, `cluster`, `file`, `row`)."""
    rejected = _Rejected()
    phase(f"reading {uri}")
    return _read(uri, rejected), rejected.table()


def embeddings_table(ids: pa.Array | pa.ChunkedArray, vectors: np.ndarray) -> pa.Table:
    """The embeddings table: `id` and `vector` (fixed-size list of float32), one row per instruction."""
    dim = vectors.shape[1] if vectors.ndim == 2 else 0
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel(), pa.float32())
    return pa.table({"id": pc.cast(ids, pa.string()), "vector": pa.FixedSizeListArray.from_arrays(flat, dim)})


def embed_instructions(
    docs: pa.Table, config: SelectionConfig, cache_dir: str | os.PathLike[str]
) -> tuple[pa.Table, dict[str, Any]]:
    """PASER step 1's input for `docs` (from `read_instructions`): the embeddings table (`embeddings_table`) by
    the configured embedder, through the cache in `cache_dir`, and what was reused and computed."""
    from sift.selection.kernels.embed import default_embedder

    vectors, info = _embed(docs, config, config.embedder or default_embedder(), Path(cache_dir))
    return embeddings_table(docs.column("id"), vectors), info


def score_instructions(
    docs: pa.Table, config: SelectionConfig, *, scores: str | None = None, original: str | None = None,
    pruned: str | None = None,
) -> tuple[pa.Table, pa.Table]:  # fmt: skip
    """PASER step 2 for `docs` (from `read_instructions`): a SCORES table (`id`, `jsd`, `tokens`, `reason`) from a
    SCORES table or a model pair, and the records that got no score (`id`, `reason`). Token lengths a SCORES table
    lacks come from the embedder's tokenizer, as `run` counts them. A record without a score is in the table too,
    with its reason and no jsd, so a selection from the table rejects it with that reason."""
    from sift.selection.kernels.embed import default_embedder, token_lengths

    if (scores is None) == (original is None or pruned is None):
        raise InputError("give degradation scores one way: --scores, or --original and --pruned")
    rejected = _Rejected()
    docs, jsd, tokens = _score(docs, config, rejected, {}, scores=scores, original=original, pruned=pruned)
    if tokens is None:
        tokens = token_lengths(config.embedder or default_embedder(), _texts(docs, with_output=True))
    unscored = rejected.table()
    scored = pa.table({
        "id": docs.column("id"), "jsd": pa.array(jsd, pa.float64()), "tokens": pa.array(tokens, pa.int64()),
        "reason": pa.nulls(docs.num_rows, pa.string()),
    })  # fmt: skip
    with_reason = unscored.filter(pc.is_valid(unscored.column("id")))
    missing = pa.table({
        "id": with_reason.column("id"), "jsd": pa.nulls(with_reason.num_rows, pa.float64()),
        "tokens": pa.nulls(with_reason.num_rows, pa.int64()), "reason": with_reason.column("reason"),
    })  # fmt: skip
    return pa.concat_tables([scored, missing]), unscored


def run(
    inputs: str | Sequence[str],
    config: SelectionConfig | None = None,
    output: str | os.PathLike[str] = "select_out",
    engine: Engine | None = None,
    *,
    scores: str | None = None,
    original: str | None = None,
    pruned: str | None = None,
    embeddings: str | None = None,
) -> dict[str, Any]:
    """Select recovery data from the instructions at `inputs`; write selected.parquet, clusters.parquet,
    rejected.parquet, stats.json and report.md into `output`; return the stats. `embeddings`: a table `id`,
    `vector` (from `embed_instructions`) with a vector for every usable instruction, used instead of embedding."""
    config = config or SelectionConfig()
    engine = engine or PolarsEngine()
    if not isinstance(engine, PolarsEngine | SparkEngine):
        raise InputError(f"sift select runs on the polars or spark engine, not {engine.name}")
    uri = one_input(inputs, "select")
    if config.strategy == "paser":
        if scores is not None and (original or pruned):
            raise InputError("give degradation scores one way: --scores, or --original and --pruned")
        if scores is None and not (original and pruned):
            raise InputError(
                "PASER needs degradation scores: --scores SCORES (id, jsd), or both --original and --pruned models"
            )
    out = Path(output)
    with output_lock(out):
        remove_tmp_files(out)
        for name in OUTPUTS:
            if (out / name).is_dir():  # a folder of part files, as the Spark engine writes them
                shutil.rmtree(out / name)
            (out / name).unlink(missing_ok=True)
        if isinstance(engine, SparkEngine):
            if embeddings is not None:
                raise InputError(
                    "an embeddings table is read on the polars engine; Spark embeds on its executors"
                )
            from sift.selection.engines import spark

            return spark.run(engine.session, uri, config, out, scores, original, pruned)
        return _run(uri, config, out, scores, original, pruned, embeddings)


def _run(
    uri: str, config: SelectionConfig, out: Path, scores: str | None, original: str | None, pruned: str | None,
    embeddings: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    from sift.selection.kernels.embed import default_embedder, token_lengths

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    rejected = _Rejected()
    phase(f"reading {uri}")
    docs = _read(uri, rejected)
    rows_in = docs.num_rows + len(rejected.rows)
    embedder = config.embedder or default_embedder()
    jsd: np.ndarray | None = None
    tokens: np.ndarray | None = None
    if config.strategy == "paser":
        docs, jsd, tokens = _score(
            docs, config, rejected, timings, scores=scores, original=original, pruned=pruned
        )
    pool = docs.num_rows
    want = budget_in_pool(uri, config, pool, len(rejected.rows), rows_in)
    if tokens is None:
        t = time.perf_counter()
        tokens = token_lengths(embedder, _texts(docs, with_output=True))
        timings["tokens"] = time.perf_counter() - t

    work = WorkDir(out, {"stage": "select", "format": 1})
    texts: list[list[str | None]] = []

    def embed() -> tuple[np.ndarray, dict[str, Any]]:
        if embeddings is not None:
            return _lookup_embeddings(embeddings, docs.column("id").to_pylist())
        return _embed(docs, config, embedder, work.root)

    def check(graph: ConceptGraph, row: int) -> str | None:
        if not texts:
            texts.extend(docs.column(c).to_pylist() for c in ("instruction", "input", "output"))
        inst, inp, resp = texts
        return graph.check(f"{inst[row]}\n{inp[row] or ''}", resp[row] or "")

    labels, coords, eff, rank, status, reasons, selection_order, cluster_stats, embed_info = decide(
        config, want, jsd, tokens, embed, check, timings
    )
    ids = docs.column("id").to_pylist()
    for row in sorted(reasons):
        rejected.add(ids[row], reasons[row], cluster=int(labels[row]) if labels[row] >= 0 else None)
    cluster_col = pa.array(np.where(labels >= 0, labels, 0), pa.int64(), mask=labels < 0)
    n = pool
    extra = {
        "cluster": cluster_col,
        "rank": pa.array(rank, pa.int64()),
        "jsd": pa.array(jsd if jsd is not None else np.full(n, np.nan), pa.float64()),
        "tokens": pa.array(tokens, pa.int64()),
        "efficiency": pa.array(eff, pa.float64()),
    }
    full = docs
    for name, col in extra.items():
        if name in full.column_names:
            full = full.drop_columns([name])
        full = full.append_column(name, col)
    selected = full.take(pa.array(selection_order, pa.int64()))
    clusters = pa.table(
        {"id": docs.column("id"), **extra, "status": pa.array(list(status), pa.string()),
         "x": pa.array(coords[:, 0], pa.float64()), "y": pa.array(coords[:, 1], pa.float64())}
    )  # fmt: skip
    rejected_table = rejected.table()
    phase(f"writing {out}")
    write_table(selected, out / "selected.parquet")
    write_table(clusters, out / "clusters.parquet")
    write_table(rejected_table, out / "rejected.parquet")
    by_reason: dict[str, int] = {}
    for r in rejected.rows:
        kind = reason_kind(r["reason"])
        by_reason[kind] = by_reason.get(kind, 0) + 1
    counts = {"rows_in": rows_in, "pool": pool, "budget": want, "selected": int(selected.num_rows),
              "not_selected": int(np.sum(status == "not_selected")), "rejected": rejected_table.num_rows}  # fmt: skip
    degradation = "scores" if scores else ("model pair" if original else None)
    return finish(config, out, counts, by_reason, embedder, embed_info, cluster_stats, degradation, clusters,
                  timings, t0)  # fmt: skip


def budget_in_pool(uri: str, config: SelectionConfig, pool: int, rejected: int, rows_in: int) -> int:
    """The number of samples the budget asks for; one clear line when the pool is empty or too small."""
    if pool == 0:
        raise InputError(f"{uri}: no usable instruction left ({rejected} rejected, see the reasons)")
    want = budget_count(config.budget, pool)
    if want > pool:
        raise InputError(
            f"budget {config.budget:g} is larger than the pool of {pool} usable instructions"
            f" ({rejected} of {rows_in} rejected)"
        )
    return want


def reason_kind(reason: str) -> str:
    """The kind of a rejection reason stats.json counts (its text before a colon or a parenthesis)."""
    return reason.split(":")[0].split(" (")[0]


class Decisions(NamedTuple):
    """Per pool row (in pool order): cluster (-1: none), 2-D map coordinates, efficiency, rank, status and the
    conflict reasons by row; the rows selected in selection order; the clustering's and embedding's stats."""

    labels: np.ndarray
    coords: np.ndarray
    eff: np.ndarray
    rank: np.ndarray
    status: np.ndarray
    reasons: dict[int, str]
    selection_order: np.ndarray
    cluster_stats: dict[str, Any]
    embed_info: dict[str, Any]


def decide(
    config: SelectionConfig,
    want: int,
    jsd: np.ndarray | None,
    tokens: np.ndarray,
    embed: Callable[[], tuple[np.ndarray, dict[str, Any]]],
    check: Callable[[ConceptGraph, int], str | None],
    timings: dict[str, float],
) -> Decisions:
    """PASER steps 1 and 3-5 (or a baseline) on the pool, the same on both engines: `embed()` gives the pool's
    embedding matrix, `check(graph, row)` runs the concept filter on a pool row (adding its links when it passes)."""
    n = len(tokens)
    labels = np.full(n, -1, dtype=np.int64)
    coords = np.full((n, 2), np.nan)
    eff = np.full(n, np.nan)
    status = np.array(["not_selected"] * n, dtype=object)
    reasons: dict[int, str] = {}
    cluster_stats: dict[str, Any] = {}
    embed_info: dict[str, Any] = {}
    if config.strategy == "paser":
        from sift.selection.kernels.cluster import s2ric
        from sift.selection.kernels.concepts import ConceptGraph

        assert jsd is not None
        t = time.perf_counter()
        vectors, embed_info = embed()
        timings["embed"] = time.perf_counter() - t
        phase("clustering (S2RIC)")
        t = time.perf_counter()
        clustering = s2ric(
            vectors, config.clusters, k_neighbors=config.k_neighbors, max_clusters=config.max_clusters,
            seed=config.seed, sample=config.cluster_sample,
        )  # fmt: skip
        timings["cluster"] = time.perf_counter() - t
        labels, coords = clustering.labels, clustering.coords
        t = time.perf_counter()
        eff = efficiency(jsd, tokens)
        order, rank = rank_within(labels, eff)
        k = clustering.k
        sizes = np.bincount(labels, minlength=k)
        cds = np.bincount(labels, weights=jsd, minlength=k) / np.maximum(sizes, 1)
        members = np.split(order, np.cumsum(sizes)[:-1])  # each cluster's rows, best first
        alloc0 = allocate(want, cds, sizes)
        alloc = alloc0.copy()
        pointer = np.zeros(k, dtype=np.int64)
        taken = np.zeros(k, dtype=np.int64)
        graph = ConceptGraph(max_concepts=config.max_concepts)
        picked: list[int] = []
        while True:
            for c in range(k):
                while taken[c] < alloc[c] and pointer[c] < sizes[c]:
                    row = int(members[c][pointer[c]])
                    pointer[c] += 1
                    reason = check(graph, row) if config.conflict_filter else None
                    if reason is None:
                        taken[c] += 1
                        status[row] = "selected"
                        picked.append(row)
                    else:
                        status[row] = "rejected"
                        reasons[row] = reason
            short = want - len(picked)
            left = sizes - pointer
            if short == 0 or left.sum() == 0:
                break
            alloc = taken + allocate(short, cds, left)
        timings["select"] = time.perf_counter() - t
        selection_order = np.asarray(picked, dtype=np.int64)
        cluster_stats = {
            "k": k,
            "method": clustering.method,
            "eigenvalues": [round(v, 6) for v in clustering.eigenvalues[: config.max_clusters + 1]],
            "sigma": round(clustering.sigma, 6),
            "sample": clustering.sample,
            "per_cluster": [
                {
                    "cluster": c,
                    "size": int(sizes[c]),
                    "cds": round(float(cds[c]), 8),
                    "budget": int(alloc0[c]),
                    "selected": int(taken[c]),
                    "rejected": int(sum(1 for r in reasons if labels[r] == c)),
                }  # fmt: skip
                for c in range(k)
            ],
        }
    else:
        if config.strategy == "random":
            order = np.random.default_rng(config.seed).permutation(n)
        else:  # length: longest instruction + response first, ties by row
            order = np.lexsort((np.arange(n), -tokens))
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n)
        labels = np.zeros(n, dtype=np.int64) - 1
        selection_order = order[:want]
        status[selection_order] = "selected"

    return Decisions(labels, coords, eff, rank, status, reasons, selection_order, cluster_stats, embed_info)


def finish(
    config: SelectionConfig,
    out: Path,
    counts: dict[str, int],
    by_reason: dict[str, int],
    embedder: str,
    embed_info: dict[str, Any],
    cluster_stats: dict[str, Any],
    degradation: str | None,
    clusters: pa.Table,
    timings: dict[str, float],
    t0: float,
) -> dict[str, Any]:
    """stats.json and the report (the same on both engines); returns the stats. `counts`: rows_in, pool, budget,
    selected, not_selected, rejected; `clusters`: the pool's `cluster`, `status`, `x`, `y` for the map."""
    timings["total"] = time.perf_counter() - t0
    stats: dict[str, Any] = {
        "strategy": config.strategy,
        **counts,
        "rejected_by_reason": dict(sorted(by_reason.items())),
        "seed": config.seed,
        "embedder": embedder if config.strategy == "paser" else None,
        "embeddings": embed_info,
        "clusters": cluster_stats,
        "degradation": degradation,
        "seconds": {k: round(v, 3) for k, v in timings.items()},
    }
    assert stats["selected"] + stats["not_selected"] + stats["rejected"] == stats["rows_in"]
    from sift.selection.report import write_report

    write_report(stats, clusters, out)
    # stats.json holds no timings, so the same input and seed give the same bytes
    write_json({k: v for k, v in stats.items() if k not in ("seconds", "embeddings")}, out / "stats.json")
    return stats
