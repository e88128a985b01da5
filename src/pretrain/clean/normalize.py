"""Normalisation: modifiers that return the document's text repaired, never drop it.

- ``fix_encoding``: mojibake repair with ftfy (Speer 2019), the standard tool for it, as in
  datatrove's and Dolma's pipelines. Only ``ftfy.fix_encoding``: ftfy's other fixes (HTML
  entities, curly quotes, ligatures) would also rewrite source code that means them.
- ``unicode_nfc``: canonical composition (Unicode UAX #15), so "é" is one code point whether
  it was typed precomposed or as e + combining accent.
- ``control_chars``: C0/C1 control characters other than tab, newline and carriage return,
  and the byte-order mark; never meaningful in text, they confuse tokenizers.
- ``whitespace``: CR/CRLF line ends to LF, no-break and typographic spaces to plain spaces,
  trailing whitespace of each line removed, runs of blank lines capped, blank lines around the
  document removed. Indentation and spaces inside a line are kept (source code needs them).
"""

from __future__ import annotations

import re
import unicodedata

import ftfy

from pretrain.config.clean import WhitespaceConfig

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff]+")
_LINE_ENDS = re.compile(r"\r\n?")
_ODD_SPACES = re.compile("[\u00a0\u2000-\u200a\u202f\u205f]")
_TRAILING = re.compile(r"[ \t\f\v]+$", re.M)


class FixEncoding:
    """Repair text decoded with the wrong codec ("cafÃ©" -> "café")."""

    name = "fix_encoding"

    def modify(self, text: str) -> str:
        return text if text.isascii() else ftfy.fix_encoding(text)


class UnicodeNFC:
    """Unicode normalisation form C."""

    name = "unicode_nfc"

    def modify(self, text: str) -> str:
        return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)


class ControlChars:
    """Remove control characters (keeping tab, newline, carriage return) and byte-order marks."""

    name = "control_chars"

    def modify(self, text: str) -> str:
        return _CONTROL.sub("", text)


class Whitespace:
    """Normalise line ends and spaces, strip trailing spaces, cap runs of blank lines."""

    name = "whitespace"

    def __init__(self, cfg: WhitespaceConfig):
        self.blank_run = re.compile("\n{%d,}" % (cfg.max_blank_lines + 2))
        self.blank_run_to = "\n" * (cfg.max_blank_lines + 1)

    def modify(self, text: str) -> str:
        if "\r" in text:
            text = _LINE_ENDS.sub("\n", text)
        text = _TRAILING.sub("", _ODD_SPACES.sub(" ", text))
        return self.blank_run.sub(self.blank_run_to, text).strip("\n")
