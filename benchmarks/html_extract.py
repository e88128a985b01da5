"""HTML to text: pretrain's extractor against trafilatura (FineWeb) and resiliparse (DCLM).

The measurement that chose the extractor: until 2026-11-29 ``ours`` was a hand-written
html.parser extractor (F1 0.81, 3.2x slower than Resiliparse, empty on pages inside one
<form>); the clean stage now uses Resiliparse (docs/cleaning.md has both tables).

Extractors, each called on the decoded page (a str), one page at a time:

  ours         pretrain.clean.html.HtmlToText with the default HtmlConfig (Resiliparse with
               main_content=True, and the ARIA landmark roles of page furniture skipped)
  trafilatura  trafilatura.extract(html, favor_precision=True, include_comments=False,
               deduplicate=True): datatrove's Trafilatura extractor with its defaults, as FineWeb
               ran it (datatrove also drops a page whose extraction takes over 0.1 s: counted below)
  resiliparse  resiliparse.extract.html2text.extract_plain_text(html, main_content=True) (DCLM)

Quality: on the pages of ``--pages`` (benchmarks/html_pages/: each NAME.html has a hand-checked
NAME.ref.txt with the main content a corpus builder wants, without menus, footers, sidebars,
share buttons, cookie notices or user comments under an article; origins in SOURCES.md), word
precision, recall and F1 of the extracted text against the reference: bag of words with counts,
lower-cased, split on non-word characters. An extractor that returns nothing scores 0. Each
page is extracted with trafilatura's duplicate cache cleared first (so no page's score depends
on the pages before it).

Speed: single process, ``--rounds`` interleaved rounds (the order of the extractors alternates
from one round to the next), the median round counts; pages/s and MB/s of HTML (bytes of the
files). Two sets: the quality pages (each round passes over them ``--repeat`` times), and
``--speed-pages`` other HTML pages over 5 KB found on this machine under ``--speed-roots``
(installed documentation: rustdoc, mdBook, Sphinx, Node.js, Debian docs, ...; duplicates by
content dropped, taken in turn from each place and folder so that no generator dominates; the
same set for every extractor). trafilatura's duplicate cache is cleared at the start of each pass
(within a pass it works as in a real crawl: text blocks seen more than twice are dropped).

trafilatura is benchmark-only and is not installed in the project's venv (resiliparse is a
project dependency):
    .venv/bin/pip install --target /tmp/htmlx trafilatura lxml_html_clean
    .venv/bin/python benchmarks/html_extract.py          # appends --extra-path to sys.path
(the folder is appended after the venv's site-packages, so the venv's own packages win). An
extractor that cannot be imported is skipped, with one line saying why.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import os
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable

from machine import machine  # benchmarks/machine.py: run as python benchmarks/<name>.py

HERE = Path(__file__).resolve().parent
_WORD = re.compile(r"\w+")
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_XML_ENCODING = re.compile(rb"""<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""", re.I)
PRUNE = ("/proc", "/sys", "/dev", "/run", "/tmp", "/snap", "/mnt", "/media")


# ---------------------------------------------------------------------------- extractors

Extractor = tuple[Callable[[str], str], Callable[[], None], str]


def load_extractors(names: list[str]) -> dict[str, Extractor]:
    """name -> (extract(html) -> text, reset() of per-process caches, version); unimportable
    extractors are skipped with one line each."""
    out = {}
    for name in names:
        try:
            out[name] = _LOADERS[name]()
        except Exception as err:  # ImportError, or a broken dependency of the package
            print(f"skipping {name}: not importable ({type(err).__name__}: {err})")
    return out


def _ours():
    from pretrain.clean.html import HtmlToText
    from pretrain.config.clean import HtmlConfig

    modifier = HtmlToText(HtmlConfig())
    return modifier.modify, lambda: None, "pretrain " + importlib.metadata.version("pretrain")


def _trafilatura():
    import trafilatura
    from trafilatura.deduplication import LRU_TEST

    def extract(html: str) -> str:
        return trafilatura.extract(html, favor_precision=True, include_comments=False,
                                   deduplicate=True) or ""

    return extract, LRU_TEST.clear, "trafilatura " + trafilatura.__version__


def _resiliparse():
    from resiliparse.extract.html2text import extract_plain_text

    def extract(html: str) -> str:
        return extract_plain_text(html, main_content=True)

    return extract, lambda: None, "resiliparse " + importlib.metadata.version("resiliparse")


_LOADERS = {"ours": _ours, "trafilatura": _trafilatura, "resiliparse": _resiliparse}


# ---------------------------------------------------------------------------- pages

def decode(raw: bytes) -> str:
    """The page as text: the charset its <meta> or XML declaration names, else UTF-8."""
    head = raw[:4096]
    match = _CHARSET.search(head) or _XML_ENCODING.search(head)
    for encoding in ([match.group(1).decode("ascii")] if match else []) + ["utf-8"]:
        try:
            return raw.decode(encoding)
        except (LookupError, UnicodeDecodeError):
            continue
    return raw.decode("utf-8", errors="replace")


def quality_pages(folder: Path) -> list[tuple[str, bytes, str]]:
    """(name, html bytes, reference text) for each NAME.html with a NAME.ref.txt."""
    pages = []
    for path in sorted(folder.glob("*.html")):
        ref = path.with_suffix(".ref.txt")
        if ref.exists():
            pages.append((path.stem, path.read_bytes(), ref.read_text(encoding="utf-8")))
    return pages


def speed_pages(roots: list[str], count: int, min_kb: float, max_kb: float,
                exclude: Path) -> tuple[list[str], list[bytes]]:
    """Up to ``count`` distinct .html files of min_kb..max_kb under roots: their paths and
    contents. Taken in turn from each place (the first three folders of the path:
    /usr/share/doc, /root/.rustup/toolchains, ...) and, within a place, in turn from each
    folder, so that one generator's thousands of pages do not fill the set."""
    places: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for root in roots:
        for folder, dirs, files in os.walk(root):
            if folder.startswith(PRUNE) or folder.startswith(str(exclude)):
                dirs[:] = []
                continue
            dirs.sort()
            for name in sorted(files):
                if name.endswith((".html", ".htm")):
                    path = os.path.join(folder, name)
                    try:
                        size = os.stat(path).st_size  # follows links; skip broken ones
                    except OSError:
                        continue
                    if min_kb * 1024 < size <= max_kb * 1024 and os.path.isfile(path):
                        places["/".join(path.split("/")[:4])][folder].append(path)
    # each place: its folders' files interleaved (first file of each folder, then second, ...)
    queues = []
    for place in sorted(places):
        folders = [places[place][folder] for folder in sorted(places[place])]
        longest = max(len(files) for files in folders)
        queue = [files[i] for i in range(longest) for files in folders if i < len(files)]
        queues.append(queue[::-1])
    seen, paths, chosen, turn = set(), [], [], 0
    while len(chosen) < count and any(queues):
        queue = queues[turn % len(queues)]
        turn += 1
        if not queue:
            continue
        path = queue.pop()
        try:
            raw = Path(path).read_bytes()
        except OSError:
            continue
        digest = hashlib.sha1(raw).digest()
        if digest not in seen:
            seen.add(digest)
            paths.append(path)
            chosen.append(raw)
    return paths, chosen


# ---------------------------------------------------------------------------- measures

def words(text: str) -> Counter:
    return Counter(_WORD.findall(text.lower()))


def prf(extracted: str, reference: str) -> tuple[float, float, float]:
    got, want = words(extracted), words(reference)
    overlap = sum((got & want).values())
    precision = overlap / sum(got.values()) if got else 0.0
    recall = overlap / sum(want.values()) if want else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def timed_rounds(extractors: dict, texts: list[str], rounds: int, repeat: int = 1,
                 per_page: dict | None = None) -> dict[str, float]:
    """Median over rounds of the seconds one pass over texts takes, per extractor; the order
    of the extractors alternates between rounds. per_page, if given, gets each extractor's
    seconds per page in the first round."""
    names = list(extractors)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(rounds):
        for name in (names if round_ % 2 == 0 else names[::-1]):
            extract, reset, _ = extractors[name]
            total = 0.0
            for _ in range(repeat):
                reset()
                if per_page is not None and round_ == 0:
                    times = per_page.setdefault(name, [])
                    for text in texts:
                        start = time.perf_counter()
                        extract(text)
                        times.append(time.perf_counter() - start)
                    total += sum(times[-len(texts):])
                else:
                    start = time.perf_counter()
                    for text in texts:
                        extract(text)
                    total += time.perf_counter() - start
            seconds[name].append(total / repeat)
    return {name: statistics.median(values) for name, values in seconds.items()}


def cpu_flags() -> str:
    with open("/proc/cpuinfo") as handle:
        flags = next((line.split(":", 1)[1].split() for line in handle
                      if line.startswith("flags")), [])
    return ", ".join(f"{flag} {'yes' if flag in flags else 'no'}"
                     for flag in ("avx2", "avx512f", "avx512_bf16"))


# ---------------------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=Path, default=HERE / "html_pages",
                        help="folder of NAME.html + NAME.ref.txt (default: %(default)s)")
    parser.add_argument("--extractors", nargs="+", default=list(_LOADERS), choices=list(_LOADERS))
    parser.add_argument("--extra-path", default="/tmp/htmlx",
                        help="folder appended to sys.path, after the venv's site-packages, holding "
                             "the benchmark-only packages ('' for none; default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (median)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="passes over the quality pages per timing round")
    parser.add_argument("--speed-pages", type=int, default=300,
                        help="pages in the larger speed set (0: skip it)")
    parser.add_argument("--speed-roots", nargs="+", default=["/"],
                        help="where to look for .html files for the speed set")
    parser.add_argument("--min-kb", type=float, default=5.0)
    parser.add_argument("--max-kb", type=float, default=1024.0)
    parser.add_argument("--dump", type=Path, default=None,
                        help="write each extractor's text of each quality page to "
                             "DUMP/NAME.EXTRACTOR.txt")
    args = parser.parse_args()

    if args.extra_path and os.path.isdir(args.extra_path):
        sys.path.append(args.extra_path)
    print(f"machine: {machine()}; {cpu_flags()}; {time.strftime('%Y-%m-%d')}")
    print(f"python {sys.version.split()[0]}, single process")
    extractors = load_extractors(args.extractors)
    if not extractors:
        sys.exit("no extractor importable")
    print("extractors: " + "; ".join(version for _, _, version in extractors.values()))
    names = list(extractors)

    # quality
    pages = quality_pages(args.pages)
    if not pages:
        sys.exit(f"no NAME.html with NAME.ref.txt in {args.pages}")
    texts = [decode(raw) for _, raw, _ in pages]
    scores: dict[str, list[tuple[float, float, float]]] = {name: [] for name in names}
    empty: dict[str, list[str]] = {name: [] for name in names}
    for (page, _, reference), html in zip(pages, texts):
        for name in names:
            extract, reset, _ = extractors[name]
            reset()
            text = extract(html)
            if not text.strip():
                empty[name].append(page)
            scores[name].append(prf(text, reference))
            if args.dump:
                args.dump.mkdir(parents=True, exist_ok=True)
                (args.dump / f"{page}.{name}.txt").write_text(text, encoding="utf-8")

    width = max(len(page) for page, _, _ in pages)
    print(f"\nquality: word F1 (precision/recall) against the hand-checked reference, "
          f"{len(pages)} pages in {args.pages}")
    print(f"{'page':<{width}} {'KB':>4} {'ref w':>5}  " + "  ".join(f"{n:<17}" for n in names))
    for i, (page, raw, reference) in enumerate(pages):
        cells = []
        for name in names:
            precision, recall, f1 = scores[name][i]
            cells.append(f"{f1:.2f} ({precision:.2f}/{recall:.2f})")
        print(f"{page:<{width}} {len(raw) / 1024:4.0f} {sum(words(reference).values()):5d}  "
              + "  ".join(f"{cell:<17}" for cell in cells))
    means = {name: [statistics.mean(s[k] for s in scores[name]) for k in range(3)]
             for name in names}
    print(f"{'mean':<{width}} {'':4} {'':5}  " + "  ".join(
        f"{f'{m[2]:.2f} ({m[0]:.2f}/{m[1]:.2f})':<17}" for m in means.values()))
    print(f"{'median F1':<{width}} {'':4} {'':5}  " + "  ".join(
        f"{statistics.median(s[2] for s in scores[name]):<17.2f}" for name in names))
    for name in names:
        if empty[name]:
            print(f"{name} returned no text on: {', '.join(empty[name])}")

    # speed
    sets = [("quality pages", texts, [raw for _, raw, _ in pages], args.repeat)]
    if args.speed_pages > 0:
        start = time.perf_counter()
        paths, raws = speed_pages(args.speed_roots, args.speed_pages, args.min_kb, args.max_kb,
                                  args.pages.resolve())
        if not raws:
            sys.exit(f"no .html pages of {args.min_kb:g}-{args.max_kb:g} KB "
                     f"under {args.speed_roots}")
        sizes = sorted(len(raw) for raw in raws)
        print(f"\nspeed set: {len(raws)} distinct .html pages of "
              f"{args.min_kb:g}-{args.max_kb:g} KB under {' '.join(args.speed_roots)} "
              f"({sum(sizes) / 2**20:.1f} MB, median {statistics.median(sizes) / 1024:.0f} KB; "
              f"found in {time.perf_counter() - start:.1f} s)")
        origins = Counter("/".join(path.split("/")[:4]) for path in paths)
        print("  from: " + ", ".join(f"{origin} {n}" for origin, n in origins.most_common(8))
              + (f", {len(origins) - 8} other places" if len(origins) > 8 else ""))
        sets.append(("machine pages", [decode(raw) for raw in raws], raws, 1))
    print(f"\nspeed: median of {args.rounds} interleaved rounds, single process")
    print(f"{'set':<14} {'pages':>5} {'MB':>6}  " + "  ".join(
        f"{n + ' p/s':>16} {'MB/s':>6} {'x ours':>6}" for n in names))
    per_page: dict[str, list[float]] = {}
    for label, set_texts, set_raws, repeat in sets:
        megabytes = sum(len(raw) for raw in set_raws) / 2**20
        seconds = timed_rounds(extractors, set_texts, args.rounds, repeat,
                               per_page if label == "machine pages" else None)
        cells = []
        for name in names:
            ratio = f"{seconds['ours'] / seconds[name]:6.2f}" if "ours" in seconds else f"{'-':>6}"
            cells.append(f"{len(set_texts) / seconds[name]:16.1f} {megabytes / seconds[name]:6.2f} "
                         f"{ratio}")
        print(f"{label:<14} {len(set_texts):5d} {megabytes:6.2f}  " + "  ".join(cells))
    if per_page:
        for name in names:
            times = sorted(per_page[name])
            slow = sum(t > 0.1 for t in times)
            print(f"{name}: per page median {statistics.median(times) * 1000:.1f} ms, "
                  f"max {times[-1] * 1000:.0f} ms, {slow} of {len(times)} over 0.1 s "
                  f"(datatrove's timeout for trafilatura)")
    print("x ours: speed relative to ours (above 1: faster than ours)")


if __name__ == "__main__":
    main()
