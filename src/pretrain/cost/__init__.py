"""Cost before you spend (``pretrain estimate``).

- ``formulas.py``: parameter counts, memory per parameter and activations, GPU datasheet peaks
  (FLOPs per token and the measured peak are pretrain.train.flops).
- ``estimate.py``: the estimate of a configured run: measured steps here, projected time and
  memory on GPUs, the Chinchilla and 20x token rules.
"""
