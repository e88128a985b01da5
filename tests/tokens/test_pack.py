"""Packing: BOS + ids + EOS per document, concatenated, cut into rows; validation held out by
document; one task per document shard, the same rows for any shards and workers."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from pretrain.config.executor import ExecutorConfig
from pretrain.config.tokens import PackConfig
from pretrain.errors import DataError
from pretrain.io import DocumentWriter, iter_documents, row_shards, shard_name
from pretrain.tokens import pack as pack_module
from pretrain.tokens.pack import HELDOUT_DOCS, HELDOUT_MC, is_validation
from pretrain.tokens.rows import RowShardWriter

CFG = PackConfig(seq_len=64, val_fraction=0.25, split_salt="test", batch_documents=7)


def pack(cfg, tokenizer, src, out, workers=1, store=None):
    """The pack stage's function, its work folder beside ``out``."""
    return pack_module.pack(cfg, ExecutorConfig(workers=workers), tokenizer, src, out,
                            out.parent / f"{out.name}-work", store)


def rows(out, split):
    return [row for path in row_shards(out, split) for row in pq.read_table(path).column("input_ids").to_pylist()]


def flat(out, split) -> list[int]:
    """All tokens of a packed split, row shard after row shard, row after row."""
    return [i for row in rows(out, split) for i in row]


def expected_streams(cfg, tokenizer, corpus):
    """What each split's token stream must be, computed document by document."""
    streams = {"train": [], "val": []}
    val_ids = []
    for doc in iter_documents(corpus):
        split = "val" if is_validation(doc["id"], cfg.val_fraction, cfg.split_salt) else "train"
        ids = tokenizer(doc["text"], add_special_tokens=False)["input_ids"]
        streams[split] += [tokenizer.bos_token_id, *ids, tokenizer.eos_token_id]
        if split == "val":
            val_ids.append(doc["id"])
    return streams, val_ids


def split_into_shards(corpus, folder, n):
    """The documents of ``corpus`` as a folder of ``n`` shards (as download writes them) in order."""
    docs = list(iter_documents(corpus))
    folder.mkdir()
    for i in range(n):
        with DocumentWriter(folder / shard_name(i)) as writer:
            for doc in docs[i * len(docs) // n:(i + 1) * len(docs) // n]:
                writer.write(doc)
    return folder


def files(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def packed(tmp_path_factory, corpus_path, tiny_tokenizer):
    out = tmp_path_factory.mktemp("pack") / "packed"
    report = pack(CFG, tiny_tokenizer, corpus_path, out)
    return out, report


def test_every_row_has_seq_len_tokens(packed):
    out, report = packed
    for split in ("train", "val"):
        got = rows(out, split)
        assert len(got) == report[split]["rows"] > 0
        assert {len(r) for r in got} == {CFG.seq_len}


def test_rows_are_the_documents_stream_with_only_the_tail_dropped(packed, corpus_path, tiny_tokenizer):
    out, report = packed
    streams, _ = expected_streams(CFG, tiny_tokenizer, corpus_path)
    for split, stream in streams.items():
        n_rows = len(stream) // CFG.seq_len
        assert flat(out, split) == stream[: n_rows * CFG.seq_len]
        assert report[split]["tokens"] == len(stream)
        assert report[split]["rows"] == n_rows
        assert report[split]["tokens_in_rows"] == n_rows * CFG.seq_len
        assert report[split]["dropped_tail_tokens"] == len(stream) - n_rows * CFG.seq_len < CFG.seq_len


def test_heldout_docs_lists_exactly_the_validation_documents(packed, corpus_path):
    out, report = packed
    docs = list(iter_documents(corpus_path))
    with open(out / HELDOUT_DOCS, encoding="utf-8") as handle:
        listed = [json.loads(line) for line in handle]
    expected = [{"id": d["id"], "text": d["text"]} for d in docs
                if is_validation(d["id"], CFG.val_fraction, CFG.split_salt)]
    assert listed == expected and 0 < len(listed) < len(docs)
    assert report["val"]["documents"] == len(listed)
    assert report["train"]["documents"] == len(docs) - len(listed)


def test_is_validation_is_a_stable_salted_hash_of_the_id():
    ids = [f"doc-{i}" for i in range(2000)]
    chosen = [i for i in ids if is_validation(i, 0.1, "pretrain")]
    assert chosen == [i for i in ids if is_validation(i, 0.1, "pretrain")]
    assert 150 < len(chosen) < 250
    assert chosen != [i for i in ids if is_validation(i, 0.1, "other salt")]
    # Growing the fraction only moves documents from train to validation.
    assert set(chosen) < {i for i in ids if is_validation(i, 0.2, "pretrain")}
    # Pinned: a change of hash would silently change every existing split.
    assert [i for i in range(20) if is_validation(f"doc-{i}", 0.5, "pretrain")] == \
        [1, 2, 4, 5, 6, 7, 8, 11, 12, 15, 18]


def test_output_folder_loads_with_datasets_as_train_and_validation(tmp_path, corpus_path, tiny_tokenizer):
    """``load_dataset("parquet", data_dir=...)`` names its splits from the file names: the row
    shards are its train and validation splits, and no held-out JSON file is mistaken for one
    (a file named val_docs.jsonl would be, and fail to read as Parquet)."""
    import datasets

    out = tmp_path / "packed"
    report = pack(PackConfig(seq_len=32, val_fraction=0.2, shard_mb=0.02), tiny_tokenizer, corpus_path, out,
                  store=tmp_path / "tokens")
    assert report["train"]["shards"] > 1
    data = datasets.load_dataset("parquet", data_dir=str(out), cache_dir=str(tmp_path / "cache"))
    assert set(data) == {"train", "validation"}
    assert data["train"].num_rows == report["train"]["rows"]
    assert data["validation"].num_rows == report["val"]["rows"]
    assert data["train"].column_names == ["input_ids"]
    assert [i for row in data["train"]["input_ids"] for i in row] == flat(out, "train")


def test_the_token_store_holds_the_parquet_rows_shard_for_shard_in_two_bytes_a_token(
        tmp_path, corpus_path, tiny_tokenizer):
    """The store (its own folder: ``datasets`` would read a ``train-*.bin`` beside the Parquet
    files as Parquet) has the rows of the Parquet shards, in the same shards, as uint16 for a
    vocabulary of 512; its manifest's digests are those of the files; it is the same for any
    number of workers."""
    import hashlib

    from pretrain.token_store import PackedRows, read_manifest

    cfg = PackConfig(seq_len=32, val_fraction=0.2, shard_mb=0.02)
    report = pack(cfg, tiny_tokenizer, corpus_path, tmp_path / "packed", store=tmp_path / "tokens")
    assert report["token_store_dtype"] == "uint16"
    manifest = read_manifest(tmp_path / "tokens")
    assert (manifest["dtype"], manifest["seq_len"], manifest["vocab_size"]) == ("uint16", 32, len(tiny_tokenizer))
    for split in ("train", "val"):
        parquet = row_shards(tmp_path / "packed", split)
        shards = manifest["splits"][split]["shards"]
        assert [s["name"] + ".parquet" for s in shards] == [p.name for p in parquet]
        assert [s["rows"] for s in shards] == [pq.ParquetFile(p).metadata.num_rows for p in parquet]
        assert PackedRows(tmp_path / "tokens", split)[:].tolist() == rows(tmp_path / "packed", split)
        for shard in shards:
            data = (tmp_path / "tokens" / f"{shard['name']}.bin").read_bytes()
            assert len(data) == shard["rows"] * 32 * 2
            assert hashlib.blake2b(data, digest_size=16).hexdigest() == shard["blake2b"]
    pack(cfg, tiny_tokenizer, corpus_path, tmp_path / "packed2", workers=2, store=tmp_path / "tokens2")
    assert files(tmp_path / "tokens") == files(tmp_path / "tokens2")


def test_too_small_validation_split_is_a_data_error(tmp_path, write_docs, tiny_tokenizer):
    cfg = PackConfig(seq_len=64, val_fraction=0.1)
    train_ids = [f"t{i}" for i in range(200) if not is_validation(f"t{i}", 0.1, cfg.split_salt)][:20]
    val_id = next(f"v{i}" for i in range(200) if is_validation(f"v{i}", 0.1, cfg.split_salt))
    docs = [{"id": i, "text": "def f(x):\n    return x\n" * 20} for i in train_ids]
    corpus = write_docs(tmp_path / "docs.parquet", docs + [{"id": val_id, "text": "tiny"}])
    out = tmp_path / "packed"
    with pytest.raises(DataError, match=r"the val split has no full row of 64 tokens \(1 documents"):
        pack(cfg, tiny_tokenizer, corpus, out)
    assert not out.exists()


def test_one_document_in_train_only_names_what_helps(tmp_path, write_docs, tiny_tokenizer):
    # one big text file kept whole: one document, which goes to train, and the val split is empty
    cfg = PackConfig(seq_len=64, val_fraction=0.1)
    doc_id = next(f"book{i}" for i in range(200) if not is_validation(f"book{i}", 0.1, cfg.split_salt))
    corpus = write_docs(tmp_path / "docs.parquet", [{"id": doc_id, "text": "To be, or not to be.\n" * 500}])
    with pytest.raises(DataError) as error:
        pack(cfg, tiny_tokenizer, corpus, tmp_path / "packed")
    message = str(error.value)
    assert message.startswith("pack: the val split has no full row of 64 tokens (0 documents, 0 tokens); "
                              "the split holds out whole documents, about 0.1 of the 1, and drew none: ")
    # a shorter row or another val_fraction cannot hold out a part of the one document
    assert "download.split_above_chars" in message and "seq_len" not in message
    assert "val_fraction" not in message.split("drew none")[1]


def test_empty_split_advice_by_case():
    cfg = PackConfig(seq_len=64, val_fraction=0.05)
    few = pack_module.empty_split_advice(cfg, "val", 0, 0, 12)
    assert few.startswith("the split holds out whole documents, about 0.05 of the 12, and drew none: "
                          "raise pack.val_fraction (now 0.05) toward 0.17, cut long")
    short = pack_module.empty_split_advice(cfg, "val", 3, 40, 60)
    assert short.startswith("lower pack.seq_len to at most 40, raise pack.val_fraction (now 0.05)")
    train = pack_module.empty_split_advice(cfg, "train", 2, 30, 3)
    assert train.startswith("lower pack.seq_len to at most 30, cut long") and "lower pack.val_fraction" in train
    assert "seq_len" not in pack_module.empty_split_advice(cfg, "train", 0, 0, 1)


def test_streaming_writes_several_row_groups_with_exact_counts(tmp_path, corpus_path, tiny_tokenizer):
    cfg = PackConfig(seq_len=2, val_fraction=0.05)  # row groups of 4096 rows of 2 tokens
    out = tmp_path / "packed"
    report = pack(cfg, tiny_tokenizer, corpus_path, out)
    (path,) = row_shards(out, "train")
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups > 1
    assert {meta.row_group(i).num_rows for i in range(meta.num_row_groups - 1)} == {4096}
    assert meta.num_rows == report["train"]["rows"] == report["train"]["tokens"] // 2
    streams, _ = expected_streams(cfg, tiny_tokenizer, corpus_path)
    assert flat(out, "train") == streams["train"][: meta.num_rows * 2]


def test_rows_and_files_do_not_depend_on_how_the_stream_arrives(tmp_path):
    """Pieces of any size give the same rows, row groups and row shards as one piece; a new
    shard every rows_per_shard rows; only the last remainder shorter than a row is dropped."""
    rng = np.random.default_rng(0)
    pieces = [rng.integers(0, 1000, rng.integers(1, 12), dtype=np.int32) for _ in range(40)]
    stream = np.concatenate(pieces)
    written = {}
    for name, parts in (("pieces", pieces), ("whole", [stream])):
        (tmp_path / name).mkdir()
        writer = RowShardWriter(tmp_path / name, "train", seq_len=4, rows_per_shard=7, rows_per_group=3)
        for ids in parts:
            writer.add(ids)
        written[name] = writer.close()
    n_rows = len(stream) // 4
    assert written["pieces"] == written["whole"] == {
        "rows": n_rows, "tokens_in_rows": n_rows * 4, "dropped_tail_tokens": len(stream) % 4,
        "shards": -(-n_rows // 7)}
    assert files(tmp_path / "pieces") == files(tmp_path / "whole")
    shards = row_shards(tmp_path / "pieces", "train")
    assert [pq.ParquetFile(p).metadata.num_rows for p in shards] == [7] * (n_rows // 7) + [n_rows % 7] * bool(n_rows % 7)
    assert [pq.ParquetFile(shards[0]).metadata.row_group(i).num_rows for i in range(3)] == [3, 3, 1]
    assert flat(tmp_path / "pieces", "train") == stream[: n_rows * 4].tolist()


class NoBosTokenizer:
    """A character tokenizer without BOS, like GPT-2 style tokenizers that only have EOS."""

    bos_token_id = None
    vocab_size = 0x110000  # every code point

    def __init__(self, eos):
        self.eos_token_id = eos

    def __call__(self, texts, add_special_tokens=False, split_special_tokens=False,
                 return_offsets_mapping=False):
        offsets = {"offset_mapping": [[(i, i + 1) for i in range(len(text))] for text in texts]} \
            if return_offsets_mapping else {}  # character offsets (multiple-choice items)
        return {"input_ids": [[ord(c) for c in text] for text in texts], **offsets}

    def decode(self, ids):
        return "".join(map(chr, ids))


def test_tokenizer_without_bos_packs_ids_and_eos(tmp_path, write_docs):
    docs = [{"id": f"d{i}", "text": "abcdefgh" * (i + 1)} for i in range(60)]
    corpus = write_docs(tmp_path / "docs.parquet", docs)
    out = tmp_path / "packed"
    cfg = PackConfig(seq_len=8, val_fraction=0.2)
    pack(cfg, NoBosTokenizer(eos=0), corpus, out)
    stream = []
    for doc in docs:
        if not is_validation(doc["id"], cfg.val_fraction, cfg.split_salt):
            stream += [ord(c) for c in doc["text"]] + [0]
    assert flat(out, "train") == stream[: len(stream) // 8 * 8]


def test_tokenizer_without_eos_is_a_data_error(tmp_path, write_docs):
    corpus = write_docs(tmp_path / "docs.parquet", [{"id": "a", "text": "text"}])
    with pytest.raises(DataError, match="no end-of-sequence token"):
        pack(PackConfig(), NoBosTokenizer(eos=None), corpus, tmp_path / "packed")
    assert not (tmp_path / "packed").exists()


def test_multiple_choice_set_is_made_from_validation_documents_only(packed, corpus_path, tiny_tokenizer):
    out, report = packed
    with open(out / HELDOUT_MC, encoding="utf-8") as handle:
        items = [json.loads(line) for line in handle]
    val_ids = {d["id"] for d in iter_documents(corpus_path)
               if is_validation(d["id"], CFG.val_fraction, CFG.split_salt)}
    assert items and report["val_multiple_choice_items"] == len(items)
    for item in items:
        assert item["id"] in val_ids and len(item["choices"]) == 4
        tokens = tiny_tokenizer(item["context"] + item["choices"][item["label"]], add_special_tokens=False)
        assert len(tokens["input_ids"]) < CFG.seq_len + 4  # fits the evaluation window


SPECIAL_TEXT = ["pattern = re.compile(r'(?P<s>\\d{2}):(?P<e>\\d{2})')  # start and end groups\n",
                "<p>Price: <s>$40</s> now $30, padded with <pad><pad> and a </s> too.</p>\n",
                "The tokenizer's special tokens are <s> (BOS), </s> (EOS) and <pad>; see README.\n"]


@pytest.mark.parametrize("family", ["byte_level", "sentencepiece"])
def test_special_token_text_in_a_document_stays_text(tmp_path, write_docs, tiny_tokenizer, family):
    """The literal text "<s>" in a regex, an HTML strike tag or a README is text: one BOS and one
    EOS per document, never PAD, and each document's ids decode to its text exactly."""
    from conftest import sentencepiece_style

    tok = tiny_tokenizer if family == "byte_level" else sentencepiece_style(SPECIAL_TEXT * 20, legacy=True)
    docs = [{"id": f"doc{i}", "text": SPECIAL_TEXT[i % 3] * (2 + i % 5)} for i in range(30)]
    corpus = write_docs(tmp_path / "docs.parquet", docs)
    cfg = PackConfig(seq_len=16, val_fraction=0.2, split_salt="s")
    report = pack(cfg, tok, corpus, tmp_path / "packed")
    stream = flat(tmp_path / "packed", "train") + flat(tmp_path / "packed", "val")
    tail = report["train"]["dropped_tail_tokens"] + report["val"]["dropped_tail_tokens"]
    assert stream.count(tok.bos_token_id) == len(docs)  # each split's tail lies inside its last document
    assert len(docs) - 2 <= stream.count(tok.eos_token_id) <= len(docs) and tail < cfg.seq_len * 2
    assert tok.pad_token_id is None or tok.pad_token_id not in stream
    from pretrain.tokens.tokenizer import encode_texts

    for doc, ids in zip(docs, encode_texts(tok, [d["text"] for d in docs])):
        assert tok.decode(ids) == doc["text"]


@pytest.fixture(scope="module")
def saved_tokenizer(tmp_path_factory, tiny_tokenizer):
    """The tokenizer as the stage gets it: a folder each worker loads."""
    folder = tmp_path_factory.mktemp("tokenizer") / "tokenizer"
    tiny_tokenizer.save_pretrained(str(folder))
    return folder


SHARDED = PackConfig(seq_len=32, val_fraction=0.2, split_salt="test", shard_mb=0.05)


def test_the_same_files_for_one_or_three_shards_and_one_or_two_workers(tmp_path, corpus_path, saved_tokenizer):
    """Rows, row shards, held-out files and report are byte for byte those of one stream of the
    whole corpus, however the documents are sharded and however many workers pack them."""
    split_into_shards(corpus_path, tmp_path / "three", 3)
    runs = {}
    for name, src, workers in (("one", corpus_path, 1), ("three", tmp_path / "three", 1),
                               ("three_two_workers", tmp_path / "three", 2)):
        report = pack(SHARDED, saved_tokenizer, src, tmp_path / f"out_{name}", workers=workers)
        runs[name] = (report.pop("document_shards"), report, files(tmp_path / f"out_{name}"))
    assert [shards for shards, _, _ in runs.values()] == [1, 3, 3]
    assert runs["one"][1:] == runs["three"][1:] == runs["three_two_workers"][1:]
    report, written = runs["one"][1:]
    assert report["train"]["shards"] > 1 and set(written) == {
        *(f"train-{i:05d}.parquet" for i in range(report["train"]["shards"])),
        *(f"val-{i:05d}.parquet" for i in range(report["val"]["shards"])), HELDOUT_DOCS, HELDOUT_MC}
    assert not (tmp_path / "out_three-work").exists() or not any((tmp_path / "out_three-work").iterdir())


def test_row_shards_roll_over_every_shard_mb_of_ids(tmp_path, corpus_path, tiny_tokenizer):
    out = tmp_path / "packed"
    report = pack(SHARDED, tiny_tokenizer, corpus_path, out)
    per_shard = int(SHARDED.shard_mb * 1e6) // (4 * SHARDED.seq_len)  # int32 ids
    for split in ("train", "val"):
        counts = [pq.ParquetFile(p).metadata.num_rows for p in row_shards(out, split)]
        assert len(counts) == report[split]["shards"] == -(-report[split]["rows"] // per_shard)
        assert counts[:-1] == [per_shard] * (len(counts) - 1) and 0 < counts[-1] <= per_shard
    assert report["train"]["shards"] > 1


PACK_SHARD = pack_module.pack_shard


def counting(monkeypatch, fail_index=None):
    """Record which shards the pack tasks run (in this process: one worker), failing one."""
    calls, real = [], PACK_SHARD

    def task(cfg, tokenizer, shard):
        calls.append(shard.index)
        if shard.index == fail_index:
            raise ValueError("worker lost its disk")
        return real(cfg, tokenizer, shard)

    monkeypatch.setattr(pack_module, "pack_shard", task)
    return calls


def test_a_failing_shard_fails_in_one_line_and_a_rerun_redoes_only_it(tmp_path, corpus_path, saved_tokenizer,
                                                                     monkeypatch):
    split_into_shards(corpus_path, tmp_path / "docs", 3)
    out = tmp_path / "packed"
    calls = counting(monkeypatch, fail_index=1)
    with pytest.raises(DataError, match=r"^pack: shard part-00001\.parquet: worker lost its disk$"):
        pack(SHARDED, saved_tokenizer, tmp_path / "docs", out)
    assert calls == [0, 1] and not out.exists()
    calls = counting(monkeypatch)
    resumed = pack(SHARDED, saved_tokenizer, tmp_path / "docs", out)
    assert calls == [1, 2]
    whole = pack(SHARDED, saved_tokenizer, tmp_path / "docs", tmp_path / "whole")
    assert resumed == whole and files(out) == files(tmp_path / "whole")


def test_a_changed_tokenizer_or_setting_never_reuses_a_finished_shard(tmp_path, corpus_path, saved_tokenizer,
                                                                     tiny_tokenizer, monkeypatch):
    from conftest import trimmed_offsets

    split_into_shards(corpus_path, tmp_path / "docs", 3)
    counting(monkeypatch, fail_index=2)
    with pytest.raises(DataError):
        pack(SHARDED, saved_tokenizer, tmp_path / "docs", tmp_path / "packed")
    for cfg, tokenizer in ((SHARDED, trimmed_offsets(tiny_tokenizer)),
                           (PackConfig(seq_len=32, val_fraction=0.3, split_salt="test"), saved_tokenizer)):
        calls = counting(monkeypatch, fail_index=2)
        with pytest.raises(DataError):
            pack(cfg, tokenizer, tmp_path / "docs", tmp_path / "packed")
        assert calls == [0, 1, 2]
