"""C4's line and document rules and FineWeb's three rules, with datatrove's definitions.

C4 (Raffel et al. 2020, section 2.2, and its code, tensorflow_datasets c4_utils.py), split
into a modifier that removes lines and a filter that drops documents:

  c4_lines  drop lines: not ending in terminal punctuation (off by default, as in FineWeb,
            which found it removed too much), with fewer than 3 words, with a word of more
            than 1000 characters, mentioning javascript, or cookie / terms-of-use / privacy
            policy notices; remove citation marks ([1], [edit], [citation needed])
  c4        drop documents: "lorem ipsum", a curly bracket '{', fewer than 5 sentences

  (datatrove checks "lorem ipsum" and '{' line by line, on the lines kept so far; checking
  them on the text c4_lines kept gives the same result unless a dropped javascript or policy
  line held them.) Sentences are counted as runs of . ! ? followed by a space or the line end
  (a line without one counts once); datatrove uses spaCy's sentencizer.

FineWeb (Penedo et al. 2024, "The FineWeb Datasets", section 3.3; datatrove's
FineWebQualityFilter), drop when:

  lines ending in terminal punctuation            < 0.12   line_punct_ratio
  lines of at most 30 characters                  > 0.67   short_line_ratio
  characters in lines that repeat an earlier one  > 0.1    char_dup_ratio
"""

from __future__ import annotations

import re

from pretrain.config import C4Config, FineWebConfig
from pretrain.filters import KEEP, Verdict
from pretrain.gopher import duplicates
from pretrain.words import TERMINAL_PUNCTUATION

_CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
_END_PUNCTUATION = (".", "?", "!", '"', "'")
_POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies",
           "use cookies")
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*(?=\s|$)")
_TERMINAL = tuple(TERMINAL_PUNCTUATION)


class C4LineFilter:
    """C4's line rules: keep the lines that look like sentences of running text."""

    name = "c4_lines"

    def __init__(self, cfg: C4Config):
        self.cfg = cfg

    def modify(self, text: str) -> str:
        return "\n".join(line for line in map(self._line, text.splitlines()) if line).strip()

    def _line(self, line: str) -> str:
        """The line as kept (stripped, citations removed), or "" to drop it."""
        cfg = self.cfg
        line = line.strip()
        words = line.split()
        if any(len(word) > cfg.max_word_length for word in words):
            return ""
        if cfg.remove_citations:
            line = _CITATION.sub("", line)
        if cfg.terminal_punct_lines and (not line.endswith(_END_PUNCTUATION) or line.endswith("...")):
            return ""
        if len(words) < cfg.min_words_per_line:
            return ""
        lower = line.lower()
        if cfg.javascript_lines and "javascript" in lower:
            return ""
        if cfg.policy_lines and any(phrase in lower for phrase in _POLICY):
            return ""
        return line


def count_sentences(text: str) -> int:
    """Sentences of ``text``: ends of sentences per line, at least one per non-blank line."""
    return sum(max(1, len(_SENTENCE_END.findall(line))) for line in text.splitlines() if line.strip())


class C4DocumentFilter:
    """C4's document rules (run after c4_lines): placeholder text, code, too few sentences."""

    name = "c4"

    def __init__(self, cfg: C4Config):
        self.cfg = cfg

    def filter(self, text: str) -> Verdict:
        cfg = self.cfg
        if cfg.lorem_ipsum and "lorem ipsum" in text.lower():
            return False, "lorem_ipsum"
        if cfg.curly_bracket and "{" in text:
            return False, "curly_bracket"
        if cfg.min_sentences and count_sentences(text) < cfg.min_sentences:
            return False, "too_few_sentences"
        return KEEP


class FineWebFilter:
    """FineWeb's rules: lines ending in punctuation, short lines, repeated lines."""

    name = "fineweb"

    def __init__(self, cfg: FineWebConfig):
        self.cfg = cfg

    def filter(self, text: str) -> Verdict:
        cfg = self.cfg
        lines = [line for line in text.split("\n") if line.strip()]
        if not lines:
            return False, "empty"
        if sum(1 for line in lines if line.endswith(_TERMINAL)) / len(lines) < cfg.min_punct_lines_frac:
            return False, "line_punct_ratio"
        short = sum(1 for line in lines if len(line) <= cfg.short_line_chars)
        if short / len(lines) > cfg.max_short_lines_frac:
            return False, "short_line_ratio"
        chars = len(text) - text.count("\n")
        if duplicates(lines)[1] / max(chars, 1) > cfg.max_dup_line_char_frac:
            return False, "char_dup_ratio"
        return KEEP
