"""The download stage: where documents come from, as one table of (id, text, source,
provenance, metadata).

- ``download.py``: ``download()``, the sources by kind (builtin, files, urls, hf) and the mix.
- ``builtin.py``: the offline built-in corpus (standard library, its manual, docstrings, package
  descriptions of the locked distributions).
- ``manifest.py``: the built-in corpus checked against the committed manifest of its Python.
- ``files.py``: local JSONL / JSON / Parquet / CSV / text / HTML files (also read by evaluate
  for its general text).
- ``hf.py``: Hugging Face datasets (hub, ``save_to_disk``, a local folder of data files).
- ``urls.py``: http(s) fetching with retries, size caps and a response cache.
- ``encoding.py``: decoding bytes that are not UTF-8 (two detectors that must agree).
- ``records.py``: a record -> a document (its id, metadata), and the skip counter (records,
  files and bytes, URLs).
"""
