"""pretrain.clean.words splits words as spaCy's blank English tokenizer does (datatrove's default for
the Gopher rules). The expected lists are spaCy 3.8's output for the same strings."""

import pytest

from pretrain.clean.words import split_words

SPACY = [
    ("Python's os.path.join(a, b).",
     ["Python", "'s", "os.path.join(a", ",", "b", ")", "."]),
    ("def f(x):\n    return x[1:]",
     ["def", "f(x", "):", "return", "x[1", ":]"]),  # "):" and ":]" are spaCy emoticons
    ("well-known and/or a/b x=y 3.14 1,000 a,b end.Start",
     ["well", "-", "known", "and/or", "a", "/", "b", "x", "=", "y", "3.14", "1,000", "a", ",", "b",
      "end", ".", "Start"]),
    ("don't can't cannot I'm they're e.g. U.S. A. etc. Mr. Smith",
     ["do", "n't", "ca", "n't", "can", "not", "I", "'m", "they", "'re", "e.g.", "U.S.", "A.", "etc",
      ".", "Mr.", "Smith"]),
    ('Wait... really…yes (see https://example.com/a/b). [1] "quoted" --flag -v',
     ["Wait", "...", "really", "…", "yes", "(", "see", "https://example.com/a/b", ")", ".", "[", "1",
      "]", '"', "quoted", '"', "--flag", "-v"]),
    ("50% of $5 is 3-5 ok :) #tag @user x@y.com",
     ["50", "%", "of", "$", "5", "is", "3", "-", "5", "ok", ":)", "#", "tag", "@user", "x@y.com"]),
    ("[link](https://github.com/owner/repo) ├── box",  # a URL inside a chunk is split
     ["[", "link](https://github.com", "/", "owner", "/", "repo", ")", "├", "─", "─", "box"]),
    ("x = '' + '''doc'''",
     ["x", "=", "''", "+", "''", "'", "doc", "''", "'"]),
    # e-mail addresses, host names and paths are kept whole (spaCy's URL match)
    ("Contact name@t-online.de or see example.com/path, README-hacking.md.",
     ["Contact", "name@t-online.de", "or", "see", "example.com/path", ",", "README-hacking.md",
      "."]),
    # contractions are split only where the whole core is one (also without the apostrophe)
    ("y'all gonna id Wed can't Error('cannot",
     ["y'", "all", "gon", "na", "i", "d", "We", "d", "ca", "n't", "Error('cannot"]),
    # emoticons with a nose, a fraction before a hyphen, units and "+" after numbers, times
    ("Nice ;-) :-)) ½-cup 5km 3.10+ 12pm",
     ["Nice", ";-)", ":-))", "½-cup", "5", "km", "3.10", "+", "12", "pm"]),
    # pieces of special cases met inside a chunk are merged, the longest first
    ("f():') x/and/or (Mr. Smith).",
     ["f", "(", ")", ":')", "x", "/", "and/or", "(", "Mr.", "Smith", ")", "."]),
]


@pytest.mark.parametrize("text, words", SPACY, ids=[t[:20] for t, _ in SPACY])
def test_words_are_split_as_spacy_splits_them(text, words):
    assert split_words(text) == words


def test_whitespace_only_gives_no_words():
    assert split_words(" \n\t ") == []


def test_letter_is_exactly_str_isalpha():
    import re
    import sys

    from pretrain.clean.words import LETTER

    every = "".join(map(chr, range(sys.maxunicode + 1)))
    letters = re.findall(LETTER, every)
    assert letters == [c for c in every if c.isalpha()]
    assert not re.findall(LETTER, "½¾²³①Ⅳ〇_0٣")  # numbers are not letters


def test_special_cases_cover_spacys_english_exceptions():
    from pretrain.clean.words import SPECIAL_CASES

    assert len(SPECIAL_CASES) == 1343  # spaCy 3.8's, less the whitespace ones
    assert SPECIAL_CASES["Shouldn’t’ve"] == ("Should", "n’t", "’ve")
    assert "its" not in SPECIAL_CASES and "Its" not in SPECIAL_CASES
