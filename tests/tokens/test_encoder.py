"""pack's tokenizer without transformers: the ids, offsets and special tokens transformers gives,
or transformers itself where it would change the tokenizer; pack's process never imports torch,
and its memory does not grow with the corpus."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pretrain.io import DocumentWriter
from pretrain.tokens.encoder import FastTokenizer, load_fast
from pretrain.tokens.tokenizer import encode_texts, encode_with_offsets, load_tokenizer

ROOT = Path(__file__).resolve().parents[2]
TEXTS = ["def f(x):\n    return x  # café, 日本語, 🙂\n",
         "<p>Price: <s>$40</s> now, padded with <pad><pad> and a </s> too.</p>",
         "", "   leading and trailing spaces   ", "e\u0301 combining, \t tabs\r\nand CRLF"]


@pytest.fixture
def saved(tmp_path, any_tokenizer):
    folder = tmp_path / "tokenizer"
    any_tokenizer.save_pretrained(str(folder))
    return folder


def test_a_folder_loads_to_the_same_ids_offsets_and_special_tokens_as_with_transformers(saved):
    reference, fast = load_tokenizer(saved), load_fast(saved)
    if fast is None:  # a class transformers may rebuild: pack loads it with transformers
        return
    assert isinstance(fast, FastTokenizer)
    assert (fast.bos_token_id, fast.eos_token_id, len(fast)) == \
           (reference.bos_token_id, reference.eos_token_id, len(reference))
    assert fast.ids(TEXTS) == encode_texts(reference, TEXTS)
    assert [(ids, [tuple(o) for o in offsets]) for ids, offsets in fast.ids_with_offsets(TEXTS)] == \
           [(ids, [tuple(o) for o in offsets]) for ids, offsets in encode_with_offsets(reference, TEXTS)]


def test_the_tokenizer_stage_output_loads_without_transformers(tmp_path, tiny_tokenizer):
    tiny_tokenizer.save_pretrained(str(tmp_path / "tokenizer"))
    assert isinstance(load_fast(tmp_path / "tokenizer"), FastTokenizer)


@pytest.mark.parametrize("change", [{"tokenizer_class": "LlamaTokenizer"}, {"bos_token": "<bos>"},
                                    {"additional_special_tokens": ["<|im_end|>"]}])
def test_a_tokenizer_transformers_would_change_is_left_to_transformers(tmp_path, tiny_tokenizer, change):
    folder = tmp_path / "tokenizer"
    tiny_tokenizer.save_pretrained(str(folder))
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, **change}))
    assert load_fast(folder) is None
    assert load_fast(tmp_path / "missing") is None


def run_pack(tmp_path: Path, tokenizer: Path, corpus: Path, name: str) -> dict:
    """pack in a fresh process, one worker (in that process): its peak RSS (MB) and the
    heavy libraries it imported (Linux: /proc/self/status)."""
    code = textwrap.dedent("""
        import json, sys
        from pathlib import Path
        from pretrain.config import load_all
        from pretrain.config.executor import ExecutorConfig
        from pretrain.config.tokens import PackConfig
        from pretrain.stage import check_registries
        from pretrain.tokens.pack import pack
        check_registries(load_all(Path(sys.argv[4])))  # as the stage does, before any work
        out = Path(sys.argv[3])
        pack(PackConfig(seq_len=64, val_fraction=0.05), ExecutorConfig(workers=1), Path(sys.argv[2]),
             Path(sys.argv[1]), out / "packed", out / "work", out / "tokens")
        # VmHWM, not ru_maxrss: Linux carries the forked pytest's peak across exec into ru_maxrss
        hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
        print(json.dumps({"rss_mb": int(hwm.split()[1]) / 1024,
                          "heavy": [m for m in ("torch", "transformers", "datasets") if m in sys.modules]}))
    """)
    result = subprocess.run([sys.executable, "-c", code, str(corpus), str(tokenizer), str(tmp_path / name),
                             str(ROOT / "params.yaml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def write_shards(folder: Path, shards: int, docs: list[dict]) -> Path:
    folder.mkdir()
    for s in range(shards):
        with DocumentWriter(folder / f"part-{s:05d}.parquet") as writer:
            for doc in docs:
                writer.write({**doc, "id": f"{s}/{doc['id']}"})
    return folder


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc (Linux)")
def test_pack_imports_no_torch_and_its_memory_does_not_grow_with_the_corpus(tmp_path, tiny_tokenizer,
                                                                           corpus_path):
    """2 shards against 8 of the same size (~0.75 MB of text each): holding the corpus' ids as
    Python lists (~36 bytes a token, ~2.5 characters a token here) or its encodings would add
    well over 40 MB. (From one shard to more, the allocators' arenas add 20-40 MB once.)"""
    from pretrain.io import iter_documents

    tiny_tokenizer.save_pretrained(str(tmp_path / "tokenizer"))
    docs = list(iter_documents(corpus_path))
    copies = max(1, int(0.75e6 // sum(len(d["text"]) for d in docs)))
    docs = [{**d, "id": f"{i}/{d['id']}"} for i in range(copies) for d in docs]
    small = run_pack(tmp_path, tmp_path / "tokenizer", write_shards(tmp_path / "two", 2, docs), "small")
    large = run_pack(tmp_path, tmp_path / "tokenizer", write_shards(tmp_path / "eight", 8, docs), "large")
    assert small["heavy"] == [] and large["heavy"] == []
    assert large["rss_mb"] < small["rss_mb"] + 40, (small, large)
