"""The download stage: where documents come from, as one table of (id, text, source,
provenance, metadata, kind).

- ``download.py``: ``download()``, the stage: read tasks on the executor, then each source's
  window, unique ids and the mix's interleave (``assemble.py``).
- ``tasks.py``: the read tasks (a file, a group of small files, a byte range of a large JSON
  lines file, or a whole non-file source) and the task that reads one.
- ``streams.py``: the sources by kind (builtin, files, urls, hf) as streams, ids, the mix; one
  process reading them in order (``iter_documents``) is the reference the tasks match.
- ``builtin.py``: the offline built-in corpus (standard library, its manual, docstrings, package
  descriptions of the locked distributions).
- ``manifest.py``: the built-in corpus checked against the committed manifest of its Python.
- ``files.py``: local JSONL / JSON / Parquet / CSV / text / HTML files (also read by evaluate
  for its general text), by a registry of readers by suffix; ``jsonl.py``: JSON lines, also by
  byte range; ``warc.py``, ``pdf.py``, ``office.py``: WARC / WET, PDF, DOCX.
- ``compression.py``: gzip / zstd / bz2 / xz files opened as decompressing streams.
- ``kinds.py``: a document's kind (prose, code, html), by extension or a record's field.
- ``hf.py``: Hugging Face datasets (hub, ``save_to_disk``, a local folder of data files).
- ``urls.py``: http(s) fetching with retries, size caps and a response cache.
- ``encoding.py``: decoding bytes that are not UTF-8 (two detectors that must agree).
- ``records.py``: a record -> a document (its id, metadata), and the skip counter (records,
  files and bytes, URLs).
"""
