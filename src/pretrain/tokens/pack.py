"""Tokenize documents and pack them into fixed-length rows, streaming.

As in the course: each document becomes BOS + ids + EOS, all are concatenated, the stream is
cut into rows of ``seq_len`` tokens and the tail remainder is dropped (no padding, no attention
mask). Unlike the course, a validation split is held out *by document* (chosen by a salted
hash of the document id, so it does not depend on order or on the number of workers): no
validation document's tokens reach training.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from pretrain.config.tokens import PackConfig
from pretrain.errors import DataError
from pretrain.io import atomic_path, count_rows, iter_batches
from pretrain.tokens.heldout import multiple_choice_items, split_at_tokens
from pretrain.tokens.tokenizer import encode_texts

ROWS_SCHEMA = pa.schema([("input_ids", pa.list_(pa.int32()))])


def is_validation(doc_id: str, fraction: float, salt: str) -> bool:
    """Whether a document belongs to the validation split (stable for a given id and salt)."""
    h = hashlib.blake2b(f"{salt}\0{doc_id}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64 < fraction


class RowPacker:
    """Accumulate token ids and write full rows of ``seq_len`` to a Parquet file."""

    def __init__(self, path: Path, seq_len: int, rows_per_group: int = 4096):
        self.writer = pq.ParquetWriter(path, ROWS_SCHEMA, compression="zstd")
        self.seq_len = seq_len
        self.rows_per_group = rows_per_group
        self.buffer: list[np.ndarray] = []
        self.buffered = 0
        self.rows = 0
        self.tokens = 0
        self.documents = 0

    def add(self, ids: np.ndarray) -> None:
        self.buffer.append(ids)
        self.buffered += len(ids)
        self.tokens += len(ids)
        self.documents += 1
        if self.buffered >= self.seq_len * self.rows_per_group:
            self._write(final=False)

    def _write(self, final: bool) -> None:
        stream = np.concatenate(self.buffer) if self.buffer else np.zeros(0, np.int32)
        n_rows = len(stream) // self.seq_len
        if n_rows:
            rows = stream[: n_rows * self.seq_len]
            offsets = np.arange(0, len(rows) + 1, self.seq_len, dtype=np.int32)
            array = pa.ListArray.from_arrays(pa.array(offsets), pa.array(rows, pa.int32()))
            self.writer.write_table(pa.Table.from_arrays([array], schema=ROWS_SCHEMA))
            self.rows += n_rows
        rest = stream[n_rows * self.seq_len:]
        self.buffer, self.buffered = ([rest], len(rest)) if not final else ([], 0)
        if final:
            self.dropped_tail = len(rest)

    def close(self) -> dict[str, int]:
        self._write(final=True)
        self.writer.close()
        return {"documents": self.documents, "tokens": self.tokens, "rows": self.rows,
                "tokens_in_rows": self.rows * self.seq_len, "dropped_tail_tokens": self.dropped_tail}


def pack(cfg: PackConfig, tokenizer, corpus: Path, out_dir: Path) -> dict[str, Any]:
    """Write ``train.parquet``, ``val.parquet``, ``val_docs.jsonl`` (held-out texts) and
    ``val_mc.jsonl`` (a multiple-choice set made from them) into ``out_dir``."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    if eos is None:
        raise DataError("pack: the tokenizer has no end-of-sequence token")
    head = [bos] if bos is not None else []
    # The multiple-choice items fit in one row: half a row of context, a quarter of continuation.
    mc_context, mc_continuation, mc_docs = cfg.seq_len // 2, cfg.seq_len // 4, []
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        train = RowPacker(tmp / "train.parquet", cfg.seq_len)
        val = RowPacker(tmp / "val.parquet", cfg.seq_len)
        with open(tmp / "val_docs.jsonl", "w", encoding="utf-8") as val_docs, \
                tqdm(total=count_rows(corpus), desc="pack", unit="doc") as bar:
            for batch in iter_batches(corpus, columns=["id", "text"], batch_size=cfg.batch_documents):
                ids, texts = batch.column(0).to_pylist(), batch.column(1).to_pylist()
                for doc_id, text, tokens in zip(ids, texts, encode_texts(tokenizer, texts)):
                    row = np.asarray(head + tokens + [eos], dtype=np.int32)
                    if not is_validation(doc_id, cfg.val_fraction, cfg.split_salt):
                        train.add(row)
                        continue
                    val.add(row)
                    val_docs.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n")
                    split = split_at_tokens(tokenizer, text, mc_context, mc_continuation)
                    if split is not None:
                        mc_docs.append((doc_id, *split))
                bar.update(len(ids))
        items = multiple_choice_items(mc_docs)
        with open(tmp / "val_mc.jsonl", "w", encoding="utf-8") as handle:
            for item in items:
                handle.write(json.dumps(item, ensure_ascii=False) + "\n")
        report = {"seq_len": cfg.seq_len, "train": train.close(), "val": val.close(),
                  "val_multiple_choice_items": len(items)}
        for split in ("train", "val"):
            if report[split]["rows"] == 0:
                raise DataError(f"pack: the {split} split has no full row of {cfg.seq_len} tokens "
                                f"({report[split]['documents']} documents, {report[split]['tokens']} "
                                "tokens); use more data, a smaller pack.seq_len or another pack.val_fraction")
    return report
