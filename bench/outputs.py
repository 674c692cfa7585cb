"""Byte-identity check of every command's outputs across two versions of Sift (for restructurings).

A refactoring must change no output. This script runs each `sift` command on the same inputs, records the SHA-256
of every file it writes (work folders and `timings.json` excepted; the wall-clock fields of the ingest and
containment stats and of the containment report's step table masked), and compares two such records file by file.

    # 1. inputs once: the demo corpus (JSONL per source, with its injected bad lines), optionally a bench corpus/lake
    python bench/outputs.py prepare .bench/outputs/inputs [--corpus .bench/dedup/corpus.jsonl] [--lake .bench/lake]
    # 2. a snapshot per version (another checkout: PYTHONPATH=OLD --sift-cmd "python -m pipelines.cli")
    python bench/outputs.py snapshot .bench/outputs/inputs .bench/outputs/new --json .bench/outputs/new.json
    # 3. the comparison: exit 0 when every file is byte-identical, 1 otherwise
    python bench/outputs.py compare .bench/outputs/old.json .bench/outputs/new.json

Commands run: `sift ingest` and `sift dedup` (verified/global and slimpajama/local) on the demo inputs and on the
corpus, `sift contain` on the lake (no --apply). All on the Polars engine unless `--engines polars,spark`.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

SKIP_NAMES = {"timings.json"}
SKIP_DIRS = {"_work"}
# Wall-clock measurements that some outputs carry beside their results (ingest and containment stats, the
# containment report's step table): masked before hashing, so the digest covers everything else byte for byte.
TIMING_KEY = re.compile(r"(^|_)(seconds|s)$")
TIMING_CELL = re.compile(rb"\| *[0-9]+\.[0-9]+ *\|$", re.M)


def _drop_timings(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_timings(v) for k, v in value.items() if not TIMING_KEY.search(k)}
    if isinstance(value, list):
        return [_drop_timings(v) for v in value]
    return value


def _masked(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".json":
        try:
            return json.dumps(_drop_timings(json.loads(data)), sort_keys=True).encode()
        except ValueError:
            return data
    if path.suffix == ".md":
        return TIMING_CELL.sub(b"| t |", data)
    return data


def _demo_writer():
    for name in ("sift.pipelines.demo_corpus", "pipelines.demo_corpus"):
        try:
            return importlib.import_module(name).write_demo_inputs
        except ModuleNotFoundError:
            continue
    raise SystemExit("cannot import the demo corpus writer: install Sift first")


def prepare(inputs: Path, corpus: Path | None, lake: Path | None) -> None:
    inputs.mkdir(parents=True, exist_ok=True)
    _demo_writer()(inputs / "demo")
    links = {"corpus.jsonl": corpus, "lake": lake}
    for name, target in links.items():
        if target is not None:
            link = inputs / name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(target.resolve())
    print(f"inputs in {inputs}")


def _jobs(inputs: Path, engines: list[str]) -> list[tuple[str, list[str]]]:
    jobs: list[tuple[str, list[str]]] = []
    texts = [("demo", inputs / "demo")]
    if (inputs / "corpus.jsonl").exists():
        texts.append(("corpus", inputs / "corpus.jsonl"))
    for engine in engines:
        for name, path in texts:
            jobs.append((f"{name}-ingest-{engine}", ["ingest", str(path), "--engine", engine]))
            jobs.append((f"{name}-dedup-verified-global-{engine}", ["dedup", str(path), "--engine", engine]))
            jobs.append(
                (
                    f"{name}-dedup-slimpajama-local-{engine}",
                    ["dedup", str(path), "--engine", engine, "--mode", "slimpajama", "--scope", "local"],
                )
            )
        if (inputs / "lake").exists():
            jobs.append((f"lake-contain-{engine}", ["contain", str(inputs / "lake"), "--engine", engine]))
    return jobs


def _digests(folder: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_dir() or path.name in SKIP_NAMES or SKIP_DIRS & set(rel.parts):
            continue
        out[rel.as_posix()] = hashlib.sha256(_masked(path)).hexdigest()
    return out


def snapshot(inputs: Path, outdir: Path, sift_cmd: list[str], engines: list[str], record: Path) -> int:
    if outdir.exists():
        shutil.rmtree(outdir)
    outdir.mkdir(parents=True)
    result: dict[str, dict[str, object]] = {}
    failed = 0
    for name, args in _jobs(inputs, engines):
        target = outdir / name
        proc = subprocess.run([*sift_cmd, *args, "--output", str(target)], capture_output=True, text=True)
        files = _digests(target) if target.exists() else {}
        result[name] = {"returncode": proc.returncode, "files": files}
        print(f"{name}: exit {proc.returncode}, {len(files)} files")
        if proc.returncode != 0:
            failed += 1
            print(proc.stderr[-2000:], file=sys.stderr)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"record: {record}")
    return 1 if failed else 0


def compare(a: Path, b: Path) -> int:
    left, right = json.loads(a.read_text()), json.loads(b.read_text())
    same = differ = 0
    for job in sorted(set(left) | set(right)):
        if job not in left or job not in right:
            print(f"{job}: only in {'the second' if job in right else 'the first'} record")
            differ += 1
            continue
        if left[job]["returncode"] != right[job]["returncode"]:
            print(f"{job}: exit {left[job]['returncode']} vs {right[job]['returncode']}")
            differ += 1
        files_a, files_b = left[job]["files"], right[job]["files"]
        for rel in sorted(set(files_a) | set(files_b)):
            if files_a.get(rel) == files_b.get(rel):
                same += 1
            else:
                differ += 1
                print(
                    f"{job}/{rel}: {'differs' if rel in files_a and rel in files_b else 'missing on one side'}"
                )
    print(f"{same} files byte-identical, {differ} differences")
    return 0 if differ == 0 else 1


def _default_sift() -> list[str]:
    exe = shutil.which("sift", path=str(Path(sys.executable).parent))
    return [exe] if exe else ["sift"]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("prepare", help="write the demo inputs (and link a corpus / lake)")
    p.add_argument("inputs", type=Path)
    p.add_argument("--corpus", type=Path)
    p.add_argument("--lake", type=Path)
    s = sub.add_parser("snapshot", help="run every command and record the digests of its outputs")
    s.add_argument("inputs", type=Path)
    s.add_argument("outdir", type=Path)
    s.add_argument("--json", type=Path, required=True, help="where the record goes")
    s.add_argument("--sift-cmd", default=None, help="how to run sift (default: the sift beside this Python)")
    s.add_argument("--engines", default="polars", help="comma-separated: polars,spark")
    c = sub.add_parser("compare", help="compare two records")
    c.add_argument("first", type=Path)
    c.add_argument("second", type=Path)
    args = parser.parse_args()
    if args.verb == "prepare":
        prepare(args.inputs, args.corpus, args.lake)
        return 0
    if args.verb == "snapshot":
        cmd = shlex.split(args.sift_cmd) if args.sift_cmd else _default_sift()
        return snapshot(args.inputs, args.outdir, cmd, args.engines.split(","), args.json)
    return compare(args.first, args.second)


if __name__ == "__main__":
    raise SystemExit(main())
