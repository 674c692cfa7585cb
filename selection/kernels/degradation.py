"""PASER step 2, the capability degradation score (CDS) of each sample from an original and a pruned causal LM.

Each sample is fed teacher-forced (prompt = instruction and input, then the response) to both models; at every
response token the two next-token distributions P (original) and Q (pruned) are compared by the Jensen-Shannon
divergence JSD = ½ KL(P‖M) + ½ KL(Q‖M), M = ½(P + Q), computed from log-probabilities with logsumexp (natural log,
so 0 <= JSD <= ln 2, and no NaN where a probability underflows); the sample's score is the mean over its response
tokens. Models are Hugging Face causal LMs loaded from local folders (no download); samples are batched by
length and padded on the right. Imports torch and transformers only when called.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sift.pipelines.core.errors import InputError


def prompt_text(instruction: str, input_text: str | None) -> str:
    """The prompt a sample is scored with: the instruction, then its input when there is one."""
    return f"{instruction}\n\n{input_text}\n\n" if input_text else f"{instruction}\n\n"


def token_jsd(logp: Any, logq: Any) -> Any:
    """Per-position JSD (natural log) of two tensors of log-probabilities over the last axis."""
    import torch

    logm = torch.logaddexp(logp, logq) - math.log(2.0)

    def kl_to_m(logx: Any) -> Any:
        # a token of probability 0 adds 0 (not 0·(-inf) = NaN); logm is finite wherever logx is
        return torch.where(torch.isneginf(logx), 0.0, logx.exp() * (logx - logm)).sum(-1)

    return (0.5 * (kl_to_m(logp) + kl_to_m(logq))).clamp_min(0.0)


# class names of the Hugging Face models that predict the next token
CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")


@dataclass
class CausalLM:
    """A causal LM and its tokenizer, loaded from a local folder."""

    path: str
    model: Any
    tokenizer: Any


def load_causal_lm(path: str | os.PathLike[str], option: str) -> CausalLM:
    """The causal LM at `path` (offline); an `InputError` naming `option` when it is not one."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise InputError(
            f"{option} {path}: not a folder (a Hugging Face causal LM saved with save_pretrained)"
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        config = AutoConfig.from_pretrained(path, local_files_only=True)
        saved_as = list(getattr(config, "architectures", None) or [])
        if saved_as and not any(a.endswith(CAUSAL_SUFFIXES) for a in saved_as):
            # an encoder (say BERT) would load with a freshly initialised LM head: refuse it instead
            raise ValueError(f"it was saved as {', '.join(saved_as)}")
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as exc:  # transformers raises many types for a folder that is not a causal LM
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"{option} {path}: not a Hugging Face causal language model ({first[:200]})"
        ) from exc
    model.eval()
    return CausalLM(path, model, tokenizer)


def encode(
    tokenizer: Any, prompts: Sequence[str], responses: Sequence[str], max_tokens: int
) -> list[tuple[list[int], int]]:
    """Token ids of each prompt + response (at most `max_tokens`, the prompt's head cut first when the two do not
    fit: at least half the tokens go to the response) and the index of the first response token."""
    out = []
    for prompt, response in zip(prompts, responses, strict=True):
        p = tokenizer(prompt, add_special_tokens=True)["input_ids"]
        r = tokenizer(response, add_special_tokens=False)["input_ids"]
        if len(p) + len(r) > max_tokens:
            keep_p = max(1, min(len(p), max_tokens - min(len(r), max_tokens // 2)))
            p = p[len(p) - keep_p :]
            r = r[: max_tokens - keep_p]
        out.append((p + r, len(p)))
    return out


def score_pairs(
    original: CausalLM,
    pruned: CausalLM,
    prompts: Sequence[str],
    responses: Sequence[str],
    *,
    max_tokens: int = 256,
    batch_size: int = 8,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean response-token JSD of each sample (NaN where the response has no token) and its token count
    (prompt + response, as scored). `progress(n)` is called after each batch with the samples done."""
    import torch

    if original.model.config.vocab_size != pruned.model.config.vocab_size:
        raise InputError(
            f"--original {original.path} and --pruned {pruned.path} have different vocabularies "
            f"({original.model.config.vocab_size} vs {pruned.model.config.vocab_size} tokens)"
        )
    context = getattr(original.model.config, "max_position_embeddings", None) or getattr(
        original.model.config, "n_positions", None
    )
    if context:
        max_tokens = min(max_tokens, int(context))  # a longer sequence has no position embedding
    encoded = encode(original.tokenizer, prompts, responses, max_tokens)
    n = len(encoded)
    jsd = np.full(n, np.nan, dtype=np.float64)
    tokens = np.array([len(ids) for ids, _ in encoded], dtype=np.int64)
    order = np.argsort(tokens, kind="stable")  # batches of similar length pad little
    pad = original.tokenizer.pad_token_id
    pad = pad if pad is not None else (original.tokenizer.eos_token_id or 0)
    done = 0
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            rows = order[start : start + batch_size]
            width = int(tokens[rows].max())
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            # target t is predicted at position t - 1; it counts when t is a response token
            target = torch.zeros((len(rows), width), dtype=torch.bool)
            for j, row in enumerate(rows):
                seq, first = encoded[row]
                ids[j, : len(seq)] = torch.tensor(seq, dtype=torch.long)
                mask[j, : len(seq)] = 1
                target[j, first : len(seq)] = True
            logp = torch.log_softmax(original.model(input_ids=ids, attention_mask=mask).logits.float(), -1)
            logq = torch.log_softmax(pruned.model(input_ids=ids, attention_mask=mask).logits.float(), -1)
            per_token = token_jsd(logp[:, :-1], logq[:, :-1])
            counted = target[:, 1:]
            total = (per_token * counted).sum(-1)
            count = counted.sum(-1)
            for j, row in enumerate(rows):
                if int(count[j]) > 0:
                    jsd[row] = float(total[j]) / int(count[j])
            done += len(rows)
            if progress is not None:
                progress(done)
    return jsd, tokens
