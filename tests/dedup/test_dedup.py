"""Deduplication keeps the first of each exact or near-duplicate group in global order (shards in
order, then rows), for any number of workers and any sharding, and resumes shard by shard."""

import dataclasses
import json
import random
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

import pretrain.dedup.runner as runner
from pretrain.config.dedup import DedupConfig
from pretrain.config.executor import ExecutorConfig
from pretrain.dedup import minhash
from pretrain.dedup.runner import dedup
from pretrain.errors import DataError
from pretrain.io import iter_documents, shard_name
from pretrain.sources.builtin import stdlib_files

ROOT = Path(__file__).resolve().parents[2]
CAFE_NFC = unicodedata.normalize("NFC", "Le café est prêt.")
CAFE_NFD = unicodedata.normalize("NFD", "Le café est prêt.")
EXACT_ONLY = DedupConfig(near=False)
ONE = ExecutorConfig(workers=1)


def write_shards(folder, write_docs, texts, shards=1):
    """``texts`` as documents d0, d1, ... in ``shards`` consecutive shards of ``folder`` (a list:
    the documents of each shard; an int: shards of about equal size, empty ones past the end)."""
    docs = [{"id": f"d{i}", "text": t} for i, t in enumerate(texts)]
    sizes = shards if isinstance(shards, list) else [-(-len(docs) // shards)] * shards
    folder.mkdir(parents=True)
    start = 0
    for i, size in enumerate(sizes):
        write_docs(folder / shard_name(i), docs[start : start + size])
        start += size
    assert start >= len(docs)
    return folder


def run(tmp_path, write_docs, texts, cfg=DedupConfig(), name="dedup", executor=ONE, shards=1):
    src = write_shards(tmp_path / f"{name}-in", write_docs, texts, shards)
    out = tmp_path / name
    report = dedup(cfg, executor, src, out, tmp_path / f"{name}-work")
    kept = list(iter_documents(out))
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
    report, kept, pairs = run(tmp_path, write_docs, ["x"] * 5, cfg=DedupConfig(samples=2))
    assert len(kept) == 1 and report["removed"]["exact"] == 4
    assert [(p["kept_id"], p["removed_id"]) for p in pairs] == [("d0", "d1"), ("d0", "d2")]


@pytest.mark.parametrize("copies, warned", [(25, True), (20, False)])  # 1 of 25 < 5% = 1 of 20
def test_keeping_under_5_percent_warns_in_one_line(tmp_path, write_docs, copies, warned):
    report, kept, _ = run(tmp_path, write_docs, ["x"] * copies)
    assert len(kept) == 1
    if not warned:
        assert "warnings" not in report
        return
    assert report["warnings"] == [
        f"dedup: kept 1 of 25 documents (4.0%, under 5%); removed 24 exact and 0 near duplicates "
        f"(samples in {tmp_path / 'dedup' / 'removed_pairs.jsonl'}); check the source: are its "
        "records copies, and does download.text_field name their text?"]


def test_mostly_near_duplicates_name_the_threshold(tmp_path, write_docs):
    text = stdlib_texts(1)[0]
    report, kept, _ = run(tmp_path, write_docs, [text] + [edited(text, 0.02, seed=i) for i in range(1, 21)])
    assert len(kept) == 1 and report["removed"] == {"exact": 0, "near": 20}
    [warning] = report["warnings"]
    assert warning.startswith("dedup: kept 1 of 21 documents (4.8%, under 5%); removed 0 exact and 20 near")
    assert warning.endswith("if they are not near-copies, raise dedup.threshold (0.65) or set dedup.near: false")


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
    assert report["near"]["cluster_sizes"] == {"2": 2}  # two clusters of two documents
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


def shard_bytes(out):
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_results_do_not_depend_on_workers_sharding_batches_or_sort_chunk(tmp_path, write_docs, planted):
    """One shard or three (or five, two of them empty), one worker or two, tiny batches, and a
    sort_chunk that splits every band into parts (the memory-bounded path): the same documents
    kept, the same report and audit sample; byte-identical shards for the same sharding."""
    texts = planted * 3  # exact copies of the whole set too, in every shard
    variants = {"one": (DedupConfig(), ONE, 1),
                "three": (DedupConfig(), ONE, 3),
                "three-two-workers": (DedupConfig(batch_chars=1), ExecutorConfig(workers=2), 3),
                "chunked": (DedupConfig(sort_chunk=3), ExecutorConfig(workers=2), [4, 0, 20, 3, 0])}
    results = {name: run(tmp_path, write_docs, texts, cfg, name, executor, shards)
               for name, (cfg, executor, shards) in variants.items()}
    report, kept, pairs = results["one"]
    assert report["removed"] == {"exact": 19, "near": 2}
    for name in variants:
        assert results[name] == (report, kept, pairs), name
        pairs_file = (tmp_path / name / "removed_pairs.jsonl").read_bytes()
        assert pairs_file == (tmp_path / "one" / "removed_pairs.jsonl").read_bytes(), name
    assert shard_bytes(tmp_path / "three") == shard_bytes(tmp_path / "three-two-workers")
    assert [pq.ParquetFile(tmp_path / "chunked" / shard_name(i)).metadata.num_rows for i in range(5)] == [4, 0, 2, 0, 0]


def test_audit_sample_rows_past_the_first_read_batch(tmp_path, write_docs, planted, monkeypatch):
    """Shards read 2 rows at a time, in pass 1 and in the filter: the same documents kept and
    the same audit sample (kept and removed ids, texts) as when each shard is one batch."""
    texts = [planted[0], planted[1], planted[2], planted[0], edited(planted[1], 0.02), planted[2], "x", "x"]
    expected = run(tmp_path, write_docs, texts, shards=[5, 3], name="whole")
    monkeypatch.setattr(runner, "FILTER_ROWS", 2)
    monkeypatch.setattr("pretrain.dedup.scan.READ_ROWS", 2)
    report, kept, pairs = run(tmp_path, write_docs, texts, shards=[5, 3], name="by-two")
    assert (report, kept, pairs) == expected
    assert [(p["reason"], p["kept_id"], p["removed_id"]) for p in pairs] == [
        ("exact", "d0", "d3"), ("exact", "d2", "d5"), ("exact", "d6", "d7"), ("near", "d1", "d4")]
    assert pairs[0]["removed_text"] == planted[0][: runner.SAMPLE_CHARS]


def test_the_stage_does_not_import_pandas(tmp_path, write_docs, planted):
    """pyarrow imports pandas when asked for numpy conversions (0.4 s and 40 MB per process);
    the stage reads and writes its arrays without them."""
    src = write_shards(tmp_path / "in", write_docs, [planted[0], planted[0], planted[1]])
    code = ("import sys; from pathlib import Path; from pretrain.config.dedup import DedupConfig; "
            "from pretrain.config.executor import ExecutorConfig; from pretrain.dedup.runner import dedup; "
            f"dedup(DedupConfig(), ExecutorConfig(workers=1), Path({str(src)!r}), Path({str(tmp_path / 'out')!r}), "
            f"Path({str(tmp_path / 'work')!r})); print('pandas' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
    assert len(list(iter_documents(tmp_path / "out"))) == 2


def test_a_copy_of_a_document_in_an_earlier_shard_is_removed_from_the_later_one(tmp_path, write_docs, planted):
    """Shard 0 holds the originals; shard 1 an unrelated document, an exact copy and a near copy
    of shard 0's documents; shard 2 only copies, so it is kept with no rows (numbering stays)."""
    a, b, c = planted[0], planted[1], planted[2]
    texts = [a, b, c, a, edited(b, 0.02), b, edited(a, 0.01, seed=3)]
    report, kept, pairs = run(tmp_path, write_docs, texts, shards=[2, 3, 2])
    assert [d["id"] for d in kept] == ["d0", "d1", "d2"]
    assert [pq.ParquetFile(tmp_path / "dedup" / shard_name(i)).metadata.num_rows for i in range(3)] == [2, 1, 0]
    assert report["removed"] == {"exact": 2, "near": 2}
    assert [(p["reason"], p["kept_id"], p["removed_id"]) for p in pairs] == [
        ("exact", "d0", "d3"), ("exact", "d1", "d5"), ("near", "d1", "d4"), ("near", "d0", "d6")]


def test_a_failed_shard_names_it_and_a_rerun_redoes_only_that_shard(tmp_path, write_docs, planted, monkeypatch):
    """A corrupt last shard fails the stage with one line naming it; the finished shards' pass-1
    markers stay, and after the shard is fixed a rerun hashes only it and writes what an
    uninterrupted run writes."""
    src = write_shards(tmp_path / "in", write_docs, planted * 2, shards=3)
    good = (src / shard_name(2)).read_bytes()
    (src / shard_name(2)).write_bytes(b"PAR1 not parquet at all PAR1")
    with pytest.raises(DataError, match=r"^dedup: shard part-00002\.parquet: .*cannot read Parquet"):
        dedup(DedupConfig(), ONE, src, tmp_path / "out", tmp_path / "work")
    (work,) = (tmp_path / "work").iterdir()
    assert sorted(p.name for p in work.glob("part-*.done.json")) == ["part-00000.done.json", "part-00001.done.json"]
    assert not (tmp_path / "out").exists()

    (src / shard_name(2)).write_bytes(good)
    hashed = []
    scan_shard = runner.scan_shard
    monkeypatch.setattr(runner, "scan_shard", lambda cfg, shard: hashed.append(shard.name) or scan_shard(cfg, shard))
    report = dedup(DedupConfig(), ONE, src, tmp_path / "out", tmp_path / "work")
    assert hashed == ["part-00002"]
    monkeypatch.undo()
    fresh = dedup(DedupConfig(), ONE, src, tmp_path / "fresh", tmp_path / "fresh-work")
    assert report == fresh and report["removed"] == {"exact": 10, "near": 2}
    assert shard_bytes(tmp_path / "out") == shard_bytes(tmp_path / "fresh")


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
    loose = DedupConfig(bands=50, rows=2, num_perm=100, verify=False)
    strict = dataclasses.replace(loose, verify=True)
    assert len(run(tmp_path, write_docs, [text, copy], loose, "loose")[1]) == 1
    assert len(run(tmp_path, write_docs, [text, copy], strict, "strict")[1]) == 2


def test_candidate_and_verified_pairs_count_distinct_pairs(tmp_path, write_docs):
    """16 edited copies of one file share buckets in many bands: each pair (first member of a
    bucket, other member) counts once however many bands it shares (once per band before: 149
    and more for 16 documents), so no count exceeds 16 * 15 / 2 = 120."""
    base = stdlib_texts(1)[0]
    texts = [edited(base, 0.01, seed=s) for s in range(16)]
    cfg = DedupConfig()
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


def test_a_rerun_after_an_input_changed_reuses_no_stale_step(tmp_path, write_docs, planted, monkeypatch):
    """A run that fails in the filter task of its last shard leaves pass 1, the bucket step and
    two filter tasks finished; when shard 0 then changes (its second document is replaced by
    another file, so that its near copy in shard 1 is kept; no document changes eligibility),
    the rerun redoes what depends on it (pass 1 of shard 0, the buckets, the filter tasks of
    shards 0, 1 and 2) and writes what a fresh run writes. No audit sample, so that a filter
    task is keyed to its input shard and its decisions alone."""
    src = write_shards(tmp_path / "in", write_docs, planted, shards=3)
    NO_SAMPLES = DedupConfig(samples=0)
    filter_shard = runner.filter_shard

    def broken(shard):
        if shard.name == "part-00002":
            raise OSError("disk full")
        return filter_shard(shard)

    monkeypatch.setattr(runner, "filter_shard", broken)
    with pytest.raises(DataError, match="^dedup filter: shard part-00002.spec.json: disk full"):
        dedup(NO_SAMPLES, ONE, src, tmp_path / "out", tmp_path / "work")
    monkeypatch.undo()
    changed = planted[:1] + [stdlib_texts(7)[6]] + planted[2:]
    write_docs(src / shard_name(0), [{"id": f"d{i}", "text": changed[i]} for i in range(3)])
    report = dedup(NO_SAMPLES, ONE, src, tmp_path / "out", tmp_path / "work")
    fresh = dedup(NO_SAMPLES, ONE, write_shards(tmp_path / "fresh-in", write_docs, changed, 3),
                  tmp_path / "fresh", tmp_path / "fresh-work")
    assert report == fresh and report["removed"] == {"exact": 1, "near": 1}
    assert shard_bytes(tmp_path / "out") == shard_bytes(tmp_path / "fresh")


def test_no_work_files_are_left_in_the_output(tmp_path, write_docs, planted):
    run(tmp_path, write_docs, planted, DedupConfig(sort_chunk=2), shards=2)
    assert sorted(p.name for p in (tmp_path / "dedup").iterdir()) == [
        "part-00000.parquet", "part-00001.parquet", "removed_pairs.jsonl"]
    assert list((tmp_path / "dedup-work").iterdir()) == []


def test_empty_input(tmp_path, write_docs):
    report, kept, pairs = run(tmp_path, write_docs, [])
    assert kept == [] and pairs == [] and report["documents_out"] == 0
    assert pq.ParquetFile(tmp_path / "dedup" / shard_name(0)).metadata.num_rows == 0


def test_a_folder_without_shards_is_a_clear_error(tmp_path):
    (tmp_path / "clean").mkdir()
    with pytest.raises(DataError, match="no document shards"):
        dedup(DedupConfig(), ONE, tmp_path / "clean", tmp_path / "out", tmp_path / "work")


# --- the stage -----------------------------------------------------------------------------------


def test_stage_prints_the_curve_and_warns_when_bands_and_rows_look_swapped(tmp_path, write_docs, planted):
    params = yaml.safe_load((ROOT / "profiles" / "debug.yaml").read_text())
    params["dedup"].update(bands=4, rows=25, threshold=0.65)
    params["executor"]["workers"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    src = write_shards(tmp_path / "clean", write_docs, planted, shards=2)
    result = subprocess.run(
        [sys.executable, str(ROOT / "stages" / "dedup.py"), "--params", str(tmp_path / "params.yaml"),
         "--input", str(src), "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"),
         "--metrics", str(tmp_path / "dedup.json")],
        capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "P(candidate | Jaccard s) = 1-(1-s^25)^4" in result.stdout and "0.9: 0.258" in result.stdout
    assert "are bands and rows swapped?" in result.stderr
    metrics = json.loads((tmp_path / "dedup.json").read_text())
    assert metrics["near"]["detection_probability"]["0.9"] == pytest.approx(1 - (1 - 0.9**25) ** 4, abs=1e-4)
