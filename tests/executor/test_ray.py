"""The ray executor on real Ray clusters started here and stopped afterwards: one head started
with the ``ray start`` command a user runs (2 CPUs), and two nodes of one CPU each from Ray's
own multi-node test utility (ray.cluster_utils.Cluster). Through either, clean, dedup and pack
write the bytes that the local executor writes with 1 and 2 workers; a worker killed mid-task
is retried; a task's error is one line naming its shard. Skipped where Ray is not installed
(``pip install -e ".[ray]"``; CI installs it with the dev extra)."""

import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason='the ray executor needs Ray: pip install -e ".[ray]"')

from pretrain.config.clean import CleanConfig  # noqa: E402
from pretrain.config.dedup import DedupConfig  # noqa: E402
from pretrain.config.executor import ExecutorConfig  # noqa: E402
from pretrain.config.tokens import PackConfig  # noqa: E402
from pretrain.errors import ConfigError, DataError  # noqa: E402
from pretrain.executor.shards import run_shards, work_folder  # noqa: E402
from pretrain.io import DocumentWriter, shard_name  # noqa: E402
from pretrain.sources.builtin import stdlib_files  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import test_executor  # noqa: E402
from test_executor import (  # noqa: E402
    always_dies_on_1,
    dies_once_on_1,
    fails_on_1,
    record,
    runs_of,
    text_shards,
)

# Ray's workers do not have this folder on their path: send the test tasks by value, as Ray's
# docs advise for code that lives only on the driver (pretrain's own tasks are imported by name).
ray.cloudpickle.register_pickle_by_value(test_executor)

# --- clusters ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_head(temp: Path) -> tuple[subprocess.Popen, str]:
    """``ray start --head --block`` on this machine; its GCS address once it is up. Its own
    temporary folder keeps its session and address file apart from any other Ray here. Token
    authentication (on by default since Ray 2.5x for ``ray start``) is turned off: a driver
    given an explicit address does not send the token (ray/_private/worker.py), and this
    cluster is reachable from this machine only for the length of the tests."""
    port = free_port()
    log = open(temp / "ray_start.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", "--num-cpus", "2",
         "--node-ip-address", "127.0.0.1", "--port", str(port), "--include-dashboard=false",
         "--disable-usage-stats", "--temp-dir", str(temp)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    deadline = time.monotonic() + 120
    while not (temp / "ray_current_cluster").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            stop_head(process)
            raise RuntimeError(f"ray start failed: {(temp / 'ray_start.log').read_text()[-2000:]}")
        time.sleep(0.2)
    return process, (temp / "ray_current_cluster").read_text().strip()


def stop_head(process: subprocess.Popen) -> None:
    """Stop the ``ray start --block`` we started and what it started (not ``ray stop``, which
    stops every Ray cluster of this user on the machine)."""
    process.send_signal(signal.SIGTERM)  # --block then stops its own processes
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="module", params=["ray start, 1 node x 2 CPUs", "Cluster, 2 nodes x 1 CPU"])
def address(request):
    """The GCS address of a Ray cluster running for this module's tests."""
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's socket paths have a limit
    try:
        if request.param.startswith("ray start"):
            process, gcs = start_head(temp)
            try:
                yield gcs
            finally:
                stop_head(process)
        else:
            from ray.cluster_utils import Cluster

            cluster = Cluster(initialize_head=True, head_node_args={
                "num_cpus": 1, "include_dashboard": False, "temp_dir": str(temp)})
            try:
                cluster.add_node(num_cpus=1)
                cluster.wait_for_nodes()
                yield cluster.address
            finally:
                cluster.shutdown()
    finally:
        shutil.rmtree(temp, ignore_errors=True)


# --- the data stages: ray writes the bytes of local ---------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Three document shards of real standard-library files, with one file again in the last
    shard (an exact duplicate across shards, for dedup)."""
    docs = [{"id": rel, "text": path.read_text(encoding="utf-8"), "source": "stdlib", "provenance": rel}
            for rel, path in stdlib_files(include_tests=False)[:36]]
    docs.append({**docs[3], "id": "copy-of-" + docs[3]["id"]})
    folder = tmp_path_factory.mktemp("raw")
    for i in range(3):
        with DocumentWriter(folder / shard_name(i)) as writer:
            for doc in docs[i * 12: (i + 1) * 12 + (i == 2)]:
                writer.write(doc)
    return folder


def run_clean(executor, src, out, work, tokenizer):
    from pretrain.clean.runner import clean

    cfg = CleanConfig(filters=["whitespace", "paragraph_length"])
    return clean(cfg, executor, src, out / "clean", work, out / "clean_scores.json")


def run_dedup(executor, src, out, work, tokenizer):
    from pretrain.dedup.runner import dedup

    return dedup(DedupConfig(), executor, src, out / "dedup", work)


def run_pack(executor, src, out, work, tokenizer):
    from pretrain.tokens.pack import pack

    return pack(PackConfig(seq_len=32, val_fraction=0.2), executor, tokenizer, src, out / "packed", work,
                out / "tokens")


STAGES = {"clean": run_clean, "dedup": run_dedup, "pack": run_pack}


def outputs(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path, with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_stage(stage: str, executor: ExecutorConfig, corpus: Path, root: Path, tokenizer) -> tuple:
    root.mkdir(parents=True, exist_ok=True)
    report = STAGES[stage](executor, corpus, root / "out", root / "work", tokenizer)
    assert not any((root / "work").iterdir())  # the stage removed its work folder
    return report, outputs(root / "out")


_local: dict[str, tuple] = {}


@pytest.fixture
def local_run(corpus, tiny_tokenizer, tmp_path_factory):
    """The outputs of a stage on the local executor (once per stage), checked the same for 1
    and 2 workers."""

    def get(stage: str) -> tuple:
        if stage not in _local:
            runs = [run_stage(stage, ExecutorConfig(workers=w), corpus,
                              tmp_path_factory.mktemp(f"{stage}-local{w}"), tiny_tokenizer) for w in (1, 2)]
            assert runs[0] == runs[1]
            _local[stage] = runs[0]
        return _local[stage]

    return get


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_stage_on_ray_writes_the_bytes_it_writes_locally(stage, address, corpus, tiny_tokenizer, local_run,
                                                           tmp_path):
    report, files = run_stage(stage, ExecutorConfig(name="ray", address=address), corpus, tmp_path / "ray",
                              tiny_tokenizer)
    assert not ray.is_initialized()  # disconnected at the end of the stage
    assert (report, files) == local_run(stage)
    assert any(name.endswith(".parquet") for name in files)


# --- retries and errors ------------------------------------------------------------------------------


@pytest.fixture
def shards(tmp_path):
    return text_shards(tmp_path, 3)


def run_on_ray(root: Path, task, address: str, retries: int = 2) -> list[dict]:
    cfg = ExecutorConfig(name="ray", address=address, retries=retries)
    return run_shards(cfg, "test", functools.partial(task, root / "runs"),
                      sorted((root / "in").glob("*.txt")), work_folder(root / "work", "k"))


def test_a_ray_worker_killed_mid_task_is_retried(shards, address):
    results = run_on_ray(shards, dies_once_on_1, address)
    assert (shards / "runs" / "died").exists()  # the worker did die
    assert [r["text"] for r in results] == [f"shard {i}\n" for i in range(3)]
    assert runs_of(shards) == ["part-00000", "part-00001", "part-00002"]


def test_a_ray_worker_that_always_dies_fails_the_run_naming_the_shard(shards, address):
    with pytest.raises(DataError) as err:
        run_on_ray(shards, always_dies_on_1, address, retries=1)
    assert str(err.value) == "test: shard part-00001.txt: its Ray worker died 2 times (killed, or out of memory)"
    assert len(list((shards / "runs").glob("attempt.*"))) == 2


def test_a_task_error_on_ray_is_the_task_own_error_in_one_line(shards, address):
    """Ray wraps it in RayTaskError, with the worker's traceback; the stage shows the cause."""
    with pytest.raises(DataError) as err:
        run_on_ray(shards, fails_on_1, address)
    assert str(err.value) == "test: shard part-00001.txt: row 7: no text column (the second line of the message)"
    assert isinstance(err.value.__cause__, ValueError)
    assert not ray.is_initialized()


def test_an_address_where_no_cluster_answers_fails_at_once_in_one_line(shards):
    port = free_port()  # closed again: nothing listens there
    started = time.monotonic()
    with pytest.raises(ConfigError) as err:
        run_on_ray(shards, record, address=f"127.0.0.1:{port}")
    assert str(err.value) == (f"executor.address: cannot join the Ray cluster '127.0.0.1:{port}': "
                              f"nothing answers at 127.0.0.1:{port} (Connection refused)")
    assert time.monotonic() - started < 20
    assert runs_of(shards) == []


def test_without_an_address_ray_starts_a_local_cluster_and_stops_it(shards):
    results = run_on_ray(shards, record, address=None)
    assert [r["name"] for r in results] == ["part-00000", "part-00001", "part-00002"]
    assert not ray.is_initialized()
