"""`accelerate launch` with 2 CPU processes (DDP over gloo) follows the loss curve of 1 process at
the same global batch: each process takes half of every micro-batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DRIVER = """
import json, sys
from pathlib import Path
from pretrain.config import TrainConfig
from pretrain.train import train
cfg, init, packed, out = json.loads(sys.argv[1]), *map(Path, sys.argv[2:5])
report = train(TrainConfig(**cfg), init, packed, out / "model", out / "live", out / "ckpt")
if report is not None:
    (out / "report.json").write_text(json.dumps(report))
"""

CFG = {"max_steps": 6, "warmup_steps": 1, "learning_rate": 1e-2, "micro_batch_size": 4,
       "grad_accum_steps": 2, "precision": "fp32", "log_every": 1, "checkpoint_every": 3}


def launch(tmp_path: Path, name: str, processes: int, init_dir, packed_dir) -> tuple[dict, list]:
    out = tmp_path / name
    out.mkdir()
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    bin_dir = Path(sys.executable).parent
    prefix = ([str(bin_dir / "accelerate"), "launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", "0"] if processes > 1 else [sys.executable])
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*prefix, str(driver), json.dumps(CFG), str(init_dir), str(packed_dir),
                             str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = (out / "live/plots/metrics/train/loss.tsv").read_text().splitlines()[1:]
    return json.loads((out / "report.json").read_text()), [float(r.split("\t")[-1]) for r in rows]


def test_two_processes_follow_the_one_process_loss_curve(tmp_path, init_dir, packed_dir):
    one, curve_one = launch(tmp_path, "one", 1, init_dir, packed_dir)
    two, curve_two = launch(tmp_path, "two", 2, init_dir, packed_dir)
    assert two["processes"] == 2 and one["processes"] == 1
    assert len(curve_two) == len(curve_one) == 6
    assert curve_two == pytest.approx(curve_one, rel=1e-4)
    assert curve_one[-1] < curve_one[0]
    assert two["tokens"] == one["tokens"]  # the same global batch
