"""Cross-key checks: params whose keys pass one by one but not together stop every stage at its
start, in one line naming the keys, instead of failing (or going silently wrong) stages later.
Against the preset, against a local base's config.json or GGUF metadata, and (init-model)
against a hub base's config once loaded."""

import json
import sys
from pathlib import Path

import pytest

from pretrain.config import check_loaded_model, load_all
from pretrain.config.checks import CHECKS
from pretrain.config.shape import config_shape, gguf_metadata, gguf_shape
from pretrain.config.train import launcher_processes
from pretrain.errors import ConfigError

LLAMA = {"model_type": "llama", "num_hidden_layers": 4, "hidden_size": 64, "num_attention_heads": 4,
         "num_key_value_heads": 2, "intermediate_size": 176, "max_position_embeddings": 512,
         "vocab_size": 300, "tie_word_embeddings": False}
"""A local base's config.json (the debug preset's sizes, 4 layers)."""

BYTE_LEVEL = {"model": {"type": "BPE", "vocab": {}}, "pre_tokenizer": {"type": "ByteLevel", "use_regex": True}}
SENTENCEPIECE = {"model": {"type": "BPE", "vocab": {}}, "pre_tokenizer": {"type": "Metaspace"}}


def folder(path: Path, config: dict, tokenizer: dict | None = None) -> str:
    """A model folder with ``config`` as its config.json (and ``tokenizer`` as tokenizer.json)."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(config))
    if tokenizer is not None:
        (path / "tokenizer.json").write_text(json.dumps(tokenizer))
    return path.as_posix()


def gguf_file(path: Path, context: int, tokenizer: str = "gpt2", arch: str = "llama") -> str:
    """A GGUF file with the metadata llama.cpp's converter writes first, a vocabulary after it,
    and one tensor (gguf-py's writer)."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_context_length(context)
    writer.add_embedding_length(64)
    writer.add_block_count(4)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_tokenizer_model(tokenizer)
    writer.add_token_list([f"t{i}" for i in range(300)])
    writer.add_tensor("token_embd.weight", np.zeros((300, 64), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.as_posix()


def error(tmp_path: Path, text: str) -> str:
    """The one-line ConfigError of loading ``text`` as params.yaml, without the file name."""
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_all(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    return message.removeprefix(f"{path}: ")


# Each case: the check that must catch it, params, and the start of the message.
CASES = {
    "odd-head-dim": ("model sizes", "model:\n  preset: debug\n  hidden_size: 60\n  num_heads: 4\n  num_kv_heads: 2\n",
                     "model.hidden_size 60 / model.num_heads 4 gives head_dim 15: RoPE rotates pairs of "
                     "dimensions, so head_dim must be even"),
    "heads-not-dividing": ("model sizes", "model:\n  hidden_size: 100\n  num_heads: 8\n",
                           "model.num_heads: expected a divisor of hidden_size 100, got 8"),
    "rows-past-context": ("rows fit the context", "model:\n  max_position_embeddings: 32\npack:\n  seq_len: 64\n",
                          "pack.seq_len 64 is longer than the model's context, model.max_position_embeddings 32: "
                          "rows would train positions past it, and the exported GGUF would declare a context "
                          "of 32; lower pack.seq_len or raise model.max_position_embeddings"),
    "rows-past-preset-context": ("rows fit the context", "pack:\n  seq_len: 2048\n",
                                 "pack.seq_len 2048 is longer than the model's context, "
                                 "model.max_position_embeddings 1024 (preset small)"),
    "generation-past-context": ("generation fits the context",
                                "model:\n  max_position_embeddings: 32\npack:\n  seq_len: 32\n",
                                "evaluate.max_new_tokens 48 leaves no room for a prompt in the model's "
                                "context, model.max_position_embeddings 32"),
    "export-check-past-context": ("generation fits the context",
                                  "model:\n  max_position_embeddings: 32\npack:\n  seq_len: 32\nevaluate:\n"
                                  "  max_new_tokens: 8\nexport:\n  types: [F16]\n  greedy_tokens: 40\n",
                                  "export.greedy_tokens 40 leaves no room for a prompt"),
    "warmup-past-max-steps": ("warm-up", "train:\n  warmup_steps: 40\n  max_steps: 30\n",
                              "train.warmup_steps 40 is not below train.max_steps 30: the learning rate would "
                              "reach its peak train.learning_rate 0.001 never: 75% of it at the last step"),
    "warmup-equals-max-steps": ("warm-up", "train:\n  warmup_steps: 30\n  max_steps: 30\n",
                                "train.warmup_steps 30 is not below train.max_steps 30: the learning rate would "
                                "reach its peak train.learning_rate 0.001 only at the last step"),
    "warmup-past-token-budget": ("warm-up", "train:\n  warmup_steps: 20\n  max_steps: null\n  max_tokens: 20000\n",
                                 "train.warmup_steps 20 is not below the 10 optimizer steps of train.max_tokens "
                                 "20000 (ceil(20000 / (8 rows x 1 micro-batches x pack.seq_len 256)))"),
    "batch-split": ("batch split", "train:\n  launcher: accelerate launch --multi_gpu --num-processes=3\n",
                    "train.micro_batch_size 8 cannot be split evenly among the 3 processes of train.launcher"),
    "deepspeed-optimizer": ("deepspeed", "train:\n  deepspeed: {zero_optimization: {stage: 2}, optimizer: {type: Adam}}\n",
                            "train.deepspeed.optimizer: the optimizer comes from train.optimizer"),
    "deepspeed-stage": ("deepspeed", "train:\n  deepspeed: {zero_optimization: {stage: 0}}\n",
                        "train.deepspeed.zero_optimization.stage: expected 1, 2 or 3, got 0"),
    "deepspeed-micro-batch": ("deepspeed", "train:\n  launcher: accelerate launch --num_processes 2\n"
                              "  deepspeed: {zero_optimization: {stage: 2}, train_micro_batch_size_per_gpu: 8}\n",
                              "train.deepspeed.train_micro_batch_size_per_gpu: 8 contradicts the train params "
                              "(4 for 2 processes)"),
    "fp16-sharded": ("fp16 sharded", "train:\n  precision: fp16\n  sharding: full_shard\n"
                     "  launcher: torchrun --nproc-per-node 2\n",
                     "train.precision fp16 with train.sharding full_shard: fp16 loss scaling is not supported"),
    "export-classifier": ("exported model", "export:\n  model: finetuned\n",
                          "export.model: finetuned exports the sft model, but finetune.task is none"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_keys_that_do_not_go_together_fail_in_one_line_naming_them(tmp_path, case):
    _, text, message = CASES[case]
    assert error(tmp_path, text).startswith(message)


def base_cases(tmp_path: Path) -> dict[str, tuple[str, str, str]]:
    """Cases against a local base or other model (made in ``tmp_path``): check, params, message."""
    b = tmp_path / "bases"
    short = folder(b / "short", {**LLAMA, "max_position_embeddings": 32})
    gpt2 = folder(b / "gpt2", {"model_type": "gpt2", "n_layer": 4, "n_embd": 64, "n_head": 4, "n_positions": 32})
    spm = folder(b / "spm", LLAMA, SENTENCEPIECE)
    wide = folder(b / "wide", {**LLAMA, "hidden_size": 128})
    phi = folder(b / "phi", {**LLAMA, "model_type": "phi"})
    llama = folder(b / "llama", LLAMA, BYTE_LEVEL)
    short_gguf = gguf_file(b / "short.gguf", context=32)
    spm_gguf = gguf_file(b / "spm.gguf", context=512, tokenizer="llama")
    return {
        "folder-context": ("rows fit the context", f"model:\n  init: pretrained\n  base: {short}\n",
                           f"pack.seq_len 256 is longer than the model's context, max_position_embeddings 32 in "
                           f"model.base '{short}' config.json: rows would train positions past it"),
        "gpt2-context": ("rows fit the context", f"model:\n  init: pretrained\n  base: {gpt2}\n",
                         f"pack.seq_len 256 is longer than the model's context, n_positions 32 in model.base '{gpt2}'"),
        "gguf-context": ("rows fit the context", f"model:\n  init: upscale\n  base: {short_gguf}\n",
                         f"pack.seq_len 256 is longer than the model's context, llama.context_length 32 in "
                         f"model.base '{short_gguf}'"),
        "downscale-depth": ("surgery depth", f"model:\n  init: downscale\n  base: {llama}\n  num_layers: 4\n",
                            "model.num_layers: downscale of a 4-layer base: num_layers is one of 1, 2, 3; got 4"),
        "upscale-architecture": ("surgery depth", f"model:\n  init: upscale\n  base: {phi}\n",
                                 "model.init: upscale (depth surgery) needs to know where 'phi' models keep their layers"),
        "tokenizer-path": ("base tokenizer", f"model:\n  init: pretrained\n  base: {llama}\ntokenizer:\n  path: {spm}\n",
                           f"tokenizer.path: '{spm}' conflicts with model.base '{llama}'"),
        "export-gpt2": ("export architecture", f"model:\n  init: pretrained\n  base: {gpt2}\npack:\n  seq_len: 32\n"
                        "evaluate:\n  max_new_tokens: 8\nexport:\n  types: [F16]\n  greedy_tokens: 8\n",
                        f"export.types ['F16']: the GGUF writer follows llama.cpp's Llama conversion (model_type "
                        f"'llama'), but model.base '{gpt2}' is a 'gpt2' model"),
        "export-sentencepiece": ("export tokenizer", f"model:\n  init: pretrained\n  base: {spm}\nexport:\n  types: [Q8_0]\n",
                                 f"export.types ['Q8_0']: the tokenizer of model.base '{spm}' is BPE with "
                                 "pre-tokenizer 'Metaspace'"),
        "export-gguf-tokenizer": ("export tokenizer", f"tokenizer:\n  path: {spm_gguf}\nexport:\n  types: [F16]\n",
                                  f"export.types ['F16']: the tokenizer of tokenizer.path '{spm_gguf}' is a 'llama' "
                                  "tokenizer (GGUF tokenizer.ggml.model), not byte-level BPE"),
        "merge-other": ("merge shapes", f"model:\n  init: pretrained\n  base: {llama}\nmerge:\n  method: linear\n"
                        f"  other: {wide}\n",
                        f"merge.other: hidden_size 128 in merge.other '{wide}' config.json against the model "
                        f"trained's hidden_size 64 in model.base '{llama}' config.json"),
        "merge-other-preset": ("merge shapes", f"merge:\n  method: slerp\n  other: {llama}\n",
                               f"merge.other: num_hidden_layers 4 in merge.other '{llama}' config.json against the model "
                               "trained's model.num_layers 6 (preset small)"),
    }


@pytest.mark.parametrize("case", ["folder-context", "gpt2-context", "gguf-context", "downscale-depth",
                                  "upscale-architecture", "tokenizer-path", "export-gpt2", "export-sentencepiece",
                                  "export-gguf-tokenizer", "merge-other", "merge-other-preset"])
def test_a_local_base_is_checked_against_its_own_config(tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    _, text, message = base_cases(Path("."))[case]
    assert error(Path("."), text).startswith(message)


def test_every_check_has_a_case_that_it_catches(tmp_path):
    """The registry and the cases above cover each other (a new check comes with its case)."""
    caught = {check for check, _, _ in [*CASES.values(), *base_cases(tmp_path).values()]}
    assert caught | {"packages"} == set(CHECKS)


@pytest.mark.parametrize("text, module", [
    ("train:\n  report_to: [wandb]\n", "wandb"),
    ("train:\n  deepspeed: {zero_optimization: {stage: 2}}\n", "deepspeed"),
])
def test_a_package_the_train_params_need_is_checked_before_any_work(tmp_path, monkeypatch, text, module):
    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    assert error(tmp_path, text).endswith(f"installed (pip install 'pretrain[{module}]')")


@pytest.mark.parametrize("text", [
    "model:\n  max_position_embeddings: 256\npack:\n  seq_len: 256\n",    # rows as long as the context
    "train:\n  warmup_steps: 29\n  max_steps: 30\n",
    "train:\n  warmup_steps: 0\n  max_steps: 1\n",
    "train:\n  launcher: accelerate launch --multi_gpu --num_processes 4\n",
    "train:\n  launcher: accelerate launch --config_file multi.yaml\n",   # processes unknown: the train stage checks
    "train:\n  precision: fp16\n  sharding: full_shard\n",                  # one process: sharding has no effect
    "model:\n  preset: debug\n  hidden_size: 96\n  num_heads: 4\n  num_kv_heads: 2\n",   # head_dim 24
    "model:\n  init: pretrained\n  base: org/name\n",                       # a hub base: checked at init-model
])
def test_keys_that_go_together_pass(tmp_path, monkeypatch, text):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(text)
    load_all(tmp_path / "params.yaml")


def test_a_hub_base_is_checked_once_loaded(tmp_path):
    """init-model runs the checks again on the config it loaded (stages/init_model.py)."""
    (tmp_path / "params.yaml").write_text("model:\n  init: pretrained\n  base: org/name\n")
    configs = load_all(tmp_path / "params.yaml")
    check_loaded_model(configs, LLAMA)  # context 512 >= seq_len 256
    with pytest.raises(ConfigError) as caught:
        check_loaded_model(configs, {**LLAMA, "max_position_embeddings": 128})
    assert str(caught.value) == (
        "params.yaml: pack.seq_len 256 is longer than the model's context, max_position_embeddings 128 in "
        "model.base 'org/name': rows would train positions past it, and the exported GGUF would declare a "
        "context of 128; lower pack.seq_len")


@pytest.mark.parametrize("launcher, processes", [
    ("python", 1), ("python3.11 -u", 1), ("/usr/bin/python3", 1),
    ("python -m torch.distributed.run --nproc_per_node 2", 2), ("python -m accelerate.commands.launch", None),
    ("accelerate launch --multi_gpu --num_processes 8", 8), ("accelerate launch --num-processes=2", 2),
    ("accelerate launch --num_machines 2 --num_processes 16 --machine_rank 0", 16),
    ("torchrun --nproc_per_node 4", 4), ("torchrun --nnodes 2 --nproc-per-node=4", 8),
    ("torchrun --nnodes 1:4 --nproc_per_node 4", None), ("torchrun --nproc_per_node gpu", None),
    ("accelerate launch", None), ("accelerate launch --config_file ds.yaml", None),
])
def test_the_processes_a_launcher_starts(launcher, processes):
    assert launcher_processes(launcher) == processes


def test_gguf_metadata_is_read_without_the_vocabulary(tmp_path):
    """The header reader agrees with gguf-py's GGUFReader on every scalar key it reads, and stops
    before the vocabulary when asked."""
    from gguf import GGUFReader

    path = Path(gguf_file(tmp_path / "m.gguf", context=77))
    everything = gguf_metadata(path)
    reader = GGUFReader(path)
    scalars = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")
               and f.types and f.types[0].name not in ("ARRAY",)}
    assert everything == scalars
    shape = gguf_shape(path, "x")
    assert (shape.model_type, shape["context"], shape["num_layers"], shape["num_kv_heads"], shape["head_dim"]) == \
        ("llama", 77, 4, 2, 16)
    (tmp_path / "cut.gguf").write_bytes(path.read_bytes()[:40])
    assert gguf_metadata(tmp_path / "cut.gguf") is None  # pretrain.bases words a damaged file


def test_config_aliases_and_nested_text_configs():
    gpt2 = config_shape({"model_type": "gpt2", "n_layer": 12, "n_embd": 768, "n_head": 12, "n_positions": 1024}, "x")
    assert (gpt2["num_layers"], gpt2["hidden_size"], gpt2["num_kv_heads"], gpt2["head_dim"], gpt2["context"]) == \
        (12, 768, 12, 64, 1024)
    nested = config_shape({"model_type": "llava", "text_config": LLAMA}, "x")
    assert nested.model_type == "llava" and nested["context"] == 512
