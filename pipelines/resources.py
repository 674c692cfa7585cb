"""Dagster resources: the lake root and the engine, one set per environment (local, cluster).

`SIFT_ENV=local` (default): lake in `$SIFT_LAKE_ROOT` (default `.sift/lake`), Polars engine.
Either environment: the tables containment reads in `<lake>/$SIFT_LAKE_TABLES` (default `tables`; "" = the root).
`SIFT_ENV=cluster`: the same lake URL, the Spark engine on `$SIFT_SPARK_MASTER` (e.g. spark://host:7077).
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import fsspec

# Sources are discovered from the lake's `incoming/` folder (see `sources_sensor`) or registered by `sift demo`.
SOURCES_PARTITIONS = dg.DynamicPartitionsDefinition(name="sources")


class LakeResource(dg.ConfigurableResource):
    """The lake root (a local folder or any fsspec URL) and the folder under it whose tables containment reads."""

    root: str = ".sift/lake"
    # the tables R2D2 containment considers: `<root>/<tables>` ("" = the whole lake root, Sift's own outputs too)
    tables: str = "tables"

    def path(self, *parts: str) -> str:
        """A path under the lake root (local roots are made absolute)."""
        root = self.root if "://" in self.root else str(Path(self.root).resolve())
        return "/".join([root.rstrip("/"), *parts])

    def local(self, *parts: str, stage: str) -> str:
        """A local path under the lake root, for a stage that reads or writes local files; a remote root is
        refused with a message naming the stage."""
        path = self.path(*parts)
        if "://" in path and not path.startswith("file://"):
            raise ValueError(f"{stage} reads and writes local paths; lake root {self.root} is remote")
        return path.removeprefix("file://")

    def tables_path(self, stage: str) -> str:
        """The local folder of the lake's tables (`tables`, relative to the root)."""
        return self.local(*[p for p in self.tables.split("/") if p], stage=stage)

    def incoming(self, source: str) -> str:
        """The raw input of one source: `incoming/<source>.<ext>` (file) or `incoming/<source>/` (folder)."""
        fs, base = fsspec.core.url_to_fs(self.path("incoming"))
        matches = sorted(
            p for p in fs.ls(base, detail=False) if os.path.basename(p.rstrip("/")).split(".")[0] == source
        )
        if not matches:
            raise FileNotFoundError(f"no input for source '{source}' under {self.path('incoming')}")
        return self.path("incoming", os.path.basename(matches[0].rstrip("/")))

    def sources(self) -> list[str]:
        """Source names present in `incoming/`."""
        fs, base = fsspec.core.url_to_fs(self.path("incoming"))
        if not fs.exists(base):
            return []
        names = {os.path.basename(p.rstrip("/")).split(".")[0] for p in fs.ls(base, detail=False)}
        return sorted(n for n in names if n and not n.startswith((".", "_")))


class EngineResource(dg.ConfigurableResource):
    """Which engine runs the plans: `polars` (embedded) or `spark` (local[*], spark://, sc://), and the Spark
    settings of its session (`conf`, like `[spark] conf` or `--spark-conf`: over the cluster's
    `spark-defaults.conf`; Sift's Arrow and UTC settings win)."""

    name: str = "polars"
    spark_master: str | None = None
    conf: dict[str, str] = {}

    def spark(self):
        """The process's Spark session, started on first use with `conf`."""
        from sift.pipelines.core.engines import get_spark

        return get_spark(self.spark_master, conf=self.conf)


def resources_for(env: str | None = None) -> dict[str, dg.ConfigurableResource]:
    """The resources of one environment, chosen by `SIFT_ENV` (local or cluster)."""
    env = env or os.environ.get("SIFT_ENV", "local")
    lake = LakeResource(
        root=os.environ.get("SIFT_LAKE_ROOT", ".sift/lake"),
        tables=os.environ.get("SIFT_LAKE_TABLES", "tables"),
    )
    if env == "local":
        return {"lake": lake, "engine": EngineResource(name="polars")}
    if env == "cluster":
        return {
            "lake": lake,
            "engine": EngineResource(
                name="spark", spark_master=os.environ.get("SIFT_SPARK_MASTER", "local[*]")
            ),
        }
    raise ValueError(f"SIFT_ENV={env!r}: expected 'local' or 'cluster'")
