"""Word tokenization and character classes shared by the Gopher, C4 and FineWeb rules.

The rules' reference implementation (datatrove, Hugging Face's curation library: filters
``gopher_quality_filter.py``, ``gopher_repetition_filter.py``, ``fineweb_quality_filter.py``)
splits English text into words with spaCy's blank English tokenizer. ``split_words`` runs the
same algorithm in Python without spaCy (which is most of datatrove's time): the text is cut at
whitespace into chunks; punctuation comes off a chunk's start and end one piece at a time until
what is left is one of spaCy's special cases (contractions such as "don't" -> do + n't, "id" ->
i + d, abbreviations such as "Mr." and "e.g.", emoticons) or nothing more comes off; that core
is kept whole if it is a special case or a URL / e-mail address / host name
("name@t-online.de", "example.com/path"), else split at its infixes (hyphens and ``: < > = /``
between letters, ``,`` between letters, ``.`` between a lower-case and an upper-case letter,
ellipses, symbols); pieces of a special case that met inside a chunk are merged again ("f():"
ends in the emoticon "):"). The rules and special cases are spaCy 3.8's for English, written out
again below; benchmarks/clean_speed.py counts the documents whose words are identical to
spaCy's (all 2,530 of its corpus) and the rules' keep/drop decisions that differ from
datatrove's. Results are cached per chunk, as spaCy does.
"""

from __future__ import annotations

import array
import functools
import re
import sys

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


def _numbers_in_word_class() -> str:
    """The characters that Python's ``re`` counts as word characters (``\\w``: exactly those
    for which ``str.isalnum()`` is true, plus "_") but that are neither letters
    (``str.isalpha()``) nor decimal digits (``\\d``: ``str.isdecimal()``): vulgar fractions
    ½ ¾, superscripts ² ³, circled numbers ①, Roman numerals Ⅳ, ... (Unicode categories No and
    Nl, 1,131 characters in Python 3.11), as ranges for a character class. Found by scanning
    every code point with the running Python's own Unicode tables (about 70 ms, once), so the
    class follows ``str.isalpha`` whatever Python's Unicode version."""
    codec = "utf-32-le" if sys.byteorder == "little" else "utf-32-be"
    every = array.array("I", range(sys.maxunicode + 1)).tobytes().decode(codec, "surrogatepass")
    points = [ord(c) for c in re.sub(r"[\W\d_]+", "", every) if not c.isalpha()]
    ranges, start = [], 0
    for i in range(1, len(points) + 1):
        if i == len(points) or points[i] != points[i - 1] + 1:
            first, last = chr(points[start]), chr(points[i - 1])
            ranges.append(first if first == last else f"{first}-{last}")
            start = i
    return "".join(ranges)


# A letter exactly as str.isalpha() defines it (Unicode categories Lu Ll Lt Lm Lo): what
# datatrove's Gopher rule tests (``any(c.isalpha() for c in w)``). Not ``[^\W\d_]``, which
# also matches ½ ² ① Ⅳ (str.isalnum is true for them, str.isdecimal is not).
LETTER = "[^\\W\\d_" + _numbers_in_word_class() + "]"

# --- spaCy's English tokenizer rules (spacy/lang/char_classes.py, punctuation.py and the
# tokenizer exceptions), written out again. The cased letter classes cover Latin, Greek and
# Cyrillic, plus the commonest of the uncased scripts spaCy counts as both (Hebrew, Devanagari,
# Bengali, Hangul, kana, CJK ideographs).
_UNCASED = ("\u0591-\u05f4\u0900-\u097f\u0980-\u09ff\u1100-\u11ff\u3040-\u30ff\u3400-\u4dbf"
            "\u4e00-\u9fff\uac00-\ud7af")
_LOWER = "a-zß-öø-ÿα-ωа-яѐ-џ" + _UNCASED
_UPPER = "A-ZÀ-ÖØ-ÞΑ-ΩА-ЯЀ-Џ" + _UNCASED
_PUNCT = "…,:;!?¿؟¡()\\[\\]{}<>_#*&。？！，、；：～·।،۔؛٪"
_QUOTES = "'\"”“`‘´’‚,„»«「」『』（）〔〕【】《》〈〉〈〉⟦⟧"
_CURRENCY = "US\\$|C\\$|A\\$|[$£€¥฿₽﷼₴₠₡₢₣₤₥₦₧₨₩₪₫₭₮₯₰₱₲₳₵₶₷₸₹₺₻₼₾₿]"
# spaCy's LIST_ICONS, in blocks (its list picks symbols out of these).
_ICONS = ("[\u00a6\u00a9\u00ae\u00b0\u2100\u2101\u2103-\u2106\u2108\u2109\u2114\u2116\u2117"
          "\u211e-\u2123\u2125\u2127\u2129\u212e\u213a\u213b\u214a\u214c\u214d\u214f"
          "\u2190-\u21ff\u2300-\u23ff\u2500-\u25b6\u25b8-\u25c0\u25c2-\u25f7\u2600-\u266e"
          "\u2670-\u2767\u2794-\u27bf\u2800-\u28ff"
          "\u2b00-\u2bff\U0001f000-\U0001f0ff\U0001f110-\U0001f265\U0001f300-\U0001faff]")
_UNITS = ("km km² km³ m m² m³ dm dm² dm³ cm cm² cm³ mm mm² mm³ ha µm nm yd in ft kg g mg µg t lb "
          "oz m/s km/h kmh mph hPa Pa mbar mb MB kb KB gb GB tb TB T G M K % км км² км³ м м² м³ "
          "дм дм² дм³ см см² см³ мм мм² мм³ нм кг г мг м/с км/ч кПа Па мбар Кб КБ кб Мб МБ мб Гб "
          "ГБ гб Тб ТБ тб").split()
_LETTER_OR_DIGIT = f"(?:(?<={LETTER})|(?<=[0-9]))"  # spaCy's [ALPHA0-9]: ASCII digits only

# Split off a chunk's start (one at a time), off its end (one at a time), and inside what is left.
_PREFIX = re.compile(rf"[§%=—–]|\+(?![0-9])|[{_PUNCT}]|\.\.+|[{_QUOTES}]|{_CURRENCY}|{_ICONS}")
_SUFFIX = re.compile(
    rf"(?:[{_PUNCT}]|\.\.+|[{_QUOTES}]|{_ICONS}|['’][sS]|[—–]|(?<=[0-9])\+|(?<=°[FfCcKk])\."
    rf"|(?<=[0-9])(?:{_CURRENCY}|{'|'.join(map(re.escape, _UNITS))})"
    rf"|(?<=[0-9{_LOWER}%²\-+|(?:{_PUNCT}{_QUOTES}])\.|(?<=[{_UPPER}][{_UPPER}])\.)$")
_INFIX = re.compile(  # the lookahead lets the engine skip positions where none can start
    rf"(?=[.…\-–—~:<>=/,+*^\U0001f000-\U0001faff\u00a6-\u27bf\u2800-\u2bff])(?:\.\.+|…|{_ICONS}"
    rf"|(?<=[0-9])[-+*^](?=[0-9-])|(?<=[{_LOWER}{_QUOTES}])\.(?=[{_UPPER}{_QUOTES}])"
    rf"|(?<={LETTER}),(?={LETTER})|{_LETTER_OR_DIGIT}(?:---|--|——|[-–—~])(?={LETTER})"
    rf"|{_LETTER_OR_DIGIT}[:<>=/](?={LETTER}))")
# spaCy's URL match (a core that is one is not split): optional scheme and user, host names
# ending in a lower-case top-level domain, optional port and path. Not spaCy's dotted-quad
# branch (a public IPv4 address followed by a path is split here, kept by spaCy).
_URL = re.compile(
    r"(?:[\w+\-.]{2,}://)?(?:[^\s@]+@)?"
    r"(?:(?:[A-Za-z0-9\u00a1-\uffff][A-Za-z0-9\u00a1-\uffff_-]{0,62})?[A-Za-z0-9\u00a1-\uffff]\.)+"
    rf"[{_LOWER}]{{2,63}}(?::\d{{2,5}})?(?:[/?#]\S*)?")

# spaCy's English special cases: kept whole, or split as given (contractions), wherever a chunk
# or what is left of it after splitting off punctuation is exactly one of them.
_WHOLE = ("and/or w/o C++ <space> \\n \\t \\\") ' '' ’ ’’ — 'S 's ’S ’s ‘S ‘s 'd ’d 'em ’em "
          "'ll ’ll 'nuff ’nuff 're ’re 'bout ’bout em ll nuff ma'am ma’am Ma'am Ma’am o'clock "
          "o’clock O'clock O’clock a.m. p.m. e.g. i.e. E.g. E.G. I.e. I.E. co. vs. v.s. Adm. Ak. Ala. "
          "Apr. Ariz. Ark. Aug. Bros. Calif. Co. Colo. Conn. Corp. D.C. Dec. Del. Dr. Feb. Fla. "
          "Ga. Gen. Gov. Ia. Id. Ill. Inc. Ind. Jan. Jr. Jul. Jun. Kan. Kans. Ky. La. Ltd. Mar. "
          "Mass. Md. Messrs. Mich. Minn. Miss. Mo. Mont. Mr. Mrs. Ms. Mt. N.C. N.D. N.H. N.J. "
          "N.M. N.Y. Neb. Nebr. Nev. Nov. Oct. Okla. Ore. Pa. Ph.D. Prof. Rep. Rev. S.C. Sen. "
          "Sep. Sept. St. Tenn. Va. Wash. Wis. ä. ö. ü. "  # and the emoticons:
          "(*_*) (-8 (-: (-; (-_-) (._.) (: (; (= (>_<) (^_^) (o: (¬_¬) (ಠ_ಠ) (╯°□°）╯︵┻━┻ )-: "
          "): -_- -__- ._. 0.0 0.o 0_0 0_o 8) 8-) 8-D 8D :'( :') :'-( :'-) :( :(( :((( :() :) :)) "
          ":))) :* :-( :-(( :-((( :-) :-)) :-))) :-* :-/ :-0 :-3 :-> :-D :-O :-P :-X :-] :-o :-p "
          ":-x :-| :-} :/ :0 :1 :3 :> :D :O :P :X :] :o :o) :p :x :| :} :’( :’) :’-( :’-) ;) ;-) "
          ";-D ;D ;_; <.< </3 <3 <33 <333 =( =) =/ =3 =D =[ =] =| >.< >.> >:( >:o ><(((*> @_@ "
          "O.O O.o O_O O_o V.V V_V XD XDD [-: [: [= ]= ^_^ ^__^ ^___^ o.0 o.O o.o o_0 o_O o_o "
          "v.v v_v xD xDD ¯\\(ツ)/¯ ಠ_ಠ ಠ︵ಠ").split()


def _contractions() -> dict[str, tuple[str, ...]]:
    """Contraction -> the word and its clitics, in lower and title case, with ' or ’ or without
    the apostrophe ("dont" -> do + nt), less those that are words themselves ("its", "well")."""
    clitics = {"i": "'m|'m a|'ve|'ll|'ll 've|'d|'d 've"}
    for word in ("you", "he", "she", "it", "we", "they"):
        clitics[word] = "'ll|'ll 've|'d|'d 've" + ("|'re|'ve" if word in ("you", "we", "they")
                                                  else "|'s")
    for word in "who what when where why how there that this these those".split():
        clitics[word] = ("'d|'d 've|'ll|'ll 've" + ("" if word in ("these", "those") else "|'s")
                         + ("" if word in ("that", "this") else "|'re|'ve"))
    for word in "ca could do does did had may might must need ought sha should wo would".split():
        clitics[word] = "n't|n't 've"
    for word in "ai are is was were have has dare".split():
        clitics[word] = "n't"
    for word in ("could", "might", "must", "should", "would", "not"):
        clitics[word] = clitics.get(word, "n't") + "|'ve" if word != "not" else "'ve"
    out: dict[str, tuple[str, ...]] = {}
    for word, forms in clitics.items():
        for form in forms.split("|"):
            for apostrophe in ("'", "’", ""):
                words = (word, *(part.replace("'", apostrophe) for part in form.split()))
                out["".join(words)] = words
    for text, words in [("how'd'y", "how 'd 'y"), ("how’d’y", "how ’d ’y"), ("cannot", "can not"),
                        ("gonna", "gon na"), ("gotta", "got ta"), ("let's", "let 's"),
                        ("let’s", "let ’s"), ("c'mon", "c'm on"), ("c’mon", "c’m on")]:
        out[text] = tuple(words.split())
    out.update({text[0].upper() + text[1:]: (words[0][0].upper() + words[0][1:], *words[1:])
                for text, words in list(out.items())})
    for word in ("ill", "its", "hell", "shell", "shed", "were", "well", "whore"):  # real words
        out.pop(word)
        out.pop(word.title())
    return out


def _special_cases() -> dict[str, tuple[str, ...]]:
    """Special case -> its words: ``_WHOLE`` kept whole, contractions, times ("5pm" -> 5 + pm)."""
    out = _contractions()
    for word in ("doin", "goin", "havin", "lovin", "nothin", "nuthin", "somethin", "ol"):
        for text in (word, word + "'", word + "’"):
            out[text] = (text,)
            out[text.title()] = (text.title(),)
    for word in ("cause", "cos", "coz", "cuz"):
        for text in ("'" + word, "’" + word, "'" + word.title(), "’" + word.title()):
            out[text] = (text,)
    out.update({"y'all": ("y'", "all"), "y’all": ("y’", "all"), "yall": ("y", "all")})
    for hour in range(1, 13):
        for suffix in ("a.m.", "am", "p.m.", "pm"):
            out[f"{hour}{suffix}"] = (str(hour), suffix)
    out.update({f"°{unit}.": ("°", unit, ".") for unit in "CFKcfk"})
    out.update({f"{letter}.": (f"{letter}.",) for letter in "abcdefghijklmnopqrstuvwxyz"})
    out.update({text: (text,) for text in _WHOLE})
    return out


_SPECIAL_LONGEST = 32  # no special case is longer (checked below): longer text is never one


def _special(chunk: str, lo: int, hi: int, specials: dict) -> bool:
    """Whether ``chunk[lo:hi]`` is a special case (without copying long text)."""
    return 0 < hi - lo <= _SPECIAL_LONGEST and chunk[lo:hi] in specials


def _suffix_length(chunk: str, lo: int, hi: int) -> int:
    """Length of the suffix spaCy would split off ``chunk[lo:hi]`` (the leftmost match of its
    suffix rules that ends there), searched in the last 6 characters only (every rule but the
    ellipsis is at most 4 long), so that long chunks cost linear time."""
    match = _SUFFIX.search(chunk, max(lo, hi - 6), hi)
    if match is not None and match.start() - lo < 2:  # its lookbehind must not see before lo
        match = _SUFFIX.search(chunk[lo:hi])
    if match is None:
        return 0
    if match.group().startswith(".."):  # an ellipsis: the whole run of full stops
        stop = hi
        while stop > lo and chunk[stop - 1] == ".":
            stop -= 1
        return hi - stop
    return match.end() - match.start()


def _strip_affixes(chunk: str, specials: dict) -> tuple[list[str], int, int, list[str]]:
    """spaCy's Tokenizer._split_affixes: take a prefix and a suffix off (one of each per round)
    until what is left is a special case or nothing more comes off. Returns the prefixes, the
    core as ``chunk[lo:hi]``, and the suffixes (outermost first)."""
    prefixes, suffixes, lo, hi, last = [], [], 0, len(chunk), -1
    while lo < hi and hi - lo != last and not _special(chunk, lo, hi, specials):
        last = hi - lo
        match = _PREFIX.match(chunk, lo, hi)
        pre = match.end() - lo if match else 0
        if pre and _special(chunk, lo + pre, hi, specials):
            prefixes.append(chunk[lo:lo + pre])
            return prefixes, lo + pre, hi, suffixes
        suf = _suffix_length(chunk, lo + pre, hi)
        if suf and _special(chunk, lo, hi - suf, specials):
            suffixes.append(chunk[hi - suf:hi])
            return prefixes, lo, hi - suf, suffixes
        if pre and suf and pre + suf > hi - lo:
            suf = 0
        if pre:
            prefixes.append(chunk[lo:lo + pre])
            lo += pre
        if suf:
            suffixes.append(chunk[hi - suf:hi])
            hi -= suf
    return prefixes, lo, hi, suffixes


def _split_chunk(chunk: str, specials: dict[str, tuple[str, ...]]) -> list[str]:
    """One whitespace-separated chunk's words, by spaCy's algorithm (Tokenizer._split_affixes
    and _attach_tokens): strip prefixes and suffixes, then keep the core whole if it is a
    special case or a URL, else split it at its infixes (never at its first character)."""
    if chunk in specials:
        return list(specials[chunk])
    if chunk.isalpha():  # letters only: nothing to split off or inside (most chunks)
        return [chunk]
    prefixes, lo, hi, suffixes = _strip_affixes(chunk, specials)
    core = chunk[lo:hi]
    words = [word for prefix in prefixes for word in specials.get(prefix, (prefix,))]
    if core in specials:
        words += specials[core]
    elif core and _URL.fullmatch(core):
        words.append(core)
    elif core:
        start = 0
        for match in _INFIX.finditer(core):
            if match.start() > 0:
                words += [core[start:match.start()]] if match.start() > start else []
                words.append(match.group())
                start = match.end()
        words += [core[start:]] if start < len(core) else []
    words += [word for suffix in reversed(suffixes) for word in specials.get(suffix, (suffix,))]
    return words


SPECIAL_CASES = _special_cases()
"""spaCy's English special cases as ``split_words`` applies them: 1,343 strings, spaCy 3.8's
less its four whitespace ones (tests/clean/test_words.py counts them)."""
assert max(map(len, SPECIAL_CASES)) <= _SPECIAL_LONGEST
# Special cases that contain punctuation which the rules above split off (emoticons, "and/or",
# abbreviations): spaCy re-merges their pieces wherever they meet inside a chunk ("f():" ends
# in the emoticon "):"). Keyed by their first two pieces: the special case and all its pieces.
_MERGES: dict[tuple[str, str], list[tuple[str, tuple[str, ...]]]] = {}
for _text in SPECIAL_CASES:
    if len(_pieces := tuple(_split_chunk(_text, {}))) > 1:
        _MERGES.setdefault(_pieces[:2], []).append((_text, _pieces))


def _merge_specials(words: list[str]) -> list[str]:
    """Replace each run of words that is a special case split apart by the special case's own
    words; where runs overlap, the longest wins, then the first (spaCy's _filter_special_spans)."""
    runs = [(i, i + len(pieces)) for i, pair in enumerate(zip(words, words[1:])) if pair in _MERGES
            for _, pieces in _MERGES[pair] if tuple(words[i:i + len(pieces)]) == pieces]
    if not runs:
        return words
    taken, covered = [], bytearray(len(words))
    for i, j in sorted(runs, key=lambda run: (run[0] - run[1], run[0])):
        if not any(covered[i:j]):
            taken.append((i, j))
            covered[i:j] = b"\1" * (j - i)
    out, i = [], 0
    for start, end in sorted(taken):
        out += words[i:start] + list(SPECIAL_CASES["".join(words[start:end])])
        i = end
    return out + words[i:]


_CHUNKS: dict[str, tuple[str, ...]] = {}  # chunk -> words, as spaCy caches them
_CHUNKS_MAX = 300_000  # about 65 MB (measured: 218 bytes an entry); emptied when full


def clear_caches() -> None:
    """Forget every cached result (benchmarks time a cold start with it)."""
    split_words.cache_clear()
    _CHUNKS.clear()


@functools.lru_cache(maxsize=4)
def split_words(text: str) -> list[str]:
    """The words of ``text`` as spaCy's blank English tokenizer splits them (see module doc).
    The last few results are cached (as datatrove does): the Gopher quality and repetition
    rules both need the words of the same text. The list must not be changed."""
    words: list[str] = []
    for chunk in text.split():
        split = _CHUNKS.get(chunk)
        if split is None:
            if len(_CHUNKS) >= _CHUNKS_MAX:
                _CHUNKS.clear()
            split = _CHUNKS[chunk] = tuple(_merge_specials(_split_chunk(chunk, SPECIAL_CASES)))
        words += split
    return words
