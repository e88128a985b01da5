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


def module_file(module: str) -> Path | None:
    """The file of a module of the package (``pretrain.a.b``: a/b.py or a/b/__init__.py)."""
    base = PACKAGE.parent.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path
    return None


def runs_code(module: str) -> bool:
    """Whether a package's ``__init__.py`` holds more than its docstring (a docstring cannot
    change what a stage writes; pretrain's subpackages keep their map there)."""
    body = ast.parse(module_file(module).read_text()).body
    return any(not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in body)


def type_checking_blocks(tree: ast.AST) -> set[ast.AST]:
    """Nodes inside ``if TYPE_CHECKING:`` blocks: imports for annotations, never run."""
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for child in node.body:
                inside.update(ast.walk(child))
    return inside


def pretrain_imports(path: Path) -> set[str]:
    """Modules of the pretrain package that ``path`` imports, at any depth of the function body
    (not under ``if TYPE_CHECKING:``), with the packages above them that run code (importing
    ``pretrain.a.b`` runs ``pretrain/a/__init__.py``)."""
    found = set()
    tree = ast.parse(path.read_text())
    skipped = type_checking_blocks(tree)
    for node in ast.walk(tree):
        if node in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pretrain"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names
                         if module_file(f"{node.module}.{a.name}"))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("pretrain"))
    # The root package holds only the docstring and the version string, which the URL fetcher
    # imports by name (its User-Agent): it is a dependency where imported so, not of every stage.
    parents = {".".join(m.split(".")[:i]) for m in found for i in range(2, m.count(".") + 1)}
    return found | {p for p in parents if runs_code(p)}


def closure(script: Path) -> set[str]:
    """Files of the package that ``script`` needs, following imports transitively."""
    todo, seen = list(pretrain_imports(script)), set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo.extend(pretrain_imports(module_file(module)))
    return {module_file(m).relative_to(ROOT).as_posix() for m in seen}


def covered(path: str, deps: set[str]) -> bool:
    """Whether ``path`` or a folder above it is a dependency."""
    parts = path.split("/")
    return any("/".join(parts[:i]) in deps for i in range(1, len(parts) + 1))


STAGES = load_dvc_yaml()["stages"]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_depends_on_every_module_it_imports(name):
    stage = STAGES[name]
    script = re.search(r"stages/\w+\.py", stage["cmd"]).group(0)
    deps = set(stage["deps"])
    assert script in deps
    missing = {path for path in closure(ROOT / script) if not covered(path, deps)}
    assert not missing, f"stage {name} imports {sorted(missing)} but does not list them in deps"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_depends_on_the_config_of_each_section_it_reads(name):
    """Sections are loaded by name (pretrain.config.SECTIONS), which the import closure cannot
    follow: the config module of each section a stage reads must be a dependency, and the
    modules of the sections it only validates need not be (they cannot change its outputs)."""
    from pretrain.config import SECTIONS

    stage = STAGES[name]
    deps = set(stage["deps"])
    for section in {p.split(".")[0] for p in stage.get("params", [])}:
        path = module_file(SECTIONS[section].split(":")[0]).relative_to(ROOT).as_posix()
        assert covered(path, deps), f"stage {name} reads params section {section} but not {path}"


def test_a_training_only_config_change_does_not_rerun_the_data_stages():
    train_config = "src/pretrain/config/train.py"
    for name in ("download", "clean", "dedup", "tokenizer", "pack", "init-model"):
        deps = set(STAGES[name]["deps"])
        assert not covered(train_config, deps), name
        assert not covered("src/pretrain/train/loop.py", deps), name


def test_dvc_yaml_lists_folders_not_modules():
    """A stage lists its script, its sub-packages, its sections' config and the shared low
    layers: a short list (evaluate, export and finetune, which join tokens, models, merges and
    the runtime, and evaluate and finetune the download readers for their data, are the
    longest), in a map of twelve stages at most two thirds as long as the module-by-module map
    of nine stages was (337 lines)."""
    for name, stage in STAGES.items():
        code = [d for d in stage["deps"] if d.startswith(("src/", "stages/"))]
        assert len(code) <= 17, (name, code)
        assert sum(d.startswith("src/pretrain/") and d.endswith(".py") for d in code) <= 12, name
    assert len((ROOT / "dvc.yaml").read_text().splitlines()) <= 337 * 2 / 3


# Sections a stage reads that cannot change what it writes, so they are left out of its
# params: a stage writes the same bytes on any executor with any number of workers
# (tests/executor/test_ray.py), and a new executor setting must not rerun the pipeline.
NEUTRAL = {"executor"}


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_depends_on_the_params_sections_it_reads(name):
    stage = STAGES[name]
    script = ROOT / re.search(r"stages/\w+\.py", stage["cmd"]).group(0)
    read = set(re.findall(r'params\["(\w+)"\]', script.read_text()))
    declared = {p.split(".")[0] for p in stage.get("params", [])}
    assert read - NEUTRAL == declared, name
    assert not declared & NEUTRAL, name


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stages_that_run_shards_depend_on_every_executor(name):
    """pretrain.executor.shards imports the executor that params name (EXECUTORS), which the
    import closure cannot follow: a stage that runs shards must list them all."""
    from pretrain.executor.shards import EXECUTORS

    stage = STAGES[name]
    deps = set(stage["deps"])
    if not covered("src/pretrain/executor/shards.py", deps):
        script = ROOT / re.search(r"stages/\w+\.py", stage["cmd"]).group(0)
        assert "src/pretrain/executor/shards.py" not in closure(script)
        return
    for target in EXECUTORS.values():
        path = module_file(target.split(":")[0])
        assert covered(path.relative_to(ROOT).as_posix(), deps), (name, target)
        assert all(covered(f, deps) for f in closure(path)), (name, target)


def test_evaluate_depends_on_the_task_definitions():
    assert covered("src/pretrain/evaluate/lm_eval_tasks/pretrain_heldout_mc.yaml",
                   set(STAGES["evaluate"]["deps"]))


# Working folders that are deliberately not outputs: training deletes its checkpoints when it
# finishes, and a data stage its work folder of shard outputs and completion markers (DVC would
# fail on a missing output, or delete them before the rerun that resumes from them).
SCRATCH = {"checkpoints/train", "checkpoints/finetune", "data/work/download", "data/work/clean", "data/work/dedup", "data/work/pack"}


def test_scratch_folders_are_ignored_by_git():
    ignored = {line.strip().strip("/") for line in (ROOT / ".gitignore").read_text().splitlines()}
    for path in SCRATCH:
        assert any(covered(path, {entry}) for entry in ignored), path


def test_data_stages_resume_from_their_own_work_folder():
    for name in ("clean", "dedup", "pack"):
        assert f"--work data/work/{name}" in STAGES[name]["cmd"], name


def test_every_path_argument_is_declared():
    """Paths passed on a command line are deps or outs of that stage (no hidden inputs)."""
    for name, stage in STAGES.items():
        declared = set(stage.get("deps", [])) | SCRATCH
        for entry in stage.get("outs", []) + stage.get("metrics", []) + stage.get("plots", []):
            declared.add(entry if isinstance(entry, str) else next(iter(entry)))
        for path in re.findall(r"--\w[\w-]* (\S+)", stage["cmd"]):
            assert path in declared, f"{name}: {path} is neither a dep nor an out"


# The stages that read a local input params name, by the folder it must lie in (pretrain.stage.watched):
# each gets the folder on its command line (so it refuses an input outside) and depends on it
# (so DVC reruns it when the input changes).
READERS = {"sources": {"download", "evaluate"}, "tuning": {"finetune"},
           "bases": {"tokenizer", "init-model", "merge", "evaluate", "finetune"}}


@pytest.mark.parametrize("folder", sorted(READERS))
def test_stages_reading_params_inputs_watch_their_folder(folder):
    paths = yaml.safe_load((ROOT / "dvc.yaml").read_text())["vars"][0]["paths"]
    given = {name for name, stage in STAGES.items() if f"--{folder} {paths[folder]}" in stage["cmd"]}
    assert given == READERS[folder]
    for name in given:
        assert paths[folder] in STAGES[name]["deps"], name


# download's URL cache persists on purpose (fetched pages are kept between runs and shared by
# dvc push); download is quick to rerun, and what follows it is restored when its data is the same.
PERSISTED = {("download", "data/url_cache")}
# report's page and figures stay in git, to be read on a fresh clone; it reruns in seconds.
UNCACHED = {("report", "metrics/report.md"), ("report", "metrics/report.html")}


@pytest.mark.parametrize("name", sorted(load_dvc_yaml()["stages"]))
def test_the_run_cache_can_restore_the_stage(name):
    """A return to a parameter set already run restores each stage from DVC's run cache in seconds.
    DVC saves no run-cache entry for a stage with a persist output (dvc/stage/cache.py
    ``_can_hash``) or with an uncached output that is neither metrics nor plots
    (``Stage.run``: ``no_cache_outs``): such a stage reruns, e.g. retrains, every time."""
    stage = load_dvc_yaml()["stages"][name]
    for out in stage.get("outs", []):
        path, props = (out, {}) if isinstance(out, str) else next(iter(out.items()))
        if (name, path) in PERSISTED:
            continue
        assert not props.get("persist"), f"{name}: {path} is persist"
        assert props.get("cache", True) or (name, path) in UNCACHED, f"{name}: {path} is uncached"


def test_no_stage_argument_shares_a_watched_folder_s_name():
    """run_stage checks the watched folder by the argument of its name (FOLDERS): a stage's
    other input of that name (the report's --finetune metrics file once did, against a folder
    named finetune) would be taken for the folder and refuse good params."""
    from pretrain.stage.watched import FOLDERS

    paths = yaml.safe_load((ROOT / "dvc.yaml").read_text())["vars"][0]["paths"]
    for name, stage in STAGES.items():
        for arg, value in re.findall(r"--(\w[\w-]*) (\S+)", stage["cmd"]):
            if arg.replace("-", "_") in FOLDERS:
                assert value == "${paths.%s}" % arg or value == paths[arg], (name, arg, value)
