"""PDF text extractors side by side: pypdf, pdfminer.six and pypdfium2 on the same PDFs.

Per extractor and PDF, on the first ``--pages`` pages: pages/s, and the text's quality as
  agreed    the share of its words (lower-cased runs of 2+ letters) that both other extractors
            also found in that PDF: a garbled word ("ﬁle" as one glyph, "thefile" with its space
            lost, "(cid:12)") is found by one extractor only;
  lig       ligature glyphs left in the text (U+FB00-FB06: "ﬁ", "ﬂ"), which split words for
            every later stage (tokenizer, dedup, language ID);
  bad       undecodable glyphs: U+FFFD and pdfminer's "(cid:N)";
  joined    words of 25+ letters: words run together where the layout lost a space.

The PDFs used for docs/data.md, from Debian 12's documentation packages (fetch them with
``apt-get download <pkg>`` and ``dpkg-deb -x <deb> x``; gunzip the .pdf.gz ones):
camlidl-doc, python-reportlab-doc, why3-doc-pdf, r-doc-pdf (R-FAQ, R-intro, R-data),
docbook-xsl-doc-pdf (reference.pdf.gz), siscone-doc-pdf (refman.pdf.gz).

    python benchmarks/pdf_extract.py x/**/*.pdf --pages 30
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine  # noqa: E402

WORD = re.compile(r"[^\W\d_]{2,}")
LIGATURES = re.compile("[\ufb00-\ufb06]")
BAD = re.compile(r"\ufffd|\(cid:\d+\)")
JOINED = re.compile(r"[^\W\d_]{25,}")


def pypdf_pages(path: Path, pages: int) -> list[str]:
    import pypdf

    reader = pypdf.PdfReader(path)
    return [page.extract_text() or "" for page in reader.pages[:pages]]


def pdfminer_pages(path: Path, pages: int) -> list[str]:
    from pdfminer.high_level import extract_text

    return extract_text(str(path), maxpages=pages).split("\f")[:-1]  # each page ends in \f


def pdfium_pages(path: Path, pages: int) -> list[str]:
    import pypdfium2

    pdf = pypdfium2.PdfDocument(path)
    try:
        out = []
        for i in range(min(pages, len(pdf))):
            page = pdf[i]
            textpage = page.get_textpage()
            # As pretrain.sources.pdf reads it: every character, including text set outside the
            # page box, with PDFium's marks of a hyphen that breaks a word at a line end removed.
            out.append(textpage.get_text_range().replace("\ufffe", "").replace("\x02", ""))
            textpage.close()
            page.close()
        return out
    finally:
        pdf.close()


EXTRACTORS = {"pypdf": pypdf_pages, "pdfminer.six": pdfminer_pages, "pypdfium2": pdfium_pages}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pdfs", nargs="+", type=Path)
    parser.add_argument("--pages", type=int, default=30, help="pages read per PDF")
    args = parser.parse_args()
    print(f"# {machine()}")
    texts: dict[str, dict[Path, str]] = {name: {} for name in EXTRACTORS}
    seconds, pages = Counter(), Counter()
    for path in args.pdfs:
        for name, extract in EXTRACTORS.items():
            start = time.perf_counter()
            found = extract(path, args.pages)
            seconds[name] += time.perf_counter() - start
            pages[name] += len(found)
            texts[name][path] = "\n".join(found)
    words = {name: {p: Counter(WORD.findall(t.lower())) for p, t in by.items()}
             for name, by in texts.items()}
    print(f"{len(args.pdfs)} PDFs, up to {args.pages} pages each")
    print(f"{'extractor':<14}{'pages':>7}{'pages/s':>10}{'words':>9}{'agreed':>9}"
          f"{'lig':>7}{'bad':>7}{'joined':>8}")
    for name in EXTRACTORS:
        others = [o for o in EXTRACTORS if o != name]
        total = agreed = 0
        for path, counts in words[name].items():
            for word, n in counts.items():
                total += n
                agreed += n if all(word in words[o][path] for o in others) else 0
        text = "".join(texts[name].values())
        print(f"{name:<14}{pages[name]:>7}{pages[name] / seconds[name]:>10.1f}{total:>9,}"
              f"{agreed / max(total, 1):>9.1%}{len(LIGATURES.findall(text)):>7,}"
              f"{len(BAD.findall(text)):>7,}{len(JOINED.findall(text)):>8,}")


if __name__ == "__main__":
    main()
