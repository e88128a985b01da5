"""Tokenize documents and pack them into fixed-length rows, shard by shard.

As in the course: each document becomes BOS + ids + EOS, all are concatenated, the stream is
cut into rows of ``seq_len`` tokens and the tail remainder is dropped (no padding, no attention
mask). Unlike the course, a validation split is held out *by document* (chosen by a salted
hash of the document id, so it does not depend on order, shards or workers): no validation
document's tokens reach training.

Each document shard is one task on the executor (pretrain.executor), which writes its token
streams; one sequential step then cuts the streams, shard after shard, into rows
(pretrain.tokens.rows), so the rows are the same for any sharding of the same documents, and
memory is bounded by a shard (tasks) and a few row groups (the cut), not by the corpus.

The held-out files are ``heldout_docs.jsonl`` and ``heldout_mc.jsonl``, not ``val_*``:
``datasets.load_dataset("parquet", data_dir=...)`` takes every file whose name starts with
``val`` followed by ``-``, ``_`` or ``.`` as part of its validation split
(datasets.data_files.KEYWORDS_IN_FILENAME_BASE_PATTERNS), and fails on a JSON Lines file there.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import shutil
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from pretrain.config.executor import ExecutorConfig
from pretrain.config.tokens import PackConfig
from pretrain.errors import DataError
from pretrain.executor.shards import Shard, run_shards, stage_key, work_folder
from pretrain.io import atomic_path, document_shards, iter_batches, write_json
from pretrain.tokens.encoder import FastTokenizer, load_fast
from pretrain.tokens.heldout import multiple_choice_items, split_at_offsets
from pretrain.tokens.rows import TOKEN_DTYPE, RowShardWriter, TokenFile, read_tokens
from pretrain.token_store import token_dtype, write_manifest

# Not imported here: pretrain.tokens.tokenizer, whose transformers import (and torch's, under it)
# is most of a pack process's start-up; it loads only the tokenizers that need it (encoder.py).

SPLITS = ("train", "val")
HELDOUT_DOCS = "heldout_docs.jsonl"
"""The held-out documents, one ``{"id", "text"}`` per line, in corpus order."""
HELDOUT_MC = "heldout_mc.jsonl"
"""The multiple-choice items made from them (pretrain.tokens.heldout)."""
ENCODE_CHARS = 1 << 22
"""Characters of training text per encode call, at most (a longer document goes alone): the
ids and encodings held at once stay a few tens of MB whatever ``pack.batch_documents`` and the
documents' sizes. Rayon still has every document of the call to spread over the cores."""


def is_validation(doc_id: str, fraction: float, salt: str) -> bool:
    """Whether a document belongs to the validation split (stable for a given id and salt)."""
    h = hashlib.blake2b(f"{salt}\0{doc_id}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64 < fraction


_tokenizers: dict[str, Any] = {}


def tokenizer_for(tokenizer: Any) -> Any:
    """The tokenizer itself, or the one saved in the folder ``tokenizer`` (a path), loaded once
    per process: a shard task receives the folder's path, not a pickled tokenizer."""
    if not isinstance(tokenizer, (str, Path)):
        return tokenizer
    key = str(Path(tokenizer).resolve())
    if key not in _tokenizers:
        _tokenizers[key] = load_fast(Path(key))
        if _tokenizers[key] is None:
            from pretrain.tokens.tokenizer import load_tokenizer

            _tokenizers[key] = load_tokenizer(tokenizer)
    return _tokenizers[key]


def encode_ids(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """The ids of ``texts`` as ``encode_texts`` (pretrain.tokens.tokenizer) gives them."""
    if isinstance(tokenizer, FastTokenizer):
        return tokenizer.ids(texts)
    from pretrain.tokens.tokenizer import encode_texts

    return encode_texts(tokenizer, texts)


def encode_ids_with_offsets(tokenizer: Any, texts: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
    """The ids and character offsets of ``texts``, as ``encode_with_offsets`` gives them."""
    if isinstance(tokenizer, FastTokenizer):
        return tokenizer.ids_with_offsets(texts)
    from pretrain.tokens.tokenizer import encode_with_offsets

    return encode_with_offsets(tokenizer, texts)


def text_chunks(texts: list[str], limit: int) -> Iterator[list[str]]:
    """``texts`` in order, in runs of at most ``limit`` characters (a longer text alone)."""
    start, size = 0, 0
    for end, text in enumerate(texts):
        if size and size + len(text) > limit:
            yield texts[start:end]
            start, size = end, 0
        size += len(text)
    if start < len(texts):
        yield texts[start:]


def document_stream(head: list[int], documents: list[list[int]], tail: list[int]) -> np.ndarray:
    """``head + ids + tail`` of each of ``documents``, concatenated: one int32 array (TOKEN_DTYPE),
    filled straight from the id lists (no per-document array or copy)."""
    count = sum(map(len, documents)) + len(documents) * (len(head) + len(tail))
    pieces = itertools.chain.from_iterable((head, ids, tail) for ids in documents)
    return np.fromiter(itertools.chain.from_iterable(pieces), dtype=TOKEN_DTYPE, count=count)


def tokenizer_digest(tokenizer: Any) -> str:
    """A digest of how ``tokenizer`` encodes (its serialized backend and special tokens), which
    keys the work folder: shards tokenized by another tokenizer are never reused."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = [backend.to_str(), tokenizer.bos_token_id, tokenizer.eos_token_id,
                 bool(getattr(tokenizer, "split_special_tokens", False))]
        data = json.dumps(state).encode()
    else:  # a plain Python tokenizer (tests): its class and attributes
        data = f"{type(tokenizer).__module__}.{type(tokenizer).__qualname__}:{vars(tokenizer)!r}".encode()
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def vocabulary_size(tokenizer: Any) -> int:
    """Ids the tokenizer can produce (its vocabulary with added tokens): ``len(tokenizer)``."""
    return len(tokenizer) if hasattr(tokenizer, "__len__") else int(tokenizer.vocab_size)


def pack_shard(cfg: PackConfig, tokenizer: Any, shard: Shard) -> dict[str, Any]:
    """One shard task: tokenize the documents of ``shard.source`` as BOS + ids + EOS, each to the
    token stream of its split (``part-NNNNN.train.tokens`` / ``.val.tokens``, pretrain.tokens.rows),
    the held-out documents' texts to ``part-NNNNN.heldout_docs.jsonl`` and their multiple-choice
    candidates (``split_at_offsets``) to ``part-NNNNN.mc.json``. Returns the documents and tokens
    of each split. Each document is encoded once: the held-out ones with their character
    offsets, which cut their multiple-choice items."""
    tok = tokenizer_for(tokenizer)
    head, tail = ([tok.bos_token_id] if tok.bos_token_id is not None else []), [tok.eos_token_id]
    # The multiple-choice items fit in one row: half a row of context, a quarter of continuation.
    mc_context, mc_continuation, candidates = cfg.seq_len // 2, cfg.seq_len // 4, []
    counts = {split: {"documents": 0, "tokens": 0} for split in SPLITS}
    with TokenFile(shard.output(".train.tokens")) as train, TokenFile(shard.output(".val.tokens")) as val, \
            atomic_path(shard.output(".heldout_docs.jsonl")) as docs_tmp, \
            open(docs_tmp, "w", encoding="utf-8") as heldout:
        for batch in iter_batches(shard.source, columns=["id", "text"], batch_size=cfg.batch_documents):
            ids, texts = batch.column(0).to_pylist(), batch.column(1).to_pylist()
            held_out = [is_validation(doc_id, cfg.val_fraction, cfg.split_salt) for doc_id in ids]
            for chunk in text_chunks([t for t, h in zip(texts, held_out) if not h], ENCODE_CHARS):
                train.write(document_stream(head, encode_ids(tok, chunk), tail))
            docs = [(doc_id, text) for doc_id, text, h in zip(ids, texts, held_out) if h]
            encoded = encode_ids_with_offsets(tok, [t for _, t in docs])
            val.write(document_stream(head, [tokens for tokens, _ in encoded], tail))
            for (doc_id, text), (_, offsets) in zip(docs, encoded):
                heldout.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n")
                split = split_at_offsets(text, offsets, mc_context, mc_continuation)
                if split is not None:
                    candidates.append([doc_id, *split])
            counts["val"]["documents"] += len(docs)
            counts["train"]["documents"] += len(ids) - len(docs)
    counts["train"]["tokens"], counts["val"]["tokens"] = train.tokens, val.tokens
    write_json(shard.output(".mc.json"), candidates)
    return counts


def pack(cfg: PackConfig, executor: ExecutorConfig, tokenizer: Any, src: Path, out_dir: Path,
         work_root: Path, store_dir: Optional[Path] = None) -> dict[str, Any]:
    """Pack the documents of ``src`` (a folder of document shards, or one document file) into
    ``out_dir``: the row shards ``train-NNNNN.parquet`` and ``val-NNNNN.parquet`` (``input_ids``
    rows of ``cfg.seq_len`` int32 ids), ``heldout_docs.jsonl`` (the held-out documents' ids and
    texts) and ``heldout_mc.jsonl`` (a multiple-choice set made from them); return the report.
    Given ``store_dir``, the same rows also go there as the token store the train and evaluate
    stages read (``train-NNNNN.bin`` / ``.idx``, ``val-...``, ``manifest.json``:
    pretrain.token_store; its own folder, as ``datasets`` would take any file in ``out_dir``
    whose name starts with ``train`` for a Parquet file of its train split).

    ``tokenizer`` is a tokenizer folder (each worker loads it once) or a tokenizer object. One
    task per document shard on ``executor`` (``pack_shard``; work and completion markers in
    ``work_root``, pretrain.executor.shards), then this process cuts each split's stream, shard
    after shard, into rows (pretrain.tokens.rows): the rows are those of one stream of the whole
    corpus, whatever the shards and workers. Raises DataError for a tokenizer without EOS or a
    split without one full row (before the output folder is written).
    """
    if isinstance(tokenizer, (str, Path)):
        tokenizer = Path(tokenizer).resolve()  # a worker may run in another folder (a Ray node)
    if tokenizer_for(tokenizer).eos_token_id is None:
        raise DataError("pack: the tokenizer has no end-of-sequence token")
    shards = document_shards(src) if Path(src).is_dir() else [Path(src)]
    work = work_folder(work_root, stage_key("pack", cfg, tokenizer_digest(tokenizer_for(tokenizer))))
    results = run_shards(executor, "pack", functools.partial(pack_shard, cfg, tokenizer), shards, work)
    report = {"seq_len": cfg.seq_len, **{split: split_report(cfg, split, results) for split in SPLITS}}
    names = [f"part-{i:05d}" for i in range(len(shards))]
    with atomic_path(out_dir) as tmp, \
            (atomic_path(store_dir) if store_dir is not None else contextlib.nullcontext()) as store_tmp:
        tmp.mkdir()
        write_splits(cfg, report, [work / name for name in names], tmp, store_tmp,
                     vocabulary_size(tokenizer_for(tokenizer)))
        report["val_multiple_choice_items"] = write_heldout(work, names, tmp)
        report["document_shards"] = len(shards)
    shutil.rmtree(work)
    return report


def write_splits(cfg: PackConfig, report: dict[str, Any], parts: list[Path], folder: Path,
                 store_folder: Optional[Path], vocab_size: int) -> None:
    """Cut the token files of the tasks (``parts``: work-folder stems, in shard order) into each
    split's Parquet row shards in ``folder`` and, given ``store_folder`` (created here), its
    token store there; add the row shards to ``report``, checked against the tasks' counts."""
    dtype, store = token_dtype(vocab_size), {}
    if store_folder is not None:
        store_folder.mkdir()
    for split in SPLITS:
        written = write_rows(cfg, split, [part.with_name(f"{part.name}.{split}.tokens") for part in parts],
                             folder, store_folder, dtype)
        if written["rows"] != report[split]["rows"]:
            raise DataError(f"pack: {parts[0].parent}: the {split} token files hold {written['rows']} rows, "
                            f"their markers {report[split]['rows']}; delete it and run again")
        report[split]["shards"], store[split] = written["shards"], written["store_shards"]
    if store_folder is not None:
        write_manifest(store_folder, cfg.seq_len, dtype, vocab_size, store)
        report["token_store_dtype"] = dtype.name


def split_report(cfg: PackConfig, split: str, results: list[dict]) -> dict[str, int]:
    """Documents, tokens and rows of ``split`` from the shard tasks' counts; DataError when the
    split has no full row."""
    documents = sum(r[split]["documents"] for r in results)
    tokens = sum(r[split]["tokens"] for r in results)
    rows = tokens // cfg.seq_len
    if rows == 0:
        total = sum(r[s]["documents"] for r in results for s in SPLITS)
        raise DataError(f"pack: the {split} split has no full row of {cfg.seq_len} tokens "
                        f"({documents} documents, {tokens} tokens); "
                        + empty_split_advice(cfg, split, documents, tokens, total))
    return {"documents": documents, "tokens": tokens, "rows": rows, "tokens_in_rows": rows * cfg.seq_len,
            "dropped_tail_tokens": tokens - rows * cfg.seq_len}


def empty_split_advice(cfg: PackConfig, split: str, documents: int, tokens: int, total: int) -> str:
    """What does help a split without one full row, for this case: the split holds out whole
    documents (``is_validation``), so with few documents only more documents (a long text file
    cut into parts: download.split_above_chars) or a larger share held out help, and a shorter
    row only when the split has tokens at all."""
    cut = ("cut long .txt/.md/.rst files into more documents with download.split_above_chars "
           "and download.split_target_chars (docs/data.md, \"One long text file\")")
    if split == "val" and documents == 0:
        share = (f"raise pack.val_fraction (now {cfg.val_fraction}) toward {min(0.5, 2 / total):.2g}, "
                 if total > 1 else "")
        return (f"the split holds out whole documents, about {cfg.val_fraction} of the {total}, and "
                f"drew none: {share}{cut}, or add documents (download.path, download.max_documents, "
                "download.limit)")
    if split == "val":
        return (f"lower pack.seq_len to at most {tokens}, raise pack.val_fraction (now "
                f"{cfg.val_fraction}), or {cut}")
    lower = f"lower pack.seq_len to at most {tokens}, " if tokens else ""
    return (f"{lower}{cut}, add documents (download.path, download.max_documents, download.limit, "
            f"download.skip) or lower pack.val_fraction (now {cfg.val_fraction})")


def write_rows(cfg: PackConfig, split: str, token_files: list[Path], folder: Path,
               store_folder: Optional[Path], store_dtype: np.dtype) -> dict[str, Any]:
    """Cut the concatenated streams of ``token_files`` into the Parquet row shards of ``split``
    in ``folder`` and the token store's in ``store_folder`` (when given) in ``store_dtype``;
    the counts and the store's shards."""
    rows_per_shard = max(1, int(cfg.shard_mb * 1e6) // (TOKEN_DTYPE.itemsize * cfg.seq_len))
    writer = RowShardWriter(folder, split, cfg.seq_len, rows_per_shard, store_folder, store_dtype)
    for ids in read_tokens(token_files, chunk=max(cfg.seq_len * writer.rows_per_group, 1 << 20)):
        writer.add(ids)
    counts = writer.close()
    return {**counts, "store_shards": writer.store_shards}


def write_heldout(work: Path, names: list[str], folder: Path) -> int:
    """The held-out documents of the shards ``names`` in ``work``, in shard order, and the
    multiple-choice items made from all their candidates, into ``folder``; returns the items."""
    concatenate([work / f"{name}.heldout_docs.jsonl" for name in names], folder / HELDOUT_DOCS)
    candidates = [tuple(c) for name in names
                  for c in json.loads((work / f"{name}.mc.json").read_text(encoding="utf-8"))]
    items = multiple_choice_items(candidates)
    with open(folder / HELDOUT_MC, "w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps(item, ensure_ascii=False) + "\n")
    return len(items)


def concatenate(parts: list[Path], path: Path) -> None:
    """Write the bytes of the files ``parts``, in order, to ``path``."""
    with open(path, "wb") as out:
        for part in parts:
            with open(part, "rb") as handle:
                shutil.copyfileobj(handle, out)
