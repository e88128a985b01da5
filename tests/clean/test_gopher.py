"""Gopher's quality and repetition rules: one document per rule, just inside and just outside
each threshold, checked by reason string; n-gram counts against hand-worked examples."""

import dataclasses

import pytest

from pretrain.clean.gopher import (
    GopherQualityFilter,
    GopherRepetitionFilter,
    NGrams,
    duplicates,
)
from pretrain.config.clean import GopherQualityConfig, GopherRepetitionConfig

KEEP = (True, None)


def word(i: int) -> str:
    """A distinct four-letter word for each i (no two documents' n-grams repeat by accident)."""
    return "w" + "".join(chr(97 + (i // 26 ** k) % 26) for k in range(3))


def words(n: int, start: int = 0) -> str:
    return " ".join(word(i) for i in range(start, start + n))


def sentence(n: int) -> str:
    """``n`` words: two stop words and n - 2 distinct four-letter words."""
    return "the and " + words(n - 2)


def quality(text, **cfg):
    return GopherQualityFilter(GopherQualityConfig(**cfg)).filter(text)


def repetition(text, **cfg):
    return GopherRepetitionFilter(GopherRepetitionConfig(**cfg)).filter(text)


# --- quality ------------------------------------------------------------------------------------


def test_fifty_words_are_enough_and_symbols_are_not_words():
    assert quality(sentence(50)) == KEEP
    assert quality(sentence(49)) == (False, "too_few_words")
    assert quality(sentence(49) + " , ; ( )") == (False, "too_few_words")


def test_too_many_words():
    assert quality(sentence(60), max_words=60) == KEEP
    assert quality(sentence(61), max_words=60) == (False, "too_many_words")


def test_mean_word_length_between_three_and_ten():
    three = "the and " + " ".join(["cat"] * 48)
    assert quality(three) == KEEP                                    # mean exactly 3
    assert quality(three.replace("cat", "ca", 1)) == (False, "short_words")  # 149 / 50
    ten = " ".join(["abcdefghij"] * 50)
    assert quality(ten, min_stop_words=None) == KEEP                 # mean exactly 10
    assert quality(ten + "k", min_stop_words=None) == (False, "long_words")  # 501 / 50


def test_hashes_and_ellipses_per_word():
    text = sentence(50)
    assert quality(text + " #" * 5) == KEEP                          # 5 / 55 words
    assert quality(text + " #" * 6) == (False, "hash_ratio")          # 6 / 56 > 0.1
    assert quality(text + " ..." * 5 + " end") == KEEP
    assert quality(text + " ..." * 6 + " end") == (False, "ellipsis_ratio")


def test_bullet_lines():
    lines = [f"- {sentence(6)} {words(4, 10 * i)}" for i in range(10)]
    assert quality("\n".join(lines)) == (False, "bullet_lines")        # 10 / 10
    lines[0] = lines[0][2:]
    assert quality("\n".join(lines)) == KEEP                           # 9 / 10 = 0.9
    lines[1] = "• " + lines[1][2:]                                    # "•" is a bullet too
    assert quality("\n".join(lines)) == KEEP


def test_lines_ending_in_an_ellipsis():
    lines = [f"{sentence(6)} {words(4, 10 * i)}" for i in range(10)]
    three = [line + (" ..." if i < 3 else "") for i, line in enumerate(lines)]
    assert quality("\n".join(three)) == KEEP                            # 3 / 10 = 0.3
    four = [line + ("…" if i < 4 else "") for i, line in enumerate(lines)]
    assert quality("\n".join(four)) == (False, "ellipsis_lines")


def test_words_with_a_letter():
    text = sentence(50)
    assert quality(text + " 123" * 12) == KEEP                          # 50 / 62
    assert quality(text + " 123" * 13) == (False, "few_alpha_words")    # 50 / 63 < 0.8


@pytest.mark.parametrize("number", ["½", "¾", "²", "³", "①", "Ⅳ"])
def test_fractions_superscripts_and_numerals_are_not_letters(number):
    # As datatrove (``any(c.isalpha() for c in w)``) and the paper: 6 of 8 words have a letter.
    recipe = f"the {number} cups and {number} spoons with flour " * 8
    assert quality(recipe) == (False, "few_alpha_words")               # 48 / 64 = 0.75
    assert quality(recipe.replace(number, "x")) == KEEP


def test_e_mail_addresses_are_one_word_each():
    # spaCy keeps "name@t-online.de" whole: 8 words per line, all with a letter. Split at the
    # hyphens, the "-" pieces would bring the words with a letter to 8 / 14 < 0.8.
    line = "fixed by name@t-online.de and info@my-shop.com or bob@web-mail.org with the patch. "
    assert quality(line * 8) == KEEP


def test_stop_words_are_counted_once_each_in_any_case():
    body = words(60)
    assert quality("the the the " + body) == (False, "few_stop_words")
    assert quality("The And " + body) == KEEP                          # "The" is "the"
    assert quality("THE " + body) == (False, "few_stop_words")
    assert quality("the with " + body) == KEEP
    assert quality("Of " + body, stop_words=["OF"], min_stop_words=1) == KEEP
    assert quality("of " + body, stop_words=["of"], min_stop_words=1) == KEEP


def test_a_rule_set_to_null_is_off():
    assert quality(sentence(10), min_words=None) == KEEP


# --- repetition ---------------------------------------------------------------------------------


def paragraphs(*parts, sep="\n\n"):
    return sep.join(parts)


def unique(n: int, size: int = 12):
    return [words(size, 100 * i) for i in range(n)]


def test_duplicated_paragraphs_by_count():
    assert repetition(paragraphs(*unique(6), *["d"] * 4)) == KEEP       # 3 repeats / 10
    assert repetition(paragraphs(*unique(8), *["d"] * 5)) == (False, "dup_para_frac")  # 4 / 13


NO_NGRAMS = {"top_ngram_char_fracs": [], "dup_ngram_char_fracs": []}


def test_duplicated_paragraphs_by_characters():
    text = paragraphs("a" * 20, "b" * 27, "c" * 27, "a" * 20)          # 100 chars, 20 repeated
    assert len(text) == 100 and repetition(text, **NO_NGRAMS) == KEEP
    text = paragraphs("a" * 20, "b" * 27, "c" * 26, "a" * 20)          # 20 / 99
    assert repetition(text, **NO_NGRAMS) == (False, "dup_para_char_frac")


def test_duplicated_lines_by_count_and_characters():
    assert repetition(paragraphs(*unique(6), *["d"] * 4, sep="\n")) == KEEP
    assert repetition(paragraphs(*unique(8), *["d"] * 5, sep="\n")) == (False, "dup_line_frac")
    text = paragraphs("a" * 20, "b" * 28, "c" * 29, "a" * 20, sep="\n")      # 20 / 100
    assert repetition(text, max_dup_para_char_frac=None, **NO_NGRAMS) == KEEP
    text = paragraphs("a" * 20, "b" * 28, "c" * 28, "a" * 20, sep="\n")      # 20 / 99
    assert repetition(text, max_dup_para_char_frac=None, **NO_NGRAMS) == (False, "dup_line_char_frac")


@pytest.mark.parametrize("text", ["", " ", "\n\n \t\n", "\u00a0\u3000"])
def test_empty_or_blank_text_is_dropped_as_empty(text):
    assert repetition(text) == (False, "empty")
    assert quality(text) == (False, "empty")
    assert quality(text, min_words=None, min_alpha_words_frac=0.8) == (False, "empty")


def test_top_ngram_character_fraction():
    text = words(20) + " foo bar" * 3 + " " + words(20, 500)
    ngram_words = text.split()
    frac = NGrams(ngram_words).top_chars(2) / len(text)               # 3 * len("foo bar")
    assert frac == pytest.approx(21 / len(text))
    off = {"top_ngram_char_fracs": [frac], "dup_ngram_char_fracs": []}
    assert repetition(text, **off) == KEEP
    off["top_ngram_char_fracs"] = [frac - 1e-6]
    assert repetition(text, **off) == (False, "top_2gram_char_frac")
    off["top_ngram_char_fracs"] = [1.0, frac - 1e-6]                   # n = 3: "foo bar foo"
    assert repetition(text, **off) == (False, "top_3gram_char_frac")


def test_duplicated_ngram_character_fraction():
    text = words(30) + " " + words(10) + " " + words(30, 300)          # 10 words said twice
    frac = NGrams(text.split()).duplicated_chars(5) / len(text)
    assert frac == pytest.approx(40 / len(text))                       # 2 repeats of 5 words
    off = {"top_ngram_char_fracs": []}
    assert repetition(text, **off, dup_ngram_char_fracs=[frac]) == KEEP
    assert repetition(text, **off, dup_ngram_char_fracs=[frac - 1e-6]) == (False, "dup_5gram_char_frac")
    assert repetition(text, **off, dup_ngram_char_fracs=[1, 1, 1, 1, 1, frac - 1e-6]) == \
        (False, "dup_10gram_char_frac")


def test_default_thresholds_are_gophers_table_a1():
    cfg = GopherRepetitionConfig()
    assert dataclasses.astuple(cfg) == (0.3, 0.3, 0.2, 0.2, [0.2, 0.18, 0.16],
                                        [0.15, 0.14, 0.13, 0.12, 0.11, 0.10])


# --- n-gram arithmetic (datatrove's find_top_duplicate / find_all_duplicate) -----------------


def test_top_ngram_counts_the_most_frequent_and_ties_go_to_the_first():
    assert NGrams(["a", "b", "a", "b", "c"]).top_chars(2) == 2 * len("a b")
    assert NGrams(["aaa", "b", "c", "d"]).top_chars(2) == len("aaa b")  # all once: the first
    assert NGrams(["a"]).top_chars(2) == 0


def test_duplicated_ngrams_jump_past_each_repeat():
    assert NGrams(list("abcdeabcdeabcde")).duplicated_chars(5) == 10
    # "aaaaaa": 5-grams at 0 and 1 are equal; the repeat at 1 is counted, then the scan jumps
    # to 6, past the end.
    assert NGrams(list("aaaaaa")).duplicated_chars(5) == 5
    assert NGrams(list("abcdefgh")).duplicated_chars(5) == 0


def test_duplicates_counts_repeats_after_the_first():
    assert duplicates(["x", "yy", "x", "yy", "x"]) == (3, 4)
