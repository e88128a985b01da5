"""The package shows the pipeline: sub-packages by stage, imports that flow one way, no cycles,
modules small enough to read in one sitting (STYLE.md "The shape of the house")."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "pretrain"

# Shared layers first, then the stages' packages in the order data flows through them, then the
# glue that runs them. A module may import from its own package and from packages before it.
ORDER = ["errors", "io", "token_store", "config", "executor", "runtime", "bases", "sources", "clean", "dedup", "tokens",
         "model", "train", "merge", "finetune", "evaluate", "export", "cost", "report", "stage",
         "cli"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """pretrain modules imported by ``path`` (not under ``if TYPE_CHECKING:``)."""
    tree = ast.parse(path.read_text())
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
            and getattr(node.test, "id", None) == "TYPE_CHECKING" for c in node.body for n in ast.walk(c)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pretrain"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("pretrain."))
    return found - {"pretrain"}


GRAPH = {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


def top(module: str) -> str:
    return module.split(".")[1] if module.count(".") else module


def test_every_module_belongs_to_a_known_layer():
    assert {top(m) for m in GRAPH if m != "pretrain"} == set(ORDER)


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m != "pretrain"))
def test_imports_flow_one_way(module):
    """Lower layers import nothing above them (config and io know no stage, a stage's package
    knows no later stage)."""
    rank = ORDER.index(top(module))
    above = sorted(m for m in GRAPH[module] if ORDER.index(top(m)) > rank)
    assert not above, f"{module} imports {above}, which come later in the pipeline"


def test_no_import_cycles():
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in GRAPH.get(module, ()):
            if state.get(target) == 1:
                raise AssertionError(" -> ".join(path + [module, target]))
            if target in GRAPH and not state.get(target):
                visit(target, path + [module])
        state[module] = 2

    for module in GRAPH:
        if not state.get(module):
            visit(module, [])


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_modules_read_in_one_sitting(path):
    """Files under ~400 lines, functions under ~40 (STYLE.md)."""
    text = path.read_text()
    assert len(text.splitlines()) <= 420, "file over ~400 lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            assert node.end_lineno - node.lineno + 1 <= 45, f"{node.name} is over ~40 lines"


def test_tests_mirror_the_sub_packages():
    """Each sub-package has its own folder of tests (STYLE.md: tests/ mirrors src/pretrain/)."""
    tests = Path(__file__).resolve().parent
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    missing = {name for name in packages if not list((tests / name).glob("test_*.py"))}
    assert not missing, f"sub-packages without a tests/<name>/ folder: {sorted(missing)}"
    strays = {p.parent.name for p in tests.glob("*/test_*.py")} - packages
    assert not strays, f"test folders that match no sub-package: {sorted(strays)}"
