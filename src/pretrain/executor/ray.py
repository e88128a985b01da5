"""The Ray executor: the same shard tasks as Ray Core tasks on a Ray cluster.

``executor.address`` names the cluster (``auto``: the one ``ray start`` runs on this machine;
``host:6379``: a head's GCS address; ``ray://host:10001``: a remote head through Ray Client);
null starts a local cluster for the run (``ray.init(address="local")``, so that a cluster
already running here is not joined by accident) with ``executor.workers`` CPUs (0: every core)
and stops it afterwards; that cluster is of this machine alone, so its processes listen and
advertise on 127.0.0.1 only (``loopback_only``). A cluster at a loopback address
(``127.0.0.1:6379``) is joined the same way, where Ray would otherwise look for it at the
machine's network address; ``auto`` and other addresses leave Ray's choice of addresses alone.
Ray is started on the first task, not before: a rerun whose shards are all done never waits
for a cluster. Each task asks for one CPU; at most ``workers`` run at once when it is set, else
as many as the cluster's CPUs allow. Ray runs a task again on another worker when its worker
process dies (``max_retries = executor.retries``); an exception raised by
the task itself is not retried (bad data fails the same way twice). Every node must have
pretrain installed and see the stage's paths (a shared file system), and Ray's workers there
run with that node's environment (``ray start``'s); docs/scale.md shows a cluster set-up.

``ray start`` turns on token authentication (Ray 2.60): ``auto`` finds the token
(``~/.ray/auth_token``), but a driver given ``host:port`` sends it only with
``RAY_AUTH_MODE=token`` in its environment; without, the stage stops with Ray's "Authentication
token is missing or incorrect" in its one-line error.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
from typing import Any, Callable, Iterator, Sequence

from pretrain.config.executor import ExecutorConfig
from pretrain.errors import ConfigError
from pretrain.executor.local import WorkerDied
from pretrain.io import worker_count


def _call(task: Callable[[Any], Any], item: Any) -> Any:
    return task(item)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0].strip() if lines else type(exc).__name__


def _unreachable(address: str) -> str | None:
    """Why nothing answers at ``address`` (``host:port`` or ``ray://host:port``), or None;
    None too for names Ray resolves itself (``auto``). ray.init keeps retrying an address where
    no cluster answers (Ray 2.60, a closed local port: still retrying when stopped after 300 s),
    so a closed port is told at once instead."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return None
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as exc:
        return f"nothing answers at {host}:{port} ({exc.strerror or exc})"
    return None


def on_loopback(address: str | None) -> bool:
    """Whether ``executor.address`` keeps the cluster on this machine's loopback interface:
    null (a local cluster for the run) or a ``localhost`` / 127.0.0.0/8 / ``::1`` host."""
    if address is None:
        return True
    host = address.removeprefix("ray://").rpartition(":")[0].strip("[]")
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name (auto, a host name)
        return False


@contextlib.contextmanager
def loopback_only(ray: Any) -> Iterator[None]:
    """Inside the block, a Ray node started in this process takes 127.0.0.1 as its address.

    On Linux Ray never uses the loopback address for a node: ``ray.init(_node_ip_address=
    "127.0.0.1")`` and ``ray start --node-ip-address 127.0.0.1`` are both turned into the
    machine's network address (``ray._private.services.resolve_ip_for_localhost``; "intentional",
    ray-project/ray#26293), and the GCS, raylet and worker servers then listen on every
    interface. Only Ray's single-machine mode, the default on macOS and Windows
    (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read into ``ray_constants.ENABLE_RAY_CLUSTER``
    when Ray is imported), takes 127.0.0.1 (``services.get_node_ip_address``); every process of
    the node is then given that address. Measured with Ray 2.60: the GCS, raylet, worker and
    runtime-env agent listen on 127.0.0.1 only, and ``ray.nodes()`` names 127.0.0.1. A driver
    joining ``127.0.0.1:port`` needs it too: Ray turns that address into the machine's network
    address before connecting (ray-project/ray#59110), where a loopback-only GCS never answers."""
    constants = ray._private.ray_constants
    before = constants.ENABLE_RAY_CLUSTER
    constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        constants.ENABLE_RAY_CLUSTER = before


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost cause of ``exc`` (ray.init wraps the reason it cannot connect, e.g. a
    missing authentication token, in a ConnectionError of its own)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


class RayExecutor:
    """Run ``task(item)`` for each item as Ray tasks (see the module docstring)."""

    def __init__(self, cfg: ExecutorConfig):
        try:
            import ray  # noqa: PLC0415 (optional dependency)
        except ImportError:
            raise ConfigError("executor.name: ray needs Ray installed: pip install -e \".[ray]\"") from None
        self.ray, self.cfg = ray, cfg
        self.started = False  # whether this executor called ray.init (and so shuts Ray down)

    def __enter__(self) -> "RayExecutor":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.started:
            self.ray.shutdown()
            self.started = False

    def connect(self) -> None:
        """Join (or start) the cluster of ``executor.address`` unless Ray is initialised already
        (a session, a notebook); ConfigError in one line when that fails."""
        ray = self.ray
        if ray.is_initialized():
            return
        kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": True}
        if self.cfg.address is None:
            kwargs.update(address="local", num_cpus=worker_count(self.cfg.workers), include_dashboard=False)
            where = "cannot start a local Ray cluster"
        else:
            kwargs["address"] = self.cfg.address
            where = f"cannot join the Ray cluster {self.cfg.address!r}"
            problem = _unreachable(self.cfg.address)
            if problem:
                raise ConfigError(f"executor.address: {where}: {problem}")
        try:
            with loopback_only(ray) if on_loopback(self.cfg.address) else contextlib.nullcontext():
                ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as exc:
            cause = _root_cause(exc)
            text = " ".join(str(cause).split()) or type(cause).__name__
            raise ConfigError(f"executor.address: {where}: {text}") from None
        self.started = True

    def map(self, task: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """(position, result or the exception the task raised) for each item, as they finish;
        ``WorkerDied`` for an item whose worker died more than ``retries`` times."""
        if not items:
            return
        self.connect()
        ray = self.ray
        remote = ray.remote(_call).options(num_cpus=1, max_retries=self.cfg.retries,
                                           retry_exceptions=False)
        limit = self.cfg.workers or len(items)
        task_ref = ray.put(task)
        queue = list(enumerate(items))[::-1]
        running: dict[Any, int] = {}
        try:
            while queue or running:
                while queue and len(running) < limit:
                    position, item = queue.pop()
                    running[remote.remote(task_ref, item)] = position
                done, _ = ray.wait(list(running), num_returns=1)
                position = running.pop(done[0])
                yield position, self._outcome(done[0])
        finally:
            for ref in running:  # the caller stopped early (a failed shard, Ctrl-C)
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 (best effort: Ray Client cannot force a cancel)
                    pass

    def _outcome(self, ref: Any) -> Any:
        """The task's result, the exception it raised, or why Ray could not run it."""
        exceptions = self.ray.exceptions
        try:
            return self.ray.get(ref)
        except exceptions.RayTaskError as exc:  # the task raised: hand on its own exception
            cause = getattr(exc, "cause", None)
            return cause if isinstance(cause, BaseException) else RuntimeError(_first_line(exc))
        except exceptions.WorkerCrashedError:
            return WorkerDied(f"its Ray worker died {self.cfg.retries + 1} times "
                              "(killed, or out of memory)")
        except (exceptions.NodeDiedError, exceptions.OutOfMemoryError) as exc:
            return WorkerDied(f"its Ray worker died ({type(exc).__name__}: {_first_line(exc)})")
        except exceptions.RayError as exc:  # lost objects, unschedulable tasks, ...
            return RuntimeError(f"Ray could not run it ({type(exc).__name__}: {_first_line(exc)})")
