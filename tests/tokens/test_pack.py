"""Packing: BOS + ids + EOS per document, concatenated, cut into rows; validation held out by document."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from pretrain.config.tokens import PackConfig
from pretrain.errors import DataError
from pretrain.io import iter_documents
from pretrain.tokens.pack import RowPacker, is_validation, pack

CFG = PackConfig(seq_len=64, val_fraction=0.25, split_salt="test", batch_documents=7)


def rows(path):
    return pq.read_table(path).column("input_ids").to_pylist()


def flat(path) -> list[int]:
    """All tokens of a packed file, row after row."""
    return pq.read_table(path).column("input_ids").combine_chunks().flatten().to_numpy().tolist()


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


@pytest.fixture(scope="module")
def packed(tmp_path_factory, corpus_path, tiny_tokenizer):
    out = tmp_path_factory.mktemp("pack") / "packed"
    report = pack(CFG, tiny_tokenizer, corpus_path, out)
    return out, report


def test_every_row_has_seq_len_tokens(packed):
    out, report = packed
    for split in ("train", "val"):
        got = rows(out / f"{split}.parquet")
        assert len(got) == report[split]["rows"] > 0
        assert {len(r) for r in got} == {CFG.seq_len}


def test_rows_are_the_documents_stream_with_only_the_tail_dropped(packed, corpus_path, tiny_tokenizer):
    out, report = packed
    streams, _ = expected_streams(CFG, tiny_tokenizer, corpus_path)
    for split, stream in streams.items():
        n_rows = len(stream) // CFG.seq_len
        assert flat(out / f"{split}.parquet") == stream[: n_rows * CFG.seq_len]
        assert report[split]["tokens"] == len(stream)
        assert report[split]["rows"] == n_rows
        assert report[split]["tokens_in_rows"] == n_rows * CFG.seq_len
        assert report[split]["dropped_tail_tokens"] == len(stream) - n_rows * CFG.seq_len < CFG.seq_len


def test_val_docs_lists_exactly_the_validation_documents(packed, corpus_path):
    out, report = packed
    docs = list(iter_documents(corpus_path))
    with open(out / "val_docs.jsonl", encoding="utf-8") as handle:
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


def test_output_loads_with_datasets(packed, tmp_path):
    import datasets

    out, report = packed
    data = datasets.load_dataset(
        "parquet", data_files={"train": str(out / "train.parquet"), "validation": str(out / "val.parquet")},
        cache_dir=str(tmp_path / "cache"))
    assert data["train"].num_rows == report["train"]["rows"]
    assert data["validation"].num_rows == report["val"]["rows"]
    assert data["train"].column_names == ["input_ids"]
    assert len(data["train"][0]["input_ids"]) == CFG.seq_len


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


def test_streaming_writes_several_row_groups_with_exact_counts(tmp_path, corpus_path, tiny_tokenizer):
    cfg = PackConfig(seq_len=2, val_fraction=0.05)  # 4096 rows of 2 tokens per flush
    out = tmp_path / "packed"
    report = pack(cfg, tiny_tokenizer, corpus_path, out)
    meta = pq.ParquetFile(out / "train.parquet").metadata
    assert meta.num_row_groups > 1
    assert meta.num_rows == report["train"]["rows"] == report["train"]["tokens"] // 2
    streams, _ = expected_streams(cfg, tiny_tokenizer, corpus_path)
    assert flat(out / "train.parquet") == streams["train"][: meta.num_rows * 2]


def test_row_packer_carries_the_remainder_across_flushes(tmp_path):
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 1000, rng.integers(1, 12), dtype=np.int32) for _ in range(40)]
    packer = RowPacker(tmp_path / "rows.parquet", seq_len=4, rows_per_group=2)
    for ids in docs:
        packer.add(ids)
    report = packer.close()
    stream = np.concatenate(docs)
    assert report == {"documents": 40, "tokens": len(stream), "rows": len(stream) // 4,
                      "tokens_in_rows": len(stream) // 4 * 4, "dropped_tail_tokens": len(stream) % 4}
    assert pq.ParquetFile(tmp_path / "rows.parquet").metadata.num_row_groups > 1
    assert flat(tmp_path / "rows.parquet") == stream[: len(stream) // 4 * 4].tolist()


class NoBosTokenizer:
    """A character tokenizer without BOS, like GPT-2 style tokenizers that only have EOS."""

    bos_token_id = None

    def __init__(self, eos):
        self.eos_token_id = eos

    def __call__(self, texts, add_special_tokens=False, split_special_tokens=False,
                 return_offsets_mapping=False):
        if isinstance(texts, str):  # one text, with character offsets (multiple-choice items)
            return {"input_ids": [ord(c) for c in texts],
                    "offset_mapping": [(i, i + 1) for i in range(len(texts))]}
        return {"input_ids": [[ord(c) for c in text] for text in texts]}

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
    assert flat(out / "train.parquet") == stream[: len(stream) // 8 * 8]


def test_tokenizer_without_eos_is_a_data_error(tmp_path, write_docs):
    corpus = write_docs(tmp_path / "docs.parquet", [{"id": "a", "text": "text"}])
    with pytest.raises(DataError, match="no end-of-sequence token"):
        pack(PackConfig(), NoBosTokenizer(eos=None), corpus, tmp_path / "packed")
    assert not (tmp_path / "packed").exists()


def test_multiple_choice_set_is_made_from_validation_documents_only(packed, corpus_path, tiny_tokenizer):
    out, report = packed
    with open(out / "val_mc.jsonl", encoding="utf-8") as handle:
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
    stream = flat(tmp_path / "packed" / "train.parquet") + flat(tmp_path / "packed" / "val.parquet")
    tail = report["train"]["dropped_tail_tokens"] + report["val"]["dropped_tail_tokens"]
    assert stream.count(tok.bos_token_id) == len(docs)  # each split's tail lies inside its last document
    assert len(docs) - 2 <= stream.count(tok.eos_token_id) <= len(docs) and tail < cfg.seq_len * 2
    assert tok.pad_token_id is None or tok.pad_token_id not in stream
    from pretrain.tokens.tokenizer import encode_texts

    for doc, ids in zip(docs, encode_texts(tok, [d["text"] for d in docs])):
        assert tok.decode(ids) == doc["text"]
