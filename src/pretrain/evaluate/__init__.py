"""The evaluate stage: how well the models do, and on what.

- ``runner.py``: ``evaluate()``, every model (base, init, trained) scored the same way;
  greedy generations.
- ``bits_per_byte.py``: the UTF-8 bytes that scored tokens stand for, for every tokenizer family.
- ``harness.py``: lm-eval tasks (``lm_eval_tasks/`` holds the offline ones) from one BOS.
- ``contamination.py``: 13-gram overlap of evaluation sets with the training rows.
- ``general_text.py``: general text scored for forgetting in continued pretraining.
"""
