"""Shared fixtures: a tiny real corpus, tokenizer, packed data and model, built offline."""

import os
from pathlib import Path

import pytest

from pretrain.config.executor import ExecutorConfig
from pretrain.config.model import ModelConfig
from pretrain.config.tokens import PackConfig, TokenizerConfig
from pretrain.io import DocumentWriter
from pretrain.sources.builtin import stdlib_files

# Tests never reach the Hugging Face hub: an unknown name fails at once instead of retrying.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def _stdlib_docs(n: int) -> list[dict]:
    docs = []
    for rel, path in stdlib_files(include_tests=False)[:n]:
        docs.append({"id": rel, "text": path.read_text(encoding="utf-8"), "source": "stdlib",
                     "provenance": rel})
    return docs


@pytest.fixture(scope="session")
def corpus_path(tmp_path_factory) -> Path:
    """A document table of 60 real standard-library files."""
    path = tmp_path_factory.mktemp("corpus") / "documents.parquet"
    with DocumentWriter(path) as writer:
        for doc in _stdlib_docs(60):
            writer.write(doc)
    return path


@pytest.fixture(scope="session")
def tiny_tokenizer(corpus_path):
    from pretrain.io import iter_documents
    from pretrain.tokens.tokenizer import train_bpe

    return train_bpe(TokenizerConfig(vocab_size=512), (d["text"] for d in iter_documents(corpus_path)))


@pytest.fixture(scope="session")
def packed_dir(tmp_path_factory, corpus_path, tiny_tokenizer) -> Path:
    from pretrain.tokens.pack import pack

    root = tmp_path_factory.mktemp("packed")
    pack(PackConfig(seq_len=32, val_fraction=0.2), ExecutorConfig(workers=1), tiny_tokenizer, corpus_path,
         root / "packed", root / "work", root / "tokens")
    return root / "packed"


@pytest.fixture(scope="session")
def tokens_dir(packed_dir) -> Path:
    """The token store pack wrote beside ``packed_dir`` (pretrain.token_store)."""
    return packed_dir.parent / "tokens"


@pytest.fixture(scope="session")
def init_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    from pretrain.model.build import init_model

    out = tmp_path_factory.mktemp("models") / "init"
    init_model(ModelConfig(preset="debug"), tiny_tokenizer, out)
    return out


@pytest.fixture
def write_docs():
    """Write a list of documents (dicts; source/provenance default to "test") to a Parquet table."""

    def write(path: Path, docs: list[dict]) -> Path:
        with DocumentWriter(path) as writer:
            for doc in docs:
                writer.write({"source": "test", "provenance": "test", **doc})
        return path

    return write


def sentencepiece_style(texts: list[str], legacy: bool):
    """A Llama-style tokenizer trained on ``texts``: BPE over "▁"-marked words with byte
    fallback (``<0x00>``..``<0xFF>`` are ordinary vocabulary, ids 3-258), BOS added by
    ``tokenizer(text)``, and the decoder of transformers' LlamaConverter (``▁`` -> space, bytes
    fused, one leading space stripped). ``legacy``: the dummy prefix comes from a normalizer
    (Llama-2's tokenizer.json); otherwise from a Metaspace pre-tokenizer with
    ``prepend_scheme="first"`` (Mistral, newer conversions)."""
    import json

    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")  # "▁word" pieces
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=700, special_tokens=specials,
                                                       limit_alphabet=80, show_progress=False))
    if legacy:
        tok.pre_tokenizer = None
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    state = json.loads(tok.to_str())
    learned = sorted(state["model"]["vocab"].items(), key=lambda item: item[1])
    ordered = specials + [f"<0x{i:02X}>" for i in range(256)] + [t for t, _ in learned if t not in specials]
    state["model"]["vocab"] = {token: i for i, token in enumerate(ordered)}
    state["added_tokens"] = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                              "normalized": False, "special": True} for i, t in enumerate(specials)]
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(state)), unk_token="<unk>",
                                   bos_token="<s>", eos_token="</s>", add_bos_token=True,
                                   clean_up_tokenization_spaces=False)


def trimmed_offsets(tokenizer):
    """A copy of a byte-level tokenizer whose offsets leave out a word's leading space, as
    RoBERTa's and GPT-2's (``processors.ByteLevel(trim_offsets=True)``) do."""
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.post_processor = processors.ByteLevel(trim_offsets=True)
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=tokenizer.bos_token,
                                   eos_token=tokenizer.eos_token, pad_token=tokenizer.pad_token,
                                   clean_up_tokenization_spaces=False)


@pytest.fixture(scope="session", params=["byte_level", "byte_level_trimmed", "sentencepiece_legacy",
                                         "sentencepiece_metaspace"])
def any_tokenizer(request, tiny_tokenizer):
    """Each tokenizer family the pipeline meets: its own byte-level BPE (also with GPT-2 /
    RoBERTa's trimmed offsets), and Llama-style SentencePiece vocabularies (pretrained /
    downscale / upscale bases)."""
    if request.param == "byte_level":
        return tiny_tokenizer
    if request.param == "byte_level_trimmed":
        return trimmed_offsets(tiny_tokenizer)
    texts = [path.read_text(encoding="utf-8") for _, path in stdlib_files(include_tests=False)[:40]]
    return sentencepiece_style(texts, legacy=request.param == "sentencepiece_legacy")
