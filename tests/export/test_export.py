"""The export stage: GGUF files of every type read back by transformers (logits, greedy tokens,
perplexity against the Hugging Face model), by llama.cpp when llama-cpp-python is installed,
used again as model.base (the round trip), and the one-line errors for what cannot be written."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from pretrain.bases import load_base
from pretrain.config import ConfigError, build
from pretrain.config.merge import ExportConfig
from pretrain.config.model import ModelConfig
from pretrain.export.check import LOGIT_TOLERANCE, check_file, llama_cpp_check, prompt_ids
from pretrain.export.gguf import permute, write_gguf
from pretrain.export.runner import export, summary_lines
from pretrain.merge.manifest import MANIFEST
from pretrain.model.build import init_model
from pretrain.token_store import PackedRows
from pretrain.tokens.tokenizer import load_tokenizer

PROMPTS = ["def find_max(numbers):", "The Python language is", "import os\n"]


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
def test_each_type_reads_back_through_transformers(reference, tokens_dir, tmp_path, kind):
    model, tokenizer = reference
    info = write_gguf(model, tokenizer, tmp_path / f"m-{kind}.gguf", kind, "test")
    assert (tmp_path / f"m-{kind}.gguf").stat().st_size == info["bytes"]
    if kind != "F32":  # the norms (two per layer and the final one) stay F32
        assert info["tensor_types"]["F32"] == 2 * 2 + 1
    result, tokens = check_file(tmp_path / f"m-{kind}.gguf", model, tokenizer, PROMPTS,
                                PackedRows(tokens_dir, "val"), new_tokens=16, batches=2)
    assert len(tokens) == 3 and all(len(t) == 16 for t in tokens)
    if kind in ("F32", "F16"):
        assert result["max_abs_logit_diff"] <= LOGIT_TOLERANCE
    if kind in ("F32", "F16", "BF16", "Q8_0"):
        assert result["greedy"]["tokens_agreeing"] == result["greedy"]["tokens"] == 48
        assert abs(result["perplexity_gap_percent"]) < 1.0
    else:  # 4 and 5 bits: the differences are measured and reported, not hidden
        assert result["max_abs_logit_diff"] > LOGIT_TOLERANCE
        assert result["perplexity_gap_percent"] != 0 and result["greedy"]["tokens"] == 48
    bits = {"F32": 32, "F16": 16, "BF16": 16, "Q8_0": 8.5, "Q5_0": 5.5, "Q4_0": 4.5}[kind]
    assert bits <= info["bits_per_weight"] < bits + 8  # F16 fallbacks and F32 norms on a tiny model


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


@pytest.mark.parametrize("types, message", [(["Q4_K"], r"export.types\[0\]: expected one of"),
                                            (["F16", "F16"], "each type once")])
def test_bad_types_are_named(types, message):
    with pytest.raises(ConfigError, match=message):
        build(ExportConfig, {"types": types}, where="params.yaml: export")


def test_the_stage_exports_the_final_model_and_checks_it(trained, tokens_dir, tmp_path):
    merged = tmp_path / "merged"
    merged.mkdir()
    (merged / MANIFEST).write_text(json.dumps({"method": "none", "final": None}))
    report = export(ExportConfig(types=["F16", "Q8_0"], check_batches=1), PROMPTS, trained, merged,
                    tokens_dir, tmp_path / "gguf")
    assert sorted(p.name for p in (tmp_path / "gguf").iterdir()) == ["model-F16.gguf", "model-Q8_0.gguf"]
    assert report["model"] == "trained" and "convert_hf_to_gguf.py" in report["converter"]
    f16 = report["files"]["F16"]
    assert f16["transformers"]["max_abs_logit_diff"] <= LOGIT_TOLERANCE
    lines = summary_lines(report)
    assert len(lines) == 2 and "greedy 48/48 tokens" in lines[0]
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
    from pretrain.export.check import greedy

    tokens = [greedy(gguf_model, ids, 16) for ids in prompt_ids(tokenizer, PROMPTS)]
    result = llama_cpp_check(tmp_path / "m.gguf", tokenizer, PROMPTS, tokens, 16)
    assert result["tokenization_identical"] == result["prompts"] == 3
    assert result["greedy"]["tokens_agreeing"] == result["greedy"]["tokens"] == 48
