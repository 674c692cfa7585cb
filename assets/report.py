"""The curation report asset (issue 14): every stage's outputs in the lake as one page to look at.

`curation_report` (group `report`) reads what the stage assets wrote (ingest's raw documents, dedup's run folder,
containment's graph and deletion plan, PASER selection's run folder, sampling's run folder; see
sift.pipelines.curation_report) and writes one self-contained HTML file, `<lake>/report/curation_report.html`.
Its metadata: the per-stage counts table and the key pictures as markdown (PNG data URIs, so the Dagster UI needs
no access to the lake), and the HTML's path. A stage not materialised yet shows as "not run yet".
"""

import dagster as dg

from sift.pipelines.resources import LakeResource

GROUP = "report"
STAGE = "report"


@dg.asset(
    group_name=GROUP,
    deps=[
        "raw_documents",
        "duplicate_clusters",
        "deletion_plan",
        "instruction_clusters",
        "sample_allocation",
    ],
    kinds={"html", "markdown"},
    owners=["team:data-platform"],
    description="The curation report: per-stage counts, dedup removal rates by source, the duplicate cluster-size "
    "histogram, the containment graph with the deleted tables, the PASER cluster map and budgets, the sampling "
    "curves and allocation per round; one self-contained HTML file, <lake>/report/curation_report.html.",
)
def curation_report(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    from sift.pipelines.curation_report import STAGE_HEADER, render_markdown, write_report

    path, report = write_report(lake.local(stage=STAGE))
    ran = [s.title for s in report.sections if s.ran]
    missing = [s.title for s in report.sections if not s.ran]
    context.log.info(f"report: {len(ran)} of {len(report.sections)} stages in {path}")
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.md(render_markdown(report)),
            "stage_counts": dg.MetadataValue.table(
                records=[
                    dg.TableRecord(dict(zip(STAGE_HEADER, row, strict=True))) for row in report.stage_counts
                ],
                schema=dg.TableSchema(columns=[dg.TableColumn(h, "string") for h in STAGE_HEADER]),
            ),
            "stages_run": dg.MetadataValue.json(ran),
            "stages_not_run": dg.MetadataValue.json(missing),
            "html": dg.MetadataValue.path(path),
        }
    )


ASSETS = [curation_report]
CHECKS: list = []
