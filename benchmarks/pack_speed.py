"""Pack against its floor: the raw ``tokenizers`` ``encode_batch`` of the same texts.

The contenders, each a fresh Python process, on the same documents, tokenizer and threads
(every process inherits this one's environment: ``RAYON_NUM_THREADS`` and
``TOKENIZERS_PARALLELISM`` as the stage gets them, printed in the header):

- raw: ``python -c``: load ``tokenizer.json`` with ``tokenizers.Tokenizer.from_file``, read the
  texts shard by shard in batches of ``pack.batch_documents`` (pyarrow), ``encode_batch`` each
  batch (``add_special_tokens=False``) and count the ids. Nothing written.
- raw-fast: the same with ``encode_batch_fast`` (the same ids, no character offsets), which
  pack uses for the training documents.
- stage: ``python stages/pack.py`` as dvc.yaml runs it (params.yaml of this repository, so the
  executor's default workers), with fresh outputs and work folder: start-up (imports, params
  validation), worker processes, rows, Parquet and token store included.
- in-process: ``pretrain.tokens.pack.pack`` alone, timed inside its process after the imports;
  set against raw's own time after its imports (tokenizer load, reading, encoding).
- stage (baseline), with ``--baseline other/src``: the stage with another version of the library
  (before and after a change, in the same rounds).

Tokens per second are the raw count of text ids (no BOS/EOS) over each contender's seconds, so
a ratio is a ratio of times. CPU seconds (user + system of the whole process tree) are the work
done, which other jobs on a shared machine disturb less than wall time. Peak RSS:
``getrusage(RUSAGE_CHILDREN).ru_maxrss`` in a wrapper process around each contender (the largest
single process of its tree, pack's pool workers included: the wrapper is their subreaper and
waits for them all), and the largest sum over the tree sampled every 50 ms
(benchmarks/scale.py ``peak_rss``; shared pages count once per process).

Corpora: the pack stage's input (``data/dedup``), and the same shards repeated ``--repeat``
times (more shards of the same sizes: memory should not grow with their number). The rounds
alternate the contenders, in the order above, on each corpus in turn; the table gives the
median of each and the median of the per-round ratios.

    python benchmarks/pack_speed.py --data data --rounds 3 --repeat 4
    python benchmarks/pack_speed.py --baseline ../old/src   # and the stage of another version
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from machine import machine  # benchmarks/machine.py: run as python benchmarks/<name>.py
from scale import peak_rss

ROOT = Path(__file__).resolve().parents[1]

RAW = """
import sys, time
start = time.perf_counter()
from pathlib import Path
import pyarrow.parquet as pq
from tokenizers import Tokenizer
begin = time.perf_counter()
tokenizer = Tokenizer.from_file(str(Path(sys.argv[2]) / "tokenizer.json"))
tokens = 0
for shard in sorted(Path(sys.argv[1]).glob("part-*.parquet")):
    for batch in pq.ParquetFile(shard).iter_batches(batch_size=int(sys.argv[3]), columns=["text"]):
        tokens += sum(len(e.ids) for e in tokenizer.encode_batch(batch.column(0).to_pylist(),
                                                                 add_special_tokens=False))
print("RESULT", tokens, time.perf_counter() - begin)
"""

IN_PROCESS = """
import sys, time
from pathlib import Path
from pretrain.config import load_all
from pretrain.tokens.pack import pack
params = load_all("params.yaml")
out = Path(sys.argv[3])
begin = time.perf_counter()
report = pack(params["pack"], params["executor"], Path(sys.argv[2]), Path(sys.argv[1]), out / "packed",
              out / "work", out / "tokens")
print("RESULT", report["train"]["tokens"] + report["val"]["tokens"], time.perf_counter() - begin)
"""

WRAPPER = """
import ctypes, os, resource, subprocess, sys
ctypes.CDLL(None).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: orphaned descendants (pool workers) come here
code = subprocess.run(sys.argv[1:]).returncode
while True:  # reap them, so that their CPU time and peak RSS count
    try:
        os.wait()
    except ChildProcessError:
        break
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print("MAXRSS", usage.ru_maxrss, usage.ru_utime + usage.ru_stime, flush=True)
sys.exit(code)
"""


def run(command: list[str], cwd: Path, env: dict) -> dict:
    """Run ``command`` in a wrapper process: wall seconds, CPU seconds (user + system, the
    whole tree), the RESULT line's seconds (if any), the largest process's and the tree's peak
    RSS in MB."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", WRAPPER, *command], cwd=cwd, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    box, sampler = peak_rss(process)
    output, _ = process.communicate()
    wall = time.perf_counter() - start
    sampler.join()
    if process.returncode:
        raise SystemExit(f"{command[:3]} failed:\n{output[-3000:]}")
    lines = output.splitlines()
    result = next((line.split() for line in lines if line.startswith("RESULT")), None)
    _, maxrss, cpu = next(line.split() for line in lines if line.startswith("MAXRSS"))
    return {"wall": wall, "cpu": float(cpu), "inner": float(result[2]) if result else None,
            "tokens": int(result[1]) if result else None, "rss": int(maxrss) / 1024, "tree": box[0] / 2**20}


def make_corpora(data: Path, work: Path, repeat: int) -> dict[str, Path]:
    """``default``: the dedup shards; ``xN``: each of them ``repeat`` times, as more shards."""
    shards = sorted((data / "dedup").glob("part-*.parquet"))
    large = work / f"x{repeat}"
    large.mkdir()
    for i in range(repeat):
        for j, shard in enumerate(shards):
            target = large / f"part-{i * len(shards) + j:05d}.parquet"
            try:
                os.link(shard, target)
            except OSError:  # another file system
                shutil.copy(shard, target)
    return {"default": data / "dedup", f"x{repeat}": large}


def contenders(corpus: Path, tokenizer: Path, out: Path, batch: int, env: dict,
               baseline: Path | None) -> dict[str, tuple[list[str], dict]]:
    """Each contender's command and environment on ``corpus``, in the order a round runs them."""
    stage = [sys.executable, str(ROOT / "stages" / "pack.py"), "--input", str(corpus), "--tokenizer",
             str(tokenizer), "--out", str(out / "packed"), "--tokens", str(out / "tokens"), "--work",
             str(out / "work"), "--metrics", str(out / "pack.json")]
    runs = {"raw": ([sys.executable, "-c", RAW, str(corpus), str(tokenizer), str(batch)], env),
            "raw-fast": ([sys.executable, "-c", RAW.replace("encode_batch(", "encode_batch_fast("),
                          str(corpus), str(tokenizer), str(batch)], env),
            "stage": (stage, env),
            "in-process": ([sys.executable, "-c", IN_PROCESS, str(corpus), str(tokenizer), str(out)], env)}
    if baseline is not None:
        runs["stage (baseline)"] = (stage, {**env, "PYTHONPATH": str(baseline)})
    return runs


def measure(corpus: Path, tokenizer: Path, work: Path, env: dict, batch: int,
            baseline: Path | None) -> dict[str, dict]:
    """One round on ``corpus``: every contender once, with fresh outputs."""
    out, results = work / "out", {}
    for name, (command, environment) in contenders(corpus, tokenizer, out, batch, env, baseline).items():
        shutil.rmtree(out, ignore_errors=True)
        results[name] = run(command, work, environment)
    shutil.rmtree(out, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data", help="holds dedup/ and tokenizer/")
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="the library on PYTHONPATH")
    parser.add_argument("--baseline", type=Path, help="another version's src/, run as the stage too")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=4)
    args = parser.parse_args()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    env = {**os.environ, "PYTHONPATH": str(args.src.resolve())}
    print(f"# pack vs raw encode_batch | {machine()} | {datetime.date.today()} | load average "
          f"{os.getloadavg()[0]:.2f} | RAYON_NUM_THREADS={os.environ.get('RAYON_NUM_THREADS')} "
          f"TOKENIZERS_PARALLELISM={os.environ.get('TOKENIZERS_PARALLELISM')} | "
          f"executor.workers={params['executor']['workers']} | library {args.src}")
    rows: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="pack_speed_") as tmp:
        work = Path(tmp)
        shutil.copy(ROOT / "params.yaml", work / "params.yaml")
        corpora = make_corpora(args.data.resolve(), work, args.repeat)
        for round_ in range(args.rounds):
            for name, corpus in corpora.items():
                for contender, result in measure(corpus, args.data.resolve() / "tokenizer", work, env,
                                                 params["pack"]["batch_documents"],
                                                 args.baseline and args.baseline.resolve()).items():
                    rows.setdefault((name, contender), []).append(result)
                    print(json.dumps({"round": round_, "corpus": name, "contender": contender,
                                      **{k: round(v, 3) if isinstance(v, float) else v
                                         for k, v in result.items()}}), flush=True)
    print(f"# load average at the end {os.getloadavg()[0]:.2f}")
    print_table(rows, list(corpora), sorted({c for _, c in rows}, key=ORDER.index))


ORDER = ["raw", "raw-fast", "stage", "in-process", "stage (baseline)"]


def print_table(rows: dict[tuple[str, str], list[dict]], corpora: list[str], names: list[str]) -> None:
    """The medians over rounds, and the median of the per-round ratios to raw."""
    print("\n| corpus | tokens | contender | wall s | timed s | tokens/s (wall) | x raw (wall) | "
          "tokens/s (timed) | x raw (timed) | CPU s | x raw (CPU) | peak RSS largest process, MB | "
          "peak RSS tree, MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for corpus in corpora:
        raw = rows[(corpus, "raw")]
        tokens = raw[0]["tokens"]
        for contender in names:
            runs = rows[(corpus, contender)]
            wall = statistics.median(r["wall"] for r in runs)
            timed = statistics.median(r["inner"] for r in runs) if runs[0]["inner"] is not None else None
            ratio = statistics.median(a["wall"] / r["wall"] for a, r in zip(raw, runs))
            timed_ratio = (statistics.median(a["inner"] / r["inner"] for a, r in zip(raw, runs))
                           if timed is not None else None)
            print(f"| {corpus} | {tokens:,} | {contender} | {wall:.2f} | "
                  f"{'' if timed is None else f'{timed:.2f}'} | {tokens / wall:,.0f} | {ratio:.2f} | "
                  f"{'' if timed is None else f'{tokens / timed:,.0f}'} | "
                  f"{'' if timed_ratio is None else f'{timed_ratio:.2f}'} | "
                  f"{statistics.median(r['cpu'] for r in runs):.2f} | "
                  f"{statistics.median(a['cpu'] / r['cpu'] for a, r in zip(raw, runs)):.2f} | "
                  f"{max(r['rss'] for r in runs):,.0f} | {max(r['tree'] for r in runs):,.0f} |")


if __name__ == "__main__":
    main()
