"""Shared fixtures: a tiny real corpus, tokenizer, packed data and model, built offline."""

import json
import os
from pathlib import Path

import pytest

from pretrain.config.executor import ExecutorConfig
from pretrain.config.model import ModelConfig
from pretrain.config.tokens import PackConfig, TokenizerConfig
from pretrain.io import DocumentWriter
from pretrain.sources.builtin import stdlib_files

# Tests never reach the Hugging Face hub: an unknown name fails at once instead of retrying.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def _stdlib_docs(n: int) -> list[dict]:
    docs = []
    for rel, path in stdlib_files(include_tests=False)[:n]:
        docs.append({"id": rel, "text": path.read_text(encoding="utf-8"), "source": "stdlib",
                     "provenance": rel})
    return docs


@pytest.fixture(scope="session")
def debug_run(tmp_path_factory) -> Path:
    """A fresh clone (git, the debug profile as params.yaml) where the real `dvc repro` ran the
    whole pipeline once, its output in ``repro.log``. Tests that need a finished run take a copy
    (test_pipeline.copy_run) instead of running it again: about 2 minutes each on 2 cores."""
    from test_pipeline import debug_clone, run

    repo = debug_clone(tmp_path_factory.mktemp("debug-run"))
    (repo / "repro.log").write_text(run(["dvc", "repro"], repo))
    return repo


@pytest.fixture(scope="session")
def corpus_path(tmp_path_factory) -> Path:
    """A document table of 60 real standard-library files."""
    path = tmp_path_factory.mktemp("corpus") / "documents.parquet"
    with DocumentWriter(path) as writer:
        for doc in _stdlib_docs(60):
            writer.write(doc)
    return path


@pytest.fixture(scope="session")
def tiny_tokenizer(corpus_path):
    from pretrain.io import iter_documents
    from pretrain.tokens.tokenizer import train_bpe

    return train_bpe(TokenizerConfig(vocab_size=512), (d["text"] for d in iter_documents(corpus_path)))


@pytest.fixture(scope="session")
def packed_dir(tmp_path_factory, corpus_path, tiny_tokenizer) -> Path:
    from pretrain.tokens.pack import pack

    root = tmp_path_factory.mktemp("packed")
    pack(PackConfig(seq_len=32, val_fraction=0.2), ExecutorConfig(workers=1), tiny_tokenizer, corpus_path,
         root / "packed", root / "work", root / "tokens")
    return root / "packed"


@pytest.fixture(scope="session")
def tokens_dir(packed_dir) -> Path:
    """The token store pack wrote beside ``packed_dir`` (pretrain.token_store)."""
    return packed_dir.parent / "tokens"


@pytest.fixture(scope="session")
def init_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    from pretrain.model.build import init_model

    out = tmp_path_factory.mktemp("models") / "init"
    init_model(ModelConfig(preset="debug"), tiny_tokenizer, out)
    return out


@pytest.fixture
def write_docs():
    """Write a list of documents (dicts; source/provenance default to "test") to a Parquet table."""

    def write(path: Path, docs: list[dict]) -> Path:
        with DocumentWriter(path) as writer:
            for doc in docs:
                writer.write({"source": "test", "provenance": "test", **doc})
        return path

    return write


def sentencepiece_style(texts: list[str], legacy: bool):
    """A Llama-style tokenizer trained on ``texts``: BPE over "▁"-marked words with byte
    fallback (``<0x00>``..``<0xFF>`` are ordinary vocabulary, ids 3-258), BOS added by
    ``tokenizer(text)``, and the decoder of transformers' LlamaConverter (``▁`` -> space, bytes
    fused, one leading space stripped). ``legacy``: the dummy prefix comes from a normalizer
    (Llama-2's tokenizer.json); otherwise from a Metaspace pre-tokenizer with
    ``prepend_scheme="first"`` (Mistral, newer conversions)."""
    import json

    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")  # "▁word" pieces
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=700, special_tokens=specials,
                                                       limit_alphabet=80, show_progress=False))
    if legacy:
        tok.pre_tokenizer = None
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    state = json.loads(tok.to_str())
    learned = sorted(state["model"]["vocab"].items(), key=lambda item: item[1])
    ordered = specials + [f"<0x{i:02X}>" for i in range(256)] + [t for t, _ in learned if t not in specials]
    state["model"]["vocab"] = {token: i for i, token in enumerate(ordered)}
    state["added_tokens"] = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                              "normalized": False, "special": True} for i, t in enumerate(specials)]
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(state)), unk_token="<unk>",
                                   bos_token="<s>", eos_token="</s>", add_bos_token=True,
                                   clean_up_tokenization_spaces=False)


def trimmed_offsets(tokenizer):
    """A copy of a byte-level tokenizer whose offsets leave out a word's leading space, as
    RoBERTa's and GPT-2's (``processors.ByteLevel(trim_offsets=True)``) do."""
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.post_processor = processors.ByteLevel(trim_offsets=True)
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=tokenizer.bos_token,
                                   eos_token=tokenizer.eos_token, pad_token=tokenizer.pad_token,
                                   clean_up_tokenization_spaces=False)


@pytest.fixture(scope="session", params=["byte_level", "byte_level_trimmed", "sentencepiece_legacy",
                                         "sentencepiece_metaspace"])
def any_tokenizer(request, tiny_tokenizer):
    """Each tokenizer family the pipeline meets: its own byte-level BPE (also with GPT-2 /
    RoBERTa's trimmed offsets), and Llama-style SentencePiece vocabularies (pretrained /
    downscale / upscale bases)."""
    if request.param == "byte_level":
        return tiny_tokenizer
    if request.param == "byte_level_trimmed":
        return trimmed_offsets(tiny_tokenizer)
    texts = [path.read_text(encoding="utf-8") for _, path in stdlib_files(include_tests=False)[:40]]
    return sentencepiece_style(texts, legacy=request.param == "sentencepiece_legacy")


# A finished run's metrics and curves, small and made here: what the report stage reads.


def _write_tsv(path: Path, name: str, rows: list[tuple[int, float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("timestamp\tstep\t" + name + "\n"
                    + "".join(f"{1000 + s}\t{s}\t{v}\n" for s, v in rows))


@pytest.fixture
def inputs(run_dir: Path) -> dict[str, Path]:
    """The report's inputs (pretrain.report.figures.INPUTS) in ``run_dir``."""
    metrics = run_dir / "metrics"
    return {"clean": metrics / "clean.json", "scores": metrics / "clean_scores.json",
            "dedup": metrics / "dedup.json", "train": metrics / "train.json", "eval": metrics / "eval.json",
            "finetune": metrics / "finetune.json"}


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """metrics/ and dvclive/train/ of a 20-step run, with every file the report draws from."""
    metrics, live = tmp_path / "metrics", tmp_path / "dvclive" / "train"
    metrics.mkdir()
    curves = {"train/loss": [(s, 9.0 - 0.2 * s) for s in range(1, 21)],
              "val/loss": [(10, 7.4), (20, 5.5)],
              "train/learning_rate": [(s, min(s, 5) * 4e-4) for s in range(1, 21)],
              "train/grad_norm": [(s, 2.0 / s) for s in range(1, 21)],
              "train/tokens_per_second": [(s, 2700.0 + s) for s in range(1, 21)],
              "train/mfu": [(s, 0.30) for s in range(1, 21)],
              "train/mfu_measured": [(s, 0.45) for s in range(1, 21)],
              "train/memory_gb": [(s, 1.1) for s in range(1, 21)]}
    for name, rows in curves.items():
        _write_tsv(live / "plots" / "metrics" / f"{name}.tsv", name.split("/")[-1], rows)
    scores = [{"id": f"d{i}", "kind": "code" if i % 3 else "prose", "language": "en",
               "language_score": (i % 10) / 10 + 0.05, "kept": i % 4 != 0,
               "chars_in": 100 * (i + 1), "chars_out": 90 * (i + 1) if i % 4 else 0} for i in range(40)]
    files = {
        "clean_scores.json": scores,
        "clean.json": {"documents_in": 40, "documents_out": 30, "dropped": {"fineweb.line_punct_ratio": 6,
                                                                            "code.autogenerated": 4}},
        "dedup.json": {"documents_in": 30, "documents_out": 27,
                       "near": {"clusters": 2, "cluster_sizes": {"2": 1, "3": 1}, "bands": 20,
                                "rows": 5, "implied_threshold": 0.5493}},
        "train.json": {"steps": 20, "tokens": 40960, "first_loss": 8.8, "final_loss": 5.1,
                       "tokens_per_second": 2710.0, "precision": "fp32", "device": "cpu", "mfu": 0.3,
                       "peak_flops": 358.4e9, "peak_source": "nominal CPU peak: 2 cores x 2.80 GHz",
                       "mfu_measured": 0.45, "peak_flops_measured": 2.3e11},
        "eval.json": {"val": {"init": {"bits_per_byte": 3.37, "perplexity": 8639.3, "loss": 9.06},
                              "trained": {"bits_per_byte": 1.79, "perplexity": 123.3, "loss": 4.8},
                              "merged_50": {"bits_per_byte": 1.95, "perplexity": 160.2, "loss": 5.1}},
                      "general": {"init": {"bits_per_byte": 1.20}, "trained": {"bits_per_byte": 1.60},
                                  "merged_50": {"bits_per_byte": 1.31}},
                      "merge": {"method": "linear", "other": "init", "final": "merged_50", "sweep": [
                          {"weight": 0.0, "model": "init", "val_bits_per_byte": 3.37, "general_bits_per_byte": 1.2},
                          {"weight": 0.5, "model": "merged_50", "val_bits_per_byte": 1.95,
                           "general_bits_per_byte": 1.31},
                          {"weight": 1.0, "model": "trained", "val_bits_per_byte": 1.79,
                           "general_bits_per_byte": 1.6}]}},
        "finetune.json": {"task": "classify", "labels": ["neg", "pos"], "backbones": {
            name: {"steps": 20, "test": {"accuracy": acc, "f1_macro": acc, "confusion_matrix": matrix}}
            for name, acc, matrix in (("final", 0.9, [[9, 1], [1, 9]]), ("init", 0.6, [[6, 4], [4, 6]]))}},
    }
    for name, value in files.items():
        (metrics / name).write_text(json.dumps(value))
    return tmp_path
