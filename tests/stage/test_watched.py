"""Local inputs that params name lie where DVC watches them (pretrain.stage.watched): inside
data/sources (documents) or models/bases (a base model or tokenizer), reached without a link to
a folder; anything else is refused in one line. End to end: in a copy of the repository, `dvc
status` and `dvc repro download` notice an edit of a source file, also one linked in from
outside, and the download stage refuses a path DVC would not watch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pretrain.config.evaluate import EvaluateConfig
from pretrain.config.finetune import FinetuneConfig
from pretrain.config.merge import MergeConfig
from pretrain.config.model import ModelConfig
from pretrain.config.sources import DownloadConfig, MixSourceConfig
from pretrain.config.tokens import TokenizerConfig
from pretrain.errors import ConfigError
from pretrain.stage.watched import check_watched

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"sources": Path("data/sources"), "bases": Path("models/bases"), "tuning": Path("data/finetune")}


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A working directory laid out like the repository, with an outside folder beside it."""
    work = tmp_path / "repo"
    (work / "data/sources/corpus").mkdir(parents=True)
    (work / "models/bases/tiny").mkdir(parents=True)
    (work / "data/sources/corpus/a.jsonl").write_text('{"text": "a"}\n')
    (work / "models/bases/tiny/config.json").write_text("{}")
    outside = tmp_path / "big_disk" / "corpus"
    outside.mkdir(parents=True)
    (outside / "b.jsonl").write_text('{"text": "b"}\n')
    monkeypatch.chdir(work)
    return work


def configs(download=None, model=None, tokenizer=None, evaluate=None, merge=None, finetune=None) -> dict:
    return {"download": download or DownloadConfig(), "model": model or ModelConfig(),
            "tokenizer": tokenizer or TokenizerConfig(), "evaluate": evaluate or EvaluateConfig(),
            "merge": merge or MergeConfig(), "finetune": finetune or FinetuneConfig()}


def files(path: str) -> dict:
    return configs(download=DownloadConfig(source="files", path=path))


def refused(cfgs: dict, folders: dict = FOLDERS) -> str:
    with pytest.raises(ConfigError) as err:
        check_watched(cfgs, folders, where="params.yaml")
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("path", ["data/sources/corpus/a.jsonl", "data/sources/corpus",
                                  "data/sources/**/*.jsonl", "data/sources"])
def test_sources_inside_the_watched_folder_are_accepted(repo, path):
    check_watched(files(path), FOLDERS, where="params.yaml")
    check_watched(files(str(repo / path)), FOLDERS, where="params.yaml")  # absolute: the same


def test_a_file_linked_in_from_outside_is_accepted(repo):
    """DVC follows a link to a file inside a dependency folder (checked with DVC 3.67)."""
    os.symlink(repo.parent / "big_disk/corpus/b.jsonl", repo / "data/sources/corpus/b.jsonl")
    check_watched(files("data/sources/corpus/*.jsonl"), FOLDERS, where="params.yaml")


def test_a_glob_outside_is_refused_with_the_command_that_fixes_it(repo):
    outside = repo.parent / "big_disk" / "corpus"
    message = refused(files(f"{outside}/*.jsonl"))
    assert message.startswith(f"params.yaml: download.path: '{outside}/*.jsonl' is outside "
                              "data/sources/, the folder that DVC watches for documents, so "
                              "`dvc repro` would not rerun when it changes")
    assert message.endswith(f"(cp -rs {outside} data/sources/) and set it to "
                            "'data/sources/corpus/*.jsonl'")


def test_a_file_elsewhere_in_the_repository_is_refused(repo):
    (repo / "notes.txt").write_text("x")
    assert "'notes.txt' is outside data/sources/" in refused(files("notes.txt"))


def test_a_linked_folder_is_refused(repo):
    """DVC does not follow a link to a folder inside a dependency folder: an edit behind it
    would go unnoticed."""
    os.symlink(repo.parent / "big_disk/corpus", repo / "data/sources/linked")
    for path in ("data/sources/linked/*.jsonl", "data/sources/linked/b.jsonl"):
        message = refused(files(path))
        assert "is reached through data/sources/linked, a link to a folder" in message
        assert f"rm data/sources/linked && cp -rs {repo.parent / 'big_disk/corpus'} data/sources/linked" in message
    assert "is reached through data/sources/linked" in refused(files("data/sources"))
    # a glob matching a folder reads it whole (pretrain.sources.files.resolve_files)
    assert "is reached through data/sources/linked" in refused(files("data/sources/*"))
    os.symlink(repo.parent / "big_disk/corpus", repo / "data/sources/corpus/inner")
    assert "is reached through data/sources/corpus/inner" in refused(files("data/sources/c*"))


def test_the_watched_folder_itself_may_be_a_link(tmp_path, monkeypatch):
    """DVC follows a dependency that is itself a link (checked with DVC 3.67)."""
    (tmp_path / "disk").mkdir()
    (tmp_path / "disk/a.jsonl").write_text('{"text": "a"}\n')
    (tmp_path / "repo/data").mkdir(parents=True)
    os.symlink(tmp_path / "disk", tmp_path / "repo/data/sources")
    monkeypatch.chdir(tmp_path / "repo")
    check_watched(files("data/sources/*.jsonl"), FOLDERS, where="params.yaml")


def test_every_input_key_is_checked(repo):
    outside = str(repo.parent / "big_disk" / "corpus")
    mix = DownloadConfig(source="mix", max_documents=2, sources=[
        MixSourceConfig(name="a", source="files", path="data/sources/corpus/a.jsonl"),
        MixSourceConfig(name="b", source="files", path=f"{outside}/b.jsonl")])
    assert "download.sources[1].path: " in refused(configs(download=mix))
    hf = DownloadConfig(source="hf", path=outside)
    assert "download.path: " in refused(configs(download=hf))
    general = EvaluateConfig(general_text=f"{outside}/b.jsonl")
    assert "evaluate.general_text: " in refused(configs(evaluate=general))
    base = ModelConfig(init="pretrained", base=outside)
    assert "model.base: " in refused(configs(model=base))
    assert "the folder that DVC watches for base models and tokenizers" in refused(configs(model=base))
    assert "tokenizer.path: " in refused(configs(tokenizer=TokenizerConfig(path=outside)))
    assert "merge.other: " in refused(configs(merge=MergeConfig(method="linear", other=outside)))
    check_watched(configs(merge=MergeConfig(method="none", other=outside)), FOLDERS, where="p")  # not read
    check_watched(configs(merge=MergeConfig(method="ties", other="models/bases/tiny")), FOLDERS, where="p")
    tune = FinetuneConfig(task="classify", path="data/sources/corpus/a.jsonl")  # not its folder
    assert "finetune.path: " in refused(configs(finetune=tune))
    assert "outside data/finetune/, the folder that DVC watches for labelled and chat data" in refused(
        configs(finetune=tune))
    tune = FinetuneConfig(task="sft", path="data/finetune", model=outside)
    assert "finetune.model: " in refused(configs(finetune=tune))
    tune = FinetuneConfig(task="sft", path="data/finetune", compare=["init", outside])
    assert "finetune.compare[1]: " in refused(configs(finetune=tune))
    check_watched(configs(finetune=FinetuneConfig(path=outside, model=outside)), FOLDERS, where="p")  # task none


def test_hub_ids_and_inputs_not_read_are_not_checked(repo):
    check_watched(configs(download=DownloadConfig(source="hf", path="org/dataset"),
                          model=ModelConfig(init="pretrained", base="org/model"),
                          tokenizer=TokenizerConfig(path="org/model")), FOLDERS, where="p")
    # model.base is not read with a random init
    check_watched(configs(model=ModelConfig(init="random", base="/elsewhere")), FOLDERS, where="p")
    inside = configs(model=ModelConfig(init="upscale", base="models/bases/tiny"),
                     tokenizer=TokenizerConfig(path="models/bases/tiny"))
    check_watched(inside, FOLDERS, where="p")


def test_a_stage_checks_only_the_folders_it_is_given(repo):
    """Library use and a stage run without the folder (tests, scripts) do not check."""
    outside = str(repo.parent / "big_disk" / "corpus")
    check_watched(files(outside), {"sources": None}, where="p")
    check_watched(files(outside), {"bases": Path("models/bases")}, where="p")


# --- end to end, through DVC -------------------------------------------------------------------


def dvc(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["dvc", *args], cwd=repo, env=env, capture_output=True, text=True)


def set_download(repo: Path, **download) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["download"].update(download)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def raw_texts(repo: Path) -> list[str]:
    from pretrain.io import iter_documents

    return [doc["text"] for doc in iter_documents(repo / "data/raw")]


@pytest.mark.slow
def test_dvc_notices_an_edited_source_and_the_stage_refuses_an_unwatched_one(tmp_path):
    from test_pipeline import debug_clone

    repo = debug_clone(tmp_path / "clone")
    outside = tmp_path / "big_disk"
    outside.mkdir()
    (outside / "b.jsonl").write_text(json.dumps({"id": "b1", "text": "from the big disk"}) + "\n")
    (repo / "data/sources/corpus").mkdir()
    (repo / "data/sources/corpus/a.jsonl").write_text(json.dumps({"id": "a1", "text": "first"}) + "\n")
    os.symlink(outside / "b.jsonl", repo / "data/sources/corpus/b.jsonl")  # as cp -rs links
    set_download(repo, source="files", path="data/sources/corpus/*.jsonl", max_documents=None)

    first = dvc(repo, "repro", "download")
    assert first.returncode == 0, first.stderr
    assert sorted(raw_texts(repo)) == ["first", "from the big disk"]
    assert "up to date" in dvc(repo, "status", "download").stdout

    with open(outside / "b.jsonl", "a") as handle:  # an edit on the big disk, behind the link
        handle.write(json.dumps({"id": "b2", "text": "added later"}) + "\n")
    status = dvc(repo, "status", "download").stdout
    assert "changed deps" in status and "data/sources" in status
    again = dvc(repo, "repro", "download")
    assert "Running stage 'download'" in again.stdout, again.stderr
    assert sorted(raw_texts(repo)) == ["added later", "first", "from the big disk"]

    set_download(repo, path=f"{outside}/*.jsonl")  # what DVC would not watch: refused
    refused_run = dvc(repo, "repro", "download")
    assert refused_run.returncode != 0
    errors = [line for line in refused_run.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in refused_run.stderr
    assert f"download.path: '{outside}/*.jsonl' is outside data/sources/" in errors[0]
