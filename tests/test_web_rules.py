"""C4's line and document rules and FineWeb's three rules, one document each, by reason."""

from pretrain.config import C4Config, FineWebConfig
from pretrain.web_rules import C4DocumentFilter, C4LineFilter, FineWebFilter, count_sentences

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


def test_sentences_are_counted_by_their_ends_and_by_lines():
    assert count_sentences("One. Two! Three? Four") == 3
    assert count_sentences("a line without an end\nanother\n\n") == 2
    assert count_sentences('He said "stop." Then (he left.) e.g.x') == 2


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
