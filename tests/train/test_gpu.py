"""The loop on a real CUDA device (skipped without one): fused AdamW, TF32, flash attention,
compiled training and every CUDA RNG state in its checkpoint."""

import pytest
import torch

from pretrain.config.model import ModelConfig
from pretrain.config.train import TrainConfig
from pretrain.model.build import build_model, llama_config
from pretrain.train import checkpoint, optim
from pretrain.train.attention import attention_backend
from pretrain.train.loop import train

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_cuda_training_is_fused_tf32_and_compiled(monkeypatch, tmp_path, init_dir, tokens_dir):
    built = []
    real = optim.build_optimizer

    def spy(model, cfg, fused=False):
        built.append(real(model, cfg, fused))
        return built[-1]
    monkeypatch.setattr("pretrain.train.ddp.build_optimizer", spy)
    cfg = TrainConfig(max_steps=6, warmup_steps=1, micro_batch_size=4, precision="bf16", compile=True,
                      log_every=3)
    report = train(cfg, init_dir, tokens_dir, tmp_path / "out", tmp_path / "live")
    assert built[0].defaults["fused"] is True
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert report["compiled"] and report["attention"] == "sdpa" and report["device"] == "cuda"
    assert report["final_loss"] < report["first_loss"]


@pytest.mark.skipif(torch.cuda.is_available() and torch.cuda.get_device_capability() < (8, 0),
                    reason="FlashAttention-2 needs Ampere or newer")
def test_bf16_attention_runs_the_flash_kernel():
    model = build_model(llama_config(ModelConfig(preset="gpt2-small-ish"), 50304), seed=0, device="cuda")
    ids = torch.randint(0, 50304, (2, 1024), device="cuda")
    assert attention_backend(model, ids, torch.device("cuda"), torch.bfloat16) == "sdpa: flash"


def test_the_cuda_rng_state_is_saved_and_restored():
    torch.cuda.manual_seed(3)
    states = checkpoint.gather_rng(1)
    expected = torch.rand(4, device="cuda")
    torch.cuda.manual_seed(99)
    checkpoint._set_rng(states)
    assert "rank0.cuda" in states and torch.equal(torch.rand(4, device="cuda"), expected)
