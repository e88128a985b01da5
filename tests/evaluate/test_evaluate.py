"""Evaluation: validation loss, lm-eval tasks kept in the repository, generations."""

import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM

from pretrain.config.evaluate import EvaluateConfig
from pretrain.evaluate.harness import TASK_DIR, task_config
from pretrain.evaluate.runner import evaluate, generations_markdown, load_model
from pretrain.runtime import load_rows, validation_loss


def test_validation_loss_is_the_mean_next_token_cross_entropy(init_dir, tokens_dir):
    model = AutoModelForCausalLM.from_pretrained(init_dir).eval()
    rows = load_rows(tokens_dir, "val")[:5]
    got = validation_loss(model, rows, batch_size=2, max_batches=None, device=torch.device("cpu"), dtype=None)
    with torch.no_grad():
        ids = torch.from_numpy(rows)
        expected = model(input_ids=ids, labels=ids).loss.item()
    assert got["loss"] == pytest.approx(expected, rel=1e-5)
    assert got["perplexity"] == pytest.approx(math.exp(expected), rel=1e-5)
    assert got["tokens"] == rows.shape[0] * (rows.shape[1] - 1)


def test_untrained_model_is_near_uniform(init_dir, tokens_dir, tiny_tokenizer):
    model = AutoModelForCausalLM.from_pretrained(init_dir).eval()
    rows = load_rows(tokens_dir, "val")
    got = validation_loss(model, rows, 4, 2, torch.device("cpu"), None)
    assert got["loss"] == pytest.approx(math.log(len(tiny_tokenizer)), rel=0.05)


def test_local_task_data_path_is_made_absolute(tmp_path):
    config = task_config("pretrain_heldout_ppl", tmp_path / "packed")
    assert config["dataset_kwargs"]["data_files"]["test"] == str((tmp_path / "packed" / "heldout_docs.jsonl").resolve())
    assert (TASK_DIR / "pretrain_heldout_ppl.yaml").exists()
    assert task_config("hellaswag", tmp_path) == "hellaswag"  # passed through to lm-eval's registry


def test_generations_file_shows_every_model_for_every_prompt():
    text = generations_markdown(["a", "b"], {"init": ["1", "2"], "trained": ["3", "4"]})
    assert text.count("**init**") == 2 and text.count("**trained**") == 2
    assert "a3" in text and "b4" in text


def test_evaluate_reports_init_and_trained_and_runs_lm_eval_offline(init_dir, packed_dir, tokens_dir, monkeypatch,
                                                                  tmp_path):
    monkeypatch.chdir(tmp_path)  # lm-eval must not depend on the working directory
    cfg = EvaluateConfig(max_batches=2, lm_eval_limit=3, prompts=["def f(x):"], max_new_tokens=4)
    report, markdown = evaluate(cfg, init_dir, init_dir, packed_dir, tokens_dir)
    assert report["val"]["init"]["loss"] == pytest.approx(report["val"]["trained"]["loss"])
    assert set(report["lm_eval"]) == {"init", "trained"}  # every task for both models
    assert report["lm_eval"]["init"] == report["lm_eval"]["trained"]  # the same model twice here
    assert report["skipped"] == {}
    ppl = report["lm_eval"]["trained"]["pretrain_heldout_ppl"]
    assert set(ppl) == {"word_perplexity", "byte_perplexity", "bits_per_byte", "n_shot"}
    assert ppl["n_shot"] == 0
    assert ppl["bits_per_byte"] == pytest.approx(math.log2(ppl["byte_perplexity"]))
    mc = report["lm_eval"]["trained"]["pretrain_heldout_mc"]
    assert 0.0 <= mc["acc"] <= 1.0 and "acc_norm" in mc
    # The held-out documents share no text with training (the same documents would overlap fully).
    assert set(report["contamination"]) == {"heldout_documents", "heldout_multiple_choice"}
    assert report["contamination"]["heldout_documents"]["documents"] > 0
    assert report["val"]["init"]["bits_per_byte"] > 0
    assert "def f(x):" in markdown
    json.dumps(report)  # serialisable as metrics


def test_bits_per_byte_is_the_loss_over_the_text_bytes(init_dir, tokens_dir, tiny_tokenizer):
    from pretrain.evaluate.bits_per_byte import TextBytes

    model = AutoModelForCausalLM.from_pretrained(init_dir).eval()
    rows = load_rows(tokens_dir, "val")[:4]
    got = validation_loss(model, rows, 2, None, torch.device("cpu"), None, TextBytes(tiny_tokenizer))
    text_bytes = sum(len(tiny_tokenizer.decode(row[1:], skip_special_tokens=True).encode()) for row in rows)
    assert got["bits_per_byte"] == pytest.approx(got["loss"] * got["tokens"] / math.log(2) / text_bytes, rel=1e-3)


def test_contamination_flags_an_evaluation_set_copied_from_training(tmp_path, packed_dir, tokens_dir, tiny_tokenizer):
    import shutil

    from pretrain.evaluate.contamination import contamination

    data = tmp_path / "packed"
    shutil.copytree(packed_dir, data)
    clean = contamination(data, tokens_dir, tiny_tokenizer)["heldout_documents"]
    train_text = tiny_tokenizer.decode(load_rows(tokens_dir, "train")[5], skip_special_tokens=True)
    (data / "heldout_docs.jsonl").write_text(json.dumps({"id": "leak", "text": train_text}) + "\n")
    leaked = contamination(data, tokens_dir, tiny_tokenizer)["heldout_documents"]
    assert leaked["contaminated"] and leaked["ngram_overlap"] > 0.9
    assert clean["ngram_overlap"] < leaked["ngram_overlap"]


GENERAL = ("The river rose through the night, and by morning the low fields were under water. "
           "Farmers moved their animals to the hills while the town opened its school as a shelter.")


def test_general_text_and_few_shot_settings(init_dir, packed_dir, tokens_dir, tmp_path, monkeypatch):
    """Continued pretraining: a second held-out set of general text is scored for both models
    (forgetting), checked for contamination, and lm-eval takes the few-shot setting."""
    from pretrain.evaluate.bits_per_byte import TextBytes
    from pretrain.evaluate.general_text import read_texts, text_rows

    general = tmp_path / "general.jsonl"
    general.write_text("".join(json.dumps({"text": GENERAL * (i + 2)}) + "\n" for i in range(6))
                       + '{"text": "unterminated\n')
    monkeypatch.chdir(tmp_path)
    cfg = EvaluateConfig(max_batches=2, lm_eval_tasks=["pretrain_heldout_mc"], lm_eval_limit=3,
                         lm_eval_num_fewshot=1, prompts=["x"], max_new_tokens=2,
                         general_text=str(general))
    report, _ = evaluate(cfg, init_dir, init_dir, packed_dir, tokens_dir)
    model, tokenizer = load_model(init_dir, torch.device("cpu"))
    rows = text_rows(read_texts(general), tokenizer, load_rows(tokens_dir, "val").shape[1])
    direct = validation_loss(model, rows, 16, 2, torch.device("cpu"), None, TextBytes(tokenizer))
    assert set(report["general"]) == {"init", "trained"}
    assert report["general"]["init"]["loss"] == pytest.approx(direct["loss"], rel=1e-2)
    assert report["general"]["trained"]["bits_per_byte"] > 0
    assert report["contamination"]["general_text"]["documents"] == 6
    assert report["general_text"]["documents"] == 6  # what could not be used, counted
    assert report["general_text"]["skipped"] == {"malformed_json_line": 1}
    assert report["general_text"]["skipped_examples"] == {"malformed_json_line": ["general.jsonl:7"]}
    assert report["lm_eval"]["trained"]["pretrain_heldout_mc"]["n_shot"] == 1


def test_general_text_losses_are_counted_and_nothing_left_names_them(tmp_path):
    from pretrain.errors import DataError
    from pretrain.evaluate.general_text import read_texts
    from pretrain.sources.records import Skipped

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"body": "no text"}\n')
    skipped = Skipped()
    assert read_texts(bad, skipped) == ["fine"]
    assert skipped == {"missing_text_field": 1}
    assert skipped.examples["missing_text_field"] == [f"{bad.as_posix()}:2"]
    (tmp_path / "notes.odt").write_bytes(bytes(10))
    with pytest.raises(DataError) as err:
        read_texts(tmp_path / "notes.odt")
    assert str(err.value) == (f"evaluate.general_text: {tmp_path / 'notes.odt'}: no text found "
                              "(skipped: 1 file, 10 B, unsupported_file_type)")


def test_general_text_is_read_by_the_download_readers(tmp_path):
    """A JSON string may hold a raw U+2028, U+2029 or U+0085 (RFC 8259 escapes only control
    characters below U+0020): str.splitlines() broke such a record in two and stopped the
    stage. A text file that is not UTF-8 was read with errors="replace"; now it is decoded as
    download decodes it, or counted whole when its encoding cannot be told."""
    from pretrain.evaluate.general_text import read_texts
    from pretrain.sources.records import Skipped

    texts = ["line\u2028separator", "paragraph\u2029separator", "next\u0085line"]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n"
                                              for t in texts), encoding="utf-8")
    french = ("Le château se trouve au bord de la rivière. Les élèves étudient l'histoire de la "
              "région depuis des années, et leurs professeurs sont très fiers de leurs progrès. À "
              "la fin de l'été, on organise une fête où chacun apporte un plat préparé à la maison.")
    (tmp_path / "b.txt").write_bytes(french.encode("cp1252"))
    (tmp_path / "c.txt").write_bytes("café".encode("latin-1"))  # four bytes: cannot be told
    (tmp_path / "d.html").write_text("<p>markup</p>")  # download keeps HTML raw for clean
    (tmp_path / "e.warc.gz").write_bytes(b"")  # a WARC file's pages are HTML too
    skipped = Skipped()
    assert read_texts(tmp_path, skipped) == texts + [french]
    assert not skipped and skipped.decoded == {"cp1252": 1}
    assert skipped.files == {"encoding_uncertain": 1, "unsupported_file_type": 2}


def test_lm_eval_scores_a_multiple_choice_context_after_bos_as_training_did(init_dir, tiny_tokenizer):
    """Training rows start every document with BOS; lm-eval's HF model scores a context
    without it. The continuation's log-likelihood is the model's own, given BOS + context."""
    from lm_eval.api.instance import Instance

    from pretrain.evaluate.harness import document_lm
    from pretrain.tokens.tokenizer import document_ids, encode_texts

    model, tokenizer = load_model(init_dir, torch.device("cpu"))
    lm = document_lm(model, tokenizer, batch_size=1, max_length=64)
    context, continuation = "x = re.compile(r'(?P<s>", "\\d{2})') </s>"
    bos = tokenizer.bos_token_id
    context_enc, continuation_enc = lm._encode_pair(context, continuation)
    assert context_enc[0] == bos and (context_enc + continuation_enc).count(bos) == 1
    assert tokenizer.eos_token_id not in continuation_enc  # the literal "</s>" stays text
    assert lm.tok_encode("a <s> b") == encode_texts(tokenizer, ["a <s> b"])[0]  # rolling: prefix only
    request = Instance("loglikelihood", doc={}, arguments=(context, continuation), idx=0)
    (got, _), = lm.loglikelihood([request], disable_tqdm=True)
    ids = document_ids(tokenizer, context + continuation)[:-1]  # BOS, context, continuation
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
    n = len(continuation_enc)
    expected = sum(logprobs[i - 1, ids[i]].item() for i in range(len(ids) - n, len(ids)))
    assert got == pytest.approx(expected, rel=1e-4)


def test_an_evaluation_part_with_nothing_to_score_says_so(init_dir, packed_dir, tokens_dir, tmp_path, monkeypatch):
    import shutil

    data = tmp_path / "packed"
    shutil.copytree(packed_dir, data)
    (data / "heldout_mc.jsonl").write_text("")  # a held-out split too small for multiple choice
    monkeypatch.chdir(tmp_path)
    cfg = EvaluateConfig(max_batches=1, lm_eval_limit=2, prompts=[], max_new_tokens=1)
    report, _ = evaluate(cfg, init_dir, init_dir, data, tokens_dir)
    assert "no multiple-choice items" in report["skipped"]["lm_eval.pretrain_heldout_mc"]
    assert "contamination.heldout_multiple_choice" in report["skipped"]
    assert "pretrain_heldout_mc" not in report["lm_eval"]["trained"]
    assert "pretrain_heldout_ppl" in report["lm_eval"]["trained"]


@pytest.mark.parametrize("init, keys", [("random", ["init", "trained"]), ("pretrained", ["init", "trained"]),
                                        ("downscale", ["base", "init", "trained"]),
                                        ("upscale", ["base", "init", "trained"])])
def test_every_starting_point_is_scored_beside_the_trained_model(tmp_path, init, keys):
    """Continued pretraining scores the base as `init`; a cut or grown model also scores the
    base it came from, so every task has a base / init / trained comparison under stable keys."""
    from pretrain.evaluate.runner import models_to_score

    init_dir = tmp_path / "init"
    init_dir.mkdir()
    if init != "random":
        (init_dir / "lineage.json").write_text(json.dumps({"init": init, "base": "models/bases/b"}))
    scored = models_to_score(init_dir, tmp_path / "trained")
    assert [key for key, _, _, _ in scored] == keys
    assert scored[-2][1] == f"init ({init})"


def test_a_merge_sweep_is_scored_as_a_forgetting_curve(init_dir, packed_dir, tokens_dir, tmp_path, monkeypatch):
    """Every merged model is scored on the held-out split and the general text; the final one
    also gets lm-eval and generations; the sweep runs from the init (0) to the trained model (1)."""
    from pretrain.config.merge import MergeConfig
    from pretrain.evaluate.runner import sweep_lines
    from pretrain.merge.runner import merge

    trained = tmp_path / "trained"
    model = AutoModelForCausalLM.from_pretrained(init_dir)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)
    model.save_pretrained(trained)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (trained / name).write_bytes((init_dir / name).read_bytes())
    merge(MergeConfig(method="linear", weights=[0.25, 0.75], select=0.75), trained, init_dir, tmp_path / "merged")
    general = tmp_path / "general.txt"
    general.write_text("The quick brown fox jumps over the lazy dog. " * 40)
    monkeypatch.chdir(tmp_path)
    cfg = EvaluateConfig(max_batches=1, lm_eval_tasks=["pretrain_heldout_ppl"], lm_eval_limit=2,
                         general_text=str(general), prompts=["def f(x):"], max_new_tokens=2)
    report, markdown = evaluate(cfg, init_dir, trained, packed_dir, tokens_dir, tmp_path / "merged")
    keys = ["init", "trained", "merged_25", "merged_75"]
    assert list(report["val"])[:4] == keys and list(report["general"]) == keys
    assert set(report["lm_eval"]) == {"init", "trained", "merged_75"}  # the final merged model only
    assert "merged (linear, w=0.75)" in markdown and "w=0.25" not in markdown
    sweep = report["merge"]["sweep"]
    assert [(r["weight"], r["model"]) for r in sweep] == [(0.0, "init"), (0.25, "merged_25"),
                                                           (0.75, "merged_75"), (1.0, "trained")]
    assert report["merge"]["final"] == "merged_75"
    assert sweep[0]["general_bits_per_byte"] == report["general"]["init"]["bits_per_byte"]
    # weights between the endpoints give losses between or below theirs, never the endpoints' copies
    assert len({r["val_bits_per_byte"] for r in sweep}) == 4
    lines = sweep_lines(report["merge"])
    assert len(lines) == 6 and "merged_75" in lines[4]
