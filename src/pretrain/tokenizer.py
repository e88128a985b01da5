"""Train a byte-level BPE tokenizer on the corpus, or take an existing one from a path.

Byte-level BPE (GPT-2, RoBERTa) needs no unknown token: every byte is in the base alphabet.
Special tokens get the first ids, pad=0, bos=1, eos=2, as in Llama's SentencePiece vocabulary
(BOS=1, EOS=2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from pretrain.config import TokenizerConfig
from pretrain.errors import ConfigError
from pretrain.io import atomic_path, count_rows, iter_batches


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
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=cfg.bos_token, eos_token=cfg.eos_token,
        pad_token=cfg.pad_token, clean_up_tokenization_spaces=False,
    )


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """Load a Hugging Face tokenizer from a local folder (or a hub id when online)."""
    try:
        tok = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"tokenizer.path: cannot load a tokenizer from {str(path)!r} "
                          f"({str(exc).splitlines()[0]})") from None
    if tok.eos_token_id is None:
        raise ConfigError(f"tokenizer.path: {path} has no end-of-sequence token")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token  # only used to pad batches in evaluation
    return tok


def build_tokenizer(cfg: TokenizerConfig, corpus: Path, out_dir: Path,
                    base_model: str | None = None) -> dict[str, Any]:
    """Train (or copy) the tokenizer into ``out_dir`` in Hugging Face format; return a report.

    When the model starts from a pretrained ``base_model``, its own tokenizer is the only one
    that fits its embeddings, so it is taken whatever this section says.
    """
    if base_model:
        if cfg.path and cfg.path != base_model:
            raise ConfigError(f"params.yaml: tokenizer.path: {cfg.path!r} conflicts with model.base "
                              f"{base_model!r}, whose own tokenizer a pretrained model needs; "
                              "set tokenizer.path: null")
        tok = load_tokenizer(base_model)
        origin = base_model
    elif cfg.path:
        tok = load_tokenizer(cfg.path)
        origin = cfg.path
    else:
        def texts() -> Iterator[str]:
            for batch in iter_batches(corpus, columns=["text"], batch_size=256):
                yield from batch.column(0).to_pylist()

        tok = train_bpe(cfg, texts(), length=count_rows(corpus))
        origin = "trained"
    with atomic_path(out_dir) as tmp:
        tok.save_pretrained(str(tmp))
    return {"origin": origin, "vocab_size": len(tok), "bos_token_id": tok.bos_token_id,
            "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
