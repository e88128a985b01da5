"""The merge stage: each method's merged tensors against its published definition (mergekit's
docs and the papers), the sweep's folders and manifest, the pass-through, and the one-line errors
for models that cannot be merged."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

import pretrain
from pretrain.config import ConfigError, build
from pretrain.config.merge import METHODS, MergeConfig
from pretrain.merge.manifest import final_model, read_manifest, weight_key
from pretrain.merge.runner import config_difference, init_kind, merge


def save_variant(src, dst, seed: int, tokenizer_from=None, **config_changes):
    """A copy of the model folder ``src`` with every weight moved by seeded noise (a stand-in
    for a trained model), its config changed by ``config_changes`` (a new random model then)."""
    model = AutoModelForCausalLM.from_pretrained(src)
    if config_changes:
        config = model.config
        for key, value in config_changes.items():
            setattr(config, key, value)
        torch.manual_seed(seed)
        model = type(model)(config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    model.save_pretrained(dst)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (dst / name).write_bytes(((tokenizer_from or src) / name).read_bytes())
    return dst


@pytest.fixture(scope="module")
def models(tmp_path_factory, init_dir):
    root = tmp_path_factory.mktemp("merge")
    return {"init": init_dir, "trained": save_variant(init_dir, root / "trained", 1),
            "other": save_variant(init_dir, root / "other", 2), "root": root}


def weights(folder):
    return load_file(str(folder / "model.safetensors"))


def run(models, tmp_path, **params):
    cfg = build(MergeConfig, params, where="params.yaml: merge")
    other = params.get("other", "init")
    if other != "init":
        cfg = build(MergeConfig, {**params, "other": str(models[other])}, where="params.yaml: merge")
    out = tmp_path / "merged"
    manifest = merge(cfg, models["trained"], models["init"], out)
    return manifest, out


def slerp(t, v0, v1):
    """SLERP of two tensors as mergekit defines it (merge_methods/slerp.py): the angle between
    the normalised flattened tensors, applied to the unnormalised ones."""
    a, b = v0.flatten().double(), v1.flatten().double()
    omega = math.acos(float(torch.clamp((a / a.norm()) @ (b / b.norm()), -1, 1)))
    s = math.sin(omega)
    return ((math.sin((1 - t) * omega) / s) * a + (math.sin(t * omega) / s) * b).reshape(v0.shape).float()


KEY = "model.layers.0.mlp.up_proj.weight"


@pytest.mark.parametrize("w", [0.3, 1.2])
def test_linear_is_the_weighted_average(models, tmp_path, w):
    manifest, out = run(models, tmp_path, method="linear", weights=[w])
    m, t, i = weights(out / f"w{w:g}"), weights(models["trained"]), weights(models["init"])
    for key in t:
        torch.testing.assert_close(m[key], w * t[key] + (1 - w) * i[key], rtol=0, atol=1e-6)
    assert manifest["final"] == f"w{w:g}" and manifest["final_weight"] == w


def test_slerp_follows_the_great_circle(models, tmp_path):
    _, out = run(models, tmp_path, method="slerp", weights=[0.3])
    m, t, i = weights(out / "w0.3"), weights(models["trained"]), weights(models["init"])
    torch.testing.assert_close(m[KEY], slerp(0.3, i[KEY], t[KEY]), rtol=0, atol=1e-5)
    assert not torch.allclose(m[KEY], 0.3 * t[KEY] + 0.7 * i[KEY], atol=1e-6)  # not a plain average


def test_task_arithmetic_adds_the_scaled_task_vectors(models, tmp_path):
    _, out = run(models, tmp_path, method="task_arithmetic", weights=[0.7], other="other")
    m, t, o, i = (weights(out / "w0.7"), weights(models["trained"]), weights(models["other"]),
                  weights(models["init"]))
    for key in t:
        expected = i[key] + 0.7 * (t[key] - i[key]) + 0.3 * (o[key] - i[key])
        torch.testing.assert_close(m[key], expected, rtol=0, atol=1e-6)


def test_ties_keeps_the_largest_entries_of_the_task_vector(models, tmp_path):
    _, out = run(models, tmp_path, method="ties", weights=[0.8], density=0.25)
    m, t, i = weights(out / "w0.8"), weights(models["trained"]), weights(models["init"])
    delta = t[KEY] - i[KEY]
    kept = (m[KEY] - i[KEY]).abs() > 1e-7
    assert kept.float().mean().item() == pytest.approx(0.25, abs=0.01)
    # the kept entries are the largest in magnitude, each moved by w times its task vector
    assert delta[kept].abs().min() >= delta[~kept].abs().max()
    torch.testing.assert_close(m[KEY][kept], i[KEY][kept] + 0.8 * delta[kept], rtol=0, atol=1e-6)


def test_a_sweep_writes_one_model_per_weight_with_the_tokenizer(models, tmp_path):
    manifest, out = run(models, tmp_path, method="linear", weights=[0.0, 0.5, 1.0], select=0.5)
    assert manifest["models"] == {"0": "w0", "0.5": "w0.5", "1": "w1"}
    torch.testing.assert_close(weights(out / "w0")[KEY], weights(models["init"])[KEY])
    torch.testing.assert_close(weights(out / "w1")[KEY], weights(models["trained"])[KEY])
    for folder in ("w0", "w0.5", "w1"):
        assert (out / folder / "tokenizer.json").read_bytes() == (models["trained"] / "tokenizer.json").read_bytes()
        assert "merge_method: linear" in (out / folder / "mergekit_config.yml").read_text()
    assert final_model(out, models["trained"]) == (out / "w0.5", "merged (linear, w=0.5)")
    assert read_manifest(out) == manifest
    assert AutoModelForCausalLM.from_pretrained(out / "w0.5").config.num_hidden_layers == 2


def test_none_passes_the_trained_model_through(models, tmp_path):
    manifest, out = run(models, tmp_path, method="none")
    assert sorted(p.name for p in out.iterdir()) == ["merge.json"]
    assert manifest["final"] is None
    assert final_model(out, models["trained"]) == (models["trained"], "trained")


def test_weight_keys_have_no_dots():
    assert [weight_key(w) for w in (0.5, 0.333, 1.25, -0.2)] == ["merged_50", "merged_33_3", "merged_125",
                                                                  "merged_m20"]


def test_other_shapes_are_refused_in_one_line(models, tmp_path):
    save_variant(models["init"], models["root"] / "deeper", 3, num_hidden_layers=3)
    models["deeper"] = models["root"] / "deeper"
    with pytest.raises(ConfigError) as err:
        run(models, tmp_path, method="linear", other="deeper")
    assert "3 layers against the trained model's 2" in str(err.value) and "\n" not in str(err.value)
    save_variant(models["init"], models["root"] / "wider", 3, intermediate_size=192)
    models["wider"] = models["root"] / "wider"
    with pytest.raises(ConfigError, match=r"tensor model\.layers\.0\.mlp\.down_proj\.weight is \[64, 192\]"):
        run(models, tmp_path, method="slerp", other="wider")
    assert not (tmp_path / "merged").exists()  # nothing half-written


def test_another_tokenizer_is_refused(models, tmp_path):
    folder = save_variant(models["init"], models["root"] / "retokenized", 4)
    state = json.loads((folder / "tokenizer.json").read_text())
    vocab = state["model"]["vocab"]
    a, b = sorted(vocab)[10:12]
    vocab[a], vocab[b] = vocab[b], vocab[a]
    (folder / "tokenizer.json").write_text(json.dumps(state))
    models["retokenized"] = folder
    with pytest.raises(ConfigError, match="has another tokenizer .*2 of the trained model's tokens with another id"):
        run(models, tmp_path, method="linear", other="retokenized")


def test_another_architecture_is_refused(models, tmp_path):
    folder = models["root"] / "phi"
    folder.mkdir()
    config = json.loads((models["init"] / "config.json").read_text())
    config.update(model_type="phi3", architectures=["Phi3ForCausalLM"])
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes((models["init"] / "model.safetensors").read_bytes())
    models["phi"] = folder
    with pytest.raises(ConfigError, match="is a 'phi3' model, the trained model a 'llama' one"):
        run(models, tmp_path, method="linear", other="phi")
    models["empty"] = models["root"] / "empty"
    models["empty"].mkdir()
    with pytest.raises(ConfigError, match="no config.json"):
        run(models, tmp_path, method="linear", other="empty")


@pytest.mark.parametrize("params, message", [
    ({"method": "average"}, "merge.method: expected one of"),
    ({"method": "slerp", "weights": [1.5]}, r"merge.weights: expected a value in \[0, 1\]"),
    ({"weights": [0.5, 0.5]}, "each weight once"),
    ({"weights": []}, "at least one weight"),
    ({"weights": [0.2, 0.4], "select": 0.3}, r"select: expected one of weights \[0.2, 0.4\]"),
    ({"density": 0}, "density"),
])
def test_bad_params_are_named(params, message):
    with pytest.raises(ConfigError, match=message):
        build(MergeConfig, params, where="params.yaml: merge")


def test_the_init_says_how_it_was_made(models):
    assert init_kind(models["init"]) == "random"  # the debug preset, built from scratch
    assert init_kind(models["trained"]) is None  # no lineage.json


ROPE = {"rope_theta": 500000.0, "rope_type": "default"}


@pytest.mark.parametrize("change, message", [
    ({"rope_parameters": ROPE},
     "rope_parameters.rope_theta 500000.0 in its config.json, the trained model 10000.0"),
    ({"rope_parameters": {"rope_theta": 10000.0, "rope_type": "linear", "factor": 4.0}},
     'rope_parameters.factor 4.0 in its config.json, the trained model (missing)'),
    ({"rms_norm_eps": 1e-5}, "rms_norm_eps 1e-05 in its config.json, the trained model 1e-06"),
    ({"hidden_act": "gelu"}, 'hidden_act "gelu" in its config.json, the trained model "silu"'),
    ({"max_position_embeddings": 1024},
     "max_position_embeddings 1024 in its config.json, the trained model 512"),
])
def test_a_partner_that_computes_differently_is_refused_in_one_line(models, tmp_path, change, message):
    """Same shapes and tokenizer, another computation: a linear merge used to pass, and the merged
    config took either model's setting (mergekit's config source, the first of a set)."""
    models["changed"] = save_variant(models["init"], tmp_path / "changed", 5, **change)
    with pytest.raises(ConfigError) as err:
        run(models, tmp_path, method="linear", other="changed")
    folder = models["changed"]
    assert str(err.value).startswith(f"merge.other ({folder}): {folder} has {message}: models merge")
    assert "\n" not in str(err.value) and not (tmp_path / "merged").exists()


def test_an_init_that_computes_differently_is_refused_as_the_task_vectors_base(models, tmp_path):
    init = save_variant(models["init"], tmp_path / "init", 6, rope_parameters=ROPE)
    cfg = build(MergeConfig, {"method": "task_arithmetic", "other": str(models["other"])}, where="merge")
    with pytest.raises(ConfigError, match=r"^the init model \(the task vectors' base\): .* has "
                                          r"rope_parameters\.rope_theta 500000\.0 in its config\.json"):
        merge(cfg, models["trained"], init, tmp_path / "merged")


def test_the_same_settings_in_transformers_4_layout_are_no_difference(models, tmp_path):
    """transformers 4 kept rope_theta at the top level (rope_scaling: null) and wrote torch_dtype;
    loaded, that is transformers 5's rope_parameters: no difference. The theta itself still is."""
    old = tmp_path / "old"
    old.mkdir()
    config = json.loads((models["trained"] / "config.json").read_text())
    del config["rope_parameters"]
    del config["dtype"]
    config.update(rope_theta=10000.0, rope_scaling=None, torch_dtype="bfloat16",
                  transformers_version="4.46.0")
    (old / "config.json").write_text(json.dumps(config))
    assert config_difference(models["trained"], old) is None
    config["rope_theta"] = 500000.0
    (old / "config.json").write_text(json.dumps(config))
    assert config_difference(models["trained"], old) == ("rope_parameters.rope_theta", 10000.0, 500000.0)


HASH_SEED_MERGE = """
import sys
from pathlib import Path
from pretrain.config import build
from pretrain.config.merge import MergeConfig
from pretrain.merge.runner import merge
for method in sys.argv[2:]:
    cfg = build(MergeConfig, {"method": method, "other": "other", "weights": [0.3, 0.6]}, where="merge")
    merge(cfg, Path("trained"), Path("init"), Path(sys.argv[1]) / method)
"""


def test_the_merged_folder_is_the_same_bytes_whatever_the_hash_seed(models, tmp_path):
    """mergekit takes the merged config from the first of a set of models when no base model is
    named (linear), and the set's order follows PYTHONHASHSEED: with a partner that differs in a
    key that does not change the computation (use_cache, eos_token_id), config.json changed
    from run to run. Each seed runs every method in a fresh process, under DVC's relative paths."""
    shutil.copytree(models["trained"], tmp_path / "trained")
    shutil.copytree(models["init"], tmp_path / "init")
    save_variant(models["init"], tmp_path / "other", 7, use_cache=False, eos_token_id=5)
    methods = [m for m in METHODS if m != "none"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(pretrain.__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    runs = [subprocess.Popen([sys.executable, "-c", HASH_SEED_MERGE, f"out{seed}", *methods], cwd=tmp_path,
                             env={**env, "PYTHONHASHSEED": str(seed)}, stderr=subprocess.PIPE)
            for seed in range(4)]  # side by side: most of each run is importing mergekit
    trees = []
    for seed, process in enumerate(runs):
        _, stderr = process.communicate()
        assert process.returncode == 0, stderr.decode()[-2000:]
        out = tmp_path / f"out{seed}"
        trees.append({str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    # per method merge.json; per weight the config, generation config, mergekit config, weights, tokenizer
    assert len(trees[0]) == 4 * (1 + 2 * 6)
    for seed, tree in enumerate(trees[1:], 1):
        assert tree.keys() == trees[0].keys()
        assert [name for name in tree if tree[name] != trees[0][name]] == [], f"PYTHONHASHSEED={seed}"
    for method in methods:  # the merged model's config is the trained model's, whatever the method
        assert trees[0][f"{method}/w0.3/config.json"] == (tmp_path / "trained" / "config.json").read_bytes()
