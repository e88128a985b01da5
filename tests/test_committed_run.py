"""The committed run reproduces: download through pack of the default params, in a temporary
copy of the repository, write the outputs whose hashes the committed dvc.lock holds.

This is what a new user checks first (fresh clone, ./setup.sh, dvc repro): where it fails, every
figure in the README is out of reach. The built-in corpus follows the Python and the packages
installed, so it is held to the locked distributions and checked against the committed manifest
of its Python minor version (pretrain.sources.manifest); where there is none, the test skips.
"""

import json
import shutil

import pytest
import yaml
from test_pipeline import ROOT, copy_repository, run

from pretrain.sources.manifest import manifest_path, python_minor, python_version

pytestmark = pytest.mark.slow
STAGES = ("download", "clean", "dedup", "tokenizer", "pack")


def data_outs(lock: dict) -> dict[str, dict[str, str]]:
    """Stage -> {output path: md5} of the data stages' outputs (not their metrics)."""
    return {name: {out["path"]: out["md5"] for out in lock["stages"][name].get("outs", [])
                   if not out["path"].startswith("metrics/")}
            for name in STAGES}


def test_download_through_pack_reproduce_the_committed_dvc_lock(tmp_path):
    if not manifest_path().is_file():
        pytest.skip(f"no manifest of the built-in corpus for {python_minor()} (Python "
                    f"{python_version()}): the committed run cannot be reproduced on it")
    copy_repository(tmp_path)
    shutil.copy(ROOT / "dvc.lock", tmp_path / "dvc.lock")
    committed = data_outs(yaml.safe_load((ROOT / "dvc.lock").read_text()))
    run(["git", "init", "-q"], tmp_path)
    run(["git", "add", "-A"], tmp_path)
    run(["git", "commit", "-qm", "fresh clone"], tmp_path)
    run(["dvc", "repro", "pack"], tmp_path)
    report = json.loads((tmp_path / "metrics/download.json").read_text())
    manifest = report["builtin_manifest"]["builtin"]
    assert manifest["checked"] and manifest["matched"] > 0
    assert not any(manifest[k]["documents"] for k in ("differs", "missing", "extra")), manifest
    produced = data_outs(yaml.safe_load((tmp_path / "dvc.lock").read_text()))
    differ = [name for name in STAGES if produced[name] != committed[name]]
    assert not differ, (f"{differ[0]} wrote other outputs than the committed dvc.lock "
                        f"({produced[differ[0]]} against {committed[differ[0]]}); stages that "
                        f"differ: {differ}")
