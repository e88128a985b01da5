"""Model presets, parameter counts from the course, and the saved initial model."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from pretrain.config import ModelConfig
from pretrain.errors import ConfigError
from pretrain.model import build_model, count_parameters, init_model, llama_config
from pretrain.presets import PRESETS


def meta_params(cfg, vocab):
    config = llama_config(cfg, vocab)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return count_parameters(model), config


def test_tinysolar_preset_matches_the_course_count():
    n, config = meta_params(ModelConfig(preset="tinysolar-248m"), 32000)
    assert n == 248_013_824
    assert config.head_dim == 32  # not transformers' default of 128


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
