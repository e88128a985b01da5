"""The export stage: GGUF files of every type read back by transformers (teacher-forced top-1
agreement and perplexity against the Hugging Face model, the pass criteria; logits and greedy
tokens reported), by llama.cpp when llama-cpp-python is installed, used again as model.base (the
round trip), and the one-line errors for what cannot be written or misses its thresholds."""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from pretrain.bases import load_base
from pretrain.config import ConfigError, build, load_section
from pretrain.config.merge import ExportConfig
from pretrain.config.model import ModelConfig
from pretrain.errors import DataError
from pretrain.export.check import check_file, greedy, llama_cpp_check, misses, prompt_ids
from pretrain.export.gguf import permute, write_gguf
from pretrain.export.runner import export, summary_lines
from pretrain.merge.manifest import MANIFEST
from pretrain.model.build import init_model
from pretrain.token_store import PackedRows
from pretrain.tokens.tokenizer import load_tokenizer

PROMPTS = ["def find_max(numbers):", "The Python language is", "import os\n"]
ROOT = Path(__file__).resolve().parents[2]
LOGIT_TOLERANCE = 1e-2  # largest absolute logit difference of an F32 or F16 file from the model


@pytest.fixture(scope="module")
def trained(tmp_path_factory, init_dir, tokens_dir):
    """The debug model trained until it has learnt a few rows of the corpus by heart (loss < 0.5):
    sharp next-token distributions, as a trained model has. A random init's near-uniform logits
    turn any rounding into a different greedy continuation within a few tokens."""
    model = AutoModelForCausalLM.from_pretrained(init_dir)
    rows = torch.from_numpy(np.asarray(PackedRows(tokens_dir, "train")[0:16], dtype=np.int64))
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(120):
        batch = rows[torch.randint(0, len(rows), (8,))]
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert loss.item() < 0.5
    folder = tmp_path_factory.mktemp("export") / "trained"
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(init_dir).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def reference(trained):
    return (AutoModelForCausalLM.from_pretrained(trained, dtype=torch.float32).eval(),
            AutoTokenizer.from_pretrained(trained))


@pytest.mark.parametrize("kind", ["F32", "F16", "BF16", "Q8_0", "Q5_0", "Q4_0"])
def test_each_type_reads_back_through_transformers_and_passes(reference, tokens_dir, tmp_path, kind):
    """A correctly written file of every type meets params.yaml's thresholds."""
    model, tokenizer = reference
    info = write_gguf(model, tokenizer, tmp_path / f"m-{kind}.gguf", kind, "test")
    assert (tmp_path / f"m-{kind}.gguf").stat().st_size == info["bytes"]
    if kind != "F32":  # the norms (two per layer and the final one) stay F32
        assert info["tensor_types"]["F32"] == 2 * 2 + 1
    ids = prompt_ids(tokenizer, PROMPTS)
    result, tokens = check_file(tmp_path / f"m-{kind}.gguf", model, tokenizer, PROMPTS,
                                PackedRows(tokens_dir, "val"), new_tokens=16, batches=2,
                                reference_tokens=[greedy(model, p, 16) for p in ids])
    assert len(tokens) == 3 and all(len(t) == 16 for t in tokens) and result["greedy"]["tokens"] == 48
    assert result["positions"] == 2 * 8 * 31  # two batches of 8 rows of 32 tokens, 31 predictions each
    if kind in ("F32", "F16"):
        assert result["max_abs_logit_diff"] <= LOGIT_TOLERANCE
        assert result["top1_agreement"] == 1.0 and abs(result["perplexity_gap_percent"]) < 0.01
    else:  # rounded weights: the differences are measured and reported, not hidden
        assert result["max_abs_logit_diff"] > LOGIT_TOLERANCE and result["mean_kl_divergence"] > 0
    assert misses(tmp_path / f"m-{kind}.gguf", kind, {"transformers": result, "llama_cpp": {"skipped": ""}},
                  load_section("export", ROOT / "params.yaml")) == []
    bits = {"F32": 32, "F16": 16, "BF16": 16, "Q8_0": 8.5, "Q5_0": 5.5, "Q4_0": 4.5}[kind]
    assert bits <= info["bits_per_weight"] < bits + 8  # F16 fallbacks and F32 norms on a tiny model


def swapped_nibbles(quantize):
    """gguf-py's quantizer with a packing bug in Q4_0: each byte's two 4-bit values swapped (the
    block's values i and i + 16 exchanged), the scales right."""
    import gguf

    def damaged(array, qtype):
        data = quantize(array, qtype)
        if qtype == gguf.GGMLQuantizationType.Q4_0:
            blocks = data.reshape(-1, 18)  # Q4_0 block: an fp16 scale, then 16 bytes of 32 values
            blocks[:, 2:] = (blocks[:, 2:] >> 4) | (blocks[:, 2:] << 4)
        return data
    return damaged


def finished_run(trained, tmp_path) -> Path:
    merged = tmp_path / "merged"
    merged.mkdir()
    (merged / MANIFEST).write_text(json.dumps({"method": "none", "final": None}))
    return merged


def test_a_damaged_file_fails_the_stage_in_one_line(trained, tokens_dir, tmp_path, monkeypatch):
    """A Q4_0 file written with a packing bug reads back, decodes and has a perplexity: the
    figures against the model name it, and nothing is written."""
    import gguf

    monkeypatch.setattr(gguf.quants, "quantize", swapped_nibbles(gguf.quants.quantize))
    merged, out = finished_run(trained, tmp_path), tmp_path / "gguf"
    with pytest.raises(DataError) as err:
        export(ExportConfig(types=["Q8_0", "Q4_0"], check_batches=1), PROMPTS, trained, merged, tokens_dir, out)
    file = re.escape(str(out / "model-Q4_0.gguf"))
    # On validation rows this over-fitted model rarely predicts well, so its perplexity may move
    # less than its argmaxes: the top-1 figure is named first, the perplexity gap when it misses too.
    assert re.fullmatch(rf"export: {file}: top-1 agreement 0\.\d{{4}} < 0\.\d+ \(export\.min_top1_agreement\.Q4_0\)"
                        rf"(; {file}: perplexity gap \+\d+\.\d{{3}}% > \d+\.\d+% "
                        r"\(export\.max_perplexity_gap_percent\.Q4_0\))?", str(err.value)), str(err.value)
    assert not out.exists() and not list(tmp_path.glob(".gguf*"))


def test_the_stage_exits_with_the_one_line(trained, tokens_dir, tmp_path):
    """The same through stages/export.py, with params.yaml's thresholds: exit code 1, one
    ``error:`` line, no traceback, no output and no metrics."""
    merged = finished_run(trained, tmp_path)
    (tmp_path / "params.yaml").write_text("export:\n  types: [Q4_0]\n  check_batches: 1\n")
    # the stage script run with swapped_nibbles' damage done to gguf-py's Q4_0 quantizer
    damaged = ("import sys, runpy, gguf\n"
               "quantize = gguf.quants.quantize\n"
               "def damaged(array, qtype):\n"
               "    data = quantize(array, qtype)\n"
               "    if qtype == gguf.GGMLQuantizationType.Q4_0:\n"
               "        q = data.reshape(-1, 18)[:, 2:]\n"
               "        q[:] = (q >> 4) | (q << 4)\n"
               "    return data\n"
               "gguf.quants.quantize = damaged\n"
               f"sys.argv = [{str(ROOT / 'stages/export.py')!r}] + sys.argv[1:]\n"
               "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    result = subprocess.run([sys.executable, "-c", damaged, "--params", "params.yaml", "--trained", str(trained),
                             "--merged", str(merged), "--finetuned", str(tmp_path / "finetuned"),
                             "--tokens", str(tokens_dir), "--out", "gguf", "--metrics", "export.json"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: export: gguf/model-Q4_0.gguf: top-1 agreement 0."), \
        result.stderr
    assert "(export.min_top1_agreement.Q4_0)" in errors[0]
    assert not (tmp_path / "gguf").exists() and not (tmp_path / "export.json").exists()


def test_figures_that_are_not_numbers_miss():
    """A file whose logits are NaN has NaN figures: they fail, where ``value < threshold`` would not."""
    cfg = ExportConfig(min_top1_agreement={"F16": 0.99}, max_perplexity_gap_percent={"F16": 0.1})
    nan = {"top1_agreement": math.nan, "perplexity_gap_percent": math.nan}
    assert misses(Path("m.gguf"), "F16", {"transformers": nan, "llama_cpp": {"skipped": ""}}, cfg) == [
        "m.gguf: top-1 agreement nan < 0.99 (export.min_top1_agreement.F16)",
        "m.gguf: perplexity gap +nan% > 0.1% (export.max_perplexity_gap_percent.F16)"]
    cpp = {"tokenization_identical": 2, "prompts": 3}
    good = {"top1_agreement": 1.0, "perplexity_gap_percent": 0.0}
    assert misses(Path("m.gguf"), "F16", {"transformers": good, "llama_cpp": cpp}, cfg) == [
        "m.gguf: llama.cpp tokenizes 1 of 3 evaluate.prompts differently from the tokenizer"]


def test_quantized_files_hold_quantized_tensors(reference, tmp_path):
    import gguf

    model, tokenizer = reference
    write_gguf(model, tokenizer, tmp_path / "q4.gguf", "Q4_0", "test")
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(tmp_path / "q4.gguf").tensors}
    assert types["blk.0.attn_q.weight"] == "Q4_0" and types["token_embd.weight"] == "Q4_0"
    assert types["output.weight"] == "Q8_0"  # kept at higher precision, as llama-quantize does
    assert types["blk.0.ffn_down.weight"] == "F16"  # 176 columns: not whole 32-value blocks
    assert types["blk.0.attn_norm.weight"] == "F32"


def test_metadata_follows_llama_cpp(reference, tmp_path):
    import gguf

    model, tokenizer = reference
    write_gguf(model, tokenizer, tmp_path / "m.gguf", "F16", "my model")
    reader = gguf.GGUFReader(tmp_path / "m.gguf")
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    c = model.config
    assert fields["general.architecture"] == "llama" and fields["general.name"] == "my model"
    assert fields["general.file_type"] == gguf.LlamaFileType.MOSTLY_F16
    assert (fields["llama.block_count"], fields["llama.embedding_length"], fields["llama.attention.head_count_kv"],
            fields["llama.rope.dimension_count"]) == (c.num_hidden_layers, c.hidden_size, c.num_key_value_heads, 16)
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "gpt-2"
    assert fields["tokenizer.ggml.tokens"][:3] == ["<pad>", "<s>", "</s>"]
    assert fields["tokenizer.ggml.bos_token_id"] == 1 and fields["tokenizer.ggml.add_bos_token"] is True
    assert "tokenizer.chat_template" not in fields  # a base model
    q = next(t for t in reader.tensors if t.name == "blk.0.attn_q.weight")
    hf = model.state_dict()["model.layers.0.self_attn.q_proj.weight"].numpy()
    np.testing.assert_array_equal(q.data, permute(hf, c.num_attention_heads).astype(np.float16))


def test_tied_embeddings_are_stored_once(reference, tmp_path, init_dir):
    import gguf

    model, tokenizer = reference
    config = AutoConfig.from_pretrained(init_dir, tie_word_embeddings=True)
    torch.manual_seed(0)
    tied = AutoModelForCausalLM.from_config(config).eval()
    assert tied.lm_head.weight is tied.model.embed_tokens.weight
    write_gguf(tied, tokenizer, tmp_path / "tied.gguf", "F16", "tied")
    assert "output.weight" not in {t.name for t in gguf.GGUFReader(tmp_path / "tied.gguf").tensors}
    # the embeddings are the output layer too: Q8_0 in a 4-bit file, as llama-quantize does
    write_gguf(tied, tokenizer, tmp_path / "tied-q4.gguf", "Q4_0", "tied")
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(tmp_path / "tied-q4.gguf").tensors}
    assert types["token_embd.weight"] == "Q8_0" and types["blk.0.attn_q.weight"] == "Q4_0"
    back = load_base(str(tmp_path / "tied.gguf"))
    assert back.config.tie_word_embeddings
    # a config that says tied over weights that differ keeps its output layer: nothing is lost
    untied = AutoModelForCausalLM.from_pretrained(init_dir, tie_word_embeddings=True).eval()
    write_gguf(untied, tokenizer, tmp_path / "untied.gguf", "F16", "untied")
    assert "output.weight" in {t.name for t in gguf.GGUFReader(tmp_path / "untied.gguf").tensors}
    ids = torch.tensor([prompt_ids(tokenizer, PROMPTS[:1])[0]])
    assert (back(ids).logits - tied(ids).logits).abs().max() <= LOGIT_TOLERANCE


def test_what_cannot_be_written_is_refused_in_one_line(reference, tmp_path, any_tokenizer, request):
    from transformers import Phi3Config, Phi3ForCausalLM

    model, tokenizer = reference
    phi = Phi3ForCausalLM(Phi3Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                     num_attention_heads=2, num_key_value_heads=2, pad_token_id=0))
    with pytest.raises(ConfigError, match="a 'phi3' model cannot be exported"):
        write_gguf(phi, tokenizer, tmp_path / "phi.gguf", "F16", "x")
    if request.node.callspec.params["any_tokenizer"].startswith("sentencepiece"):
        with pytest.raises(ConfigError, match="the GGUF writer stores byte-level BPE with GPT-2's pre-tokenizer"):
            write_gguf(model, any_tokenizer, tmp_path / "spm.gguf", "F16", "x")
    assert not list(tmp_path.glob("*.gguf")) and not list(tmp_path.glob(".*"))


@pytest.mark.parametrize("raw, message", [
    ({"types": ["Q4_K"]}, r"export.types\[0\]: expected one of"),
    ({"types": ["F16", "F16"]}, "each type once"),
    ({"min_top1_agreement": {"Q4_K": 0.9}}, r"export.min_top1_agreement: expected one of \['F32', .*got 'Q4_K'"),
    ({"min_top1_agreement": {"Q4_0": 1.5}}, r"export.min_top1_agreement.Q4_0: expected a value in \[0, 1\]"),
    ({"min_top1_agreement": {"Q4_0": "high"}}, r"export.min_top1_agreement.Q4_0: expected float, got str 'high'"),
    ({"max_perplexity_gap_percent": {"Q8_0": -1}}, r"export.max_perplexity_gap_percent.Q8_0: expected a value >= 0"),
    ({"types": ["F16", "Q4_0"], "max_perplexity_gap_percent": {"F16": 0.1}},
     r"export.max_perplexity_gap_percent: no value for Q4_0 \(export.types lists it\)"),
])
def test_bad_export_params_are_named(raw, message):
    with pytest.raises(ConfigError, match=message):
        build(ExportConfig, raw, where="params.yaml: export")


def test_thresholds_read_from_params_are_numbers():
    cfg = build(ExportConfig, {"types": ["Q8_0"], "min_top1_agreement": {"Q8_0": 1}}, where="params.yaml: export")
    assert cfg.min_top1_agreement == {"Q8_0": 1.0} and isinstance(cfg.min_top1_agreement["Q8_0"], float)


def test_the_stage_exports_the_final_model_and_checks_it(trained, tokens_dir, tmp_path):
    merged = finished_run(trained, tmp_path)
    report = export(ExportConfig(types=["F16", "Q8_0"], check_batches=1), PROMPTS, trained, merged,
                    tokens_dir, tmp_path / "gguf")
    assert sorted(p.name for p in (tmp_path / "gguf").iterdir()) == ["model-F16.gguf", "model-Q8_0.gguf"]
    assert report["model"] == "trained" and "convert_hf_to_gguf.py" in report["converter"]
    f16, q8 = report["files"]["F16"], report["files"]["Q8_0"]
    assert f16["transformers"]["max_abs_logit_diff"] <= LOGIT_TOLERANCE
    assert f16["transformers"]["top1_agreement"] == 1.0 and f16["transformers"]["positions"] == 8 * 31
    defaults = ExportConfig()
    assert q8["thresholds"] == {"min_top1_agreement": defaults.min_top1_agreement["Q8_0"],
                                "max_perplexity_gap_percent": defaults.max_perplexity_gap_percent["Q8_0"]}
    lines = summary_lines(report)
    assert len(lines) == 2 and "top-1 agreement 1.0000" in lines[0] and "greedy 48/48 tokens" in lines[0]
    assert json.dumps(report)  # metrics/export.json: plain JSON


def test_no_types_writes_an_empty_folder(tmp_path):
    report = export(ExportConfig(), PROMPTS, tmp_path / "none", tmp_path / "none", tmp_path / "none",
                    tmp_path / "gguf")
    assert report == {"types": [], "files": {}} and list((tmp_path / "gguf").iterdir()) == []


def test_an_exported_file_is_a_base_for_continued_pretraining(reference, tmp_path):
    """The round trip: our F16 export as model.base of a new run gives the same model and tokenizer."""
    model, tokenizer = reference
    bases = tmp_path / "bases"
    bases.mkdir()
    write_gguf(model, tokenizer, bases / "model-F16.gguf", "F16", "round trip")
    base = str(bases / "model-F16.gguf")
    again = load_tokenizer(base, key="model.base")
    assert again("def f(x):\n    return x  # café", add_special_tokens=False)["input_ids"] == \
        tokenizer("def f(x):\n    return x  # café", add_special_tokens=False)["input_ids"]
    report = init_model(ModelConfig(init="pretrained", base=base), again, tmp_path / "init")
    assert report["init"] == "pretrained"
    init = AutoModelForCausalLM.from_pretrained(tmp_path / "init").eval()
    ids = torch.tensor(prompt_ids(tokenizer, PROMPTS[:1]))
    assert (init(ids).logits - model(ids).logits).abs().max() <= LOGIT_TOLERANCE


def test_llama_cpp_reads_the_f16_file_as_transformers_does(reference, tmp_path):
    """A real llama.cpp runtime (pip install llama-cpp-python, which builds llama.cpp from source:
    docs/export.md) tokenizes the prompts as our tokenizer does and decodes the same greedy tokens."""
    pytest.importorskip("llama_cpp")
    model, tokenizer = reference
    write_gguf(model, tokenizer, tmp_path / "m.gguf", "F16", "test")
    gguf_model = load_base(str(tmp_path / "m.gguf")).eval()
    tokens = [greedy(gguf_model, ids, 16) for ids in prompt_ids(tokenizer, PROMPTS)]
    result = llama_cpp_check(tmp_path / "m.gguf", tokenizer, PROMPTS, tokens, 16)
    assert result["tokenization_identical"] == result["prompts"] == 3
    assert result["greedy"]["tokens_agreeing"] == result["greedy"]["tokens"] == 48


def test_export_model_finetuned_needs_the_sft_model(tmp_path):
    import json

    from pretrain.config.merge import ExportConfig
    from pretrain.errors import ConfigError
    from pretrain.export.runner import exported

    folder = tmp_path / "finetuned"
    folder.mkdir()
    (folder / "finetune.json").write_text(json.dumps({"task": "classify"}))
    with pytest.raises(ConfigError, match="holds no sft model \\(task classify\\)"):
        exported(ExportConfig(model="finetuned"), tmp_path / "t", tmp_path / "m", folder)
    (folder / "finetune.json").write_text(json.dumps({"task": "sft"}))
    assert exported(ExportConfig(model="finetuned"), tmp_path / "t", tmp_path / "m", folder) == \
        (folder, "finetuned (sft)")
