"""Security: no pickle is ever loaded, no remote code runs, weights are safetensors, no secrets.

Unpickling a file runs whatever code it names, so a shared model or dataset must never reach
``pickle.load`` or ``torch.load(weights_only=False)``; ``trust_remote_code=True`` runs Python
downloaded with a hub model.
"""

import ast
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM

from pretrain.config.train import TrainConfig
from pretrain.evaluate.runner import load_model
from pretrain.train import checkpoint
from pretrain.train.loop import train
from pretrain.train.optim import build_optimizer

ROOT = Path(__file__).resolve().parents[1]
CODE = sorted([*(ROOT / "src").rglob("*.py"), *(ROOT / "stages").rglob("*.py")])
PICKLERS = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def dotted(node: ast.AST) -> str:
    """The dotted name a call goes to (``torch.load``); "" when it is not a plain name or attribute."""
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


ABSENT, VARIABLE = object(), object()


def keyword(call: ast.Call, name: str):
    """The constant value of keyword ``name`` of ``call``, ABSENT, or VARIABLE (not a constant)."""
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else VARIABLE
    return ABSENT


def unsafe_uses(source: str) -> list[str]:
    """Every unpickling import or call, and every remote-code switch, in a module's source."""
    found = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            found += [f"{line}: import {a.name}" for a in node.names if a.name.split(".")[0] in PICKLERS]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PICKLERS:
            found.append(f"{line}: from {node.module} import")
        elif isinstance(node, ast.ImportFrom) and node.module == "torch":
            found += [f"{line}: from torch import load" for a in node.names if a.name == "load"]
        elif isinstance(node, ast.Call):
            name = dotted(node.func)
            if name.endswith("torch.load") and keyword(node, "weights_only") is not True:
                found.append(f"{line}: {name} without weights_only=True")
            if keyword(node, "allow_pickle") not in (ABSENT, False):
                found.append(f"{line}: {name}(allow_pickle=...)")
            if keyword(node, "trust_remote_code") not in (ABSENT, False):
                found.append(f"{line}: {name}(trust_remote_code=...)")
            if keyword(node, "weights_only") not in (ABSENT, True):
                found.append(f"{line}: {name}(weights_only=...)")
    return found


@pytest.mark.parametrize("source, expected", [
    ("import torch\ntorch.load(f)", "torch.load without weights_only=True"),
    ("import torch\ntorch.load(f, weights_only=False)", "torch.load without weights_only=True"),
    ("import pickle", "import pickle"),
    ("from joblib import load", "from joblib import"),
    ("AutoModel.from_pretrained(p, trust_remote_code=True)", "trust_remote_code"),
    ("AutoModel.from_pretrained(p, trust_remote_code=flag)", "trust_remote_code"),
    ("import numpy as np\nnp.load(f, allow_pickle=True)", "allow_pickle"),
    ("from torch import load", "from torch import load"),
])
def test_the_scan_finds_each_unsafe_pattern(source, expected):
    assert any(expected in hit for hit in unsafe_uses(source))


def test_the_scan_lets_safe_loading_through():
    assert unsafe_uses("import torch\ntorch.load(f, map_location='cpu', weights_only=True)\n"
                       "AutoTokenizer.from_pretrained(p)\nnp.load(f)\nsafetensors.torch.load_file(f)") == []


def test_no_code_unpickles_or_trusts_remote_code():
    assert CODE
    hits = [f"{path.relative_to(ROOT)}:{hit}" for path in CODE for hit in unsafe_uses(path.read_text())]
    assert hits == []


def test_models_are_saved_as_safetensors_only(tmp_path, init_dir, tokens_dir):
    train(TrainConfig(max_steps=1, warmup_steps=0, micro_batch_size=2, precision="fp32"), init_dir, tokens_dir,
          tmp_path / "trained", tmp_path / "live")
    for folder in (init_dir, tmp_path / "trained"):
        weights = {p.name for p in folder.iterdir() if p.suffix in {".safetensors", ".bin", ".pt", ".pth", ".pkl", ".ckpt"}}
        assert weights == {"model.safetensors"}, folder


def test_a_pickled_checkpoint_is_refused(tmp_path, init_dir):
    """A model folder whose weights are a pickle (pytorch_model.bin) is not loaded at all."""
    folder = tmp_path / "pickled"
    shutil.copytree(init_dir, folder)
    model, _ = load_model(folder, torch.device("cpu"))
    (folder / "model.safetensors").unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(OSError, match="safetensors"):
        load_model(folder, torch.device("cpu"))


# Key names that would hold a credential; the tokenizer's bos_token / eos_token / pad_token do not.
SECRET_KEY = re.compile(r"secret|passw|api_?key|access_?key|credential|^(hf_|hub_|auth_|access_)?token$", re.I)
SECRET_VALUE = re.compile(r"hf_[A-Za-z0-9]{30,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|"
                          r"sk-[A-Za-z0-9]{20,}|xox[abp]-[A-Za-z0-9-]{10,}")


def keys(tree) -> list[str]:
    """Every key of a nested YAML mapping, as dotted paths."""
    if not isinstance(tree, dict):
        return []
    return [k for name, sub in tree.items() for k in [str(name), *(f"{name}.{s}" for s in keys(sub))]]


def test_no_secret_in_params_or_code():
    """Credentials (hub token, cloud keys for a DVC remote, tracker keys) come from the environment
    or DVC's local config, never from a file the repository tracks."""
    params = [ROOT / "params.yaml", *(ROOT / "profiles").glob("*.yaml")]
    for path in params:
        names = keys(yaml.safe_load(path.read_text()))
        assert "tokenizer.bos_token" in names
        assert [k for k in names if SECRET_KEY.search(k.split(".")[-1])] == [], path
    for path in [*params, *CODE, ROOT / "dvc.yaml", ROOT / ".dvc/config"]:
        assert not SECRET_VALUE.search(path.read_text()), path


def test_checkpoints_hold_only_safetensors_and_json(tmp_path, init_dir):
    model = AutoModelForCausalLM.from_pretrained(init_dir)
    optimizer = build_optimizer(model, TrainConfig())
    model(input_ids=torch.ones(1, 4, dtype=torch.long), labels=torch.ones(1, 4, dtype=torch.long)).loss.backward()
    optimizer.step()
    path = checkpoint.save(tmp_path, "key", 1, *checkpoint.gather(model, optimizer), None)
    assert {p.suffix for p in path.iterdir()} == {".safetensors", ".json"}
