"""The data stages at three corpus sizes: wall time and peak memory per stage and executor.

Corpora (real text no one here wrote): the built-in corpus (standard library, reference manual,
docstrings, package descriptions: about 16 MB of text), then the ``.py`` files of this Python's
installed packages (site-packages), copied in a fixed order until each larger size is reached,
read as a ``files`` source. Each size is downloaded once; then download's shards go through
clean, dedup, tokenizer and pack with each executor setting in turn:

  local-1   executor: {name: local, workers: 1}
  local-2   executor: {name: local, workers: 2}
  ray-2     executor: {name: ray, workers: 2}   (a local Ray cluster the stage starts, 2 CPUs)

Each stage runs as the pipeline runs it (``python stages/<stage>.py``), with fresh outputs and
work folders. Peak RSS is the largest sum, over the stage's process and all its descendants (pool
workers, Ray's raylet and workers), of their resident set sizes, sampled every 50 ms with
psutil (pages shared between processes count once per process: an upper bound). Time is wall
time of the whole stage process, start-up included.

Pack against its floor: the raw ``tokenizers`` ``encode_batch`` of the same texts with the same
tokenizer on the same cores (its own thread pool: every core), in memory, no I/O: pack's tokens
per second over that, per size.

The machine is printed first; read the ratios, not the absolute numbers, on a shared machine.

    python benchmarks/scale.py                       # sizes 16, 100, 300 (MB of text)
    python benchmarks/scale.py --sizes 16,64 --executors local-1,local-2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import yaml

from machine import machine, watch  # benchmarks/machine.py: run as python benchmarks/<name>.py

ROOT = Path(__file__).resolve().parents[1]
EXECUTORS = {"local-1": {"name": "local", "workers": 1}, "local-2": {"name": "local", "workers": 2},
             "ray-2": {"name": "ray", "workers": 2}}
STAGES = ("clean", "dedup", "tokenizer", "pack")


def run_stage(project: Path, stage: str, args: list[str]) -> tuple[float, int]:
    """Run ``stages/<stage>.py`` in ``project``: (wall seconds, peak RSS bytes)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, str(ROOT / "stages" / f"{stage}.py"), *args],
                               cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    box, thread = watch(process)
    output, _ = process.communicate()
    wall = time.perf_counter() - start
    thread.join()
    if process.returncode:
        raise SystemExit(f"{stage} failed in {project}:\n{output[-3000:]}")
    return wall, box["rss"]


def python_files(limit_bytes: int, dest: Path) -> int:
    """Copy .py files of site-packages (sorted paths) into ``dest`` until ``limit_bytes``."""
    site = Path(sysconfig.get_paths()["purelib"])
    copied = 0
    for path in sorted(site.rglob("*.py")):
        if copied >= limit_bytes or not path.is_file():
            break
        target = dest / path.relative_to(site)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        copied += path.stat().st_size
    return copied


def make_project(base: Path, size_mb: int, smallest: bool) -> Path:
    """A folder with params.yaml and data/sources for one corpus size; download run in it."""
    project = base / f"size-{size_mb}"
    (project / "data" / "sources").mkdir(parents=True)
    (project / "models" / "bases").mkdir(parents=True)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    if not smallest:
        python_files(size_mb * 10**6, project / "data" / "sources" / "site-packages")
        params["download"].update(source="files", path="data/sources/site-packages")
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_stage(project, "download", ["--sources", "data/sources", "--out", "data/raw", "--url-cache",
                                    "data/url_cache", "--metrics", "metrics/download.json"])
    return project


def stage_args(stage: str, run: str) -> list[str]:
    """The command-line paths of ``stage`` for one run's output folder ``run``."""
    out = f"{run}/{stage}"
    common = ["--metrics", f"{run}/{stage}.json"]
    if stage == "clean":
        return ["--input", "data/raw", "--out", out, "--work", f"{run}/work/clean", *common]
    if stage == "dedup":
        return ["--input", f"{run}/clean", "--out", out, "--work", f"{run}/work/dedup", *common]
    if stage == "tokenizer":
        return ["--input", f"{run}/dedup", "--bases", "models/bases", "--out", out, *common]
    return ["--input", f"{run}/dedup", "--tokenizer", f"{run}/tokenizer", "--out", out,
            "--tokens", f"{run}/tokens", "--work", f"{run}/work/pack", *common]


def raw_encode_rate(project: Path, run: str) -> tuple[float, int]:
    """tokens/s of tokenizers' encode_batch over the dedup texts (every core), and the tokens."""
    import pyarrow.parquet as pq  # noqa: PLC0415
    from tokenizers import Tokenizer  # noqa: PLC0415
    tokenizer = Tokenizer.from_file(str(project / run / "tokenizer" / "tokenizer.json"))
    texts = [t for f in sorted((project / run / "dedup").glob("part-*.parquet"))
             for t in pq.read_table(f, columns=["text"]).column(0).to_pylist()]
    start = time.perf_counter()
    tokens = sum(len(e.ids) for i in range(0, len(texts), 512)
                 for e in tokenizer.encode_batch(texts[i:i + 512], add_special_tokens=False))
    return tokens / (time.perf_counter() - start), tokens


def measure(project: Path, executors: list[str]) -> list[dict]:
    """Every stage with every executor setting in ``project``; one row per (stage, executor)."""
    rows = []
    for name in executors:
        params = yaml.safe_load((project / "params.yaml").read_text())
        params["executor"] = {**params.get("executor", {}), **EXECUTORS[name]}
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        run = f"runs/{name}"
        for stage in STAGES:
            wall, rss = run_stage(project, stage, stage_args(stage, run))
            rows.append({"executor": name, "stage": stage, "seconds": wall, "peak_rss_mb": rss / 2**20})
        report = json.loads((project / run / "pack.json").read_text())
        rows[-1]["tokens"] = report["train"]["tokens"] + report["val"]["tokens"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="16,100,300", help="MB of text; the first is the built-in corpus")
    parser.add_argument("--executors", default=",".join(EXECUTORS))
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    executors = args.executors.split(",")
    print(f"machine: {machine()}; {time.strftime('%Y-%m-%d')}")
    base = args.keep or Path(tempfile.mkdtemp(prefix="pretrain-scale-"))
    table = []
    for k, size in enumerate(sizes):
        project = make_project(base, size, smallest=k == 0)
        text_mb = json.loads((project / "metrics" / "download.json").read_text())["chars"] / 1e6
        rows = measure(project, executors)
        rate, _ = raw_encode_rate(project, f"runs/{executors[0]}")
        for row in rows:
            if row["stage"] == "pack":
                row["vs_raw_encode"] = row["tokens"] / row["seconds"] / rate
            table.append({"size": size, "text_mchars": text_mb, **row})
        print_table([r for r in table if r["size"] == size], sizes[0], table)
    print_summary(table, sizes, executors)
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)


def print_table(rows: list[dict], smallest: int, table: list[dict]) -> None:
    """One size's rows: seconds and peak RSS, with ratios against local-1 and the smallest size."""
    print(f"\n{'size':>5} {'Mchar':>7} {'stage':<10} {'executor':<8} {'seconds':>8} {'x local-1':>9} "
          f"{'RSS MB':>7} {'RSS / smallest':>14} {'pack/raw encode':>15}")
    for r in rows:
        base = next(b for b in rows if b["stage"] == r["stage"] and b["executor"] == "local-1") \
            if any(b["executor"] == "local-1" for b in rows) else r
        small = next((b for b in table if b["size"] == smallest and b["stage"] == r["stage"]
                      and b["executor"] == r["executor"]), r)
        print(f"{r['size']:>5} {r['text_mchars']:>7.1f} {r['stage']:<10} {r['executor']:<8} {r['seconds']:>8.1f} "
              f"{base['seconds'] / r['seconds']:>9.2f} {r['peak_rss_mb']:>7.0f} "
              f"{r['peak_rss_mb'] / small['peak_rss_mb']:>14.2f} "
              f"{r.get('vs_raw_encode', float('nan')):>15.2f}")


def print_summary(table: list[dict], sizes: list[int], executors: list[str]) -> None:
    """Time growth against corpus growth, largest size over smallest, per stage and executor."""
    if len(sizes) < 2:
        return
    print("\nlargest / smallest size: corpus grew", end=" ")
    small = [r for r in table if r["size"] == sizes[0]]
    large = [r for r in table if r["size"] == sizes[-1]]
    growth = large[0]["text_mchars"] / small[0]["text_mchars"]
    print(f"{growth:.1f}x")
    for s, l in zip(small, large):
        print(f"  {s['stage']:<10} {s['executor']:<8} time {l['seconds'] / s['seconds']:5.1f}x "
              f"(time growth / corpus growth {l['seconds'] / s['seconds'] / growth:4.2f}), "
              f"peak RSS {l['peak_rss_mb'] / s['peak_rss_mb']:4.2f}x")


if __name__ == "__main__":
    main()
