"""The built-in corpus does not follow the machine: package descriptions only of the locked
distributions, and every download checked against the committed manifest of its Python."""

import importlib.metadata
from pathlib import Path

import pytest

from pretrain.config.sources import DownloadConfig
from pretrain.sources.builtin import is_locked, normalize_name, package_descriptions, read_locked
from pretrain.sources.download import download
from pretrain.sources.manifest import (
    ManifestCheck,
    manifest_path,
    read_manifest,
    text_digest,
    write_manifest,
)
from pretrain.sources.records import Skipped

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "core.lock"


def test_the_core_lock_pins_the_runtime_dependencies_and_torch_by_version():
    locked = read_locked(LOCK)
    assert "pyarrow" in locked and "transformers" in locked and "tokenizers" in locked
    assert locked["torch"] == (ROOT / "requirements/torch.txt").read_text().split("torch==")[1].strip()
    assert "flufl-lock" in locked  # names normalised as PEP 503 does
    # The dev extra's packages are not runtime dependencies: their descriptions stay out.
    assert not {"deepspeed", "ray", "wandb", "tensorboard", "pytest"} & set(locked)


def test_a_local_version_label_is_the_locked_version():
    assert is_locked("torch", "2.13.0+cpu", {"torch": "2.13.0"})
    assert not is_locked("torch", "2.14.1", {"torch": "2.13.0"})
    assert is_locked("Flufl.Lock", "9.2.0", {normalize_name("flufl_lock"): "9.2.0"})


def test_package_docs_come_only_from_locked_distributions_and_the_rest_are_counted():
    """A dev set-up's DeepSpeed, Ray, wandb and pip itself must not change the corpus."""
    pyarrow = importlib.metadata.version("pyarrow")
    locked = {"pyarrow": pyarrow, "dvc": "0.0.1"}  # dvc installed at another version
    skipped = Skipped()
    docs = {d["id"] for d in package_descriptions(False, skipped, locked)}
    assert docs == {"package_docs/pyarrow"}
    installed = {normalize_name(d.metadata["Name"]) for d in importlib.metadata.distributions()}
    # everything but pyarrow and this project (package_docs_own) is counted, none lost
    assert skipped["package_docs_unlocked"] + skipped["package_docs_empty"] == len(installed) - 2


def test_the_check_names_documents_that_differ_are_missing_or_extra(tmp_path):
    folder = tmp_path / "manifests"
    write_manifest(manifest_path(folder), [
        ("stdlib/a.py", text_digest("a = 1\n")), ("stdlib/b.py", text_digest("b = 2\n")),
        ("stdlib/test/test_a.py", text_digest("t")), ("pydoc_topics/x", text_digest("x"))])
    check = ManifestCheck(["stdlib"], include_tests=False, folder=folder)
    check.observe({"id": "stdlib/a.py", "text": "a = 1\n"})
    check.observe({"id": "stdlib/c.py", "text": "c = 3\n"})
    check.finish()
    report = check.report()
    assert report["checked"] and report["matched"] == 1
    assert report["missing"] == {"documents": 1, "examples": ["stdlib/b.py"]}  # tests, topics not asked
    assert report["extra"] == {"documents": 1, "examples": ["stdlib/c.py"]}
    check.observe({"id": "stdlib/a.py", "text": "a = 2\n"})
    warning = check.warning()
    assert "1 differs (stdlib/a.py)" in warning and "1 missing (stdlib/b.py)" in warning
    assert "1 extra (stdlib/c.py)" in warning and "\n" not in warning


def test_without_a_manifest_for_this_python_the_check_says_so_in_one_line(tmp_path):
    check = ManifestCheck(["stdlib"], include_tests=False, folder=tmp_path)
    assert check.report()["checked"] is False
    assert "no manifest of the built-in corpus for cpython-" in check.warning()


def test_a_capped_download_does_not_call_the_rest_missing(tmp_path):
    cfg = DownloadConfig(builtin_parts=["pydoc_topics"], max_documents=3)
    report = download(cfg, tmp_path / "raw", lock=LOCK)
    entry = report["builtin_manifest"]["builtin"]
    assert entry["matched"] == 3 and entry["missing"]["documents"] == 0
    assert entry["missing_checked"] is False


@pytest.mark.skipif(not manifest_path().is_file(), reason="no manifest for this Python")
def test_the_committed_manifest_covers_every_part_and_the_test_suites():
    written_with, digests = read_manifest(manifest_path())
    parts = {doc_id.partition("/")[0] for doc_id in digests}
    assert parts == {"stdlib", "pydoc_topics", "docstrings", "package_docs"}
    assert any("/test/" in doc_id for doc_id in digests) and written_with.count(".") == 2


def test_a_difference_is_a_warning_of_the_download_report(tmp_path, monkeypatch):
    folder = tmp_path / "manifests"
    write_manifest(manifest_path(folder), [("pydoc_topics/assert", text_digest("not the text"))])
    monkeypatch.setattr("pretrain.sources.manifest.manifest_path", lambda f=None: manifest_path(folder))
    report = download(DownloadConfig(builtin_parts=["pydoc_topics"], max_documents=2),
                      tmp_path / "raw", lock=LOCK)
    assert report["builtin_manifest"]["builtin"]["differs"]["examples"] == ["pydoc_topics/assert"]
    assert len(report["warnings"]) == 1 and "1 differs (pydoc_topics/assert)" in report["warnings"][0]
