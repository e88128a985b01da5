"""What the loop does for speed on the CPU without changing a result: deterministic kernels without
the NaN fill of new tensors, freed memory kept in the heap, fused AdamW (benchmarks/train_speed.py
--ablate measures each)."""

from __future__ import annotations

import resource

import pytest
import torch

from pretrain.runtime import _glibc, deterministic_algorithms, reuse_freed_memory



def page_faults_of_steps(n: int, layer: torch.nn.Linear, x: torch.Tensor, y: torch.Tensor) -> int:
    """Minor page faults of ``n`` forward and backward passes of a vocabulary projection with
    cross-entropy: 64 MiB of fp32 logits and as much of their gradient, each step."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(n):
        torch.nn.functional.cross_entropy(layer(x), y).backward()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(_glibc() is None, reason="glibc's mallopt only")
def test_freed_tensor_memory_is_reused_inside_the_block():
    torch.manual_seed(0)
    step = (torch.nn.Linear(256, 8192), torch.randn(2048, 256), torch.randint(0, 8192, (2048,)))
    page_faults_of_steps(2, *step)
    plain = page_faults_of_steps(8, *step)
    with reuse_freed_memory() as reusing:
        assert reusing
        page_faults_of_steps(2, *step)  # the heap grows to hold a step
        kept = page_faults_of_steps(8, *step)
    logits_pages = 2048 * 8192 * 4 // resource.getpagesize()
    assert plain > 8 * logits_pages  # glibc maps fresh zeroed pages for every large tensor
    assert kept < plain / 3  # the heap hands the same pages back (a quarter at worst, measured)


def test_reusing_freed_memory_can_be_turned_off():
    with reuse_freed_memory(False) as reusing:
        assert not reusing


def test_deterministic_mode_does_not_fill_new_tensors_and_restores_the_settings():
    fill = torch.utils.deterministic.fill_uninitialized_memory
    with deterministic_algorithms(True):
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.utils.deterministic.fill_uninitialized_memory is False
    assert torch.utils.deterministic.fill_uninitialized_memory is fill
    assert not torch.are_deterministic_algorithms_enabled()
