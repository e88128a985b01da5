"""General text for continued pretraining (``evaluate.general_text``): read it and pack it
into rows as pack does, so forgetting shows next to the domain gain.

The files are read by the download stage's readers (pretrain.sources.files), one
implementation: the same file types, encodings, JSON lines split at line feeds only (a raw
U+2028 inside a JSON string is text, not a line break), and the same counts of what cannot be
used (records; whole files with their bytes), reported by the evaluate stage."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pretrain.config.sources import SourceConfig
from pretrain.errors import DataError
from pretrain.sources.files import HTML_SUFFIXES, READERS, read_files
from pretrain.sources.records import Skipped, describe_skipped
from pretrain.tokens.tokenizer import document_ids

KEY = "evaluate.general_text"
TEXT_READERS = {suffix: read for suffix, read in READERS.items()
                if suffix not in HTML_SUFFIXES | {".warc", ".warc.gz"}}
"""The download readers but those of HTML and of WARC files (their pages are HTML; WET files,
text only, are read): download keeps HTML raw for the clean stage to extract its text, and
the bits per byte of markup would not measure general text."""


def read_texts(path: str | Path, skipped: Skipped | None = None) -> list[str]:
    """The texts of a general-text evaluation set: every file that ``path`` (a file, folder or
    glob) names, read as ``download.path`` is with its defaults (the ``text`` field of JSON
    lines, JSON, Parquet and CSV records; a plain-text file is one document), in sorted order.
    What cannot be used is counted in ``skipped``. Raises DataError when nothing is left."""
    skipped = Skipped() if skipped is None else skipped
    # a long text file stays one text: cutting it (download's split_above_chars) serves the
    # validation split, and would only add document boundaries to the rows measured here
    cfg = SourceConfig(source="files", path=str(path), id_field=None, metadata_fields=[],
                       split_above_chars=None)
    texts = [doc["text"] for doc in read_files(cfg, skipped, "general_text", KEY, TEXT_READERS)]
    if not texts:
        lost = describe_skipped(skipped.report())
        raise DataError(f"{KEY}: {path}: no text found" + (f" (skipped: {lost})" if lost else ""))
    return texts


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
