"""The download stage: where documents come from, as one table of (id, text, source,
provenance, metadata, kind).

- ``download.py``: ``download()``, the sources by kind (builtin, files, urls, hf) and the mix.
- ``builtin.py``: the offline built-in corpus (standard library, its manual, docstrings, package
  descriptions of the locked distributions).
- ``manifest.py``: the built-in corpus checked against the committed manifest of its Python.
- ``files.py``: local JSONL / JSON / Parquet / CSV / text / HTML files (also read by evaluate
  for its general text), by a registry of readers by suffix.
- ``compression.py``: gzip / zstd / bz2 / xz files opened as decompressing streams.
- ``kinds.py``: a document's kind (prose, code, html), by extension or a record's field.
- ``hf.py``: Hugging Face datasets (hub, ``save_to_disk``, a local folder of data files).
- ``urls.py``: http(s) fetching with retries, size caps and a response cache.
- ``encoding.py``: decoding bytes that are not UTF-8 (two detectors that must agree).
- ``records.py``: a record -> a document (its id, metadata), and the skip counter (records,
  files and bytes, URLs).
"""
