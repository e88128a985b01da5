"""The tokenizer and pack stages: text -> token ids -> fixed-length rows.

- ``tokenizer.py``: train a byte-level BPE or take an existing tokenizer; how text is encoded
  everywhere (``encode_texts``, ``document_ids``).
- ``pack.py``: BOS + ids + EOS per document, concatenated, cut into rows; the held-out split.
- ``heldout.py``: the multiple-choice set built from held-out documents.
"""
