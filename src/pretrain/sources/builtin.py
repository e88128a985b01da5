"""The built-in corpus, offline on every Python installation: the standard library's source
code, its reference manual's topics (``pydoc_data``), its docstrings, and the descriptions of
the locked packages (pretrain.sources.manifest). Each part yields documents; ``include_tests``
adds the test suites. The source files are code, every other part prose (its ids name the .py
file the docstrings come from, but the text is prose)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import sysconfig
from pathlib import Path
from typing import Iterator

from pretrain.sources.records import Document, Skipped

TEST_DIRS = {"test", "tests", "idle_test"}


def stdlib_files(include_tests: bool) -> list[tuple[str, Path]]:
    """The standard library's ``.py`` files as (relative posix path, path), sorted."""
    root = Path(sysconfig.get_paths()["stdlib"])
    found = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if "site-packages" in rel.parts or "dist-packages" in rel.parts:
            continue
        if not include_tests and is_test_path(rel.as_posix()):
            continue
        found.append((rel.as_posix(), path))
    return sorted(found)


def is_test_path(rel: str) -> bool:
    """Whether a standard-library path (posix, relative to Lib/) is in a test suite's folder."""
    return bool(TEST_DIRS & set(rel.split("/")[:-1]))


def _python_version() -> str:
    return "python " + ".".join(map(str, sys.version_info[:3]))


def stdlib_sources(include_tests: bool, skipped: Skipped) -> Iterator[Document]:
    """One document per standard-library source file, of kind code."""
    for rel, path in stdlib_files(include_tests):
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            skipped.add_file("stdlib_not_utf8", f"Lib/{rel}", path.stat().st_size)
            continue
        yield {"id": f"stdlib/{rel}", "text": text, "source": "stdlib",
               "provenance": f"{_python_version()}: Lib/{rel}", "kind": "code"}


def pydoc_topics(include_tests: bool, skipped: Skipped) -> Iterator[Document]:
    """One document per topic of the Python reference manual that ships as ``pydoc_data``."""
    try:
        from pydoc_data.topics import topics
    except ImportError:
        skipped.add_file("pydoc_topics_missing", "pydoc_data.topics", 0)
        return
    for name in sorted(topics):
        yield {"id": f"pydoc_topics/{name}", "text": topics[name], "source": "pydoc_topics",
               "provenance": f"{_python_version()}: pydoc_data.topics[{name!r}]", "kind": "prose"}


def module_docstrings(source: str) -> list[str]:
    """The module, class and function docstrings of a Python source, in source order."""
    tree = ast.parse(source)
    nodes = [tree] + [n for n in ast.walk(tree)
                      if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    nodes.sort(key=lambda n: getattr(n, "lineno", 0))
    return [d for n in nodes if (d := ast.get_docstring(n, clean=True))]


def stdlib_docstrings(include_tests: bool, skipped: Skipped) -> Iterator[Document]:
    """One document per standard-library module: its docstrings joined by blank lines."""
    for rel, path in stdlib_files(include_tests):
        try:
            docs = module_docstrings(path.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, SyntaxError, ValueError):
            skipped.add_file("docstrings_unparsable", f"Lib/{rel}", path.stat().st_size)
            continue
        if docs:
            yield {"id": f"docstrings/{rel}", "text": "\n\n".join(docs), "source": "docstrings",
                   "provenance": f"{_python_version()}: docstrings of Lib/{rel}", "kind": "prose"}


def package_descriptions(include_tests: bool, skipped: Skipped,
                         locked: dict[str, str] | None = None) -> Iterator[Document]:
    """One document per installed distribution that ``locked`` pins at its installed version
    (normalised name -> version: pretrain.sources.manifest.read_locked; None: every installed
    one): its long description (usually its README). Another distribution, or one at another
    version, is counted as ``package_docs_unlocked``: what else a machine has installed (a dev
    set-up's DeepSpeed or Ray, pip itself) must not change the corpus. This project's own is
    left out too (``package_docs_own``): its README changes with every edit of the docs, which
    would change the corpus, and every hash after it, with no change to what the pipeline
    does."""
    seen = set()
    dists = sorted(importlib.metadata.distributions(),
                   key=lambda d: (d.metadata["Name"] or "").lower())
    for dist in dists:
        name, version = dist.metadata["Name"], dist.version
        if not name or name.lower() in seen:
            continue
        seen.add(name.lower())
        if name.lower() == "pretrain":
            skipped.add("package_docs_own", f"{name} {version}")
            continue
        if locked is not None and not is_locked(name, version, locked):
            skipped.add("package_docs_unlocked", f"{name} {version}")
            continue
        text = dist.metadata.get_payload() or dist.metadata.get("Description") or ""
        if not isinstance(text, str) or not text.strip():
            skipped.add("package_docs_empty", f"{name} {version}")
            continue
        yield {"id": f"package_docs/{name}", "text": text, "source": "package_docs",
               "provenance": f"{name} {version}: package metadata description", "kind": "prose"}


# --- the locked distributions -----------------------------------------------------------------


def normalize_name(name: str) -> str:
    """A distribution name as PEP 503 normalises it (``Flufl.Lock`` -> ``flufl-lock``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_locked(lock: Path) -> dict[str, str]:
    """Normalised name -> version of every ``name==version`` line of a pip requirements lock
    (``requirements/core.lock``), with ``torch.txt`` beside it for PyTorch.

    Raises OSError (naming the file) when the lock cannot be read.
    """
    locked: dict[str, str] = {}
    for path in (lock, lock.with_name("torch.txt")):
        if path == lock or path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", line)
                if match:
                    locked[normalize_name(match[1])] = match[2]
    return locked


def is_locked(name: str, version: str, locked: dict[str, str]) -> bool:
    """Whether distribution ``name`` at ``version`` is the locked one. A local version label
    (``2.13.0+cpu``) is ignored, as PEP 440's ``==`` does: the CPU and CUDA builds of PyTorch
    ship the same description."""
    return locked.get(normalize_name(name)) == version.split("+")[0]
