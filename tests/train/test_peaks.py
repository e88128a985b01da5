"""MFU's denominators: the nominal peak (datasheet or cores x clock x FMA width) is a fixed figure
of the hardware; the measured matmul rate is a second, separately named one."""

import multiprocessing
import time

import pytest
import torch

from pretrain.train.peaks import GPUS, cpu_peak, gpu_peak, mfu_metrics, nominal_peak

XEON = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Processor @ 2.80GHz
cpu MHz\t\t: 2793.436
flags\t\t: fpu sse2 avx fma avx2 avx512f avx512bw
"""


def with_flags(cpuinfo: str, *flags: str) -> str:
    return cpuinfo.replace("avx512bw", " ".join(("avx512bw", *flags)))


def test_cpu_peak_is_cores_times_clock_times_fma_width():
    peak = cpu_peak(XEON, torch.float32, cores=2)
    assert peak.flops == 2 * 2.8e9 * 64  # 16 fp32 lanes x 2 (multiply-add) x 2 FMA units
    assert peak.source == ("nominal CPU peak: 2 cores x 2.80 GHz (model name) x 64 FLOPs/cycle "
                           "(AVX-512 fp32, 2 FMA units)")
    avx2 = XEON.replace(" avx512f avx512bw", "")
    assert cpu_peak(avx2, torch.float32, cores=2).flops == 2 * 2.8e9 * 32
    assert cpu_peak(XEON, torch.bfloat16, cores=2).flops == peak.flops  # no bf16 unit: fp32 rate
    assert cpu_peak(with_flags(XEON, "avx512_bf16"), torch.bfloat16, cores=2).flops == 2 * peak.flops
    assert cpu_peak(with_flags(XEON, "amx_bf16"), torch.bfloat16, cores=1).flops == 2.8e9 * 1024


def test_cpu_clock_comes_from_the_model_name_then_the_base_frequency():
    unnamed = XEON.replace(" @ 2.80GHz", "")
    assert cpu_peak(unnamed, torch.float32, 1, base_khz=3_000_000).flops == 3.0e9 * 64
    assert "(base frequency)" in cpu_peak(unnamed, torch.float32, 1, base_khz=3_000_000).source
    assert "(current clock)" in cpu_peak(unnamed, torch.float32, 1).source
    assert cpu_peak(XEON.replace("fma avx2 avx512f avx512bw", ""), torch.float32, 1) is None


@pytest.mark.parametrize("cuda_name, dtype, expected", [
    ("NVIDIA H100 80GB HBM3", torch.bfloat16, GPUS["h100-sxm"].peak_flops),
    ("NVIDIA H100 PCIe", torch.bfloat16, GPUS["h100-pcie"].peak_flops),
    ("NVIDIA H200", torch.bfloat16, GPUS["h200"].peak_flops),
    ("NVIDIA A100-SXM4-80GB", torch.bfloat16, 312e12),
    ("NVIDIA A100-SXM4-80GB", torch.float32, 156e12),  # TF32: the loop allows it on CUDA
    ("NVIDIA H200", torch.float32, 494.5e12),
    ("Tesla T4", torch.float32, 8.1e12),  # no TF32 before Ampere: plain FP32
    ("NVIDIA A10", torch.bfloat16, 125e12),
    ("Tesla T4", torch.float16, 65e12),
    ("Tesla T4", torch.bfloat16, None),  # no bf16 on Turing
    ("NVIDIA L40S", torch.bfloat16, None),  # not in the table (and not an L4)
])
def test_gpu_peak_is_the_datasheet_figure_found_by_device_name(cuda_name, dtype, expected):
    peak = gpu_peak(cuda_name, dtype)
    assert (peak.flops if peak else None) == expected
    if peak:
        assert "datasheet" in peak.source


def test_params_peak_replaces_the_nominal_one():
    peak = nominal_peak("cpu", torch.float32, peak_tflops=1.5)
    assert peak.flops == 1.5e12 and "train.peak_tflops" in peak.source


def _busy(seconds: float) -> None:
    a = torch.randn(512, 512)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        a @ a


def test_nominal_peak_does_not_move_with_machine_load():
    quiet = nominal_peak("cpu", torch.float32)
    if quiet is None:
        pytest.skip("no nominal peak for this CPU (not x86 Linux)")
    busy = [multiprocessing.get_context("spawn").Process(target=_busy, args=(10.0,)) for _ in range(2)]
    for process in busy:
        process.start()
    try:
        time.sleep(2)  # both cores taken
        assert nominal_peak("cpu", torch.float32) == quiet
    finally:
        for process in busy:
            process.terminate()
            process.join()


def test_mfu_is_reported_against_both_peaks_and_only_against_a_known_nominal_one():
    nominal = cpu_peak(XEON, torch.float32, cores=2)
    metrics = mfu_metrics(100e9, nominal, 200e9)
    assert metrics == {"train/mfu": 100e9 / 358.4e9, "train/mfu_measured": 0.5}
    assert mfu_metrics(100e9, None, 200e9) == {"train/mfu_measured": 0.5}
