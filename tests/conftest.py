"""Shared fixtures: a tiny real corpus, tokenizer, packed data and model, built offline."""

import os
from pathlib import Path

import pytest

from pretrain.config import ModelConfig, PackConfig, TokenizerConfig
from pretrain.io import DocumentWriter
from pretrain.sources import stdlib_files

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
    from pretrain.tokenizer import train_bpe

    return train_bpe(TokenizerConfig(vocab_size=512), (d["text"] for d in iter_documents(corpus_path)))


@pytest.fixture(scope="session")
def packed_dir(tmp_path_factory, corpus_path, tiny_tokenizer) -> Path:
    from pretrain.pack import pack

    out = tmp_path_factory.mktemp("packed") / "packed"
    pack(PackConfig(seq_len=32, val_fraction=0.2), tiny_tokenizer, corpus_path, out)
    return out


@pytest.fixture(scope="session")
def init_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    from pretrain.model import init_model

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
