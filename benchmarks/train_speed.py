"""Training speed, like for like: tokens/s and MFU of pretrain's loop against the HF Trainer and
a plain loop, on the same cores, threads and precision.

Same model (pretrain.model.build.init_model of each preset, with a byte-level BPE tokenizer of 8,192
tokens trained by pretrain.tokens.tokenizer), same packed rows (pretrain.tokens.pack, sequence length 256),
same micro-batch (8), AdamW, gradient clipping at 1.0, the same torch threads for every contender
(``--threads``, default every core this process may use; OMP/MKL threads and inductor's compile
workers set alike), torch.compile on and off. The precision is the one ``train.precision: auto``
picks on this machine (fp32 on a CPU without AVX-512 BF16 / AMX), plus bf16 where the CPU has
it (``--precision`` to choose). Each contender runs ``--warmup`` optimizer steps (compilation
included) that are not timed, then ``--steps`` timed ones:

- hf-trainer: the course's set-up, ``transformers.Trainer`` with ``bf16`` as the precision says,
  ``torch_compile``, a torch Dataset of the packed rows with labels = input_ids, no evaluation
  and no saving (the course also turns on gradient checkpointing, which trades speed for
  memory; it is off here so that all contenders do the same work). Data-loader workers: 0 for
  every contender (on 2 shared cores a worker process only competes with the training).
  Timed from the callback at the end of the last warm-up step to the end of the last step.
- plain-loop: a minimal PyTorch loop: AdamW (torch's default form), autocast when bf16, clip,
  step; nanoGPT's train.py on CUDA (TF32, fused AdamW, pinned asynchronous copies;
  benchmarks/gpu_train.py runs it there).
- pretrain: ``pretrain.train.loop.train`` itself, as the train stage runs it (deterministic CPU
  kernels, DVCLive logging every step, the model saved at the end). Its time is the loop's
  wall-clock (``train_runtime_s``) minus the warm-up steps' own times from its per-step
  ``train/tokens_per_second`` log. ``--ablate`` adds pretrain with one of its CPU measures
  undone, to show what each is worth: ``pretrain:fill-memory`` (deterministic mode's NaN fill
  of new tensors back on), ``pretrain:unfused-adamw`` (torch's default AdamW instead of the
  fused kernel), ``pretrain:mmap-heap`` (glibc's malloc as it comes: a fresh mmap for every
  large tensor; pretrain.runtime.reuse_freed_memory off), and ``pretrain:nondeterministic``
  (torch's deterministic algorithms off: the price of bit-exact CPU runs). An ablation's "vs
  best other" is against the best of the three contenders, pretrain itself included.

Every run is a fresh process (accelerate's state and torch.compile's caches are per process);
its whole wall-clock (start-up, imports, model load, compilation, saving) and its peak resident
memory (``wait4``'s ru_maxrss) are printed beside the timed window. Rounds run the contenders
in turn. Each line reports a contender's best window over the rounds (another process on a
shared machine only ever slows a run down, so the fastest window is the least disturbed one, as
``timeit`` takes the minimum) and the median over rounds of its ratio to the best other
contender of the same round (paired: a busy neighbour slows both alike). MFU = tokens/s x FLOPs per
token (pretrain.train.flops.flops_per_token) / one peak for every contender: the matmul peak of the
precision measured here (pretrain.train.flops.measured_peak_flops), and the nominal peak of
pretrain.train.peaks where the CPU's clock is known. Only the project's own dependencies are
needed:

    python benchmarks/train_speed.py                      # small preset, compiled and eager
    python benchmarks/train_speed.py --ablate --modes eager
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import statistics
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

SEQ_LEN, MICRO_BATCH, VOCAB = 256, 8, 8192
CONTENDERS = ("hf-trainer", "plain-loop", "pretrain")
RESULT = "RESULT "
"""How a worker's line of (window seconds, step seconds) starts, among its logs."""
ABLATIONS = ("pretrain:fill-memory", "pretrain:unfused-adamw", "pretrain:mmap-heap", "pretrain:nondeterministic")
LEARNING_RATE, WEIGHT_DECAY, BETAS = 2e-3, 0.1, (0.9, 0.95)


# --- the shared model and data ---------------------------------------------------------------


def prepare(root: Path, presets: list[str], documents: int) -> dict[str, dict[str, str]]:
    """A corpus of standard-library files, its tokenizer, packed rows and one initial model
    per preset, all made with the project's own functions."""
    from pretrain.config.executor import ExecutorConfig
    from pretrain.config.model import ModelConfig
    from pretrain.config.tokens import PackConfig, TokenizerConfig
    from pretrain.io import DocumentWriter, iter_documents
    from pretrain.model.build import init_model
    from pretrain.sources.builtin import stdlib_files
    from pretrain.token_store import read_manifest, write_manifest
    from pretrain.tokens.pack import pack
    from pretrain.tokens.tokenizer import train_bpe

    corpus = root / "documents.parquet"
    with DocumentWriter(corpus) as writer:
        for rel, path in stdlib_files(include_tests=False)[:documents]:
            writer.write({"id": rel, "text": path.read_text(encoding="utf-8"), "source": "stdlib",
                          "provenance": rel})
    tokenizer = train_bpe(TokenizerConfig(vocab_size=VOCAB), (d["text"] for d in iter_documents(corpus)))
    pack(PackConfig(seq_len=SEQ_LEN, val_fraction=0.05), ExecutorConfig(), tokenizer, corpus, root / "packed",
         root / "pack-work", root / "tokens")
    # pretrain's run gets the training rows only: no validation pass inside its timed loop
    (root / "train_only").mkdir()
    manifest = read_manifest(root / "tokens")
    for shard in manifest["splits"]["train"]["shards"]:
        for suffix in (".bin", ".idx"):
            (root / "train_only" / f"{shard['name']}{suffix}").symlink_to(root / "tokens" / f"{shard['name']}{suffix}")
    write_manifest(root / "train_only", SEQ_LEN, np.dtype(manifest["dtype"]), manifest["vocab_size"],
                   {"train": manifest["splits"]["train"]["shards"]})
    setups = {}
    for preset in presets:
        init_model(ModelConfig(preset=preset), tokenizer, root / f"init-{preset}")
        setups[preset] = {"model": str(root / f"init-{preset}"), "data": str(root / "train_only")}
    return setups


# --- the contenders (each runs in its own process) -------------------------------------------


def run_hf_trainer(model_dir: str, data_dir: str, warmup: int, steps: int, compile: bool,
                   work: Path, precision: str = "bf16", micro_batch: int = MICRO_BATCH,
                   log_every: int | None = None) -> tuple[float, list[float]]:
    from transformers import (
        AutoModelForCausalLM,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )
    from transformers.trainer_callback import PrinterCallback

    from pretrain.runtime import load_rows, synchronize

    class Rows(torch.utils.data.Dataset):  # the course's CustomDataset: labels = input_ids
        def __init__(self, rows):
            self.rows = torch.from_numpy(rows)

        def __len__(self):
            return len(self.rows)

        def __getitem__(self, i):
            return {"input_ids": self.rows[i], "labels": self.rows[i]}

    class Clock(TrainerCallback):
        marks: dict[int, float] = {}

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in (warmup, warmup + steps):  # the window's ends: the work done
                synchronize(args.device)
            self.marks[state.global_step] = time.perf_counter()

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, use_safetensors=True)
    args = TrainingArguments(
        output_dir=str(work), max_steps=warmup + steps, per_device_train_batch_size=micro_batch,
        learning_rate=LEARNING_RATE, weight_decay=WEIGHT_DECAY, adam_beta1=BETAS[0],
        adam_beta2=BETAS[1], lr_scheduler_type="linear", warmup_steps=warmup, max_grad_norm=1.0,
        bf16=precision == "bf16", use_cpu=not torch.cuda.is_available(), torch_compile=compile, eval_strategy="no",
        save_strategy="no", logging_steps=log_every or 3, report_to="none", dataloader_num_workers=0,
        disable_tqdm=True, seed=0)
    trainer = Trainer(model=model, args=args, train_dataset=Rows(load_rows(Path(data_dir), "train")),
                      callbacks=[Clock()])
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    ends = [Clock.marks[step] for step in range(warmup, warmup + steps + 1)]
    return ends[-1] - ends[0], [b - a for a, b in zip(ends, ends[1:])]


def run_plain_loop(model_dir: str, data_dir: str, warmup: int, steps: int, compile: bool,
                   work: Path, precision: str = "bf16", micro_batch: int = MICRO_BATCH,
                   log_every: int | None = None) -> tuple[float, list[float]]:
    """nanoGPT's train.py reduced to its step: on CUDA with TF32 allowed, fused AdamW and
    pinned-memory asynchronous copies; ``loss.item()`` only every ``log_every`` steps. Step
    times are waited for only at the window's ends (on a GPU the others are launch times)."""
    from transformers import AutoModelForCausalLM

    from pretrain.runtime import (
        allow_tf32,
        batch_order,
        load_rows,
        pick_device,
        synchronize,
    )

    rows = load_rows(Path(data_dir), "train")
    device = pick_device()
    allow_tf32(device)  # nanoGPT's torch.backends.cuda.matmul.allow_tf32 = True
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, use_safetensors=True)
    model.config.use_cache = False
    model.to(device).train()
    forward = torch.compile(model) if compile else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, betas=BETAS, weight_decay=WEIGHT_DECAY,
                                  fused=True if device.type == "cuda" else None)
    batches = batch_order(len(rows), micro_batch, seed=0)
    ends = []
    for step in range(warmup + steps):
        if step == warmup:
            synchronize(device)
            ends.append(time.perf_counter())
        ids = torch.from_numpy(rows[next(batches)])
        if device.type == "cuda":
            ids = ids.pin_memory().to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = forward(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if log_every and (step + 1) % log_every == 0:
            loss.item()  # nanoGPT's log step: the one host sync
        if step == warmup + steps - 1:
            synchronize(device)
        if step >= warmup:
            ends.append(time.perf_counter())
    return ends[-1] - ends[0], [b - a for a, b in zip(ends, ends[1:])]


def run_pretrain(model_dir: str, data_dir: str, warmup: int, steps: int, compile: bool,
                 work: Path, precision: str = "bf16", micro_batch: int = MICRO_BATCH,
                 log_every: int | None = None, ablate: str | None = None) -> tuple[float, list[float]]:
    """``train`` itself. Every logged ``train/tokens_per_second`` covers the steps since the
    previous log (the loop waits for the device only there): ``log_every`` must divide
    ``warmup`` and ``steps``; each step of a window gets the window's mean time. ``ablate``:
    one of ABLATIONS, undoing that measure in this process."""
    from pretrain.config.train import TrainConfig
    from pretrain.token_store import read_manifest
    from pretrain.train.loop import train

    undo(ablate)
    log_every = log_every or 1
    if warmup % log_every or steps % log_every:
        raise SystemExit(f"--log-every {log_every} must divide --warmup {warmup} and --steps {steps}")
    cfg = TrainConfig(max_steps=warmup + steps, warmup_steps=warmup, learning_rate=LEARNING_RATE,
                      weight_decay=WEIGHT_DECAY, beta1=BETAS[0], beta2=BETAS[1],
                      micro_batch_size=micro_batch, precision=precision, compile=compile,
                      log_every=log_every, eval_every=0, checkpoint_every=0, seed=0)
    report = train(cfg, Path(model_dir), Path(data_dir), work / "trained", work / "live")
    per_log = (work / "live" / "plots" / "metrics" / "train" / "tokens_per_second.tsv").read_text()
    step_tokens = micro_batch * read_manifest(Path(data_dir))["seq_len"]
    seconds = [step_tokens / float(line.split("\t")[-1])
               for line in per_log.splitlines()[1:] for _ in range(log_every)]
    return report["train_runtime_s"] - sum(seconds[:warmup]), seconds[warmup:]


def undo(ablation: str | None) -> None:
    """Put back, in this process, what one of the loop's CPU measures replaced (ABLATIONS)."""
    import contextlib

    import pretrain.runtime
    import pretrain.train.ddp
    import pretrain.train.loop

    if ablation == "pretrain:fill-memory":
        plain = pretrain.runtime.deterministic_algorithms

        @contextlib.contextmanager
        def filling(enabled: bool):
            with plain(enabled):
                torch.utils.deterministic.fill_uninitialized_memory = True
                yield

        pretrain.train.loop.deterministic_algorithms = filling
    elif ablation == "pretrain:unfused-adamw":
        pretrain.train.ddp.fused_optimizer = lambda device: False
    elif ablation == "pretrain:nondeterministic":
        plain = pretrain.runtime.deterministic_algorithms
        pretrain.train.loop.deterministic_algorithms = lambda enabled: plain(False)
    elif ablation == "pretrain:mmap-heap":
        pretrain.train.loop.reuse_freed_memory = lambda enabled: pretrain.runtime.reuse_freed_memory(False)


WORKERS = {"hf-trainer": run_hf_trainer, "plain-loop": run_plain_loop, "pretrain": run_pretrain,
           **{name: functools.partial(run_pretrain, ablate=name) for name in ABLATIONS}}
"""Contender -> function returning (seconds of the timed steps, each timed step's seconds)."""


# --- orchestration ---------------------------------------------------------------------------


@dataclasses.dataclass
class Result:
    """One contender in one setting (preset, precision, compiled or eager): per round, tokens/s
    over the timed window and at the median step, the process's whole wall-clock and its peak
    resident memory."""

    preset: str
    precision: str
    mode: str
    contender: str
    windows: list[float] = dataclasses.field(default_factory=list)
    median_steps: list[float] = dataclasses.field(default_factory=list)
    process_s: list[float] = dataclasses.field(default_factory=list)
    peak_rss_mb: list[float] = dataclasses.field(default_factory=list)

    @property
    def setting(self) -> tuple[str, str, str]:
        return self.preset, self.precision, self.mode

    def add(self, window_s: float, step_s: list[float], process_s: float, rss_kb: int) -> None:
        tokens_per_step = MICRO_BATCH * SEQ_LEN
        self.windows.append(len(step_s) * tokens_per_step / window_s)
        self.median_steps.append(tokens_per_step / statistics.median(step_s))
        self.process_s.append(process_s)
        self.peak_rss_mb.append(rss_kb / 1024)


def worker_env(threads: int) -> dict[str, str]:
    """The environment of every contender's process: the same OpenMP / MKL threads, and one
    inductor compile worker (a compile pool would compete with the timed steps)."""
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
            "TORCHINDUCTOR_COMPILE_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def run_worker(result: Result, setup: dict[str, str], args: argparse.Namespace, steps: int) -> None:
    """One contender in a fresh process, timed whole (start to exit) and its peak memory read
    from ``wait4``."""
    command = [sys.executable, __file__, "--worker", result.contender, "--model", setup["model"],
               "--data", setup["data"], "--warmup", str(args.warmup), "--steps", str(steps),
               "--precision", result.precision, "--threads", str(args.threads)]
    command += [] if result.mode == "compiled" else ["--modes", "eager"]
    began = time.perf_counter()
    # one pipe: reading stdout to its end while stderr's pipe filled up would block both processes
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=worker_env(args.threads))
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - began
    if process.returncode:
        raise SystemExit(f"{result.contender} failed:\n{out[-3000:]}")
    window, step_times = json.loads(next(line[len(RESULT):] for line in reversed(out.splitlines())
                                          if line.startswith(RESULT)))
    result.add(window, step_times, elapsed, usage.ru_maxrss)


def paired_ratio(r: Result, results: list[Result]) -> float:
    """Median over rounds of ``r``'s window / the best other contender's window in the same round
    (ablations are not contenders: they are compared with the others, not the others with them)."""
    others = [o for o in results if o.setting == r.setting and o is not r and o.contender in CONTENDERS]
    return statistics.median(w / max(o.windows[i] for o in others) for i, w in enumerate(r.windows))


def report(results: list[Result], peaks: dict[str, tuple[float, float | None]], flops: dict[str, float]) -> None:
    """One table per (preset, precision, mode); one line per contender."""
    for setting in dict.fromkeys(r.setting for r in results):
        preset, precision, mode = setting
        measured, nominal = peaks[precision]
        print(f"\n{preset} preset, {precision}, {mode}: MFU against the measured {precision} matmul peak "
              f"{measured / 1e9:,.0f} GFLOP/s" + (f" (nominal {nominal / 1e9:,.0f})" if nominal else ""))
        print(f"{'trainer':<24}{'tokens/s':>10}{'MFU':>8}{'vs best other':>15}{'paired':>8}"
              f"{'median step':>13}{'process s':>11}{'peak MB':>9}   windows of all rounds")
        group = [r for r in results if r.setting == setting]
        for r in group:
            best = max(r.windows)
            others = [max(o.windows) for o in group if o is not r and o.contender in CONTENDERS]
            print(f"{r.contender:<24}{best:>10,.0f}{best * flops[preset] / measured:>8.2%}"
                  f"{best / max(others):>14.2f}x{paired_ratio(r, group):>7.2f}x"
                  f"{statistics.median(r.median_steps):>13,.0f}{statistics.median(r.process_s):>11.1f}"
                  f"{max(r.peak_rss_mb):>9,.0f}   " + " ".join(f"{w:,.0f}" for w in r.windows))


def default_precisions() -> list[str]:
    """What ``train.precision: auto`` picks on this CPU, and bf16 too where the CPU has it."""
    from pretrain.runtime import autocast_dtype, cpu_has_bf16, precision_name

    chosen = precision_name(autocast_dtype("auto", torch.device("cpu")))
    return list(dict.fromkeys([chosen] + (["bf16"] if cpu_has_bf16() else [])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["small"])
    parser.add_argument("--precision", nargs="+", choices=["fp32", "bf16"],
                        help="default: what train.precision auto picks here, plus bf16 where the CPU has it")
    parser.add_argument("--modes", nargs="+", choices=["compiled", "eager"], default=["compiled", "eager"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps (compilation included)")
    parser.add_argument("--steps", type=int, nargs="+", default=[20],
                        help="timed steps, one number per preset (or one for all)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="torch threads of every contender (default: every usable core)")
    parser.add_argument("--ablate", action="store_true", help="also run pretrain with each CPU measure undone")
    parser.add_argument("--documents", type=int, default=300, help="standard-library files in the corpus")
    parser.add_argument("--json", type=Path, help="also write every measurement to this file")
    parser.add_argument("--worker", choices=list(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        with tempfile.TemporaryDirectory() as work:
            window, steps = WORKERS[args.worker](args.model, args.data, args.warmup, args.steps[0],
                                                 "compiled" in args.modes, Path(work), args.precision[0])
        print(RESULT + json.dumps([window, steps]))
        return
    run_all(args)


def run_all(args: argparse.Namespace) -> None:
    from machine import machine
    from transformers import AutoConfig

    from pretrain.train.flops import flops_per_token, measured_peak_flops
    from pretrain.train.peaks import nominal_peak

    precisions = args.precision or default_precisions()
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    steps = dict(zip(args.presets, args.steps * len(args.presets) if len(args.steps) == 1 else args.steps))
    contenders = CONTENDERS + (ABLATIONS if args.ablate else ())
    print(f"{machine()}; {time.strftime('%Y-%m-%d')}; torch {torch.__version__}, {args.threads} threads "
          f"for every contender; sequence length {SEQ_LEN}, micro-batch {MICRO_BATCH}; "
          f"{', '.join(precisions)}; {' and '.join(args.modes)}; {args.rounds} interleaved rounds", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        setups = prepare(Path(tmp), args.presets, args.documents)
        flops = {p: flops_per_token(AutoConfig.from_pretrained(s["model"]), SEQ_LEN) for p, s in setups.items()}
        peaks = {}
        for name in precisions:
            nominal = nominal_peak(torch.device("cpu"), dtypes[name], None)
            peaks[name] = (measured_peak_flops(dtypes[name], "cpu", seconds=2.0),
                           nominal.flops if nominal else None)
        results = [Result(p, name, mode, c) for p in args.presets for name in precisions for mode in args.modes
                   for c in contenders]
        for round_ in range(args.rounds):
            for r in results:
                run_worker(r, setups[r.preset], args, steps[r.preset])
                print(f"round {round_ + 1}: {r.preset} {r.precision} {r.mode} {r.contender}: "
                      f"{r.windows[-1]:,.0f} tokens/s (median step {r.median_steps[-1]:,.0f}), "
                      f"process {r.process_s[-1]:.1f} s, {r.peak_rss_mb[-1]:,.0f} MB", flush=True)
    report(results, peaks, flops)
    if args.json:
        args.json.write_text(json.dumps({"peaks": peaks, "flops_per_token": flops,
                                         "results": [dataclasses.asdict(r) for r in results]}, indent=2))


if __name__ == "__main__":
    main()
