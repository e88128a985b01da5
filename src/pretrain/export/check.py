"""Each exported GGUF file read back by real readers and compared with the model it came from.

transformers (the reader behind ``model.base: <file>.gguf``) dequantizes the file to float32;
its logits on the fixed prompts (``evaluate.prompts``, BOS first, as pack writes documents) are
compared with the Hugging Face model's (largest absolute difference), its greedy continuations
token by token, and its perplexity on the first validation batches. When llama-cpp-python is
installed, llama.cpp itself loads each file too: its tokenization of the prompts must equal the
Hugging Face tokenizer's and its greedy tokens are compared with the transformers ones.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from pretrain.bases import load_base
from pretrain.runtime import validation_loss
from pretrain.tokens.tokenizer import encode_texts

LOGIT_TOLERANCE = 1e-2
"""Largest absolute logit difference accepted for an unquantized (F32, F16, BF16) file."""


def prompt_ids(tokenizer, prompts: list[str]) -> list[list[int]]:
    """Each prompt's ids as the model saw text in training: BOS, then the text's tokens."""
    head = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return [head + ids for ids in encode_texts(tokenizer, prompts)]


@torch.no_grad()
def greedy(model, ids: list[int], new_tokens: int) -> list[int]:
    """``new_tokens`` argmax continuations of ``ids``: no repetition penalty, no sampling, and
    no stop at EOS (llama.cpp's generator does not stop either; suppressing EOS would differ)."""
    x = torch.tensor([ids])
    for _ in range(new_tokens):
        x = torch.cat([x, model(x).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return x[0, len(ids):].tolist()


@torch.no_grad()
def max_logit_difference(model, reference, prompts: list[list[int]]) -> float:
    """Largest absolute difference of the two models' float32 logits over every prompt position."""
    worst = 0.0
    for ids in prompts:
        x = torch.tensor([ids])
        worst = max(worst, (model(x).logits - reference(x).logits).abs().max().item())
    return worst


def agreement(tokens: list[list[int]], reference: list[list[int]]) -> dict[str, int]:
    """How far two greedy decodings agree: tokens equal up to the first difference of each
    prompt, out of all, and the prompts whose continuations are identical."""
    same = 0
    for a, b in zip(tokens, reference):
        same += next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return {"tokens_agreeing": same, "tokens": sum(len(b) for b in reference),
            "prompts_identical": sum(a == b for a, b in zip(tokens, reference)), "prompts": len(reference)}


def reference_scores(reference, tokenizer, prompts: list[str], rows, new_tokens: int, batches: int,
                     batch_size: int = 8) -> dict[str, Any]:
    """What every exported file is compared with, computed once per export: the Hugging Face
    model's greedy tokens per prompt and its perplexity on ``batches`` batches of ``rows``."""
    return {"tokens": [greedy(reference, p, new_tokens) for p in prompt_ids(tokenizer, prompts)],
            "perplexity": validation_loss(reference, rows, batch_size, batches, torch.device("cpu"),
                                          None)["perplexity"]}


def check_file(path: Path, reference, tokenizer, prompts: list[str], rows, new_tokens: int,
               batches: int, batch_size: int = 8,
               baseline: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[list[int]]]:
    """Read ``path`` through transformers and compare it with ``reference`` (the Hugging Face
    model, float32, eval mode): ``max_abs_logit_diff``, greedy ``agreement`` on ``new_tokens``
    tokens per prompt, and perplexity of both on ``batches`` batches of ``rows`` (packed
    (rows, seq_len) int validation rows) with the gap in percent. ``baseline``: the reference's
    ``reference_scores``, when several files share them (computed here otherwise). Returns that
    and the file's greedy tokens per prompt. ConfigError if transformers cannot read the file."""
    baseline = baseline or reference_scores(reference, tokenizer, prompts, rows, new_tokens, batches, batch_size)
    model = load_base(str(path), key=f"export: {path.name}").eval()
    ids = prompt_ids(tokenizer, prompts)
    tokens = [greedy(model, p, new_tokens) for p in ids]
    mine = validation_loss(model, rows, batch_size, batches, torch.device("cpu"), None)["perplexity"]
    return {"max_abs_logit_diff": max_logit_difference(model, reference, ids),
            "greedy": agreement(tokens, baseline["tokens"]),
            "perplexity": mine, "perplexity_model": baseline["perplexity"],
            "perplexity_gap_percent": 100 * (mine / baseline["perplexity"] - 1)}, tokens


def llama_cpp_check(path: Path, tokenizer, prompts: list[str], transformers_tokens: list[list[int]],
                    new_tokens: int) -> dict[str, Any]:
    """Load ``path`` in llama.cpp (llama-cpp-python) and compare its tokenization of the prompts
    with the Hugging Face tokenizer's, and its greedy tokens with ``transformers_tokens`` (the
    same file's greedy tokens in transformers). Returns ``{"skipped": why}`` when
    llama-cpp-python is not installed."""
    try:
        import llama_cpp
    except ImportError:
        return {"skipped": 'llama-cpp-python is not installed (pip install llama-cpp-python)'}
    ids = prompt_ids(tokenizer, prompts)
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=max(len(p) for p in ids) + new_tokens + 8,
                          n_threads=os.cpu_count() or 1, verbose=False, seed=0)
    tokenized = [llm.tokenize(p.encode("utf-8"), add_bos=True, special=False) for p in prompts]
    tokens = []
    for prompt in ids:
        llm.reset()
        out = []
        for token in llm.generate(prompt, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0):
            out.append(int(token))
            if len(out) == new_tokens:
                break
        tokens.append(out)
    llm.close()
    return {"version": llama_cpp.__version__,
            "tokenization_identical": sum(a == b for a, b in zip(tokenized, ids)), "prompts": len(ids),
            "greedy": agreement(tokens, transformers_tokens)}
