"""The tokenizer as pack runs it: the Rust ``tokenizers.Tokenizer`` of a saved tokenizer folder,
loaded without transformers when that gives the same ids.

Loading through ``AutoTokenizer`` imports transformers, which imports torch: 3.5-6 s of each
pack process's start (``python -X importtime``) and about 0.2 GB of its memory (peak RSS of the
stage's largest process: 414 MB with it, 195 MB without; 2-core Xeon with AVX-512F, no AVX-512
BF16, shared with another job, 2026-11-30), for a stage that only needs ``encode_batch``. The
folder that the tokenizer stage writes (``save_pretrained`` of a ``TokenizersBackend``) holds
the whole encoding in ``tokenizer.json``; transformers changes the backend it loads from there
only to add special tokens it lacks, to patch the pre-tokenizer of Mistral vocabularies (more
than 100,000 ids) and to set ``encode_special_tokens``, truncation and padding
(transformers 5.x, tokenization_utils_tokenizers.py ``TokenizersBackend.__init__``). ``load_fast``
takes such a folder when none of the first two apply and sets the rest as ``encode_texts``
(pretrain.tokens.tokenizer) would: special tokens' text encoded as text, nothing added at
either end, no truncation, no padding. Any other folder (a model's own tokenizer class, a GGUF
file) is loaded by transformers (``load_tokenizer``), as before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from tokenizers import Tokenizer

GENERIC_CLASSES = ("TokenizersBackend", "PreTrainedTokenizerFast")
"""transformers' classes that wrap ``tokenizer.json`` as it is; a model's own class may rebuild it."""
MISTRAL_PATCH_VOCAB = 100_000
"""Above this many ids transformers may replace the pre-tokenizer (``_patch_mistral_regex``)."""


class FastTokenizer:
    """A ``tokenizers.Tokenizer`` with the ids of its BOS and EOS tokens (None when it has none).

    ``ids(texts)`` gives the ids of ``encode_texts``, ``ids_with_offsets(texts)`` those of
    ``encode_with_offsets`` (pretrain.tokens.tokenizer); ``len()`` is the vocabulary with added
    tokens, as ``len()`` of the transformers tokenizer.
    """

    def __init__(self, backend: Tokenizer, bos_token_id: Optional[int], eos_token_id: Optional[int]):
        backend.encode_special_tokens = True  # split_special_tokens=True: "<s>" in a text is text
        backend.no_truncation()
        backend.no_padding()
        self.backend_tokenizer = backend
        self.bos_token_id, self.eos_token_id = bos_token_id, eos_token_id
        self.split_special_tokens = True

    def __len__(self) -> int:
        return self.backend_tokenizer.get_vocab_size(with_added_tokens=True)

    def ids(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text (``encode_batch_fast``: the same ids, without the offsets)."""
        encode = getattr(self.backend_tokenizer, "encode_batch_fast", self.backend_tokenizer.encode_batch)
        return [e.ids for e in encode(texts, add_special_tokens=False)]

    def ids_with_offsets(self, texts: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
        """``(ids, character offsets)`` of each text."""
        return [(e.ids, e.offsets) for e in self.backend_tokenizer.encode_batch(texts, add_special_tokens=False)]


def _token_text(value: Any) -> Optional[str]:
    """A special token as tokenizer_config.json writes it: a string or an AddedToken dict."""
    return value.get("content") if isinstance(value, dict) else value


def load_fast(folder: Path) -> Optional[FastTokenizer]:
    """The tokenizer of ``folder`` without transformers (module docstring), or None when only
    transformers loads it faithfully: no ``tokenizer.json`` or ``tokenizer_config.json``, a
    class other than GENERIC_CLASSES, a special token or added token of the config missing
    from ``tokenizer.json``, or a vocabulary over MISTRAL_PATCH_VOCAB."""
    folder = Path(folder)
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception:  # noqa: BLE001 (OSError, bad JSON, and tokenizers' plain Exception for a bad file)
        return None
    if config.get("tokenizer_class") not in GENERIC_CLASSES or (folder / "special_tokens_map.json").exists() \
            or (folder / "added_tokens.json").exists() or backend.get_vocab_size() > MISTRAL_PATCH_VOCAB:
        return None
    specials = [_token_text(v) for k, v in config.items() if k.endswith("_token") and v is not None]
    specials += [_token_text(v) for v in config.get("added_tokens_decoder", {}).values()]
    specials += [_token_text(v) for k in ("extra_special_tokens", "additional_special_tokens")
                 for v in (config.get(k) or [])]
    added = {token.content for token in backend.get_added_tokens_decoder().values()}
    if not all(isinstance(t, str) and t in added for t in specials):
        return None  # transformers would add it to the vocabulary
    bos, eos = (_token_text(config.get(k)) for k in ("bos_token", "eos_token"))
    return FastTokenizer(backend, backend.token_to_id(bos) if bos else None,
                         backend.token_to_id(eos) if eos else None)
