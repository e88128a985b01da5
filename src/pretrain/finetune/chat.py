"""Supervised fine-tuning (SFT) rows: conversations (pretrain.finetune.chat_data) rendered with a
chat template, tokenized, and labelled so that the loss falls on the assistant's turns only.

A chat template is Jinja, as Hugging Face's are (transformers' ``apply_chat_template``). Its
assistant mask comes from the template's ``{% generation %}`` tags where it has them
(transformers' ``return_assistant_tokens_mask``, as TRL's ``assistant_only_loss`` uses it), else
from rendering each assistant turn's prefix: the conversation up to the turn, rendered with
``add_generation_prompt=True``, must be a prefix of the conversation with the turn, and the turn
is what the longer one adds (its trailing whitespace, the template's separator, left out).

Control tokens. The project's tokenizers save ``split_special_tokens=True``, so that the literal
text ``<s>`` in a document stays text (pretrain.tokens.tokenizer.encode_texts). A rendered
conversation is tokenized with ``split_special_tokens=False`` instead, as transformers and TRL
do, so that the template's own ``<|im_start|>`` is one token; a conversation whose content holds
the text of a special token is refused (``content_has_special_token``), so user text can never
become a control token. A template that does not write BOS gets it prepended, as every
pretraining document starts with it (pretrain.tokens.tokenizer.document_ids), never twice.
"""

from __future__ import annotations

import re
from collections import Counter
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

import numpy as np
from tokenizers import AddedToken
from transformers import PreTrainedTokenizerBase

from pretrain.errors import ConfigError, DataError
from pretrain.finetune.chat_data import BadRecord, Conversation, Message
from pretrain.sources.records import Skipped, describe_skipped

CHATML = (
    "{% if bos_token %}{{ bos_token }}{% endif %}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}"
    "{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""ChatML (OpenAI; Qwen's and TRL's ``clone_chat_template`` default) after the tokenizer's BOS
(which every pretraining document starts with; a template that writes it is what
``pipeline("text-generation")`` renders with, as it adds no special tokens): each message as
``<|im_start|>{role}\\n{content}<|im_end|>\\n``; the assistant's content and its ``<|im_end|>``
inside ``{% generation %}`` tags (the newline after is the template's, not the model's)."""
CHATML_TOKENS = ("<|im_start|>", "<|im_end|>")
TEMPLATES: dict[str, str] = {"chatml": CHATML}
"""Template name -> Jinja chat template."""
TEMPLATE_TOKENS: dict[str, tuple[str, ...]] = {"chatml": CHATML_TOKENS}
"""The special tokens a named template writes, added to a vocabulary that lacks them."""
IGNORE_INDEX = -100
"""The label that PyTorch's cross-entropy (and transformers' causal-LM loss) leaves out."""
GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")
"""transformers' own test for a template with generation tags (chat_template_utils)."""


# --- templates and vocabulary ---------------------------------------------------------------------


def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase, template: str | None,
                      key: str = "finetune.template") -> list[str]:
    """Give ``tokenizer`` its chat template: with None its own, or ChatML when it has none; a
    name from ``TEMPLATES`` sets that one. Adds the template's special tokens that the
    vocabulary lacks (``TEMPLATE_TOKENS``) and returns them (grow the model with
    ``resize_for_template``). Raises ConfigError, one line naming ``key``, for an unknown name."""
    if template is None:
        if tokenizer.chat_template:
            return []
        template = "chatml"
    if template not in TEMPLATES:
        raise ConfigError(f"params.yaml: {key}: unknown chat template {template!r}; one of "
                          f"{', '.join(sorted(TEMPLATES))}, or null for the tokenizer's own")
    tokenizer.chat_template = TEMPLATES[template]
    vocab = tokenizer.get_vocab()
    added = [t for t in TEMPLATE_TOKENS.get(template, ()) if t not in vocab]
    # add_tokens(special_tokens=True) rather than add_special_tokens: the latter's keyword for
    # keeping the existing extra tokens changed its name in transformers 5.
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in added],
                         special_tokens=True)
    return added


def end_of_turn_token(tokenizer: PreTrainedTokenizerBase) -> str:
    """The token that ends an assistant turn under the tokenizer's chat template: ``<|im_end|>``
    for a ChatML template, else the tokenizer's EOS. Raises ConfigError when there is none."""
    template = chat_template(tokenizer)
    if CHATML_TOKENS[1] in template and CHATML_TOKENS[1] in tokenizer.get_vocab():
        return CHATML_TOKENS[1]
    if tokenizer.eos_token is None:
        raise ConfigError("the tokenizer has no end-of-sequence token to end an assistant turn")
    return tokenizer.eos_token


def end_of_turn(tokenizer: PreTrainedTokenizerBase) -> int:
    """The id of ``end_of_turn_token``: where generation after fine-tuning stops."""
    return tokenizer.convert_tokens_to_ids(end_of_turn_token(tokenizer))


def resize_for_template(model: Any, tokenizer: PreTrainedTokenizerBase, end_of_turn: str) -> None:
    """Fit ``model`` (a transformers causal LM) to a tokenizer given a template: when the
    vocabulary grew, new embedding (and output) rows drawn from the old rows' mean and
    covariance (``resize_token_embeddings(mean_resizing=True)``; Hewitt, "Initializing New Word
    Embeddings for Pretrained Language Models", 2021; TRL's ``clone_chat_template`` relies on
    it); and generation stopping at ``end_of_turn`` (``generation_config.eos_token_id``).
    Never shrinks a model whose embedding has more rows than the vocabulary. Raises
    ConfigError when ``end_of_turn`` is not in the vocabulary."""
    if end_of_turn not in tokenizer.get_vocab():
        raise ConfigError(f"the end-of-turn token {end_of_turn!r} is not in the tokenizer's vocabulary")
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids(end_of_turn)


def chat_template(tokenizer: PreTrainedTokenizerBase) -> str:
    """The tokenizer's chat template (its default one, where it has several). Raises ConfigError
    when it has none (``prepare_tokenizer`` gives it one)."""
    try:
        return tokenizer.get_chat_template()
    except ValueError:  # transformers: "Cannot use chat template functions because ..."
        raise ConfigError("the tokenizer has no chat template; set one with prepare_tokenizer") from None


def special_texts(tokenizer: PreTrainedTokenizerBase) -> set[str]:
    """The text of every special token of ``tokenizer``: BOS, EOS, pad, ... and every added
    token marked special (``<|im_start|>``): what no message may contain."""
    found = set(tokenizer.all_special_tokens)
    found |= {t.content for t in tokenizer.added_tokens_decoder.values() if t.special}
    return {t for t in found if t}


# --- rendering with the assistant mask --------------------------------------------------------------


def render(tokenizer: PreTrainedTokenizerBase, messages: list[Message],
           max_length: int) -> tuple[list[int], list[int]]:
    """``full_render`` cut to ``max_length`` tokens. Raises BadRecord as ``full_render`` does,
    and ``no_assistant_tokens_within_max_length`` when the cut leaves no assistant token."""
    ids, mask = full_render(tokenizer, messages)
    return cut(ids, mask, max_length)


def full_render(tokenizer: PreTrainedTokenizerBase,
                messages: list[Message]) -> tuple[list[int], list[int]]:
    """A conversation's token ids under the tokenizer's chat template, BOS first when the
    tokenizer has one, and its assistant mask: 1 on each token of an assistant turn (its
    end-of-turn token included), 0 elsewhere; two lists of one length. Raises BadRecord
    (``content_has_special_token``, ``no_assistant_tokens``), and DataError, one line, for a
    template that does not render or breaks the prefix property (see the module docstring)."""
    specials = special_texts(tokenizer)
    if any(s in m["content"] for m in messages for s in specials):
        raise BadRecord("content_has_special_token")
    tagged = GENERATION_TAG.search(chat_template(tokenizer))
    with _kept_split_flag(tokenizer):
        ids, mask = (_tagged if tagged else _by_prefixes)(tokenizer, messages)
    if not any(mask):
        raise BadRecord("no_assistant_tokens")
    bos = tokenizer.bos_token_id
    if bos is not None and (not ids or ids[0] != bos):
        return [bos, *ids], [0, *mask]
    return list(ids), list(mask)


@contextmanager
def _kept_split_flag(tokenizer: PreTrainedTokenizerBase) -> Iterator[None]:
    """Restore the backend's ``encode_special_tokens`` after a call with
    ``split_special_tokens=False``: transformers (5.x, TokenizersBackend) leaves the backend in
    the last call's state, and code that encodes through ``backend_tokenizer`` directly
    (pretrain.tokens.pack, evaluate.bits_per_byte) would then map ``<s>`` in text to BOS."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    flag = getattr(backend, "encode_special_tokens", None)
    try:
        yield
    finally:
        if flag is not None:
            backend.encode_special_tokens = flag


def cut(ids: list[int], mask: list[int], max_length: int) -> tuple[list[int], list[int]]:
    """``ids`` and ``mask`` cut to ``max_length``. Raises BadRecord
    (``no_assistant_tokens_within_max_length``) when no assistant token is left."""
    if not any(mask[:max_length]):
        raise BadRecord("no_assistant_tokens_within_max_length")
    return ids[:max_length], mask[:max_length]


def _tagged(tokenizer: PreTrainedTokenizerBase, messages: list[Message]) -> tuple[list[int], list[int]]:
    """Ids and mask from transformers (``return_assistant_tokens_mask``), with the template's
    special tokens as tokens: apply_chat_template otherwise tokenizes with the tokenizer's own
    ``split_special_tokens``, which is True for this project's tokenizers."""
    try:
        out = tokenizer.apply_chat_template(
            messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True,
            tokenizer_kwargs={"split_special_tokens": False})
    except Exception as exc:  # jinja2 and the template's raise_exception raise many types
        raise DataError(f"the chat template does not render: {_one_line(exc)}") from None
    return list(out["input_ids"]), list(out["assistant_masks"])


def _by_prefixes(tokenizer: PreTrainedTokenizerBase,
                 messages: list[Message]) -> tuple[list[int], list[int]]:
    """Ids and mask for a template without generation tags: each assistant turn's characters
    are what rendering it adds to the prompt before it (see the module docstring)."""
    text, spans = _text(tokenizer, messages, False), []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt, turn = _text(tokenizer, messages[:i], True), _text(tokenizer, messages[:i + 1], False)
        if not turn.startswith(prompt) or not text.startswith(turn):
            raise DataError(
                f"the chat template breaks the prefix property at message {i}: the conversation "
                f"up to an assistant turn, rendered with add_generation_prompt=True, must be a "
                f"prefix of it rendered with the turn (a template that rewrites earlier turns "
                f"cannot be masked this way); use one with {{% generation %}} tags")
        spans.append((len(prompt), max(len(prompt), len(turn.rstrip()))))
    encoded = tokenizer(text, add_special_tokens=False, split_special_tokens=False,
                        return_offsets_mapping=True)
    return list(encoded["input_ids"]), span_mask(encoded["offset_mapping"], spans)


def _text(tokenizer: PreTrainedTokenizerBase, messages: list[Message], prompt: bool) -> str:
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt)
    except Exception as exc:  # as in _tagged
        raise DataError(f"the chat template does not render: {_one_line(exc)}") from None


def span_mask(offsets: Iterable[tuple[int, int]], spans: list[tuple[int, int]]) -> list[int]:
    """1 for each token (its character ``offsets``) that overlaps one of ``spans`` (character
    ``[start, end)``), as transformers marks a generation span's tokens; 0 for the others."""
    return [int(any(start < e and end > s for s, e in spans if e > s)) for start, end in offsets]


def _one_line(exc: Exception) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


# --- rows -----------------------------------------------------------------------------------------


def sft_rows(tokenizer: PreTrainedTokenizerBase, conversations: list[Conversation],
             max_length: int, skipped: Skipped, counts: Counter | None = None) -> np.ndarray:
    """The training rows of ``conversations``: int64, shape ``(N, 2, max_length)``, one per
    conversation that renders (``render``), in order. Channel 0 holds the token ids, right-padded
    with the tokenizer's pad id (its EOS where it has none); channel 1 the labels: the token id
    where the assistant mask is 1, ``IGNORE_INDEX`` (-100) elsewhere, padding included. Labels
    are not shifted: transformers' causal-LM loss shifts them itself.

    A conversation that is refused is counted in ``skipped`` by its reason, under its id; one cut
    to ``max_length`` is kept and counted in ``counts["truncated"]`` (records), beside
    ``counts["conversations"]``, ``counts["tokens"]`` and ``counts["assistant_tokens"]`` of
    the rows. Raises ConfigError for ``max_length`` < 2, DataError, one line, when the template
    fails on a conversation (naming its id) or when no conversation is left."""
    if max_length < 2:
        raise ConfigError(f"max_length must be at least 2 tokens; got {max_length}")
    counts = Counter() if counts is None else counts
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rows = []
    for conv_id, messages in conversations:
        try:
            ids, mask = full_render(tokenizer, messages)
            kept, kept_mask = cut(ids, mask, max_length)
        except BadRecord as bad:
            skipped.add(bad.reason, conv_id)
            continue
        except DataError as exc:
            raise DataError(f"conversation {conv_id}: {exc}") from None
        counts.update(conversations=1, truncated=int(len(ids) > max_length), tokens=len(kept),
                      assistant_tokens=sum(kept_mask))
        rows.append(sft_row(kept, kept_mask, max_length, pad or 0))
    if not rows:
        lost = describe_skipped(skipped.report()) or "no conversation given"
        raise DataError(f"no conversation left to fine-tune on ({lost})")
    return np.stack(rows)


def sft_row(ids: list[int], mask: list[int], max_length: int, pad: int) -> np.ndarray:
    """One row, int64 ``(2, max_length)``: ids right-padded with ``pad``, and labels (the id
    where ``mask`` is 1, ``IGNORE_INDEX`` elsewhere and on padding)."""
    row = np.full((2, max_length), IGNORE_INDEX, dtype=np.int64)
    row[0] = pad
    row[0, :len(ids)] = ids
    row[1, :len(ids)] = np.where(np.asarray(mask, dtype=bool), ids, IGNORE_INDEX)
    return row
