"""Deduplication keeps the first of each exact or near-duplicate group, for any number of workers."""

import dataclasses
import json
import random
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import yaml

from pretrain.config.dedup import DedupConfig
from pretrain.dedup import minhash
from pretrain.dedup.runner import dedup
from pretrain.io import iter_documents
from pretrain.sources.builtin import stdlib_files

ROOT = Path(__file__).resolve().parents[2]
CAFE_NFC = unicodedata.normalize("NFC", "Le café est prêt.")
CAFE_NFD = unicodedata.normalize("NFD", "Le café est prêt.")
EXACT_ONLY = DedupConfig(near=False)


def run(tmp_path, write_docs, texts, cfg=DedupConfig(workers=1), name="dedup"):
    src = write_docs(tmp_path / f"{name}-in.parquet", [{"id": f"d{i}", "text": t} for i, t in enumerate(texts)])
    out = tmp_path / name
    report = dedup(cfg, src, out)
    kept = list(iter_documents(out / "documents.parquet"))
    with open(out / "removed_pairs.jsonl", encoding="utf-8") as handle:
        pairs = [json.loads(line) for line in handle]
    return report, kept, pairs


def stdlib_texts(n, min_words=300):
    """n real, mutually distinct standard-library files of at least ``min_words`` words."""
    texts = []
    for _, path in stdlib_files(include_tests=False):
        text = path.read_text(encoding="utf-8")
        if len(text.split()) >= min_words:
            texts.append(text)
        if len(texts) == n:
            return texts
    raise AssertionError("not enough standard-library files")


def edited(text, rate, seed=0):
    """``text`` with about ``rate`` of its words replaced by a made-up word."""
    rng = random.Random(seed)
    return re.sub(r"\w+", lambda m: f"zz{rng.randrange(10**6)}" if rng.random() < rate else m.group(0), text)


# --- exact duplicates ----------------------------------------------------------------------------


def test_exact_duplicates_are_removed_keeping_the_first(tmp_path, write_docs):
    texts = ["alpha", "beta", "alpha", "gamma", "beta", "alpha"]
    report, kept, pairs = run(tmp_path, write_docs, texts)
    assert [(d["id"], d["text"]) for d in kept] == [("d0", "alpha"), ("d1", "beta"), ("d3", "gamma")]
    assert [(p["reason"], p["kept_id"], p["removed_id"]) for p in pairs] == [
        ("exact", "d0", "d2"), ("exact", "d1", "d4"), ("exact", "d0", "d5")]
    assert pairs[0]["kept_text"] == pairs[0]["removed_text"] == "alpha" and pairs[0]["jaccard"] == 1.0
    assert report["removed"] == {"exact": 3, "near": 0}
    assert (report["documents_in"], report["documents_out"]) == (6, 3)
    assert (report["chars_in"], report["chars_out"]) == (sum(map(len, texts)), len("alphabetagamma"))
    assert (report["words_in"], report["words_out"]) == (6, 3)


def test_removed_samples_are_capped_but_all_duplicates_counted(tmp_path, write_docs):
    report, kept, pairs = run(tmp_path, write_docs, ["x"] * 5, cfg=DedupConfig(workers=1, samples=2))
    assert len(kept) == 1 and report["removed"]["exact"] == 4
    assert [(p["kept_id"], p["removed_id"]) for p in pairs] == [("d0", "d1"), ("d0", "d2")]


VARIANTS = ["hello   world\n", "hello world", "\thello\nworld ", CAFE_NFC, CAFE_NFD]


def test_normalize_merges_whitespace_and_unicode_form_variants(tmp_path, write_docs):
    report, kept, pairs = run(tmp_path, write_docs, VARIANTS, cfg=dataclasses.replace(EXACT_ONLY, normalize=True))
    assert [d["text"] for d in kept] == ["hello   world\n", CAFE_NFC]  # the first, unchanged
    assert [(p["kept_id"], p["removed_id"]) for p in pairs] == [("d0", "d1"), ("d0", "d2"), ("d3", "d4")]


def test_without_normalize_only_identical_texts_are_duplicates(tmp_path, write_docs):
    report, kept, pairs = run(tmp_path, write_docs, VARIANTS + ["hello world"],
                              cfg=dataclasses.replace(EXACT_ONLY, normalize=False))
    assert [d["text"] for d in kept] == VARIANTS
    assert [(p["kept_id"], p["removed_id"]) for p in pairs] == [("d1", "d5")]


def test_normalization_is_not_case_folding(tmp_path, write_docs):
    _, kept, _ = run(tmp_path, write_docs, ["Hello world", "hello world"], cfg=EXACT_ONLY)
    assert len(kept) == 2


# --- near duplicates -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def planted():
    """Six distinct real files; an edited copy (2% of words) of the second after the fifth and of
    the fourth after the sixth, and an exact copy of the first at the end."""
    texts = stdlib_texts(6)
    return texts[:5] + [edited(texts[1], 0.02)] + texts[5:] + [edited(texts[3], 0.02, seed=1), texts[0]]


def test_near_duplicate_is_removed_and_the_first_copy_kept(tmp_path, write_docs, planted):
    report, kept, pairs = run(tmp_path, write_docs, planted)
    assert [d["id"] for d in kept] == ["d0", "d1", "d2", "d3", "d4", "d6"]
    assert report["removed"] == {"exact": 1, "near": 2}
    assert report["near"]["clusters"] == 2
    near = [p for p in pairs if p["reason"] == "near"]
    assert [(p["kept_id"], p["removed_id"]) for p in near] == [("d1", "d5"), ("d3", "d7")]
    assert all(0.65 <= p["jaccard"] < 1.0 for p in near)
    assert near[0]["kept_text"] == planted[1][:300] and near[0]["removed_text"] == planted[5][:300]
    assert report["words_out"] == sum(len(planted[i].split()) for i in (0, 1, 2, 3, 4, 6))


def test_distinct_documents_and_wordless_documents_are_kept(tmp_path, write_docs):
    texts = stdlib_texts(8) + ["!!! ???", "--- ...", "a b c", "a b d"]
    report, kept, _ = run(tmp_path, write_docs, texts)
    assert len(kept) == len(texts) and report["removed"] == {"exact": 0, "near": 0}


def test_copies_below_the_threshold_are_kept(tmp_path, write_docs):
    text = stdlib_texts(1)[0]
    report, kept, _ = run(tmp_path, write_docs, [text, edited(text, 0.25)])
    assert len(kept) == 2


def test_clusters_are_transitive_and_keep_their_first_document(tmp_path, write_docs):
    a = stdlib_texts(1)[0]
    b = edited(a, 0.02, seed=1)
    c = edited(b, 0.02, seed=2)
    _, kept, pairs = run(tmp_path, write_docs, [c, a, b])
    assert [d["id"] for d in kept] == ["d0"]
    assert {(p["kept_id"], p["removed_id"]) for p in pairs} == {("d0", "d1"), ("d0", "d2")}


def test_results_do_not_depend_on_workers_batches_or_sort_chunk(tmp_path, write_docs, planted):
    """Two workers, tiny batches, and a sort_chunk that splits every band into parts (the
    memory-bounded path) give byte-identical outputs."""
    texts = planted * 3  # exact copies of the whole set too
    variants = {"one": DedupConfig(workers=1),
                "two": DedupConfig(workers=2, batch_chars=1),
                "chunked": DedupConfig(workers=2, sort_chunk=3)}
    reports = {name: run(tmp_path, write_docs, texts, cfg, name)[0] for name, cfg in variants.items()}
    assert reports["one"] == reports["two"] == reports["chunked"]
    assert reports["one"]["removed"] == {"exact": 19, "near": 2}
    for name in ("two", "chunked"):
        for file in ("documents.parquet", "removed_pairs.jsonl"):
            assert (tmp_path / name / file).read_bytes() == (tmp_path / "one" / file).read_bytes(), (name, file)


# Words of scripts written without spaces (and of Korean, written with them); a document is a
# seeded random sequence of them, so two seeds give unrelated documents of real words.
SCRIPT_WORDS = {
    "chinese": ("我们 今天 天气 非常 学习 编程 语言 数据 模型 训练 文本 处理 计算机 科学 研究 问题 方法 结果 "
                "时间 城市 北京 上海 朋友 工作 生活 音乐 电影 历史 文化 经济 发展 社会 教育 学生 老师 学校 "
                "医院 健康 运动 新闻 公司 市场 价格 技术 网络 系统 安全 用户 软件 开发 测试 代码 版本", "", "，。"),
    "japanese": ("私 日本 東京 天気 今日 明日 学校 先生 学生 勉強 新聞 会社 仕事 電車 駅 時間 友達 映画 音楽 "
                 "は が を に で と の も します しました です ます 食べる 飲む 行く 来る 見る とても すこし "
                 "きれい 大きい 小さい 新しい コンピューター ソフトウェア データ プログラム テスト ニュース "
                 "カメラ レストラン ホテル", "", "、。"),
    "thai": ("ภาษา ไทย คน บ้าน เมือง วันนี้ อากาศ ดี มาก กิน ข้าว น้ำ ไป มา ทำงาน โรงเรียน นักเรียน ครู "
             "หนังสือ คอมพิวเตอร์ ข้อมูล โปรแกรม เวลา ปี เดือน ตลาด ราคา รถ ถนน ประเทศ ข่าว เพื่อน "
             "ครอบครัว อาหาร อร่อย สวย ใหญ่ เล็ก ใหม่ เก่า และ หรือ แต่ ที่ ของ ใน กับ จะ ได้ ไม่ เป็น มี", "", " "),
    "korean": ("한국어 오늘 날씨가 정말 좋습니다 학교에 학생들이 선생님이 공부를 합니다 컴퓨터 데이터 "
               "프로그램을 만들었습니다 시간이 없어요 친구와 함께 영화를 봤어요 서울에서 부산까지 기차를 "
               "타고 갔습니다 음식이 맛있어요 회사 일을 시장에서 사과를 샀어요 뉴스를 읽었습니다 새로운 "
               "오래된 큰 작은 그리고 하지만", " ", ".,"),
}


def script_text(script, seed, chars=600):
    """About ``chars`` characters of ``script``'s words in a random order, with punctuation."""
    vocab, joiner, marks = SCRIPT_WORDS[script]
    vocab, rng, parts = vocab.split(), random.Random(seed), []
    while sum(map(len, parts)) < chars:
        parts.append(rng.choice(vocab) + (rng.choice(marks) if rng.random() < 0.15 else ""))
    return joiner.join(parts)


@pytest.mark.parametrize("script", list(SCRIPT_WORDS))
def test_near_duplicates_are_found_in_scripts_written_without_spaces(tmp_path, write_docs, script):
    """Two 600-character documents that differ in one character are near-duplicates in every
    script (character 5-gram Jaccard ~0.98 in Chinese; a whole paragraph used to be one word and
    one shingle); an unrelated document of the same script and words is kept. Korean, written
    with spaces, is split into words as before."""
    text = script_text(script, seed=0)
    at = len(text) // 2 + next(i for i, c in enumerate(text[len(text) // 2:]) if c.isalpha())
    other = next(c for c in reversed(SCRIPT_WORDS[script][0]) if c.isalpha() and c != text[at])
    changed = text[:at] + other + text[at + 1:]
    report, kept, pairs = run(tmp_path, write_docs, [text, changed, script_text(script, seed=1)])
    assert [d["id"] for d in kept] == ["d0", "d2"]
    assert report["removed"] == {"exact": 0, "near": 1}
    assert pairs[0]["jaccard"] >= 0.9


def test_cjk_text_wrapped_differently_is_an_exact_duplicate(tmp_path, write_docs):
    """Chinese has no spaces between words: re-wrapping it adds line breaks where English
    re-wrapping turns spaces into line breaks; both are the same text after normalisation."""
    text = script_text("chinese", seed=2, chars=200)
    wrapped = "\n".join(text[i : i + 40] for i in range(0, len(text), 40))
    report, kept, _ = run(tmp_path, write_docs, [text, wrapped], cfg=EXACT_ONLY)
    assert report["removed"]["exact"] == 1 and [d["id"] for d in kept] == ["d0"]


def test_without_verification_candidates_count_as_duplicates(tmp_path, write_docs):
    text = stdlib_texts(1)[0]
    copy = edited(text, 0.08)  # true Jaccard ~0.5: a candidate often, verified never at 0.65
    loose = DedupConfig(workers=1, bands=50, rows=2, num_perm=100, verify=False)
    strict = dataclasses.replace(loose, verify=True)
    assert len(run(tmp_path, write_docs, [text, copy], loose, "loose")[1]) == 1
    assert len(run(tmp_path, write_docs, [text, copy], strict, "strict")[1]) == 2


def test_candidate_and_verified_pairs_count_distinct_pairs(tmp_path, write_docs):
    """16 edited copies of one file share buckets in many bands: each pair (first member of a
    bucket, other member) counts once however many bands it shares (once per band before: 149
    and more for 16 documents), so no count exceeds 16 * 15 / 2 = 120."""
    base = stdlib_texts(1)[0]
    texts = [edited(base, 0.01, seed=s) for s in range(16)]
    cfg = DedupConfig(workers=1)
    report, _, _ = run(tmp_path, write_docs, texts, cfg)
    a, b = minhash.permutations(cfg.num_perm, cfg.seed)
    sig, _ = minhash.signatures(texts, cfg.ngram, a, b)
    pairs = set()
    for band in minhash.band_hashes(sig, cfg.bands, cfg.rows).T.tolist():
        first = {}
        for i, key in enumerate(band):
            if first.setdefault(key, i) != i:
                pairs.add((first[key], i))
    verified = {p for p in pairs if minhash.estimated_jaccard(sig[p[0]], sig[p[1]]) >= cfg.threshold}
    assert report["near"]["candidate_pairs"] == len(pairs) <= 120
    assert report["near"]["verified_pairs"] == len(verified) <= len(pairs)
    chunked, _, _ = run(tmp_path, write_docs, texts, dataclasses.replace(cfg, sort_chunk=3), "chunked")
    assert chunked["near"] == report["near"]


def test_no_work_files_are_left_in_the_output(tmp_path, write_docs, planted):
    run(tmp_path, write_docs, planted, DedupConfig(workers=1, sort_chunk=2))
    assert sorted(p.name for p in (tmp_path / "dedup").iterdir()) == ["documents.parquet", "removed_pairs.jsonl"]


def test_empty_input(tmp_path, write_docs):
    report, kept, pairs = run(tmp_path, write_docs, [])
    assert kept == [] and pairs == [] and report["documents_out"] == 0


# --- the stage -----------------------------------------------------------------------------------


def test_stage_prints_the_curve_and_warns_when_bands_and_rows_look_swapped(tmp_path, write_docs, planted):
    params = yaml.safe_load((ROOT / "profiles" / "debug.yaml").read_text())
    params["dedup"].update(bands=4, rows=25, threshold=0.65, workers=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    src = tmp_path / "clean"
    src.mkdir()
    write_docs(src / "documents.parquet", [{"id": f"d{i}", "text": t} for i, t in enumerate(planted)])
    result = subprocess.run(
        [sys.executable, str(ROOT / "stages" / "dedup.py"), "--params", str(tmp_path / "params.yaml"),
         "--input", str(src), "--out", str(tmp_path / "out"), "--metrics", str(tmp_path / "dedup.json")],
        capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "P(candidate | Jaccard s) = 1-(1-s^25)^4" in result.stdout and "0.9: 0.258" in result.stdout
    assert "are bands and rows swapped?" in result.stderr
    metrics = json.loads((tmp_path / "dedup.json").read_text())
    assert metrics["near"]["detection_probability"]["0.9"] == pytest.approx(1 - (1 - 0.9**25) ** 4, abs=1e-4)
