"""What the loop does on CUDA, checked without a GPU: fused AdamW, TF32, no host sync between
log steps, every process's RNG states in checkpoints, the attention kernel that ran."""

import json
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file, save_file

from pretrain.config.model import ModelConfig
from pretrain.config.train import TrainConfig
from pretrain.errors import DataError
from pretrain.model.build import build_model, llama_config
from pretrain.runtime import allow_tf32
from pretrain.train import checkpoint
from pretrain.train.attention import attention_backend
from pretrain.train.ddp import Replicated
from pretrain.train.loop import Run, train
from pretrain.train.optim import build_optimizer, fused_optimizer

SYNCS = ("item", "tolist", "__float__", "__int__", "__bool__")
"""Tensor methods that copy a value to the host, waiting for the device's queued work."""


def debug_model(vocab=300):
    return build_model(llama_config(ModelConfig(preset="debug"), vocab), seed=0)


def fake_accelerator(device):
    return SimpleNamespace(device=torch.device(device), num_processes=1, process_index=0,
                           is_main_process=True, prepare_model=lambda model: model)


@pytest.mark.parametrize("device, fused", [("cuda", True), ("cpu", True), ("mps", None)])
def test_adamw_is_fused_on_cuda_and_on_the_cpu(monkeypatch, device, fused):
    # The backend's own wiring, on a device it is told is CUDA (placing is skipped: no GPU here).
    monkeypatch.setattr(Replicated, "place", lambda self, model: None)
    backend = Replicated(TrainConfig(), fake_accelerator(device), None)
    _, optimizer = backend.prepare(debug_model(), None)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.defaults["fused"] is fused
    assert optimizer.defaults["foreach"] is None  # torch's default where there is no fused kernel


def test_lion_has_no_fused_form_and_builds_on_cuda_too():
    optimizer = build_optimizer(debug_model(), TrainConfig(optimizer="lion", learning_rate=1e-4),
                                fused_optimizer(torch.device("cuda", 1)))
    assert "fused" not in optimizer.defaults


def test_tf32_is_allowed_on_cuda_only():
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    # torch's flag objects compute these attributes, which pytest's monkeypatch cannot restore
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        cpu_matmul = torch.backends.mkldnn.matmul.fp32_precision
        assert allow_tf32(torch.device("cpu")) is False
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert allow_tf32(torch.device("cuda", 0)) is True
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        assert torch.backends.mkldnn.matmul.fp32_precision == cpu_matmul  # CPU matmuls stay fp32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def count_syncs(monkeypatch):
    """Count host syncs (SYNCS) inside each ``Run._step`` and the calls of ``Run._settle``.

    Only the loop's own calls (from pretrain's code) count. torch's optimizers read their step
    counters, kept on the CPU so that reading them never waits for a GPU; transformers'
    ``find_packed_sequence_indices`` tests the position ids with ``.all()`` in every eager
    forward pass (a sync on a GPU), skipped under torch.compile, which the GPU runs with.
    """
    calls = {"sync": 0, "settle": 0, "per_step": []}
    for name in SYNCS:
        real = getattr(torch.Tensor, name)

        def counted(self, *args, _real=real, **kwargs):
            if "/pretrain/" in sys._getframe(1).f_code.co_filename:
                calls["sync"] += 1
            return _real(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, counted)
    real_step, real_settle = Run._step, Run._settle

    def step(self, batches, number):
        before = calls["sync"]
        result = real_step(self, batches, number)
        calls["per_step"].append(calls["sync"] - before)
        assert torch.is_tensor(result[2]) and result[2].dim() == 0  # the loss stays a tensor
        return result

    def settle(self, *args):
        calls["settle"] += 1
        return real_settle(self, *args)
    monkeypatch.setattr(Run, "_step", step)
    monkeypatch.setattr(Run, "_settle", settle)
    return calls


def test_no_host_sync_in_a_step_only_at_log_steps(monkeypatch, tmp_path, init_dir, tokens_dir):
    calls = count_syncs(monkeypatch)
    cfg = TrainConfig(max_steps=8, warmup_steps=1, micro_batch_size=2, grad_accum_steps=2,
                      precision="fp32", log_every=4, eval_every=0)
    report = train(cfg, init_dir, tokens_dir, tmp_path / "out", tmp_path / "live")
    assert calls["per_step"] == [0] * 8  # no .item() in any micro-step or optimizer step
    assert calls["settle"] == 2  # one wait per log step (4 and 8)
    lines = (tmp_path / "live" / "plots" / "metrics" / "train" / "loss.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in lines[1:]] == ["4", "8"]
    assert report["compiled"] is False and report["attention"] == "sdpa"


def test_a_non_finite_loss_between_log_steps_names_its_step(monkeypatch, tmp_path, init_dir, tokens_dir):
    real_forward = Run._forward
    monkeypatch.setattr(Run, "_forward", lambda self, ids, step: real_forward(self, ids, step)
                        * (float("nan") if step == 1 else 1.0))
    cfg = TrainConfig(max_steps=4, warmup_steps=1, micro_batch_size=2, precision="fp32", log_every=4)
    with pytest.raises(DataError, match="loss became nan at step 2;"):
        train(cfg, init_dir, tokens_dir, tmp_path / "out", tmp_path / "live")


def test_checkpoint_rng_states_are_named_by_rank_and_include_cuda(monkeypatch):
    states = checkpoint.gather_rng(1)
    assert set(states) == {"rank0.cpu"} | ({"rank0.cuda"} if torch.cuda.is_available() else set())
    fake = torch.arange(16, dtype=torch.uint8)
    set_to = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": fake)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device="cuda": set_to.append(state))
    assert torch.equal(checkpoint.gather_rng(1)["rank0.cuda"], fake)
    other = torch.full((16,), 7, dtype=torch.uint8)
    cpu = [torch.manual_seed(seed).get_state() for seed in (1, 2)]
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 1)
    checkpoint._set_rng({"rank0.cpu": cpu[0], "rank0.cuda": fake, "rank1.cpu": cpu[1], "rank1.cuda": other})
    assert torch.equal(torch.get_rng_state(), cpu[1]) and torch.equal(set_to[-1], other)  # rank 1's own
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 3)  # resumed on more processes
    checkpoint._set_rng({"rank0.cpu": cpu[0], "rank0.cuda": fake, "rank1.cpu": cpu[1], "rank1.cuda": other})
    assert torch.equal(torch.get_rng_state(), cpu[0]) and torch.equal(set_to[-1], fake)
    checkpoint._set_rng({"cpu": cpu[1]})  # a checkpoint written before per-rank states
    assert torch.equal(torch.get_rng_state(), cpu[1])


DRIVER = textwrap.dedent('''
    import json
    import sys
    import torch
    from safetensors.torch import load_file, save_file
    from pretrain.train import checkpoint

    def run(rank, folder):
        torch.distributed.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank,
                                             world_size=2)
        torch.manual_seed(100 + rank)  # each process its own stream
        states = checkpoint.gather_rng(2)
        if rank == 0:
            save_file(states, f"{folder}/rng.safetensors")
        expected = torch.rand(4)
        torch.manual_seed(999)  # lose the stream
        torch.distributed.barrier()
        saved = load_file(f"{folder}/rng.safetensors") if rank == 0 else None
        ckpt = checkpoint.Checkpoint(folder, 1, {"scaler": None})
        checkpoint.restore_rest(ckpt, None, saved, broadcast=True)
        got = torch.rand(4)
        assert torch.equal(got, expected), (rank, got, expected)
        with open(f"{folder}/draws-{rank}.json", "w") as out:  # not stdout: other output shares it
            json.dump(got.tolist(), out)
        torch.distributed.destroy_process_group()

    if __name__ == "__main__":
        torch.multiprocessing.spawn(run, args=(sys.argv[1],), nprocs=2)
''')


def test_every_process_resumes_its_own_rng_stream(tmp_path):
    """Each process checks its own draws after the restore; each writes them to a file of its
    own, not to the shared stdout, where the lines of two processes can run together (seen once
    under load: rank 0's line missing)."""
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    done = subprocess.run([sys.executable, str(driver), str(tmp_path)], capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    saved = load_file(str(tmp_path / "rng.safetensors"))
    assert set(saved) == {"rank0.cpu", "rank1.cpu"}
    assert not torch.equal(saved["rank0.cpu"], saved["rank1.cpu"])
    draws = [json.loads((tmp_path / f"draws-{rank}.json").read_text()) for rank in (0, 1)]
    assert len(draws[0]) == len(draws[1]) == 4
    assert draws[0] != draws[1]  # two streams, each continued


def test_checkpoint_save_writes_every_rank_given(tmp_path):
    rng = {"rank0.cpu": torch.get_rng_state(), "rank1.cpu": torch.manual_seed(5).get_state()}
    path = checkpoint.save(tmp_path, "key", 3, {"w": torch.zeros(2)}, {"state": {}, "param_groups": []},
                           None, rng=rng)
    saved = load_file(str(path / "rng.safetensors"))
    assert set(saved) == set(rng) and torch.equal(saved["rank1.cpu"], rng["rank1.cpu"])
    save_file(saved, str(tmp_path / "copy.safetensors"))  # plain safetensors, no pickle


def test_the_attention_kernel_that_ran_is_named():
    from transformers import AutoModelForCausalLM

    ids = torch.randint(0, 300, (2, 16))
    assert attention_backend(debug_model(), ids, torch.device("cpu"), torch.bfloat16) == "sdpa: flash (CPU)"
    eager = AutoModelForCausalLM.from_config(llama_config(ModelConfig(preset="debug"), 300),
                                             attn_implementation="eager")
    assert attention_backend(eager, ids, torch.device("cpu"), None) == "eager: no SDPA kernel"
