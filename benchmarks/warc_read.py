"""WARC readers side by side: FastWARC (Resiliparse) against warcio, on one generated file.

The file is a Common Crawl-shaped ``.warc.gz``: each record its own gzip member, a request
and a response per page (HTML pages of ~13 kB of words), some
of them gzip-encoded. Each reader parses every record's headers and HTTP headers and reads
every response's decoded body, as pretrain.sources.warc does; best of ``--repeats``.
warcio is not a project dependency: ``pip install warcio`` to run this.

    python benchmarks/warc_read.py --pages 2000
"""

from __future__ import annotations

import argparse
import gzip
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine  # noqa: E402

WORDS = ("the of and to in is that for it as was with be by on not he this are or his from "
         "at which but have an they you were her she there been one all we their").split()


def record(kind: str, n: int, block: bytes, msgtype: str) -> bytes:
    head = (f"WARC/1.0\r\nWARC-Type: {kind}\r\nWARC-Record-ID: <urn:uuid:{kind}-{n}>\r\n"
            f"WARC-Date: 2026-12-07T10:00:00Z\r\nWARC-Target-URI: http://example.org/{n}\r\n"
            f"Content-Type: application/http; msgtype={msgtype}\r\n"
            f"Content-Length: {len(block)}\r\n\r\n")
    return gzip.compress(head.encode() + block + b"\r\n\r\n", compresslevel=6)


def warc_file(path: Path, pages: int) -> None:
    rng = random.Random(0)
    with open(path, "wb") as out:
        for n in range(pages):
            words = " ".join(rng.choice(WORDS) for _ in range(3300))
            body = f"<html><head><title>{n}</title></head><body><p>{words}</p></body></html>"
            raw, extra = body.encode(), ""
            if n % 3 == 0:
                raw, extra = gzip.compress(raw), "Content-Encoding: gzip\r\n"
            out.write(record("request", n, b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n",
                             "request"))
            out.write(record("response", n, b"HTTP/1.1 200 OK\r\nContent-Type: text/html; "
                             b"charset=utf-8\r\n" + extra.encode() + b"\r\n" + raw, "response"))


def fastwarc_read(path: Path) -> tuple[int, int]:
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    records = size = 0
    with open(path, "rb") as handle:
        for rec in ArchiveIterator(handle, parse_http=True, auto_decode="all"):
            records += 1
            if rec.record_type == WarcRecordType.response:
                size += len(rec.reader.read())
    return records, size


def warcio_read(path: Path) -> tuple[int, int]:
    from warcio.archiveiterator import ArchiveIterator

    records = size = 0
    with open(path, "rb") as handle:
        for rec in ArchiveIterator(handle):
            records += 1
            if rec.rec_type == "response":
                # content_stream() undoes the Content-Encoding, as auto_decode does
                size += len(rec.content_stream().read())
    return records, size


READERS = {"fastwarc": fastwarc_read, "warcio": warcio_read}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=2000, help="request/response pairs")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"# {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "bench.warc.gz")
        warc_file(path, args.pages)
        print(f"{path.stat().st_size / 1e6:.1f} MB .warc.gz, {2 * args.pages:,} records")
        results = {}
        for name, read in READERS.items():
            best = float("inf")
            for _ in range(args.repeats):
                start = time.perf_counter()
                records, size = read(path)
                best = min(best, time.perf_counter() - start)
            results[name] = (records, size, best)
            print(f"{name:<9} {records:>7,} records {size / 1e6:>7.1f} MB bodies "
                  f"{records / best:>9,.0f} records/s {best:>6.2f} s")
        assert len({(r, s) for r, s, _ in results.values()}) == 1, "readers disagree"
        print(f"fastwarc / warcio: {results['warcio'][2] / results['fastwarc'][2]:.1f}x")


if __name__ == "__main__":
    main()
