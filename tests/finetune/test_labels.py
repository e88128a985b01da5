"""Labelled data for a classifier: read through the download stage's readers (JSON lines, CSV,
a saved Hugging Face dataset) with every unusable record counted, class names, the stratified
split and the encoded rows."""

import json
import random

import numpy as np
import pytest

from pretrain.config.tokens import TokenizerConfig
from pretrain.errors import ConfigError, DataError
from pretrain.finetune.labels import (
    Example,
    encode,
    label_name,
    label_names,
    read_labelled,
    split_hash,
    stratified_split,
)
from pretrain.sources.records import Skipped
from pretrain.tokens.tokenizer import document_ids, train_bpe

KEY = "finetune.path"


def read(path, **kwargs) -> tuple[list[Example], Skipped]:
    skipped = Skipped()
    args = {"source": "files", "path": str(path), "text_field": "text", "label_field": "label"}
    return read_labelled(**{**args, **kwargs}, skipped=skipped, key=KEY), skipped


def write_jsonl(path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


# --- reading ----------------------------------------------------------------------------------


def test_jsonl_labels_of_every_scalar_type_and_bad_ones_counted(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [
        {"id": "a", "text": "good film", "label": "pos"},
        {"id": "b", "text": "bad film", "label": 0},
        {"id": "c", "text": "fine", "label": True},
        {"id": "d", "text": "ok", "label": 2.0},
        {"id": "e", "text": "no label"},
        {"id": "f", "text": "null label", "label": None},
        {"id": "g", "text": "blank label", "label": "  "},
        {"id": "h", "text": "list label", "label": ["pos"]},
        {"id": "i", "text": "object label", "label": {"x": 1}},
        {"id": "j", "text": "fraction", "label": 0.5},
        {"id": "k", "text": "", "label": "pos"},
    ])
    examples, skipped = read(path)
    assert examples == [Example("a", "good film", "pos"), Example("b", "bad film", "0"),
                        Example("c", "fine", "true"), Example("d", "ok", "2")]
    assert skipped == {"missing_label_field": 3, "label_not_a_scalar": 2,
                       "label_is_a_fraction": 1, "empty_text": 1}
    assert [where.rsplit("/", 1)[1] for where in skipped.examples["label_not_a_scalar"]] == [
        "a.jsonl:8", "a.jsonl:9"]


def test_csv_labels_are_strings_and_ids_come_from_the_place_without_an_id_column(tmp_path):
    path = tmp_path / "b.csv"
    path.write_text('text,label\n"a, b",1\nsecond,neg\nthird,\n', encoding="utf-8")
    examples, skipped = read(path)
    assert [(ex.text, ex.label) for ex in examples] == [("a, b", "1"), ("second", "neg")]
    assert [ex.id for ex in examples] == [f"{path.resolve().as_posix()}:{i}" for i in (0, 1)]
    assert skipped == {"missing_label_field": 1}


def test_int_and_string_labels_of_two_files_meet_and_duplicate_ids_are_made_unique(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", [{"id": "1", "text": "x", "label": 1}])
    (folder / "b.csv").write_text("id,text,label\n1,y,1\n", encoding="utf-8")
    examples, skipped = read(folder)
    assert [ex.label for ex in examples] == ["1", "1"]
    assert len({ex.id for ex in examples}) == 2
    assert skipped.ids["duplicate_made_unique"] == 1


def test_saved_hf_dataset_with_integer_labels(tmp_path):
    import datasets

    path = tmp_path / "saved"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(
        {"text": ["one", "two", "three"], "stars": [1, 5, None]})}).save_to_disk(str(path))
    examples, skipped = read(path, source="hf", label_field="stars")
    assert [(ex.text, ex.label) for ex in examples] == [("one", "1"), ("two", "5")]
    assert skipped == {"missing_label_field": 1}


def test_nothing_left_is_one_line_naming_key_path_and_what_was_skipped(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [{"text": "x"}, {"text": "y", "label": [1]}])
    with pytest.raises(DataError) as err:
        read(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{KEY}: no labelled example in {path!r}")
    assert "1 record, label_not_a_scalar" in message and "1 record, missing_label_field" in message


def test_clashing_fields_and_unknown_source_are_config_errors(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "x", "label": "a"}])
    with pytest.raises(ConfigError, match=r"^finetune.path: metadata_fields\[0\]: 'text'"):
        read(path, label_field="text")
    with pytest.raises(ConfigError, match="source 'urls' cannot hold labelled records"):
        read(path, source="urls")


def test_label_name_rules():
    assert [label_name(v) for v in ("x", 3, False, 4.0, " y")] == ["x", "3", "false", "4", " y"]
    for value, error in ((None, LookupError), ("", LookupError), (float("nan"), LookupError),
                         (1.5, ValueError), ([1], TypeError)):
        with pytest.raises(error):
            label_name(value)


# --- class names ------------------------------------------------------------------------------


def examples_of(labels: list[str]) -> list[Example]:
    return [Example(f"id{i}", f"text {i}", label) for i, label in enumerate(labels)]


def test_label_names_sorted_or_configured():
    exs = examples_of(["b", "a", "b", "c"])
    assert label_names(exs, None, "finetune") == ["a", "b", "c"]
    assert label_names(exs, ["c", "b", "a"], "finetune") == ["c", "b", "a"]


def test_one_class_is_a_one_line_error():
    with pytest.raises(DataError) as err:
        label_names(examples_of(["pos", "pos"]), None, "finetune", where="data/x.jsonl")
    assert str(err.value) == ("finetune.label_field: only one class ('pos') in data/x.jsonl: a "
                              "classifier needs at least two")


def test_configured_names_must_cover_every_label_and_each_have_an_example():
    exs = examples_of(["a", "b", "maybe"])
    with pytest.raises(DataError, match=r"^finetune.labels: label 'maybe' of example 'id2'"):
        label_names(exs, ["a", "b"], "finetune")
    with pytest.raises(DataError, match=r"^finetune.labels: 'z' has no example"):
        label_names(exs, ["a", "b", "maybe", "z"], "finetune")
    with pytest.raises(ConfigError, match="'a' is listed twice"):
        label_names(exs, ["a", "a", "b", "maybe"], "finetune")
    with pytest.raises(ConfigError, match=r"finetune.labels: 0 is not a string; quote it \('0'\)"):
        label_names(examples_of(["0", "1"]), [0, 1], "finetune")


# --- splitting --------------------------------------------------------------------------------


def imbalanced() -> list[Example]:
    return examples_of(["a"] * 200 + ["b"] * 50 + ["c"] * 10)


def test_split_keeps_each_class_proportion_and_is_a_partition():
    exs = imbalanced()
    splits = stratified_split(exs, 0.1, 0.2, "s")
    counts = {name: {c: sum(ex.label == c for ex in split) for c in "abc"}
              for name, split in splits.items()}
    assert counts == {"test": {"a": 40, "b": 10, "c": 2}, "validation": {"a": 20, "b": 5, "c": 1},
                      "train": {"a": 140, "b": 35, "c": 7}}
    ids = [ex.id for split in splits.values() for ex in split]
    assert len(ids) == len(set(ids)) == len(exs)


def test_split_is_independent_of_input_order_and_changes_with_the_salt():
    exs = imbalanced()
    shuffled = exs[:]
    random.Random(1).shuffle(shuffled)
    first = stratified_split(exs, 0.1, 0.2, "s")
    assert stratified_split(shuffled, 0.1, 0.2, "s") == first
    assert stratified_split(exs, 0.1, 0.2, "s") == first
    other = stratified_split(exs, 0.1, 0.2, "t")
    assert {ex.id for ex in other["test"]} != {ex.id for ex in first["test"]}
    assert split_hash(other["test"]) != split_hash(first["test"])
    again = stratified_split(shuffled, 0.1, 0.2, "s")["train"]
    assert split_hash(again) == split_hash(first["train"])


def test_split_hash_sees_labels_and_is_16_hex():
    exs = examples_of(["a", "b"])
    relabelled = [exs[0], exs[1]._replace(label="a")]
    assert len(split_hash(exs)) == 16 and int(split_hash(exs), 16) >= 0
    assert split_hash(exs) != split_hash(relabelled)


def test_small_class_keeps_a_train_example_and_warns_of_empty_validation(capsys):
    splits = stratified_split(examples_of(["a"] * 20 + ["b"] * 2), 0.1, 0.5, "s")
    labels = {name: [ex.label for ex in split] for name, split in splits.items()}
    assert labels["train"].count("b") == 1 and labels["test"].count("b") == 1
    assert "b" not in labels["validation"] and labels["validation"].count("a") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no validation example of class 'b' (2)" in err


def test_split_rounds_halves_up():
    splits = stratified_split(examples_of(["a"] * 5 + ["b"] * 5), 0.1, 0.5, "s")
    assert len(splits["test"]) == 6 and len(splits["validation"]) == 2  # 2.5 -> 3, 0.5 -> 1


def test_split_fractions_are_checked():
    with pytest.raises(ConfigError, match="leaves nothing to train on"):
        stratified_split(imbalanced(), 0.5, 0.5, "s")
    with pytest.raises(ConfigError, match=r"finetune.val_fraction: expected a fraction"):
        stratified_split(imbalanced(), -0.1, 0.2, "s")


# --- encoding ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer():
    texts = ["the quick brown fox jumps over the lazy dog"] * 20 + ["a good film", "a bad film"]
    return train_bpe(TokenizerConfig(vocab_size=300), iter(texts))


def test_encode_rows_are_document_ids_padded_with_the_label_last(tokenizer):
    exs = [Example("1", "a good film", "pos"), Example("2", "a bad film", "neg")]
    rows, truncated = encode(tokenizer, exs, ["neg", "pos"], 64)
    assert rows.shape == (2, 65) and rows.dtype == np.int64 and truncated == 0
    for row, ex in zip(rows, exs):
        doc = document_ids(tokenizer, ex.text)
        assert row[:len(doc)].tolist() == doc
        assert (row[len(doc):-1] == tokenizer.pad_token_id).all()
        assert doc[0] == tokenizer.bos_token_id and doc[-1] == tokenizer.eos_token_id
    assert rows[:, -1].tolist() == [1, 0]


def test_encode_truncation_keeps_eos_last_and_is_counted(tokenizer):
    long_text = "the quick brown fox jumps over the lazy dog " * 10
    exs = [Example("1", long_text, "pos"), Example("2", "a bad film", "neg")]
    rows, truncated = encode(tokenizer, exs, ["neg", "pos"], 8)
    assert truncated == 1 and rows.shape == (2, 9)
    doc = document_ids(tokenizer, long_text)
    assert rows[0, :8].tolist() == doc[:7] + [tokenizer.eos_token_id]
    assert (rows[:, :-1] != tokenizer.pad_token_id).sum(axis=1)[0] == 8


def test_encode_literal_special_token_text_is_not_a_pad(tokenizer):
    rows, _ = encode(tokenizer, [Example("1", "<pad> film", "pos")], ["neg", "pos"], 32)
    n = len(document_ids(tokenizer, "<pad> film"))
    assert (rows[0, :n] != tokenizer.pad_token_id).all()


def test_encode_needs_a_dedicated_pad(tokenizer):
    import copy

    no_pad = copy.deepcopy(tokenizer)
    no_pad.pad_token = None
    with pytest.raises(ConfigError, match="has no pad token"):
        encode(no_pad, [Example("1", "film", "pos")], ["neg", "pos"], 16)
    pad_is_eos = copy.deepcopy(tokenizer)
    pad_is_eos.pad_token = pad_is_eos.eos_token
    with pytest.raises(ConfigError, match="pad id .* is also a token of example '1'"):
        encode(pad_is_eos, [Example("1", "film", "pos")], ["neg", "pos"], 16)


def test_encode_unknown_label_and_tiny_max_length(tokenizer):
    with pytest.raises(DataError, match="label 'meh' of example '1'"):
        encode(tokenizer, [Example("1", "film", "meh")], ["neg", "pos"], 16)
    with pytest.raises(ConfigError, match="max_length: 1"):
        encode(tokenizer, [Example("1", "film", "pos")], ["neg", "pos"], 1)
