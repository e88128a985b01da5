"""model.base as a local GGUF file: a tiny Llama and its tokenizer are written to GGUF here, with
llama.cpp's tensor names and metadata keys, and must come back through transformers unchanged."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    Phi3Config,
)

from pretrain.bases import load_base, split_gguf
from pretrain.config.model import ModelConfig
from pretrain.config.tokens import TokenizerConfig
from pretrain.errors import ConfigError
from pretrain.export.gguf import gguf_tensors, write_metadata, write_vocabulary
from pretrain.model.build import init_model
from pretrain.tokens.tokenizer import build_tokenizer, load_tokenizer

SAMPLE = "def find_max(numbers):\n    return max(numbers)  # <s> café\n"

def named_tensors(model) -> dict[str, np.ndarray]:
    """The model's weights under llama.cpp's names for its architecture (gguf-py's
    TensorNameMap, as convert_hf_to_gguf.py maps them), for architectures stored unpermuted."""
    import gguf

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[model.config.model_type.upper()],
                                     model.config.num_hidden_layers)
    return {names.get_name(k, try_suffixes=(".weight", ".bias")): v.detach().numpy()
            for k, v in model.state_dict().items()}


def write_gguf(path, model, tokenizer, arch: str | None = None) -> None:
    """Write ``model`` (Llama or Phi-3) and its byte-level BPE ``tokenizer`` as an fp32 GGUF
    file; ``arch`` overrides the architecture written in the header. Not the export stage's
    writer (pretrain.export.gguf), which writes Llama only: this one also writes Phi-3 and
    files of architectures transformers does not read; the Llama tensors are the export's."""
    import gguf

    c = model.config
    w = gguf.GGUFWriter(str(path), arch or c.model_type)
    write_metadata(w, c, "F32", "test")  # the keys are the architecture's own (phi3.*, ...)
    write_vocabulary(w, tokenizer, c.vocab_size)
    tensors = gguf_tensors(model) if c.model_type == "llama" else named_tensors(model)
    for name, tensor in tensors.items():
        w.add_tensor(name, np.ascontiguousarray(tensor, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture(scope="module")
def base(tiny_tokenizer) -> LlamaForCausalLM:
    """A 4-layer Llama (upscaling needs at least 3) with every weight random, norms included."""
    config = LlamaConfig(
        vocab_size=len(tiny_tokenizer), hidden_size=64, intermediate_size=176, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=128,
        rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=False,
        bos_token_id=tiny_tokenizer.bos_token_id, eos_token_id=tiny_tokenizer.eos_token_id,
        pad_token_id=tiny_tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.1)
    return model


@pytest.fixture(scope="module")
def gguf_path(tmp_path_factory, base, tiny_tokenizer):
    pytest.importorskip("gguf")
    path = tmp_path_factory.mktemp("gguf") / "tiny-llama-f32.gguf"
    write_gguf(path, base, tiny_tokenizer)
    return path


def assert_same_weights(model, reference, layer_plan=None):
    got, want = model.state_dict(), reference.state_dict()
    plan = layer_plan or list(range(reference.config.num_hidden_layers))
    expected = {k: v for k, v in want.items() if not k.startswith("model.layers.")}
    for i, src in enumerate(plan):
        prefix = f"model.layers.{src}."
        expected.update({f"model.layers.{i}.{k[len(prefix):]}": v for k, v in want.items()
                         if k.startswith(prefix)})
    assert set(got) == set(expected)
    for name, tensor in expected.items():
        assert got[name].dtype == torch.float32, name
        assert torch.equal(got[name], tensor), name


def test_split_gguf(gguf_path):
    assert split_gguf("models/base") == ("models/base", None)
    assert split_gguf(gguf_path) == (str(gguf_path.parent), gguf_path.name)


def test_missing_gguf_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no such GGUF file"):
        load_base(str(tmp_path / "absent.gguf"))


def test_missing_gguf_package_says_how_to_install_it(tmp_path, monkeypatch):
    path = tmp_path / "m.gguf"
    path.write_bytes(b"")
    monkeypatch.setattr("pretrain.bases.is_gguf_available", lambda: False)
    for load in (load_base, load_tokenizer):
        with pytest.raises(ConfigError, match=r"needs the gguf package: pip install gguf"):
            load(str(path))


def test_transformers_reads_the_written_gguf_exactly(gguf_path, base, tiny_tokenizer):
    model = load_base(str(gguf_path))
    assert model.config.model_type == "llama" and model.config.head_dim == 16
    assert model.config.num_key_value_heads == 2 and not model.config.tie_word_embeddings
    assert_same_weights(model, base)  # q/k un-permuted back to Hugging Face's row order
    ids = torch.tensor([tiny_tokenizer(SAMPLE)["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(ids).logits, base(ids).logits)


def test_tokenizer_from_gguf_encodes_like_the_original(gguf_path, tiny_tokenizer):
    tok = load_tokenizer(gguf_path)
    assert len(tok) == len(tiny_tokenizer)
    # The same vocabulary and merges: the same ids for plain text ("<s>" in it as text, nothing
    # added at the ends, as pack encodes documents).
    plain = dict(add_special_tokens=False, split_special_tokens=True)
    assert tok(SAMPLE, **plain)["input_ids"] == tiny_tokenizer(SAMPLE, **plain)["input_ids"]
    assert tok.decode(tok(SAMPLE, **plain)["input_ids"]) == SAMPLE
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (
        tiny_tokenizer.bos_token_id, tiny_tokenizer.eos_token_id, tiny_tokenizer.pad_token_id)
    # transformers adds GPT2Tokenizer's "<|endoftext|>" past the file's vocabulary; it is dropped.
    assert max(tok("a <|endoftext|> b")["input_ids"]) < len(tiny_tokenizer)


def test_init_pretrained_from_gguf(tmp_path, gguf_path, base, tiny_tokenizer):
    report = init_model(ModelConfig(init="pretrained", base=str(gguf_path)), tiny_tokenizer,
                        tmp_path / "init")
    assert report["num_layers"] == 4 and report["vocab_size"] == len(tiny_tokenizer)
    # Saved as a plain model: transformers' GGUF quantizer config would refuse save_pretrained.
    assert "quantization_config" not in json.loads((tmp_path / "init" / "config.json").read_text())
    assert_same_weights(AutoModelForCausalLM.from_pretrained(tmp_path / "init"), base)


def test_init_upscale_from_gguf(tmp_path, gguf_path, base, tiny_tokenizer):
    report = init_model(ModelConfig(init="upscale", base=str(gguf_path), num_layers=6),
                        tiny_tokenizer, tmp_path / "init")
    plan = [0, 1, 2, 1, 2, 3]  # SOLAR: layers[:3] + layers[1:]
    lineage = json.loads((tmp_path / "init" / "lineage.json").read_text())
    assert report["num_layers"] == 6 and lineage["base_layers"] == 4
    assert [layer["source_layer"] for layer in lineage["layers"]] == plan
    assert_same_weights(AutoModelForCausalLM.from_pretrained(tmp_path / "init"), base, plan)


def test_build_tokenizer_takes_the_gguf_tokenizer(tmp_path, gguf_path, corpus_path, tiny_tokenizer):
    report = build_tokenizer(TokenizerConfig(), corpus_path, tmp_path / "tok", base_model=str(gguf_path))
    assert report["origin"] == str(gguf_path) and report["vocab_size"] == len(tiny_tokenizer)
    saved = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert saved(SAMPLE)["input_ids"] == tiny_tokenizer(SAMPLE)["input_ids"]


# --- a damaged, empty, truncated or unsupported GGUF base ------------------------------------------

DAMAGED = {  # kind -> the words the error must use
    "empty": "the file is empty (0 bytes)",
    "not_gguf": "not a GGUF file: it starts with b'PK\\x03\\x04'",
    "cut_in_header": "the GGUF file is truncated or damaged",  # struct.error inside gguf
    "cut_in_tensors": "the GGUF file is truncated or damaged",  # "cannot reshape array" before
    "unsupported": "its architecture 'phi2' is not supported by the installed transformers",
}


@pytest.fixture(scope="module")
def damaged(tmp_path_factory, gguf_path, base, tiny_tokenizer):
    """kind -> a GGUF file damaged that way, made from the good one."""
    folder = tmp_path_factory.mktemp("damaged")
    data = gguf_path.read_bytes()
    contents = {"empty": b"", "not_gguf": b"PK\x03\x04" + data[4:], "cut_in_header": data[:100],
                "cut_in_tensors": data[:len(data) * 9 // 10]}
    for kind, content in contents.items():
        (folder / f"{kind}.gguf").write_bytes(content)
    write_gguf(folder / "unsupported.gguf", base, tiny_tokenizer, arch="phi2")
    return {kind: folder / f"{kind}.gguf" for kind in DAMAGED}


def base_loaders(tmp_path, corpus_path, tiny_tokenizer):
    """Every place a model.base is loaded: the tokenizer stage, the init-model stage and
    evaluate's base generations (load_base, then the base's tokenizer)."""
    return {
        "tokenizer": lambda p: build_tokenizer(TokenizerConfig(), corpus_path, tmp_path / "t", base_model=p),
        "init": lambda p: init_model(ModelConfig(init="pretrained", base=p), tiny_tokenizer, tmp_path / "i"),
        "evaluate_model": load_base,
        "evaluate_tokenizer": lambda p: load_tokenizer(p, key="model.base"),
    }


@pytest.mark.parametrize("kind", sorted(DAMAGED))
def test_damaged_gguf_base_names_model_base_and_what_is_wrong(tmp_path, damaged, kind, corpus_path,
                                                               tiny_tokenizer):
    path = str(damaged[kind])
    for where, load in base_loaders(tmp_path, corpus_path, tiny_tokenizer).items():
        with pytest.raises(ConfigError) as caught:
            load(path)
        message = str(caught.value)
        assert message.startswith("params.yaml: model.base: "), (where, message)
        assert DAMAGED[kind] in message, (where, message)
        assert "tokenizer.path" not in message and "reshape" not in message, (where, message)
    assert not (tmp_path / "t").exists() and not (tmp_path / "i").exists()


def test_damaged_gguf_tokenizer_path_names_tokenizer_path(damaged):
    with pytest.raises(ConfigError, match=r"^params\.yaml: tokenizer\.path: .*truncated or damaged"):
        load_tokenizer(damaged["cut_in_tensors"])


def test_tokenizer_stage_on_a_truncated_gguf_base_fails_in_one_line(tmp_path, damaged):
    # seq_len within the base's context (128): the damage is the file's only problem
    (tmp_path / "params.yaml").write_text(f"model:\n  init: pretrained\n  base: {damaged['cut_in_tensors']}\n"
                                          "pack:\n  seq_len: 64\n")
    result = subprocess.run([sys.executable, str(Path(__file__).parents[1] / "stages" / "tokenizer.py"),
                             "--params", "params.yaml", "--input", "dedup", "--out", "tokenizer",
                             "--metrics", "tokenizer.json"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: params.yaml: model.base: cannot load a tokenizer from "
                      f"'{damaged['cut_in_tensors']}': the GGUF file is truncated or damaged: its metadata "
                      f"or tensors do not read back from its {damaged['cut_in_tensors'].stat().st_size:,} "
                      "bytes (download or convert it again)"]


# --- an architecture depth surgery does not know: Phi-3 ---------------------------------------------

@pytest.fixture(scope="module")
def phi3_gguf(tmp_path_factory, tiny_tokenizer):
    """(path, model): a 3-layer Phi-3 (fused qkv and gate_up projections) written as GGUF."""
    pytest.importorskip("gguf")
    config = Phi3Config(vocab_size=len(tiny_tokenizer), hidden_size=32, intermediate_size=64,
                        num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                        max_position_embeddings=64, tie_word_embeddings=False,
                        bos_token_id=tiny_tokenizer.bos_token_id, eos_token_id=tiny_tokenizer.eos_token_id,
                        pad_token_id=tiny_tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.1)
    path = tmp_path_factory.mktemp("phi3") / "tiny-phi3-f32.gguf"
    write_gguf(path, model, tiny_tokenizer)
    return path, model


def test_init_pretrained_from_a_phi3_gguf(tmp_path, phi3_gguf, tiny_tokenizer):
    path, model = phi3_gguf
    report = init_model(ModelConfig(init="pretrained", base=str(path)), tiny_tokenizer, tmp_path / "init")
    assert report["model_type"] == "phi3" and report["num_layers"] == 3
    assert report["mapping"] == "pretrained 3 -> 3: new 0-2 <- base 0-2"
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "init")
    got, want = saved.state_dict(), model.state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


def test_surgery_on_a_phi3_gguf_says_only_surgery_needs_the_layer_map(tmp_path, phi3_gguf, tiny_tokenizer):
    with pytest.raises(ConfigError) as caught:
        init_model(ModelConfig(init="upscale", base=str(phi3_gguf[0])), tiny_tokenizer, tmp_path / "init")
    message = str(caught.value)
    assert message.startswith("params.yaml: model.init: upscale (depth surgery) needs to know where 'phi3'")
    assert "gpt2, gpt_neox, llama, mistral, opt, qwen2, qwen3" in message
    assert "model.init: pretrained takes any causal LM" in message
