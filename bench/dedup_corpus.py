"""Benchmark corpus for SlimPajama-style dedup (SlimPajama-DC, a multi-source corpus with natural near-duplicates).

``python bench/dedup_corpus.py OUT.jsonl [--mb 220] [--inject 0.03] [--seed 0]`` writes a JSONL corpus (``id``,
``source``, ``text``) of real text that installs offline, one source per origin:

- ``man``: the system's man pages (``/usr/share/man``, gzip roff source, several languages);
- ``man_gcloud``: the Google Cloud SDK's man pages when installed (thousands of templated, near-identical pages);
- ``debian_doc``: ``/usr/share/doc`` (copyright files, READMEs, Debian changelogs; many near-identical licenses);
- ``python_doc``: pydoc topics and the rst/md/txt/license/METADATA files shipped by Python and installed packages;
- ``python_docstring``: the docstrings of each stdlib module, one document per module;
- ``python_source``: ``.py`` files of the stdlib and of installed packages (vendored copies appear in several
  packages), used last to fill the corpus up to ``--mb``.

Each source but the last contributes a random subset of at most ``--max-source-mb`` (default 50).

Then ``--inject`` (a fraction of the documents) edited copies are added: a random document of at least 400
characters, with a random share of its words (0-12%) replaced, deleted or duplicated, under a random source. Their
pairs go to ``OUT.injected.jsonl`` (``original``, ``copy``, ``edit_rate``) so recall can be measured on pairs whose
origin is known. The output is deterministic for a seed and a machine's installed files.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import json
import os
import random
import sys
import sysconfig
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

MAX_DOC_BYTES = 300_000
DOC_SUFFIXES = {".rst", ".md", ".txt", ".markdown"}
LICENSE_PREFIXES = ("LICENSE", "LICENCE", "COPYING", "NOTICE", "README", "AUTHORS", "CHANGELOG", "CHANGES")


def _walk(root: Path) -> Iterator[Path]:
    """Regular files under ``root`` in a deterministic order, not following symlinks."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if not path.is_symlink() and path.is_file():
                yield path


def _read_text(path: Path) -> str | None:
    """Decode a (possibly gzip) text file, or None when it is binary, too large, or unreadable."""
    try:
        if path.stat().st_size > MAX_DOC_BYTES:
            return None
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    if len(data) > MAX_DOC_BYTES or b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _python_roots() -> list[tuple[str, Path]]:
    """(label, path) of the stdlib and every site-packages directory on this interpreter, deduplicated."""
    roots: list[tuple[str, Path]] = [("stdlib", Path(sysconfig.get_paths()["stdlib"]))]
    seen = {roots[0][1].resolve()}
    for entry in sys.path:
        path = Path(entry)
        if path.name == "site-packages" and path.is_dir() and path.resolve() not in seen:
            seen.add(path.resolve())
            roots.append((f"site{len(roots)}", path))
    return roots


Loader = Callable[[], str | None]


def man_pages(gcloud: bool) -> Iterator[tuple[str, Loader]]:
    """(id, loader) of each man page; ``gcloud`` selects the Google Cloud SDK's templated pages or all others."""
    root = Path("/usr/share/man")
    if root.is_dir():
        for path in _walk(root):
            if path.name.startswith("gcloud") == gcloud:
                yield f"man:{path.relative_to(root)}", partial(_read_text, path)


def debian_docs() -> Iterator[tuple[str, Loader]]:
    """(id, loader) of each text file under /usr/share/doc."""
    root = Path("/usr/share/doc")
    if root.is_dir():
        for path in _walk(root):
            if path.suffix not in {".png", ".jpg", ".gif", ".pdf", ".svg", ".ico"}:
                yield f"debian_doc:{path.relative_to(root)}", partial(_read_text, path)


def python_docs() -> Iterator[tuple[str, Loader]]:
    """(id, loader) of pydoc topics and of documentation/license files shipped with Python and packages."""
    try:
        from pydoc_data.topics import topics
    except ImportError:
        topics = {}
    for name in sorted(topics):
        yield f"python_doc:pydoc/{name}", partial(topics.get, name)
    for label, root in _python_roots():
        for path in _walk(root):
            if "__pycache__" in path.parts:
                continue
            if (
                path.suffix.lower() in DOC_SUFFIXES
                or path.name.upper().startswith(LICENSE_PREFIXES)
                or path.name == "METADATA"
            ):
                yield f"python_doc:{label}/{path.relative_to(root)}", partial(_read_text, path)


def _docstrings(path: Path) -> str | None:
    """All docstrings of a module (module, classes, functions) joined by blank lines."""
    source = _read_text(path)
    try:
        tree = ast.parse(source or "")
    except (SyntaxError, ValueError):
        return None
    parts: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node)
            if doc:
                parts.append(doc)
    return "\n\n".join(parts)


def _py_files(root: Path, stdlib: bool) -> Iterator[Path]:
    for path in _walk(root):
        if path.suffix != ".py" or "__pycache__" in path.parts:
            continue
        if stdlib and ("site-packages" in path.parts or "test" in path.parts):
            continue
        yield path


def python_docstrings() -> Iterator[tuple[str, Loader]]:
    """(id, loader) of each stdlib module's docstrings."""
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in _py_files(root, stdlib=True):
        yield f"python_docstring:{path.relative_to(root)}", partial(_docstrings, path)


def python_sources() -> Iterator[tuple[str, Loader]]:
    """(id, loader) of each .py file of the stdlib and installed packages."""
    for label, root in _python_roots():
        for path in _py_files(root, stdlib=label == "stdlib"):
            yield f"python_source:{label}/{path.relative_to(root)}", partial(_read_text, path)


SOURCES: list[tuple[str, Callable[[], Iterator[tuple[str, Loader]]]]] = [
    ("man", partial(man_pages, False)),
    ("man_gcloud", partial(man_pages, True)),
    ("debian_doc", debian_docs),
    ("python_doc", python_docs),
    ("python_docstring", python_docstrings),
    ("python_source", python_sources),
]


def _edit(text: str, rng: random.Random) -> tuple[str, float]:
    """A copy of ``text`` with a random share (0-12%) of its words replaced, deleted or duplicated."""
    words = text.split(" ")
    rate = rng.uniform(0.0, 0.12)
    out: list[str] = []
    for word in words:
        if rng.random() >= rate:
            out.append(word)
            continue
        op = rng.randrange(3)
        if op == 0:
            out.append(rng.choice(words))
        elif op == 2:
            out.extend([word, word])
    return " ".join(out), rate


def build(out: Path, mb: float, inject: float, seed: int, max_source_mb: float) -> dict:
    """Collect the sources, fill to ``mb`` megabytes (10^6 bytes of UTF-8 text), inject edited copies, write.

    Each source contributes a random subset of its files of at most ``max_source_mb`` (the last one, Python
    sources, fills what is left up to ``mb``); files are listed first and only the chosen ones are read.
    """
    rng = random.Random(seed)
    target = int(mb * 1e6 / (1 + inject))
    docs: list[tuple[str, str, str]] = []
    total = 0
    for k, (source, listing) in enumerate(SOURCES):
        last = k == len(SOURCES) - 1
        cap = target - total if last else min(int(max_source_mb * 1e6), target - total)
        entries = list(listing())
        rng.shuffle(entries)
        taken = 0
        for doc_id, load in entries:
            if taken >= cap:
                break
            text = load()
            if text and text.strip():
                docs.append((doc_id, source, text))
                taken += len(text.encode("utf-8"))
        total += taken
    seen: dict[str, int] = {}
    unique: list[tuple[str, str, str]] = []
    for doc_id, source, text in docs:
        n = seen.get(doc_id, 0)
        seen[doc_id] = n + 1
        unique.append((doc_id if n == 0 else f"{doc_id}#{n}", source, text))
    docs = unique
    source_names = sorted({s for _, s, _ in docs})
    candidates = [d for d in docs if len(d[2]) >= 400]
    injected: list[dict] = []
    for k in range(int(len(docs) * inject)):
        orig_id, _, text = rng.choice(candidates)
        copy, rate = _edit(text, rng)
        copy_source = rng.choice(source_names)
        copy_id = f"{copy_source}:edited/{k:06d}"
        docs.append((copy_id, copy_source, copy))
        injected.append({"original": orig_id, "copy": copy_id, "edit_rate": round(rate, 4)})
    rng.shuffle(docs)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    per_source: dict[str, list[int]] = {}
    with tmp.open("w", encoding="utf-8") as fh:
        for doc_id, source, text in docs:
            fh.write(json.dumps({"id": doc_id, "source": source, "text": text}, ensure_ascii=False) + "\n")
            stat = per_source.setdefault(source, [0, 0])
            stat[0] += 1
            stat[1] += len(text.encode("utf-8"))
    tmp.replace(out)
    truth = out.with_name(out.name.removesuffix(".jsonl") + ".injected.jsonl")
    truth.write_text("".join(json.dumps(row) + "\n" for row in injected))
    return {
        "path": str(out),
        "documents": len(docs),
        "file_mb": round(out.stat().st_size / 1e6, 1),
        "injected_pairs": len(injected),
        "sources": {
            s: {"documents": n, "text_mb": round(b / 1e6, 1)} for s, (n, b) in sorted(per_source.items())
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--mb", type=float, default=220.0, help="target size in MB of text (default 220)")
    parser.add_argument(
        "--inject", type=float, default=0.03, help="fraction of edited copies to add (default 0.03)"
    )
    parser.add_argument("--max-source-mb", type=float, default=50.0, help="cap per source in MB (default 50)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps(build(args.output, args.mb, args.inject, args.seed, args.max_source_mb), indent=2))


if __name__ == "__main__":
    main()
