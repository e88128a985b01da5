"""General text for continued pretraining (``evaluate.general_text``): read it and pack it
into rows as pack does, so forgetting shows next to the domain gain."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from pretrain.errors import ConfigError, DataError
from pretrain.tokens.tokenizer import document_ids


def read_texts(path: str | Path) -> list[str]:
    """Documents of a general-text evaluation set: a JSONL file (``text`` field), a plain-text
    file (one document) or a Parquet file (``text`` column), or a folder of them."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.suffix in READERS) if path.is_dir() else [path]
    if not files or files[0].suffix not in READERS:
        raise ConfigError(f"evaluate.general_text: {path}: expected a .jsonl, .txt or .parquet file "
                          "or a folder of them")
    texts = [text for file in files for text in READERS[file.suffix](file) if text.strip()]
    if not texts:
        raise DataError(f"evaluate.general_text: {path}: no text found")
    return texts


def _jsonl_texts(path: Path) -> list[str]:
    texts = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                texts.append(json.loads(line)["text"])
            except (ValueError, KeyError, TypeError):
                raise DataError(f"{path}:{number}: expected a JSON object with a \"text\" string") from None
    return texts


READERS = {
    ".jsonl": _jsonl_texts,
    ".txt": lambda path: [path.read_text(encoding="utf-8", errors="replace")],
    ".parquet": lambda path: pq.read_table(path, columns=["text"]).column(0).to_pylist(),
}


def text_rows(texts: list[str], tokenizer, seq_len: int) -> np.ndarray:
    """Documents tokenized as pack does (BOS, text, EOS, concatenated) and cut into full rows of
    ``seq_len`` tokens; the last partial row is left out. Returns an (rows, seq_len) int64
    array; DataError when the texts do not fill one row."""
    ids: list[int] = []
    for text in texts:
        ids += document_ids(tokenizer, text)
    rows = len(ids) // seq_len
    if not rows:
        raise DataError(f"evaluate.general_text: {len(ids)} tokens, fewer than one row of {seq_len}")
    return np.asarray(ids[:rows * seq_len], dtype=np.int64).reshape(rows, seq_len)
