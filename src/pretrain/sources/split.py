"""One long text cut into documents at natural boundaries, so a single big file (Tiny
Shakespeare's ``input.txt``, a Gutenberg book) gives the document-level validation split of the
pack stage something to hold out.

A text is a list of lines, each with its 1-based line number in its file (a line dropped by
pretrain.sources.encoding.decode_lines leaves a gap in the numbers; the numbers stay the file's).
A *paragraph* is a run of non-blank lines; blank lines separate paragraphs. ``cut_paragraphs``
groups whole paragraphs, in order, into parts of at most ``target_chars`` characters; a
paragraph longer than ``target_chars`` is a part of its own, and one longer than ``max_chars``
is cut at line ends into pieces of at most ``max_chars`` (a single line longer than that stays
whole: a cut inside a line would cut a word or a sentence). ``cut_sections`` starts a new part at
each line a regular expression matches (``^CHAPTER [IVXLC]+``: chapter headings), the text before
the first such line being a part of its own; a section longer than ``max_chars`` is cut by
paragraphs as above. A part holds its lines whole, line ends included, without the blank lines
that end it; nothing but blank lines between parts is left out. Characters are counted with line
ends, in Python ``str`` characters (code points).
"""

from __future__ import annotations

import re
from typing import Iterator, NamedTuple, Sequence


class Part(NamedTuple):
    """One document's text and the first and last line (1-based, inclusive) of its file it spans."""

    text: str
    first_line: int
    last_line: int


def split_lines(text: str) -> list[str]:
    """``text`` as lines, each with its ``\\n`` (the last one without, when the text does not end
    in one): numbered as editors and ``sed -n`` number them, unlike ``str.splitlines``, which also
    breaks at ``\\r``, form feeds and U+2028."""
    lines = text.split("\n")
    ends = [line + "\n" for line in lines[:-1]]
    return ends + [lines[-1]] if lines[-1] else ends


def cut_text(lines: Sequence[str], numbers: Sequence[int], target_chars: int, max_chars: int,
             pattern: re.Pattern | None = None) -> Iterator[Part]:
    """The parts of a text (see the module docstring): by ``pattern`` when given, else by
    paragraphs. ``numbers[i]`` is the line number of ``lines[i]``."""
    if pattern is None:
        yield from cut_paragraphs(lines, numbers, target_chars, max_chars)
    else:
        yield from cut_sections(lines, numbers, pattern, target_chars, max_chars)


def cut_paragraphs(lines: Sequence[str], numbers: Sequence[int], target_chars: int,
                   max_chars: int) -> Iterator[Part]:
    """Whole paragraphs grouped into parts of at most ``target_chars`` characters (see the
    module docstring for the longer ones)."""
    start = end = size = 0  # the part being built: lines[start:end], size characters
    for first, last in _paragraphs(lines):
        chars = sum(len(lines[i]) for i in range(first, last))
        gap = sum(len(lines[i]) for i in range(end, first)) if end > start else 0
        if end > start and size + gap + chars > target_chars:
            yield _part(lines, numbers, start, end)
            start = end = size = 0
        if chars > max_chars:
            yield from _cut_lines(lines, numbers, first, last, max_chars)
            continue
        if end == start:
            start, size = first, chars
        else:
            size += gap + chars
        end = last
    if end > start:
        yield _part(lines, numbers, start, end)


def cut_sections(lines: Sequence[str], numbers: Sequence[int], pattern: re.Pattern,
                 target_chars: int, max_chars: int) -> Iterator[Part]:
    """A part from each line that ``pattern`` matches (searched in the line without its end) to
    the next one, and one for the text before the first; a section longer than ``max_chars``
    characters is cut by paragraphs (``cut_paragraphs``)."""
    starts = [0] + [i for i, line in enumerate(lines) if i and pattern.search(line.rstrip("\r\n"))]
    for begin, stop in zip(starts, starts[1:] + [len(lines)]):
        section, section_numbers = lines[begin:stop], numbers[begin:stop]
        if sum(map(len, section)) > max_chars:
            yield from cut_paragraphs(section, section_numbers, target_chars, max_chars)
        elif any(line.strip() for line in section):
            first, last = _trimmed(section)
            yield _part(section, section_numbers, first, last)


def _paragraphs(lines: Sequence[str]) -> Iterator[tuple[int, int]]:
    """``(first, stop)`` indices of each run of non-blank lines."""
    first = None
    for i, line in enumerate(lines):
        if line.strip():
            first = i if first is None else first
        elif first is not None:
            yield first, i
            first = None
    if first is not None:
        yield first, len(lines)


def _cut_lines(lines: Sequence[str], numbers: Sequence[int], first: int, stop: int,
               max_chars: int) -> Iterator[Part]:
    """One paragraph, ``lines[first:stop]``, cut at line ends into parts of at most
    ``max_chars`` characters (a longer line alone)."""
    start, size = first, 0
    for i in range(first, stop):
        if i > start and size + len(lines[i]) > max_chars:
            yield _part(lines, numbers, start, i)
            start, size = i, 0
        size += len(lines[i])
    yield _part(lines, numbers, start, stop)


def _trimmed(lines: Sequence[str]) -> tuple[int, int]:
    """The indices of the first and one past the last non-blank line."""
    nonblank = [i for i, line in enumerate(lines) if line.strip()]
    return nonblank[0], nonblank[-1] + 1


def _part(lines: Sequence[str], numbers: Sequence[int], start: int, stop: int) -> Part:
    return Part("".join(lines[start:stop]), numbers[start], numbers[stop - 1])
