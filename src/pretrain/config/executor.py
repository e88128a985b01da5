"""The ``executor`` section of params.yaml: where the data stages run their shard tasks."""

from __future__ import annotations

import dataclasses
import importlib.util
from typing import Optional

from pretrain.config import one_of, positive

EXECUTORS = ("local", "ray")


@dataclasses.dataclass(frozen=True)
class ExecutorConfig:
    name: str = "local"
    """local: processes on this machine, no server; ray: tasks on a Ray cluster (pretrain.executor)."""
    workers: int = 0
    """Shard tasks run at once (0: every core this process may use; ray: the cluster's CPUs)."""
    address: Optional[str] = None
    """ray: the cluster to join ("auto", "ray://host:10001"); null starts a local one for the run."""
    retries: int = 2
    """Times a shard task is run again after its worker process died (killed, out of memory);
    an error raised by the task itself (bad data) fails the stage at once."""

    def __post_init__(self) -> None:
        one_of("name", self.name, EXECUTORS)
        positive("workers", self.workers, zero=True)
        positive("retries", self.retries, zero=True)
        if self.address is not None and self.name != "ray":
            raise ValueError(f"address: only used with name: ray (name is {self.name!r})")
        # Checked with the params, so that every stage stops at once, not clean after download.
        if self.name == "ray" and importlib.util.find_spec("ray") is None:
            raise ValueError('name: ray needs Ray installed: pip install -e ".[ray]"')
