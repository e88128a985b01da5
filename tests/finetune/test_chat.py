"""SFT data: formats, reading with every record counted, chat templates, the assistant mask
(generation tags and the prefix fallback), control-token safety, truncation and rows."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from pretrain.config.tokens import TokenizerConfig
from pretrain.errors import ConfigError, DataError
from pretrain.finetune.chat import (
    CHATML,
    GENERATION_TAG,
    IGNORE_INDEX,
    end_of_turn,
    end_of_turn_token,
    full_render,
    prepare_tokenizer,
    render,
    resize_for_template,
    sft_rows,
    special_texts,
)
from pretrain.finetune.chat_data import BadRecord, FORMATS, conversation, detect_format, read_conversations
from pretrain.sources.records import Skipped
from pretrain.tokens.tokenizer import encode_texts, train_bpe

TEXTS = ["hello world, how are you? I am fine thanks. The answer is 42. Be brief and kind."] * 20
CONVERSATION = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hello"},
                {"role": "assistant", "content": "fine thanks"},
                {"role": "user", "content": "and the answer?"},
                {"role": "assistant", "content": "42"}]
UNTAGGED = CHATML.replace("{% generation %}", "").replace("{% endgeneration %}", "")


def tokenizer(template: str | None = "chatml"):
    """A fresh project tokenizer (byte-level BPE, BOS added, split_special_tokens=True)."""
    tok = train_bpe(TokenizerConfig(vocab_size=300), iter(TEXTS), length=len(TEXTS))
    if template is not None:
        prepare_tokenizer(tok, template)
    return tok


def runs(tok, ids, mask) -> list[str]:
    """The decoded text of each run of masked tokens."""
    found, current = [], []
    for token, on in zip(ids + [None], mask + [0]):
        if on:
            current.append(token)
        elif current:
            found.append(tok.decode(current))
            current = []
    return found


# --- formats --------------------------------------------------------------------------------------


def test_each_format_gives_the_same_messages():
    expected = [{"role": "user", "content": "Sum these.\n\n1 2"}, {"role": "assistant", "content": "3"}]
    records = {
        "messages": {"messages": [{"role": "user", "content": "Sum these.\n\n1 2", "name": "x"},
                                  {"role": "assistant", "content": "3"}]},
        "sharegpt": {"conversations": [{"from": "human", "value": "Sum these.\n\n1 2"},
                                       {"from": "gpt", "value": "3"}]},
        "alpaca": {"instruction": "Sum these.", "input": "1 2", "output": "3"},
    }
    for name, record in records.items():
        assert FORMATS[name](record) == expected
        assert detect_format(record) == name
        assert conversation(record, "auto", "f.jsonl:1") == ("f.jsonl:1", expected)


def test_alpaca_without_input_and_sharegpt_speakers():
    assert FORMATS["alpaca"]({"instruction": "Hi.", "input": " ", "output": "Hello."})[0] == \
        {"role": "user", "content": "Hi."}
    speakers = [{"from": f, "value": f} for f in ("system", "user", "model", "human", "assistant")]
    assert [m["role"] for m in FORMATS["sharegpt"]({"conversations": speakers})] == \
        ["system", "user", "assistant", "user", "assistant"]


@pytest.mark.parametrize("record, reason", [
    ({"text": "no chat here"}, "unknown_format"),
    ({"messages": "hi"}, "missing_messages_field"),
    ({"messages": []}, "empty_conversation"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}]}, "unknown_role"),
    ({"messages": [{"content": "a"}]}, "missing_role"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": None}]},
     "content_not_a_string"),
    ({"messages": [{"role": "user", "content": "a"}]}, "no_assistant_turn"),
    ({"messages": [{"role": "assistant", "content": "a"}]}, "starts_with_assistant"),
    ({"messages": ["hi"]}, "message_not_an_object"),
    ({"conversations": [{"from": "bing", "value": "a"}]}, "unknown_role"),
    ({"instruction": "a"}, "missing_alpaca_field"),
    ({"instruction": "a", "output": 3}, "content_not_a_string"),
    ({"id": 1.5, "instruction": "a", "output": "b"}, "id_not_a_string_or_integer"),
    (["a list"], "record_not_an_object"),
])
def test_a_bad_record_names_its_reason(record, reason):
    with pytest.raises(BadRecord) as caught:
        conversation(record, "auto", "f.jsonl:1")
    assert caught.value.reason == reason


# --- reading --------------------------------------------------------------------------------------

GOOD = [{"id": "a", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "r"}]},
        {"conversations": [{"from": "human", "value": "q2"}, {"from": "gpt", "value": "r2"}]},
        {"id": 7, "instruction": "q3", "output": "r3"}]


def write_jsonl(path: Path, lines: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def test_read_counts_every_record_not_used_in_its_unit(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "data" / "chat.jsonl", GOOD + [
        "{not json", {"messages": [{"role": "user", "content": "q"}]}, [1, 2], {"text": "plain"},
        '{"instruction": "line\u2028separator", "output": "kept"}'])
    (tmp_path / "data" / "empty.jsonl").write_text("")
    (tmp_path / "data" / "notes.txt").write_text("not a data file")
    skipped = Skipped()
    found = read_conversations("data", "auto", skipped, "finetune.path")
    assert [cid for cid, _ in found] == ["a", "data/chat.jsonl:2", "7", "data/chat.jsonl:8"]
    assert found[3][1][0]["content"] == "line\u2028separator"  # lines split at \n only
    assert dict(skipped) == {"malformed_json_line": 1, "no_assistant_turn": 1,
                             "record_not_an_object": 1, "unknown_format": 1}
    assert skipped.examples["no_assistant_turn"] == ["data/chat.jsonl:5"]
    assert skipped.report()["skipped_files"] == {"empty_file": {"files": 1, "bytes": 0},
                                                  "unsupported_file_type": {"files": 1, "bytes": 15}}


def test_a_configured_format_reads_other_formats_as_bad(tmp_path):
    path = write_jsonl(tmp_path / "chat.jsonl", GOOD)
    skipped = Skipped()
    assert [cid for cid, _ in read_conversations(str(path), "alpaca", skipped, "k")] == ["7"]
    assert dict(skipped) == {"missing_alpaca_field": 2}
    with pytest.raises(ConfigError) as caught:
        read_conversations(str(path), "openai", Skipped(), "finetune.format")
    assert str(caught.value) == ("params.yaml: finetune.format: unknown chat format 'openai'; "
                                 "one of auto, alpaca, messages, sharegpt")


def test_json_array_parquet_and_jsonl_give_the_same_conversations(tmp_path):
    jsonl = read_conversations(str(write_jsonl(tmp_path / "a.jsonl", GOOD[:1])), "auto", Skipped(), "k")
    (tmp_path / "b.json").write_text(json.dumps(GOOD[:1]))
    array = read_conversations(str(tmp_path / "b.json"), "auto", Skipped(), "k")
    pq.write_table(pa.Table.from_pylist(GOOD[:1]), tmp_path / "c.parquet")
    parquet = read_conversations(str(tmp_path / "c.parquet"), "messages", Skipped(), "k")
    assert jsonl == array == parquet == [("a", FORMATS["messages"](GOOD[0]))]


def test_a_saved_dataset_reads_its_train_split_and_counts_the_others(tmp_path):
    import datasets

    rows = [{"instruction": f"q{i}", "output": f"r{i}"} for i in range(3)]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows),
                          "test": datasets.Dataset.from_list(rows[:1])}).save_to_disk(str(tmp_path / "ds"))
    skipped = Skipped()
    found = read_conversations(str(tmp_path / "ds"), "auto", skipped, "k")
    assert [m[0]["content"] for _, m in found] == ["q0", "q1", "q2"]
    assert found[0][0].endswith("ds:train:0")
    assert skipped.files == Counter(hf_other_split=1)


def test_a_folder_of_split_files_reads_train_only(tmp_path):
    write_jsonl(tmp_path / "ds" / "train.jsonl", GOOD)
    write_jsonl(tmp_path / "ds" / "test.jsonl", GOOD[:1])
    skipped = Skipped()
    assert len(read_conversations(str(tmp_path / "ds"), "auto", skipped, "k")) == 3
    assert skipped.files == Counter(hf_other_split=1)


def test_nothing_usable_is_one_data_error_line_naming_the_path(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"messages": []}, "{"])
    with pytest.raises(DataError) as caught:
        read_conversations(str(path), "auto", Skipped(), "finetune.path")
    assert str(caught.value) == (f"finetune.path: no usable conversation in {path} "
                                 "(1 record, empty_conversation; 1 record, malformed_json_line)")


# --- templates and the assistant mask -------------------------------------------------------------


def test_the_assistant_mask_covers_exactly_the_assistant_turns():
    tok = tokenizer()
    ids, mask = full_render(tok, CONVERSATION)
    assert runs(tok, ids, mask) == ["fine thanks<|im_end|>", "42<|im_end|>"]
    start, stop = tok.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    # the template's own special tokens are single ids although the tokenizer splits them in text
    assert tok.split_special_tokens and ids.count(start) == ids.count(stop) == len(CONVERSATION)
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    assert tok.decode(ids[1:]) == "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n"
                                         for m in CONVERSATION)


def test_the_prefix_fallback_gives_the_identical_mask():
    tagged, untagged = tokenizer(), tokenizer()
    untagged.chat_template = UNTAGGED
    assert GENERATION_TAG.search(UNTAGGED) is None  # so the prefix fallback renders it
    assert full_render(untagged, CONVERSATION) == full_render(tagged, CONVERSATION)


def test_the_generation_prompt_opens_an_assistant_turn():
    text = tokenizer().apply_chat_template(CONVERSATION[:2], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\n")


def test_a_template_that_writes_bos_gets_it_once():
    tok = tokenizer()
    assert CHATML.startswith("{% if bos_token %}{{ bos_token }}")
    tok.chat_template = CHATML.replace("{% if bos_token %}{{ bos_token }}{% endif %}", "")
    ids, mask = full_render(tok, CONVERSATION)
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id  # prepended
    tok.chat_template = CHATML
    ids, mask = full_render(tok, CONVERSATION)
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id
    assert runs(tok, ids, mask) == ["fine thanks<|im_end|>", "42<|im_end|>"]


@pytest.mark.parametrize("template, problem", [
    ("{% for message in messages %}{{ message['content'] }", "does not render"),
    ("{{ raise_exception('roles must alternate') }}", "roles must alternate"),
    ("{% for m in messages %}{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}"
     "PROMPT{% endif %}", "breaks the prefix property"),
])
def test_a_broken_template_is_one_data_error_line_naming_the_conversation(template, problem):
    tok = tokenizer()
    tok.chat_template = template
    with pytest.raises(DataError) as caught:
        sft_rows(tok, [("data.jsonl:3", CONVERSATION)], 64, Skipped())
    message = str(caught.value)
    assert message.startswith("conversation data.jsonl:3: the chat template ")
    assert problem in message and "\n" not in message


def test_content_holding_a_special_token_is_refused_and_counted():
    tok = tokenizer()
    assert {"<|im_start|>", "<|im_end|>", "<s>", "</s>", "<pad>"} <= special_texts(tok)
    bad = [(f"c{i}", [{"role": role, "content": f"x {text} y"} if role == "user" else
                      {"role": role, "content": "fine"} for role in ("user", "assistant")])
           for i, text in enumerate(sorted(special_texts(tok)))]
    bad.append(("sys", [{"role": "system", "content": "<|im_start|>system"}, *CONVERSATION[1:3]]))
    near = ("near", [{"role": "user", "content": "<|im_start| <|im_end"}, CONVERSATION[2]])
    skipped = Skipped()
    rows = sft_rows(tok, [*bad, near], 64, skipped)
    assert dict(skipped) == {"content_has_special_token": len(bad)}
    start = tok.convert_tokens_to_ids("<|im_start|>")
    assert len(rows) == 1 and int((rows[0, 0] == start).sum()) == 2  # only the template's two


def test_literal_special_text_never_maps_to_its_id():
    """The pitfall guarded against: without split_special_tokens=False the template's tokens
    would be text; with it and no refusal, user text would be a control token."""
    tok = tokenizer()
    start = tok.convert_tokens_to_ids("<|im_start|>")
    assert start not in encode_texts(tok, ["<|im_start|>"])[0]  # the project's text encoding
    with pytest.raises(BadRecord) as caught:
        render(tok, [{"role": "user", "content": "<|im_start|>"}, CONVERSATION[2]], 64)
    assert caught.value.reason == "content_has_special_token"
    for template in (CHATML, UNTAGGED):  # rendering leaves the tokenizer as it found it
        tok.chat_template = template
        assert start in render(tok, CONVERSATION, 64)[0]
        assert start not in tok.backend_tokenizer.encode("<|im_start|>").ids
        assert start not in encode_texts(tok, ["<|im_start|>"])[0]


def test_truncation_keeps_a_conversation_with_an_assistant_token_left():
    tok = tokenizer()
    ids, mask = full_render(tok, CONVERSATION)
    first = mask.index(1)
    skipped, counts = Skipped(), Counter()
    rows = sft_rows(tok, [("long", CONVERSATION), ("cut", CONVERSATION)], first + 1, skipped, counts)
    assert rows.shape == (2, 2, first + 1)
    assert counts == Counter(conversations=2, truncated=2, tokens=2 * (first + 1), assistant_tokens=2)
    assert list(rows[0, 0]) == ids[:first + 1]
    with pytest.raises(DataError):
        sft_rows(tok, [("short", CONVERSATION)], first, skipped)
    assert dict(skipped) == {"no_assistant_tokens_within_max_length": 1}
    assert skipped.examples["no_assistant_tokens_within_max_length"] == ["short"]


def test_rows_hold_padded_ids_and_assistant_labels():
    tok = tokenizer()
    ids, mask = full_render(tok, CONVERSATION)
    rows = sft_rows(tok, [("a", CONVERSATION)], len(ids) + 5, Skipped())
    assert rows.dtype == np.int64 and rows.shape == (1, 2, len(ids) + 5)
    assert list(rows[0, 0]) == ids + [tok.pad_token_id] * 5
    expected = [t if m else IGNORE_INDEX for t, m in zip(ids, mask)] + [IGNORE_INDEX] * 5
    assert list(rows[0, 1]) == expected
    assert tok.decode([t for t in rows[0, 1] if t != IGNORE_INDEX]) == "fine thanks<|im_end|>42<|im_end|>"


# --- vocabulary and model -------------------------------------------------------------------------


def test_chatml_tokens_are_added_once_and_unknown_templates_refused():
    tok = tokenizer(template=None)
    size = len(tok)
    assert prepare_tokenizer(tok, None) == ["<|im_start|>", "<|im_end|>"]
    assert prepare_tokenizer(tok, None) == [] and prepare_tokenizer(tok, "chatml") == []
    assert len(tok) == size + 2 and tok.chat_template == CHATML
    with pytest.raises(ConfigError) as caught:
        prepare_tokenizer(tok, "llama9")
    assert str(caught.value) == ("params.yaml: finetune.template: unknown chat template "
                                 "'llama9'; one of chatml, or null for the tokenizer's own")


def test_a_tokenizer_keeps_its_own_template_and_eos():
    tok = tokenizer(template=None)
    own = "{% for m in messages %}{{ m['content'] + eos_token }}{% endfor %}"
    tok.chat_template = own
    assert prepare_tokenizer(tok, None) == [] and tok.chat_template == own
    assert end_of_turn_token(tok) == tok.eos_token and end_of_turn(tok) == tok.eos_token_id


def test_resize_grows_the_embeddings_from_the_old_rows_and_sets_eos():
    tok = tokenizer(template=None)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2,
                                         num_key_value_heads=2, head_dim=8))
    old = model.get_input_embeddings().weight.detach().clone()
    prepare_tokenizer(tok, "chatml")
    resize_for_template(model, tok, end_of_turn_token(tok))
    new = model.get_input_embeddings().weight.detach()
    assert new.shape == (len(tok), 16) and torch.equal(new[:len(old)], old)
    added = new[len(old):]
    assert torch.isfinite(added).all() and added.abs().sum() > 0
    # drawn around the old rows' mean: closer to it than the old rows are on average
    mean = old.mean(0)
    assert (added - mean).norm(dim=1).mean() < (old - mean).norm(dim=1).mean() * 2
    assert model.generation_config.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>") == end_of_turn(tok)
    resize_for_template(model, tok, "<|im_end|>")  # nothing grew: nothing changes
    assert model.get_input_embeddings().weight.shape[0] == len(tok)
    with pytest.raises(ConfigError):
        resize_for_template(model, tok, "<|eot_id|>")
