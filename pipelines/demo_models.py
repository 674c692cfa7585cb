"""A tiny original/pruned causal-LM pair built here from real offline text (no download), for the PASER
degradation scores (paper step 2: capability degradation between an original and a pruned model) in the demo, the
tests and the recovery benchmark.

`train_tiny_lm` trains a byte-level BPE tokenizer and a small GPT-2 on the given texts, so its next-token
distributions are not flat; `magnitude_prune` zeroes the smaller `fraction` of every weight matrix of the
transformer blocks (unstructured magnitude pruning, the paper's simplest pruning); `tiny_lm_pair` saves both as
Hugging Face model folders that `sift select --original --pruned` loads. Needs the `models` extra (torch,
transformers).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def train_tiny_lm(
    texts: Sequence[str],
    *,
    vocab_size: int = 400,
    n_embd: int = 64,
    n_layer: int = 2,
    n_head: int = 2,
    context: int = 48,
    steps: int = 30,
    batch_size: int = 8,
    max_windows: int | None = 32,
    lr: float = 3e-3,
    seed: int = 0,
) -> tuple[Any, Any]:
    """A GPT-2 of `n_layer` blocks and its tokenizer, trained `steps` steps on the first window of `context`
    tokens of each text (texts shorter than that are left out; the first `max_windows` windows, cycled)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(
        list(texts), trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<eos>"])
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>", pad_token="<eos>"
    )
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=512, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    model = GPT2LMHeadModel(config)
    windows = [ids[:context] for ids in tokenizer(list(texts))["input_ids"] if len(ids) >= context]
    if not windows:
        raise ValueError(f"no text has {context} tokens to train on")
    data = torch.tensor(windows[:max_windows])
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for step in range(steps):
        start = (step * batch_size) % len(data)
        rows = data[start : start + batch_size]
        loss = model(input_ids=rows, labels=rows).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    return model, tokenizer


def magnitude_prune(model: Any, fraction: float = 0.5) -> Any:
    """Zero the smallest `fraction` (by magnitude) of every weight matrix of the transformer blocks, in place."""
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2 and name.startswith("transformer.h."):
                cut = p.abs().flatten().kthvalue(max(1, int(p.numel() * fraction))).values
                p[p.abs() <= cut] = 0.0
    return model


def tiny_lm_pair(
    texts: Sequence[str], root: Path, *, fraction: float = 0.5, **train: Any
) -> tuple[Path, Path]:
    """Train a tiny LM on `texts`, save it as `root/original` and its magnitude-pruned copy as `root/pruned`."""
    model, tokenizer = train_tiny_lm(texts, **train)
    original, pruned = Path(root) / "original", Path(root) / "pruned"
    model.save_pretrained(original)
    tokenizer.save_pretrained(original)
    magnitude_prune(model, fraction)
    model.save_pretrained(pruned)
    tokenizer.save_pretrained(pruned)
    return original, pruned
