"""Synthetic web pages for benchmarks/clean_speed.py: the kinds of page the Gopher, C4 and
FineWeb rules were written for, made deterministically from a seed (no download).

Each page mixes blocks the way crawled pages do (menus, articles, lists, recipes, changelogs,
comment threads, cookie and JavaScript notices, code, footers, repeated boilerplate), and the
sentences carry what word splitters and sentence splitters disagree on: abbreviations ("Mr.",
"e.g."), mid-line ellipses, contractions, hyphenated words, e-mail addresses, URLs, emoticons,
fractions and superscripts, units, and lines without a full stop. Block counts are drawn so that
pages fall on both sides of the rules' thresholds (50 words, 5 sentences, short-line and
duplicate-line fractions), where differences between implementations change decisions.
"""

from __future__ import annotations

import random

NOUNS = ("house garden recipe kitchen market city river team player season price customer "
         "service product review hotel room beach family school teacher student book story "
         "music song movie road trip weekend morning evening company office project report "
         "update release version feature user account order delivery bread flour sugar "
         "butter oven table window street village country island mountain").split()
VERBS = ("makes finds gives takes keeps brings shows helps needs offers builds opens changes "
         "explains describes improves follows reaches covers supports").split()
ADJECTIVES = ("new old small large quick easy simple local popular fresh free great little "
              "important public private final early late warm cold").split()
STARTS = ("The", "This", "Our", "Every", "A", "That", "Each", "My", "Your", "Their")
CONNECTORS = ("and then", "but", "because", "so", "while", "although", "since", "and")
INSERTS = {  # what differs between word (and sentence) splitters, one list per kind
    "contraction": "don't it's we're they've I'm can't won't y'all gonna Let's isn't "
                   "you'll she'd shouldn't ain't o'clock".split(),
    "hyphen": "well-known state-of-the-art e-mail follow-up long-term 2-3 ½-cup re-use "
              "co-operate self-made x-ray T-shirt".split(),
    "abbreviation": ["Mr. Smith", "Dr. Jones", "e.g. apples", "i.e. the first", "U.S. market",
                     "etc.", "vs. the", "No. 5", "St. Louis", "at 9 a.m.", "Mrs. Brown",
                     "Prof. Lee", "Inc.", "approx. 20"],
    "ellipsis": ["... and", "... well", "…then", "... Then"],
    "emoticon": ":) :-) ;-) :( :D <3 ^_^ :P XD ;) :/ (:".split(),
    "email": ["name@t-online.de", "info@example.com", "first.last@mail.co.uk",
              "support@my-shop.com", "<jane.doe@gmail.com>", "(bob@web-mail.org)"],
    "url": ["https://example.com/page?id=3", "www.example.org", "example.com/path",
            "shop-online.de", "http://my-site.net/a-b/c", "(see https://x.io/docs)."],
    "number": ["½ cup", "¾ of", "2²", "x³", "10%", "5km", "$20", "3.5", "1,000", "2019-03-01",
               "①", "Ⅳ", "24/7", "9:30", "#1", "3x"],
    "quote": ["“great”", "'fine'", '"good"', "‘ok’", "«oui»"],
    "hashtag": ["#sale", "#news", "#tbt"],
}
ENDINGS = (".", ".", ".", ".", "!", "?", "...", "", '."', ".)", " :)")
NAV = ("Home", "About us", "Contact", "Shop", "Blog", "Log in", "Sign up", "FAQ", "Menu",
       "Search", "Cart (0)", "News", "Careers", "Help")
NOTICES = ("This website uses cookies to improve your experience. By continuing you accept our "
           "cookie policy.",
           "Please enable JavaScript in your browser to view this page.",
           "Terms of use | Privacy policy | Cookie policy",
           "JavaScript is disabled; some features {like search} will not work.",
           "We use cookies {and similar tools} to show you relevant offers.",
           "Lorem ipsum text on a line about the privacy policy of this site.")
CODE = ("function show() { return 1; }", "var config = {theme: 'dark'};", "if (x) { y(); }",
        "body { margin: 0 }", "$('#menu').toggle();", "<div class=\"nav\">{{ title }}</div>")
FOOTERS = ("© 2024 Example Company. All rights reserved.", "Share on Facebook | Twitter | Email",
           "Read more...", "Posted in News | 3 comments", "Back to top", "Subscribe to our "
           "newsletter")


def sentence(rng: random.Random, features: float) -> str:
    """One sentence of 4-20 words, each extra kind of token inserted with probability
    ``features``."""
    words = [rng.choice(STARTS), rng.choice(ADJECTIVES), rng.choice(NOUNS), rng.choice(VERBS),
             "the", rng.choice(NOUNS)]
    for _ in range(rng.randrange(3)):
        words += [rng.choice(CONNECTORS), "the", rng.choice(NOUNS), rng.choice(VERBS), "of",
                  rng.choice(ADJECTIVES), rng.choice(NOUNS)]
    for kind, options in INSERTS.items():
        if rng.random() < features:
            words.insert(rng.randrange(1, len(words) + 1), rng.choice(options))
    if rng.random() < 0.05:
        words.insert(rng.randrange(1, len(words)), "lorem ipsum")
    return " ".join(words) + rng.choice(ENDINGS)


def paragraph(rng: random.Random, features: float) -> str:
    return " ".join(sentence(rng, features) for _ in range(rng.choice((1, 1, 2, 3, 4, 5, 6, 8))))


def item(rng: random.Random) -> str:
    return f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}" + rng.choice(("", "", ".", " :)"))


BLOCKS = {
    "nav": lambda rng, f: "\n".join(rng.sample(NAV, rng.randrange(2, 8))),
    "title": lambda rng, f: f"{rng.choice(ADJECTIVES).title()} {rng.choice(NOUNS)} "
                            f"{rng.choice(('guide', 'tips', 'news', 'review', '2024'))}",
    "article": lambda rng, f: "\n\n".join(paragraph(rng, f) for _ in range(rng.randrange(1, 5))),
    "paragraph": paragraph,
    "list": lambda rng, f: "\n".join(rng.choice(("- ", "• ", "* ", "", "1. ")) + item(rng)
                                     for _ in range(rng.randrange(2, 9))),
    "recipe": lambda rng, f: "\n".join(
        f"{rng.choice(('½', '¾', '1', '2', '⅓', '1½', '250'))} "
        f"{rng.choice(('cup', 'tsp', 'g', 'tbsp'))}"
        f" {rng.choice(NOUNS)}" for _ in range(rng.randrange(3, 10))),
    "changelog": lambda rng, f: "\n".join(
        f"{2015 + rng.randrange(10)}-0{rng.randrange(1, 10)}-1{rng.randrange(10)} - "
        f"{rng.choice(('fixed', 'added', 'removed'))} {rng.choice(NOUNS)} "
        f"({rng.choice(INSERTS['email'])})" for _ in range(rng.randrange(2, 8))),
    "comments": lambda rng, f: "\n".join(
        f"{rng.choice(('anna', 'Bob_77', 'guest', 'Mike'))} said: {sentence(rng, 3 * f)}"
        for _ in range(rng.randrange(1, 6))),
    "notice": lambda rng, f: rng.choice(NOTICES),
    "code": lambda rng, f: rng.choice(CODE),
    "footer": lambda rng, f: "\n".join(rng.sample(FOOTERS, rng.randrange(1, 4))),
    "table": lambda rng, f: "\n".join(" ".join(str(rng.randrange(100)) for _ in range(4))
                                      for _ in range(rng.randrange(2, 6))),
}
STYLES = {  # block kinds a page of this style draws from, and how many blocks
    "article": (("title", "article", "paragraph", "list", "footer", "notice"), (1, 6)),
    "shop": (("nav", "title", "list", "paragraph", "footer", "notice", "code"), (2, 8)),
    "forum": (("title", "comments", "paragraph", "footer", "nav"), (1, 6)),
    "recipe": (("title", "recipe", "paragraph", "list", "comments"), (2, 6)),
    "changelog": (("title", "changelog", "paragraph", "list"), (1, 4)),
    "spam": (("list", "footer", "nav", "table", "paragraph"), (3, 10)),
    "short": (("title", "paragraph", "notice", "nav"), (1, 3)),
}


def web_page(rng: random.Random) -> str:
    """One synthetic page: blocks of one style, some boilerplate repeated."""
    kinds, (low, high) = STYLES[rng.choice(sorted(STYLES))]
    features = rng.choice((0.0, 0.05, 0.15, 0.3))
    blocks = [BLOCKS[rng.choice(kinds)](rng, features) for _ in range(rng.randint(low, high))]
    for _ in range(rng.choice((0, 0, 0, 1, 2, 4))):  # repeated boilerplate
        blocks.insert(rng.randrange(len(blocks) + 1), rng.choice(blocks))
    return rng.choice(("\n\n", "\n")).join(blocks)


def web_pages(n: int, seed: int = 0) -> list[dict]:
    """``n`` documents (``id``, ``text``, ``source`` = "web"), the same for the same seed."""
    rng = random.Random(seed)
    return [{"id": f"web/{i}", "text": web_page(rng), "source": "web"} for i in range(n)]
