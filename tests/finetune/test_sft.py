"""finetune task sft end to end: a made chat task the model learns, ChatML added to a tokenizer
without a template, the assistant-only loss, and a model that chats in transformers' pipeline."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from pretrain.config.finetune import FinetuneConfig
from pretrain.config.model import ModelConfig
from pretrain.config.tokens import TokenizerConfig
from pretrain.config.train import TrainConfig
from pretrain.errors import DataError
from pretrain.finetune.runner import finetune

ANIMALS = {"cat": "meow", "dog": "woof", "cow": "moo", "duck": "quack"}


def write_chats(path: Path, n: int = 200, seed: int = 0) -> Path:
    """Alpaca, ShareGPT and messages records mixed (format auto): "what does the <animal> say"
    answered with its sound."""
    rng, lines = random.Random(seed), []
    for i in range(n):
        animal = rng.choice(sorted(ANIMALS))
        question, answer = f"what does the {animal} say", ANIMALS[animal]
        record = [{"instruction": question, "output": answer},
                  {"conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]},
                  {"messages": [{"role": "user", "content": question},
                                {"role": "assistant", "content": answer}]}][i % 3]
        lines.append(json.dumps({"id": f"c{i}", **record}) + "\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def chat_root(tmp_path_factory) -> Path:
    from pretrain.model.build import init_model
    from pretrain.tokens.tokenizer import train_bpe

    root = tmp_path_factory.mktemp("sft")
    write_chats(root / "chats.jsonl")
    texts = [f"what does the {a} say {s}" for a, s in ANIMALS.items()] * 20
    init_model(ModelConfig(preset="debug"), train_bpe(TokenizerConfig(vocab_size=300), iter(texts)),
               root / "init")
    return root


def config(root: Path, **overrides) -> FinetuneConfig:
    settings = dict(task="sft", path=str(root / "chats.jsonl"), compare=[], max_steps=80, warmup_steps=5,
                    learning_rate=3e-3, micro_batch_size=16, max_length=32, eval_every=40,
                    checkpoint_every=0, prompts=["what does the cow say"], max_new_tokens=4)
    return FinetuneConfig(**{**settings, **overrides})


def run(root: Path, out: Path, cfg: FinetuneConfig) -> dict:
    return finetune(cfg, TrainConfig(precision="fp32"), root / "init", root / "init", out / "model",
                    out / "live", None)


def test_learns_the_answers_and_chats_in_a_transformers_pipeline(chat_root, tmp_path):
    from transformers import pipeline

    report = run(chat_root, tmp_path, config(chat_root, compare=["init"]))
    final = report["backbones"]["final"]
    assert final["added_tokens"] == ["<|im_start|>", "<|im_end|>"]
    assert report["examples"] == {"train": 180, "validation": 20}
    assert final["val_loss"] < 0.1
    assert final["answers"] == [{"prompt": "what does the cow say", "answer": "moo"}]
    chat = pipeline("text-generation", model=str(tmp_path / "model"), device="cpu")
    reply = chat([{"role": "user", "content": "what does the duck say"}], max_new_tokens=4, do_sample=False)
    assert reply[0]["generated_text"][-1] == {"role": "assistant", "content": "quack"}
    assert report["transfer_gain"]["init"] == {"val_loss": 0.0}  # the final model is the init here


def test_the_loss_counts_only_the_assistant_tokens(chat_root, tmp_path):
    """A model whose weights never change (learning rate ~0) scores its validation loss on the
    assistant tokens alone: equal to a hand-computed loss over them."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pretrain.finetune.chat import IGNORE_INDEX, prepare_tokenizer, resize_for_template, sft_rows
    from pretrain.sources.records import Skipped

    tok = AutoTokenizer.from_pretrained(str(chat_root / "init"))
    prepare_tokenizer(tok, None)
    model = AutoModelForCausalLM.from_pretrained(str(chat_root / "init"))
    resize_for_template(model, tok, "<|im_end|>")
    conv = [("a", [{"role": "user", "content": "what does the cat say"},
                   {"role": "assistant", "content": "meow"}])]
    row = torch.from_numpy(sft_rows(tok, conv, 32, Skipped()))[0]
    kept = row[1] != IGNORE_INDEX
    assert tok.decode(row[1][kept]) == "meow<|im_end|>"
    loss = model(input_ids=row[0][None], labels=row[1][None]).loss
    logits = model(input_ids=row[0][None]).logits[0, :-1]
    by_hand = torch.nn.functional.cross_entropy(logits[kept[1:]], row[0][1:][kept[1:]])
    assert torch.allclose(loss, by_hand)


def test_conversations_that_cannot_be_used_are_counted_or_stop_in_one_line(chat_root, tmp_path):
    path = tmp_path / "mixed.jsonl"
    good = json.loads((chat_root / "chats.jsonl").read_text().splitlines()[2])
    bad = [{"messages": [{"role": "user", "content": "hi"}]},  # no assistant turn
           {"messages": [{"role": "robot", "content": "hi"}, {"role": "assistant", "content": "x"}]}]
    path.write_text("".join(json.dumps({**good, "id": f"g{i}"}) + "\n" for i in range(40))
                    + "".join(json.dumps(b) + "\n" for b in bad))
    report = run(chat_root, tmp_path / "a", config(chat_root, path=str(path), max_steps=12, prompts=[]))
    assert report["skipped"]["skipped"] == {"no_assistant_turn": 1, "unknown_role": 1}  # records
    assert report["examples"]["train"] + report["examples"]["validation"] == 40
    path.write_text("".join(json.dumps({**good, "id": "same"}) + "\n" for i in range(40)))
    report = run(chat_root, tmp_path / "c", config(chat_root, path=str(path), max_steps=12, prompts=[]))
    assert report["examples"]["train"] + report["examples"]["validation"] == 40  # none lost to a shared id
    assert report["ids_made_unique"] == 39
    path.write_text(json.dumps({"text": "no chat here"}) + "\n")
    with pytest.raises(DataError) as info:
        run(chat_root, tmp_path / "b", config(chat_root, path=str(path)))
    assert "\n" not in str(info.value) and "unknown_format" in str(info.value)


def test_the_sft_model_exports_as_gguf_with_its_chat_template(chat_root, tmp_path):
    import gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pretrain.export.gguf import write_gguf

    run(chat_root, tmp_path, config(chat_root, max_steps=6, prompts=[]))
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "model"))
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "model"))
    write_gguf(model, tokenizer, tmp_path / "model.gguf", "F32", name="sft")
    reader = gguf.GGUFReader(str(tmp_path / "model.gguf"))
    template = reader.fields["tokenizer.chat_template"]
    written = bytes(template.parts[template.data[0]]).decode()
    assert "{% generation %}" in tokenizer.chat_template and "{% generation %}" not in written
    assert written == tokenizer.chat_template.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    eot = reader.fields["tokenizer.ggml.eot_token_id"]
    assert int(eot.parts[eot.data[0]][0]) == end
    types = reader.fields["tokenizer.ggml.token_type"]
    assert int(types.parts[types.data[end]][0]) == gguf.TokenType.CONTROL


class Interrupt(Exception):
    pass


def test_resume_is_bit_exact(chat_root, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from pretrain.finetune.sft import InstructionTuning

    cfg = config(chat_root, max_steps=20, eval_every=5, checkpoint_every=5, prompts=[],
                 early_stopping_metric="loss", early_stopping_patience=10)
    finetune(cfg, TrainConfig(precision="fp32"), chat_root / "init", chat_root / "init", tmp_path / "a" / "model",
             tmp_path / "a" / "live", tmp_path / "ck-a")
    original = InstructionTuning.before_step

    def stop_at_12(self, step, model):
        if step == 12:
            raise Interrupt
        original(self, step, model)

    monkeypatch.setattr(InstructionTuning, "before_step", stop_at_12)
    args = (cfg, TrainConfig(precision="fp32"), chat_root / "init", chat_root / "init", tmp_path / "b" / "model",
            tmp_path / "b" / "live", tmp_path / "ck-b")
    with pytest.raises(Interrupt):
        finetune(*args)
    monkeypatch.setattr(InstructionTuning, "before_step", original)
    finetune(*args)
    a = load_file(str(tmp_path / "a" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_lora_learns_the_answers_and_trains_the_added_token_rows(chat_root, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    report = run(chat_root, tmp_path / "long", config(chat_root, lora_r=8, learning_rate=1e-2, max_steps=160))
    assert report["backbones"]["final"]["answers"] == [{"prompt": "what does the cow say", "answer": "moo"}]
    run(chat_root, tmp_path / "short", config(chat_root, lora_r=8, learning_rate=1e-2, max_steps=6, prompts=[]))
    long, short = (load_file(str(tmp_path / name / "model" / "model.safetensors")) for name in ("long", "short"))
    assert not any("lora" in k or "token_adapter" in k for k in long)  # adapters merged in
    new = AutoTokenizer.from_pretrained(str(tmp_path / "long" / "model")).convert_tokens_to_ids(
        ["<|im_start|>", "<|im_end|>"])
    old = [i for i in range(long["model.embed_tokens.weight"].shape[0]) if i not in new]
    # the pretrained rows stay frozen under LoRA; the added rows train (same start, other end)
    assert torch.equal(long["model.embed_tokens.weight"][old], short["model.embed_tokens.weight"][old])
    assert not torch.equal(long["model.embed_tokens.weight"][new], short["model.embed_tokens.weight"][new])
