"""Each exported GGUF file read back by real readers and compared with the model it came from.

The pass criteria are teacher-forced, on the first validation batches of the token store: the
file's next-token argmax at every position against the Hugging Face model's (top-1 agreement,
llama.cpp's ``llama-perplexity --kl-divergence`` "Same top p") and the relative increase of its
perplexity (llama-perplexity's "Mean PPL(Q)/PPL(base)" less one), with the mean KL divergence
of its next-token distribution from the model's reported beside them. Each position is scored
against the model's own context, so one differing token changes one figure, not everything
after it as in free generation; the per-type thresholds (export.min_top1_agreement,
export.max_perplexity_gap_percent) are chosen from measurements in docs/export.md.

transformers (the reader behind ``model.base: <file>.gguf``) dequantizes the file to float32.
Reported beside the criteria, not required: the largest absolute logit difference on the fixed
prompts (``evaluate.prompts``, BOS first, as pack writes documents) and greedy continuations
token by token. When llama-cpp-python is installed, llama.cpp itself loads each file too: its
tokenization of the prompts must equal the Hugging Face tokenizer's, and its greedy tokens are
compared with the transformers ones.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pretrain.bases import load_base
from pretrain.tokens.tokenizer import encode_texts


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


@torch.no_grad()
def teacher_forced(model, reference, rows, batches: int, batch_size: int = 8) -> dict[str, Any]:
    """``model`` against ``reference`` (both float32 causal LMs, eval mode) on the first
    ``batches`` batches of ``rows`` (packed (rows, seq_len) int validation rows): at each
    position, the next token each predicts given the true context. Returns ``positions``,
    ``top1_agreement`` (fraction where the argmaxes are equal), both perplexities with
    ``perplexity_gap_percent`` = 100 * (PPL(model) / PPL(reference) - 1), and
    ``mean_kl_divergence`` (nats per position, KL(reference || model)): what llama.cpp's
    ``llama-perplexity --kl-divergence`` reports as "Same top p", "Mean PPL(Q)/PPL(base)" and
    "Mean KLD" (tools/perplexity/perplexity.cpp). Both models run on each batch in turn, so
    nothing of vocabulary size outlives a batch: the reference runs again for every file."""
    n = min(len(rows), batches * batch_size)
    same = positions = 0
    nll = nll_reference = kld = 0.0
    for start in range(0, n, batch_size):
        ids = torch.from_numpy(np.asarray(rows[start:min(start + batch_size, n)], dtype=np.int64))
        targets = ids[:, 1:].unsqueeze(-1)
        mine = torch.log_softmax(model(input_ids=ids).logits[:, :-1].float(), dim=-1)
        theirs = torch.log_softmax(reference(input_ids=ids).logits[:, :-1].float(), dim=-1)
        same += (mine.argmax(-1) == theirs.argmax(-1)).sum().item()
        nll -= mine.gather(-1, targets).sum().item()
        nll_reference -= theirs.gather(-1, targets).sum().item()
        kld += torch.nn.functional.kl_div(mine, theirs, log_target=True, reduction="sum").item()
        positions += targets.numel()
    return {"positions": positions, "top1_agreement": same / positions,
            "perplexity": math.exp(nll / positions), "perplexity_model": math.exp(nll_reference / positions),
            "perplexity_gap_percent": 100 * math.expm1((nll - nll_reference) / positions),
            "mean_kl_divergence": kld / positions}


def check_file(path: Path, reference, tokenizer, prompts: list[str], rows, new_tokens: int, batches: int,
               reference_tokens: list[list[int]]) -> tuple[dict[str, Any], list[list[int]]]:
    """Read ``path`` through transformers and compare it with ``reference`` (the Hugging Face
    model, float32, eval mode): ``teacher_forced`` on ``batches`` validation batches of ``rows``
    (the pass criteria), and for information ``max_abs_logit_diff`` on the prompts and the
    ``greedy`` agreement of ``new_tokens`` tokens per prompt with ``reference_tokens`` (the
    reference's, from ``greedy``). Returns that and the file's greedy tokens per prompt.
    ConfigError if transformers cannot read the file."""
    model = load_base(str(path), key=f"export: {path.name}").eval()
    ids = prompt_ids(tokenizer, prompts)
    tokens = [greedy(model, p, new_tokens) for p in ids]
    return {**teacher_forced(model, reference, rows, batches),
            "max_abs_logit_diff": max_logit_difference(model, reference, ids),
            "greedy": agreement(tokens, reference_tokens)}, tokens


def misses(path: Path, kind: str, entry: dict[str, Any], cfg) -> list[str]:
    """What the file ``path`` of type ``kind`` missed, one phrase each naming the figure and the
    threshold's key (``cfg``: pretrain.config.merge.ExportConfig): top-1 agreement below
    ``min_top1_agreement``, a perplexity gap above ``max_perplexity_gap_percent``, or llama.cpp
    tokenizing a prompt differently from the tokenizer. NaN figures (a file whose logits are
    not numbers) miss too. ``entry``: the file's ``transformers`` and ``llama_cpp`` checks."""
    figures, found = entry["transformers"], []
    top1, floor = figures["top1_agreement"], cfg.min_top1_agreement[kind]
    if not top1 >= floor:
        found.append(f"{path}: top-1 agreement {top1:.4f} < {floor} (export.min_top1_agreement.{kind})")
    gap, ceiling = figures["perplexity_gap_percent"], cfg.max_perplexity_gap_percent[kind]
    if not gap <= ceiling:
        found.append(f"{path}: perplexity gap {gap:+.3f}% > {ceiling}% (export.max_perplexity_gap_percent.{kind})")
    cpp = entry["llama_cpp"]
    if "skipped" not in cpp and cpp["tokenization_identical"] < cpp["prompts"]:
        found.append(f"{path}: llama.cpp tokenizes {cpp['prompts'] - cpp['tokenization_identical']} of "
                     f"{cpp['prompts']} evaluate.prompts differently from the tokenizer")
    return found


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
