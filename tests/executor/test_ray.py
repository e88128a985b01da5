"""The ray executor on real Ray clusters started here and stopped afterwards: one head started
with the ``ray start`` command a user runs (2 CPUs), and two nodes of one CPU each from Ray's
own multi-node test utility (ray.cluster_utils.Cluster), both on 127.0.0.1 only, with their
files in a temporary folder of their own (a machine that never ran Ray has no /tmp/ray). Through
either, clean, dedup and pack write the bytes that the local executor writes with 1 and 2
workers; a worker killed mid-task is retried; a task's error is one line naming its shard.
Skipped where Ray is not installed (``pip install -e ".[ray]"``; CI installs it with the dev
extra)."""

import functools
import gzip
import json
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
from pretrain.executor.ray import loopback_only, on_loopback  # noqa: E402
from pretrain.executor.shards import Shard, run_shards, work_folder  # noqa: E402
from pretrain.io import DocumentWriter, iter_documents, shard_name  # noqa: E402
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
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

# --- clusters ---------------------------------------------------------------------------------------

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_head(temp: Path) -> tuple[subprocess.Popen, str]:
    """``ray start --head --block`` on this machine; its GCS address once it is up. Its own
    temporary folder keeps its session and address file apart from any other Ray here. Token
    authentication (on by default since Ray 2.5x for ``ray start``) is turned off: a driver
    given an explicit address does not send the token (ray/_private/worker.py), and this
    cluster is reachable from this machine only for the length of the tests. Ray's
    single-machine mode keeps it on 127.0.0.1: on Linux ``--node-ip-address 127.0.0.1`` alone
    becomes the machine's network address (pretrain.executor.ray.loopback_only)."""
    port = free_port()
    log = open(temp / "ray_start.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", "--num-cpus", "2",
         "--node-ip-address", "127.0.0.1", "--port", str(port), "--include-dashboard=false",
         "--disable-usage-stats", "--temp-dir", str(temp)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})
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


def start_cluster(temp: Path):
    """Two nodes of one CPU on 127.0.0.1 from ray.cluster_utils.Cluster. Cluster writes the
    head's address to ``ray_current_cluster`` in Ray's default temporary folder
    (``$RAY_TMPDIR/ray``, else ``$TMPDIR/ray``, else /tmp/ray: ray._common.utils.
    get_ray_address_file), which it does not create, so that write fails on a machine where
    Ray never ran; pointed at ``temp``, it neither fails nor sends ``ray.init("auto")`` of
    another Ray user of this machine to this cluster."""
    from ray.cluster_utils import Cluster

    (temp / "ray").mkdir()
    with pytest.MonkeyPatch.context() as patch, loopback_only(ray):
        patch.setenv("RAY_TMPDIR", str(temp))
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 1, "include_dashboard": False, "temp_dir": str(temp), "node_ip_address": LOOPBACK})
        try:
            cluster.add_node(num_cpus=1, node_ip_address=LOOPBACK)
            cluster.wait_for_nodes()
        except BaseException:
            cluster.shutdown()
            raise
    assert (temp / "ray" / "ray_current_cluster").read_text() == cluster.address
    return cluster


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
            cluster = start_cluster(temp)
            try:
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


def run_download(executor, src, out, work, tokenizer):
    """The inputs: the corpus's documents again as JSON lines (one file read in byte ranges),
    gzip JSON lines and the Parquet shards themselves, one task per file or range."""
    from pretrain.config.sources import DownloadConfig
    from pretrain.sources.download import download

    inputs = src.parent / "download-inputs"
    if not inputs.exists():
        inputs.mkdir()
        docs = [{"id": d["id"], "text": d["text"]} for d in iter_documents(src)]
        (inputs / "a.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
        with gzip.open(inputs / "b.jsonl.gz", "wt") as handle:
            handle.write("".join(json.dumps(d) + "\n" for d in docs[:5]))
        for shard in sorted(src.glob("*.parquet")):
            shutil.copyfile(shard, inputs / shard.name)
    cfg = DownloadConfig(source="files", path=str(inputs), task_mb=0.05, shard_mb=0.05)
    return download(cfg, out / "raw", executor=executor, work_root=work)


STAGES = {"clean": run_clean, "dedup": run_dedup, "pack": run_pack, "download": run_download}


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


def where_it_ran(runs: Path, shard: Shard) -> dict:
    """The addresses the Ray cluster running this task advertises: every node's and the GCS's."""
    return {"name": shard.name, "nodes": sorted({n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]}),
            "gcs": ray.get_runtime_context().gcs_address.rpartition(":")[0],
            "here": ray.util.get_node_ip_address()}


def addresses(results: list[dict]) -> set[str]:
    return {a for r in results for a in (r["gcs"], r["here"], *r["nodes"])}


def test_the_tests_clusters_stay_on_loopback(shards, address):
    """The clusters of these tests advertise 127.0.0.1 only, not the machine's network
    address (what Ray picks on Linux)."""
    assert address.startswith(f"{LOOPBACK}:")
    assert addresses(run_on_ray(shards, where_it_ran, address)) == {LOOPBACK}


def test_the_local_cluster_stays_on_loopback(shards):
    """The cluster the executor starts for a run (executor.address: null) is of this machine
    alone: every node and the GCS on 127.0.0.1."""
    assert addresses(run_on_ray(shards, where_it_ran, address=None)) == {LOOPBACK}


def test_a_loopback_address_is_joined_on_loopback_and_others_are_left_alone():
    for address in (None, "127.0.0.1:6379", "127.0.1.1:6379", "localhost:6379", "[::1]:6379",
                    "ray://127.0.0.1:10001"):
        assert on_loopback(address), address
    for address in ("auto", "10.0.0.5:6379", "head:6379", "ray://head:10001", "[2001:db8::1]:6379"):
        assert not on_loopback(address), address


def test_without_an_address_ray_starts_a_local_cluster_and_stops_it(shards):
    results = run_on_ray(shards, record, address=None)
    assert [r["name"] for r in results] == ["part-00000", "part-00001", "part-00002"]
    assert not ray.is_initialized()
