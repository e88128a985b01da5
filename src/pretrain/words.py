"""Word tokenization and character classes shared by the Gopher, C4 and FineWeb rules.

The rules' reference implementation (datatrove, Hugging Face's curation library: filters
``gopher_quality_filter.py``, ``gopher_repetition_filter.py``, ``fineweb_quality_filter.py``)
splits English text into words with spaCy's blank English tokenizer: whitespace-separated
chunks, punctuation stripped off both ends of a chunk one character at a time, a few infixes
(hyphens and ``/ : < > =`` between letters, ``,`` between letters, ``.`` between a lower-case
and an upper-case letter, ellipses) and suffixes (``'s``, ``n't``, ``%`` after a number) split
inside it, plus spaCy's special cases that re-merge punctuation (emoticons such as "):",
which ends every Python ``def f():``). ``split_words`` reproduces those rules with two compiled
regular expressions instead of running spaCy, which is most of datatrove's time. The words are
the same as spaCy's for most documents and nearly the same for the rest (spaCy's URL match of
bare host names such as "README-hacking.md", its units after numbers, a few abbreviations);
benchmarks/clean_speed.py counts the documents with identical words and how often the Gopher
rules' keep/drop decisions differ.
"""

from __future__ import annotations

import functools
import re

# datatrove.utils.text.PUNCTUATION: what counts as a symbol (a word made only of these is not
# a word for the Gopher word-count and mean-length rules). Includes C0/C1 controls but not
# tab or newline.
PUNCTUATION = ("!/—”:％１〈&(、━\\【#%「」，】；+^]~“《„';’{|∶´[=-`*．（–？！：$～«〉,><》)?）。…@_.\"}►»"
               + "".join(map(chr, [*range(0, 9), *range(11, 32), *range(127, 160)])))

# datatrove.utils.text.TERMINAL_PUNCTUATION (Unicode's Sentence_Terminal characters): a line
# ending in one of these "ends in punctuation" for FineWeb's rule. Kept as one string.
TERMINAL_PUNCTUATION = (
    "!.?\u0589\u061d\u061e\u061f\u06d4\u0700\u0701\u0702\u07f9\u0837\u0839\u083d\u083e\u0964"
    "\u0965\u104a\u104b\u1362\u1367\u1368\u166e\u1735\u1736\u17d4\u17d5\u17d6\u17d9\u17da"
    "\u1803\u1809\u1944\u1945\u1aa8\u1aa9\u1aaa\u1aab\u1b5a\u1b5b\u1b5e\u1b5f\u1b7d\u1b7e"
    "\u1c3b\u1c3c\u1c7e\u1c7f\u203c\u203d\u2047\u2048\u2049\u2e2e\u2e3c\u2e53\u2e54\u3002"
    "\ua4ff\ua60e\ua60f\ua6f3\ua6f7\ua876\ua877\ua8ce\ua8cf\ua92f\ua9c8\ua9c9\uaa5d\uaa5e"
    "\uaa5f\uaaf0\uaaf1\uabeb\ufe52\ufe56\ufe57\uff01\uff0e\uff1f\uff61\U00010a56\U00010a57"
    "\U00010f55\U00010f56\U00010f57\U00010f58\U00010f59\U00010f86\U00010f87\U00010f88"
    "\U00010f89\U00011047\U00011048\U000110be\U000110bf\U000110c0\U000110c1\U00011141"
    "\U00011142\U00011143\U000111c5\U000111c6\U000111cd\U000111de\U000111df\U00011238"
    "\U00011239\U0001123b\U0001123c\U000112a9\U0001144b\U0001144c\U000115c2\U000115c3"
    "\U000115c9\U000115ca\U000115cb\U000115cc\U000115cd\U000115ce\U000115cf\U000115d0"
    "\U000115d1\U000115d2\U000115d3\U000115d4\U000115d5\U000115d6\U000115d7\U00011641"
    "\U00011642\U0001173c\U0001173d\U0001173e\U00011944\U00011946\U00011a42\U00011a43"
    "\U00011a9b\U00011a9c\U00011c41\U00011c42\U00011ef7\U00011ef8\U00011f43\U00011f44"
    "\U00016a6e\U00016a6f\U00016af5\U00016b37\U00016b38\U00016b44\U00016e98\U0001bc9f"
    "\U0001da88"
)

# spaCy's English prefix/suffix punctuation (spacy/lang/char_classes.py: LIST_PUNCT,
# LIST_QUOTES, the dashes); PREFIX_ONLY is split off the start of a chunk only ("+" only before
# a non-digit).
_EDGE = "…,:;!?¿؟¡()\\[\\]{}<>_#*&。？！，、；：～·।،۔؛٪'\"”“`‘´’‚„»«「」『』（）〔〕【】《》〈〉⟦⟧—–"
_PREFIX_ONLY = "§%=$£€¥฿₽﷼₴₠₡₢₣₤₥₦₧₨₩₪₫₭₮₯₰₱₲₳₵₶₷₸₹₺₻₼₾₿"
_LETTER = r"[^\W\d_]"
# spaCy's LIST_ICONS, in blocks (its list picks symbols out of these): split off everywhere.
_ICONS = ("\u00a6\u00a9\u00ae\u00b0\u2100-\u214f\u2190-\u21ff\u2300-\u23ff\u2500-\u25b6"
          "\u25b8-\u25c0\u25c2-\u25f7\u2600-\u266e\u2670-\u2767\u2794-\u27bf\u2800-\u28ff"
          "\u2b00-\u2bff\U0001f000-\U0001f0ff\U0001f300-\U0001faff")
_BOUNDARY = r"(?=[\s" + _EDGE + r".]|$)"  # where a suffix split may follow

# Splits inside a chunk, made by putting spaces around them (spaCy's infixes and a few suffixes):
# hyphens / dashes and ``:<>=/`` between a letter or digit and a letter, ``+-*^`` between
# digits, a comma between letters, a period between a lower-case and an upper-case letter,
# ellipses, symbols (icons), ``n't 's 'm 're 've 'll 'd`` ending a word, "cannot", ``%``
# ending a number. A URL that starts a chunk is matched first and only spaced off whole
# (spaCy's URL match keeps it one token; a URL inside a chunk, as in Markdown's [a](http://b),
# is split like any text). The lookahead lets the regex engine skip every position that cannot
# start a split.
_CHUNK_START = "".join(  # at the start of a chunk, after up to two leading punctuation marks
    rf"|(?<=\s{edges})|(?<=^{edges})" for edges in ("", f"[{_EDGE}]", f"[{_EDGE}]" * 2))[1:]
_INFIX = re.compile(
    r"(?=[-–—~:<>=/,.…'’%+*^hfnNcC" + _ICONS + "])(?:"
    r"(?:" + _CHUNK_START + r")(?:https?|ftp)://\S+"
    r"|[" + _ICONS + "]"
    r"|(?<=[^\W_])(?!(?<=\band)/or\b)(?:---|--|——|[-–—~:<>=/])(?=" + _LETTER + ")"  # not and/or
    r"|(?<=\d)[-+*^](?=[\d-])"
    r"|(?<=" + _LETTER + r"),(?=" + _LETTER + ")"
    r"|(?<=[a-z])\.(?=[A-Z])"
    r"|\.\.+|…"
    r"|(?<=\w)(?=(?:n['’]t|['’](?:[sSmd]|re|ve|ll))" + _BOUNDARY + ")"
    r"|(?<=\b[Cc]an)(?=not\b)"
    r"|(?<=\d)(?=%" + _BOUNDARY + "))")

# spaCy's special cases that its tokenizer re-merges from punctuation tokens: emoticons such as
# "):" (which every Python "def f():" ends with), "''", and the like.
# Those ending in a letter or digit must end the chunk (":D" is not ":DeepWiki").
_SPECIALS = sorted(r"""): (: :) :( :* :/ :> :] :| :} ;) =( =) =/ =[ =] =| [: [= ]= '' ’’ (-: )-:
    :-) :-( :-/ :-] :-} :-| :-* :-> :') :'( :)) :(( >.< <.< >.> 8)""".split(), key=len, reverse=True)
_SPECIALS_ALNUM = ":p :P :o :O :x :X :D :3 :0 :1 =3 =D <3 8D".split()
_ABBREVIATIONS = ("Mr|Dr|Jr|St|Ms|Mt|Co|vs", "Mrs|Inc|Ltd|Gen|Gov|Rep|Sen|Rev|Jan|Feb|Mar|Apr"
                  "|Jun|Jul|Aug|Sep|Oct|Nov|Dec", "Corp|Prof|Sept")

_TOKEN = re.compile(
    r"(?=[):(;=\[\]'’<>8])(?:" + "|".join(map(re.escape, _SPECIALS)) + "|"
    "(?:" + "|".join(map(re.escape, _SPECIALS_ALNUM)) + ")" + _BOUNDARY + ")|"
    r"(?:n['’]t|['’](?:[sSmd]|re|ve|ll))" + _BOUNDARY +           # contraction / possessive
    r"|\.\.+"                                                    # ellipsis
    r"|\+(?!\d)"                                                 # "+" not before a number
    r"|(?:[^\s+" + _EDGE + _PREFIX_ONLY + r"]|\+(?=\d))"          # a chunk's core, ending
    r"(?:\S*[^\s." + _EDGE + r"])?"                               # before its trailing marks
    r"(?:(?=\.)(?:(?<=(?<![A-Z])[A-Z])\.|(?<=\.[a-z])\.|(?<=(?<!\S)[a-z])\."  # but keeping the
    + "".join(rf"|(?<=\b(?:{group}))\." for group in _ABBREVIATIONS) +  # "." of A. e.g. a. Mr.
    r"))?"
    r"|[" + _EDGE + _PREFIX_ONLY + "]"                           # edge punctuation, one each
)


@functools.lru_cache(maxsize=4)
def split_words(text: str) -> list[str]:
    """The words of ``text`` as spaCy's blank English tokenizer splits them (see module doc).
    The last few results are cached (as datatrove does): the Gopher quality and repetition
    rules both need the words of the same text. The list must not be changed."""
    return _TOKEN.findall(_INFIX.sub(r" \g<0> ", text))
