"""pretrain: raw text to an evaluated language model as a reproducible DVC pipeline."""

__version__ = "0.1.0"
