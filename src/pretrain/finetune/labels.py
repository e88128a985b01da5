"""Labelled text for a classifier (``finetune.task: classify``): read, named, split and encoded.

Records are read by the download stage's own readers (pretrain.sources): local files (JSON lines,
JSON, Parquet, CSV / TSV under a path, a folder or a glob; pretrain.sources.files) or a Hugging
Face dataset (a folder saved with ``save_to_disk``, a local folder of data files, or a hub id
when online; pretrain.sources.hf). So a labelled file is read exactly as a pretraining one: the
same ids (the record's ``id_field``, else its place, ``file:line``), the same skipped records
(empty text, NUL, lone surrogates) counted by the same reasons, and duplicate ids made unique
as the download stage makes them (pretrain.sources.streams.unique_ids). The label is the one
metadata field the reader keeps (``metadata_fields=[label_field]``).

A label value becomes a class name as follows (``label_name``): a string as it is (not
stripped: ``"pos "`` and ``"pos"`` are two classes, as they would be to any other tool); an
integer, or a float with an integer value (pandas stores an integer column with gaps as float),
in decimal; a boolean as ``"true"`` / ``"false"``, as JSON spells it (the metadata is JSON). So
``1`` in a JSON line and ``"1"`` in a CSV cell are the same class. A missing, null or blank
label is counted as ``missing_label_field``, a fraction as ``label_is_a_fraction``, anything
else (a list, an object) as ``label_not_a_scalar``: all in records, in ``skipped``, beside the
readers' own reasons. A Hugging Face ``ClassLabel`` column is read as its integer values.

The split into train / validation / test is stratified: within each class, examples are ranked
by a salted hash of their id (sha256 of ``salt + "\\0" + id``: pack's scheme for holding out
validation documents, pretrain.tokens.pack ``is_validation``, which uses BLAKE2b), so an
example's split depends only on its id, its class's size and the salt, never on the order the
records came in.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter, defaultdict
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np

from pretrain.config.sources import SourceConfig
from pretrain.errors import ConfigError, DataError, warn
from pretrain.sources.files import read_files
from pretrain.sources.hf import read_hf
from pretrain.sources.records import Document, Skipped, describe_skipped
from pretrain.sources.streams import unique_ids

__all__ = ["Example", "Encoded", "SPLITS", "read_labelled", "label_name", "label_names",
           "stratified_split", "split_hash", "encode"]

SPLITS = ("train", "validation", "test")


class Example(NamedTuple):
    """One labelled text: its document id (unique among those read), its text, its class name
    and the split the data itself puts it in ("" when it does not say)."""

    id: str
    text: str
    label: str
    split: str = ""


class Encoded(NamedTuple):
    """What ``encode`` returns: the rows and how many texts were cut to fit."""

    rows: np.ndarray
    """(N, max_length + 1) int64: token ids right-padded with the pad id, then the class index."""
    truncated: int
    """Texts longer than max_length tokens (BOS and EOS included), cut keeping the EOS last."""


# --- reading ----------------------------------------------------------------------------------

Reader = Callable[[SourceConfig, Skipped, str, str], Iterator[Document]]
# The readers themselves rather than pretrain.sources.streams.SOURCES, whose wrappers name
# ``download.path`` (or ``download.sources[...]``) in their errors: here the path is a finetune
# key. The documents are the same.
READERS: dict[str, Reader] = {"files": read_files, "hf": read_hf}
"""Where labelled records may come from, by ``source`` (the download stage's kinds)."""


def read_labelled(source: str, path: str, text_field: str, label_field: str, skipped: Skipped,
                  key: str, hf_split: str = "train", id_field: str | None = "id",
                  hf_config: str | None = None, split_field: str | None = None) -> list[Example]:
    """Every usable labelled record of ``path`` (the params ``key``, e.g. ``finetune.path``),
    in the reader's order, as Examples (see the module docstring for ids and label values).

    ``source``: ``files`` or ``hf`` (READERS). What cannot be used is counted in ``skipped`` by
    reason (records, or whole files with their bytes). With ``split_field``, each example's
    split is the data's own (``data_split``; a record without one is counted). Raises ConfigError (one line) for an
    unknown source or fields that clash (the label field is also the text or id field), and
    DataError (one line) when a file cannot be read or no example is left, saying what was
    skipped.
    """
    if source not in READERS:
        raise ConfigError(f"{key}: source {source!r} cannot hold labelled records; "
                          f"expected one of {sorted(READERS)}")
    try:
        cfg = SourceConfig(source=source, path=path, text_field=text_field, id_field=id_field,
                           metadata_fields=[label_field] + ([split_field] if split_field else []),
                           split_above_chars=None,
                           hf_split=hf_split, hf_config=hf_config)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    docs = unique_ids(READERS[source](cfg, skipped, source, key), skipped)
    examples = [Example(doc["id"], doc["text"], label, split)
                for doc in docs if (label := _doc_label(doc, label_field, skipped)) is not None
                and (split := _doc_split(doc, split_field, skipped)) is not None]
    if not examples:
        lost = describe_skipped(skipped.report())
        raise DataError(f"{key}: no labelled example in {path!r} (text field {text_field!r}, "
                        f"label field {label_field!r}); skipped: {lost or 'nothing'}")
    return examples


def _doc_label(doc: Document, label_field: str, skipped: Skipped) -> str | None:
    """The class name of one document's label, or None with the reason counted."""
    value = json.loads(doc["metadata"]).get(label_field)
    try:
        return label_name(value)
    except (LookupError, TypeError, ValueError) as exc:
        skipped.add(_REASONS[type(exc)], doc["provenance"])
        return None


SPLIT_NAMES = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation",
               "dev": "validation", "test": "test"}
"""The values of a ``split_field`` and the split each names (case-insensitive)."""


def _doc_split(doc: Document, split_field: str | None, skipped: Skipped) -> str | None:
    """The data's own split of one document ("" without ``split_field``), or None with the
    reason counted (``missing_split_field``, ``unknown_split``: not one of SPLIT_NAMES)."""
    if split_field is None:
        return ""
    value = json.loads(doc["metadata"]).get(split_field)
    if value is None:
        skipped.add("missing_split_field", doc["provenance"])
        return None
    split = SPLIT_NAMES.get(str(value).strip().lower())
    if split is None:
        skipped.add("unknown_split", doc["provenance"])
    return split


def data_split(examples: list[Example], val_fraction: float, salt: str) -> dict[str, list[Example]]:
    """The splits the data itself names (``Example.split``), each in the salted-rank order
    ``stratified_split`` uses; without validation examples, ``val_fraction`` of each class of
    the training ones (stratified). Raises DataError when no example is for training."""
    given = {name: sorted((ex for ex in examples if ex.split == name), key=lambda ex: _rank(ex, salt))
             for name in SPLITS}
    if not given["train"]:
        raise DataError("finetune.split_field: no example of the train split (values: "
                        f"{', '.join(sorted(SPLIT_NAMES))})")
    if not given["validation"] and val_fraction:
        carved = stratified_split(given["train"], val_fraction, 0.0, salt)
        given["train"], given["validation"] = carved["train"], carved["validation"]
    return given


_REASONS = {LookupError: "missing_label_field", ValueError: "label_is_a_fraction",
            TypeError: "label_not_a_scalar"}


def label_name(value: Any) -> str:
    """The class name of a label value (module docstring). Raises LookupError for a missing
    (None) or blank one, ValueError for a fraction, TypeError for any other type."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise LookupError("no label")
    if isinstance(value, bool):  # before int: a bool is an int to Python
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            raise LookupError("no label")  # pandas' missing value
        if not value.is_integer():
            raise ValueError(f"a fraction: {value!r}")
        return str(int(value))
    raise TypeError(f"not a scalar: {value!r}")


# --- class names ------------------------------------------------------------------------------


def label_names(examples: list[Example], configured: list[str] | None, key: str,
                where: str = "the examples read") -> list[str]:
    """The class names, in the order of the classifier's outputs: ``configured`` when given,
    else the distinct labels sorted (as strings: ``"10"`` before ``"2"``).

    ``key`` is the params section (``finetune``): errors name ``{key}.labels`` and
    ``{key}.label_field``; ``where`` says what the examples are (a path). Raises ConfigError (one
    line) for a configured name that is not a string or is listed twice; DataError (one line)
    for a label not configured (naming the first, and its example), a configured class with no
    example, or fewer than two classes.
    """
    counts = Counter(ex.label for ex in examples)
    if configured is not None:
        names = list(configured)
        _check_configured(names, examples, counts, key, where)
    else:
        names = sorted(counts)
    if len(names) < 2:
        found = f"{names[0]!r}" if names else "none"
        raise DataError(f"{key}.label_field: only one class ({found}) in {where}: a classifier "
                        f"needs at least two")
    return names


def _check_configured(names: list[str], examples: list[Example], counts: Counter, key: str,
                      where: str) -> None:
    bad = next((name for name in names if not isinstance(name, str)), None)
    if bad is not None:  # YAML reads [0, 1] as integers; labels are read as text ("0")
        raise ConfigError(f"{key}.labels: {bad!r} is not a string; quote it ('{bad}')")
    twice = [name for name, n in Counter(names).items() if n > 1]
    if twice:
        raise ConfigError(f"{key}.labels: {twice[0]!r} is listed twice")
    known = set(names)
    unknown = next((ex for ex in examples if ex.label not in known), None)
    if unknown is not None:
        raise DataError(f"{key}.labels: label {unknown.label!r} of example {unknown.id!r} in "
                        f"{where} is not one of the configured labels {names}")
    empty = [name for name in names if not counts[name]]
    if empty:
        raise DataError(f"{key}.labels: {empty[0]!r} has no example in {where}; remove it "
                        f"from the list (a class never seen in training cannot be learnt)")


# --- splitting --------------------------------------------------------------------------------


def stratified_split(examples: list[Example], val_fraction: float, test_fraction: float,
                     salt: str) -> dict[str, list[Example]]:
    """``examples`` in three splits (SPLITS), each class in the same proportions.

    Within each class of n examples, ranked by sha256(salt + "\\0" + id) (ties, from duplicate
    ids, by text): the first ``round(test_fraction * n)`` go to test, the next
    ``round(val_fraction * n)`` to validation, the rest to train, rounding halves up (not
    Python's round-half-to-even: 2.5 -> 3). Train keeps at least one example of every class,
    taken from validation first, then test. Each split is ordered by the same rank (classes
    interleaved), so the splits are the same for any order of ``examples``.

    A class too small for a validation (or test) example while its fraction is above 0 is kept,
    not an error: its per-class metrics on that split have support 0. One warning line names
    such classes. Raises ConfigError for fractions outside [0, 1) or adding up to 1 or more.
    """
    _check_fractions(val_fraction, test_fraction)
    by_class: dict[str, list[Example]] = defaultdict(list)
    for ex in sorted(examples, key=lambda ex: _rank(ex, salt)):
        by_class[ex.label].append(ex)
    splits: dict[str, list[Example]] = {name: [] for name in SPLITS}
    short: dict[str, list[str]] = {"validation": [], "test": []}
    for label, members in sorted(by_class.items()):
        n_test, n_val = _split_sizes(len(members), val_fraction, test_fraction)
        splits["test"] += members[:n_test]
        splits["validation"] += members[n_test:n_test + n_val]
        splits["train"] += members[n_test + n_val:]
        for split, size, fraction in (("validation", n_val, val_fraction),
                                      ("test", n_test, test_fraction)):
            if fraction > 0 and size == 0:
                short[split].append(f"{label!r} ({len(members)})")
    for name in SPLITS:
        splits[name].sort(key=lambda ex: _rank(ex, salt))
    for split, labels in short.items():
        if labels:
            warn(f"finetune: no {split} example of class {', '.join(labels)}: too few examples "
                 f"for its share; its {split} metrics have support 0")
    return splits


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise ConfigError(f"finetune.{name}: expected a fraction in [0, 1), got {value!r}")
    if val_fraction + test_fraction >= 1:
        raise ConfigError(f"finetune.val_fraction + test_fraction: {val_fraction} + "
                          f"{test_fraction} leaves nothing to train on")


def _split_sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """(test, validation) sizes of a class of ``n``, leaving train at least one."""
    n_test = math.floor(test_fraction * n + 0.5)
    n_val = math.floor(val_fraction * n + 0.5)
    over = max(0, n_test + n_val - (n - 1))
    cut_val = min(over, n_val)
    return n_test - (over - cut_val), n_val - cut_val


def _rank(ex: Example, salt: str) -> tuple[bytes, str, str, str]:
    digest = hashlib.sha256(f"{salt}\0{ex.id}".encode("utf-8")).digest()
    return digest, ex.id, ex.text, ex.label


def split_hash(examples: list[Example]) -> str:
    """16 hex characters of the sha256 of a split's (id, label) pairs in its order: two runs
    that report the same hash trained or scored on the same examples with the same labels."""
    pairs = json.dumps([[ex.id, ex.label] for ex in examples], ensure_ascii=False,
                       separators=(",", ":"))
    return hashlib.sha256(pairs.encode("utf-8")).hexdigest()[:16]


# --- encoding ---------------------------------------------------------------------------------

ENCODE_BATCH = 1024
"""Texts per tokenizer call: enough for the Rust tokenizer to spread over the cores."""


def encode(tokenizer: Any, examples: list[Example], names: list[str],
           max_length: int) -> Encoded:
    """The rows a classifier trains on: (N, max_length + 1) int64, one per example in order.

    Columns 0..max_length-1 hold the text as training sees a document
    (pretrain.tokens.tokenizer.document_ids: BOS, the text's ids, EOS), cut to ``max_length``
    keeping the EOS as the last token, then right-padded with ``tokenizer.pad_token_id``; the
    last column holds the label's index in ``names``. A text's length is its count of non-pad
    tokens: the pad id never occurs in a text (checked: the project's tokenizers have a
    dedicated ``<pad>``, and literal special-token text is encoded as text).

    Raises ConfigError (one line) for max_length < 2, a tokenizer without a pad token, or one
    whose pad id is also a token of a text (pad set to EOS, as pretrain.tokens.tokenizer
    ``load_tokenizer`` does for a tokenizer that has none), and DataError for a label not in
    ``names``.
    """
    from pretrain.tokens.tokenizer import encode_texts  # transformers: imported when needed

    if max_length < 2:
        raise ConfigError(f"finetune.max_length: {max_length} leaves no room for BOS and EOS")
    pad = tokenizer.pad_token_id
    if pad is None:
        raise ConfigError("finetune: the tokenizer has no pad token; a classifier needs one to "
                          "pad its rows (add <pad> to the tokenizer)")
    index = {name: i for i, name in enumerate(names)}
    rows = np.full((len(examples), max_length + 1), pad, dtype=np.int64)
    head = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    eos = tokenizer.eos_token_id
    truncated = 0
    for start in range(0, len(examples), ENCODE_BATCH):
        batch = examples[start:start + ENCODE_BATCH]
        encoded = encode_texts(tokenizer, [ex.text for ex in batch])
        for i, (ex, ids) in enumerate(zip(batch, encoded), start):
            doc = head + ids + ([eos] if eos is not None else [])
            if len(doc) > max_length:
                truncated += 1
                doc = doc[:max_length - 1] + doc[-1:]  # the EOS (or last token) stays last
            _check_no_pad(doc, pad, ex.id)
            rows[i, :len(doc)] = doc
            rows[i, -1] = _label_index(index, ex)
    return Encoded(rows, truncated)


def _check_no_pad(doc: list[int], pad: int, example_id: str) -> None:
    if pad in doc:
        raise ConfigError(f"finetune: the tokenizer's pad id {pad} is also a token of example "
                          f"{example_id!r} (pad set to BOS, EOS or a text token?); a classifier "
                          f"tells a text's end by its first pad: give the tokenizer its own <pad>")


def _label_index(index: dict[str, int], ex: Example) -> int:
    try:
        return index[ex.label]
    except KeyError:
        raise DataError(f"finetune: label {ex.label!r} of example {ex.id!r} is not one of the "
                        f"class names {list(index)}") from None
