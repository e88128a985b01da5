"""C4's line and document rules and FineWeb's three rules, one document each, by reason."""

import pytest

from pretrain.clean.registry import check_names
from pretrain.clean.runner import apply_rules, build_rules
from pretrain.clean.web import (
    C4DocumentFilter,
    C4LineFilter,
    FineWebFilter,
    count_sentences,
)
from pretrain.config.clean import C4Config, CleanConfig, FineWebConfig
from pretrain.errors import ConfigError

KEEP = (True, None)
SENTENCE = "The library reads the file and returns its lines."


def c4_lines(text, **cfg):
    return C4LineFilter(C4Config(**cfg)).modify(text)


def c4(text, **cfg):
    return C4DocumentFilter(C4Config(**cfg)).filter(text)


def fineweb(text, **cfg):
    return FineWebFilter(FineWebConfig(**cfg)).filter(text)


# --- C4 lines -----------------------------------------------------------------------------------


def test_c4_drops_lines_with_fewer_than_three_words_and_strips_the_rest():
    assert c4_lines(f"  {SENTENCE}  \nTwo words\nthree words here") == f"{SENTENCE}\nthree words here"
    assert c4_lines("Two words", min_words_per_line=0) == "Two words"


def test_c4_drops_javascript_and_policy_lines_and_lines_with_huge_words():
    text = "\n".join([SENTENCE, "Please enable JavaScript to view this page.",
                      "This site uses cookies to improve your experience.",
                      "Read our Privacy Policy before you continue.", "a b " + "x" * 1001, SENTENCE])
    assert c4_lines(text) == f"{SENTENCE}\n{SENTENCE}"
    kept = c4_lines(text, javascript_lines=False, policy_lines=False, max_word_length=2000)
    assert kept.count("\n") == 5


def test_c4_removes_citation_marks():
    assert c4_lines("Rome was founded in 753 BC.[1] It grew.[citation needed] Then [edit]") == \
        "Rome was founded in 753 BC. It grew. Then"


def test_c4_terminal_punctuation_rule_when_on():
    text = "A heading without a stop\nA sentence that ends well.\nA sentence that trails off...\n" \
           "She said \"yes.\""
    assert c4_lines(text, terminal_punct_lines=True) == "A sentence that ends well.\nShe said \"yes.\""
    assert c4_lines(text) == text  # off by default, as in FineWeb


def test_c4_document_rules():
    five = " ".join([SENTENCE] * 5)
    assert c4(five) == KEEP
    assert c4(" ".join([SENTENCE] * 4)) == (False, "too_few_sentences")
    assert c4(five + " Lorem Ipsum dolor sit amet.") == (False, "lorem_ipsum")
    assert c4(five + " Use a dict such as {1: 2}.") == (False, "curly_bracket")
    assert c4(five + " {", curly_bracket=False) == KEEP


def c4_as_configured(text):
    """The page through the c4 rules of the default rule list, in its order."""
    cfg = CleanConfig()
    rules = build_rules([name for name in cfg.filters if name in ("c4", "c4_lines")], cfg)
    _, reason, _ = apply_rules(rules, {"text": text, "source": "web", "id": "page"})
    return reason


def test_page_rules_see_the_lines_before_c4_removes_them():
    five = "\n".join([SENTENCE] * 5)
    # C4's reference order (c4_utils.clean_page): "lorem ipsum" is checked before the
    # javascript and policy lines go, '{' before the policy lines (but after javascript).
    assert c4_as_configured(five + "\nPlease enable JavaScript, lorem ipsum goes here.") == \
        "c4.lorem_ipsum"
    assert c4_as_configured(five + "\nWe use cookies {and similar tools} to show offers.") == \
        "c4.curly_bracket"
    assert c4_as_configured(five + "\nJavaScript is off; features {like search} fail.") is None
    assert c4_as_configured(five + "\nLorem ipsum\n{") is None  # lines under 3 words go first
    assert c4(five + "\nJavaScript is off; features {like search} fail.") == KEEP


def test_c4_must_judge_the_page_before_c4_lines_removes_lines():
    check_names(["c4", "c4_lines"])
    with pytest.raises(ConfigError, match="c4 before c4_lines"):
        check_names(["c4_lines", "c4"])


def test_sentences_are_counted_as_punkt_counts_them():
    assert count_sentences("One. Two! Three? Four") == 4                # the last one counts
    assert count_sentences("a line without an end\nanother\n\n") == 2
    assert count_sentences("Mr. Smith met Dr. Jones in St. Louis. They talked.") == 2
    assert count_sentences("He paused... and then he spoke. It was late.") == 2
    assert count_sentences("He paused... Then he spoke.") == 1
    assert count_sentences('He said "stop." Then (he left.) e.g.x') == 3
    # NLTK's English punkt model does not know "e.g." (nltk#2376): C4 counts a break there.
    assert count_sentences("Use a hammer, e.g. a claw hammer. Then hit the nail.") == 3


def test_pages_around_the_minimum_are_decided_by_punkt_sentences():
    assert c4("Mr. Smith and Dr. Jones met at noon.\n" * 4 + "Mr. Brown came too.") == KEEP
    assert c4("Mr. Smith and Dr. Jones met at noon.\n" * 4) == (False, "too_few_sentences")
    assert c4("One is here. Two is here. Three is here. Four is here. Five is here") == KEEP


@pytest.mark.parametrize("text", ["", "   ", "\n \n\t"])
def test_blank_pages_are_dropped_as_empty(text):
    assert c4(text) == (False, "empty")
    assert c4(text, min_sentences=0) == (False, "empty")
    assert fineweb(text) == (False, "empty")


# --- FineWeb -------------------------------------------------------------------------------------


def lines(n_punct: int, n_plain: int, width: int = 40) -> list[str]:
    """Distinct lines of ``width`` characters; the first ``n_punct`` end in a full stop."""
    out = [f"line {i:04d} " + "x" * (width - 11) + ("." if i < n_punct else "y") for i in range(n_punct + n_plain)]
    assert all(len(line) == width for line in out)
    return out


def test_fineweb_lines_ending_in_punctuation():
    assert fineweb("\n".join(lines(3, 22))) == KEEP                      # 3 / 25 = 0.12
    assert fineweb("\n".join(lines(2, 23))) == (False, "line_punct_ratio")  # 0.08
    assert fineweb("\n".join(lines(0, 7) + ["Fin。"])) == KEEP           # 1 / 8: 。 ends one too
    assert fineweb("\n".join(lines(0, 8) + ["Fin。"])) == (False, "line_punct_ratio")  # 1 / 9


def test_fineweb_short_lines():
    short = [f"short {i}." for i in range(16)]
    assert fineweb("\n".join(lines(9, 0) + short)) == KEEP               # 16 / 25 = 0.64
    assert fineweb("\n".join(lines(8, 0) + short + ["end."])) == (False, "short_line_ratio")  # 17 / 25


def test_fineweb_characters_in_repeated_lines():
    base = lines(20, 0)
    text = "\n".join(base + base[:2])                                    # 80 / 880 chars
    assert fineweb(text) == KEEP
    assert fineweb("\n".join(base + base[:3])) == (False, "char_dup_ratio")  # 120 / 920
    assert fineweb(text, max_dup_line_char_frac=0.09) == (False, "char_dup_ratio")


def test_fineweb_blank_text():
    assert fineweb(" \n \n") == (False, "empty")
