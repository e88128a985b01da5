"""Byte-level BPE trained on real text, saved in Hugging Face format, or taken from a path."""

import sysconfig
from pathlib import Path

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from pretrain.config.tokens import TokenizerConfig
from pretrain.errors import ConfigError
from pretrain.tokens.tokenizer import build_tokenizer, load_tokenizer, train_bpe

STDLIB = Path(sysconfig.get_paths()["stdlib"])
FILES = ["textwrap.py", "string.py", "bisect.py", "shlex.py", "colorsys.py"]
CODE = 'def naïve(x: str) -> str:\n\t"""Ünïcödé — 日本語 🐍"""  \r\n    return x + "\\u00e9"\n'


@pytest.fixture(scope="module")
def texts():
    return [(STDLIB / name).read_text(encoding="utf-8") for name in FILES]


@pytest.fixture(scope="module")
def tok(texts):
    return train_bpe(TokenizerConfig(vocab_size=400), iter(texts), length=len(texts))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, texts):
    from pretrain.io import DocumentWriter

    path = tmp_path_factory.mktemp("tok") / "documents.parquet"
    with DocumentWriter(path) as writer:
        for name, text in zip(FILES, texts):
            writer.write({"id": name, "text": text, "source": "stdlib", "provenance": name})
    return path


def test_special_tokens_take_the_first_ids(tok):
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    assert tok.convert_ids_to_tokens([0, 1, 2]) == ["<pad>", "<s>", "</s>"]


def test_custom_special_tokens_keep_their_ids(texts):
    cfg = TokenizerConfig(vocab_size=300, bos_token="<|bos|>", eos_token="<|eos|>", pad_token="<|pad|>")
    tok = train_bpe(cfg, iter(texts))
    assert tok.convert_tokens_to_ids(["<|pad|>", "<|bos|>", "<|eos|>"]) == [0, 1, 2]
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<|bos|>", "<|eos|>", "<|pad|>")


def test_vocab_size_is_as_configured(tok):
    assert len(tok) == 400
    assert sorted(tok.get_vocab().values()) == list(range(400))


def test_learned_merges_compress_the_training_text(tok, texts):
    assert len(tok.encode(texts[0])) < len(texts[0].encode("utf-8")) / 2


@pytest.mark.parametrize("text", [CODE, "", " leading space", "\x00\x7f control bytes \ufeff"])
def test_decode_inverts_encode(tok, text):
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text
    assert not {0, 1, 2} & set(ids)  # no unknown token, no special tokens added
    # By default a text starts with BOS, as every training document does (Llama's convention).
    assert tok.encode(text) == [tok.bos_token_id] + ids


def test_saved_tokenizer_encodes_special_token_text_as_text_like_pack(tok, tmp_path):
    """Whoever loads the saved tokenizer (lm-eval, a user's script) gets what training saw: the
    literal "<s>" of a document is text, and tokenizer(text) starts with one BOS."""
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "re.compile(r'(?P<s>x)') <pad> </s>"
    ids = loaded(text)["input_ids"]
    assert ids[0] == loaded.bos_token_id and ids.count(loaded.bos_token_id) == 1
    assert not {loaded.eos_token_id, loaded.pad_token_id} & set(ids)
    assert loaded.decode(ids, skip_special_tokens=True) == text


def test_build_tokenizer_saves_a_folder_autotokenizer_loads(tok, corpus, tmp_path):
    out = tmp_path / "tokenizer"
    report = build_tokenizer(TokenizerConfig(vocab_size=400), corpus, out)
    assert report == {"origin": "trained", "vocab_size": 400, "bos_token_id": 1, "eos_token_id": 2,
                      "pad_token_id": 0}
    loaded = AutoTokenizer.from_pretrained(out)
    assert len(loaded) == 400
    assert (loaded.pad_token_id, loaded.bos_token_id, loaded.eos_token_id) == (0, 1, 2)
    assert loaded.decode(loaded.encode(CODE), skip_special_tokens=True) == CODE
    assert loaded.get_vocab() == tok.get_vocab()  # trained from the table's text, like `tok`


def test_tokenizer_path_copies_an_existing_tokenizer(tok, tmp_path):
    saved = tmp_path / "existing"
    tok.save_pretrained(saved)
    out = tmp_path / "tokenizer"
    # The corpus is not read when a tokenizer is given.
    report = build_tokenizer(TokenizerConfig(path=str(saved)), tmp_path / "missing.parquet", out)
    assert report["origin"] == str(saved) and report["vocab_size"] == 400
    copied = AutoTokenizer.from_pretrained(out)
    assert copied.get_vocab() == tok.get_vocab()
    assert copied.encode(CODE) == tok.encode(CODE)


def test_tokenizer_without_pad_pads_with_eos(tok, tmp_path):
    no_pad = PreTrainedTokenizerFast(tokenizer_object=tok.backend_tokenizer, bos_token="<s>",
                                     eos_token="</s>")
    no_pad.save_pretrained(tmp_path / "no_pad")
    loaded = load_tokenizer(tmp_path / "no_pad")
    assert loaded.pad_token_id == loaded.eos_token_id == 2


def test_tokenizer_without_eos_is_a_config_error(tok, tmp_path):
    PreTrainedTokenizerFast(tokenizer_object=tok.backend_tokenizer).save_pretrained(tmp_path / "no_eos")
    with pytest.raises(ConfigError, match="no end-of-sequence token"):
        load_tokenizer(tmp_path / "no_eos")


@pytest.mark.parametrize("kind", ["missing", "empty", "garbage"])
def test_bad_tokenizer_path_is_a_config_error(tmp_path, corpus, kind):
    path = tmp_path / kind
    if kind != "missing":
        path.mkdir()
    if kind == "garbage":
        (path / "tokenizer.json").write_text("{not json")
    out = tmp_path / "tokenizer"
    with pytest.raises(ConfigError, match=rf"tokenizer\.path: cannot load a tokenizer from '{path}'"):
        build_tokenizer(TokenizerConfig(path=str(path)), corpus, out)
    assert not out.exists()


@pytest.mark.parametrize("legacy", [True, False])
def test_a_base_tokenizer_is_saved_to_encode_like_pack(tmp_path, corpus, texts, legacy):
    """tokenizer.path / model.base: a Llama-style tokenizer taken as it is, except that the
    literal text of its special tokens stays text for every later user."""
    from conftest import sentencepiece_style

    sentencepiece_style(texts, legacy).save_pretrained(tmp_path / "base")
    build_tokenizer(TokenizerConfig(path=str(tmp_path / "base")), corpus, tmp_path / "out")
    loaded = AutoTokenizer.from_pretrained(tmp_path / "out")
    text = "if m.group('s') == '<s>': return '</s>'"
    ids = loaded(text)["input_ids"]
    assert ids[0] == loaded.bos_token_id and ids.count(loaded.bos_token_id) == 1
    assert loaded.eos_token_id not in ids
    assert loaded.decode(ids, skip_special_tokens=True) == text
