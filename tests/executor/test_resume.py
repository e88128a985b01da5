"""A data stage killed (kill -9) part way and run again redoes only its unfinished shards and
ends with the output of an uninterrupted run; nothing half-written is left where DVC looks."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pretrain.config.tokens import TokenizerConfig
from pretrain.io import DocumentWriter, shard_name
from pretrain.sources.builtin import stdlib_files
from pretrain.tokens.tokenizer import train_bpe

ROOT = Path(__file__).resolve().parents[2]
SHARDS = 6
PARAMS = "executor:\n  workers: 2\npack:\n  seq_len: 64\n"
COMMANDS = {
    "clean": ["--input", "raw", "--out", "clean", "--work", "work/clean", "--metrics", "clean.json",
              "--scores", "scores.json"],
    "dedup": ["--input", "raw", "--out", "dedup", "--work", "work/dedup", "--metrics", "dedup.json"],
    "pack": ["--input", "raw", "--tokenizer", "tokenizer", "--out", "packed", "--tokens", "tokens",
             "--work", "work/pack", "--metrics", "pack.json"],
}
OUTPUTS = {"clean": ["clean", "clean.json", "scores.json"], "dedup": ["dedup", "dedup.json"],
           "pack": ["packed", "tokens", "pack.json"]}


def make_run(folder: Path, stage: str) -> Path:
    """A run folder: params.yaml and raw/ with SHARDS shards of 12 standard-library files (and,
    for pack, a tokenizer trained on them)."""
    (folder / "raw").mkdir(parents=True)
    (folder / "params.yaml").write_text(PARAMS)
    files = stdlib_files(include_tests=False)[: SHARDS * 12]
    for i in range(SHARDS):
        with DocumentWriter(folder / "raw" / shard_name(i)) as writer:
            for rel, path in files[i * 12: (i + 1) * 12]:
                writer.write({"id": rel, "text": path.read_text(encoding="utf-8"), "source": "stdlib",
                              "provenance": rel})
    if stage == "pack":
        texts = (path.read_text(encoding="utf-8") for _, path in files)
        train_bpe(TokenizerConfig(vocab_size=300), texts).save_pretrained(str(folder / "tokenizer"))
    return folder


def start(folder: Path, stage: str) -> subprocess.Popen:
    # Output to a file, not a pipe: a pipe that a left-over worker holds open never ends.
    with open(log(folder), "a") as handle:
        return subprocess.Popen([sys.executable, str(ROOT / "stages" / f"{stage}.py"), *COMMANDS[stage]],
                                cwd=folder, stdout=handle, stderr=subprocess.STDOUT)


def log(folder: Path) -> Path:
    return folder.parent / f"{folder.name}.log"


def finish(folder: Path, stage: str) -> None:
    process = start(folder, stage)
    assert process.wait(timeout=600) == 0, log(folder).read_text()[-3000:]
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


def outputs(folder: Path, stage: str) -> dict[str, bytes]:
    paths = [folder / name for name in OUTPUTS[stage]]
    files = [f for p in paths for f in (sorted(p.rglob("*")) if p.is_dir() else [p]) if f.is_file()]
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in files}


def markers(folder: Path, stage: str) -> list[Path]:
    return sorted((folder / "work" / stage).rglob("part-*.done.json"))


@pytest.mark.parametrize("stage", sorted(COMMANDS))
def test_a_killed_stage_reruns_only_its_unfinished_shards_and_ends_as_an_uninterrupted_run(tmp_path, stage):
    whole = make_run(tmp_path / "whole", stage)
    finish(whole, stage)

    killed = make_run(tmp_path / "killed", stage)
    process = start(killed, stage)
    deadline = time.monotonic() + 300
    while not markers(killed, stage) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    workers = children(process.pid)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = markers(killed, stage)
    # The killed stage's worker processes (shard tasks in flight) end too, within seconds.
    assert gone(workers, 15), f"worker processes {workers} outlived the killed stage"
    if not 0 < len(done) < SHARDS:
        pytest.fail(f"killed with {len(done)} of {SHARDS} shards done: the shards are too quick or too slow "
                    "for this test on this machine")
    # Nothing of the output yet, not even a temporary copy beside it.
    inputs = ["params.yaml", "raw", "work"] + (["tokenizer"] if stage == "pack" else [])
    assert sorted(p.name for p in killed.iterdir()) == sorted(inputs)
    assert len(workers) >= 2  # executor.workers: 2 (and Python's resource tracker)
    work = done[0].parent
    names = [m.name.split(".")[0] for m in done]
    finished = {name: os.stat(work / f"{name}.parquet").st_ino for name in names} if stage == "clean" else {}
    before = log(killed).read_text()

    finish(killed, stage)
    assert outputs(killed, stage) == outputs(whole, stage)
    # The rerun's first progress bar starts at the shards the killed run finished.
    rerun = log(killed).read_text()[len(before):]
    first = re.search(r"(\d+)/(\d+) \[", rerun)
    assert first and (int(first[1]), int(first[2])) == (len(done), SHARDS), rerun[:500]
    for name in (shard_name(i)[: -len(".parquet")] for i in range(SHARDS)) if finished else ():
        reused = os.stat(killed / "clean" / f"{name}.parquet").st_ino == finished.get(name)
        assert reused == (name in finished), name  # finished shards were linked into place, not rerun
    assert list((killed / "work" / stage).iterdir()) == []
    assert sorted(p.name for p in killed.iterdir()) == sorted(p.name for p in whole.iterdir())
