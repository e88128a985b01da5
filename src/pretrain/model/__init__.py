"""The init-model stage: the model training starts from.

- ``build.py``: ``init_model()``, a fresh Llama-family model or a pretrained base, saved with its
  tokenizer and lineage.
- ``presets.py``: named model sizes (debug, small, gpt2-small-ish, tinysolar-248m).
- ``surgery.py``: depth down- and up-scaling (the SOLAR recipe) across decoder families.
The base checkpoints these start from are read by ``pretrain.bases`` (shared with the tokenizer,
evaluate and estimate).
"""
