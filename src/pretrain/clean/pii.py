"""Personal data: e-mail and IP addresses replaced by placeholders (a modifier).

As in BigCode's StarCoder pipeline (Li et al. 2023, section 4: e-mails and IP addresses
replaced by placeholder tokens) and Dolma's: the text around them is kept. Candidates are found
by regular expression; an IP address must also parse with the ``ipaddress`` module, and
addresses that identify no one (private, loopback, link-local, reserved, documentation and
multicast ranges: 127.0.0.1, 10.0.0.0/8, 192.0.2.0/24, 224.0.0.0/4, ::1, IPv6 netmasks such as
ffff:ffff::, ...) are left unless ``keep_non_public_ips`` is off.

What looks like an address but is none stays:

- a dotted quad that is a version or a section number (the regex cannot tell ``40.8.0.1`` from
  an address): after a version pin (``numpy==1.21.0.2``, ``>=``, ``~=``, ``^``; not ``=``),
  joined to a name (``setuptools-40.8.0.1``, ``#section-7.1.1.1``, ``#1.2.3.4``), after ``§``,
  within three words of a version or section word (``Build 1.84.1.0``, ``section 8.2.4.44``,
  ``Versions after 1.11.1.1``), or right after a package-like name in any case (``setuptools
  40.8.0.1``, ``with Pillow 9.10.2.1``, ``SETUPTOOLS 40.8.0.1``). A network word nearer to it
  (``ip``, ``host``, ``server``, ``connect``, ...) or a ``:port`` / ``/prefix`` after it makes it
  an address again (``connect to 8.8.8.8``, ``server at 52.14.3.9``, ``host 52.14.3.9:8080``).
  The prepositions ``to``, ``at``, ``from``, ``via`` make it an address too, unless a version
  word (``Upgrade to 40.8.0.1``), a version word and a name (``bumped setuptools from
  40.8.0.1``; a Markdown link target in between is skipped) or a version number (``from
  40.8.0.1 to 41.0.0.1``: the first quad decides) comes just before them (``traffic from
  52.14.3.9``, ``from 52.14.3.9 port 22``, ``redirect to 52.14.3.9`` are addresses). BigCode drops every all-single-digit quad
  ("x.x.x.x") unless "dns" or "server" is within 100 characters; words decide here instead,
  since versions such as 40.8.0.1 have two-digit parts and addresses such as 8.8.8.8 have none.
- a quad continued by ``.name`` or ``.digit`` (``1.0.0.127.in-addr.arpa``, ``1.2.3.4.5``);
- an e-mail-like ``user@host:path``, the SCP syntax of ssh remotes (``git@github.com:org/repo``:
  the git service account, not anyone's mailbox), and addresses at the domains reserved for
  examples (RFC 2606 / RFC 6761: ``example.com``, ``.example``, ``.test``, ``.invalid``,
  ``.localhost``), which cannot belong to anyone. ``pkg@1.2.3`` and ``python@2.7`` never match:
  a top-level domain is letters.

Precision on the built-in corpus is measured by benchmarks/pii_precision.py.
"""

from __future__ import annotations

import ipaddress
import re

from pretrain.config.clean import PiiConfig

EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@"       # local part
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+"  # domain labels
    r"[A-Za-z]{2,}(?![\w-])")                           # top-level domain
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\.?\w)")
IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
MIN_IPV6_GROUPS = 3
"""An IPv6 candidate needs this many written groups, so that slices like a[::2] are not one."""

EXAMPLE_DOMAINS = re.compile(r"(?:^|\.)(?:example\.(?:com|net|org)|example|test|invalid|localhost)$", re.I)
"""Domains reserved for examples and tests (RFC 2606, RFC 6761): no mailbox there is anyone's."""
SCP_REMOTE = re.compile(r":[\w~/.-]")
"""After ``user@host``: the ``:path`` of an ssh remote in SCP syntax (git@github.com:org/repo)."""

VERSION_WORDS = frozenset(
    "version versions ver release releases released build builds rev revision patch update updates "
    "upgrade upgraded upgrades upgrading downgrade downgraded bump bumped bumps bumping pin pins "
    "install installed installing requires required pinned firmware kernel driver changelog tag "
    "section sections sec chapter clause paragraph para appendix item step rule table figure "
    "fig".split())
"""Words after which (within three words) a dotted quad is a version or a section number."""
NETWORK_WORDS = frozenset(
    "ip ips ipv4 ip4 addr address addresses host hosts hostname server servers client clients peer "
    "gateway router dns nameserver resolver proxy connect connected connecting connection "
    "connections ping ssh telnet curl wget nslookup dig traceroute whois nmap src dst source "
    "destination remote inet listen listening bind upstream forwarded firewall blocked banned "
    "subnet netmask route interface lan wan vpn socket url http https ftp tcp udp".split())
"""Words after which (nearer than any version word) a dotted quad is an address."""
PREPOSITIONS = frozenset("from to at via".split())
"""Weak network words: after them a dotted quad is an address unless a version word, a version
word and a name, or a version number comes just before them (``Upgrade to``, ``bumped
setuptools from``, ``from 40.8.0.1 to``)."""
FUNCTION_WORDS = frozenset(
    "a an the is was are were be been being of on in by with and or for as than then if not no "
    "it its this that these those use using into onto over under now also only like see try "
    "visit open e g i eg ie".split())
"""Words (any case) that are no package name: ``is 1.2.3.4`` is not a version."""

_PIN = re.compile(r"(?:[=<>!~]=\s*|[\^~]|§\s*)$")
_JOINED = re.compile(r"(?:[A-Za-z][\w.]*[-_]|#)$")
_NAME = re.compile(r"(?:^|[\s(\[,;`'\"])([A-Za-z][A-Za-z0-9._+-]*) $")
_TOKENS = re.compile(r"(?P<number>\d+(?:\.\d+)+)|[A-Za-z]+\d*")
_LINK_TARGET = re.compile(r"(?<=\])\([^()\s]*\)")
"""The target of a Markdown link, blanked so that its words do not count: ``Bumps
[setuptools](https://github.com/pypa/setuptools) from 40.8.0.1`` (Dependabot's wording)."""
_NETWORK_AFTER = re.compile(r":\d{1,5}(?!\d)|/\d{1,2}(?!\d)")


def is_version_context(text: str, start: int, end: int) -> bool:
    """Whether the dotted quad ``text[start:end]`` reads as a version or section number (the
    rules in the module docstring), from up to 60 characters before it and 6 after it."""
    base = max(0, start - 60)
    before = _LINK_TARGET.sub(lambda link: " " * len(link.group(0)), text[base:start])
    if _NETWORK_AFTER.match(text, end, end + 6):
        return False
    if _PIN.search(before) or _JOINED.search(before):
        return True
    tokens = list(_TOKENS.finditer(before))[::-1]  # nearest first
    words = 0
    for at, match in enumerate(tokens):
        if match.group("number"):  # skipped over: "version 1.2.3.4 and 5.6.7.8"
            continue
        word = match.group(0).lower()
        if word in PREPOSITIONS:
            return _after_version(text, base, tokens[at + 1 : at + 3])
        if word in NETWORK_WORDS:
            return False
        if word in VERSION_WORDS:
            return True
        words += 1
        if words == 3:  # only the last three words count
            break
    name = _NAME.search(before.rsplit("\n", 1)[-1])
    return bool(name) and _is_name(name.group(1))


def _after_version(text: str, base: int, tokens: list[re.Match]) -> bool:
    """Whether a preposition whose preceding tokens (nearest first, offsets from ``base``) are
    ``tokens`` follows a version word (``Upgrade to``), a name after a version word (``bumped
    setuptools from``) or a version number (``from 40.8.0.1 to``: the quad before decides)."""
    if not tokens:
        return False
    nearest = tokens[0]
    if nearest.group("number"):
        if nearest.group(0).count(".") != 3:  # 1.2.3 or 2.7: a version, never an address
            return True
        return is_version_context(text, base + nearest.start(), base + nearest.end())
    word = nearest.group(0).lower()
    if word in VERSION_WORDS:
        return True
    return (_is_name(word) and len(tokens) > 1 and not tokens[1].group("number")
            and tokens[1].group(0).lower() in VERSION_WORDS)


def _is_name(word: str) -> bool:
    """Whether ``word`` (any case: setuptools, Pillow, SETUPTOOLS) can be a package name."""
    word = word.lower()
    return word not in FUNCTION_WORDS and word not in NETWORK_WORDS and word not in PREPOSITIONS


class PiiPlaceholders:
    """Replace e-mail addresses and public IP addresses by placeholders."""

    name = "pii"

    def __init__(self, cfg: PiiConfig):
        self.cfg = cfg

    def modify(self, text: str) -> str:
        if self.cfg.email_placeholder is not None and "@" in text:
            text = EMAIL.sub(self.replace_email, text)
        if self.cfg.ip_placeholder is not None:
            if "." in text:
                text = IPV4.sub(self.replace_ip, text)
            if "::" in text or text.count(":") >= 7:
                text = IPV6.sub(self.replace_ip, text)
        return text

    def replace_email(self, match: re.Match) -> str:
        """The placeholder for an EMAIL match, or the match itself where it is no address."""
        found = match.group(0)
        if SCP_REMOTE.match(match.string, match.end()) or EXAMPLE_DOMAINS.search(found.rsplit("@", 1)[1]):
            return found
        return self.cfg.email_placeholder

    def replace_ip(self, match: re.Match) -> str:
        """The placeholder for an IPV4 / IPV6 match, or the match itself where it is no address,
        or one that identifies no one (with ``keep_non_public_ips``)."""
        found = match.group(0)
        if ":" in found and sum(1 for group in found.split(":") if group) < MIN_IPV6_GROUPS:
            return found
        try:
            address = ipaddress.ip_address(found)
        except ValueError:
            return found
        if self.cfg.keep_non_public_ips and (not address.is_global or address.is_multicast):
            return found
        if address.version == 4 and is_version_context(match.string, match.start(), match.end()):
            return found
        return self.cfg.ip_placeholder
