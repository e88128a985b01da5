"""Precision of the PII placeholders (pretrain.clean.pii) on the built-in corpus, re-countable.

Every e-mail and IP replacement the default ``pii`` settings make on the documents that
``pretrain.sources.download`` writes with the default download params (or on ``--corpus``) is
listed with its context (``--show``) and counted. Which replacements are not addresses was
decided by reading each of them in context once; those strings are listed below with the
reason, and every other replacement was found to be an address. Precision = replacements that
are addresses / replacements. A corpus that has changed since needs its new replacements read
again (``--show`` prints them all); a string not seen at labelling time is printed as such.
This project's own package description (its README, ``package_docs/pretrain``) is left out: it
changes whenever the README is edited, and when the figures were first measured it held the
"Personal data" section (now docs/cleaning.md), which quotes the rule's test cases.

Also counted: the dotted quads the version/section rule keeps (with the same labels, so that a
kept real address would show as a miss), and the e-mail-like strings kept as ssh remotes or at
reserved example domains.

    python benchmarks/pii_precision.py [--show] [--corpus <a Parquet file or a folder of shards>]
"""

from __future__ import annotations

import argparse
import ipaddress
import tempfile
from collections import Counter
from pathlib import Path

from pretrain.clean.pii import EMAIL, IPV4, IPV6, PiiPlaceholders
from pretrain.config.clean import PiiConfig
from pretrain.config.sources import DownloadConfig
from pretrain.io import iter_documents
from pretrain.sources.download import download

NOT_ADDRESSES = {
    # replaced by the IP rule, but versions / section numbers / netmasks / names
    "7.1.4.34": "AIX version in a docstring example: e.g., ['7.1.4.34', 1806]",
    "3.1.1.6": "an invalid version number in a list of them (distutils.version)",
    "8.2.4.45": "an HTML5 spec section two lines after the word 'sections'",
    # kept by the version/section rule (listed so that a kept address would show as a miss)
    "2.7.2.2": "an invalid version number in a list of them (distutils.version)",
    "8.2.4.44": "HTML5 spec section: sections \"8.2.4.44 Bogus comment state\"",
    "8.1.2.2": "HTML5 spec section: the HTML 5 spec, section 8.1.2.2",
    "7.1.1.1": "RFC 7231 section in a URL fragment: rfc7231#section-7.1.1.1",
    "1.11.1.1": "ninja release: Versions after 1.11.1.1",
    "1.0.0.127": "part of the reverse-DNS name 1.0.0.127.in-addr.arpa",
    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0": "an IPv6 netmask (kept as multicast range)",
    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "an IPv6 netmask (kept as multicast range)",
    "ffff:ffff:ffff:ffff::": "an IPv6 netmask (kept as multicast range)",
    "git@github.com": "an ssh remote in SCP syntax (git@github.com:org/repo.git): the git service account",
    # replaced by the e-mail rule before this rule kept them, or still replaced
    "142480216486.20800.16526388040877946887@nightshade.la.mastaler.com": "a Message-ID (RFC 2822)",
    "sklearn@fosstodon.org": "a Mastodon handle (@sklearn@fosstodon.org), not a mailbox",
}
"""Strings the rules match that are not e-mail / IP addresses, from reading each in context."""
SELF = "package_docs/pretrain"
"""The id of this project's own README in the built-in corpus, left out of the count."""


def replacements(pii: PiiPlaceholders, text: str) -> list[tuple[str, str, int]]:
    """(kind, matched string, offset) of each replacement ``pii.modify`` makes, in its order:
    e-mails on the text, then IPv4 and IPv6 on the text with e-mails replaced."""
    found = [("email", m.group(0), m.start()) for m in EMAIL.finditer(text)
             if pii.replace_email(m) != m.group(0)]
    text = EMAIL.sub(pii.replace_email, text)
    for kind, regex in (("ipv4", IPV4), ("ipv6", IPV6)):
        found += [(kind, m.group(0), m.start()) for m in regex.finditer(text) if pii.replace_ip(m) != m.group(0)]
        text = regex.sub(pii.replace_ip, text)
    return found


def kept_by_context(pii: PiiPlaceholders, text: str) -> list[tuple[str, str, int]]:
    """E-mail-like strings kept as ssh remotes or example addresses, and public dotted quads
    kept as versions or section numbers."""
    kept = [("email", m.group(0), m.start()) for m in EMAIL.finditer(text) if pii.replace_email(m) == m.group(0)]
    for m in IPV4.finditer(EMAIL.sub(pii.replace_email, text)):
        address = ipaddress.ip_address(m.group(0))
        if address.is_global and not address.is_multicast and pii.replace_ip(m) == m.group(0):
            kept.append(("ipv4", m.group(0), m.start()))
    return kept


def corpus_texts(corpus: Path | None, tmp: Path) -> list[tuple[str, str]]:
    if corpus is None:
        download(DownloadConfig(), tmp / "raw")
        corpus = tmp / "raw"  # download's shards
    return [(d["id"], d["text"]) for d in iter_documents(corpus) if d["id"] != SELF]


def summary(title: str, items: list[tuple[str, str, str, str]], kept: bool = False) -> None:
    """Per kind: how many, how many of them are addresses (precision) or, for ``kept``, how many
    addresses were missed; and the strings that are not addresses, with the reason."""
    print(f"\n{title}")
    for kind in ("email", "ipv4", "ipv6"):
        of_kind = [item for item in items if item[0] == kind]
        wrong = Counter(found for _, found, _, _ in of_kind if found in NOT_ADDRESSES)
        right = len(of_kind) - sum(wrong.values())
        if not of_kind:
            continue
        counts = (f"addresses kept (missed) {right}" if kept else
                  f"addresses {right}, precision {right / len(of_kind):.3f}")
        print(f"  {kind}: {len(of_kind)}; {counts}; not addresses {sum(wrong.values())}")
        for found, n in wrong.items():
            print(f"    {n} x {found}: {NOT_ADDRESSES[found]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, help="a documents table instead of the built-in corpus")
    parser.add_argument("--show", action="store_true", help="print every replacement in context")
    args = parser.parse_args()
    pii = PiiPlaceholders(PiiConfig())
    with tempfile.TemporaryDirectory() as name:
        docs = corpus_texts(args.corpus, Path(name))
    replaced, kept = [], []
    for doc_id, text in docs:
        for out, found in ((replaced, replacements(pii, text)), (kept, kept_by_context(pii, text))):
            out += [(kind, s, doc_id, text[max(0, at - 50) : at + len(s) + 20]) for kind, s, at in found]
    print(f"{len(docs)} documents (without {SELF}); default pii settings (keep_non_public_ips: true)")
    summary("replaced (precision = addresses / replaced):", replaced)
    summary("kept as versions, sections or ssh remotes (a kept address is a miss):",
            [item for item in kept if item[0] != "email" or item[1] in NOT_ADDRESSES], kept=True)
    examples = Counter(found.rsplit("@", 1)[1] for kind, found, _, _ in kept if kind == "email" and found not in NOT_ADDRESSES)
    print(f"  e-mail addresses at reserved example domains kept: {sum(examples.values())} "
          f"({', '.join(f'{n} x {domain}' for domain, n in examples.most_common())})")
    if args.show:
        for title, items in (("replaced", replaced), ("kept", kept)):
            print(f"\n{title}:")
            for kind, found, doc_id, context in items:
                print(f"  {kind:5s} {doc_id[:40]:40s} {found!r:40s} {context!r}")


if __name__ == "__main__":
    main()
