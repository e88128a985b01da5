"""Conversations for supervised fine-tuning (SFT): records in the common instruction-data formats
turned into one form, a list of ``{"role", "content"}`` messages with roles ``system``, ``user``
and ``assistant``, read from JSON lines, JSON or Parquet files or a local Hugging Face dataset.

The formats (``FORMATS``, chosen by name; ``auto`` tells each record's by its fields):

- ``messages``: OpenAI's and Hugging Face's chat form (TRL's "conversational" datasets,
  ``{"messages": [{"role": "user", "content": "..."}, ...]}``);
- ``sharegpt``: ``{"conversations": [{"from": "human", "value": "..."}, ...]}``, speakers
  ``human``/``user``, ``gpt``/``assistant``/``model`` and ``system`` (FastChat, Vicuna);
- ``alpaca``: ``{"instruction", "input" (optional), "output"}`` (Stanford Alpaca): the user
  turn is the instruction, and the input after a blank line when there is one.

Every record is used or counted in ``Skipped`` by its reason (``missing_messages_field``,
``unknown_role``, ``no_assistant_turn``, ...), as the download stage counts its records
(pretrain.sources.records).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from pretrain.errors import ConfigError, DataError
from pretrain.sources.compression import CompressedFileError, codec_of, inner_path
from pretrain.sources.files import files_under, resolve_files
from pretrain.sources.jsonl import _json_records  # JSON lines split at "\n" only, as download reads them
from pretrain.sources.records import Skipped, describe_skipped, display_name, record_id

Message = dict[str, str]
Conversation = tuple[str, list[Message]]
"""A conversation's id and its messages."""
ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "model": "assistant", "system": "system"}
"""ShareGPT speaker -> role (FastChat's ``from`` values; ``model`` is Gemma's assistant)."""
SPLIT = "train"
"""The split of a Hugging Face dataset that fine-tuning reads."""


class BadRecord(ValueError):
    """A record that cannot be a conversation; ``reason`` is the name it is counted by."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# --- formats: record -> messages ------------------------------------------------------------------


def messages_format(record: dict) -> list[Message]:
    """The messages of an OpenAI / Hugging Face chat record (field ``messages``). Raises
    BadRecord for a missing or non-list field, a message that is not an object or lacks its
    role, a role other than system / user / assistant, or content that is not a string."""
    found = record.get("messages")
    if not isinstance(found, list):
        raise BadRecord("missing_messages_field")
    return checked([_message(m, "role", "content", {r: r for r in ROLES}) for m in found])


def sharegpt_format(record: dict) -> list[Message]:
    """The messages of a ShareGPT record (field ``conversations``, items ``{from, value}``;
    ``SHAREGPT_ROLES``). Raises BadRecord as ``messages_format`` does."""
    found = record.get("conversations")
    if not isinstance(found, list):
        raise BadRecord("missing_conversations_field")
    return checked([_message(m, "from", "value", SHAREGPT_ROLES) for m in found])


def alpaca_format(record: dict) -> list[Message]:
    """A user turn (``instruction``, then ``"\\n\\n"`` and ``input`` when that is not blank)
    and an assistant turn (``output``). Raises BadRecord (``missing_alpaca_field``,
    ``content_not_a_string``) when a field is missing or not text."""
    instruction, extra, output = (record.get(k) for k in ("instruction", "input", "output"))
    if instruction is None or output is None:
        raise BadRecord("missing_alpaca_field")
    if not all(isinstance(v, str) for v in (instruction, output, extra or "")):
        raise BadRecord("content_not_a_string")
    user = f"{instruction}\n\n{extra}" if extra and extra.strip() else instruction
    return checked([{"role": "user", "content": user}, {"role": "assistant", "content": output}])


FORMATS: dict[str, Callable[[dict], list[Message]]] = {
    "messages": messages_format, "sharegpt": sharegpt_format, "alpaca": alpaca_format}
"""Format name -> the function that turns one record into its messages (raising BadRecord)."""
DETECT = (("messages", "messages"), ("conversations", "sharegpt"), ("instruction", "alpaca"))
"""The field that tells a record's format, in the order they are tried."""


def detect_format(record: dict) -> str:
    """The name in ``FORMATS`` of a record's format, told by its fields (``DETECT``): what
    ``auto`` reads each record as. Raises BadRecord (``unknown_format``) when none fits."""
    for field, name in DETECT:
        if field in record:
            return name
    raise BadRecord("unknown_format")


def checked(messages: list[Message]) -> list[Message]:
    """``messages`` when they can be trained on. Raises BadRecord: ``empty_conversation`` for
    none, ``starts_with_assistant`` when the first is the assistant's (nothing prompts it; a
    template rendered without generation tags cannot mark it), ``no_assistant_turn``."""
    if not messages:
        raise BadRecord("empty_conversation")
    if messages[0]["role"] == "assistant":
        raise BadRecord("starts_with_assistant")
    if not any(m["role"] == "assistant" for m in messages):
        raise BadRecord("no_assistant_turn")
    return messages


def _message(item: Any, role_key: str, content_key: str, roles: dict[str, str]) -> Message:
    if not isinstance(item, dict):
        raise BadRecord("message_not_an_object")
    role = roles.get(item.get(role_key)) if isinstance(item.get(role_key), str) else None
    if role is None:
        raise BadRecord("missing_role" if item.get(role_key) is None else "unknown_role")
    if not isinstance(item.get(content_key), str):
        raise BadRecord("content_not_a_string")
    return {"role": role, "content": item[content_key]}


def conversation(record: Any, fmt: str, where: str) -> Conversation:
    """``(id, messages)`` of one record read as ``fmt`` (a ``FORMATS`` name or ``auto``): its id
    is its ``id`` field (pretrain.sources.records.record_id), else ``where``. Raises BadRecord
    (``record_not_an_object``, ``id_not_a_string_or_integer``, a format's reasons)."""
    if not isinstance(record, dict):
        raise BadRecord("record_not_an_object")
    try:
        found = record_id(record.get("id"))
    except TypeError:
        raise BadRecord("id_not_a_string_or_integer") from None
    return found or where, FORMATS[detect_format(record) if fmt == "auto" else fmt](record)


# --- reading --------------------------------------------------------------------------------------


def read_conversations(path: str, fmt: str, skipped: Skipped, key: str) -> list[Conversation]:
    """Every usable conversation under ``path`` (the params ``key``) as ``(id, messages)``, in
    file order; a record that is not one is counted in ``skipped`` by its reason, a file that
    gives none (empty, of a type not read, of another split) in files and bytes.

    ``path`` is a file, a glob or a path list (pretrain.sources.files.resolve_files) of JSON
    lines, JSON array or Parquet files (JSON compressed too), or a folder: a dataset saved with
    ``save_to_disk`` (its ``train`` split) or a folder of data files, read as datasets splits
    it (its ``train`` split; pretrain.sources.hf). Raises ConfigError for an unknown ``fmt``,
    DataError, one line naming ``path``, when no conversation is usable."""
    if fmt != "auto" and fmt not in FORMATS:
        raise ConfigError(f"params.yaml: {key}: unknown chat format {fmt!r}; one of "
                          f"{', '.join(['auto', *sorted(FORMATS)])}")
    found = [pair for where, record in _records(path, skipped, key)
             for pair in _used(record, fmt, where, skipped)]
    if not found:
        lost = describe_skipped(skipped.report()) or "no record"
        raise DataError(f"{key}: no usable conversation in {path} ({lost})")
    return found


def _used(record: Any, fmt: str, where: str, skipped: Skipped) -> list[Conversation]:
    try:
        return [conversation(record, fmt, where)]
    except BadRecord as bad:
        skipped.add(bad.reason, where)
        return []


def _records(path: str, skipped: Skipped, key: str) -> Iterator[tuple[str, Any]]:
    """``(where, record)`` of every record under ``path``; what cannot be read is counted."""
    folder = Path(path)
    if folder.is_dir() and any((folder / f).exists() for f in ("state.json", "dataset_dict.json")):
        yield from _saved_dataset(folder, skipped, key)
        return
    files = _split_files(folder, skipped, key) if folder.is_dir() else resolve_files(path, key)
    for file in files:
        yield from _file_records(file, skipped)


def _file_records(path: Path, skipped: Skipped) -> Iterator[tuple[str, Any]]:
    name, size = display_name(path), path.stat().st_size
    reader = READERS.get(inner_path(path).suffix.lower())
    if reader is None or (reader is _parquet_records and codec_of(path)):
        skipped.add_file("compressed_parquet" if reader else "unsupported_file_type", name, size)
        return
    count = 0
    try:
        for where, record, reason in reader(path):
            count += 1
            if reason:
                skipped.add(reason, where)
            else:
                yield where, record
    except CompressedFileError as exc:  # the records before the damage are kept
        skipped.add_file(exc.reason, f"{name} ({exc.detail})", size)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not count:
        skipped.add_file("empty_file", name, size)


Found = Iterator[tuple[str, Any, str | None]]
"""``(where, record, None)`` per record of a file, ``(where, None, reason)`` per unreadable one."""


def _json_file_records(path: Path) -> Found:
    name = display_name(path)
    for lineno, record, reason in _json_records(path):
        yield f"{name}:{lineno}", record, reason


def _parquet_records(path: Path) -> Found:
    """The rows of a Parquet file as records: only the columns a format or the id reads."""
    name = display_name(path)
    if path.stat().st_size == 0:
        return  # counted as empty_file
    try:
        reader = pq.ParquetFile(path)
        wanted = {"id", *(field for field, _ in DETECT), "input", "output"}
        columns = [c for c in reader.schema_arrow.names if c in wanted]
        row = 0
        for batch in reader.iter_batches(batch_size=1024, columns=columns):
            for record in batch.to_pylist():
                yield f"{name}:{row}", record, None
                row += 1
    except (pa.ArrowException, OSError) as exc:  # a damaged footer or page
        raise DataError(f"{path}: cannot read Parquet ({' '.join(str(exc).split())})") from None


READERS: dict[str, Callable[[Path], Found]] = {
    ".jsonl": _json_file_records, ".json": _json_file_records, ".parquet": _parquet_records}
"""File suffix (lower case, under any compression suffix) -> its reader."""


def _saved_dataset(folder: Path, skipped: Skipped, key: str) -> Iterator[tuple[str, Any]]:
    """The records of the ``train`` split of a dataset saved with ``save_to_disk``; the Arrow
    files of its other splits are counted as ``hf_other_split``."""
    import datasets

    try:
        data = datasets.load_from_disk(str(folder))
    except Exception as exc:  # datasets raises many types for a damaged folder
        raise DataError(f"{key}: cannot load dataset {folder}: {_first_line(exc)}") from None
    if isinstance(data, datasets.DatasetDict):
        if SPLIT not in data:
            raise DataError(f"{key}: dataset {folder} has no {SPLIT!r} split "
                            f"(splits: {', '.join(sorted(data))})")
        for split, files in sorted(data.cache_files.items()):
            for file in files if split != SPLIT else []:
                other = Path(file["filename"])
                skipped.add_file("hf_other_split", f"{display_name(other)} ({split})",
                                 other.stat().st_size)
        data = data[SPLIT]
    for row, record in enumerate(data):
        yield f"{display_name(folder)}:{SPLIT}:{row}", record


def _split_files(folder: Path, skipped: Skipped, key: str) -> list[Path]:
    """The data files of a folder's ``train`` split as datasets resolves them (its card's
    configs, else file and folder names); every other file is counted, or stops the stage when
    datasets puts it in no split (pretrain.sources.hf)."""
    import datasets

    from pretrain.sources.hf import _audit_folder, split_files

    try:
        builder = datasets.load_dataset_builder(str(folder))
    except Exception as exc:  # datasets raises many types: no data files, a bad card
        raise DataError(f"{key}: cannot read {folder} as a dataset: {_first_line(exc)}") from None
    splits = sorted(str(s) for s in (builder.config.data_files or {}))
    if SPLIT not in splits:
        raise DataError(f"{key}: dataset folder {folder} has no {SPLIT!r} split (splits: "
                        f"{', '.join(splits) or 'none'})")
    _audit_folder(folder, builder, SPLIT, skipped, key)
    resolved = split_files(builder, folder)
    return sorted(p for p in files_under(folder)
                  if resolved.get(os.path.realpath(p)) == (builder.config.name, SPLIT))


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
