"""GPU training speed in one command: pretrain's loop, the HF Trainer and a nanoGPT-style loop.

The same ~124M-parameter Llama-family model (the ``gpt2-small-ish`` preset: GPT-2 small's shape,
nanoGPT's 50,304 vocabulary) built by pretrain.model.build, the same synthetic token rows
(uniform random ids in a token store, sequence length 1024), the same micro-batch, bf16 autocast,
AdamW, clipping at 1.0 and torch.compile for all three. Each contender runs in a fresh process
(benchmarks/train_speed.py's runners): ``--warmup`` untimed optimizer steps (compilation
included), then ``--steps`` timed ones, the device waited for at both ends of the window.

- pretrain: ``pretrain.train.loop.train`` itself, as the train stage runs it (logging every
  ``--log-every`` steps, where it waits for the device).
- hf-trainer: ``transformers.Trainer`` with ``bf16=True`` and ``torch_compile`` (the course's
  set-up; its default optimizer is fused AdamW), logging every ``--log-every`` steps.
- plain-loop: nanoGPT's train.py step: TF32, fused AdamW, pinned asynchronous copies,
  ``loss.item()`` every ``--log-every`` steps.

Per contender: tokens/s over the timed window, MFU against the GPU's datasheet dense bf16 peak
(pretrain.train.peaks; the figure and its source are printed), peak memory
(``torch.cuda.max_memory_allocated``) and the attention kernel the model ran
(pretrain.train.attention, profiled on one extra step after the run), with each contender's
speed relative to pretrain's. Sized to finish within 5 minutes on one GPU (a target: not yet
timed on a GPU). Without CUDA it stops with one line; ``--device cpu --tiny`` runs the same path
on the debug model (a smoke test, not a measurement):

    python benchmarks/gpu_train.py
    python benchmarks/gpu_train.py --micro-batch 32 --steps 60 --json gpu_train.json
    python benchmarks/gpu_train.py --device cpu --tiny
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from machine import machine  # benchmarks/machine.py: run as python benchmarks/<name>.py
from train_speed import CONTENDERS, WORKERS

LABELS = {"pretrain": "pretrain", "hf-trainer": "HF Trainer", "plain-loop": "nanoGPT-style loop"}
FULL = {"preset": "gpt2-small-ish", "vocab": 50304, "seq_len": 1024, "micro_batch": 16, "warmup": 10,
        "steps": 40, "log_every": 10, "compile": True}
"""One GPU: nanoGPT's GPT-2 small shape and context; 10 warm-up steps cover compilation."""
TINY = {"preset": "debug", "vocab": 512, "seq_len": 64, "micro_batch": 4, "warmup": 2, "steps": 4,
        "log_every": 2, "compile": False}
"""Smoke run (``--tiny``): the debug model, eager, a few steps: the whole path in seconds."""
BUDGET_S = 300


def prepare(root: Path, preset: str, vocab: int, seq_len: int, rows: int) -> tuple[Path, Path]:
    """The initial model (pretrain.model.build, seed 0) with a stand-in tokenizer, and ``rows``
    rows of uniform random token ids in a token store: (model folder, token store folder)."""
    from pretrain.config.model import ModelConfig
    from pretrain.config.tokens import TokenizerConfig
    from pretrain.model.build import build_model, llama_config
    from pretrain.token_store import (
        IndexedShardWriter,
        store_name,
        token_dtype,
        write_manifest,
    )
    from pretrain.tokens.tokenizer import train_bpe

    model_dir, data_dir = root / "model", root / "tokens"
    build_model(llama_config(ModelConfig(preset=preset), vocab), seed=0).save_pretrained(
        str(model_dir), safe_serialization=True)
    # train() saves the tokenizer with the trained model; the ids themselves are synthetic
    train_bpe(TokenizerConfig(vocab_size=300), iter(["synthetic tokens"])).save_pretrained(str(model_dir))
    data_dir.mkdir()
    writer = IndexedShardWriter(data_dir, store_name("train", 0), seq_len, token_dtype(vocab))
    writer.write(np.random.default_rng(0).integers(0, vocab, rows * seq_len))
    write_manifest(data_dir, seq_len, token_dtype(vocab), vocab, {"train": [writer.close()]})
    return model_dir, data_dir


def probe_attention(contender: str, model_dir: str, micro_batch: int, seq_len: int) -> str:
    """The attention kernel of the model as this contender loads it, on one bf16 step."""
    from transformers import AutoModelForCausalLM

    from pretrain.config.train import TrainConfig
    from pretrain.runtime import pick_device
    from pretrain.train.attention import attention_backend
    from pretrain.train.loop import load_model

    device = pick_device()
    model = (load_model(TrainConfig(), Path(model_dir)) if contender == "pretrain" else
             AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, use_safetensors=True))
    model.to(device)
    ids = torch.randint(0, model.config.vocab_size, (micro_batch, seq_len), device=device)
    return attention_backend(model, ids, device, torch.bfloat16)


def run_worker(args: argparse.Namespace) -> None:
    """One contender in this process; prints its measurements as one JSON line."""
    from pretrain.runtime import memory_bytes, pick_device

    with tempfile.TemporaryDirectory() as work:
        window, step_s = WORKERS[args.worker](args.model, args.data, args.warmup, args.steps,
                                              args.compile, Path(work), micro_batch=args.micro_batch,
                                              log_every=args.log_every)
    memory = memory_bytes(pick_device())  # before the probe loads a second copy
    attention = probe_attention(args.worker, args.model, args.micro_batch, args.seq_len)
    print(json.dumps({"window_s": window, "steps": len(step_s), "memory_bytes": memory,
                      "attention": attention}))


def spawn(contender: str, model_dir: Path, data_dir: Path, args: argparse.Namespace) -> dict:
    """Run ``contender`` in a fresh process (its own CUDA context, compile caches and peak)."""
    command = [sys.executable, __file__, "--worker", contender, "--model", str(model_dir),
               "--data", str(data_dir), "--device", args.device]
    for name in ("micro_batch", "seq_len", "warmup", "steps", "log_every"):
        command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    command += ["--compile" if args.compile else "--no-compile"]
    env = {**os.environ, **({"CUDA_VISIBLE_DEVICES": ""} if args.device == "cpu" else {})}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        raise SystemExit(f"gpu_train: {contender} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def header(args: argparse.Namespace) -> str:
    """The device, its driver and CUDA, the library versions and the date."""
    import transformers

    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    versions = f"torch {torch.__version__}, transformers {transformers.__version__}, Python {platform.python_version()}"
    if args.device == "cpu":
        return f"{machine()}; {versions}; {when}"
    try:
        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, check=True).stdout.split()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        driver = "unknown"
    return (f"{torch.cuda.get_device_name(0)}, driver {driver}, CUDA {torch.version.cuda}, cuDNN "
            f"{torch.backends.cudnn.version()}; {versions}; {when}")


def table(results: dict[str, dict], args: argparse.Namespace, flops_per_token: float) -> list[str]:
    """One line per contender: tokens/s, MFU, pretrain's speed over it, peak memory, attention."""
    from pretrain.train.peaks import nominal_peak

    peak = nominal_peak(torch.device(args.device), torch.bfloat16)
    lines = [f"MFU against {peak.flops / 1e12:,.1f} TFLOP/s: {peak.source}" if peak else
             "MFU: no datasheet peak known for this device (pretrain.train.peaks)",
             f"{'contender':<20}{'tokens/s':>12}{'MFU':>8}{'pretrain / it':>15}{'peak memory':>14}   attention"]
    tokens = {c: r["steps"] * args.micro_batch * args.seq_len / r["window_s"] for c, r in results.items()}
    for contender, r in results.items():
        mfu = f"{tokens[contender] * flops_per_token / peak.flops:.1%}" if peak else "n/a"
        lines.append(f"{LABELS[contender]:<20}{tokens[contender]:>12,.0f}{mfu:>8}"
                     f"{tokens['pretrain'] / tokens[contender]:>14.2f}x"
                     f"{r['memory_bytes'] / 2**30:>10.2f} GiB   {r['attention']}")
    return lines


def run_all(args: argparse.Namespace) -> None:
    """Set up the model and data, run each contender, print the header and the table."""
    from transformers import AutoConfig

    from pretrain.model.build import count_parameters
    from pretrain.train.flops import flops_per_token, meta_model

    began = time.perf_counter()
    print(f"gpu_train: {header(args)}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows = max(1, args.warmup + args.steps) * args.micro_batch
        model_dir, data_dir = prepare(Path(tmp), args.preset, args.vocab, args.seq_len, rows)
        config = AutoConfig.from_pretrained(model_dir)
        flops = flops_per_token(config, args.seq_len)
        parameters = count_parameters(meta_model(config))
        print(f"model: {args.preset}, {parameters:,} parameters, vocabulary {args.vocab:,}; sequence "
              f"length {args.seq_len}, micro-batch {args.micro_batch}, bf16 autocast, torch.compile "
              f"{'on' if args.compile else 'off'}; synthetic token ids; {args.warmup} warm-up steps, "
              f"then {args.steps} timed; {flops / 1e6:,.0f} MFLOPs per token (PaLM's count)", flush=True)
        results = {}
        for contender in CONTENDERS[::-1]:  # pretrain first: the reference of the ratios
            results[contender] = spawn(contender, model_dir, data_dir, args)
            print(f"  {LABELS[contender]}: done at {time.perf_counter() - began:.0f} s", flush=True)
    print("\n".join(table(results, args, flops)))
    took = time.perf_counter() - began
    print(f"total {took:.0f} s" + (f" (over the {BUDGET_S} s budget)" if took > BUDGET_S else ""))
    if args.json:
        args.json.write_text(json.dumps({"header": header(args), "settings": {k: getattr(args, k) for k in FULL},
                                         "flops_per_token": flops, "results": results}, indent=2))


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--tiny", action="store_true", help="the debug model for a few steps (smoke test)")
    parser.add_argument("--preset", help="model preset (pretrain.config.shape.PRESETS)")
    parser.add_argument("--vocab", type=int, help="vocabulary size of the synthetic tokens")
    parser.add_argument("--seq-len", dest="seq_len", type=int)
    parser.add_argument("--micro-batch", dest="micro_batch", type=int)
    parser.add_argument("--warmup", type=int, help="untimed steps (compilation included)")
    parser.add_argument("--steps", type=int, help="timed steps")
    parser.add_argument("--log-every", dest="log_every", type=int,
                        help="each contender's log interval, where it waits for the device")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction)
    parser.add_argument("--json", type=Path, help="also write the measurements to this file")
    parser.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for key, value in (TINY if args.tiny else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main() -> None:
    args = parse()
    if args.worker:
        run_worker(args)
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"gpu_train: no CUDA device (torch {torch.__version__}, CUDA build "
                         f"{torch.version.cuda}); run it on a GPU, or --device cpu --tiny for a smoke run")
    run_all(args)


if __name__ == "__main__":
    main()
