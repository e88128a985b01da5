"""The peak FLOP/s that MFU is taken against: the hardware's nominal peak, and a measured one.

MFU as the field publishes it (PaLM, Chowdhery et al. 2022, appendix B; nanoGPT's
``estimate_mfu`` against the A100's 312 TFLOP/s; llm.c; torchtitan) divides the model FLOP/s a
run achieves by the device's *nominal* dense peak in the training precision: a datasheet figure,
the same on every run, so two runs' MFU and ours against theirs can be compared. The matmul
rate this machine reaches right now (``pretrain.train.flops.measured_peak_flops``) is kept as a
second, clearly named figure (``mfu_measured``): it moves with other processes' load, and says how
close training comes to the machine's own matmul kernels rather than to the hardware.

- GPUs: the dense (no 2:4 sparsity) tensor-core figure of the vendor's datasheet for bf16 / fp16,
  found by the device's name; for fp32 the dense TF32 tensor-core figure, since the loop lets
  fp32 matmuls run in TF32 on CUDA (``pretrain.runtime.allow_tf32``), or the plain FP32 figure on
  a GPU without TF32 (before Ampere: T4, V100).
- CPUs: cores x nominal clock x FLOPs per cycle per core, where FLOPs per cycle = 2 (a fused
  multiply-add) x SIMD lanes of the widest vector ISA (AVX-512: 16 fp32, AVX2/FMA: 8 fp32) x
  2 FMA units per core (Intel's server cores since Skylake-SP and the big client cores; a CPU with
  one unit, or AMD Zen 4, which runs AVX-512 on 256-bit units, reaches half: set
  ``train.peak_tflops`` there). bf16: 2x fp32 with AVX512_BF16 (VDPBF16PS: two bf16 products per
  fp32 lane), 1,024 FLOPs/cycle per core with AMX-BF16 (Intel, "Accelerate AI Workloads with
  Intel AMX"); without either bf16 runs at the fp32 rate. The clock is the nominal one in the CPU's
  model name (``@ 2.80GHz``), else the base frequency the kernel reports, else the current one.
- ``train.peak_tflops`` in params replaces the nominal figure (a device not in the table).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Optional

import torch

from pretrain.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Peak:
    """A peak FLOP/s and where it came from."""

    flops: float
    """FLOP/s."""
    source: str
    """One line naming the figure: datasheet, formula with its inputs, params or measurement."""


@dataclasses.dataclass(frozen=True)
class Gpu:
    """A GPU's dense peaks and memory, from its vendor datasheet."""

    name: str
    """Marketing name."""
    peak_flops: float
    """Dense (no 2:4 sparsity) bf16 tensor-core FLOP/s; fp16 where the GPU has no bf16."""
    dtype: str
    """The precision of ``peak_flops``."""
    memory_gb: float
    """Device memory in GB."""
    source: str
    """Where the figures come from."""
    fp32_flops: float = 0.0
    """Plain (non-tensor-core) FP32 FLOP/s."""
    device_names: str = ""
    """Regular expression matching ``torch.cuda.get_device_name()`` of this GPU."""
    tf32_flops: float = 0.0
    """Dense TF32 tensor-core FLOP/s (0: no TF32, before Ampere)."""


GPUS: dict[str, Gpu] = {
    # Datasheets quote "with sparsity" figures twice the dense ones; these are the dense ones.
    "a100": Gpu("NVIDIA A100 SXM 80GB", 312e12, "bf16", 80,
                "NVIDIA A100 datasheet: BF16 tensor core 312 TFLOPS (624 with sparsity), TF32 156 "
                "(312 with sparsity), FP32 19.5", 19.5e12, r"\bA100\b", 156e12),
    "h100-sxm": Gpu("NVIDIA H100 SXM", 989e12, "bf16", 80,
                    "NVIDIA H100 datasheet: BF16 tensor core 1,979 TFLOPS with sparsity, TF32 989 "
                    "with sparsity, FP32 67", 67e12, r"\bH100\b(?!.*(PCIe|NVL))", 494.5e12),
    "h100-pcie": Gpu("NVIDIA H100 PCIe", 756e12, "bf16", 80,
                     "NVIDIA H100 datasheet: BF16 tensor core 1,513 TFLOPS with sparsity, TF32 756 "
                     "with sparsity, FP32 51", 51e12, r"\bH100 PCIe\b", 378e12),
    "h200": Gpu("NVIDIA H200 SXM", 989e12, "bf16", 141,
                "NVIDIA H200 datasheet: BF16 tensor core 1,979 TFLOPS with sparsity, TF32 989 with "
                "sparsity, 141 GB, FP32 67", 67e12, r"\bH200\b(?!.*NVL)", 494.5e12),
    "l4": Gpu("NVIDIA L4", 121e12, "bf16", 24,
              "NVIDIA L4 datasheet: BF16 tensor core 242 TFLOPS with sparsity, TF32 120 with "
              "sparsity, FP32 30.3", 30.3e12, r"\bL4\b", 60e12),
    "a10": Gpu("NVIDIA A10", 125e12, "bf16", 24,
               "NVIDIA A10 datasheet: BF16 tensor core 125 TFLOPS (250 with sparsity), TF32 62.5 "
               "(125 with sparsity), FP32 31.2", 31.2e12, r"\bA10\b", 62.5e12),
    "rtx-4090": Gpu("NVIDIA GeForce RTX 4090", 165e12, "bf16", 24,
                    "NVIDIA Ada GPU architecture whitepaper: 165.2 TFLOPS BF16 with FP32 accumulate, "
                    "TF32 tensor 82.6 (165.2 with sparsity), FP32 82.6", 82.6e12, r"\bRTX 4090\b",
                    82.6e12),
    "t4": Gpu("NVIDIA T4", 65e12, "fp16", 16,
              "NVIDIA T4 datasheet: mixed precision (FP16/FP32) 65 TFLOPS; no bf16; FP32 8.1",
              8.1e12, r"\bT4\b"),
    "v100": Gpu("NVIDIA V100 SXM2 32GB", 125e12, "fp16", 32,
                "NVIDIA V100 datasheet: tensor performance 125 TFLOPS (fp16); no bf16; FP32 15.7",
                15.7e12, r"\bV100\b"),
}
"""Named GPUs: MFU's nominal peak, and projected training times (``pretrain estimate --gpu``)."""

FMA_UNITS = 2
"""FMA units per CPU core assumed by the nominal CPU peak (see the module docstring)."""


def gpu(name: str) -> Gpu:
    """The GPU called ``name`` (case-insensitive), or a ConfigError listing the known ones."""
    key = name.strip().lower()
    if key not in GPUS:
        raise ConfigError(f"--gpu: unknown GPU {name!r} (known: {', '.join(sorted(GPUS))})")
    return GPUS[key]


def gpu_peak(device_name: str, dtype: torch.dtype) -> Optional[Peak]:
    """The datasheet peak of the GPU called ``device_name`` (as CUDA names it) in ``dtype``, or
    None for a GPU not in ``GPUS`` (or bf16 on one without it)."""
    for entry in GPUS.values():
        if re.search(entry.device_names, device_name):
            if dtype == torch.float32 and entry.tf32_flops:  # the loop allows TF32 on CUDA
                return Peak(entry.tf32_flops, f"{entry.name} datasheet, dense TF32 tensor core "
                                              f"({entry.source})")
            if dtype == torch.float32:
                return Peak(entry.fp32_flops, f"{entry.name} datasheet, dense FP32 ({entry.source})")
            if dtype == torch.bfloat16 and entry.dtype != "bf16":
                return None
            return Peak(entry.peak_flops, f"{entry.name} datasheet, dense {entry.dtype} tensor core "
                                          f"({entry.source})")
    return None


def cpu_peak(cpuinfo: str, dtype: torch.dtype, cores: int, base_khz: Optional[int] = None) -> Optional[Peak]:
    """The nominal peak of ``cores`` cores of the x86 CPU that ``cpuinfo`` (the text of
    /proc/cpuinfo) describes, in ``dtype`` (see the module docstring); ``base_khz``: the base
    clock the kernel reports, used when the model name gives none. None without a clock or an
    FMA unit (not x86, or a CPU without FMA)."""
    fields = dict(re.findall(r"^([^\t:\n]+?)\s*:\s*(.*)$", cpuinfo, re.M))
    flags = set(fields.get("flags", "").split())
    named = re.search(r"@\s*([\d.]+)\s*GHz", fields.get("model name", ""))
    if named:
        hz, clock = float(named.group(1)) * 1e9, f"{named.group(1)} GHz (model name)"
    elif base_khz:
        hz, clock = base_khz * 1e3, f"{base_khz / 1e6:.2f} GHz (base frequency)"
    elif fields.get("cpu MHz"):
        hz, clock = float(fields["cpu MHz"]) * 1e6, f"{float(fields['cpu MHz']) / 1e3:.2f} GHz (current clock)"
    else:
        return None
    lanes, isa = (16, "AVX-512") if "avx512f" in flags else (8, "AVX2") if "fma" in flags else (0, "")
    if not lanes:
        return None
    per_cycle, how = 2 * lanes * FMA_UNITS, f"{isa} fp32"
    if dtype == torch.bfloat16 and "amx_bf16" in flags:
        per_cycle, how = 1024, "AMX-BF16"
    elif dtype == torch.bfloat16 and "avx512_bf16" in flags:
        per_cycle, how = 2 * per_cycle, "AVX512_BF16"
    source = (f"nominal CPU peak: {cores} cores x {clock} x {per_cycle} FLOPs/cycle "
              f"({how}, {FMA_UNITS} FMA units)")
    return Peak(cores * hz * per_cycle, source)


def nominal_peak(device: torch.device, dtype: torch.dtype, peak_tflops: Optional[float] = None) -> Optional[Peak]:
    """The peak MFU is taken against on ``device`` training in ``dtype``: ``peak_tflops`` when
    set (params), else the GPU's datasheet figure or the CPU's nominal peak over torch's threads.
    None when it cannot be known (an unlisted GPU, a non-x86 CPU): set ``train.peak_tflops``."""
    if peak_tflops:
        return Peak(peak_tflops * 1e12, f"train.peak_tflops in params ({peak_tflops:g} TFLOP/s)")
    device = torch.device(device)
    if device.type == "cuda":
        return gpu_peak(torch.cuda.get_device_name(device), dtype)
    if device.type != "cpu":
        return None
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    base = Path("/sys/devices/system/cpu/cpu0/cpufreq/base_frequency")
    base_khz = int(base.read_text()) if base.is_file() else None
    return cpu_peak(cpuinfo.split("\n\n")[0], dtype, torch.get_num_threads(), base_khz)


def mfu_metrics(flops_per_second: float, nominal: Optional[Peak], measured_flops: float) -> dict[str, float]:
    """One step's MFU: the model FLOP/s achieved per device, over the nominal peak
    (``train/mfu``; left out when the peak is unknown) and over the measured matmul rate
    (``train/mfu_measured``). Fractions, not percentages."""
    metrics = {"train/mfu_measured": flops_per_second / measured_flops}
    if nominal is not None:
        metrics["train/mfu"] = flops_per_second / nominal.flops
    return metrics


def describe(nominal: Optional[Peak], measured_flops: float, dtype: str) -> str:
    """One line for the train log naming both peaks, their values and where they came from."""
    first = (f"MFU against {nominal.flops / 1e12:.3g} TFLOP/s, the {nominal.source}" if nominal
             else "MFU: no nominal peak known for this device (set train.peak_tflops)")
    return (f"{first}; mfu_measured against {measured_flops / 1e12:.3g} TFLOP/s, a {dtype} matmul "
            "measured at start-up")
