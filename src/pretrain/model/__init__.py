"""The init-model stage: the model training starts from.

- ``build.py``: ``init_model()``, a fresh Llama-family model or a pretrained base, saved with its
  tokenizer and lineage.
- ``surgery.py``: depth down- and up-scaling (the SOLAR recipe) across decoder families.
The base checkpoints these start from are read by ``pretrain.bases`` (shared with the tokenizer,
evaluate and estimate). The named sizes (presets) and the depth rules are in
``pretrain.config.shape``, where every stage checks params against them before any work.
"""
