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


def test_build_tokenizer_saves_a_folder_autotokenizer_loads(tok, corpus, texts, tmp_path):
    out = tmp_path / "tokenizer"
    report = build_tokenizer(TokenizerConfig(vocab_size=400), corpus, out)
    size = sum(len(t.encode("utf-8")) for t in texts)
    assert report == {"origin": "trained", "vocab_size": 400, "bos_token_id": 1, "eos_token_id": 2,
                      "pad_token_id": 0, "sample": {"documents": 5, "bytes": size, "corpus_documents": 5,
                                                    "corpus_bytes": size}}
    loaded = AutoTokenizer.from_pretrained(out)
    assert len(loaded) == 400
    assert (loaded.pad_token_id, loaded.bos_token_id, loaded.eos_token_id) == (0, 1, 2)
    assert loaded.decode(loaded.encode(CODE), skip_special_tokens=True) == CODE
    assert loaded.get_vocab() == tok.get_vocab()  # trained from the table's text, like `tok`


def one_document(folder: Path, text: str) -> Path:
    from pretrain.io import DocumentWriter

    with DocumentWriter(folder / "one.parquet") as writer:
        writer.write({"id": "a", "text": text, "source": "s", "provenance": "p"})
    return folder / "one.parquet"


def test_a_vocabulary_smaller_than_asked_is_a_one_line_warning(tmp_path):
    """Too little text for the vocabulary asked: BPE runs out of pairs seen min_frequency times."""
    path = one_document(tmp_path, "MY FRIEND IS A BIRD. " * 3)
    report = build_tokenizer(TokenizerConfig(vocab_size=1024), path, tmp_path / "tokenizer")
    learned = report["vocab_size"]
    assert learned < 300  # the smallest vocab_size params accept
    [warning] = report["warnings"]
    assert "\n" not in warning and warning == (
        f"tokenizer: learned a vocabulary of {learned} tokens, fewer than tokenizer.vocab_size 1024: "
        "BPE found no more pairs of tokens that occur at least tokenizer.min_frequency (2) times in "
        "the 1 document (63 bytes) "
        "it trained on; use more text or a lower tokenizer.min_frequency")  # vocab_size: 2xx is refused


def test_the_warning_names_the_vocabulary_size_it_learned_when_params_accept_it(texts, corpus, tmp_path):
    report = build_tokenizer(TokenizerConfig(vocab_size=100_000, min_frequency=1), corpus, tmp_path / "tok")
    learned = report["vocab_size"]
    assert 300 <= learned < 100_000
    [warning] = report["warnings"]
    assert warning.endswith(f"(1) times in the 5 documents ({sum(len(t.encode()) for t in texts):,} bytes) "
                            f"it trained on; use more text or tokenizer.vocab_size: {learned}")
    # the remedy works: that vocabulary, asked for, is learned without a warning
    again = build_tokenizer(TokenizerConfig(vocab_size=learned, min_frequency=1), corpus, tmp_path / "again")
    assert again["vocab_size"] == learned and "warnings" not in again


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


def sampled_ids(corpus, sample_bytes, seed):
    """The ids a sample of ``sample_bytes`` must hold: lowest sample_rank first until enough text."""
    from pretrain.io import iter_documents
    from pretrain.tokens.tokenizer import sample_rank

    chosen, size = [], 0
    for doc in sorted(iter_documents(corpus), key=lambda d: sample_rank(d["id"], seed)):
        if size >= sample_bytes:
            break
        chosen.append(doc["id"])
        size += len(doc["text"].encode("utf-8"))
    return chosen, size


def test_the_sample_is_the_lowest_ranked_documents_up_to_its_size_in_corpus_order(corpus_path):
    from pretrain.io import iter_documents
    from pretrain.tokens.tokenizer import TextSample

    docs = list(iter_documents(corpus_path))
    total = sum(len(d["text"].encode("utf-8")) for d in docs)
    for seed in (0, 1):
        chosen, size = sampled_ids(corpus_path, total // 4, seed)
        sample = TextSample(corpus_path, total // 4, seed)
        assert list(sample) == [d["text"] for d in docs if d["id"] in chosen]
        assert sample.report() == {"documents": len(chosen), "bytes": size, "corpus_documents": len(docs),
                                   "corpus_bytes": total}
        assert total // 4 <= size < total // 2
    assert sampled_ids(corpus_path, total // 4, 0) != sampled_ids(corpus_path, total // 4, 1)
    assert list(TextSample(corpus_path, total + 1, 0)) == [d["text"] for d in docs]  # smaller: all of it


def test_a_sampled_tokenizer_sees_only_the_sample_and_is_the_same_for_any_shards(
        corpus_path, tmp_path, monkeypatch):
    """The trainer gets the sample's texts, not the corpus' (its memory follows the sample), and
    the same ones for one shard or three."""
    from pretrain.io import DocumentWriter, iter_documents, shard_name
    from pretrain.tokens import tokenizer as module

    docs = list(iter_documents(corpus_path))
    (tmp_path / "three").mkdir()
    for i in range(3):
        with DocumentWriter(tmp_path / "three" / shard_name(i)) as writer:
            for doc in docs[i * len(docs) // 3:(i + 1) * len(docs) // 3]:
                writer.write(doc)
    seen, real = [], module.train_bpe

    def spy(cfg, texts, length=None):
        seen.append(list(texts))
        assert length == len(seen[-1])
        return real(cfg, iter(seen[-1]), length)

    monkeypatch.setattr(module, "train_bpe", spy)
    cfg = TokenizerConfig(vocab_size=400, sample_mb=0.2, sample_seed=3)
    reports = [build_tokenizer(cfg, src, tmp_path / name)
               for src, name in ((corpus_path, "one"), (tmp_path / "three", "three_out"))]
    chosen, size = sampled_ids(corpus_path, 200_000, 3)
    assert seen[0] == seen[1] == [d["text"] for d in docs if d["id"] in chosen]
    assert reports[0] == reports[1] and reports[0]["sample"]["bytes"] == size < reports[0]["sample"]["corpus_bytes"] / 2
    assert (tmp_path / "one" / "tokenizer.json").read_bytes() == (tmp_path / "three_out" / "tokenizer.json").read_bytes()


def test_sample_mb_must_be_positive():
    with pytest.raises(ValueError, match="sample_mb"):
        TokenizerConfig(sample_mb=0)
