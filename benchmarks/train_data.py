"""The train stage's memory and speed against the size of its data: the token store read a batch
at a time (``pretrain.token_store.PackedRows``) against the in-memory loader it replaced (every
packed row read from the Parquet shards into one int64 array, ``np.concatenate`` of pyarrow
batches, as ``runtime.load_rows`` did before the store).

Data: the training rows of the default pipeline's ``data/packed`` (real text: ``dvc repro pack``
first), repeated in order until each size (millions of packed tokens) is reached, and written
through pack's own row writer (``pretrain.tokens.rows.RowShardWriter``) as Parquet row shards and
the token store side by side. Each size and loader trains in a fresh process: the small model of
``models/init`` (``dvc repro init-model``), ``train`` params as in ``params.yaml`` except
``--steps`` optimizer steps, no validation, no torch.compile (its compilation would dominate a
short run). Each line: peak RSS of the training process (``ru_maxrss``: the rows, the model,
the optimizer, the libraries), the loop's tokens/s (``metrics/train.json``'s ``tokens_per_second``)
and the process's wall time (start-up and data loading included), with ratios against the
smallest size and against the in-memory loader of the same size. With ``--rounds`` above 1 the
loaders take turns and each line keeps a loader's fastest round (another process on a shared
machine only ever slows a run down, as ``timeit`` takes the minimum) and its largest RSS.

    python benchmarks/train_data.py                       # 5, 50 and 300 M tokens, 40 steps, 2 rounds
    python benchmarks/train_data.py --sizes 5,50 --steps 20
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine  # benchmarks/machine.py: run as python benchmarks/<name>.py

ROOT = Path(__file__).resolve().parents[1]
LOADERS = ("in-memory", "token-store")


def write_corpus(source: Path, folder: Path, million_tokens: float) -> int:
    """Parquet rows in ``folder/packed`` and the token store in ``folder/tokens``, of the
    training rows of ``source`` repeated to ``million_tokens``; returns the rows written."""
    import numpy as np
    import pyarrow.parquet as pq

    from pretrain.io import row_shards
    from pretrain.token_store import token_dtype, write_manifest
    from pretrain.tokens.rows import RowShardWriter

    rows = np.concatenate([pq.read_table(p).column("input_ids").combine_chunks().flatten().to_numpy()
                           for p in row_shards(source, "train")])
    seq_len = len(pq.read_table(row_shards(source, "train")[0]).column("input_ids")[0])
    dtype = token_dtype(int(rows.max()) + 1)
    (folder / "packed").mkdir(parents=True)
    (folder / "tokens").mkdir()
    target = int(million_tokens * 1e6) // seq_len * seq_len
    writer = RowShardWriter(folder / "packed", "train", seq_len, rows_per_shard=(128 * 10**6) // (4 * seq_len),
                            store_folder=folder / "tokens", store_dtype=dtype)
    written = 0
    while written < target:
        piece = rows[: target - written]
        writer.add(piece)
        written += len(piece)
    counts = writer.close()
    write_manifest(folder / "tokens", seq_len, dtype, int(rows.max()) + 1, {"train": writer.store_shards})
    return counts["rows"]


def child(loader: str, data: Path, model: Path, steps: int, out: Path) -> None:
    """One training run in this process; prints its figures as one JSON line."""
    import numpy as np

    import pretrain.train.loop as loop
    from pretrain.config import load_section
    from pretrain.io import iter_batches, row_shards

    if loader == "in-memory":  # the loader before the token store: every row, int64, in memory
        def in_memory(folder, split):
            chunks = [batch.column(0).flatten().to_numpy().reshape(-1, len(batch.column(0)[0])).astype(np.int64)
                      for path in row_shards(folder.parent / "packed", split)
                      for batch in iter_batches(path, columns=["input_ids"], batch_size=8192)]
            return np.concatenate(chunks)
        loop.PackedRows = in_memory
    cfg = load_section("train", ROOT / "params.yaml")
    # The warm-up must end before the last step (train() refuses it otherwise): a short run shortens it.
    cfg = dataclasses.replace(cfg, max_steps=steps, warmup_steps=min(cfg.warmup_steps, steps - 1), eval_every=0,
                              compile=False, log_every=steps, report_to=[])
    report = loop.train(cfg, model, data / "tokens", out / "model", out / "live")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"rss_mb": rss, "tokens_per_second": report["tokens_per_second"]}))


def measure(loader: str, data: Path, model: Path, steps: int, work: Path) -> dict:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, __file__, "--child", loader, "--data", str(data), "--model", str(model),
                             "--steps", str(steps), "--out", str(work)], capture_output=True, text=True, cwd=ROOT)
    if result.returncode:
        raise SystemExit(f"{loader} at {data}: failed:\n{result.stderr[-3000:]}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    return {**figures, "wall_s": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5,50,300", help="millions of packed training tokens")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--packed", type=Path, default=ROOT / "data" / "packed")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "init")
    parser.add_argument("--child", choices=LOADERS)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.data, args.model, args.steps, args.out)
    for path, stage in ((args.packed, "pack"), (args.model, "init-model")):
        if not path.exists():
            raise SystemExit(f"{path}: not found; run `dvc repro {stage}` first")
    print(f"machine: {machine()}; {args.steps} steps of the model in {args.model}, no compile")
    print(f"{'M tokens':>8} {'loader':<12} {'peak RSS MB':>11} {'x smallest':>10} {'tokens/s':>9} "
          f"{'x in-memory':>11} {'wall s':>7}")
    table = []
    with tempfile.TemporaryDirectory(prefix="train-data-") as tmp:
        for size in [float(s) for s in args.sizes.split(",")]:
            data = Path(tmp) / f"size-{size:g}"
            rows = write_corpus(args.packed, data, size)
            runs = {loader: [] for loader in LOADERS}
            for k in range(args.rounds):  # the loaders take turns
                for loader in LOADERS:
                    runs[loader].append(measure(loader, data, args.model, args.steps, data / f"run-{loader}-{k}"))
            for loader in LOADERS:
                best = max(runs[loader], key=lambda r: r["tokens_per_second"])
                row = {"size": size, "rows": rows, "loader": loader, **best,
                       "rss_mb": max(r["rss_mb"] for r in runs[loader])}
                table.append(row)
                first = next(r for r in table if r["loader"] == loader)
                memory = next(r for r in table if r["size"] == size and r["loader"] == "in-memory")
                print(f"{size:>8g} {loader:<12} {row['rss_mb']:>11,.0f} {row['rss_mb'] / first['rss_mb']:>9.2f}x "
                      f"{row['tokens_per_second']:>9,.0f} {row['tokens_per_second'] / memory['tokens_per_second']:>10.3f}x "
                      f"{row['wall_s']:>7.1f}", flush=True)
            subprocess.run(["rm", "-rf", str(data)], check=True)


if __name__ == "__main__":
    main()
