"""What makes the built-in corpus the same on every machine: the locked distributions whose
package descriptions it may hold, and the committed manifest of its documents per Python minor
version (document id -> SHA-256 of its text), against which each download is checked.

The built-in corpus is read off the running Python: the standard library and its manual follow
the Python patch version, the package descriptions the distributions installed. Only the
distributions pinned in ``requirements/core.lock`` (and PyTorch at the version of
``requirements/torch.txt``, which the lock leaves out) give a document; any other installed
distribution, or one at another version, is counted as ``package_docs_unlocked`` instead, so a
dev set-up (DeepSpeed, Ray, wandb ...) or an extra ``pip install`` leaves the corpus as it is.
What still differs (another patch version of Python, a distribution missing) is found by
comparing with the manifest and named in the download report and one warning line, instead of
silently changing every hash after download.

The manifest (``manifests/cpython-3.11.txt``) is a text file of ``<sha256>  <id>`` lines sorted
by id, as ``sha256sum`` writes them, after a header naming the Python that wrote it; it holds
every document of every part, the standard library's test suites included, so that any
``builtin_parts`` and ``include_tests`` are checked. ``pretrain builtin-manifest`` writes it
(docs/reproducibility.md).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import re
import sys
from pathlib import Path
from typing import Any, Iterable

MANIFESTS = Path(__file__).with_name("manifests")
EXAMPLES = 5
"""Document ids named per kind of difference in the report (the counts are whole)."""


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


def text_digest(text: str) -> str:
    """SHA-256 of a document's text, UTF-8 encoded, as hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def python_minor() -> str:
    """``cpython-3.11``: the implementation and minor version a manifest is for."""
    return f"{platform.python_implementation().lower()}-{sys.version_info[0]}.{sys.version_info[1]}"


def python_version() -> str:
    return ".".join(map(str, sys.version_info[:3]))


def manifest_path(folder: Path = MANIFESTS) -> Path:
    return folder / f"{python_minor()}.txt"


def write_manifest(path: Path, digests: Iterable[tuple[str, str]]) -> int:
    """Write ``(id, sha256)`` pairs as a manifest for this Python; return how many."""
    from pretrain.io import atomic_path

    rows = sorted(digests)
    lines = [f"# built-in corpus of {platform.python_implementation()} {python_version()}, "
             f"every part, tests included: sha256 of each document's text (pretrain builtin-manifest)"]
    lines += [f"{digest}  {doc_id}" for doc_id, digest in rows]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(rows)


def build_manifest(lock: Path, folder: Path = MANIFESTS) -> tuple[Path, int]:
    """Write the manifest of this Python's built-in corpus (every part, tests included, the
    package descriptions of ``lock``'s distributions) into ``folder``; its path and size.

    Raises ConfigError when a locked distribution is not installed at its locked version: a
    manifest must describe the locked environment, not this machine's.
    """
    from pretrain.config.sources import DownloadConfig
    from pretrain.errors import ConfigError
    from pretrain.sources.download import iter_documents
    from pretrain.sources.records import Skipped

    locked = read_locked(lock)
    installed = {normalize_name(d.metadata["Name"] or ""): d.version
                 for d in importlib.metadata.distributions()}
    wrong = sorted(n for n, v in locked.items() if installed.get(n, "").split("+")[0] != v)
    if wrong:
        name = wrong[0]
        raise ConfigError(f"{lock}: {len(wrong)} locked distributions are not installed at their "
                          f"locked version ({name}=={locked[name]}, installed: "
                          f"{installed.get(name, 'none')}): run ./setup.sh first")
    docs = iter_documents(DownloadConfig(include_tests=True), Skipped(), locked=locked)
    path = manifest_path(folder)
    return path, write_manifest(path, ((d["id"], text_digest(d["text"])) for d in docs))


def read_manifest(path: Path) -> tuple[str, dict[str, str]]:
    """The Python version a manifest was written with, and its id -> sha256."""
    lines = path.read_text(encoding="utf-8").split("\n")
    version = re.search(r"\d+\.\d+\.\d+", lines[0])
    digests = {}
    for line in lines[1:]:
        if line:
            digest, _, doc_id = line.partition("  ")
            digests[doc_id] = digest
    return (version[0] if version else "unknown"), digests


class ManifestCheck:
    """Compares the built-in documents of one download with the manifest of this Python.

    ``observe`` each document as the built-in source yields it (before a mix prefixes its id),
    ``finish`` when the source was read to its end (only then can a document be missing), and
    ``report()`` gives the report's ``builtin_manifest`` entry; ``warning()`` one line, or None
    when everything matched. ``expected(doc_id)`` says which manifest ids the configured parts
    and ``include_tests`` call for.
    """

    def __init__(self, parts: list[str], include_tests: bool, folder: Path = MANIFESTS):
        from pretrain.sources.builtin import is_test_path

        self.parts, self.include_tests, self._is_test = parts, include_tests, is_test_path
        self.path = manifest_path(folder)
        self.written_with, self.digests = (read_manifest(self.path) if self.path.is_file()
                                           else (None, {}))
        self.seen: dict[str, str] = {}
        self.finished = False

    def expected(self, doc_id: str) -> bool:
        part, _, rel = doc_id.partition("/")
        if part not in self.parts:
            return False
        return self.include_tests or part not in ("stdlib", "docstrings") or not self._is_test(rel)

    def observe(self, doc: dict[str, Any]) -> None:
        self.seen[doc["id"]] = text_digest(doc["text"])

    def finish(self) -> None:
        self.finished = True

    def report(self) -> dict[str, Any]:
        found = {"manifest": self.path.name, "python": python_version(),
                 "written_with": self.written_with}
        if self.written_with is None:
            return {**found, "checked": False}
        differs = sorted(i for i, d in self.seen.items() if self.digests.get(i, d) != d)
        extra = sorted(i for i in self.seen if i not in self.digests)
        missing = (sorted(i for i in self.digests if i not in self.seen and self.expected(i))
                   if self.finished else [])
        matched = len(self.seen) - len(differs) - len(extra)
        return {**found, "checked": True, "matched": matched,
                **{name: {"documents": len(ids), "examples": ids[:EXAMPLES]}
                   for name, ids in (("differs", differs), ("missing", missing), ("extra", extra))},
                "missing_checked": self.finished}

    def warning(self) -> str | None:
        """One line when the corpus is not the manifest's, naming the documents and why."""
        report = self.report()
        if not report["checked"]:
            return (f"no manifest of the built-in corpus for {python_minor()} "
                    f"(Python {python_version()}; have: {available()}): it cannot be checked, "
                    "and the hashes after download will differ from the committed dvc.lock")
        parts = [f"{report[k]['documents']} {k} ({', '.join(report[k]['examples'])}"
                 f"{', ...' if report[k]['documents'] > EXAMPLES else ''})"
                 for k in ("differs", "missing", "extra") if report[k]["documents"]]
        if not parts:
            return None
        why = ("another patch version of Python changes the standard library and its manual"
               if report["written_with"] != report["python"] else
               "a locked distribution is missing or its files were changed")
        return (f"the built-in corpus is not the manifest's ({self.path.name}, written "
                f"with Python {report['written_with']}, this is {report['python']}): "
                f"{'; '.join(parts)}; likely why: {why}. Hashes after download will differ from "
                "the committed dvc.lock (docs/reproducibility.md)")


def available() -> str:
    names = sorted(p.stem for p in MANIFESTS.glob("*.txt"))
    return ", ".join(names) or "none"
