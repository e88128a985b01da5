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
(pretrain.sources.download.build_manifest; docs/reproducibility.md). Which distributions are
locked is read by pretrain.sources.builtin.read_locked.
"""

from __future__ import annotations

import hashlib
import platform
import re
import sys
from pathlib import Path
from typing import Any, Iterable

from pretrain.io import atomic_path
from pretrain.sources.builtin import is_test_path

MANIFESTS = Path(__file__).with_name("manifests")
EXAMPLES = 5
"""Document ids named per kind of difference in the report (the counts are whole)."""


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
    rows = sorted(digests)
    lines = [f"# built-in corpus of {platform.python_implementation()} {python_version()}, "
             f"every part, tests included: sha256 of each document's text (pretrain builtin-manifest)"]
    lines += [f"{digest}  {doc_id}" for doc_id, digest in rows]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(rows)


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
        self.parts, self.include_tests = parts, include_tests
        self.path = manifest_path(folder)
        self.written_with, self.digests = (read_manifest(self.path) if self.path.is_file()
                                           else (None, {}))
        self.seen: dict[str, str] = {}
        self.finished = False

    def expected(self, doc_id: str) -> bool:
        part, _, rel = doc_id.partition("/")
        if part not in self.parts:
            return False
        return self.include_tests or part not in ("stdlib", "docstrings") or not is_test_path(rel)

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
