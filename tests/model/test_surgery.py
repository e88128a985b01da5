"""Depth surgery: downscaling and up-scaling keep every copied tensor equal to its source,
put layers in the documented order, renumber KV-cache slots and save a matching config."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    MistralConfig,
    OPTConfig,
    Phi3Config,
    Qwen2Config,
    Qwen3Config,
)

from pretrain.config.model import ModelConfig
from pretrain.errors import ConfigError
from pretrain.model.build import count_parameters, init_model, llama_config
from pretrain.model.surgery import (
    default_target,
    depth_surgery,
    describe_plan,
    downscale_plan,
    layer_list,
    upscale_plan,
)

VOCAB = 96
FAMILIES = {
    "llama": lambda: LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                                 num_attention_heads=4, num_key_value_heads=2, head_dim=8),
    "mistral": lambda: MistralConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                                     num_attention_heads=4, num_key_value_heads=2, head_dim=8),
    "qwen2": lambda: Qwen2Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                                 num_attention_heads=4, num_key_value_heads=2),
    "qwen3": lambda: Qwen3Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                                 num_attention_heads=4, num_key_value_heads=2, head_dim=8),
    "gpt_neox": lambda: GPTNeoXConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                                      num_attention_heads=4, max_position_embeddings=64),
    "opt": lambda: OPTConfig(vocab_size=VOCAB, hidden_size=32, ffn_dim=64, num_hidden_layers=4,
                             num_attention_heads=4, word_embed_proj_dim=32, max_position_embeddings=64),
    "gpt2": lambda: GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=4, n_head=4, n_positions=64),
}


def tiny(family: str, seed: int = 0):
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(FAMILIES[family]()).eval()
    return model


def test_every_supported_family_is_tested():
    from pretrain.model.surgery import LAYER_PATHS
    assert set(LAYER_PATHS) == set(FAMILIES)


def test_plans_match_the_course():
    assert downscale_plan(12, 10) == [0, 1, 2, 3, 4, 7, 8, 9, 10, 11]
    assert upscale_plan(12, 16) == [0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7, 8, 9, 10, 11]
    assert upscale_plan(32, 48) == list(range(24)) + list(range(8, 32))  # SOLAR 10.7B


@pytest.mark.parametrize("plan, n, target, valid", [
    (downscale_plan, 12, 12, "1, 2, 3, ..., 11"), (downscale_plan, 12, 0, "1, 2, 3, ..., 11"),
    (upscale_plan, 12, 15, "14, 16, 18, 20, 22"), (upscale_plan, 12, 24, "14, 16, 18, 20, 22"),
    (upscale_plan, 30, 41, "32, 34, 36, ..., 58"),
])
def test_impossible_depths_name_the_key_the_base_depth_and_the_valid_values(plan, n, target, valid):
    init = plan.__name__.split("_")[0]
    with pytest.raises(ConfigError) as caught:
        plan(n, target)
    assert str(caught.value) == (f"params.yaml: model.num_layers: {init} of a {n}-layer base: "
                                 f"num_layers is one of {valid}; got {target}")


def test_defaults_for_any_depth_follow_the_courses_proportions():
    # downscale drops max(1, n // 6) layers; upscale drops k = max(1, n // 3) from each copy
    assert [default_target("downscale", n) for n in (12, 24, 30, 32)] == [10, 20, 25, 27]
    assert [default_target("upscale", n) for n in (12, 24, 30, 32)] == [16, 32, 40, 44]
    assert upscale_plan(30, 40) == list(range(20)) + list(range(10, 30))
    assert downscale_plan(30, 25) == list(range(13)) + list(range(18, 30))


def test_a_base_too_shallow_for_the_default_says_null_and_that_no_depth_works():
    model = AutoModelForCausalLM.from_config(LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8))
    with pytest.raises(ConfigError) as caught:
        depth_surgery(model, "upscale", None)
    assert str(caught.value) == ("params.yaml: model.num_layers: upscale of a 2-layer base: no num_layers "
                                 "works (too few layers); got null, which means 2 for a 2-layer base")


@pytest.mark.parametrize("init, n, plan, text", [
    ("upscale", 12, upscale_plan(12, 16), "upscale 12 -> 16: new 0-7 <- base 0-7, new 8-15 <- base 4-11"),
    ("downscale", 12, downscale_plan(12, 10), "downscale 12 -> 10: new 0-4 <- base 0-4, new 5-9 <- base 7-11"),
    ("upscale", 30, upscale_plan(30, 40), "upscale 30 -> 40: new 0-19 <- base 0-19, new 20-39 <- base 10-29"),
    ("downscale", 4, [0, 3], "downscale 4 -> 2: new 0 <- base 0, new 1 <- base 3"),
    ("pretrained", 3, [0, 1, 2], "pretrained 3 -> 3: new 0-2 <- base 0-2"),
])
def test_the_mapping_in_words(init, n, plan, text):
    assert describe_plan(init, n, plan) == text


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("init, target, plan", [("upscale", 6, [0, 1, 2, 1, 2, 3]),
                                                ("downscale", 2, [0, 3])])
def test_every_tensor_comes_from_its_documented_source(family, init, target, plan):
    model = tiny(family)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    source_layers = [{k: v.clone() for k, v in layer.state_dict().items()} for layer in layer_list(model)]
    assert depth_surgery(model, init, target) == plan
    layers = layer_list(model)
    assert len(layers) == target == model.config.num_hidden_layers
    for new, source in zip(layers, plan):
        state = new.state_dict()
        assert state.keys() == source_layers[source].keys()
        assert all(torch.equal(state[k], source_layers[source][k]) for k in state)
    layer_prefix = f"{'.'.join(layers_path(model))}."
    for name, tensor in model.state_dict().items():
        if not name.startswith(layer_prefix):  # embeddings, final norm, output head
            assert torch.equal(tensor, before[name]), name


def layers_path(model):
    from pretrain.model.surgery import LAYER_PATHS
    return LAYER_PATHS[model.config.model_type].split(".")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_cached_generation_equals_uncached_after_upscaling(family):
    model = tiny(family, seed=1)
    depth_surgery(model, "upscale", 6)
    ids = torch.tensor([[5, 17, 3, 44]])
    kwargs = dict(max_new_tokens=12, do_sample=False, pad_token_id=0, attention_mask=torch.ones_like(ids))
    cached = model.generate(ids, use_cache=True, **kwargs)
    uncached = model.generate(ids, use_cache=False, **kwargs)
    assert torch.equal(cached, uncached)
    # Greedy tokens of a random model can agree by luck; the next-token logits cannot: with two
    # layers sharing a cache slot (the course's bug) they differ by ~1e-2 here.
    with torch.no_grad():
        full = model(ids).logits[0, -1]
        prefix = model(ids[:, :-1], use_cache=True)
        step = model(ids[:, -1:], past_key_values=prefix.past_key_values, use_cache=True).logits[0, -1]
    assert torch.allclose(full, step, atol=1e-5)
    for index, layer in enumerate(layer_list(model)):
        assert {m.layer_idx for m in layer.modules() if hasattr(m, "layer_idx")} == {index}


def test_downscaling_moves_layers_without_copying():
    model = tiny("llama")
    pointers = [layer.mlp.up_proj.weight.data_ptr() for layer in layer_list(model)]
    depth_surgery(model, "downscale", 2)
    assert [layer.mlp.up_proj.weight.data_ptr() for layer in layer_list(model)] == [pointers[0], pointers[3]]


def test_upscaling_copies_only_the_repeated_layers():
    model = tiny("llama")
    pointers = [layer.mlp.up_proj.weight.data_ptr() for layer in layer_list(model)]
    depth_surgery(model, "upscale", 6)
    after = [layer.mlp.up_proj.weight.data_ptr() for layer in layer_list(model)]
    assert after[:3] == pointers[:3] and after[5] == pointers[3]
    assert after[3] not in pointers and after[4] not in pointers  # the second uses of 1 and 2


@pytest.mark.parametrize("init, target, expected", [("downscale", 10, 217_601_024),
                                                    ("upscale", 16, 308_839_424)])
def test_tinysolar_surgery_counts_match_the_course(init, target, expected):
    config = llama_config(ModelConfig(preset="tinysolar-248m"), 32000)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    depth_surgery(model, init, target)
    assert count_parameters(model) == expected


def test_init_model_from_a_base_saves_lineage_and_a_matching_config(tmp_path, tiny_tokenizer):
    base = tmp_path / "base"
    init_model(ModelConfig(preset="debug", num_layers=4), tiny_tokenizer, base)
    report = init_model(ModelConfig(init="upscale", base=str(base)), tiny_tokenizer, tmp_path / "up")
    lineage = json.loads((tmp_path / "up" / "lineage.json").read_text())
    assert lineage["init"] == "upscale" and lineage["base"] == str(base) and lineage["base_layers"] == 4
    mapping = "upscale 4 -> 6: new 0-2 <- base 0-2, new 3-5 <- base 1-3"
    assert lineage["mapping"] == report["mapping"] == mapping and report["base_layers"] == 4
    # num_layers unset: the course's proportion, 12 -> 16 there, 4 -> 6 here
    assert [entry["source_layer"] for entry in lineage["layers"]] == [0, 1, 2, 1, 2, 3]
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "up")
    assert loaded.config.num_hidden_layers == len(lineage["layers"]) == report["num_layers"]
    original = AutoModelForCausalLM.from_pretrained(base)
    for new, source in zip(loaded.model.layers, [e["source_layer"] for e in lineage["layers"]]):
        assert torch.equal(new.self_attn.q_proj.weight, original.model.layers[source].self_attn.q_proj.weight)
    assert torch.equal(loaded.model.norm.weight, original.model.norm.weight)
    assert torch.equal(loaded.lm_head.weight, original.lm_head.weight)


def test_pretrained_init_is_the_base_unchanged(tmp_path, tiny_tokenizer):
    base = tmp_path / "base"
    init_model(ModelConfig(preset="debug"), tiny_tokenizer, base)
    init_model(ModelConfig(init="pretrained", base=str(base)), tiny_tokenizer, tmp_path / "cont")
    a = AutoModelForCausalLM.from_pretrained(base).state_dict()
    b = AutoModelForCausalLM.from_pretrained(tmp_path / "cont").state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("kwargs, match", [
    ({"init": "upscale"}, "model.base: required"),
    ({"init": "pretrained", "base": "x", "num_layers": 4}, "num_layers: cannot be set"),
    ({"init": "downscale", "base": "x", "hidden_size": 64}, "hidden_size: cannot be set"),
])
def test_inconsistent_init_params_fail(tmp_path, kwargs, match):
    from pretrain.config import build
    with pytest.raises(ConfigError, match=match):
        build(ModelConfig, kwargs, where="params.yaml: model")


def test_missing_base_is_a_clear_error(tmp_path, tiny_tokenizer):
    with pytest.raises(ConfigError, match="model.base: cannot load"):
        init_model(ModelConfig(init="pretrained", base=str(tmp_path / "nope")), tiny_tokenizer, tmp_path / "o")


def test_init_model_stage_prints_the_mapping_and_writes_it_to_metrics(tmp_path, tiny_tokenizer):
    init_model(ModelConfig(preset="debug", num_layers=4), tiny_tokenizer, tmp_path / "base")
    tiny_tokenizer.save_pretrained(str(tmp_path / "tokenizer"))
    (tmp_path / "params.yaml").write_text(f"model:\n  init: downscale\n  base: {tmp_path / 'base'}\n")
    result = subprocess.run([sys.executable, str(Path(__file__).parents[2] / "stages" / "init_model.py"),
                             "--params", "params.yaml", "--tokenizer", "tokenizer", "--out", "init",
                             "--metrics", "init.json"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    mapping = "downscale 4 -> 3: new 0-1 <- base 0-1, new 2 <- base 3"  # default: 4 - max(1, 4 // 6)
    assert f"init-model: layers {mapping}" in result.stdout.splitlines()
    assert json.loads((tmp_path / "init.json").read_text())["mapping"] == mapping


def test_init_model_stage_prints_no_mapping_for_a_pretrained_init(tmp_path, tiny_tokenizer):
    init_model(ModelConfig(preset="debug", num_layers=4), tiny_tokenizer, tmp_path / "base")
    tiny_tokenizer.save_pretrained(str(tmp_path / "tokenizer"))
    (tmp_path / "params.yaml").write_text(f"model:\n  init: pretrained\n  base: {tmp_path / 'base'}\n")
    result = subprocess.run([sys.executable, str(Path(__file__).parents[2] / "stages" / "init_model.py"),
                             "--params", "params.yaml", "--tokenizer", "tokenizer", "--out", "init",
                             "--metrics", "init.json"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("init-model: pretrained init, 4 layers, ")
    assert "init-model: layers" not in result.stdout  # every layer is kept: nothing was mapped
    assert json.loads((tmp_path / "init.json").read_text())["mapping"] == "pretrained 4 -> 4: new 0-3 <- base 0-3"


def tiny_phi3():
    """Phi-3 (fused qkv and gate_up projections), an architecture depth surgery does not map."""
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(Phi3Config(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0, eos_token_id=1, bos_token_id=2))


def test_pretrained_init_takes_an_architecture_surgery_does_not_know(tmp_path, tiny_tokenizer):
    tiny_phi3().save_pretrained(tmp_path / "phi3")
    report = init_model(ModelConfig(init="pretrained", base=str(tmp_path / "phi3")), tiny_tokenizer,
                        tmp_path / "cont")
    assert report["model_type"] == "phi3" and report["num_layers"] == 3
    a = AutoModelForCausalLM.from_pretrained(tmp_path / "phi3").state_dict()
    b = AutoModelForCausalLM.from_pretrained(tmp_path / "cont").state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("init", ["downscale", "upscale"])
def test_surgery_on_an_unknown_architecture_names_model_init_and_the_known_ones(tmp_path, tiny_tokenizer, init):
    tiny_phi3().save_pretrained(tmp_path / "phi3")
    with pytest.raises(ConfigError) as caught:
        init_model(ModelConfig(init=init, base=str(tmp_path / "phi3")), tiny_tokenizer, tmp_path / "out")
    assert str(caught.value) == (
        f"params.yaml: model.init: {init} (depth surgery) needs to know where 'phi3' models keep their "
        "layers; it knows gpt2, gpt_neox, llama, mistral, opt, qwen2, qwen3 "
        "(model.init: pretrained takes any causal LM as it is)")
    assert not (tmp_path / "out").exists()
