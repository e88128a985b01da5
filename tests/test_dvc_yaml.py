"""dvc.yaml is the map: each stage depends on its script, every library module it imports
(transitively) and the params sections it reads, so DVC reruns it when any of them change."""

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "pretrain"


def load_dvc_yaml() -> dict:
    text = (ROOT / "dvc.yaml").read_text()
    data = yaml.safe_load(text)
    paths = data["vars"][0]["paths"]
    resolved = re.sub(r"\$\{paths\.(\w+)\}", lambda m: paths[m.group(1)], text)
    return yaml.safe_load(resolved)


def pretrain_imports(path: Path) -> set[str]:
    """Modules of the pretrain package that ``path`` imports, at any depth of the function body."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pretrain"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names
                         if (PACKAGE / f"{a.name}.py").exists() and node.module == "pretrain")
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("pretrain"))
    return {m for m in found if m != "pretrain"}


def closure(script: Path) -> set[str]:
    """Files of the package that ``script`` needs, following imports transitively."""
    todo, seen = list(pretrain_imports(script)), set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo.extend(pretrain_imports(PACKAGE / f"{module.split('.', 1)[1]}.py"))
    return {f"src/pretrain/{m.split('.', 1)[1]}.py" for m in seen}


STAGES = load_dvc_yaml()["stages"]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_depends_on_every_module_it_imports(name):
    stage = STAGES[name]
    script = re.search(r"stages/\w+\.py", stage["cmd"]).group(0)
    deps = set(stage["deps"])
    assert script in deps
    missing = closure(ROOT / script) - deps
    assert not missing, f"stage {name} imports {sorted(missing)} but does not list them in deps"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_depends_on_the_params_sections_it_reads(name):
    stage = STAGES[name]
    script = ROOT / re.search(r"stages/\w+\.py", stage["cmd"]).group(0)
    read = set(re.findall(r'params\["(\w+)"\]', script.read_text()))
    declared = {p.split(".")[0] for p in stage.get("params", [])}
    assert read == declared, name


def test_evaluate_depends_on_the_task_definitions():
    assert "src/pretrain/lm_eval_tasks" in STAGES["evaluate"]["deps"]


# Working folders that are deliberately not outputs: training deletes its checkpoints when it
# finishes (DVC would fail on a missing output, or delete them before the rerun that needs them).
SCRATCH = {"checkpoints/train"}


def test_every_path_argument_is_declared():
    """Paths passed on a command line are deps or outs of that stage (no hidden inputs)."""
    for name, stage in STAGES.items():
        declared = set(stage.get("deps", [])) | SCRATCH
        for entry in stage.get("outs", []) + stage.get("metrics", []) + stage.get("plots", []):
            declared.add(entry if isinstance(entry, str) else next(iter(entry)))
        for path in re.findall(r"--\w[\w-]* (\S+)", stage["cmd"]):
            assert path in declared, f"{name}: {path} is neither a dep nor an out"


# The stages that read a local input params name, by the folder it must lie in (pretrain.watched):
# each gets the folder on its command line (so it refuses an input outside) and depends on it
# (so DVC reruns it when the input changes).
READERS = {"sources": {"download", "evaluate"}, "bases": {"tokenizer", "init-model", "evaluate"}}


@pytest.mark.parametrize("folder", sorted(READERS))
def test_stages_reading_params_inputs_watch_their_folder(folder):
    paths = yaml.safe_load((ROOT / "dvc.yaml").read_text())["vars"][0]["paths"]
    given = {name for name, stage in STAGES.items() if f"--{folder} {paths[folder]}" in stage["cmd"]}
    assert given == READERS[folder]
    for name in given:
        assert paths[folder] in STAGES[name]["deps"], name
