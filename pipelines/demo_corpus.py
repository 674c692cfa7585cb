"""Demo corpus: real text that nobody on the project wrote and that every machine has offline.

Three sources, all shipped by Python itself or by the packages Sift installs from PyPI:
- `python_docs`: the Python reference and library help topics that `pydoc` ships (`pydoc_data.topics`), one
  document per section;
- `stdlib_docstrings`: docstrings of modules, classes and functions in the standard library's source files;
- `package_docs`: the README long descriptions (METADATA) and LICENSE/NOTICE files of the installed distributions,
  which repeat licence texts almost verbatim across packages: natural near-duplicates.

`write_demo_inputs` also adds a small, labelled set of injected cases (cross-source copies with edits, exact
copies, short texts and unreadable lines) so the demo shows every reason and the quarantine.

`write_demo_tables` derives the demo's tables for R2D2 containment from the ingested documents: per-source subsets,
projections, a shuffled copy, an int->float variant, a near miss and a CSV, with known containments among them.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata as md
import random
import re
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from sift.pipelines.core.atomic import atomic_path, write_parquet, write_text

SOURCES = ("python_docs", "stdlib_docstrings", "package_docs")
MIN_CHARS = 200


def _python_docs() -> Iterator[tuple[str, str]]:
    from pydoc_data.topics import topics

    for topic in sorted(topics):
        sections = re.split(r"\n(?=[^\n]+\n[*=\-]{3,}\n)", topics[topic])
        for i, section in enumerate(sections):
            text = section.strip()
            if len(text) >= MIN_CHARS:
                yield f"{topic}#{i}", text


def _stdlib_docstrings() -> Iterator[tuple[str, str]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = ("site-packages", "test", "tests", "idlelib", "lib2to3", "__pycache__", "turtledemo")
    files = sorted(
        p for p in root.rglob("*.py") if not any(part in skip for part in p.relative_to(root).parts)
    )
    for path in files:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        rel = path.relative_to(root).as_posix()
        nodes: list[tuple[str, ast.AST]] = [("", tree)]
        while nodes:
            prefix, node = nodes.pop(0)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node, clean=True)
                name = prefix if isinstance(node, ast.Module) else f"{prefix}.{node.name}".lstrip(".")
                if doc and len(doc) >= MIN_CHARS:
                    yield f"{rel}:{name or '<module>'}", doc
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                        nodes.append((name, child))


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(extras: set[str]) -> set[str]:
    """Canonical names of the installed distributions that Sift's requirements with `extras` pull in."""
    from packaging.requirements import Requirement

    found: set[str] = set()
    todo: list[tuple[str, set[str]]] = [("sift", extras)]
    while todo:
        name, wanted = todo.pop()
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is not None and not any(
                req.marker.evaluate({"extra": extra}) for extra in ({""} | wanted)
            ):
                continue
            key = _canonical(req.name)
            if key not in found:
                found.add(key)
                todo.append((req.name, set(req.extras)))
    return found


def _package_docs() -> Iterator[tuple[str, str]]:
    # The model stack of the `models` extra (torch and what it brings) ships hundreds of third-party licence files;
    # leaving it out keeps the corpus the same whether that extra is installed or not.
    models_only = _closure({"models"}) - _closure({"spark", "dev"})
    dists = sorted(md.distributions(), key=lambda d: (d.metadata["Name"] or "").lower())
    seen: set[str] = set()
    for dist in dists:
        name = (dist.metadata["Name"] or "").lower()
        if not name or name in seen or _canonical(name) in models_only:
            continue
        seen.add(name)
        body = dist.metadata.get_payload() if hasattr(dist.metadata, "get_payload") else None
        description = body or dist.metadata.get("Description") or ""
        if isinstance(description, str) and len(description.strip()) >= MIN_CHARS:
            yield f"{name}:README", description.strip()
        for file in sorted(dist.files or [], key=str):
            fname = file.name.upper()
            if fname.startswith(("LICENSE", "LICENCE", "COPYING", "NOTICE", "AUTHORS")):
                try:
                    text = file.locate().read_text(encoding="utf-8").strip()
                except (OSError, UnicodeDecodeError):
                    continue
                if len(text) >= MIN_CHARS:
                    yield f"{name}:{file.as_posix()}", text


_GENERATORS = {
    "python_docs": _python_docs,
    "stdlib_docstrings": _stdlib_docstrings,
    "package_docs": _package_docs,
}


def real_documents(max_per_source: int | None = None) -> pa.Table:
    """Real documents (`id`, `source`, `text`) from the three offline sources, in a stable order."""
    ids: list[str] = []
    sources: list[str] = []
    texts: list[str] = []
    for source in SOURCES:
        for n, (key, text) in enumerate(_GENERATORS[source]()):
            if max_per_source is not None and n >= max_per_source:
                break
            ids.append(f"{source}/{key}")
            sources.append(source)
            texts.append(text)
    return pa.table({"id": ids, "source": sources, "text": texts})


def _edit(text: str, rng: random.Random, fraction: float) -> str:
    """Replace a fraction of the words, as a light copy-edit would."""
    words = text.split(" ")
    for i in rng.sample(range(len(words)), k=max(1, int(len(words) * fraction))):
        words[i] = hashlib.blake2b(words[i].encode(), digest_size=3).hexdigest()
    return " ".join(words)


def write_demo_inputs(
    folder: str | Path, *, max_per_source: int | None = 400, seed: int = 0
) -> dict[str, Path]:
    """Write one JSONL file per source into `folder`, with labelled injected cases; return source -> path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    docs = real_documents(max_per_source).to_pylist()
    rng = random.Random(seed)
    by_source: dict[str, list[dict]] = {s: [] for s in SOURCES}
    for d in docs:
        by_source[d["source"]].append(d)
    injected: dict[str, list[bytes]] = {s: [] for s in SOURCES}
    for i, src in enumerate(SOURCES):
        other = SOURCES[(i + 1) % len(SOURCES)]
        originals = [d for d in by_source[src] if len(d["text"]) > 600]
        for j, d in enumerate(rng.sample(originals, k=min(10, len(originals)))):
            record = {"id": f"{other}/injected-copy-{src}-{j}", "source": other, "injected": "near_copy"}
            record["text"] = _edit(d["text"], rng, 0.02) if j % 2 else d["text"]
            injected[other].append(orjson.dumps(record))
        injected[src].append(
            orjson.dumps({"id": f"{src}/injected-short", "source": src, "text": "too short"})
        )
    # Unreadable lines, so the demo shows the quarantine: a cut record and a record without text.
    injected["python_docs"].append(b'{"id": "python_docs/injected-broken", "text": "cut in the mid')
    injected["python_docs"].append(b'{"id": "python_docs/injected-no-text", "source": "python_docs"}')
    paths = {}
    for src in SOURCES:
        path = folder / f"{src}.jsonl"
        lines = [orjson.dumps(d) for d in by_source[src]] + injected[src]
        path.write_bytes(b"\n".join(lines) + b"\n")
        paths[src] = path
    return paths


def write_demo_tables(documents: pa.Table, folder: str | Path) -> list[str]:
    """Derived tables of the demo documents (`id`, `source`, `text`) with known containment, written under
    `folder` (the demo's lake tables); returns the files written."""
    folder = str(folder)
    text = documents.column("text").to_pylist()
    facts = pa.table(
        {
            "id": documents.column("id"),
            "source": documents.column("source"),
            "n_chars": pa.array([len(t) for t in text], pa.int64()),
            "n_words": pa.array([len(t.split()) for t in text], pa.int64()),
            "first_word": pa.array([(t.split() or [""])[0][:40] for t in text]),
        }
    )
    rng = np.random.default_rng(0)
    n = facts.num_rows
    median = float(np.median(facts.column("n_chars").to_numpy())) if n else 0.0
    tables = {"documents": facts, "documents_copy": facts.take(rng.permutation(n))}
    for source in sorted(set(facts.column("source").to_pylist())):
        tables[f"by_source/{source}"] = facts.filter(pc.equal(facts.column("source"), source))
    tables["long_documents"] = facts.filter(pc.greater(facts.column("n_chars"), median))
    tables["word_counts"] = facts.select(["source", "n_words"])
    tables["word_counts_float"] = tables["word_counts"].cast(
        pa.schema([("source", pa.string()), ("n_words", pa.float64())])
    )
    near = tables["long_documents"].slice(0, 40).to_pydict()
    if near["n_words"]:
        near["n_words"][0] += 1
    tables["near_miss"] = pa.table(near, schema=facts.schema)
    written = []
    for name, table in tables.items():
        path = f"{folder}/{name}.parquet"
        write_parquet(table, path)
        written.append(path)
    csv = f"{folder}/sample.csv"
    with atomic_path(csv) as tmp:
        pacsv.write_csv(facts.slice(0, 50).select(["id", "n_chars"]), tmp)
    written.append(csv)
    write_text(
        "Demo tables derived from the ingested documents (not a table: listed as skipped).\n",
        f"{folder}/README.txt",
    )
    return written
