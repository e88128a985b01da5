"""The ``tokenizer`` and ``pack`` sections of params.yaml."""

from __future__ import annotations

import dataclasses
from typing import Optional

from pretrain.config import positive


@dataclasses.dataclass(frozen=True)
class TokenizerConfig:
    path: Optional[str] = None
    """Use this existing tokenizer (local folder, GGUF file or hub id) instead of training one."""
    vocab_size: int = 8192
    """Vocabulary size of the trained byte-level BPE tokenizer, special tokens included."""
    min_frequency: int = 2
    """A pair must occur this often to be merged."""
    bos_token: str = "<s>"
    """Beginning-of-document token."""
    eos_token: str = "</s>"
    """End-of-document token."""
    pad_token: str = "<pad>"
    """Padding token (used only for batched evaluation and generation)."""
    sample_mb: float = 1024.0
    """Megabytes (10^6 bytes) of UTF-8 text the tokenizer is trained on: documents are taken in
    the order of a seeded hash of their id until this much is taken (the whole corpus when it
    is smaller), so the stage's memory does not grow with the corpus."""
    sample_seed: int = 0
    """Seed of the hash that orders the documents for the sample (another seed, another sample)."""

    def __post_init__(self) -> None:
        positive("sample_mb", self.sample_mb)
        positive("sample_seed", self.sample_seed, zero=True)
        if self.vocab_size < 300:
            raise ValueError("vocab_size: must be at least 300 (256 bytes + special tokens + merges)")
        positive("min_frequency", self.min_frequency)
        if len({self.bos_token, self.eos_token, self.pad_token}) != 3:
            raise ValueError("bos_token, eos_token and pad_token must differ")


@dataclasses.dataclass(frozen=True)
class PackConfig:
    seq_len: int = 256
    """Tokens per packed row (the course uses 32); at most the model's context."""
    val_fraction: float = 0.05
    """Fraction of documents held out for validation (chosen by a hash of the document id)."""
    split_salt: str = "pretrain"
    """Salt of the document hash, to draw a different validation set."""
    batch_documents: int = 512
    """Documents tokenized per batch (bounds memory)."""
    shard_mb: float = 128.0
    """Megabytes (10^6 bytes) of token ids (int32) per row shard of data/packed: a new
    ``train-NNNNN.parquet`` every shard_mb * 10^6 / (4 * seq_len) rows (zstd makes the file
    smaller), and the token store's ``train-NNNNN.bin`` holds the same rows (2 or 4 bytes a
    token); the rows are the same for any value."""

    def __post_init__(self) -> None:
        positive("seq_len", self.seq_len)
        positive("shard_mb", self.shard_mb)
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction: expected a value in (0, 1), got {self.val_fraction}")
        positive("batch_documents", self.batch_documents)
