"""A data stage killed (kill -9) part way and run again redoes only its unfinished shards and
ends with the output of an uninterrupted run; nothing half-written is left where DVC looks."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pretrain.io import DocumentWriter, shard_name
from pretrain.sources.builtin import stdlib_files

ROOT = Path(__file__).resolve().parents[2]
SHARDS = 6
PARAMS = "executor:\n  workers: 2\n"
COMMAND = ["--params", "params.yaml", "--input", "raw", "--out", "clean", "--work", "work/clean",
           "--metrics", "clean.json", "--scores", "scores.json"]


def make_run(folder: Path) -> Path:
    """A run folder: params.yaml and raw/ with SHARDS shards of 12 standard-library files."""
    (folder / "raw").mkdir(parents=True)
    (folder / "params.yaml").write_text(PARAMS)
    files = stdlib_files(include_tests=False)[: SHARDS * 12]
    for i in range(SHARDS):
        with DocumentWriter(folder / "raw" / shard_name(i)) as writer:
            for rel, path in files[i * 12: (i + 1) * 12]:
                writer.write({"id": rel, "text": path.read_text(encoding="utf-8"), "source": "stdlib",
                              "provenance": rel})
    return folder


def start(folder: Path) -> subprocess.Popen:
    # Output to a file, not a pipe: a pipe that a left-over worker holds open never ends.
    with open(folder.parent / f"{folder.name}.log", "a") as log:
        return subprocess.Popen([sys.executable, str(ROOT / "stages" / "clean.py"), *COMMAND], cwd=folder,
                                stdout=log, stderr=subprocess.STDOUT)


def finish(folder: Path) -> None:
    process = start(folder)
    assert process.wait(timeout=600) == 0, (folder.parent / f"{folder.name}.log").read_text()[-3000:]


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux's /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def gone(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{pid}").exists() for pid in pids):
            return True
        time.sleep(0.1)
    return False


def outputs(folder: Path) -> dict[str, bytes]:
    files = [*sorted((folder / "clean").iterdir()), folder / "clean.json", folder / "scores.json"]
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in files}


def markers(folder: Path) -> list[Path]:
    return sorted((folder / "work" / "clean").glob("*/part-*.done.json"))


def test_a_killed_stage_reruns_only_its_unfinished_shards_and_ends_as_an_uninterrupted_run(tmp_path):
    whole = make_run(tmp_path / "whole")
    finish(whole)

    killed = make_run(tmp_path / "killed")
    process = start(killed)
    deadline = time.monotonic() + 300
    while not markers(killed) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    workers = children(process.pid)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = markers(killed)
    # The killed stage's worker processes (shard tasks in flight) end too, within seconds.
    assert gone(workers, 15), f"worker processes {workers} outlived the killed stage"
    if not 0 < len(done) < SHARDS:
        pytest.fail(f"killed with {len(done)} of {SHARDS} shards done: the shards are too quick or too slow "
                    "for this test on this machine")
    # Nothing of the output yet, not even a temporary copy beside it.
    assert sorted(p.name for p in killed.iterdir()) == ["params.yaml", "raw", "work"]
    assert len(workers) >= 2  # executor.workers: 2 (and Python's resource tracker)
    work = done[0].parent
    names = [m.name.split(".")[0] for m in done]
    finished = {name: os.stat(work / f"{name}.parquet").st_ino for name in names}

    finish(killed)
    assert outputs(killed) == outputs(whole)
    for name in (shard_name(i)[: -len(".parquet")] for i in range(SHARDS)):
        reused = os.stat(killed / "clean" / f"{name}.parquet").st_ino == finished.get(name)
        assert reused == (name in finished), name  # finished shards were linked into place, not rerun
    assert list((killed / "work" / "clean").iterdir()) == []
    assert sorted(p.name for p in killed.iterdir()) == sorted(p.name for p in whole.iterdir())
