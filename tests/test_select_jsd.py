"""PASER capability degradation scores (JSD between an original and a pruned causal LM), on a tiny model built
from a config (no download, sift.pipelines.demo_models): a BPE tokenizer and a 2-layer GPT-2 trained a few steps on
real text (standard library docstrings) so its distributions are not flat, saved, copied and magnitude-pruned by
half."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _real_text() -> list[str]:
    from sift.pipelines.demo_corpus import real_documents

    docs = real_documents(max_per_source=150)
    return [t for t, s in zip(docs.column("text").to_pylist(), docs.column("source").to_pylist(), strict=True)
            if s == "stdlib_docstrings"]  # fmt: skip


@pytest.fixture(scope="module")
def model_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    from sift.pipelines.demo_models import tiny_lm_pair

    texts = _real_text()
    original, pruned = tiny_lm_pair(texts[:128], tmp_path_factory.mktemp("tiny-lm"))
    return original, pruned, texts


def test_token_jsd_is_finite_and_bounded_where_probabilities_underflow() -> None:
    from sift.selection.kernels.degradation import token_jsd

    logp = torch.log_softmax(torch.tensor([[0.0, -1000.0, 5.0], [0.0, 0.0, 0.0]]), -1)
    logq = torch.log_softmax(torch.tensor([[-1000.0, 0.0, 5.0], [0.0, 0.0, 0.0]]), -1)
    out = token_jsd(logp, logq)
    assert torch.isfinite(out).all()
    assert 0 < float(out[0]) <= math.log(2) and float(out[1]) == pytest.approx(0.0, abs=1e-7)
    disjoint = token_jsd(torch.log(torch.tensor([1.0, 0.0])), torch.log(torch.tensor([0.0, 1.0])))
    assert float(disjoint) == pytest.approx(math.log(2), rel=1e-6)  # the maximum, not NaN


@pytest.mark.slow
def test_jsd_is_zero_against_itself_and_positive_against_the_pruned_copy(model_pair) -> None:
    from sift.selection.kernels.degradation import load_causal_lm, prompt_text, score_pairs

    original, pruned, texts = model_pair
    prompts = [prompt_text(f"Explain this: {t[:80]}", None) for t in texts[:12]]
    responses = [t[80:300] for t in texts[:12]]
    orig = load_causal_lm(original, "--original")
    same, tokens = score_pairs(orig, load_causal_lm(original, "--pruned"), prompts, responses, batch_size=5)
    apart, _ = score_pairs(orig, load_causal_lm(pruned, "--pruned"), prompts, responses, batch_size=5)
    assert np.all(np.isfinite(same)) and np.all(np.isfinite(apart))
    assert float(same.max()) < 1e-6
    assert float(apart.min()) > 2e-4 and float(apart.mean()) > 100 * max(float(same.max()), 1e-9)
    assert np.all(apart <= math.log(2))
    # batching changes nothing: one sample at a time gives the same scores
    single, _ = score_pairs(
        orig, load_causal_lm(pruned, "--pruned"), prompts[:4], responses[:4], batch_size=1
    )
    assert np.allclose(single, apart[:4], atol=1e-5)
    assert np.all(tokens > 0)


def test_a_folder_that_is_not_a_causal_lm_is_one_clear_error(tmp_path: Path) -> None:
    from transformers import ResNetConfig

    from sift.pipelines.core.errors import InputError
    from sift.selection.kernels.degradation import load_causal_lm

    ResNetConfig().save_pretrained(tmp_path / "vision")
    with pytest.raises(InputError, match="not a Hugging Face causal language model"):
        load_causal_lm(tmp_path / "vision", "--pruned")
    from sift.selection.kernels.embed import default_embedder

    with pytest.raises(InputError, match="saved as BertModel"):  # an encoder, not a next-token model
        load_causal_lm(default_embedder(), "--original")
    with pytest.raises(InputError, match="not a folder"):
        load_causal_lm(tmp_path / "missing", "--original")


@pytest.mark.slow
def test_select_scores_the_model_pair_itself(model_pair, sift_cli, tmp_path: Path) -> None:
    """`sift select --original --pruned`: every sample with a response is scored (finite, positive JSD); one
    without a response is rejected with its reason; a folder that is not a causal LM ends with one line."""
    import orjson
    import pyarrow.parquet as pq

    original, pruned, texts = model_pair
    rows = [
        {"id": f"s{i}", "instruction": f"Explain this passage: {t[:60]}", "output": t[60:260]}
        for i, t in enumerate(texts[:24])
    ] + [{"id": "no-response", "instruction": "Say nothing.", "output": ""}]
    inst = tmp_path / "inst.jsonl"
    inst.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    out = tmp_path / "out"
    proc = sift_cli("select", str(inst), "--output", str(out), "--budget", "6", "--original", str(original),
                    "--pruned", str(pruned), "--clusters", "2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    clusters = pq.read_table(out / "clusters.parquet")
    jsd = np.asarray(clusters.column("jsd").to_pylist())
    assert clusters.num_rows == 24 and np.all(np.isfinite(jsd)) and np.all(jsd > 0)
    rejected = pq.read_table(out / "rejected.parquet").to_pylist()
    assert [(r["id"], r["reason"]) for r in rejected] == [("no-response", "empty response: nothing to score")]
    assert pq.read_table(out / "selected.parquet").num_rows == 6
    bad = sift_cli("select", str(inst), "--output", str(tmp_path / "bad"), "--budget", "6", "--original",
                   str(original), "--pruned", str(tmp_path))  # fmt: skip
    assert bad.returncode == 2 and "not a Hugging Face causal language model" in bad.stderr
    assert "Traceback" not in bad.stderr
