"""The tokenizer and pack stages: text -> token ids -> fixed-length rows.

- ``tokenizer.py``: train a byte-level BPE on a sample of the corpus or take an existing
  tokenizer; how text is encoded everywhere (``encode_texts``, ``document_ids``).
- ``pack.py``: BOS + ids + EOS per document, one task per document shard; the held-out split.
- ``encoder.py``: the tokenizer as pack loads it, ``tokenizers`` without transformers (and torch).
- ``rows.py``: token streams on disk, cut into rows of ``seq_len`` and written as Parquet row
  shards and as the token store (``pretrain.token_store``) that training reads.
- ``heldout.py``: the multiple-choice set built from held-out documents.
"""
