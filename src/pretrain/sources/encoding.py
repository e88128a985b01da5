"""Bytes to text: a byte-order mark, a declared charset, UTF-8, the configured encoding, or a
detection confident enough to trust; otherwise a reason to skip, rather than a wrong guess.

Encoding detection is a guess from byte statistics, and it guesses wrong on short texts and
between close code pages: on 178 texts in 13 legacy encodings (benchmarks/encoding_detection.py)
charset-normalizer's best match garbled 33 and chardet's guess 11. So a detected encoding is
used only when the guess is unambiguous: charset-normalizer's best match clearly beats its
runner-up, chardet decodes the bytes to the very same text, and that text has no symbol wedged
inside a word (``ko¶ció³``, the mark of a wrong single-byte code page). On the same texts that
decoded 118, skipped 60 and garbled none; on 148 texts written after these rules were chosen,
it decoded 54, skipped 91 and garbled 3 (Romanian ISO-8859-16 read as windows-1250: ş for ș),
where the detectors alone garbled 61 and 12. Anything else is skipped as
``encoding_uncertain``: set ``download.encoding`` to read such files.

A text file that is UTF-8 but for a few lines (a Windows curly quote, 0x92, pasted in) is not one
encoding, so neither UTF-8 nor any single encoding reads it right: ``decode_mixed`` decodes such a
file line by line, each line that is not UTF-8 strictly with a fallback encoding (default cp1252),
or leaves the line out.
"""

from __future__ import annotations

import codecs
import re
from typing import NamedTuple

BOMS = [  # UTF-32 first: the UTF-32-LE mark begins with the UTF-16-LE one
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
]
# The WHATWG Encoding Standard (https://encoding.spec.whatwg.org/#names-and-labels) reads the
# labels "iso-8859-1", "latin1" and "us-ascii" as windows-1252, as every browser does: servers
# and pages that say latin-1 mostly send windows-1252 (curly quotes at 0x91-0x94).
WINDOWS_1252_LABELS = {"latin-1", "iso8859-1", "ascii"}
MAX_CHAOS = 0.02          # charset-normalizer's "mess" ratio of the best match (0: clean text)
CHAOS_TIE = 0.01          # matches this close in mess compete on language coherence
COHERENCE_MARGIN = 0.01   # ... and the winner must lead the runner-up by this much
CHARDET_BYTES = 256 * 1024
# A non-ASCII symbol or punctuation sign between two letters, other than apostrophes, middle
# dots, hyphens, dashes and CJK punctuation ("。", "、", fullwidth forms): "ko¶ció³" is Polish
# ISO-8859-2 read as windows-1250.
MOJIBAKE = re.compile(r"[^\W\d_][^\w\s\x00-\x7f\u00ad\u00b7\u2010-\u2015\u2018\u2019"
                      r"\u3000-\u303f\u30fb\uff00-\uffef][^\W\d_]")
# WHATWG HTML, "prescan a byte stream to determine its encoding": a <meta charset> or
# <meta http-equiv="Content-Type" content="...; charset=..."> in the first 1024 bytes.
META_CHARSET = re.compile(rb"<meta[^>]*?charset\s*=\s*[\"']?\s*([a-z0-9_\-:.]+)", re.IGNORECASE)


class Decoded(NamedTuple):
    """The text and the encoding it was read in, or no text and the reason why."""

    text: str | None
    encoding: str | None
    reason: str | None = None


def decode(raw: bytes, encoding: str | None = None,
           declared: tuple[str | None, ...] = ()) -> Decoded:
    """Decode ``raw``. A byte-order mark wins; then each ``declared`` charset (an HTTP header,
    an HTML meta tag: hints, passed over when they do not decode); then UTF-8 (text in a legacy
    encoding is almost never valid UTF-8); then ``encoding``, the user's choice for the rest;
    then, if there is none, detection."""
    for bom, name in BOMS:
        if raw.startswith(bom):
            return _strict(raw, name) or Decoded(None, None, "encoding_mismatch")
    for label in declared:
        for name in _names(label):
            if found := _strict(raw, name):
                return found
    if found := _strict(raw, "utf-8"):
        return found
    if encoding:
        return _strict(raw, encoding) or Decoded(None, None, "encoding_mismatch")
    return detect(raw)


def detect(raw: bytes) -> Decoded:
    """Guess the encoding of bytes that are not UTF-8; accept the guess only when confident."""
    import charset_normalizer

    matches = list(charset_normalizer.from_bytes(raw))
    if not matches:
        return Decoded(None, None, "not_text")  # no encoding decodes it: binary data
    low = min(m.chaos for m in matches)
    plausible = sorted((m for m in matches if m.chaos <= low + CHAOS_TIE),
                       key=lambda m: -m.coherence)
    best = plausible[0]
    if low > MAX_CHAOS or (len(plausible) > 1
                           and best.coherence - plausible[1].coherence < COHERENCE_MARGIN):
        return Decoded(None, None, "encoding_uncertain")
    text = str(best)
    if _chardet_text(raw) != text or MOJIBAKE.search(text):
        return Decoded(None, None, "encoding_uncertain")
    return Decoded(text, best.encoding)


def html_charset(raw: bytes) -> str | None:
    """The charset an HTML document declares in a meta tag of its first 1024 bytes."""
    found = META_CHARSET.search(raw[:1024])
    return found.group(1).decode("ascii") if found else None


def _chardet_text(raw: bytes) -> str | None:
    import chardet

    guess = chardet.detect(raw[:CHARDET_BYTES])["encoding"]
    found = _strict(raw, guess) if guess else None
    return found.text if found else None


def _names(label: str | None) -> list[str]:
    """Python codec names to try for a charset label; none for an unknown label."""
    try:
        name = codecs.lookup(label or "").name
    except LookupError:
        return []
    return ["cp1252", name] if name in WINDOWS_1252_LABELS else [name]


def _strict(raw: bytes, name: str) -> Decoded | None:
    try:
        return Decoded(raw.decode(name), codecs.lookup(name).name)
    except (UnicodeDecodeError, LookupError):
        return None


class Repaired(NamedTuple):
    """A mostly-UTF-8 text decoded line by line: its lines (each with its ``\\n``), the 1-based
    line number of each in its file, and the numbers of the lines decoded with the fallback
    encoding (``repaired``) or left out because it cannot decode them either (``dropped``)."""

    lines: list[str]
    numbers: list[int]
    repaired: list[int]
    dropped: list[int]


def decode_mixed(raw: bytes, encoding: str | None, fallback: str | None,
                 max_bad_share: float) -> Decoded | Repaired:
    """Decode a text file that may be UTF-8 with a few lines in another encoding (a Windows curly
    quote pasted in). A byte-order mark or valid UTF-8: ``decode``. Otherwise, when some UTF-8
    line holds a non-ASCII character (the file is UTF-8) and at most ``max_bad_share`` of its
    non-blank lines are not UTF-8: line by line (``decode_lines``), before ``encoding``, which
    would turn the UTF-8 lines into mojibake. Otherwise the whole file is one encoding
    (``decode``: ``encoding``, else detection); only when that fails are a few bad lines in an
    ASCII file repaired all the same (the fallback decodes them as the whole file would)."""
    if any(raw.startswith(bom) for bom, _ in BOMS):
        return decode(raw, encoding)
    if found := _strict(raw, "utf-8"):
        return found
    if repaired := decode_lines(raw, fallback, max_bad_share, need_utf8_evidence=True):
        return repaired
    decoded = decode(raw, encoding)
    if decoded.reason:
        return decode_lines(raw, fallback, max_bad_share, need_utf8_evidence=False) or decoded
    return decoded


def decode_lines(raw: bytes, fallback: str | None, max_bad_share: float,
                 need_utf8_evidence: bool) -> Repaired | None:
    """``raw`` (bytes that are not valid UTF-8 as a whole) decoded line by line, lines split at
    ``\\n``: a line that is valid UTF-8 as UTF-8, any other strictly with ``fallback`` (None:
    none is decoded), and a line neither decodes left out. None when the lines that are not UTF-8
    are more than ``max_bad_share`` of the non-blank lines, or, with ``need_utf8_evidence``, when
    no UTF-8 line holds a non-ASCII character (nothing shows the file is UTF-8 rather than a
    legacy encoding with a few accented lines): the file is then one encoding, to be told whole.

    cp1252, the usual fallback, leaves 0x81, 0x8D, 0x8F, 0x90 and 0x9D undefined, so a line
    with one of them is dropped rather than decoded to a control character.
    """
    chunks = raw.split(b"\n")
    if not chunks[-1]:
        chunks.pop()
    bad = {i for i, chunk in enumerate(chunks) if _strict(chunk, "utf-8") is None}
    nonblank = sum(1 for chunk in chunks if chunk.strip())
    if not bad or len(bad) > max_bad_share * nonblank:
        return None
    if need_utf8_evidence and all(c.isascii() for i, c in enumerate(chunks) if i not in bad):
        return None
    result = Repaired([], [], [], [])
    for i, chunk in enumerate(chunks):
        end = "\n" if i < len(chunks) - 1 or raw.endswith(b"\n") else ""
        found = _strict(chunk, fallback) if i in bad and fallback else None
        if i in bad:
            (result.repaired if found else result.dropped).append(i + 1)
            if not found:
                continue
        result.lines.append((found.text if found else chunk.decode("utf-8")) + end)
        result.numbers.append(i + 1)
    return result
