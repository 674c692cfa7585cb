"""`sift contain --apply`: moving planned deletions to the lake's trash so that no table is ever lost.

The order of an apply, each step durable (fsync) before the next:
1. the apply's record: every recipe it may use, with the table's source path and trash path, written to
   OUTPUT/applies/<run>/recipes.parquet and to LAKE/.sift_trash/<run>/_sift_apply/recipes.parquet;
2. per table: check it again (see below), write `move` to OUTPUT/applies/<run>/journal.jsonl, rename the file or
   folder into LAKE/.sift_trash/<run>/ (one atomic rename, never a copy), write `moved`;
3. after the run's outputs are written, `done`.
A kill at any point leaves every table either in place or in the trash with its recipe already on disk, and a
rerun plans again from what is left; `stats.json` lists earlier applies of the same output that never reached
`done`. Recipe sets are per apply and never overwritten, so `sift rebuild` finds the tables of every apply.

A table is moved only when: it is a real file or folder under the lake's real root (no symbolic link on the way or
inside it, no `..`); its files have the size, mtime and SHA-256 recorded at planning and its content the recipe's
checksum; its recipe still rebuilds it from the container; its container is not planned for deletion itself nor the
container of a table that an earlier apply moved to the trash; the rename stays on one file system.

`SIFT_TEST_KILL_AT=<step>` makes the process SIGKILL itself at that step (records, move:<i>, moved:<i>, outputs,
done; <i> counts the moves of this apply from 0): the crash-safety tests kill an apply at every step.
"""

from __future__ import annotations

import errno
import json
import os
import time
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from sift.dedup.containment.recipes import RECIPE_SCHEMA, file_signatures, table_checksum, verify
from sift.dedup.containment.tables import TableRef, forget_csv, read_table
from sift.pipelines.core.atomic import kill_point, write_parquet
from sift.pipelines.core.errors import InputError

TRASH = ".sift_trash"
RECORD = "_sift_apply"  # hidden from discovery (a leading `_`), inside each trash run folder
APPLY_SCHEMA = pa.schema([*RECIPE_SCHEMA, ("source", pa.string()), ("trash_path", pa.string())])


class Journal:
    """OUTPUT/applies/<run>/journal.jsonl: one fsynced JSON line per step."""

    def __init__(self, path: str) -> None:
        self.path = path

    def write(self, step: str, **fields: object) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, **fields}, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())


def _inside(path: str, root: str) -> bool:
    return path.startswith(root + os.sep)


def _unsafe(ref: TableRef, root: str) -> str | None:
    """Why the table's location may not be moved, or None: it must be a real path under the real root, with no
    symbolic link on the way or inside it, holding every file the table was read from."""
    loc = os.path.abspath(ref.location)
    if not _inside(loc, root):
        return f"{ref.location} is not inside the lake {root}"
    if ".." in os.path.relpath(loc, root).split(os.sep):
        return f"{ref.location} leaves the lake"
    if os.path.realpath(loc) != loc:
        return f"{ref.location} is or passes through a symbolic link"
    if not os.path.lexists(loc):
        return f"{ref.location} no longer exists"
    if os.path.isdir(loc):
        for dirpath, dirs, files in os.walk(loc):
            for n in dirs + files:
                if os.path.islink(os.path.join(dirpath, n)):
                    return f"{os.path.join(dirpath, n)} is a symbolic link"
    if any(p != loc and not _inside(os.path.abspath(p), loc) for p in ref.paths):
        return f"{ref.location} does not hold every file of the table"
    return None


def _run_id(trash: str, applies: str, wanted: str | None) -> str:
    base = wanted or time.strftime("%Y%m%dT%H%M%S")
    run, k = base, 1
    while os.path.lexists(os.path.join(trash, run)) or os.path.lexists(os.path.join(applies, run)):
        k += 1
        run = f"{base}-{k}"
    return run


def _protected(trash: str) -> dict[str, str]:
    """Container file -> why it must stay: the containers of tables that earlier applies moved to the trash."""
    out: dict[str, str] = {}
    if not os.path.isdir(trash):
        return out
    for run in sorted(os.listdir(trash)):
        path = os.path.join(trash, run, RECORD, "recipes.parquet")
        if os.path.islink(os.path.join(trash, run)) or not os.path.exists(path):
            continue
        for r in pq.read_table(path, columns=["table", "container_paths", "trash_path"]).to_pylist():
            if r["trash_path"] and os.path.lexists(r["trash_path"]):
                for p in r["container_paths"] or []:
                    out.setdefault(os.path.abspath(p), f"container of {r['table']}, trashed by apply {run}")
    return out


def interrupted_applies(output_dir: str) -> list[dict]:
    """Earlier applies of this output folder that never reached `done` (killed), with their moves."""
    out = []
    applies = os.path.join(output_dir, "applies")
    for run in sorted(os.listdir(applies)) if os.path.isdir(applies) else []:
        path = os.path.join(applies, run, "journal.jsonl")
        if not os.path.exists(path):
            continue
        steps = []
        with open(path) as f:
            for line in f:
                try:
                    steps.append(json.loads(line))
                except ValueError:  # a line cut by the kill
                    break
        if not any(s["step"] == "done" for s in steps):
            moved = sorted(s["table"] for s in steps if s["step"] == "moved")
            out.append(
                {"apply": run, "moved": moved, "recipes": os.path.join(applies, run, "recipes.parquet")}
            )
    return out


def _changed(rec: dict, ref: TableRef) -> str | None:
    """Why the table differs from what was planned (files, then content), or None."""
    planned = {f["path"]: f for f in rec.get("source_files") or []}
    if not planned:
        return "no record of its files at planning"
    now = file_signatures(ref.location)
    if {f["path"] for f in now} != set(planned):
        return "its files were added or removed"
    for f in now:
        p = planned[f["path"]]
        if (f["bytes"], f["mtime_ns"], f["sha256"]) != (p["bytes"], p["mtime_ns"], p["sha256"]):
            return f"{f['path']} was rewritten"
    if table_checksum(read_table(ref)) != rec["checksum"]:
        return "its content differs from the table the recipe was built from"
    return None


def apply_plan(
    rows: list[dict],
    recipes: dict[int, dict],
    refs: Sequence[TableRef],
    output_dir: str,
    lake_root: str,
    run_id: str | None = None,
) -> dict:
    """Move every planned deletion that passes its checks to the trash (see the module docstring); `rows` (the
    deletion plan) get `applied`, `trash_path` and, for a table kept after all, `action`="keep" and the reason."""
    root = os.path.realpath(lake_root)
    trash_root = os.path.join(root, TRASH)
    if os.path.islink(trash_root) or (os.path.lexists(trash_root) and not os.path.isdir(trash_root)):
        raise InputError(
            f"{trash_root}: the trash must be a real folder inside the lake (it is a link or a file)"
        )
    applies = os.path.join(os.path.abspath(output_dir), "applies")
    earlier = interrupted_applies(output_dir)
    run = _run_id(trash_root, applies, run_id)
    trash = os.path.join(trash_root, run)
    protected = _protected(trash_root)
    forget_csv()  # every table is read again from disk

    deleting = {r["table"] for r in rows if r["action"] == "delete"}
    todo: list[tuple[int, str]] = []
    for t, row in enumerate(rows):
        if row["action"] != "delete":
            continue
        rec, ref = recipes[t], refs[t]
        why = None
        if rec["container"] in deleting:  # never move a container (the plan forbids it)
            why = "its container is itself planned for deletion"
        elif any(os.path.abspath(p) in protected for p in ref.paths):
            why = next(protected[os.path.abspath(p)] for p in ref.paths if os.path.abspath(p) in protected)
        else:
            why = _unsafe(ref, root)
        if why is not None:
            row.update(action="keep", reason=f"kept, not moved: {why}")
            continue
        todo.append((t, os.path.join(trash, os.path.relpath(os.path.abspath(ref.location), root))))

    # 1. the record of the apply, on disk (in the output and in the lake) before anything moves
    record = pa.Table.from_pylist(
        [{**recipes[t], "source": os.path.abspath(refs[t].location), "trash_path": dst} for t, dst in todo],
        schema=APPLY_SCHEMA,
    )
    os.makedirs(os.path.join(applies, run), exist_ok=True)
    write_parquet(record, os.path.join(applies, run, "recipes.parquet"), durable=True)
    if todo:
        write_parquet(record, os.path.join(trash, RECORD, "recipes.parquet"), durable=True)
    journal = Journal(os.path.join(applies, run, "journal.jsonl"))
    journal.write("records", lake=root, tables=len(todo))
    kill_point("records")

    # 2. per table: check again, then one rename into the trash
    moved = 0
    for t, dst in todo:
        row, rec, ref = rows[t], dict(recipes[t]), refs[t]
        changed = _changed(rec, ref)
        if changed is not None:
            row.update(action="keep", reason=f"kept, not moved: changed since planning ({changed})")
            continue
        if not verify(rec)["verified"]:
            row.update(action="keep", verified=False, reason=f"kept: re-verification failed ({rec['error']})")
            continue
        if os.path.lexists(dst):
            row.update(action="keep", reason=f"kept, not moved: {dst} already exists")
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        src = os.path.abspath(ref.location)
        journal.write("move", table=ref.name, source=src, trash_path=dst)
        kill_point(f"move:{moved}")
        try:
            os.rename(src, dst)  # atomic: the table is in one place or the other, never half moved
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            row.update(action="keep", reason="kept, not moved: on another file system than the lake's trash")
            journal.write("skipped", table=ref.name, reason="EXDEV")
            continue
        kill_point(f"moved:{moved}")
        journal.write("moved", table=ref.name)
        row.update(applied=True, trash_path=dst)
        moved += 1
    journal.write("applied", moved=moved)
    kill_point("outputs")
    return {"run": run, "trash": trash, "applied": moved, "journal": journal, "interrupted_earlier": earlier}


def finish_apply(info: dict) -> None:
    """The apply's last step, once the run's outputs are written."""
    info["journal"].write("done")
    kill_point("done")


def recipe_sets(plan_dir: str) -> list[str]:
    """The recipe files of an output folder, most recent first: the last run's, then each apply's, newest first."""
    out = [os.path.join(plan_dir, "recipes.parquet")]
    applies = os.path.join(plan_dir, "applies")
    if os.path.isdir(applies):
        sets = [os.path.join(applies, r, "recipes.parquet") for r in os.listdir(applies)]
        sets = [p for p in sets if os.path.exists(p)]
        out += sorted(sets, key=lambda p: (os.stat(p).st_mtime_ns, p), reverse=True)
    return [p for p in out if os.path.exists(p)]


def find_recipe(plan_dir: str, table: str) -> dict:
    """The recipe of `table` in the most recent recipe set of the output folder that has one."""
    sets = recipe_sets(plan_dir)
    if not sets:
        raise FileNotFoundError(f"{plan_dir}: no recipes.parquet (run `sift contain` first)")
    known: set[str] = set()
    for path in sets:
        for r in pq.read_table(path).to_pylist():
            if r["table"] == table and r.get("schema") is not None:
                return r
            known.add(r["table"])
    listed = ", ".join(sorted(known)[:20]) or "none"
    raise KeyError(f"{table!r} has no recipe in {plan_dir} (tables with recipes: {listed})")
