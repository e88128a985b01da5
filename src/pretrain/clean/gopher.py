"""Gopher's quality and repetition rules (Rae et al. 2021, "Scaling Language Models", appendix
A.1.1 and table A1), with the definitions of datatrove's GopherQualityFilter and
GopherRepetitionFilter so that the keep/drop decisions agree (benchmarks/clean_speed.py).

Quality (drop when ...)                             Repetition (table A1; drop when above)
  words (non-symbol) < 50 or > 100,000                duplicate line fraction             0.30
  mean word length < 3 or > 10 characters             duplicate paragraph fraction        0.30
  '#' or '...' per word > 0.1 (each)                  duplicate line character fraction   0.20
  lines starting with a bullet > 0.9                  duplicate paragraph char fraction   0.20
  lines ending with an ellipsis > 0.3                 top 2/3/4-gram character fraction   0.20/0.18/0.16
  words with an alphabetic character < 0.8            duplicated 5..10-gram char fraction 0.15..0.10
  fewer than 2 of: the be to of and that have with (any case: "The" counts)

An empty or whitespace-only document is dropped as ``empty`` by both. Where this differs from
datatrove: stop words match in any case (datatrove: exact case, so "The" does not count; the
paper lists words, not spellings), and a whitespace-only text is ``empty`` for repetition too
(datatrove's repetition filter says so only for "").

Speed: the words are found by pretrain.clean.words (spaCy's rules, cached per chunk) rather than
spaCy, word statistics are counted by regular expressions over the words joined by newlines,
and n-grams are 64-bit polynomial hashes of word ids in numpy (a collision, ~n^2 / 2^64,
could merge two n-grams; at 10^6 words that is a 1 in 10^7 chance per document). The rules run
in the paper's order and stop at the first failure.
"""

from __future__ import annotations

import re

import numpy as np

from pretrain.clean.registry import EMPTY, KEEP, Verdict, blank
from pretrain.clean.words import LETTER, PUNCTUATION, TERMINAL_PUNCTUATION, split_words
from pretrain.config.clean import GopherQualityConfig, GopherRepetitionConfig

_SYMBOL_WORD = re.compile("^[" + re.escape("".join(set(PUNCTUATION + TERMINAL_PUNCTUATION)))
                          + "]+$", re.M)
# A word (a line of the words joined by newlines) with a letter in it: str.isalpha, as
# datatrove's ``any(c.isalpha() for c in w)``; ½ ² ① Ⅳ are not letters.
_ALPHA_WORD = re.compile(r"^[^\n]*?" + LETTER, re.M)
_PARAGRAPHS = re.compile(r"\n{2,}")
_LINES = re.compile(r"\n+")
_BULLETS = ("•", "-")
_ELLIPSES = ("...", "…")
_HASH_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant (golden ratio)


class GopherQualityFilter:
    """Gopher's quality heuristics: document length, word length, symbols, lists, stop words."""

    name = "gopher_quality"

    def __init__(self, cfg: GopherQualityConfig):
        self.cfg = cfg
        self.stop_words = frozenset(word.lower() for word in cfg.stop_words)

    def filter(self, text: str) -> Verdict:
        if blank(text):
            return EMPTY
        words = split_words(text)
        verdict = self._word_rules(words)
        if verdict[0]:
            verdict = self._symbol_and_line_rules(text, max(len(words), 1))
        if verdict[0]:
            verdict = self._alpha_and_stop_word_rules(words)
        return verdict

    def _word_rules(self, words: list[str]) -> Verdict:
        cfg = self.cfg
        joined = "\n".join(words)
        symbols = _SYMBOL_WORD.findall(joined)
        count = len(words) - len(symbols)
        if cfg.min_words is not None and count < cfg.min_words:
            return False, "too_few_words"
        if cfg.max_words is not None and count > cfg.max_words:
            return False, "too_many_words"
        if count == 0:
            return KEEP
        mean = (len(joined) - len(words) + 1 - sum(map(len, symbols))) / count
        if cfg.min_mean_word_length is not None and mean < cfg.min_mean_word_length:
            return False, "short_words"
        if cfg.max_mean_word_length is not None and mean > cfg.max_mean_word_length:
            return False, "long_words"
        return KEEP

    def _symbol_and_line_rules(self, text: str, n_words: int) -> Verdict:
        cfg = self.cfg
        if cfg.max_symbol_word_ratio is not None:
            if text.count("#") / n_words > cfg.max_symbol_word_ratio:
                return False, "hash_ratio"
            if (text.count("...") + text.count("…")) / n_words > cfg.max_symbol_word_ratio:
                return False, "ellipsis_ratio"
        lines = text.splitlines() or [""]
        if cfg.max_bullet_lines_frac is not None:
            bullets = sum(1 for line in lines if line.lstrip().startswith(_BULLETS))
            if bullets / len(lines) > cfg.max_bullet_lines_frac:
                return False, "bullet_lines"
        if cfg.max_ellipsis_lines_frac is not None:
            ellipses = sum(1 for line in lines if line.rstrip().endswith(_ELLIPSES))
            if ellipses / len(lines) > cfg.max_ellipsis_lines_frac:
                return False, "ellipsis_lines"
        return KEEP

    def _alpha_and_stop_word_rules(self, words: list[str]) -> Verdict:
        cfg = self.cfg
        if cfg.min_alpha_words_frac is not None:
            alpha = len(_ALPHA_WORD.findall("\n".join(words)))
            if alpha / max(len(words), 1) < cfg.min_alpha_words_frac:
                return False, "few_alpha_words"
        if cfg.min_stop_words is not None:
            # Case-insensitive ("The" is the stop word "the"); datatrove matches case-sensitively.
            if len(self.stop_words.intersection(map(str.lower, words))) < cfg.min_stop_words:
                return False, "few_stop_words"
        return KEEP


def duplicates(parts: list[str]) -> tuple[int, int]:
    """Parts that repeat an earlier part, and their characters (datatrove's find_duplicates)."""
    unique = set(parts)
    return len(parts) - len(unique), sum(map(len, parts)) - sum(map(len, unique))


class GopherRepetitionFilter:
    """Gopher's repetition rules: repeated lines, paragraphs and word n-grams (table A1)."""

    name = "gopher_repetition"

    def __init__(self, cfg: GopherRepetitionConfig):
        self.cfg = cfg

    def filter(self, text: str) -> Verdict:
        if blank(text):
            return EMPTY
        verdict = self._part_rules(text)
        if verdict[0]:
            verdict = self._ngram_rules(text, split_words(text))
        return verdict

    def _part_rules(self, text: str) -> Verdict:
        cfg = self.cfg
        paragraphs = _PARAGRAPHS.split(text.strip())
        count, chars = duplicates(paragraphs)
        if cfg.max_dup_para_frac is not None and count / len(paragraphs) > cfg.max_dup_para_frac:
            return False, "dup_para_frac"
        if cfg.max_dup_para_char_frac is not None and chars / len(text) > cfg.max_dup_para_char_frac:
            return False, "dup_para_char_frac"
        lines = _LINES.split(text)
        count, chars = duplicates(lines)
        if cfg.max_dup_line_frac is not None and count / len(lines) > cfg.max_dup_line_frac:
            return False, "dup_line_frac"
        if cfg.max_dup_line_char_frac is not None and chars / len(text) > cfg.max_dup_line_char_frac:
            return False, "dup_line_char_frac"
        return KEEP

    def _ngram_rules(self, text: str, words: list[str]) -> Verdict:
        if not words:
            return KEEP
        ngrams = NGrams(words)
        for n, frac in enumerate(self.cfg.top_ngram_char_fracs, start=2):
            if ngrams.top_chars(n) / len(text) > frac:
                return False, f"top_{n}gram_char_frac"
        for n, frac in enumerate(self.cfg.dup_ngram_char_fracs, start=5):
            if ngrams.duplicated_chars(n, limit=frac * len(text)) / len(text) > frac:
                return False, f"dup_{n}gram_char_frac"
        return KEEP


class NGrams:
    """Word n-grams of one document as hashes of word ids, with their character lengths."""

    def __init__(self, words: list[str]):
        index = {word: i for i, word in enumerate(dict.fromkeys(words))}
        self.n_words = len(words)
        ids = np.fromiter(map(index.__getitem__, words), dtype=np.uint64, count=self.n_words)
        self.cum_len = np.zeros(self.n_words + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, words), dtype=np.int64, count=self.n_words),
                  out=self.cum_len[1:])
        self._hashes = {1: ids + np.uint64(1)}
        self._candidates: dict[int, np.ndarray] = {}

    def hashes(self, n: int) -> np.ndarray:
        """Hash of the n-gram starting at each position (``n_words - n + 1`` of them)."""
        if n not in self._hashes:
            shorter = self.hashes(n - 1)[:-1]
            self._hashes[n] = shorter * _HASH_MULTIPLIER + self._hashes[1][n - 1:]
        return self._hashes[n]

    def chars(self, starts: np.ndarray | int, n: int):
        """Characters of the words of the n-gram(s) starting at ``starts`` (no separators)."""
        return self.cum_len[np.asarray(starts) + n] - self.cum_len[starts]

    def top_chars(self, n: int) -> int:
        """Characters of the most frequent n-gram (words joined by spaces) times its count; ties
        go to the n-gram seen first, as Counter.most_common does."""
        if self.n_words < n:
            return 0
        _, first, counts = np.unique(self.hashes(n), return_index=True, return_counts=True)
        top = counts.max()
        start = int(first[counts == top].min())
        return int(top) * (int(self.chars(start, n)) + n - 1)

    def duplicated_chars(self, n: int, limit: float = float("inf")) -> int:
        """Characters in n-grams that repeat an earlier one, scanning left to right and jumping
        past each repeat (datatrove's find_all_duplicate); stops once above ``limit``."""
        starts = self.repeated_starts(n)
        if starts.size == 0:
            return 0
        _, groups = np.unique(self.hashes(n)[starts], return_inverse=True)
        lengths = self.chars(starts, n).tolist()
        seen: set[int] = set()
        total, next_visit = 0, 0
        for start, group, length in zip(starts.tolist(), groups.tolist(), lengths):
            if start < next_visit:
                continue  # inside an n-gram already counted as a repeat: never visited
            if group in seen:
                total += length
                next_visit = start + n
                if total > limit:
                    break
            else:
                seen.add(group)
        return total

    def repeated_starts(self, n: int) -> np.ndarray:
        """Sorted starts of n-grams that occur more than once (a subset of the (n-1)-grams')."""
        if n not in self._candidates:
            if self.n_words < n:
                found = np.zeros(0, dtype=np.int64)
            else:
                pool = (np.arange(self.n_words - n + 1) if n <= 2 or n - 1 not in self._candidates
                        else self.repeated_starts(n - 1))
                pool = pool[pool <= self.n_words - n]
                keys = self.hashes(n)[pool]
                _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
                found = pool[counts[inverse] > 1]
            self._candidates[n] = found
        return self._candidates[n]
