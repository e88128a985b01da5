"""Train a byte-level BPE tokenizer on a sample of the corpus, or take an existing one from a path.

Byte-level BPE (GPT-2, RoBERTa) needs no unknown token: every byte is in the base alphabet.
Special tokens get the first ids, pad=0, bos=1, eos=2, as in Llama's SentencePiece vocabulary
(BOS=1, EOS=2).
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pyarrow.compute as pc
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from pretrain.bases import folder_problem, load_failure, split_gguf
from pretrain.errors import ConfigError
from pretrain.io import atomic_path, document_shards, iter_batches

if TYPE_CHECKING:  # annotations only: evaluate and init-model do not read the tokenizer section
    from pretrain.config.tokens import TokenizerConfig


def train_bpe(cfg: TokenizerConfig, texts: Iterator[str], length: int | None = None) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``texts``."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=[cfg.pad_token, cfg.bos_token, cfg.eos_token],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=True,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=length)
    return match_training(PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=cfg.bos_token, eos_token=cfg.eos_token,
        pad_token=cfg.pad_token, clean_up_tokenization_spaces=False,
    ))


def drop_tokens_past_vocab(tok: PreTrainedTokenizerBase) -> None:
    """Remove added tokens whose ids lie past the vocabulary that the tokenizer was read from.

    Every token of a GGUF file is in its vocabulary, but transformers (5.x,
    integrations/gguf/gguf_tokenizer_mapping.py ``byte_level_tokenizer``) reads a byte-level one
    through GPT2Tokenizer, whose default unk_token "<|endoftext|>" is added after the file's last
    id when the file lacks it: a literal "<|endoftext|>" in the corpus would then get an id the
    model has no embedding for.
    """
    backend = tok.backend_tokenizer
    state = json.loads(backend.to_str())
    size = backend.get_vocab_size(with_added_tokens=False)
    kept = [t for t in state["added_tokens"] if t["id"] < size]
    if len(kept) < len(state["added_tokens"]):
        state["added_tokens"] = kept
        # tokenizers cannot remove an added token; swap the backend as transformers' own
        # train_new_from_iterator does.
        tok._tokenizer = Tokenizer.from_str(json.dumps(state))


def load_tokenizer(path: str | Path, key: str = "tokenizer.path") -> PreTrainedTokenizerBase:
    """Load a Hugging Face tokenizer from a local folder or GGUF file (or a hub id when online).

    ``key`` is the params key that named ``path``; errors name it. A ``model.base`` must be a
    whole model (pretrain.bases.folder_problem), so a damaged base stops the tokenizer stage
    instead of the init-model stage after it. ConfigError, one line, for a path that cannot be
    loaded, saying what is wrong with it.
    """
    folder, gguf_file = split_gguf(path, key)
    where = f"params.yaml: {key}: cannot load a tokenizer from {str(path)!r}"
    problem = None if gguf_file else folder_problem(folder, whole_model=key == "model.base")
    if problem:
        raise ConfigError(f"{where}: {problem}")
    try:
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    except Exception as exc:  # transformers, tokenizers and gguf raise many types for bad files
        raise ConfigError(f"{where}: {load_failure(exc, gguf_file and Path(folder) / gguf_file)}") from None
    if gguf_file:
        drop_tokens_past_vocab(tok)
    if tok.eos_token_id is None:
        raise ConfigError(f"params.yaml: {key}: {path} has no end-of-sequence token")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token  # only used to pad batches in evaluation
    return tok


def encode_texts(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> list[list[int]]:
    """Token ids of plain texts, one list per text: nothing added at either end, and the literal
    text of a special token (``<s>`` in a regex group, an HTML ``<s>`` tag) encoded as text.

    Without ``split_special_tokens`` a tokenizer maps the text ``<s>`` to the BOS id even with
    ``add_special_tokens=False`` (transformers ``TokenizersBackend``, tokenizers'
    ``encode_special_tokens``): a document would then hold control tokens its text never had.
    Every place that turns text into ids (pack, evaluation, generation prompts, contamination)
    goes through here, so they all see what training saw.
    """
    if not texts:
        return []  # transformers fails on an empty batch
    return tokenizer(texts, add_special_tokens=False, split_special_tokens=True)["input_ids"]


def encode_with_offsets(tokenizer: PreTrainedTokenizerBase,
                        texts: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
    """``encode_texts`` with each token's character span in its text: ``(ids, offsets)`` per
    text, the ids those of ``encode_texts``. Needs a fast (Rust-backed) tokenizer."""
    if not texts:
        return []
    encoded = tokenizer(texts, add_special_tokens=False, split_special_tokens=True, return_offsets_mapping=True)
    return list(zip(encoded["input_ids"], encoded["offset_mapping"]))


def document_ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """A document as training sees it: BOS (when the tokenizer has one), its ids, EOS."""
    head = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    tail = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    return head + encode_texts(tokenizer, [text])[0] + tail


def match_training(tok: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Make the saved tokenizer encode text the way pack does, for every later user of it
    (``AutoTokenizer`` in lm-eval, a user's own script): the literal text of a special token
    stays text (``split_special_tokens``, saved in tokenizer_config.json), and
    ``tokenizer(text)`` starts with BOS, as every training document does (Llama's convention:
    BOS added, EOS not). A tokenizer that already adds BOS (Llama, Mistral) keeps its own
    post-processor. Returns ``tok``, changed in place.
    """
    tok.split_special_tokens = True
    tok.init_kwargs["split_special_tokens"] = True
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is not None:
        backend.encode_special_tokens = True
    bos = tok.bos_token_id
    if bos is not None and hasattr(type(tok), "add_bos_token"):
        probe = tok("a", add_special_tokens=True)["input_ids"]
        if not probe or probe[0] != bos:
            tok.add_bos_token = True  # TokenizersBackend rebuilds its TemplateProcessing
    return tok


def build_tokenizer(cfg: TokenizerConfig, corpus: Path, out_dir: Path,
                    base_model: str | None = None) -> dict[str, Any]:
    """Train (or copy) the tokenizer into ``out_dir`` in Hugging Face format; return a report.

    A trained tokenizer learns from a sample of ``corpus`` (a folder of document shards, or one
    file) of ``cfg.sample_mb`` of text (``TextSample``; its size is in the report's ``sample``).

    When the model starts from a pretrained ``base_model``, its own tokenizer is the only one
    that fits its embeddings, so it is taken whatever this section says. The report has
    ``warnings`` (one line) when a trained vocabulary came out smaller than ``cfg.vocab_size``
    (``vocabulary_warning``).
    """
    extra: dict[str, Any] = {}
    if base_model:
        if cfg.path and cfg.path != base_model:
            raise ConfigError(f"params.yaml: tokenizer.path: {cfg.path!r} conflicts with model.base "
                              f"{base_model!r}, whose own tokenizer a pretrained model needs; "
                              "set tokenizer.path: null")
        tok = load_tokenizer(base_model, key="model.base")
        origin = base_model
    elif cfg.path:
        tok = load_tokenizer(cfg.path)
        origin = cfg.path
    else:
        sample = TextSample(corpus, max(1, int(cfg.sample_mb * 1e6)), cfg.sample_seed)
        tok = train_bpe(cfg, iter(sample), length=sample.documents)
        origin, extra = "trained", {"sample": sample.report()}
        warning = vocabulary_warning(cfg, len(tok), sample)
        if warning:
            extra["warnings"] = [warning]
    match_training(tok)
    with atomic_path(out_dir) as tmp:
        tok.save_pretrained(str(tmp))
    return {"origin": origin, "vocab_size": len(tok), "bos_token_id": tok.bos_token_id,
            "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id, **extra}


def vocabulary_warning(cfg: TokenizerConfig, learned: int, sample: "TextSample") -> str | None:
    """A one-line warning when BPE learned fewer tokens (``learned``: special tokens, the 256
    bytes and the merges) than ``cfg.vocab_size``; None otherwise.

    The trainer stops merging when no pair of adjacent tokens occurs ``min_frequency`` times
    or more in its text (tokenizers' ``BpeTrainer``), so the vocabulary comes out smaller than
    asked when the text is too small or too repetitive for it. Each remedy named works: more
    text, a lower ``min_frequency``, or asking for the vocabulary it learned (named only when
    params validation would accept it).
    """
    if learned >= cfg.vocab_size:
        return None
    remedies = ["more text" if sample.whole else "more text (a larger tokenizer.sample_mb)"]
    if cfg.min_frequency > 1:
        remedies.append("a lower tokenizer.min_frequency")
    if accepts_vocab_size(cfg, learned):
        remedies.append(f"tokenizer.vocab_size: {learned}")
    *others, last = remedies
    documents = f"{sample.documents} document{'' if sample.documents == 1 else 's'}"
    return (f"tokenizer: learned a vocabulary of {learned} tokens, fewer than tokenizer.vocab_size "
            f"{cfg.vocab_size}: BPE found no more pairs of tokens that occur at least "
            f"tokenizer.min_frequency ({cfg.min_frequency}) times in the {documents} "
            f"({sample.bytes:,} bytes) it trained on; use {', '.join(others) + ' or ' if others else ''}{last}")


def accepts_vocab_size(cfg: TokenizerConfig, vocab_size: int) -> bool:
    """Whether params validation accepts ``vocab_size`` in this section."""
    try:
        dataclasses.replace(cfg, vocab_size=vocab_size)
    except ValueError:
        return False
    return True


def sample_rank(doc_id: str, seed: int) -> int:
    """A document's place in the sample order: a 64-bit blake2b hash of the seed and its id."""
    return int.from_bytes(hashlib.blake2b(f"{seed}\0{doc_id}".encode(), digest_size=8).digest(), "big")


class TextSample:
    """The texts the tokenizer trains on: the documents of ``corpus`` (a folder of document
    shards, or one file) of lowest ``sample_rank`` whose texts add up to ``sample_bytes`` of
    UTF-8, the last one taken whole (the whole corpus when it is smaller); iterated in corpus
    order, as the whole corpus would be. Equal ranks (a repeated id) go by corpus order.

    Which documents are taken depends only on their ids, texts, order and the seed, never on
    how the corpus is sharded. Two passes over the corpus: the first reads ids and text sizes
    and keeps the rank, position and size of the documents taken so far in a heap (memory: the
    sample's documents, not the corpus'); the second yields the texts of the documents taken.
    """

    def __init__(self, corpus: Path, sample_bytes: int, seed: int):
        self.files = document_shards(corpus) if Path(corpus).is_dir() else [Path(corpus)]
        self.seed = seed
        self.corpus_documents = self.corpus_bytes = 0
        heap: list[tuple[int, int, int]] = []  # (-rank, -position, bytes): the last one taken on top
        taken = 0
        for batch in self._batches(["id", "text"]):
            sizes = pc.binary_length(batch.column(1)).to_numpy(zero_copy_only=False).tolist()
            for doc_id, size in zip(batch.column(0).to_pylist(), sizes):
                rank, position = sample_rank(doc_id, seed), self.corpus_documents
                self.corpus_documents += 1
                self.corpus_bytes += size
                if taken >= sample_bytes and rank >= -heap[0][0]:
                    continue  # after the last document needed: never taken
                heapq.heappush(heap, (-rank, -position, size))
                taken += size
                while taken - heap[0][2] >= sample_bytes:  # enough without the last one
                    taken -= heapq.heappop(heap)[2]
        self.whole = len(heap) == self.corpus_documents
        self.last = (-heap[0][0], -heap[0][1]) if heap else (-1, -1)
        self.documents, self.bytes = len(heap), taken

    def _batches(self, columns: list[str]):
        for path in self.files:
            yield from iter_batches(path, columns=columns, batch_size=256)

    def __iter__(self) -> Iterator[str]:
        position = 0
        for batch in self._batches(["text"] if self.whole else ["id", "text"]):
            texts = batch.column(len(batch.columns) - 1).to_pylist()
            if self.whole:
                yield from texts
                continue
            for doc_id, text in zip(batch.column(0).to_pylist(), texts):
                if (sample_rank(doc_id, self.seed), position) <= self.last:
                    yield text
                position += 1

    def report(self) -> dict[str, int]:
        """The sample's documents and bytes of text, and the corpus'."""
        return {"documents": self.documents, "bytes": self.bytes,
                "corpus_documents": self.corpus_documents, "corpus_bytes": self.corpus_bytes}
