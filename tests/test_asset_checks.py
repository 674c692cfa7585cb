"""Every Dagster asset check seen failing: each is fed a bad state on a real instance and must fail, and a failed
blocking check stops the assets downstream of it in the same run.

Bad states are made the way they would arise: a stage that loses or repeats a row (the stage function patched to
do so), or an output folder changed behind the asset's back (a row dropped, a kept id repeated, a container that
no longer holds what its recipe says).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import sift.assets.raw
from sift.pipelines.definitions import defs
from sift.pipelines.resources import SOURCES_PARTITIONS, EngineResource, LakeResource

SOURCE = "s"


def _resources(lake: Path) -> dict:
    return {"lake": LakeResource(root=str(lake)), "engine": EngineResource(name="polars")}


def _materialize(lake: Path, tmp_path: Path, selection: list[str], partition: str | None = None):
    (tmp_path / "dagster").mkdir(exist_ok=True)
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        if partition:
            instance.add_dynamic_partitions(SOURCES_PARTITIONS.name, [partition])
        return dg.materialize(
            [*defs.assets, *(defs.asset_checks or [])],
            instance=instance,
            partition_key=partition,
            selection=selection,
            resources=_resources(lake),
            raise_on_error=False,
        )


def _checks(result) -> dict[str, bool]:
    return {c.check_name: c.passed for c in result.get_asset_check_evaluations()}


def _materialized(result) -> set[str]:
    return {
        e.asset_key.to_user_string()
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
    }


def _write_incoming(lake: Path, rows: int = 6) -> None:
    incoming = lake / "incoming"
    incoming.mkdir(parents=True)
    lines = [f'{{"id": "d{i}", "text": "document {i} {"words " * 60}"}}' for i in range(rows)]
    (incoming / f"{SOURCE}.jsonl").write_text("\n".join(lines) + "\n")


# --- raw_documents: every_record_accounted, ids_unique; blocking ------------------------------------------------


def _drop_first_document(result):
    result.documents = result.documents.slice(1)
    return result


def _repeat_first_id(result):
    docs = result.documents
    ids = docs.column("id").to_pylist()
    ids[1] = ids[0]
    result.documents = docs.set_column(docs.schema.get_field_index("id"), "id", pa.array(ids, pa.string()))
    return result


def test_raw_checks_pass_on_a_good_ingest_and_downstream_runs(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    _write_incoming(lake)
    result = _materialize(lake, tmp_path, ["raw_documents", "dedup_signatures"], SOURCE)
    assert result.success
    assert _checks(result) == {"every_record_accounted": True, "ids_unique": True}
    assert _materialized(result) == {"raw_documents", "dedup_signatures"}


@pytest.mark.parametrize(
    ("tamper", "failing"),
    [(_drop_first_document, "every_record_accounted"), (_repeat_first_id, "ids_unique")],
)
def test_raw_check_fails_and_blocks_downstream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tamper: Callable, failing: str
) -> None:
    real = sift.assets.raw.ingest
    monkeypatch.setattr(sift.assets.raw, "ingest", lambda *a, **k: tamper(real(*a, **k)))
    lake = tmp_path / "lake"
    _write_incoming(lake)
    result = _materialize(lake, tmp_path, ["raw_documents", "dedup_signatures"], SOURCE)
    checks = _checks(result)
    assert checks[failing] is False
    assert all(passed for name, passed in checks.items() if name != failing)
    assert not result.success
    # the failed blocking check stopped the run before the dedup signatures of a wrong raw table were computed
    assert "dedup_signatures" not in _materialized(result)
    assert not (lake / "dedup" / "signatures" / f"{SOURCE}.parquet").exists()


# --- deduplicated_documents: every_row_accounted_once, kept_ids_unique, duplicate_of_is_kept --------------------


def _dedup_lake(tmp_path: Path) -> Path:
    """A lake with raw documents (two exact duplicates among them) and a real dedup run folder."""
    from sift import dedup
    from sift.dedup.config import DedupConfig
    from sift.pipelines.core.config import load_config

    lake = tmp_path / "lake"
    (lake / "raw_documents").mkdir(parents=True)
    texts = [f"document {i} " + "words and more words " * 20 for i in range(6)]
    texts += [texts[0], texts[1]]
    docs = pa.table(
        {
            "id": [f"d{i}" for i in range(len(texts))],
            "source": [SOURCE] * len(texts),
            "text": texts,
        }
    )
    pq.write_table(docs, lake / "raw_documents" / f"{SOURCE}.parquet")
    cfg = load_config(DedupConfig)
    dedup.run(docs.to_batches(), cfg, str(lake / "dedup" / "run"), engine="polars", input_fingerprint="t")
    removed = pq.read_table(lake / "dedup" / "run" / "removed.parquet")
    assert removed.num_rows == 2 and removed.column("duplicate_of").null_count == 0
    return lake


def _rewrite(path: Path, change: Callable[[pa.Table], pa.Table]) -> None:
    pq.write_table(change(pq.read_table(path)), path)


def _drop_a_removed_row(run: Path) -> None:
    _rewrite(run / "removed.parquet", lambda t: t.slice(1))


def _keep_a_document_twice(run: Path) -> None:
    _rewrite(run / "kept.parquet", lambda t: pa.concat_tables([t, t.slice(0, 1)]))


def _point_duplicate_of_at_a_removed_document(run: Path) -> None:
    def change(t: pa.Table) -> pa.Table:
        i = t.schema.get_field_index("duplicate_of")
        return t.set_column(i, "duplicate_of", pa.array(["gone"] * t.num_rows, t.schema.field(i).type))

    _rewrite(run / "removed.parquet", change)


def _quarantine_a_raw_document(run: Path) -> None:
    q = pq.read_table(run / "quarantine.parquet")
    row = {name: None for name in q.schema.names}
    pq.write_table(pa.Table.from_pylist([row], schema=q.schema), run / "quarantine.parquet")


def test_dedup_checks_pass_on_a_real_run(tmp_path: Path) -> None:
    lake = _dedup_lake(tmp_path)
    result = _materialize(lake, tmp_path, ["deduplicated_documents"])
    assert result.success
    assert _checks(result) == {
        "every_row_accounted_once": True,
        "kept_ids_unique": True,
        "duplicate_of_is_kept": True,
    }


@pytest.mark.parametrize(
    ("tamper", "failing"),
    [
        (_drop_a_removed_row, {"every_row_accounted_once"}),
        (_keep_a_document_twice, {"every_row_accounted_once", "kept_ids_unique"}),
        (_point_duplicate_of_at_a_removed_document, {"duplicate_of_is_kept"}),
        (_quarantine_a_raw_document, {"every_row_accounted_once"}),
    ],
)
def test_dedup_check_fails_on_a_tampered_run_folder(
    tmp_path: Path, tamper: Callable, failing: set[str]
) -> None:
    lake = _dedup_lake(tmp_path)
    tamper(lake / "dedup" / "run")
    result = _materialize(lake, tmp_path, ["deduplicated_documents"])
    checks = _checks(result)
    assert {name for name, passed in checks.items() if not passed} == failing
    assert len(checks) == 3
    assert not result.success  # every dedup check is blocking: a failed one fails the run


# --- deletion_plan: deleted_tables_have_kept_container, every_recipe_verified ------------------------------------


def _tables_lake(tmp_path: Path) -> Path:
    lake = tmp_path / "lake"
    (lake / "tables").mkdir(parents=True)
    big = pa.table({"k": [f"k{i}" for i in range(100)], "v": list(range(100))})
    pq.write_table(big, lake / "tables" / "big.parquet")
    pq.write_table(big.slice(10, 30), lake / "tables" / "part.parquet")
    return lake


def _plan_then(monkeypatch: pytest.MonkeyPatch, after: Callable[[str], None]) -> None:
    """Patch the plan step so that `after(output_dir)` changes the world once the plan is written."""
    import sift.dedup.containment.api as run

    real = run.plan_and_write

    def patched(result, output_dir, *args, **kwargs):
        stats = real(result, output_dir, *args, **kwargs)
        after(output_dir)
        return stats

    monkeypatch.setattr(run, "plan_and_write", patched)


def _container_not_kept(out: str) -> None:
    def change(t: pa.Table) -> pa.Table:
        i = t.schema.get_field_index("reconstruct_from")
        values = ["gone" if v is not None else None for v in t.column(i).to_pylist()]
        return t.set_column(i, "reconstruct_from", pa.array(values, t.schema.field(i).type))

    _rewrite(Path(out) / "deletion_plan.parquet", change)


def _container_changed(out: str) -> None:
    lake_tables = Path(out).parent / "tables"
    changed = pa.table({"k": [f"k{i}" for i in range(100)], "v": [i * 2 for i in range(100)]})
    pq.write_table(changed, lake_tables / "big.parquet")


def test_containment_checks_pass_on_a_real_plan(tmp_path: Path) -> None:
    lake = _tables_lake(tmp_path)
    result = _materialize(lake, tmp_path, ["containment_graph", "deletion_plan"])
    assert result.success
    assert _checks(result) == {"deleted_tables_have_kept_container": True, "every_recipe_verified": True}
    plan = pq.read_table(lake / "containment" / "deletion_plan.parquet")
    deleted = plan.filter(pc.equal(plan.column("action"), "delete")).column("table").to_pylist()
    assert deleted == ["part"]


@pytest.mark.parametrize(
    ("tamper", "failing"),
    [
        (_container_not_kept, "deleted_tables_have_kept_container"),
        (_container_changed, "every_recipe_verified"),
    ],
)
def test_containment_check_fails_on_a_bad_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tamper: Callable, failing: str
) -> None:
    lake = _tables_lake(tmp_path)
    _plan_then(monkeypatch, tamper)
    result = _materialize(lake, tmp_path, ["containment_graph", "deletion_plan"])
    checks = _checks(result)
    assert {name for name, passed in checks.items() if not passed} == {failing}
    assert len(checks) == 2
    assert not result.success
