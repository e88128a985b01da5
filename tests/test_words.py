"""pretrain.words splits words as spaCy's blank English tokenizer does (datatrove's default for
the Gopher rules). The expected lists are spaCy 3.8's output for the same strings."""

import pytest

from pretrain.words import split_words

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
]


@pytest.mark.parametrize("text, words", SPACY, ids=[t[:20] for t, _ in SPACY])
def test_words_are_split_as_spacy_splits_them(text, words):
    assert split_words(text) == words


def test_whitespace_only_gives_no_words():
    assert split_words(" \n\t ") == []
