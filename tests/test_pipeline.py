"""End to end: the real `dvc repro` on the debug profile, in a temporary copy of the repository."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
LOSS = "dvclive/train/plots/metrics/train/loss.tsv"


def run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def copy_repository(dest: Path) -> None:
    """The files a fresh clone has: tracked and untracked-but-not-ignored, nothing else."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        # A working tree where the pipeline has run also holds its lock file and metrics.
        if rel == "dvc.lock" or rel.startswith(("metrics/", "dvclive/")):
            continue
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)


def debug_clone(repo: Path) -> Path:
    """A fresh git repository in ``repo`` holding this project with the debug profile as params."""
    copy_repository(repo)
    shutil.copy(repo / "profiles" / "debug.yaml", repo / "params.yaml")
    run(["git", "init", "-q"], repo)
    run([sys.executable, "-m", "pretrain.cli", "plots-template"], repo)  # as setup.sh does
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "debug profile"], repo)
    return repo


def copy_run(debug_run: Path, dest: Path) -> Path:
    """A copy of a repository where the pipeline ran (conftest.debug_run): its files, git
    history, DVC cache and outputs, as the run left them; DVC rehashes the copied outputs."""
    shutil.copytree(debug_run, dest, symlinks=True)
    return dest


@pytest.fixture(scope="module")
def repo(tmp_path_factory, debug_run) -> Path:
    repo = copy_run(debug_run, tmp_path_factory.mktemp("clone") / "repo")
    shutil.copy(repo / "dvc.lock", repo / "baseline.lock")
    shutil.copy(repo / LOSS, repo / "baseline_loss.tsv")
    return repo


def metrics(repo: Path, name: str) -> dict:
    return json.loads((repo / "metrics" / f"{name}.json").read_text())


def test_every_stage_ran_and_wrote_its_artifacts(repo):
    log = repo.joinpath("repro.log").read_text()
    for stage in ("download", "clean", "dedup", "tokenizer", "pack", "init-model", "train", "merge",
                  "finetune", "evaluate", "export", "report"):
        assert f"Running stage '{stage}'" in log
    # no stage got too little to do its job (clean or dedup keeping under 5%, a tokenizer short
    # of tokenizer.vocab_size, train over its rows more than 4 times): the debug profile is quiet
    assert [line for line in log.splitlines() if line.startswith("warning: ")] == []
    raw = sorted((repo / "data/raw").glob("part-*.parquet"))
    assert len(raw) > 1 and sum(pq.read_metadata(p).num_rows for p in raw) == 300  # several shards
    assert [p.name for p in sorted((repo / "data/dedup").glob("part-*.parquet"))] == [p.name for p in raw]
    assert (repo / "data/tokenizer/tokenizer.json").exists()
    train = pq.read_table(repo / "data/packed/train-00000.parquet")
    assert train.column_names == ["input_ids"] and len(train.column(0)[0]) == 64
    store = json.loads((repo / "data/tokens/manifest.json").read_text())  # what train read
    assert store["dtype"] == "uint16" and store["splits"]["train"]["rows"] == train.num_rows
    for model in ("models/init", "models/trained"):
        assert (repo / model / "model.safetensors").exists() and (repo / model / "tokenizer.json").exists()
    assert "**trained**" in (repo / "metrics/generations.md").read_text()
    report = (repo / "metrics/report.md").read_text()  # the figures of the real run
    figures = sorted(p.name for p in (repo / "metrics/figures").glob("*.png"))
    assert {"loss.png", "mfu.png", "dropped.png", "length.png", "s_curve.png", "bits_per_byte.png"} <= set(figures)
    assert all(f"figures/{name}" in report for name in figures)
    not_drawn = report.split("## Not drawn")[1].split("## Generations")[0] if "## Not drawn" in report else ""
    assert len(figures) + not_drawn.count("\n- ") == 14  # the debug corpus may have no near-duplicate
    assert "Merge sweep" in not_drawn  # merge.method: none
    assert "confusion matrix" in not_drawn  # finetune.task: none
    assert [p.name for p in (repo / "models/finetuned").iterdir()] == ["finetune.json"]
    assert json.loads((repo / "models/merged/merge.json").read_text())["method"] == "none"
    assert list((repo / "models/gguf").iterdir()) == []  # export.types: []
    lock = (repo / "dvc.lock").read_text()
    assert "data/packed" in lock and "data/tokens" in lock and "models/trained" in lock


def test_metrics_show_the_gain_of_training(repo):
    clean = metrics(repo, "clean")
    assert clean["documents_in"] == 300 and clean["documents_out"] + sum(clean["dropped"].values()) == 300
    pack = metrics(repo, "pack")
    assert pack["train"]["rows"] > 0 and pack["val"]["rows"] > 0
    evaluation = metrics(repo, "eval")
    assert evaluation["val"]["trained"]["perplexity"] < evaluation["val"]["init"]["perplexity"] / 2
    assert evaluation["lm_eval"]["trained"]["pretrain_heldout_ppl"]["bits_per_byte"] > 0
    assert 0 <= evaluation["lm_eval"]["trained"]["pretrain_heldout_mc"]["acc"] <= 1
    assert evaluation["val"]["trained"]["bits_per_byte"] < evaluation["val"]["init"]["bits_per_byte"]
    # Held out by document, but the built-in corpus repeats docstrings across modules: the
    # check reports that overlap (~9% of 13-grams on the debug profile) instead of hiding it.
    heldout = evaluation["contamination"]["heldout_documents"]
    assert heldout["documents"] > 0 and 0 <= heldout["ngram_overlap"] < 0.5
    out = run(["dvc", "metrics", "show", "--json"], repo)
    assert "perplexity_ratio" in out


def test_loss_curve_is_plotted_per_step(repo):
    loss = (repo / "dvclive/train/plots/metrics/train/loss.tsv").read_text().splitlines()
    assert loss[0].split("\t") == ["step", "loss"] and len(loss) == 1 + 30
    out = run(["dvc", "plots", "show", "--json"], repo)
    assert "loss" in out


def test_second_repro_does_nothing(repo):
    out = run(["dvc", "repro"], repo)
    assert "Running stage" not in out
    assert "up to date" in run(["dvc", "status"], repo)


def test_experiment_reruns_only_training_and_evaluation(repo):
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "baseline run"], repo)
    out = run(["dvc", "exp", "run", "-S", "train.learning_rate=3e-4"], repo)
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    # merge, finetune and export: pass-throughs
    assert ran == {"train", "merge", "finetune", "evaluate", "export", "report"}
    table = json.loads(run(["dvc", "exp", "show", "--json"], repo))
    text = json.dumps(table)
    assert "0.0003" in text or "3e-4" in text or "3e-04" in text
    assert text.count("perplexity_ratio") >= 2  # the baseline and the experiment side by side


def test_returning_to_a_parameter_set_already_run_restores_it(repo):
    """A -> B -> A: the second A is restored from DVC's run cache, nothing is retrained."""
    run(["dvc", "exp", "run", "-S", "train.learning_rate=3e-4"], repo)  # B (cached if run before)
    out = run(["dvc", "exp", "run", "-S", "train.learning_rate=0.002"], repo)  # back to A
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    assert ran <= {"report"}  # redrawn in seconds (its page stays in git, so uncached)
    assert "Stage 'train' is cached - skipping run" in out
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    baseline = yaml.safe_load((repo / "baseline.lock").read_text())
    assert lock["stages"]["train"]["outs"] == baseline["stages"]["train"]["outs"]
    assert lock["stages"]["evaluate"]["outs"] == baseline["stages"]["evaluate"]["outs"]
    assert (repo / LOSS).read_text() == (repo / "baseline_loss.tsv").read_text()  # A's curves


def test_starting_from_a_pretrained_base_is_one_param_away(repo, tmp_path):
    """init=downscale from a base model: the base's tokenizer is wired in through params, the
    init model has the base's layers, and the generations file shows base, init and trained."""
    # in models/bases, which the stages reading model.base depend on (one outside is refused)
    base = "models/bases/base"
    shutil.copytree(repo / "models/trained", repo / base)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "before surgery"], repo)
    out = run(["dvc", "exp", "run", "-S", "model.init=downscale", "-S", f"model.base={base}"], repo)
    assert "Running stage 'init-model'" in out and "Running stage 'train'" in out
    lineage = json.loads((repo / "models/init/lineage.json").read_text())
    assert lineage["init"] == "downscale" and lineage["base_layers"] == 2 and len(lineage["layers"]) == 1
    assert metrics(repo, "tokenizer")["origin"] == str(base)
    generations = (repo / "metrics/generations.md").read_text()
    assert f"**base ({base})**" in generations and "**init (downscale)**" in generations
    scores = metrics(repo, "eval")  # the base is scored beside init and trained, same keys
    assert set(scores["lm_eval"]) == set(scores["val"]) - {"perplexity_ratio"} == {"base", "init", "trained"}


def test_a_merge_sweep_and_gguf_export_are_params_away(repo):
    """merge.method and export.types on a finished run: only merge, finetune (a pass-through),
    evaluate, export and report run; the sweep is scored and drawn, and the final merged model is exported and checked."""
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "before merge"], repo)
    out = run(["dvc", "exp", "run", "-S", "merge.method=slerp", "-S", "merge.weights=[0.25,0.75]",
               "-S", "merge.select=0.75", "-S", "export.types=[F16,Q4_0]"], repo)
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    assert ran == {"merge", "finetune", "evaluate", "export", "report"}  # finetune: a pass-through
    # the init is the downscaled base left by the test before (dvc exp run applies its params to
    # the workspace), not a random init: no warning; with a random init there would be one
    init = json.loads((repo / "models/init/lineage.json").read_text())["init"]
    assert ("merge: warning: model.init is random" in out) == (init == "random")
    sweep = metrics(repo, "eval")["merge"]["sweep"]
    assert [r["model"] for r in sweep] == ["init", "merged_25", "merged_75", "trained"]
    assert all(r["val_bits_per_byte"] > 0 for r in sweep)
    assert (repo / "metrics/figures/forgetting.png").exists()
    export = metrics(repo, "export")
    assert export["model"] == "merged (slerp, w=0.75)" and sorted(export["files"]) == ["F16", "Q4_0"]
    assert sorted(p.name for p in (repo / "models/gguf").iterdir()) == ["model-F16.gguf", "model-Q4_0.gguf"]
    assert export["files"]["F16"]["transformers"]["max_abs_logit_diff"] < 1e-2
    assert export["files"]["Q4_0"]["bytes"] < 0.7 * export["files"]["F16"]["bytes"]
    assert "export: Q4_0: model-Q4_0.gguf" in out


def test_a_classifier_fine_tune_is_params_and_a_data_file_away(repo):
    """Labelled data in data/finetune and finetune.task on a finished run: only finetune,
    export (which reads its output: a pass-through here) and report run, the pretraining
    stages do not; the classifier and the init's score side by side."""
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "before finetune"], repo)
    words = "the of and a to in is it that for on with as was by at be this from or an are".split()
    lines = [json.dumps({"id": f"r{i}", "text": f"{('cat', 'dog')[i % 2]} " + " ".join(words[i % 7:i % 7 + 9]),
                         "label": ("cat", "dog")[i % 2]}) + "\n" for i in range(160)]
    (repo / "data/finetune/labels.jsonl").write_text("".join(lines))
    out = run(["dvc", "exp", "run", "-S", "finetune.task=classify", "-S", "finetune.path=data/finetune/labels.jsonl",
               "-S", "finetune.max_steps=12", "-S", "finetune.warmup_steps=2", "-S", "finetune.micro_batch_size=8",
               "-S", "finetune.eval_every=6", "-S", "export.types=[]"], repo)
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    assert ran == {"finetune", "export", "report"}
    tuned = metrics(repo, "finetune")
    assert tuned["task"] == "classify" and set(tuned["backbones"]) == {"final", "init"}
    assert tuned["examples"] == {"train": 128, "validation": 16, "test": 16}
    assert set(tuned["transfer_gain"]["init"]) == {"accuracy", "f1_macro"}
    assert (repo / "metrics/figures/confusion.png").exists()
    assert json.loads((repo / "models/finetuned/config.json").read_text())["id2label"] == {"0": "cat", "1": "dog"}
