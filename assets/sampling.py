"""Equitable sampling assets (Cai et al., FAccT 2022: adaptive allocation of a budget across groups), thin over
`sampling.run`, downstream of the deduplicated documents (assets/dedup.py): the groups are the corpus sources and
the learner is the `ngram-lm` proxy (per-source validation cross-entropy), so the allocation is a training mixture's
proportions across sources.

- `sample_allocation`: the run folder `<lake>/sampling/run/` (allocation.parquet, sample.parquet, stats.json,
  report.md, curves.png, allocation.png); metadata: the allocation and errors per source, the fitted curves plot
  (markdown with the image) and the report.
- `sampled_mixture`: the drawn documents as `<lake>/sampling/sampled_documents.parquet`, with checks that the
  budget is respected (sum of cost x rows per source) and that every sampled id exists in the pool (blocking).
"""

import os

import dagster as dg
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sift.pipelines.core.atomic import write_parquet
from sift.pipelines.progress import forward_progress
from sift.pipelines.resources import EngineResource, LakeResource

GROUP = "sampling"
STAGE = "sample"


class SampleRunConfig(dg.Config):
    """Run config of the sampling assets (None = the [sample] stage config from sift.toml / environment)."""

    budget: float | None = None
    costs: dict[str, float] | None = None
    objective: str | None = None
    strategy: str | None = None
    rounds: int | None = None
    pilot: int | None = None
    seed: int | None = None


def _config(run_config: SampleRunConfig):
    from sift.pipelines.core.config import load_config
    from sift.sampling.config import SampleConfig

    overrides = {
        "group_field": "source",
        "learner": "ngram-lm",
        "text_field": "text",
        **run_config.model_dump(),
    }
    return load_config(SampleConfig, overrides)


def _pool(lake: LakeResource) -> str:
    return lake.local("dedup", "deduplicated_documents.parquet", stage=STAGE)


@dg.asset(
    group_name=GROUP,
    owners=["team:data-platform"],
    deps=["deduplicated_documents"],
    pool="spark",  # Spark-heavy: runs in a slot of the `spark` pool (pipelines/automation.py)
    kinds={"polars", "spark", "parquet"},
    description="The allocation of the sampling budget across sources (adaptive equitable sampling with the "
    "ngram-lm proxy): rows per source and round, fitted learning curves; the run folder <lake>/sampling/run/.",
)
def sample_allocation(
    context: dg.AssetExecutionContext, config: SampleRunConfig, lake: LakeResource, engine: EngineResource
) -> dg.MaterializeResult:
    from sift import sampling
    from sift.pipelines.core.stage import PolarsEngine, SparkEngine

    cfg = _config(config)
    out = lake.local("sampling", "run", stage=STAGE)
    eng = SparkEngine(engine.spark()) if engine.name == "spark" else PolarsEngine()
    with forward_progress(context.log.info):  # the run's rounds in the Dagster run log
        stats = sampling.run(_pool(lake), cfg, out, eng)
    with open(os.path.join(out, "report.md")) as f:
        report = f.read()
    curves = os.path.join(out, "curves.png")
    final = stats["final"]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(stats["groups"]),
            "allocation": dg.MetadataValue.json(final["allocation"]),
            "errors": dg.MetadataValue.json(final["errors"]),
            "objective": final["loss"],
            "spent": stats["spent"],
            "budget": stats["budget"],
            "rounds": len(stats["rounds"]),
            "curves": dg.MetadataValue.md(f"![learning curves per source]({curves})"),
            "report": dg.MetadataValue.md(
                report.replace("![learning curves](curves.png)", "").replace(
                    "![allocation per round](allocation.png)", ""
                )
            ),
            "run_folder": dg.MetadataValue.path(out),
            "engine": engine.name,
        }
    )


@dg.asset(
    group_name=GROUP,
    owners=["team:data-platform"],
    deps=["deduplicated_documents", sample_allocation],
    kinds={"parquet"},
    description="The sampled training mixture: the drawn documents with all their columns.",
    check_specs=[
        dg.AssetCheckSpec(
            "budget_respected",
            asset="sampled_mixture",
            description="sum over sources of cost x rows drawn is within the budget",
            blocking=True,
        ),
        dg.AssetCheckSpec(
            "sampled_ids_in_pool",
            asset="sampled_mixture",
            description="every sampled id is a deduplicated document",
            blocking=True,
        ),
    ],
)
def sampled_mixture(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    import json

    run = lake.local("sampling", "run", stage=STAGE)
    sample = pq.read_table(os.path.join(run, "sample.parquet"))
    with open(os.path.join(run, "stats.json")) as f:
        stats = json.load(f)
    path = lake.local("sampling", "sampled_documents.parquet", stage=STAGE)
    write_parquet(sample, path)
    counts = {
        str(r["source"]): int(r["count"])
        for r in sample.group_by("source")
        .aggregate([("id", "count")])
        .rename_columns(["source", "count"])
        .to_pylist()
    }
    spent = sum(stats["groups"][g]["cost"] * n for g, n in counts.items())
    pool_ids = pq.read_table(_pool(lake), columns=["id"]).column("id")
    missing = pc.invert(pc.is_in(sample.column("id"), value_set=pool_ids))
    missing_ids = sample.column("id").filter(missing).to_pylist()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": sample.num_rows,
            "path": dg.MetadataValue.path(path),
            "per_source": dg.MetadataValue.json(dict(sorted(counts.items()))),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="budget_respected",
                passed=spent <= stats["budget"] + 1e-9,
                metadata={"spent": spent, "budget": stats["budget"]},
            ),
            dg.AssetCheckResult(
                check_name="sampled_ids_in_pool",
                passed=not missing_ids,
                metadata={"sampled": sample.num_rows, "missing": dg.MetadataValue.json(missing_ids[:20])},
            ),
        ],
    )


ASSETS = [sample_allocation, sampled_mixture]
CHECKS: list = []
