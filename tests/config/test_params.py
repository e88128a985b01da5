"""The real params.yaml and the profiles load into their typed configs; bad keys fail."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pretrain.config import SECTIONS, load_all, load_section, section_class
from pretrain.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
PROFILES = [ROOT / "params.yaml", ROOT / "profiles" / "debug.yaml", ROOT / "profiles" / "continued.yaml",
            ROOT / "profiles" / "finetune.yaml"]


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.name)
def test_every_section_loads(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # paths in params are relative to the repository
    base = yaml.safe_load(path.read_text())["model"]["base"]
    if base:  # the continued profile's base: the user puts one there; without it, one line
        with pytest.raises(ConfigError, match=f"model.base: '{base}' does not exist"):
            load_all(path)
        (tmp_path / base).mkdir(parents=True)
    data = yaml.safe_load(path.read_text())["finetune"]["path"]
    if data:  # the finetune profile's data: copied there by the user (docs/finetune.md)
        with pytest.raises(ConfigError, match=f"finetune.path: nothing matches '{data}'"):
            load_all(path)
        (tmp_path / data).mkdir(parents=True)
    configs = load_all(path)
    assert set(configs) == set(SECTIONS)
    for name, cfg in configs.items():
        assert isinstance(cfg, section_class(name))


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.name)
def test_profiles_spell_out_every_key(path):
    """Every field of every section appears in the file, so users see what they can change."""
    data = yaml.safe_load(path.read_text())
    assert set(data) == set(SECTIONS)
    for name in SECTIONS:
        assert set(data[name]) == {f for f in section_class(name).__dataclass_fields__}, name


def test_continued_profile_is_the_default_with_a_continued_pretraining_schedule():
    """Only the init and the schedule differ from params.yaml (the profile cannot drift)."""
    default = yaml.safe_load(PROFILES[0].read_text())
    continued = yaml.safe_load(PROFILES[2].read_text())
    changed = {(section, key) for section in default for key in default[section]
               if default[section][key] != continued[section][key]}
    assert changed == {("model", "init"), ("model", "base"), ("train", "learning_rate"),
                       ("train", "warmup_steps")}
    assert continued["model"]["init"] == "pretrained"
    assert continued["train"]["learning_rate"] <= 3e-4 < default["train"]["learning_rate"]


def test_finetune_profile_is_the_default_with_a_classifier_fine_tune():
    default = yaml.safe_load(PROFILES[0].read_text())
    tuned = yaml.safe_load(PROFILES[3].read_text())
    changed = {section for section in default for key in default[section]
               if default[section][key] != tuned[section][key]}
    assert changed == {"finetune"}
    assert tuned["finetune"]["task"] == "classify" and tuned["finetune"]["compare"] == ["init"]


def test_debug_profile_differs_only_in_values():
    default = yaml.safe_load(PROFILES[0].read_text())
    debug = yaml.safe_load(PROFILES[1].read_text())
    assert debug["model"]["preset"] == "debug"
    assert debug["train"]["max_steps"] < default["train"]["max_steps"]


def write(tmp_path, text):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_unknown_key_names_key_and_file(tmp_path):
    path = write(tmp_path, "train:\n  learnig_rate: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_section("train", path)
    message = str(err.value)
    assert "train.learnig_rate" in message and str(path) in message and "unknown key" in message
    assert "\n" not in message


def test_unknown_nested_key(tmp_path):
    path = write(tmp_path, "clean:\n  language:\n    min_scor: 0.5\n")
    with pytest.raises(ConfigError, match=r"clean\.language\.min_scor: unknown key"):
        load_section("clean", path)


def test_unknown_section(tmp_path):
    path = write(tmp_path, "trian:\n  max_steps: 3\n")
    with pytest.raises(ConfigError, match="unknown section 'trian'"):
        load_all(path)


@pytest.mark.parametrize("text, match", [
    ("train:\n  max_steps: ten\n", r"train\.max_steps: expected int, got str 'ten'"),
    ("train:\n  max_steps: 2.5\n", r"train\.max_steps: expected int, got float"),
    ("train:\n  compile: 1\n", r"train\.compile: expected bool, got int"),
    ("train:\n  learning_rate: -0.1\n", r"train\.learning_rate: expected a value > 0"),
    ("pack:\n  seq_len: 0\n", r"pack\.seq_len: expected a value > 0"),
    ("clean:\n  filters: language\n", r"clean\.filters: expected a list"),
    ("train:\n  schedule: cosin\n", r"train\.schedule: expected one of"),
    ("download:\n  source: files\n", r"download\.path: required"),
])
def test_bad_values_fail_with_one_line(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match) as err:
        load_all(write(tmp_path, text))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("section", ["clean", "dedup"])
def test_the_old_workers_keys_say_where_the_setting_moved(tmp_path, section):
    """clean.workers and dedup.workers became executor.workers (one setting for every data
    stage): a params.yaml written before says so instead of "unknown key"."""
    path = write(tmp_path, f"{section}:\n  workers: 2\n")
    with pytest.raises(ConfigError) as err:
        load_all(path)
    assert str(err.value) == (f"{path}: {section}.workers: moved to executor.workers "
                              "(one setting for every data stage)")


def test_the_old_export_check_tokens_says_where_it_moved(tmp_path):
    """export.check_tokens ("greedy tokens ... each file must reproduce", never enforced) became
    export.greedy_tokens, reported only; the pass criteria have their own keys."""
    path = write(tmp_path, "export:\n  check_tokens: 16\n")
    with pytest.raises(ConfigError) as err:
        load_all(path)
    assert str(err.value) == (f"{path}: export.check_tokens: moved to export.greedy_tokens (greedy tokens are "
                              "reported, not required; each file must meet export.min_top1_agreement and "
                              "export.max_perplexity_gap_percent)")


@pytest.mark.parametrize("text, match", [
    ("executor:\n  name: dask\n", r"executor\.name: expected one of \['local', 'ray'\], got 'dask'"),
    ("executor:\n  workers: -1\n", r"executor\.workers: expected a value >= 0"),
    ("executor:\n  retries: -1\n", r"executor\.retries: expected a value >= 0"),
    ("executor:\n  address: auto\n", r"executor\.address: only used with name: ray \(name is 'local'\)"),
])
def test_bad_executor_settings_fail_with_one_line(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load_all(write(tmp_path, text))


def test_the_ray_executor_without_ray_installed_fails_with_the_params(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    with pytest.raises(ConfigError, match=r'executor\.name: ray needs Ray installed: pip install -e "\.\[ray\]"'):
        load_all(write(tmp_path, "executor:\n  name: ray\n"))


def test_float_written_without_dot_is_a_float(tmp_path):
    """PyYAML reads 3e-4 as a string; `dvc exp run -S train.learning_rate=3e-4` writes it so."""
    cfg = load_section("train", write(tmp_path, "train:\n  learning_rate: 3e-4\n"))
    assert cfg.learning_rate == pytest.approx(3e-4)


def test_configs_are_frozen():
    cfg = load_section("train", PROFILES[0])
    with pytest.raises(Exception):
        cfg.learning_rate = 1.0


def test_stage_reports_bad_params_in_one_line(tmp_path):
    params = write(tmp_path, "model:\n  num_layerz: 3\n")
    result = subprocess.run(
        [sys.executable, str(ROOT / "stages" / "download.py"), "--params", str(params),
         "--out", str(tmp_path / "raw"), "--metrics", str(tmp_path / "m.json")],
        capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {params}: model.num_layerz: unknown key (expected one of "
        + str(sorted(section_class("model").__dataclass_fields__)) + ")"]
    assert not (tmp_path / "raw").exists()
