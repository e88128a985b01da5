"""Cost accounting: FLOPs against a hand count, memory against what autograd really saves, the
machine's peak, and the ``pretrain estimate`` command on the debug profile."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, LlamaConfig

# The tiny models of the surgery and GGUF tests, reused here (tests/ and tests/model/ on the path).
sys.path[:0] = [str(Path(__file__).parents[1]), str(Path(__file__).parents[1] / "model")]
from test_gguf import write_gguf  # noqa: E402
from test_surgery import tiny as surgery_tiny  # noqa: E402
from test_surgery import tiny_phi3  # noqa: E402

from pretrain.cli import main
from pretrain.config import load_all
from pretrain.config.model import ModelConfig
from pretrain.cost.estimate import estimate
from pretrain.cost.formulas import (
    GPUS,
    activation_bytes,
    gpu,
    layer_activation_bytes,
    memory_breakdown,
    parameter_counts,
)
from pretrain.errors import ConfigError
from pretrain.model.build import build_model, count_parameters, init_model, llama_config
from pretrain.runtime import enable_activation_checkpointing
from pretrain.train import flops
from pretrain.train.flops import flops_per_token, measured_peak_flops

ROOT = Path(__file__).resolve().parents[2]


def tiny(**overrides) -> LlamaConfig:
    sizes = dict(vocab_size=100, hidden_size=16, intermediate_size=40, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=4, tie_word_embeddings=False)
    return LlamaConfig(**{**sizes, **overrides})


def test_flops_per_token_matches_a_hand_count():
    # per layer: q 16x16 + k 16x8 + v 16x8 + o 16x16 + gate, up, down 3 x 16x40 = 2,688; two
    # layers and the 100x16 output head: N = 6,976. Attention: 12 * 2 layers * 4 heads * 4 * 32.
    assert flops_per_token(tiny(), 32) == 6 * 6976 + 12 * 2 * 4 * 4 * 32
    # tied: the head still multiplies by the (shared) embedding matrix
    assert flops_per_token(tiny(tie_word_embeddings=True), 32) == 6 * 6976 + 12 * 2 * 4 * 4 * 32
    # GPT-2 (Conv1D layers, learned positions): per layer c_attn 16x48, attn c_proj 16x16,
    # c_fc 16x64, mlp c_proj 64x16 = 3,072; tied head 1,600; position embeddings are a lookup
    gpt2 = GPT2Config(vocab_size=100, n_embd=16, n_layer=2, n_head=4, n_positions=32)
    assert flops_per_token(gpt2, 32) == 6 * (2 * 3072 + 1600) + 12 * 2 * 4 * 4 * 32


def test_flops_of_a_built_model_equal_those_of_its_config():
    config = tiny()
    assert flops_per_token(build_model(config, seed=0), 64) == flops_per_token(config, 64)


def test_parameter_counts_match_the_built_model():
    config = tiny(tie_word_embeddings=True)
    counts = parameter_counts(config)
    assert counts["parameters"] == count_parameters(build_model(config, seed=0))
    assert counts["embedding_parameters"] == 1600 and counts["matmul_parameters"] == 6976


def test_memory_of_a_known_config():
    config = tiny()
    params = count_parameters(build_model(config, seed=0))  # 6,976 + 1,600 embedding + 80 norms
    assert params == 8656
    fp32 = memory_breakdown(config, seq_len=32, micro_batch=2, precision="fp32")
    assert (fp32["weights"], fp32["grads"], fp32["optimizer"]) == (4 * params, 4 * params, 8 * params)
    bf16 = memory_breakdown(config, seq_len=32, micro_batch=2, precision="bf16", optimizer="lion")
    assert bf16["weights"] == 4 * params + 2 * 6976  # autocast's bf16 copy of each matmul weight
    assert bf16["optimizer"] == 4 * params  # Lion keeps one moment
    assert fp32["activations"] == activation_bytes(config, 64, "fp32")
    assert fp32["total"] == 16 * params + fp32["activations"]
    checkpointed = memory_breakdown(config, 32, 2, "fp32", checkpointing=True)
    assert checkpointed["activations"] < fp32["activations"]


def saved_bytes(config: LlamaConfig, batch: int, seq_len: int, precision: str, checkpointing: bool) -> int:
    """Bytes of the distinct non-parameter tensors autograd saves in one forward pass."""
    model = build_model(config, seed=0)
    model.config.use_cache = False
    if checkpointing:
        enable_activation_checkpointing(model)
    model.train()
    storages: dict[int, int] = {}

    def pack(t):
        storages.setdefault(t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        return t

    ids = torch.randint(0, config.vocab_size, (batch, seq_len), generator=torch.Generator().manual_seed(0))
    cast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), cast:
        model(input_ids=ids, labels=ids)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(n for ptr, n in storages.items() if ptr not in params)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("checkpointing", [False, True])
def test_activation_count_matches_what_autograd_saves(precision, checkpointing):
    # Head size 8 x 4 heads = 32 != hidden 24, so query width and hidden size are told apart.
    config = tiny(hidden_size=24, head_dim=8, intermediate_size=56, num_hidden_layers=3)
    seq_len = 16
    # one sequence more: the weights' bf16 copies and RoPE tables do not grow with the batch
    measured = (saved_bytes(config, 2, seq_len, precision, checkpointing)
                - saved_bytes(config, 1, seq_len, precision, checkpointing))
    predicted = activation_bytes(config, seq_len, precision, checkpointing)
    if checkpointing:  # the layer recomputed during the backward pass is not saved in the forward
        predicted -= seq_len * layer_activation_bytes(config, precision)
    assert measured == pytest.approx(predicted, rel=0.01)


def test_activation_count_is_none_for_layers_it_does_not_describe():
    assert activation_bytes(GPT2Config(n_embd=16, n_layer=2, n_head=4), 64, "fp32") is None


def test_peak_flops_is_measured_without_touching_the_random_state():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    peak = measured_peak_flops(torch.float32, "cpu", seconds=0.05)
    assert torch.equal(torch.rand(3), expected)
    assert 1e9 < peak < 1e15  # a CPU core does at least a GFLOP/s


@pytest.mark.parametrize("rate, sizes", [(1e11, [512, 2048]), (1e8, [512])])
def test_peak_flops_leaves_out_the_large_matmul_where_it_would_take_minutes(monkeypatch, rate, sizes):
    """bf16 without AVX-512 BF16 runs at 0.1 GFLOP/s: one 2048-size matmul took 115 s."""
    measured = []

    def best_rate(dtype, device, size, seconds):
        measured.append(size)
        return rate
    monkeypatch.setattr(flops, "_best_matmul_rate", best_rate)
    assert measured_peak_flops(torch.bfloat16, "cpu") == rate * torch.get_num_threads()
    assert measured == sizes


def test_unknown_gpu_is_a_one_line_error_listing_the_known_ones():
    assert gpu("H100-SXM") is GPUS["h100-sxm"]
    with pytest.raises(ConfigError, match=r"unknown GPU 'b200' \(known: a10, a100, h100-pcie"):
        gpu("b200")
    result = subprocess.run([sys.executable, "-m", "pretrain.cli", "estimate", "--gpu", "b200"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "known: a10, a100" in result.stderr


@pytest.fixture
def debug_profile(monkeypatch) -> Path:
    monkeypatch.chdir(ROOT)  # params name paths relative to the repository
    return ROOT / "profiles" / "debug.yaml"


def expected_debug_figures(path: Path) -> dict:
    configs = load_all(path)
    model, train, seq_len = configs["model"], configs["train"], configs["pack"].seq_len
    parameters = count_parameters(build_model(llama_config(model, configs["tokenizer"].vocab_size), seed=0))
    return {"parameters": parameters,
            "tokens": train.max_steps * train.micro_batch_size * train.grad_accum_steps * seq_len,
            "chinchilla": 20 * parameters}


def test_cli_prints_parameters_tokens_flops_and_chinchilla_tokens(debug_profile, capsys):
    main(["estimate", "--params", str(debug_profile), "--measure-steps", "1", "--gpu", "a100"])
    out = capsys.readouterr().out
    expected = expected_debug_figures(debug_profile)
    assert f"parameters          {expected['parameters']:,} (" in out
    assert f"tokens              {expected['tokens']:,} = " in out
    assert "FLOPs per token" in out and "training FLOPs" in out
    assert f"Chinchilla tokens   {expected['chinchilla']:,} (20 per parameter)" in out
    assert "NVIDIA A100" in out and "tokens/s" in out and "MFU" in out


def test_cli_json_has_every_figure(debug_profile, capsys):
    main(["estimate", "--params", str(debug_profile), "--measure-steps", "0", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert {"parameters", "matmul_parameters", "tokens", "flops_per_token", "training_flops",
            "chinchilla_tokens", "memory", "this_machine", "gpu", "rule_of_20"} <= set(report)
    assert report["this_machine"] is None  # --measure-steps 0
    assert report["parameters"] == expected_debug_figures(debug_profile)["parameters"]
    assert report["training_flops"] == report["flops_per_token"] * report["tokens"]
    assert {"weights", "grads", "optimizer", "activations", "total"} <= set(report["memory"]["bf16"]["plain"])
    assert report["gpu"]["name"] == "NVIDIA H100 SXM" and report["gpu"]["seconds"] > 0


def test_measured_run_and_token_budget(debug_profile):
    configs = load_all(debug_profile)
    budget = dict(configs, train=dataclasses.replace(configs["train"], max_steps=None, max_tokens=10_000))
    report = estimate(budget, measure_steps=1)
    row = configs["train"].micro_batch_size * configs["pack"].seq_len
    assert report["tokens"] == -(-10_000 // row) * row  # whole steps reaching the budget
    here = report["this_machine"]
    assert here["tokens_per_second"] > 0 and 0 < here["mfu"] < 1
    assert here["seconds"] == pytest.approx(report["tokens"] / here["tokens_per_second"])


def test_the_20x_rule_understates_small_models_and_fits_a_1b_one(debug_profile):
    rows = {r["model"]: r for r in estimate(load_all(debug_profile), measure_steps=0)["rule_of_20"]}
    assert rows["this run"]["per_parameter"] > 30  # activations dwarf a 0.2M-parameter model
    assert 16 < rows["tinyllama-1.1b"]["per_parameter"] < 24
    assert rows["tinyllama-1.1b"]["per_parameter_checkpointed"] < rows["tinyllama-1.1b"]["per_parameter"]


def test_gpu_projection_splits_time_and_sharded_memory_among_gpus(debug_profile):
    configs = load_all(debug_profile)
    one = estimate(configs, measure_steps=0, gpus=1)["gpu"]
    ddp = estimate(configs, measure_steps=0, gpus=2)["gpu"]
    sharded = dict(configs, train=dataclasses.replace(configs["train"], sharding="full_shard"))
    fsdp = estimate(sharded, measure_steps=0, gpus=2)["gpu"]
    assert ddp["seconds"] == pytest.approx(one["seconds"] / 2)
    assert fsdp["memory_bytes"] < ddp["memory_bytes"] < one["memory_bytes"]  # half the activations
    zero = {stage: estimate(dict(configs, train=dataclasses.replace(
        configs["train"], deepspeed={"zero_optimization": {"stage": stage}})), measure_steps=0,
        gpus=2)["gpu"] for stage in (1, 2, 3)}
    assert ddp["memory_bytes"] > zero[1]["memory_bytes"] > zero[2]["memory_bytes"] > zero[3]["memory_bytes"]
    assert zero[3]["memory_bytes"] == fsdp["memory_bytes"] and zero[2]["split"] == ["grads", "optimizer"]
    launched = dict(sharded, train=dataclasses.replace(
        sharded["train"], launcher="accelerate launch --multi_gpu --num_processes 4"))
    assert estimate(launched, measure_steps=0)["gpu"]["gpus"] == 4


def test_cli_shows_the_per_gpu_projection(debug_profile, capsys):
    main(["estimate", "--params", str(debug_profile), "--measure-steps", "0", "--gpus", "8"])
    out = capsys.readouterr().out
    assert "8 x NVIDIA H100 SXM" in out and "per GPU" in out and "DDP" in out


# --- model.base: the same checks, words and surgery as the init-model stage ---------------------------

def with_base(configs: dict, init: str, base, num_layers: int | None = None) -> dict:
    return dict(configs, model=ModelConfig(init=init, base=str(base), num_layers=num_layers))


@pytest.mark.parametrize("family", ["llama", "qwen3", "gpt2"])
@pytest.mark.parametrize("init", ["pretrained", "downscale", "upscale"])
def test_estimate_of_a_base_counts_the_model_init_model_makes(tmp_path, debug_profile, tiny_tokenizer,
                                                              family, init):
    surgery_tiny(family).save_pretrained(tmp_path / "base")
    made = init_model(ModelConfig(init=init, base=str(tmp_path / "base")), tiny_tokenizer, tmp_path / "init")
    report = estimate(with_base(load_all(debug_profile), init, tmp_path / "base"), measure_steps=1)
    assert (report["model"]["layers"], report["parameters"]) == (made["num_layers"], made["parameters"])
    assert report["this_machine"]["tokens_per_second"] > 0  # a real step of this architecture
    assert made["num_layers"] == {"pretrained": 4, "downscale": 3, "upscale": 6}[init]  # null: 4 - 1, 2 * (4 - 1)


@pytest.mark.parametrize("init, num_layers, words", [
    ("upscale", 7, "model.num_layers: upscale of a 4-layer base: num_layers is one of 6; got 7"),
    ("upscale", 8, "model.num_layers: upscale of a 4-layer base: num_layers is one of 6; got 8"),
    ("downscale", 4, "model.num_layers: downscale of a 4-layer base: num_layers is one of 1, 2, 3; got 4"),
])
def test_estimate_refuses_a_depth_surgery_cannot_make(tmp_path, debug_profile, init, num_layers, words):
    surgery_tiny("llama").save_pretrained(tmp_path / "base")
    with pytest.raises(ConfigError) as caught:
        estimate(with_base(load_all(debug_profile), init, tmp_path / "base", num_layers), measure_steps=0)
    assert str(caught.value) == f"params.yaml: {words}"


def test_estimate_refuses_surgery_on_an_architecture_it_does_not_map(tmp_path, debug_profile):
    tiny_phi3().save_pretrained(tmp_path / "phi3")
    configs = load_all(debug_profile)
    assert estimate(with_base(configs, "pretrained", tmp_path / "phi3"), measure_steps=0)["model"]["layers"] == 3
    with pytest.raises(ConfigError, match=r"^params\.yaml: model\.init: upscale \(depth surgery\) needs to "
                                          r"know where 'phi3' models keep their layers"):
        estimate(with_base(configs, "upscale", tmp_path / "phi3"), measure_steps=0)


@pytest.fixture(scope="module")
def bad_bases(tmp_path_factory, tiny_tokenizer) -> dict:
    """kind -> (a model.base init-model refuses, the words its error must use)."""
    pytest.importorskip("gguf")
    folder = tmp_path_factory.mktemp("bad_bases")
    model = surgery_tiny("llama")
    model.config.update(dict(vocab_size=len(tiny_tokenizer), max_position_embeddings=64, rms_norm_eps=1e-6))
    model.resize_token_embeddings(len(tiny_tokenizer))
    write_gguf(folder / "good.gguf", model, tiny_tokenizer)
    data = (folder / "good.gguf").read_bytes()
    (folder / "cut_in_header.gguf").write_bytes(data[:100])
    (folder / "cut_in_tensors.gguf").write_bytes(data[:len(data) * 9 // 10])
    model.save_pretrained(folder / "cut_weights")
    weights = folder / "cut_weights" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    return {
        "cut_in_header": (folder / "cut_in_header.gguf", "the GGUF file is truncated or damaged"),
        "cut_in_tensors": (folder / "cut_in_tensors.gguf", "the GGUF file is truncated or damaged"),
        "cut_weights": (folder / "cut_weights", "model.safetensors is truncated or damaged"),
        "no_config": (folder, "the folder has no config.json"),
        "hub_id": ("gpt2", "not a local file or folder, so it was taken for a Hugging Face hub id, which "
                           "could not be fetched"),  # HF_HUB_OFFLINE=1 (conftest)
    }


def test_estimate_reads_the_good_gguf_the_bad_ones_are_cut_from(debug_profile, bad_bases):
    good = bad_bases["cut_in_tensors"][0].with_name("good.gguf")
    assert estimate(with_base(load_all(debug_profile), "upscale", good), measure_steps=0)["model"]["layers"] == 6


@pytest.mark.parametrize("kind", ["cut_in_header", "cut_in_tensors", "cut_weights", "no_config", "hub_id"])
def test_cli_on_a_bad_base_prints_one_line_naming_model_base(tmp_path, bad_bases, kind, capsys):
    path, words = bad_bases[kind]
    # Rows that fit the bases' context of 64: the damage is the only problem of these params.
    (tmp_path / "params.yaml").write_text(f"model:\n  init: upscale\n  base: {path}\npack:\n  seq_len: 64\n")
    with pytest.raises(SystemExit) as stopped:
        main(["estimate", "--params", str(tmp_path / "params.yaml"), "--measure-steps", "0"])
    err = capsys.readouterr().err
    assert stopped.value.code == 1 and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: params.yaml: model.base: cannot read a model config from '{path}': {words}"), err
    assert "reshape" not in err and "no such file" not in err, err
