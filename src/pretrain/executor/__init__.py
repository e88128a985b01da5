"""Where the data stages run: one task per input shard, on this machine or a Ray cluster.

- ``shards.py``: ``run_shards()``, the one entry point: tasks, completion markers keyed to the
  params and code, resume after a kill, one-line errors naming the shard.
- ``local.py``: the ``local`` executor (processes on this machine; the default).
- ``ray.py``: the ``ray`` executor (Ray Core tasks on a cluster; ``pip install -e ".[ray]"``).
"""
