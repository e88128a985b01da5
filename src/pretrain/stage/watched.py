"""Local inputs that params name must lie where DVC watches them.

DVC reruns a stage when one of its ``deps`` in dvc.yaml changes, and only then. A file that a
stage reads because params.yaml names it (``download.path``, a mix entry's ``path``, a local
Hugging Face dataset folder, ``evaluate.general_text``, ``model.base``, ``tokenizer.path``,
``merge.other``, ``finetune.path``, ``finetune.model``) is not one of them: DVC tracks the
params value, not the file, so after an edit of the file ``dvc repro`` says "up to date" and the pipeline keeps the old result.

Templating the params value into ``deps`` (``- ${download.path}``) does not work in DVC 3.67:
a null value (the default of every one of these keys) stops every dvc command with "unexpected
error", a glob is taken as a file name that does not exist, a list (``download.sources``)
"cannot interpolate data of type 'list'" (treeverse/dvc#8171, open), and a hub id is not a
path at all. So each such input must lie inside a folder that the stages reading it depend on:
``data/sources`` for documents (download; evaluate for general text) and ``models/bases`` for
a base model, a tokenizer or a model to merge with (tokenizer, init-model, merge, evaluate,
finetune), ``data/finetune`` for the finetune stage's labelled or chat data (its own folder, so
that new labelled data reruns finetune and not download and evaluate).
dvc.yaml hands those folders to the stages (``--sources``, ``--bases``), and a stage refuses,
before any work and in one line, a local input outside them.

DVC hashes a dependency folder without following links to folders inside it (it follows a link
to a file, and a dependency that is itself a link): checked with DVC 3.67, an edit behind
``data/sources/corpus -> /data/corpus`` went unnoticed, one behind a linked file did not. So an
input reached through a linked folder is refused too, and the message suggests ``cp -rs``,
which links every file. Hub ids (``org/name``, read when online) are tracked by their value
only, as DVC can do nothing else with them.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any, Iterator

from pretrain.config import is_local_path
from pretrain.errors import ConfigError

FOLDERS = {"sources": "documents", "bases": "base models and tokenizers",
           "tuning": "labelled and chat data"}
"""The watched folders by their command-line name, and what goes in each."""


def check_watched(configs: dict[str, Any], folders: dict[str, Path | None], where: str) -> None:
    """Raise ConfigError if a local input of ``configs`` that belongs in one of ``folders``
    (``{"sources": Path("data/sources"), "bases": ...}``; None or absent: not checked) lies
    outside it, or is reached through a link to a folder."""
    for name, root in folders.items():
        if root is None:
            continue
        for key, value, is_folder in watched_inputs(configs, name):
            problem = placement_problem(value, root, FOLDERS[name], is_folder)
            if problem:
                raise ConfigError(f"{where}: {key}: {value!r} {problem}")


def watched_inputs(configs: dict[str, Any], folder: str) -> Iterator[tuple[str, str, bool]]:
    """``(params key, value, whether it names a folder whatever exists)`` of each local input
    that belongs in ``folder`` ("sources", "bases" or "tuning")."""
    if folder == "sources":
        download = configs["download"]
        entries = ([(f"download.sources[{i}].path", s) for i, s in enumerate(download.sources)]
                   if download.source == "mix" else [("download.path", download)])
        for key, src in entries:
            if src.source == "files":
                yield key, src.path, False
            elif src.source == "hf" and is_local_path(src.path):
                yield key, src.path, True
        if configs["evaluate"].general_text:
            yield "evaluate.general_text", configs["evaluate"].general_text, False
    elif folder == "tuning":  # apart from data/sources: new labelled data reruns finetune alone
        tune = configs["finetune"]
        if tune.task != "none" and (tune.source == "files" or is_local_path(tune.path)):
            yield "finetune.path", tune.path, tune.source == "hf"
    elif folder == "bases":
        model, tokenizer = configs["model"], configs["tokenizer"]
        if model.init != "random" and model.base and is_local_path(model.base):
            yield "model.base", model.base, False
        if tokenizer.path and is_local_path(tokenizer.path):
            yield "tokenizer.path", tokenizer.path, False
        merge = configs["merge"]
        if merge.method != "none" and merge.other != "init":
            yield "merge.other", merge.other, True
        tune = configs["finetune"]
        if tune.task != "none":
            if tune.model != "final":
                yield "finetune.model", tune.model, True
            for i, entry in enumerate(tune.compare):
                if entry != "init":
                    yield f"finetune.compare[{i}]", entry, True
    else:  # pragma: no cover - a stage script naming an unknown folder is a programming error
        raise ValueError(f"unknown watched folder {folder!r} (expected one of {sorted(FOLDERS)})")


def placement_problem(value: str, root: Path, what: str = "inputs",
                      is_folder: bool = False) -> str | None:
    """Why DVC, watching the folder ``root`` (for ``what``), would miss a change of the files
    that ``value`` (a file, folder or glob) names; None when it would not. An input that does
    not exist is left to pretrain.config.check_paths."""
    path = Path(value)
    if path.is_dir() or is_folder:
        folders = walked = [path]
    elif path.is_file():
        folders, walked = [path.parent], []
    else:  # a glob: the folders its files are in, and the folders it matches (read whole)
        matches = glob.glob(value, recursive=True)
        walked = [Path(p) for p in matches if os.path.isdir(p)]
        folders = sorted({Path(p).parent for p in matches if os.path.isfile(p)} | set(walked))
    real_root = Path(os.path.realpath(root))
    for folder in folders:
        if not Path(os.path.realpath(folder)).is_relative_to(real_root):
            link = _link_below(root, folder)
            if link:
                return _through_link(link)
            source = Path(os.path.abspath(value if os.path.exists(value) else folder))
            return (f"is outside {root}/, the folder that DVC watches for {what}, so "
                    f"`dvc repro` would not rerun when it changes; copy it there, or link its "
                    f"files there (cp -rs {source} {root}/) and set it to "
                    f"{_moved(value, source, root)!r}")
        link = _linked_folder(folder) if folder in walked and folder.is_dir() else None
        if link:
            return _through_link(link)
    return None


def _moved(value: str, source: Path, root: Path) -> str:
    """``value`` once ``source`` (the file or folder it names, or its glob's folder) is copied or
    linked into ``root``."""
    pattern = Path(os.path.abspath(value))
    rest = pattern.relative_to(source) if pattern.is_relative_to(source) else Path()
    return (Path(root) / source.name / rest).as_posix()


def _shown(path: Path) -> str:
    """``path`` relative to the working directory (the repository) when inside it."""
    rel = os.path.relpath(path)
    return rel if not rel.startswith("..") else str(path)


def _through_link(link: Path) -> str:
    link, target = _shown(link), os.path.realpath(link)
    return (f"is reached through {link}, a link to a folder ({target}), which DVC does not "
            f"follow, so `dvc repro` would not rerun when its files change; link the files "
            f"instead (rm {link} && cp -rs {target} {link})")


def _link_below(root: Path, folder: Path) -> Path | None:
    """The first link among the parts of ``folder`` below ``root``, if ``folder`` is in it."""
    top, path = Path(os.path.abspath(root)), Path(os.path.abspath(folder))
    if not path.is_relative_to(top):
        return None
    for part in path.relative_to(top).parts:
        top = top / part
        if top.is_symlink():
            return top
    return None


def _linked_folder(folder: Path) -> Path | None:
    """The first link to a folder inside ``folder`` (DVC skips it; the folder's reader,
    pretrain.sources.files.files_under, follows it)."""
    for dirpath, dirnames, _ in os.walk(folder):
        dirnames.sort()
        for name in dirnames:
            if os.path.islink(os.path.join(dirpath, name)):
                return Path(dirpath) / name
    return None
