"""Assets of PASER recovery-data selection (issue 12, "PASER: Post-Training Data Selection for Efficient Pruned Large
Language Model Recovery"), thin over `sift.selection`'s step functions (selection/api.py). Everything lives under
`<lake>/select/`.

- `selection_instructions`: the instructions to select from (`id`, `instruction`, optional `input`, `output`): the
  file or folder named by the run config's `path`, or by default the demo's instructions with known capability
  groups (sift.pipelines.demo_instructions) written as `demo_instructions.jsonl`. Downstream assets find it through
  `instructions.json` (the path, and where it came from).
- `instruction_embeddings` (paper step 1's input): `embeddings.parquet`, `id` and `vector` (L2-normalised float32)
  per usable instruction, embedded through the cache in `_work/` (a text already embedded by the same model is not
  embedded again).
- `degradation_scores` (paper step 2): `degradation_scores.parquet`, `id`, `jsd`, `tokens`, from a SCORES table
  (`scores`), or the JSD between a model pair (`original`, `pruned`); by default a tiny GPT-2 pair trained on the
  instructions and magnitude-pruned (sift.pipelines.demo_models), built once into `demo_models/` and reused.
- `instruction_clusters` (paper steps 1 and 3-5): the selection run over the two tables (S2RIC clusters, budget by
  cluster degradation, ranking, concept conflict filter), the folder `run/` as `sift select` writes it, with the
  cluster map and the budget chart in the metadata.
- `recovery_set`: the selected instructions exported for a fine-tuning stage as `recovery_set/recovery_set.jsonl`
  and `recovery_set/recovery_set.parquet` (the folder replaced whole), with blocking checks: the selection holds
  no more than the budget (exactly the budget when the pool allows), no rejected id, and only ids of the
  instructions.
"""

import base64
import json
import os
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from sift.pipelines.core.atomic import atomic_dir, write_bytes, write_json
from sift.pipelines.progress import forward_progress
from sift.pipelines.resources import EngineResource, LakeResource

GROUP = "select"
STAGE = "select"


class InstructionsConfig(dg.Config):
    """Where the instructions come from: `path` (Parquet or JSONL, file or folder), or None for the demo's."""

    path: str | None = None
    demo_per_group: int = 60  # demo instructions per capability group (code, licence, timezone, unicode)


class SelectRunConfig(dg.Config):
    """Settings of the selection assets (None = the [select] stage config from sift.toml / environment)."""

    budget: float | None = None
    clusters: str | None = None  # auto, or a number of clusters
    embedder: str | None = None
    seed: int | None = None


class ScoresConfig(SelectRunConfig):
    """Degradation scores from a SCORES table (`scores`: `id`, `jsd` [, `tokens`]) or a model pair (`original`,
    `pruned`: Hugging Face causal LM folders); with neither, the demo's tiny model pair."""

    scores: str | None = None
    original: str | None = None
    pruned: str | None = None


def _config(run_config: SelectRunConfig) -> Any:
    from sift.pipelines.core.config import load_config
    from sift.selection.config import SelectionConfig

    fields = {k: run_config.model_dump()[k] for k in ("budget", "clusters", "embedder", "seed")}
    return load_config(SelectionConfig, fields)


def _path(lake: LakeResource, *parts: str) -> str:
    return lake.local("select", *parts, stage=STAGE)


def _instructions(lake: LakeResource) -> str:
    """The instructions' path, as `selection_instructions` recorded it."""
    with open(_path(lake, "instructions.json")) as f:
        return str(json.load(f)["path"])


def _image_md(path: str, alt: str) -> str:
    """Markdown showing a PNG inline (a data URI, so the Dagster UI needs no access to the lake)."""
    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode()
    return f"![{alt}](data:image/png;base64,{data})"


def _clusters_md(stats: dict[str, Any]) -> str:
    lines = [
        "| cluster | size | mean JSD | budget | selected | rejected |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {c['cluster']} | {c['size']} | {c['cds']:.4g} | {c['budget']} | {c['selected']} | {c['rejected']} |"
        for c in stats["clusters"]["per_cluster"]
    ]
    return "\n".join(lines)


def _pictures(run: str) -> dict[str, Any]:
    """The cluster map and the budget chart of a run folder, as markdown images and as paths."""
    out: dict[str, Any] = {}
    for name, alt in (("cluster_map", "cluster map"), ("cluster_budget", "budget per cluster")):
        png = os.path.join(run, f"{name}.png")
        if os.path.exists(png):
            out[name] = dg.MetadataValue.md(_image_md(png, alt))
            out[f"{name}_png"] = dg.MetadataValue.path(png)
    return out


@dg.asset(
    group_name=GROUP,
    owners=["team:data-platform"],
    kinds={"json"},
    description="The instructions PASER selects from (id, instruction, input, output): the configured file or "
    "folder, or the demo's instructions with four known capability groups written into the lake.",
)
def selection_instructions(
    context: dg.AssetExecutionContext, config: InstructionsConfig, lake: LakeResource
) -> dg.MaterializeResult:
    from sift.selection.api import read_instructions

    if config.path is not None:
        path = config.path if "://" in config.path else os.path.abspath(config.path)
        origin = "config"
    else:
        import orjson

        from sift.pipelines.demo_instructions import instructions

        path, origin = _path(lake, "demo_instructions.jsonl"), "demo"
        rows = instructions(config.demo_per_group)
        write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows), path)
    with forward_progress(context.log.info):
        docs, rejected = read_instructions(path)
    write_json({"path": path, "origin": origin}, _path(lake, "instructions.json"))
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": docs.num_rows + rejected.num_rows,
            "usable": docs.num_rows,
            "rejected_on_read": rejected.num_rows,
            "origin": origin,
            "path": dg.MetadataValue.path(path),
        }
    )


@dg.asset(
    group_name=GROUP,
    owners=["team:data-platform"],
    deps=[selection_instructions],
    kinds={"pytorch", "parquet"},
    description="Sentence embeddings (id, L2-normalised float32 vector) of every usable instruction, by the "
    "configured embedder (default all-MiniLM-L6-v2); texts already embedded by the same model come from the cache.",
)
def instruction_embeddings(
    context: dg.AssetExecutionContext, config: SelectRunConfig, lake: LakeResource
) -> dg.MaterializeResult:
    from sift.pipelines.core.lake.write import write_table
    from sift.selection.api import embed_instructions, read_instructions

    cfg = _config(config)
    with forward_progress(context.log.info):  # phases and embedding progress in the run log
        docs, _ = read_instructions(_instructions(lake))
        table, info = embed_instructions(docs, cfg, _path(lake, "_work"))
    path = _path(lake, "embeddings.parquet")
    write_table(table, path)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": table.num_rows,
            "dimensions": table.schema.field("vector").type.list_size,
            "reused_from_cache": info["reused"],
            "embedded": info["embedded"],
            "path": dg.MetadataValue.path(path),
        }
    )


def _demo_pair(lake: LakeResource, docs: pa.Table, log: Any) -> tuple[str, str]:
    """The demo's tiny original/pruned pair, trained on the instructions once and kept in the lake."""
    from sift.pipelines.demo_models import tiny_lm_pair

    root = _path(lake, "demo_models")
    original, pruned = os.path.join(root, "original"), os.path.join(root, "pruned")
    if os.path.exists(os.path.join(original, "config.json")) and os.path.exists(
        os.path.join(pruned, "config.json")
    ):
        log.info(f"select: reusing the demo model pair in {root}")
        return original, pruned
    texts = [
        f"{a}\n\n{c}"
        for a, c in zip(
            docs.column("instruction").to_pylist(), docs.column("output").to_pylist(), strict=True
        )
    ]
    log.info(f"select: training the demo model pair on {len(texts)} instructions")
    with atomic_dir(root) as tmp:
        tiny_lm_pair(texts, tmp)
    return original, pruned


@dg.asset(
    group_name=GROUP,
    owners=["team:data-platform"],
    deps=[selection_instructions],
    kinds={"pytorch", "parquet"},
    description="Capability degradation score of each instruction (id, jsd, tokens): from a SCORES table, or the "
    "mean response-token Jensen-Shannon divergence between an original and a pruned causal LM (by default the "
    "demo's tiny GPT-2 pair, built once).",
)
def degradation_scores(
    context: dg.AssetExecutionContext, config: ScoresConfig, lake: LakeResource
) -> dg.MaterializeResult:
    from sift.pipelines.core.lake.write import write_table
    from sift.selection.api import read_instructions, score_instructions

    cfg = _config(config)
    with forward_progress(context.log.info):  # phases and scoring progress in the run log
        docs, _ = read_instructions(_instructions(lake))
        original, pruned, origin = config.original, config.pruned, "model pair"
        if config.scores is not None:
            origin = "scores table"
        elif original is None and pruned is None:
            original, pruned = _demo_pair(lake, docs, context.log)
            origin = "demo model pair"
        table, unscored = score_instructions(
            docs, cfg, scores=config.scores, original=original, pruned=pruned
        )
    path = _path(lake, "degradation_scores.parquet")
    write_table(table, path)
    reasons: dict[str, int] = {}
    for r in unscored.column("reason").to_pylist():
        kind = r.split(":")[0]
        reasons[kind] = reasons.get(kind, 0) + 1
    jsd = table.column("jsd").drop_null().to_numpy()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": table.num_rows,
            "scored": len(jsd),
            "origin": origin,
            "not_scored": dg.MetadataValue.json(reasons),
            "mean_jsd": float(jsd.mean()) if len(jsd) else 0.0,
            "max_jsd": float(jsd.max()) if len(jsd) else 0.0,
            "path": dg.MetadataValue.path(path),
        }
    )


@dg.asset(
    group_name=GROUP,
    owners=["team:data-platform"],
    deps=[selection_instructions, instruction_embeddings, degradation_scores],
    pool="spark",  # Spark-heavy: runs in a slot of the `spark` pool (pipelines/automation.py)
    kinds={"scikitlearn", "parquet"},
    description="PASER selection over the embeddings and scores: S2RIC clusters, budget per cluster by mean "
    "degradation, ranking by efficiency, concept conflict filter. The run folder <lake>/select/run/ "
    "(selected, clusters, rejected, stats, report with the cluster map and the budget chart).",
)
def instruction_clusters(
    context: dg.AssetExecutionContext, config: SelectRunConfig, lake: LakeResource, engine: EngineResource
) -> dg.MaterializeResult:
    from sift import selection
    from sift.pipelines.core.stage import engine_for

    cfg = _config(config)
    run = _path(lake, "run")
    with forward_progress(context.log.info):
        stats = selection.run(
            _instructions(lake), cfg, run, engine_for(engine.name, engine.spark_master, spark_conf=engine.conf),
            scores=_path(lake, "degradation_scores.parquet"), embeddings=_path(lake, "embeddings.parquet"),
        )  # fmt: skip
    info = stats["clusters"]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": stats["pool"],
            "clusters": info["k"],
            "method": info["method"],
            "per_cluster": dg.MetadataValue.md(_clusters_md(stats)),
            **_pictures(run),
            "rejected_by_reason": dg.MetadataValue.json(stats["rejected_by_reason"]),
            "run_folder": dg.MetadataValue.path(run),
        }
    )


def _jsonl(table: pa.Table) -> bytes:
    import orjson

    return b"".join(orjson.dumps(row) + b"\n" for row in table.to_pylist())


@dg.asset(
    group_name=GROUP,
    owners=["team:data-platform"],
    deps=[selection_instructions, instruction_clusters],
    kinds={"parquet", "json"},
    description="The selected recovery set for the fine-tuning stage: recovery_set.jsonl and recovery_set.parquet "
    "(id, instruction, input, output, cluster, rank, jsd, tokens, efficiency) in <lake>/select/recovery_set/.",
    check_specs=[
        dg.AssetCheckSpec(
            "within_budget",
            asset="recovery_set",
            description="no more samples than the budget, and exactly the budget when the pool allows",
            blocking=True,
        ),
        dg.AssetCheckSpec(
            "no_rejected_id",
            asset="recovery_set",
            description="no selected id is in the run's rejected.parquet",
            blocking=True,
        ),
        dg.AssetCheckSpec(
            "ids_in_instructions",
            asset="recovery_set",
            description="every selected id is an id of the instructions, once",
            blocking=True,
        ),
    ],
)
def recovery_set(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    from sift.pipelines.core.lake.write import write_table
    from sift.selection.api import read_instructions

    run = _path(lake, "run")
    selected = pq.read_table(os.path.join(run, "selected.parquet"))
    rejected = pq.read_table(os.path.join(run, "rejected.parquet"))
    with open(os.path.join(run, "stats.json")) as f:
        stats = json.load(f)
    folder = _path(lake, "recovery_set")
    with atomic_dir(folder) as tmp:
        write_table(selected, os.path.join(tmp, "recovery_set.parquet"))
        write_bytes(_jsonl(selected), os.path.join(tmp, "recovery_set.jsonl"))
    context.log.info(f"select: {selected.num_rows} instructions exported to {folder}")

    ids = selected.column("id").to_pylist()
    budget, n = int(stats["budget"]), selected.num_rows
    within = n <= budget and (n == budget or stats["not_selected"] == 0)
    clash = sorted(set(ids) & set(rejected.column("id").drop_null().to_pylist()))
    docs, _ = read_instructions(_instructions(lake))
    known = set(docs.column("id").to_pylist())
    unknown = sorted({i for i in ids if i not in known})
    per_cluster = {"per_cluster": dg.MetadataValue.md(_clusters_md(stats))} if stats.get("clusters") else {}
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": n,
            "budget": budget,
            "records_in": stats["rows_in"],
            "pool": stats["pool"],
            "not_selected": stats["not_selected"],
            "rejected": stats["rejected"],
            **per_cluster,
            **_pictures(run),
            "jsonl": dg.MetadataValue.path(os.path.join(folder, "recovery_set.jsonl")),
            "parquet": dg.MetadataValue.path(os.path.join(folder, "recovery_set.parquet")),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="within_budget",
                passed=within,
                metadata={"selected": n, "budget": budget, "not_selected": stats["not_selected"]},
            ),
            dg.AssetCheckResult(
                check_name="no_rejected_id",
                passed=not clash,
                metadata={"rejected": rejected.num_rows, "clashes": dg.MetadataValue.json(clash[:20])},
            ),
            dg.AssetCheckResult(
                check_name="ids_in_instructions",
                passed=not unknown and len(set(ids)) == n,
                metadata={
                    "selected": n,
                    "unique": len(set(ids)),
                    "unknown": dg.MetadataValue.json(unknown[:20]),
                },
            ),
        ],
    )


ASSETS = [
    selection_instructions,
    instruction_embeddings,
    degradation_scores,
    instruction_clusters,
    recovery_set,
]
CHECKS: list[Any] = []
