"""The train stage: a plain PyTorch loop with parallelism applied from outside it.

- ``loop.py``: ``train()``, the loop: batches, schedule, logging, validation, checkpoints.
- ``backends.py``: the ``Backend`` interface and the registry that picks one by name.
- ``ddp.py`` (one process or DDP), ``fsdp.py`` (FSDP2 sharding), ``zero.py`` (DeepSpeed ZeRO).
- ``checkpoint.py``: resumable checkpoints keyed to the run (safetensors + JSON).
- ``optim.py``: AdamW / Lion and the learning-rate schedule.
- ``flops.py``: model FLOPs per token and the measured matmul peak, for MFU.
- ``window.py``: the steps queued since the loop last waited for the device (one sync per log).
- ``attention.py``: which attention kernel (flash, efficient, math) a model actually runs.
- ``reporters.py``: DVCLive, TensorBoard and W&B logging.
"""
