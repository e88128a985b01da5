"""Model presets, parameter counts from the course, the saved initial model, and a damaged or
unsupported pretrained base folder reported in words under the key that named it."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

from pretrain.bases import load_base
from pretrain.config import check_loaded_model, load_all
from pretrain.config.model import ModelConfig
from pretrain.config.shape import PRESETS
from pretrain.config.tokens import TokenizerConfig
from pretrain.errors import ConfigError
from pretrain.model.build import build_model, count_parameters, init_model, llama_config
from pretrain.tokens.tokenizer import build_tokenizer, load_tokenizer


def meta_params(cfg, vocab):
    config = llama_config(cfg, vocab)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return count_parameters(model), config


def test_tinysolar_preset_matches_the_course_count():
    n, config = meta_params(ModelConfig(preset="tinysolar-248m"), 32000)
    assert n == 248_013_824
    assert config.head_dim == 32  # not transformers' default of 128


def test_gpt2_small_ish_preset_is_gpt2_small_sized():
    # nanoGPT's GPT-2 small: 124M at its padded 50,304 vocabulary; the same non-embedding weights
    # (12 x (4 x 768^2 attention + 3 x 768 x 2048 SwiGLU) + norms) in the Llama family.
    n, config = meta_params(ModelConfig(preset="gpt2-small-ish"), 50304)
    assert n == 123_587_328
    assert config.head_dim == 64 and config.num_key_value_heads == 12 and config.tie_word_embeddings
    assert meta_params(ModelConfig(preset="gpt2-small-ish"), 32000)[0] == 109_529_856


def test_overrides_change_the_preset():
    # The course's downscaled TinySolar (12 -> 10 layers) counts 217,601,024 parameters.
    n, config = meta_params(ModelConfig(preset="tinysolar-248m", num_layers=10), 32000)
    assert n == 217_601_024 and config.num_hidden_layers == 10
    n, _ = meta_params(ModelConfig(preset="tinysolar-248m", num_layers=16), 32000)
    assert n == 308_839_424


def test_llama_family_features():
    config = llama_config(ModelConfig(preset="small"), 8192)
    assert config.num_key_value_heads < config.num_attention_heads  # grouped-query attention
    assert config.hidden_act == "silu" and config.model_type == "llama"
    assert config.rope_parameters["rope_theta"] == PRESETS["small"]["rope_theta"]


@pytest.mark.parametrize("overrides, key", [
    ({"num_heads": 8, "num_kv_heads": 16}, "model.num_kv_heads"),
    ({"num_heads": 8, "num_kv_heads": 3}, "model.num_kv_heads"),
    ({"hidden_size": 100, "num_heads": 8}, "model.num_heads"),
    ({"preset": "huge"}, "model.preset"),
    # huggingface/transformers#35233: head_dim 15 was a 30-line StrictDataclassClassValidationError
    ({"preset": "debug", "hidden_size": 60, "num_heads": 4}, "model.hidden_size 60 / model.num_heads 4 gives head_dim 15"),
])
def test_inconsistent_sizes_fail_naming_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key):
        llama_config(ModelConfig(**overrides), 1000)


def test_same_seed_same_weights():
    config = llama_config(ModelConfig(preset="debug"), 300)
    a, b = build_model(config, seed=3), build_model(config, seed=3)
    c = build_model(config, seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.model.embed_tokens.weight, c.model.embed_tokens.weight)


def test_init_model_saves_loadable_model_with_tokenizer(tmp_path, tiny_tokenizer):
    report = init_model(ModelConfig(preset="debug"), tiny_tokenizer, tmp_path / "init")
    files = {p.name for p in (tmp_path / "init").iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= files
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "init")
    assert count_parameters(model) == report["parameters"]
    assert model.config.vocab_size == len(tiny_tokenizer)
    assert model.config.eos_token_id == tiny_tokenizer.eos_token_id


def test_init_model_checks_a_base_once_loaded(tmp_path, init_dir, tiny_tokenizer):
    """A hub base's sizes are unknown before init-model loads it: the stage hands init_model the
    params' cross-key checks (stages/init_model.py), which refuse the loaded config in one line
    before anything is saved. A local folder stands in for the downloaded hub model here."""
    params = tmp_path / "params.yaml"
    params.write_text("model:\n  init: pretrained\n  base: org/name\npack:\n  seq_len: 1024\n")
    configs = load_all(params)  # a hub id: nothing to check against yet
    base = ModelConfig(init="pretrained", base=str(init_dir))  # the debug preset: context 512
    with pytest.raises(ConfigError) as caught:
        init_model(base, tiny_tokenizer, tmp_path / "init",
                   check=lambda config: check_loaded_model(configs, config, str(params)))
    assert str(caught.value).startswith(
        f"{params}: pack.seq_len 1024 is longer than the model's context, max_position_embeddings 512 in "
        "model.base 'org/name': rows would train positions past it")
    assert not (tmp_path / "init").exists()


# --- a pretrained base folder that cannot be loaded --------------------------------------------------

def edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def drop_a_tensor(folder):
    weights = load_file(folder / "model.safetensors")
    weights.pop("model.layers.1.mlp.up_proj.weight")
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})


BAD_BASES = {  # kind -> (how to damage a good base folder, the words the error must use)
    "no_config": (lambda f: (f / "config.json").unlink(), "the folder has no config.json"),
    "config_not_json": (lambda f: (f / "config.json").write_text("{oops"), "its config.json is not valid JSON"),
    "unknown_model_type": (lambda f: edit_config(f, model_type="foolm"),
                           "model_type 'foolm', an architecture the installed transformers"),
    "not_a_causal_lm": (lambda f: edit_config(f, model_type="t5"), "'t5' is not a causal language model"),
    "no_weights": (lambda f: (f / "model.safetensors").unlink(), "the folder has no weights"),
    "truncated_weights": (lambda f: (f / "model.safetensors").write_bytes(
        (f / "model.safetensors").read_bytes()[:-1000]), "model.safetensors is truncated or damaged"),
    "garbage_weights": (lambda f: (f / "model.safetensors").write_bytes(b"not safetensors" * 10),
                        "model.safetensors is truncated or damaged"),
    "a_file": (lambda f: (shutil.rmtree(f), f.write_text("x")), "a file, not a model folder"),
    "absent": (shutil.rmtree, "no such file or folder"),
}


@pytest.fixture
def good_base(init_dir, tmp_path):
    """A copy of a small saved Llama folder (weights, config, tokenizer) to damage."""
    return shutil.copytree(init_dir, tmp_path / "base")


@pytest.mark.parametrize("kind", sorted(BAD_BASES))
def test_bad_base_folder_names_model_base_and_what_is_wrong(tmp_path, good_base, kind, corpus_path,
                                                            tiny_tokenizer):
    damage, words = BAD_BASES[kind]
    damage(good_base)
    loaders = {  # the tokenizer stage, the init-model stage, evaluate's base generations
        "tokenizer": lambda p: build_tokenizer(TokenizerConfig(), corpus_path, tmp_path / "t", base_model=p),
        "init": lambda p: init_model(ModelConfig(init="pretrained", base=p), tiny_tokenizer, tmp_path / "i"),
        "evaluate_model": load_base,
        "evaluate_tokenizer": lambda p: load_tokenizer(p, key="model.base"),
    }
    for where, load in loaders.items():
        with pytest.raises(ConfigError) as caught:
            load(str(good_base))
        message = str(caught.value)
        assert message.startswith("params.yaml: model.base: cannot load a "), (where, message)
        assert words in message and "tokenizer.path" not in message, (where, message)


def test_base_missing_some_weights_is_refused_not_filled_with_random_values(tmp_path, good_base):
    drop_a_tensor(good_base)  # the header reads; transformers would start the weight at random
    with pytest.raises(ConfigError, match=r"^params\.yaml: model\.base: cannot load a causal LM from .*: "
                                          r"the checkpoint lacks 1 of the weights of a 'llama' causal LM "
                                          r"\(e\.g\. 'model\.layers\.1\.mlp\.up_proj\.weight'\)"):
        load_base(str(good_base))


def test_a_missing_tokenizer_path_names_tokenizer_path(tmp_path):
    with pytest.raises(ConfigError, match=r"^params\.yaml: tokenizer\.path: cannot load a tokenizer from "
                                          r".*: no such file or folder$"):
        load_tokenizer(str(tmp_path / "absent"))


@pytest.mark.parametrize("hub_id", ["gpt2", "distilgpt2", "openai-community/gpt2"])
def test_a_hub_id_is_left_to_transformers_not_refused_as_a_missing_path(tmp_path, hub_id, tiny_tokenizer):
    # HF_HUB_OFFLINE=1 (conftest): transformers is asked and cannot fetch it; a name without "/"
    # is a hub id too (pretrain.config.is_local_path), not a missing local folder.
    hub = ("not a local file or folder, so it was taken for a Hugging Face hub id, which could not be "
           "fetched (")
    loaders = {
        "model.base: cannot load a causal LM": load_base,
        "model.base: cannot load a tokenizer": lambda p: load_tokenizer(p, key="model.base"),
        "tokenizer.path: cannot load a tokenizer": load_tokenizer,
    }
    for where, load in loaders.items():
        with pytest.raises(ConfigError) as caught:
            load(hub_id)
        assert str(caught.value).startswith(f"params.yaml: {where} from {hub_id!r}: {hub}"), caught.value
    with pytest.raises(ConfigError, match=rf"^params\.yaml: model\.base: cannot load a causal LM from "
                                          rf"'{hub_id}': not a local file or folder, so it was taken for a"):
        init_model(ModelConfig(init="pretrained", base=hub_id), tiny_tokenizer, tmp_path / "init")
