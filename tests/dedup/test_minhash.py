"""The pieces of deduplication: words and shingles, MinHash estimates, the LSH S-curve, buckets
and union-find, the exact keys, and the dedup params."""

import random
import re

import numpy as np
import pytest

from pretrain.config import build
from pretrain.config.dedup import DedupConfig
from pretrain.config.executor import ExecutorConfig
from pretrain.dedup import lsh, minhash
from pretrain.dedup.exact import ASCII_SPACE, digest, exact_keys, first_occurrence, is_space, normalize
from pretrain.dedup.scan import Scanned, band_file
from pretrain.errors import ConfigError

ASCII_WORD = re.compile(r"[0-9A-Za-z_]+")  # on ASCII text, the words are exactly these


def words(text):
    """The words of ``text`` as strings, from the spans word_hashes hashes."""
    low = text.lower() + " "
    spans = minhash._word_spans_unicode(low)
    raw = low.encode("utf-8")
    return [raw[a:b].decode("utf-8") for a, b in zip(*map(np.ndarray.tolist, spans))]


def test_ascii_words_are_runs_of_letters_digits_and_underscore():
    rng = random.Random(0)
    texts = ["Hello, World! find_max(x2)", "", "  ...  ", "one"] + [
        "".join(rng.choice("aZ9_ .,-'\n\t()@#") for _ in range(rng.randrange(40))) for _ in range(300)]
    hashes, counts = minhash.word_hashes(texts)
    assert counts.tolist() == [len(ASCII_WORD.findall(t)) for t in texts]
    assert counts[:4].tolist() == [4, 0, 0, 1]
    assert [words(t) for t in texts] == [ASCII_WORD.findall(t.lower()) for t in texts]
    found = [w for t in texts for w in ASCII_WORD.findall(t.lower())]
    same = {(a, b) for a, ha in zip(found, hashes) for b, hb in zip(found, hashes) if ha == hb}
    assert same == {(w, w) for w in found}  # equal hash exactly for equal (lower-cased) words
    assert minhash.word_hashes(["HELLO"])[0][0] == minhash.word_hashes(["hello"])[0][0]


@pytest.mark.parametrize("text, expected", [
    # Latin with accents (composed or combining) stays whole; non-ASCII punctuation separates
    ("naïve café—x, don’t «stop»", ["naïve", "café", "x", "don", "t", "stop"]),
    ("cafe\u0301 au lait", ["cafe\u0301", "au", "lait"]),
    # Han: every ideograph is a word; CJK punctuation separates; digits stay a run
    ("今天天气很好，我们去公园。2023年", ["今", "天", "天", "气", "很", "好", "我", "们", "去", "公", "园", "2023", "年"]),
    # Japanese: kanji and hiragana one by one, a katakana run (with its long-vowel mark) one word
    ("東京でコンピューターを買った", ["東", "京", "で", "コンピューター", "を", "買", "っ", "た"]),
    # Thai: each letter a word, the vowel and tone marks above / below kept with their letter
    ("กินข้าว ไหม", ["กิ", "น", "ข้", "า", "ว", "ไ", "ห", "ม"]),
    # Korean is written with spaces: Hangul words as in English
    ("한국어 텍스트를 처리합니다.", ["한국어", "텍스트를", "처리합니다"]),
    # Devanagari vowel signs and Persian's zero-width non-joiner stay inside their word
    ("नमस्ते दुनिया می\u200cخواهم", ["नमस्ते", "दुनिया", "می\u200cخواهم"]),
    # a zero-width space separates (Thai and Khmer use it between words); a BOM joins
    ("ab\u200bcd \ufeffx", ["ab", "cd", "\ufeffx"]),
])
def test_words_of_each_script(text, expected):
    assert words(text) == expected
    assert minhash.word_hashes([text])[1].tolist() == [len(expected)]


def test_words_do_not_depend_on_the_batch_and_match_the_documented_regex():
    """The vectorised splitter and word_regex() agree on random mixed-script text; an ASCII
    text hashes alike alone and next to non-ASCII ones."""
    rng = random.Random(1)
    alphabet = [*"aZ9_ .,-—’é\n", "e\u0301", "\u0301", "今", "の", "カ", "ー", "ภ", "ิ", "한", "\u200c",
                "\u200b", "、", "。", "๑", "\U00020000", "ｶ", "\u3000", "İ"]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(30))) for _ in range(2000)]
    regex = minhash.word_regex()
    hashes, counts = minhash.word_hashes(texts)
    found = [w for t in texts for w in regex.findall(t.lower())]
    assert counts.tolist() == [len(regex.findall(t.lower())) for t in texts]
    assert len({w: h for w, h in zip(found, hashes.tolist())}) == len(set(hashes.tolist()))
    alone = minhash.word_hashes(["plain words here", "café"])[0]
    mixed = minhash.word_hashes(["plain words here", "café 今天"])[0]
    assert (alone == mixed[:4]).all()


def test_a_batch_hashes_each_text_as_it_would_alone():
    """Only the runs holding a non-ASCII character go through the code-point path: words next
    to, inside and far from non-ASCII characters hash as they do in a text alone."""
    texts = ["plain ascii words", "café—naïve x_1 日本語 abc", "", "e\u0301clair bo\u0301k\u200c", "more ascii",
             "abc\u00a0def ghi", "カタカナ。ひらがな tail", "\U00020000x y\U000e0100z", "end"]
    hashes, counts = minhash.word_hashes(texts)
    alone = [minhash.word_hashes([t]) for t in texts]
    assert counts.tolist() == [int(c[0]) for _, c in alone]
    assert hashes.tolist() == [h for a, _ in alone for h in a.tolist()]
    regex = minhash.word_regex()
    assert counts.tolist() == [len(regex.findall(t.lower())) for t in texts]


def test_byte_tests_by_comparison_match_the_tables():
    every = np.arange(256, dtype=np.uint8)
    assert (minhash.is_word_byte(every) == minhash.WORD_BYTES).all()
    assert (is_space(every) == ASCII_SPACE).all()


def test_classes_looked_up_on_demand_match_the_whole_table():
    rng = np.random.default_rng(0)
    points = np.concatenate((rng.integers(0, 0x110000, 20000), rng.integers(0, 0x3100, 20000),
                             [0x5F, 0x200B, 0x0301, 0x30FC, 0xE0100, 0x10FFFF])).astype(np.uint32)
    assert (minhash.classes_of(points) == minhash.char_classes()[points]).all()
    assert (minhash.classes_of(points[::-1]) == minhash.char_classes()[points[::-1]]).all()  # now cached


def test_shingles_are_word_ngrams_within_each_text():
    hashes, counts = minhash.word_hashes(["a b c d e f", "x y", "", "a b c d e"])
    shingles, per_text = minhash.shingle_hashes(hashes, counts, 5)
    assert per_text.tolist() == [2, 1, 0, 1]  # "x y" is one shingle; "" has none
    assert shingles[0] == shingles[3]  # "a b c d e" in the first and the last text
    assert len(set(shingles.tolist())) == 3
    reordered, _ = minhash.shingle_hashes(*minhash.word_hashes(["b a c d e"]), 5)
    assert reordered[0] != shingles[0]  # word order matters


def random_pairs(jaccard, size, count, rng):
    sets, sizes = [], []
    common = round(2 * size * jaccard / (1 + jaccard))
    for _ in range(count):
        values = rng.choice(2**32, size=2 * size - common, replace=False).astype(np.uint32)
        sets += [values[:size], np.concatenate([values[:common], values[size:]])]
        sizes += [size, size]
    return np.concatenate(sets), np.array(sizes), common / (2 * size - common)


def test_estimated_jaccard_is_unbiased_with_binomial_spread():
    a, b = minhash.permutations(100, seed=1)
    shingles, sizes, truth = random_pairs(0.6, 200, 400, np.random.default_rng(0))
    sig = minhash.minhash(shingles, sizes, a, b)
    estimates = minhash.estimated_jaccard(sig[0::2], sig[1::2])
    assert abs(estimates.mean() - truth) < 0.01
    assert estimates.std() == pytest.approx(np.sqrt(truth * (1 - truth) / 100), rel=0.15)


def test_bands_collide_as_often_as_the_s_curve_says():
    a, b = minhash.permutations(16, seed=3)
    shingles, sizes, truth = random_pairs(0.7, 150, 600, np.random.default_rng(1))
    bands = minhash.band_hashes(minhash.minhash(shingles, sizes, a, b), bands=4, rows=4)
    found = (bands[0::2] == bands[1::2]).any(axis=1).mean()
    assert found == pytest.approx(minhash.detection_probability(truth, 4, 4), abs=0.06)


def test_minhash_of_a_set_does_not_depend_on_chunking_or_order():
    a, b = minhash.permutations(32, seed=0)
    values = np.random.default_rng(2).integers(0, 2**32, 1000, dtype=np.uint64).astype(np.uint32)
    whole = minhash.minhash(values, np.array([1000]), a, b)
    assert (minhash.minhash(values[::-1].copy(), np.array([1000]), a, b, chunk=7) == whole).all()
    assert (minhash.minhash(values, np.array([0, 1000, 0]), a, b)[1] == whole[0]).all()
    assert (minhash.minhash(values, np.array([0, 1000, 0]), a, b)[0] == minhash.MAX_HASH).all()


def test_detection_curve_and_implied_threshold():
    assert minhash.detection_probability(0.5, 25, 4) == pytest.approx(1 - (1 - 0.5**4) ** 25)
    assert minhash.implied_threshold(16, 8) == pytest.approx(0.7071, abs=1e-4)
    curve = minhash.detection_curve(25, 4)
    assert list(curve) == ["0.5", "0.6", "0.7", "0.8", "0.9", "1.0"] and curve["1.0"] == 1.0


@pytest.mark.parametrize("bands, rows, threshold, warns", [
    (4, 25, 0.65, True),     # the default 25 x 4 swapped: detects only above ~0.95
    (8, 16, 0.7, True),      # 16 x 8 swapped
    (25, 4, 0.65, False),    # the default
    (16, 8, 0.7, False),
    (10, 10, 0.8, False),    # square: swapping changes nothing
    (1, 100, 0.95, False),   # detects at ~1.0, close enough to 0.95
])
def test_swapped_bands_and_rows_warning(bands, rows, threshold, warns):
    warning = minhash.swapped_warning(bands, rows, threshold)
    assert (warning is not None) == warns
    if warns:
        assert f"bands={rows} x rows={bands}" in warning


def test_bucket_pairs_pair_each_member_with_the_first_of_its_bucket():
    keys = np.array([7, 3, 7, 5, 3, 7], dtype=np.uint64)
    u, v = lsh.bucket_pairs(keys, np.arange(6))
    assert sorted(zip(u.tolist(), v.tolist())) == [(0, 2), (0, 5), (1, 4)]


def write_bands(folder, keys, rows):
    """Band files as pass 1 writes them: ``keys`` (bands x documents) split into shards of
    ``rows`` documents; the Scanned that finds them."""
    offsets = np.concatenate(([0], np.cumsum(rows)))
    for shard in range(len(rows)):
        for band in range(len(keys)):
            keys[band, offsets[shard] : offsets[shard + 1]].tofile(folder / f"part-{shard:05d}.{band_file(band)}")
    return Scanned(folder, tuple(rows), num_perm=1)


def first_member_pairs(keys, eligible):
    """Every pair (first eligible document of a bucket, another eligible member), by brute force."""
    pairs = set()
    for band in keys:
        first = {}
        for i in np.flatnonzero(eligible).tolist():
            j = first.setdefault(int(band[i]), i)
            if j != i:
                pairs.add((j, i))
    return pairs


def test_band_keys_read_every_shard_in_order_split_by_key_and_skip_ineligible_documents(tmp_path):
    keys = np.random.default_rng(0).integers(0, 50, (1, 1000)).astype(np.uint64)
    scanned = write_bands(tmp_path, keys, [300, 0, 450, 250])  # an empty shard too
    eligible = np.ones(1000, dtype=bool)
    eligible[::7] = False
    whole, index = lsh.band_keys(scanned, 0, eligible)
    assert index.tolist() == np.flatnonzero(eligible).tolist() and whole.tolist() == keys[0, index].tolist()
    parts = [lsh.band_keys(scanned, 0, eligible, part, 9) for part in range(9)]
    assert all((np.diff(i) > 0).all() for _, i in parts)  # global order kept within a part
    pairs = lambda ps: sorted(p for k, i in ps for p in zip(*map(np.ndarray.tolist, lsh.bucket_pairs(k, i))))
    assert pairs(parts) == pairs([(whole, index)])


@pytest.mark.parametrize("eligible, bands, chunk, expected", [
    (1000, 4, 10**6, [{"bands": [0, 1, 2, 3], "part": 0, "parts": 1}]),  # small: one task, in-process
    (1000, 5, 2500, [{"bands": [0, 1], "part": 0, "parts": 1}, {"bands": [2, 3], "part": 0, "parts": 1},
                     {"bands": [4], "part": 0, "parts": 1}]),
    (1000, 2, 400, [{"bands": [b], "part": p, "parts": 3} for b in range(2) for p in range(3)]),
])
def test_bucket_plan_groups_small_bands_and_splits_large_ones(eligible, bands, chunk, expected):
    assert lsh.plan(eligible, bands, chunk) == expected


@pytest.mark.parametrize("workers", [1, 2])
def test_clusters_count_each_distinct_pair_once_across_bands_parts_and_shards(tmp_path, workers):
    rng = np.random.default_rng(1)
    n, bands = 300, 4
    keys = rng.integers(0, 40, (bands, n)).astype(np.uint64)
    keys[2] = keys[0]  # a band that repeats another: all its pairs are already known
    eligible = rng.random(n) < 0.9
    expected = first_member_pairs(keys, eligible)
    parent = np.arange(n)
    lsh.union(parent, *map(np.array, zip(*sorted(expected))))
    for rows in ([n], [100, 0, 120, 80]):
        scanned = write_bands(tmp_path, keys, rows)
        for chunk in (10**6, 25):
            cfg = DedupConfig(bands=bands, rows=1, num_perm=bands, verify=False, sort_chunk=chunk)
            root, stats = lsh.clusters(ExecutorConfig(workers=workers), cfg, scanned, eligible, ["x"],
                                       tmp_path / f"buckets-{len(rows)}-{chunk}")
            assert stats == {"candidate_pairs": len(expected), "verified_pairs": len(expected)}
            assert root.tolist() == parent.tolist()


def test_union_roots_every_cluster_at_its_lowest_index():
    parent = np.arange(8)
    lsh.union(parent, np.array([3, 1, 6]), np.array([5, 5, 7]))
    lsh.union(parent, np.array([0]), np.array([3]))
    assert parent.tolist() == [0, 0, 2, 0, 4, 0, 6, 6]


def test_exact_keys_match_the_plain_python_normalisation():
    rng = random.Random(0)
    alphabet = ["a", "B", " ", "\t", "\n", "\r", "\x0b", "\x1c", ".", "é", "e\u0301", "\u3000", "\xa0", "\u2028",
                "今", "。", "カ"]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(12))) for _ in range(400)]
    for normalized in (True, False):
        keys, tokens = exact_keys(texts, normalized)
        assert [k.tobytes() for k in keys] == [digest(t, normalized) for t in texts]
        assert tokens.tolist() == [len(t.split()) for t in texts]


@pytest.mark.parametrize("text, expected", [
    ("  a \t b\n\n c  ", "a b c"),
    ("x\u3000\xa0y\u2028", "x y"),
    ("cafe\u0301", "caf\xe9"),
    # a line break between two CJK characters is removed (CSS Text 3, 4.1.3): re-wrapped
    # Chinese or Japanese is the same text; elsewhere it is a space, as is a CJK space
    ("今天天气\n很好", "今天天气很好"),
    ("日本語。\r\n  次の文", "日本語。次の文"),
    ("今天 天气\u3000很好", "今天 天气 很好"),
    ("abc\n今天\n\nxyz", "abc 今天 xyz"),
    ("한국어\n텍스트", "한국어 텍스트"),
])
def test_normalize(text, expected):
    assert normalize(text) == expected


def test_first_occurrence():
    keys = np.array([[1, 2], [3, 4], [1, 2], [1, 3], [3, 4]], dtype=np.uint64)
    assert first_occurrence(keys).tolist() == [0, 1, 0, 3, 1]


@pytest.mark.parametrize("raw, message", [
    ({"num_perm": 128}, "dedup.num_perm: must equal bands * rows (25 * 4 = 100), got 128"),
    ({"threshold": 0}, "dedup.threshold: expected a value in (0, 1]"),
    ({"workers": 2}, "dedup.workers: moved to executor.workers"),
    ({"ngram": 0}, "dedup.ngram: expected a value > 0"),
    ({"band": 20}, "dedup.band: unknown key"),
])
def test_bad_dedup_params_name_the_key(raw, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build(DedupConfig, raw, where="params.yaml: dedup")
