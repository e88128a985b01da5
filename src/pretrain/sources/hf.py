"""Hugging Face datasets: a hub id (streamed, so that only the documents used are downloaded),
a folder saved with ``save_to_disk`` (loaded), or a local folder of data files (streamed).

Nothing in a local folder is lost unseen. datasets assigns a folder's files to splits by their
names unless its dataset card (README.md) names them (``datasets.data_files.get_data_patterns``):
one file whose name holds a split word (``train_notes.jsonl``) makes the folder a split
layout, and then the files whose names hold none (``books.jsonl``, ``wiki.jsonl``) belong to no
split and are never read (huggingface/datasets#5021; with datasets 5.2, a folder of those
three files gives the two records of ``train_notes.jsonl`` as ``train`` and nothing else). So
every file under the folder is compared with the data files that datasets itself resolved for
each configuration (``load_dataset_builder``, the very resolution that is then read):

- a file of ``hf_split`` in the chosen configuration is read;
- a file of another split, or of another configuration, is counted in files and bytes
  (``hf_other_split``, ``hf_other_config``); so are the other splits of a saved DatasetDict;
- a file of the same type as the data files but in no split stops the stage, naming it. Not
  read as part of ``hf_split``: its split is unknown, and guessing would put, say, held-out
  text into training; datasets, and every other tool reading the folder, would still leave it
  out. Renaming it, or naming it in the card, says what it is for every tool;
- any other file (a licence, a type the builder does not read, a name datasets never takes
  for data: ``datasets.data_files.FILES_TO_IGNORE``) is counted as ``unsupported_file_type``, and a hidden one (a name starting with "." or "__", which
  datasets skips) as ``hidden_file``; the card itself (README.md, .huggingface.yaml) is read
  by datasets.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

from pretrain.config.sources import SourceConfig
from pretrain.errors import DataError
from pretrain.sources.files import files_under
from pretrain.sources.kinds import KindRule
from pretrain.sources.records import Document, Skipped, display_name, metadata_columns, record_document

CARD_FILES = {"README.md", ".huggingface.yaml"}
"""A dataset folder's card, which datasets reads for its configurations (datasets.config)."""
NAMED = 5
"""Files named in the error line before "and N more"."""


def read_hf(src: SourceConfig, skipped: Skipped, label: str, key: str) -> Iterator[Document]:
    """The documents of split ``src.hf_split`` of the dataset ``src.path`` (the params ``key``),
    one per record (pretrain.sources.records.record_document); the files of a local folder that
    are not read are counted in ``skipped`` (see the module docstring). Raises DataError when
    datasets cannot load it, or when a local folder holds data files that belong to no split."""
    import datasets

    path = Path(src.path or "")
    try:
        if any((path / f).exists() for f in ("state.json", "dataset_dict.json")):
            data = datasets.load_from_disk(str(path))
            if isinstance(data, datasets.DatasetDict):
                _count_saved_splits(data, src.hf_split, skipped)
                data = data[src.hf_split]
        else:
            builder = datasets.load_dataset_builder(src.path, src.hf_config)
            if path.is_dir():
                _audit_folder(path, builder, src.hf_split, skipped, key)
            data = builder.as_streaming_dataset(split=src.hf_split)
    except DataError:
        raise
    except Exception as exc:  # datasets raises many types: offline, missing, bad config or split
        raise DataError(f"{key}: cannot load dataset {src.path!r}: "
                        f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    data, kept = _columns(data, src)
    kinds = KindRule.of(src)
    for row, record in enumerate(data):
        yield from record_document(record, src.text_field, src.id_field, kept,
                                   f"{src.path}:{src.hf_split}:{row}",
                                   f"{src.path}#{src.hf_split}[{row}]", skipped, label, kinds)


def _count_saved_splits(data: Any, split: str, skipped: Skipped) -> None:
    """Count the Arrow files of a saved DatasetDict's splits other than ``split``."""
    for name, files in sorted(data.cache_files.items()):
        if name != split:
            for file in files:
                path = Path(file["filename"])
                skipped.add_file("hf_other_split", f"{display_name(path)} ({name})",
                                 path.stat().st_size)


def split_files(builder: Any, folder: Path) -> dict[str, tuple[str, str]]:
    """Each data file that datasets resolved for ``builder``'s dataset, by its real path:
    ``(configuration, split)``; a file of two configurations is the chosen one's."""
    import datasets

    others = [c for name, c in builder.builder_configs.items() if name != builder.config.name]
    found: dict[str, tuple[str, str]] = {}
    for config in [*others, builder.config]:  # the chosen one last: it wins
        files = config.data_files or {}
        if isinstance(files, datasets.data_files.DataFilesPatternsDict):  # not resolved yet
            files = files.resolve(folder.resolve().as_posix())
        for split, paths in files.items():
            found.update({os.path.realpath(p): (config.name, str(split)) for p in paths})
    return found


def _audit_folder(folder: Path, builder: Any, split: str, skipped: Skipped, key: str) -> None:
    """Count each file under ``folder`` that split ``split`` of ``builder`` does not read, by
    reason; stop on data files that datasets puts in no split (see the module docstring)."""
    import datasets

    resolved = split_files(builder, folder)
    data_types = {Path(p).suffix.lower() for p in resolved}
    stray, split_file = [], None
    for path in sorted(files_under(folder)):
        rel = path.relative_to(folder)
        where = resolved.get(os.path.realpath(path))
        split_file = split_file or (rel.as_posix() if where else None)
        if where is None and rel.as_posix() in CARD_FILES:
            continue
        if where == (builder.config.name, split):
            continue
        if where is not None:
            reason = "hf_other_split" if where[0] == builder.config.name else "hf_other_config"
        elif any(part.startswith((".", "__")) for part in rel.parts):
            reason = "hidden_file"
        elif (path.suffix.lower() in data_types
              and path.name not in datasets.data_files.FILES_TO_IGNORE):
            stray.append(rel.as_posix())
            continue
        else:
            reason = "unsupported_file_type"
        skipped.add_file(reason, display_name(path), path.stat().st_size)
    if stray:
        more = f" and {len(stray) - NAMED} more" if len(stray) > NAMED else ""
        raise DataError(
            f"{key}: datasets puts {len(stray)} file{'s' if len(stray) > 1 else ''} of "
            f"{display_name(folder)} in no split ({', '.join(stray[:NAMED])}{more}): it takes "
            f"the splits from the configs of the folder's README.md, else from file and folder "
            f"names, as in {split_file} (huggingface/datasets#5021); name each by its split as "
            f"that one is, list it under a split in README.md (configs: data_files), move it "
            f"out, or read its files with source: files, path: "
            f"{display_name(folder)}/**/*{Path(stray[0]).suffix}")


def _columns(data: Any, src: SourceConfig) -> tuple[Any, list[str] | None]:
    """``data`` with only the text, id and metadata columns, and the names of the metadata ones,
    when its features are known (an image column is then never decoded); else ``data`` and
    ``src.metadata_fields``, for each record's fields to be chosen as they come."""
    if data.features is None:  # a stream of JSON files without a dataset card
        return data, src.metadata_fields
    kept = metadata_columns(data.features.arrow_schema, src.text_field, src.id_field,
                            src.metadata_fields)
    used = [src.text_field, src.id_field, *kept, src.kind_field]
    return data.select_columns([c for c in data.column_names if c in used]), kept
