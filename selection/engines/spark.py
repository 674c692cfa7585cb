"""Spark engine of PASER recovery-data selection: the embarrassingly parallel steps on the executors, the rest on
the driver with the Polars path's code.

- input: the executors read the instructions (`sift.pipelines.core.lake.spark.read_documents_spark`, text field
  `instruction`); quarantined records and empty instructions (a Spark filter) become rejected rows;
- PASER step 2, degradation: a SCORES table (id, jsd, optional tokens) is read and checked on the driver
  (`api.read_scores`, the same one-line errors as the Polars path), handed to the executors and joined to the
  documents there, where `api.score_reason` rejects ids without a usable score; or the executors score the
  original/pruned model pair (kernels/degradation.py `score_pairs` in `mapInArrow`, both models loaded once per
  Python worker; the driver loads the pair once first, only to check it);
- PASER step 1's input and step 5's concepts: in `mapInArrow` the executors embed each pool instruction
  (kernels/embed.py, the model loaded once per Python worker), count its tokens and extract its key concepts
  (kernels/concepts.py), so the driver never collects instruction text;
- these tables are written by the executors under `OUTPUT/_work/spark/<run key>/` (Parquet folders, each marked
  complete), so a rerun on the same input and settings reuses them;
- the driver collects the pool's row order, embedding (float32), JSD, token length and concepts: the one per-row
  collect this stage makes (the clustering needs the embedding matrix in memory, as on the Polars engine), and runs
  `api.decide` (S2RIC clustering, budget allocation, ranking, the concept filter) on it;
- outputs: the driver's per-row decisions go back to the executors, which join them onto the documents and write
  `selected.parquet/`, `clusters.parquet/` and `rejected.parquet/` as folders of Parquet part files in output order
  (renamed part-00000.parquet, ... by the driver, as `sift dedup --engine spark` writes its outputs); stats.json and
  the report come from `api.finish`, the Polars path's code.

Spark code here is DataFrames only, so the plan also runs through Spark Connect.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sift.pipelines.core.atomic import atomic_dir
from sift.pipelines.core.errors import InputError
from sift.pipelines.core.workdir import WorkDir
from sift.selection import api
from sift.selection.config import SelectionConfig

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from sift.selection.kernels.concepts import ConceptGraph

OUTPUT_COMPRESSION = "zstd"
TASK_ROWS = 64  # pool rows per embedding or scoring task at least (the tasks are spark.sql.shuffle.partitions at most)
_BLANK = r"(?U)^\s*$"  # empty or only (Unicode) white space, as str.strip() sees it

# what the executors hand back per pool row; `vector` is empty when the strategy needs no embedding
FEATURES = pa.schema(
    [("_row", pa.int64()), ("jsd", pa.float64()), ("tokens", pa.int64()), ("vector", pa.list_(pa.float32())),
     ("asked", pa.list_(pa.string())), ("answered", pa.list_(pa.string()))]
)  # fmt: skip
SCORED = pa.schema([("_row", pa.int64()), ("jsd", pa.float64()), ("tokens", pa.int64())])
REASONS = pa.schema([("_row", pa.int64()), ("reason", pa.string())])

# models loaded by this Python worker, kept for its next tasks (keyed by path and token cap)
_MODELS: dict[tuple[str, ...], Any] = {}


def _model(key: tuple[str, ...], load: Callable[[], Any]) -> Any:
    if key not in _MODELS:
        _MODELS[key] = load()
    return _MODELS[key]


# executors ------------------------------------------------------------------------------------------------------
def _score_reasons(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """(`_row`, `_jsd`, `_has`, `_why`) -> (`_row`, reason): `api.score_reason` of each joined SCORES value."""
    for rb in batches:
        has = rb.column("_has").to_pylist()
        jsd = rb.column("_jsd").to_pylist()
        why = rb.column("_why").to_pylist()
        reasons = [
            api.score_reason(float(j) if h and j is not None else (float("nan") if h else None), w)
            for j, h, w in zip(jsd, has, why, strict=True)
        ]
        yield pa.RecordBatch.from_arrays([rb.column("_row"), pa.array(reasons, pa.string())], schema=REASONS)


def _scorer(original: str, pruned: str, max_tokens: int, batch_size: int) -> Callable[..., Any]:
    """The scoring task: (`_row`, `instruction`, `input`, `output`) -> (`_row`, `jsd`, `tokens`) by the model pair."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from sift.selection.kernels.degradation import load_causal_lm, prompt_text, score_pairs

        orig = _model(("causal", original), lambda: load_causal_lm(original, "--original"))
        prun = _model(("causal", pruned), lambda: load_causal_lm(pruned, "--pruned"))
        for rb in batches:
            inst, inp, out = (rb.column(c).to_pylist() for c in ("instruction", "input", "output"))
            prompts = [prompt_text(a, b) for a, b in zip(inst, inp, strict=True)]
            jsd, tokens = score_pairs(orig, prun, prompts, out, max_tokens=max_tokens, batch_size=batch_size)
            yield pa.RecordBatch.from_arrays(
                [rb.column("_row"), pa.array(jsd, pa.float64()), pa.array(tokens, pa.int64())], schema=SCORED
            )

    return run


def _featurer(
    embedder: str, config: SelectionConfig, need_tokens: bool
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The features task: pool rows (`_row`, `instruction`, `input`, `output`, `_jsd`, `_tok`) -> FEATURES: the
    embedding (PASER only), the token length (from SCORES or the scoring when it gave one, else the embedder's
    tokenizer) and the key concepts of the conflict filter (when it is on)."""
    paser = config.strategy == "paser"
    concepts = paser and config.conflict_filter

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from sift.selection.kernels.concepts import ConceptGraph
        from sift.selection.kernels.embed import embed_texts, load_embedder, token_lengths

        graph = ConceptGraph(max_concepts=config.max_concepts)
        for rb in batches:
            table = pa.Table.from_batches([rb])
            n = rb.num_rows
            if need_tokens:
                tokens = pa.array(token_lengths(embedder, api._texts(table, with_output=True)), pa.int64())
            else:
                tokens = rb.column("_tok")
            if paser:
                model = _model(
                    ("embed", embedder, str(config.max_tokens), config.embed_backend),
                    lambda: load_embedder(embedder, config.max_tokens, config.embed_backend),
                )
                vectors = embed_texts(model, api._texts(table, with_output=False), config.embed_batch)
                vector = pa.ListArray.from_arrays(
                    pa.array(np.arange(0, vectors.size + 1, vectors.shape[1] or 1, dtype=np.int32)),
                    pa.array(vectors.ravel(), pa.float32()),
                )
            else:
                vector = pa.array([[]] * n, pa.list_(pa.float32()))
            asked: list[list[str]] = []
            answered: list[list[str]] = []
            if concepts:
                inst, inp, out = (rb.column(c).to_pylist() for c in ("instruction", "input", "output"))
                for a, b, c in zip(inst, inp, out, strict=True):
                    x, y = graph.concepts(f"{a}\n{b or ''}", c or "")
                    asked.append(x)
                    answered.append(y)
            else:
                asked = answered = [[] for _ in range(n)]
            yield pa.RecordBatch.from_arrays(
                [rb.column("_row"), rb.column("_jsd").cast(pa.float64()), tokens.cast(pa.int64()), vector,
                 pa.array(asked, pa.list_(pa.string())), pa.array(answered, pa.list_(pa.string()))],
                schema=FEATURES,
            )  # fmt: skip

    return run


# driver ---------------------------------------------------------------------------------------------------------
def _uri(path: Path) -> str:
    """A local path as the `file://` URI Spark reads and writes (the cluster's default file system may differ)."""
    return path.resolve().as_uri()


def _spark_schema(schema: pa.Schema) -> Any:
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)


def _folder_key(path: str) -> list[Any]:
    """Identity of a file or folder for the work tables: every file's relative path, size and modification time."""
    root = Path(path)
    if root.is_file():
        st = root.stat()
        return [root.name, st.st_size, st.st_mtime_ns]
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
    return [[p.relative_to(root).as_posix(), p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def _run_key(
    uri: str, config: SelectionConfig, embedder: str, scores: str | None, original: str | None,
    pruned: str | None,
) -> str:  # fmt: skip
    """The work tables' identity: the input, the degradation source, the embedder and the settings they use."""
    from sift.pipelines.core.stage import input_fingerprint

    parts = {
        "input": input_fingerprint(uri),
        "scores": _folder_key(scores) if scores else None,
        "models": [_folder_key(original), _folder_key(pruned)] if original and pruned else None,
        "embedder": _folder_key(embedder) if config.strategy == "paser" else None,
        "settings": [
            config.strategy,
            config.max_tokens,
            config.embed_backend,
            config.max_concepts,
            config.conflict_filter,
        ],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class _Work:
    """Work tables of one run key, written by the executors and marked complete (reused by a rerun)."""

    def __init__(self, spark: SparkSession, work: WorkDir, key: str) -> None:
        self.spark, self.work, self.root = spark, work, work.root / "spark" / key
        if self.root.parent.is_dir():  # the tables of other inputs or settings are not reused: drop them
            for other in self.root.parent.iterdir():
                if other.name != key and other.is_dir():
                    shutil.rmtree(other)
                elif other.name != key:
                    other.unlink()

    def done(self, name: str) -> bool:
        return self.work.done(self.root / name)

    def persist(self, name: str, build: Callable[[], DataFrame]) -> DataFrame:
        path = self.root / name
        if not self.work.done(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            build().write.mode("overwrite").parquet(_uri(path))
            self.work.mark(path)
        return self.spark.read.parquet(_uri(path))

    def publish(self, name: str, frame: DataFrame, target: Path) -> None:
        """Have the executors write `frame` (already in output order) as Parquet part files, then put them in
        place as the folder `target` holding part-00000.parquet, part-00001.parquet, ... in that order."""
        path = self.root / "out" / name
        frame.write.mode("overwrite").option("compression", OUTPUT_COMPRESSION).parquet(_uri(path))
        # Spark names its files part-<partition>-<job uuid>-c000...: by name is in partition order.
        parts = sorted(
            p for p in path.iterdir() if p.name.startswith("part-") and p.name.endswith(".parquet")
        )
        with atomic_dir(target) as tmp:
            for i, part in enumerate(parts):
                shutil.copyfile(part, tmp / f"part-{i:05d}.parquet")
        shutil.rmtree(path)


def _tasks(spark: SparkSession, rows: int) -> int:
    """How many tasks the pool's embedding or scoring is split into."""
    most = int(spark.conf.get("spark.sql.shuffle.partitions") or "200")
    return max(1, min(most, math.ceil(rows / TASK_ROWS)))


def run(
    spark: SparkSession,
    uri: str,
    config: SelectionConfig,
    out: Path,
    scores: str | None,
    original: str | None,
    pruned: str | None,
) -> dict[str, Any]:
    """The whole Spark run (see the module docstring); returns the stats, also written to `out/stats.json`."""
    from pyspark.sql import functions as F

    from sift.pipelines.core.lake.spark import read_documents_spark
    from sift.pipelines.core.lake.validate import Fields
    from sift.selection.kernels.embed import default_embedder

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    embedder = config.embedder or default_embedder()
    if config.strategy == "paser" and not os.path.isdir(embedder):
        raise InputError(f"--embedder {embedder}: not a folder (a sentence-transformers model folder)")
    work = WorkDir(out, {"stage": "select", "format": 1})
    tables = _Work(spark, work, _run_key(uri, config, embedder, scores, original, pruned))

    api.phase(f"reading {uri} (executors)")
    t = time.perf_counter()
    got: list[Any] = []

    def read() -> Any:
        if not got:
            got.append(read_documents_spark(spark, uri, Fields(text="instruction")))
        return got[0]

    def documents() -> DataFrame:
        docs = read().documents.withColumnRenamed("text", "instruction")
        types = dict(docs.dtypes)
        for col in ("input", "output"):
            if col not in types:
                docs = docs.withColumn(col, F.lit(None).cast("string"))
            elif types[col] != "string":
                docs = docs.withColumn(col, F.col(col).cast("string"))
        return docs

    docs = tables.persist("documents", documents)
    quarantine = tables.persist("quarantine", lambda: read().quarantine)
    n_docs, n_quarantine = docs.count(), quarantine.count()
    rows_in = n_docs + n_quarantine
    if n_docs == 0:
        if quarantine.filter(F.col("error").contains("'instruction'")).limit(1).count():
            raise InputError(
                f"{uri}: no record has an `instruction` field (the instruction column is missing)"
            )
        raise InputError(f"{uri}: no instruction to select from")
    timings["read"] = time.perf_counter() - t

    # Rejected before the pool, each with its stage (the order the Polars path finds them in) and `_row`.
    blank = F.col("instruction").rlike(_BLANK)
    early = [
        docs.filter(blank).select("_row", F.lit("empty instruction").alias("reason"), F.lit(1).alias("stage"))
    ]
    cand = docs.filter(~blank).select("_row", "id", "instruction", "input", "output")
    jsd_tok: DataFrame | None = None  # `_row`, `_jsd`, `_tok` of the pool
    need_tokens = True
    if config.strategy == "paser" and scores is not None:
        table, jsd, tok, _, why = api.read_scores(scores)
        need_tokens = tok is None
        given = pa.table(
            {"_sid": pc.cast(table.column("id"), pa.string()), "_jsd": pa.array(jsd, pa.float64()),
             "_tok": pa.array(tok, pa.int64()) if tok is not None else pa.nulls(len(jsd), pa.int64()),
             "_has": pa.array(np.ones(len(jsd), dtype=bool)),
             "_why": pa.array(why, pa.string()) if why is not None else pa.nulls(len(jsd), pa.string())}
        )  # fmt: skip
        joined = cand.join(spark.createDataFrame(given), cand["id"] == F.col("_sid"), "left").select(
            "_row", "_jsd", "_tok", F.coalesce(F.col("_has"), F.lit(False)).alias("_has"), "_why"
        )
        checked = tables.persist(
            "scores",
            lambda: joined.mapInArrow(_score_reasons, _spark_schema(REASONS)).join(joined, "_row"),
        )
        early.append(
            checked.filter(F.col("reason").isNotNull()).select("_row", "reason", F.lit(2).alias("stage"))
        )
        jsd_tok = checked.filter(F.col("reason").isNull()).select("_row", "_jsd", "_tok")
    elif config.strategy == "paser":
        assert original is not None and pruned is not None
        from sift.selection.kernels.degradation import load_causal_lm, score_pairs

        if not tables.done("scored"):
            # the pair is checked on the driver first (not a causal LM, different vocabularies: one clear line,
            # not an executor's traceback); scoring no sample only runs these checks
            score_pairs(load_causal_lm(original, "--original"), load_causal_lm(pruned, "--pruned"), [], [])
        no_response = F.col("output").isNull() | F.col("output").rlike(_BLANK)
        early.append(
            cand.filter(no_response).select(
                "_row", F.lit("empty response: nothing to score").alias("reason"), F.lit(2).alias("stage")
            )
        )
        todo = cand.filter(~no_response)
        api.phase("scoring the model pair (executors)")
        t = time.perf_counter()
        scorer = _scorer(original, pruned, config.max_tokens, config.score_batch)
        parts = _tasks(spark, todo.count())
        scored = tables.persist(
            "scored",
            lambda: (
                todo.repartition(parts, "_row")
                .sortWithinPartitions("_row")
                .select("_row", "instruction", "input", "output")
                .mapInArrow(scorer, _spark_schema(SCORED))
            ),
        )
        timings["score"] = time.perf_counter() - t
        _rate("scored", "samples", scored.count(), timings["score"])
        early.append(
            scored.filter(F.isnan("jsd")).select(
                "_row",
                F.lit("response has no token within max_tokens").alias("reason"),
                F.lit(3).alias("stage"),
            )
        )
        jsd_tok = scored.filter(~F.isnan("jsd")).select(
            "_row", F.col("jsd").alias("_jsd"), F.col("tokens").alias("_tok")
        )
        need_tokens = False
    if jsd_tok is None:  # a baseline: every non-empty instruction is in the pool, no score
        jsd_tok = cand.select(
            "_row", F.lit(None).cast("double").alias("_jsd"), F.lit(None).cast("long").alias("_tok")
        )
    pool_rows = cand.join(jsd_tok, "_row")
    pool = pool_rows.count()
    rejected_early = n_quarantine + sum(e.count() for e in early)
    want = api.budget_in_pool(uri, config, pool, rejected_early, rows_in)

    api.phase(f"embedding, counting tokens and extracting concepts of {pool} instructions (executors)")
    t = time.perf_counter()
    if not tables.done("features"):
        from sift.selection.kernels.embed import load_embedder, token_lengths

        # the embedder's folder is checked on the driver first (one clear line, not an executor's traceback)
        if need_tokens:
            token_lengths(embedder, [])
        if config.strategy == "paser":
            load_embedder(embedder, config.max_tokens, config.embed_backend)
    featurer = _featurer(embedder, config, need_tokens)
    parts = _tasks(spark, pool)
    features = tables.persist(
        "features",
        lambda: (
            pool_rows.repartition(parts, "_row")
            .sortWithinPartitions("_row")
            .select("_row", "instruction", "input", "output", "_jsd", "_tok")
            .mapInArrow(featurer, _spark_schema(FEATURES))
        ),
    )
    # The one per-row collect of this stage: the pool's embedding matrix (float32: all-MiniLM-L6-v2's 384 values are
    # 1.5 KiB a row, so millions of rows fit in the driver's memory) with its JSD, token length and concepts (at
    # most `max_concepts` each side), in `_row` order, for the clustering and the filter on the driver.
    got_rows = features.orderBy("_row").toArrow()
    timings["features"] = time.perf_counter() - t
    _rate("embedded", "instructions", pool, timings["features"])
    rows = got_rows.column("_row").to_numpy()
    tokens = got_rows.column("tokens").to_numpy().astype(np.int64)
    jsd_all = got_rows.column("jsd").to_numpy(zero_copy_only=False).astype(np.float64)
    jsd_pool = jsd_all if config.strategy == "paser" else None
    asked = got_rows.column("asked").to_pylist()
    answered = got_rows.column("answered").to_pylist()

    def embed() -> tuple[np.ndarray, dict[str, Any]]:
        flat = got_rows.column("vector").combine_chunks()
        values = np.asarray(flat.flatten(), dtype=np.float32)
        return values.reshape(len(rows), -1), {"embedded_by": "spark executors", "rows": len(rows)}

    def check(graph: ConceptGraph, row: int) -> str | None:
        reason = graph.conflict(asked[row], answered[row])
        if reason is None:
            graph.accept(asked[row], answered[row])
        return reason

    d = api.decide(config, want, jsd_pool, tokens, embed, check, timings)
    n = len(rows)
    position = np.full(n, -1, dtype=np.int64)
    position[d.selection_order] = np.arange(len(d.selection_order))
    conflict = [d.reasons.get(i) for i in range(n)]
    decisions = pa.table(
        {"_row": pa.array(rows, pa.int64()),
         "cluster": pa.array(np.where(d.labels >= 0, d.labels, 0), pa.int64(), mask=d.labels < 0),
         "rank": pa.array(d.rank, pa.int64()),
         "jsd": pa.array(jsd_pool if jsd_pool is not None else np.full(n, np.nan), pa.float64()),
         "tokens": pa.array(tokens, pa.int64()),
         "efficiency": pa.array(d.eff, pa.float64()),
         "status": pa.array(list(d.status), pa.string()),
         "x": pa.array(d.coords[:, 0], pa.float64()), "y": pa.array(d.coords[:, 1], pa.float64()),
         "_sel": pa.array(position, pa.int64(), mask=position < 0),
         "_reason": pa.array(conflict, pa.string())}
    )  # fmt: skip

    api.phase(f"writing {out} (executors)")
    t = time.perf_counter()
    # Back to the executors: one row of decisions per pool row, joined onto the documents there.
    dec = spark.createDataFrame(decisions)
    extra = ["cluster", "rank", "jsd", "tokens", "efficiency"]
    doc_cols = [c for c in docs.columns if c != "_row" and c not in extra]
    selected = (
        docs.join(dec.filter(F.col("_sel").isNotNull()), "_row").orderBy("_sel").select(*doc_cols, *extra)
    )
    clusters = (
        docs.select("_row", "id").join(dec, "_row").orderBy("_row")
        .select("id", *extra, "status", "x", "y")
    )  # fmt: skip
    none_s, none_l = F.lit(None).cast("string"), F.lit(None).cast("long")
    ids = docs.select("_row", "id")
    rejected = (
        quarantine.select(
            none_s.alias("id"),
            F.concat(F.lit("unreadable record: "), F.col("error")).alias("reason"),
            none_l.alias("cluster"),
            "file",
            F.col("row").cast("long").alias("row"),
            F.lit(0).alias("stage"),
            F.col("_order").alias("_at"),
        )  # fmt: skip
        .unionByName(
            _union(early)
            .join(ids, "_row")
            .select(
                "id",
                "reason",
                none_l.alias("cluster"),
                none_s.alias("file"),
                none_l.alias("row"),
                "stage",
                F.col("_row").alias("_at"),
            )  # fmt: skip
        )
        .unionByName(
            dec.filter(F.col("_reason").isNotNull())
            .join(ids, "_row")
            .select(
                "id",
                F.col("_reason").alias("reason"),
                "cluster",
                none_s.alias("file"),
                none_l.alias("row"),
                F.lit(4).alias("stage"),
                F.col("_row").alias("_at"),
            )  # fmt: skip
        )
        .orderBy("stage", "_at")
    )
    tables.publish("selected", selected, out / "selected.parquet")
    tables.publish("clusters", clusters, out / "clusters.parquet")
    tables.publish("rejected", rejected.select(*api.REJECTED_SCHEMA.names), out / "rejected.parquet")
    # To the driver: one row per kind of reason (api.reason_kind in Spark SQL), not per record.
    kind = F.split(F.split(F.col("reason"), ":").getItem(0), r" \(").getItem(0)
    by_reason = {
        r["kind"]: int(r["n"])
        for r in rejected.groupBy(kind.alias("kind")).agg(F.count(F.lit(1)).alias("n")).collect()
    }
    timings["write"] = time.perf_counter() - t
    counts = {"rows_in": rows_in, "pool": pool, "budget": want, "selected": len(d.selection_order),
              "not_selected": int(np.sum(d.status == "not_selected")), "rejected": sum(by_reason.values())}  # fmt: skip
    degradation = "scores" if scores else ("model pair" if original else None)
    return api.finish(config, out, counts, by_reason, embedder, d.embed_info, d.cluster_stats, degradation,
                      decisions, timings, t0)  # fmt: skip


def _rate(done: str, what: str, n: int, seconds: float) -> None:
    """A progress line of a phase the executors ran (the terminal shows the rate)."""
    api.PROGRESS.info("select: %s %d/%d %s (%.1f %s/s)", done, n, n, what, n / max(seconds, 1e-9), what)


def _union(frames: list[DataFrame]) -> DataFrame:
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out
