"""What a run of ``params.yaml`` will cost, before it runs: the report of ``pretrain estimate``.

The accounting (FLOPs, memory, GPU peaks) is pretrain.cost.formulas; this module finds the model the
params describe, times a few real optimizer steps of it on this machine, and projects the run.
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, PretrainedConfig

from pretrain.bases import folder_problem, load_failure, split_gguf
from pretrain.config.train import TrainConfig, launcher_processes, total_steps, zero_section, zero_stage
from pretrain.cost.formulas import (
    ASSUMED_GPU_MFU,
    CHINCHILLA_TOKENS_PER_PARAMETER,
    REFERENCE_MODELS,
    Gpu,
    gpu,
    memory_breakdown,
    parameter_counts,
)
from pretrain.errors import ConfigError
from pretrain.model.build import llama_config
from pretrain.model.surgery import depth_surgery
from pretrain.runtime import (
    allow_tf32,
    autocast,
    autocast_dtype,
    deterministic_algorithms,
    enable_activation_checkpointing,
    pick_device,
    precision_name,
    synchronize,
)
from pretrain.tokens.tokenizer import load_tokenizer
from pretrain.train.backends import layout_name
from pretrain.train.flops import (
    attention_shape,
    flops_per_token,
    measured_peak_flops,
    meta_model,
)
from pretrain.train.optim import build_optimizer, fused_optimizer
from pretrain.train.peaks import nominal_peak


def run_config(configs: dict[str, Any]) -> PretrainedConfig:
    """The model config that ``params.yaml`` would train: the preset at the tokenizer's vocabulary
    size for ``model.init: random``, else the base's config (with the surgery's layer count).
    ConfigError for a base or depth the init-model stage would refuse, in its words."""
    model_cfg, tok_cfg = configs["model"], configs["tokenizer"]
    if model_cfg.init == "random":
        vocab = len(load_tokenizer(tok_cfg.path)) if tok_cfg.path else tok_cfg.vocab_size
        return llama_config(model_cfg, vocab)
    config = base_config(model_cfg.base)
    if model_cfg.init in ("downscale", "upscale"):
        # The init-model stage's own surgery on a weightless (meta) copy: the same refusals
        # (architecture, model.num_layers by check_depth) and the same edited config (layer count
        # and per-layer lists such as layer_types), without reading or allocating any weight.
        model = meta_model(config)
        depth_surgery(model, model_cfg.init, model_cfg.num_layers)
        config = model.config
    return config


def base_config(base: str) -> PretrainedConfig:
    """The config of ``model.base`` after the checks the init-model stage makes
    (pretrain.model.build.load_base): ConfigError naming model.base and saying what is wrong with the
    folder or GGUF file (pretrain.bases), never a low-level parse error."""
    folder, gguf_file = split_gguf(base)
    where = f"params.yaml: model.base: cannot read a model config from {base!r}"
    problem = None if gguf_file else folder_problem(folder)
    if problem:
        raise ConfigError(f"{where}: {problem}")
    try:
        return AutoConfig.from_pretrained(folder, gguf_file=gguf_file)
    except Exception as exc:  # transformers and gguf raise many types for bad files
        raise ConfigError(f"{where}: {load_failure(exc, gguf_file and Path(folder) / gguf_file)}") from None


def measure_training(config: PretrainedConfig, cfg: TrainConfig, seq_len: int, steps: int = 5,
                     warmup: int = 1, compile: bool = False) -> dict[str, Any]:
    """Tokens/s of real optimizer steps of a freshly built ``config`` model on random tokens,
    set up as train.py does (device, autocast precision, optimizer, gradient checkpointing,
    clipping, deterministic CPU kernels), from the median step time: a step that another
    process slowed down does not skew it. The first ``warmup`` steps, which include any
    compilation, are not timed. Each micro-batch takes an optimizer step here, so a run with
    gradient accumulation spends a little less per token on the optimizer."""
    device = pick_device()
    dtype = autocast_dtype(cfg.precision, device)
    allow_tf32(device)  # as the loop does
    torch.manual_seed(cfg.seed)
    with torch.device(device.type):  # any base's architecture (pretrain.model.build.build_model: Llama only)
        model = AutoModelForCausalLM.from_config(config)
    if cfg.gradient_checkpointing:
        enable_activation_checkpointing(model)
    model.train()
    step_fn = torch.compile(model) if compile else model
    optimizer = build_optimizer(model, cfg, fused_optimizer(device))
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    shape = (warmup + steps, cfg.micro_batch_size, seq_len)
    ids = torch.randint(0, config.vocab_size, shape, generator=torch.Generator().manual_seed(0)).to(device)
    seconds = []
    with deterministic_algorithms(device.type == "cpu"):
        for i in range(warmup + steps):
            start = time.perf_counter()
            with autocast(device, dtype):
                loss = step_fn(input_ids=ids[i], labels=ids[i]).loss
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or float("inf"))
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            synchronize(device)
            seconds.append(time.perf_counter() - start)
    step = statistics.median(seconds[warmup:])
    return {"tokens_per_second": cfg.micro_batch_size * seq_len / step, "step_seconds": seconds[warmup:],
            "steps": steps, "warmup_steps": warmup, "device": device.type,
            "precision": precision_name(dtype), "compiled": compile}


def estimate(configs: dict[str, Any], gpu_name: str = "h100-sxm", measure_steps: int = 5,
             measure_compile: bool = False, gpu_mfu: float = ASSUMED_GPU_MFU,
             gpus: int | None = None) -> dict[str, Any]:
    """Everything ``pretrain estimate`` prints, as a JSON-ready dict; the GPU projection is for
    ``gpus`` GPUs (default: the processes of ``train.launcher``)."""
    target = gpu(gpu_name)
    config = run_config(configs)
    cfg, seq_len = configs["train"], configs["pack"].seq_len
    counts = parameter_counts(config)
    tokens = total_steps(cfg, seq_len) * cfg.micro_batch_size * cfg.grad_accum_steps * seq_len
    per_token = flops_per_token(config, seq_len)
    precision = precision_name(autocast_dtype(cfg.precision, pick_device()))
    memory = {p: {"plain": memory_breakdown(config, seq_len, cfg.micro_batch_size, p, False, cfg.optimizer),
                  "checkpointed": memory_breakdown(config, seq_len, cfg.micro_batch_size, p, True, cfg.optimizer)}
              for p in ("fp32", "bf16")}
    gpus = gpus or launcher_processes(cfg.launcher) or 1
    gpu_memory = device_memory(config, cfg, seq_len, "bf16", gpus)
    report = {
        "model": describe(config), **counts, "seq_len": seq_len, "micro_batch_size": cfg.micro_batch_size,
        "steps": total_steps(cfg, seq_len), "tokens": tokens, "flops_per_token": per_token,
        "attention_flops_per_token": per_token - 6.0 * counts["matmul_parameters"],
        "training_flops": per_token * tokens,
        "chinchilla_tokens": CHINCHILLA_TOKENS_PER_PARAMETER * counts["parameters"],
        "precision": precision, "optimizer": cfg.optimizer,
        "gradient_checkpointing": cfg.gradient_checkpointing, "memory": memory,
        "this_machine": None,
        "gpu": {**project_gpu(target, per_token * tokens / gpus, gpu_mfu, gpu_memory),
                "gpus": gpus, "sharding": layout_name(cfg) if gpus > 1 else "none",
                "split": sorted(split_states(cfg)) if gpus > 1 else [],
                "offload": gpus > 1 and offloads_optimizer(cfg)},
        "rule_of_20": rule_of_20(config, seq_len, cfg.micro_batch_size, precision),
    }
    if measure_steps:
        report["this_machine"] = project_here(config, cfg, seq_len, tokens, measure_steps, measure_compile)
    return report


def describe(config: PretrainedConfig) -> dict[str, Any]:
    """The sizes that matter for cost, under uniform names."""
    layers, heads, head_dim = attention_shape(config)
    return {"model_type": config.model_type, "layers": layers, "hidden_size": config.hidden_size,
            "heads": heads, "kv_heads": getattr(config, "num_key_value_heads", None) or heads,
            "head_dim": head_dim, "intermediate_size": getattr(config, "intermediate_size", None),
            "vocab_size": config.vocab_size}


def device_memory(config: PretrainedConfig, cfg: TrainConfig, seq_len: int, precision: str,
                  processes: int) -> int:
    """Training memory of one of ``processes`` devices: its share of each micro-batch's
    activations, and the whole weights, gradients and optimizer state (DDP) or 1/N of those that
    are split (``train.sharding``: all three; ``train.deepspeed``: by ZeRO stage, optimizer
    state offloaded to the CPU not counted). A gathered copy of one block at a time comes on
    top."""
    rows = math.ceil(cfg.micro_batch_size / processes)
    b = memory_breakdown(config, seq_len, rows, precision, cfg.gradient_checkpointing, cfg.optimizer)
    split = split_states(cfg) if processes > 1 else set()
    if processes > 1 and offloads_optimizer(cfg):  # DeepSpeed runs with several processes only
        b = {**b, "optimizer": 0}
    states = sum(math.ceil(b[k] / processes) if k in split else b[k]
                 for k in ("weights", "grads", "optimizer"))
    return states + (b["activations"] or 0)


def split_states(cfg: TrainConfig) -> set[str]:
    """The parts of the training state that the processes split among them."""
    if cfg.deepspeed is not None:  # ZeRO-1: optimizer state, ZeRO-2: and gradients, ZeRO-3: all
        stage = zero_stage(cfg)
        return set(["optimizer", "grads", "weights"][:stage if stage in (1, 2, 3) else 0])
    return set() if cfg.sharding == "none" else {"optimizer", "grads", "weights"}


def offloads_optimizer(cfg: TrainConfig) -> bool:
    """Whether ``train.deepspeed`` keeps the optimizer state in CPU memory (or on NVMe)."""
    return (zero_section(cfg).get("offload_optimizer") or {}).get("device", "none") != "none"


def project_gpu(target: Gpu, training_flops: float, mfu: float, memory_bytes: int) -> dict[str, Any]:
    """Projected time on ``target`` at an assumed MFU, and whether 16-bit training memory fits."""
    return {"name": target.name, "peak_flops": target.peak_flops, "peak_dtype": target.dtype,
            "source": target.source, "assumed_mfu": mfu,
            "seconds": training_flops / (target.peak_flops * mfu),
            "memory_bytes": memory_bytes, "memory_gb": target.memory_gb,
            "fits": memory_bytes <= target.memory_gb * 1e9}


def project_here(config: PretrainedConfig, cfg: TrainConfig, seq_len: int, tokens: int, steps: int,
                 compile: bool) -> dict[str, Any]:
    """A short measured run on this machine, its MFU against the nominal peak of its precision
    (None where unknown) and against a matmul measured now, and the time the whole run would
    take at that speed."""
    run = measure_training(config, cfg, seq_len, steps=steps, compile=compile)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(run["precision"], torch.float32)
    device = pick_device()
    nominal = nominal_peak(device, dtype, cfg.peak_tflops)
    measured = measured_peak_flops(dtype, device)
    achieved = run["tokens_per_second"] * flops_per_token(config, seq_len)
    return {**run, "peak_flops": nominal.flops if nominal else None,
            "peak_source": nominal.source if nominal else None,
            "mfu": achieved / nominal.flops if nominal else None,
            "peak_flops_measured": measured, "mfu_measured": achieved / measured,
            "seconds": tokens / run["tokens_per_second"]}


def rule_of_20(config: PretrainedConfig, seq_len: int, micro_batch: int,
               precision: str) -> list[dict[str, Any]]:
    """Training memory per parameter of this run's model and of the reference models at the
    same sequence length and micro-batch, without and with gradient checkpointing."""
    models = {"this run": config, **{name: LlamaConfig(**kwargs) for name, kwargs in REFERENCE_MODELS.items()}}
    rows = []
    for name, model_config in models.items():
        plain = memory_breakdown(model_config, seq_len, micro_batch, precision)
        ckpt = memory_breakdown(model_config, seq_len, micro_batch, precision, checkpointing=True)
        rows.append({"model": name, "parameters": plain["parameters"],
                     "states": plain["weights"] + plain["grads"] + plain["optimizer"],
                     "activations": plain["activations"], "total": plain["total"],
                     "per_parameter": plain["per_parameter"],
                     "per_parameter_checkpointed": ckpt["per_parameter"]})
    return rows
