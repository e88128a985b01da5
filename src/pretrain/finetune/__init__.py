"""After pretraining: fine-tune the final model into a classifier or a chat model (the
finetune stage), on the project's own training loop (pretrain.train.loop) as an objective.

- ``runner.py``: the stage: the pass-through of ``task: none``, the backbones compared, the
  loop's settings for a fine-tune.
- ``tasks.py``: the tasks by name (classify, sft): read the data once, tune each backbone,
  score it.
- ``tuning.py``: what both share: freezing, gradual unfreezing, head and per-block rates,
  LoRA, early stopping with the best step's weights kept.
- ``classify.py``: the sequence-classification objective; ``labels.py``: labelled data read
  through the download stage's readers, split by class; ``metrics.py``: scores and losses.
- ``sft.py``: the instruction-tuning objective; ``chat.py``: chat records, templates and
  assistant masks.
"""
