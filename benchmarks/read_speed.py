"""The download stage against datatrove's reader + writer, per input format: speed and memory of
each as a whole process, on the same files and the same cores.

Inputs, generated deterministically from ``--seed`` into one folder per format, ``--files`` files
each (so that the workers have files to split):

  jsonl      JSON lines, records {"id", "text", "url"}
  jsonl.gz   the same records, gzip level 6
  jsonl.zst  the same records, Zstandard level 3 (zstandard's default)
  parquet    the same records, pyarrow's defaults (Snappy)
  warc.gz    Common Crawl-shaped WARC: per document a request and a response record, each its own
             gzip member (benchmarks/warc_read.py), the response an HTML page of the document's
             text (a third of them gzip content-encoded), with WARC-Identified-Payload-Type
  pdf        small PDFs (3 pages of 50 lines of Helvetica, written here as minimal PDF 1.4 files:
             no PDF writer is installed), one document each, 1/40 of --mb of text

Texts: words of a 30,000-word synthetic vocabulary drawn with Zipf frequencies (gzip makes them
2.3x smaller, English prose ~3x), 1 word in 50 with a non-ASCII letter, document lengths
log-normal (median ~4 kB, mean ~5.5 kB); ``--mb`` MB of UTF-8 text (the documents' texts; for
warc.gz the HTML bodies) per text format.

Each (format, tool, workers) runs as a whole process, after ``cat`` of its input files to
/dev/null so that both find the same page cache:

  ours       python stages/download.py with a copy of params.yaml (download.source: files,
             download.path: the format's folder, executor.workers: WORKERS), Parquet shards out
  datatrove  benchmarks/read_speed_datatrove.py in datatrove's environment (--datatrove-python):
             LocalPipelineExecutor with --files tasks (the PDFs too are shared among that many)
             on WORKERS processes, the format's reader
             (JsonlReader, ParquetReader, WarcReader; a PDF reader of our own on pypdfium2, as
             datatrove has none) and ParquetWriter (Zstandard, as ours), or JsonlWriter too
             with ``--writers parquet,jsonl``

First, each tool and worker count on one JSON lines file of one document (format ``startup``):
its fixed cost (interpreter, imports, params, executor and pool start-up), taken off its wall time
for the table's "net of start-up" column.

Per measurement: wall seconds (start-up included; best of --repeat), MB/s of input on disk
(compressed bytes of the files) and of text (the uncompressed UTF-8 bytes above), CPU seconds
of the whole process tree (user + system, summed over processes, sampled with psutil every
50 ms: a lower bound by up to 50 ms per process), text MB per CPU second (MB/s per busy core),
the documents in the output, peak memory: the largest sum of RSS over the process and all
its descendants, sampled with the CPU (pages shared between processes count once per process:
an upper bound), and "others' cores": the CPU every other process on the machine used meanwhile,
over the wall time (psutil.cpu_times; on 2 cores, 1.0 leaves one core to the run: its 2-worker
figure then says little). The table at the end gives ours / datatrove per format and worker
count: text MB/s (above 1: ours faster) and peak RSS (below 1: ours smaller). Read ratios, not
absolute numbers, on a shared machine.

Environment for datatrove (benchmark-only, never in the project's venv):
    python3 -m venv /tmp/dtvenv
    /tmp/dtvenv/bin/pip install -r benchmarks/requirements-read.txt   # python-magic needs libmagic1

    PYTHONPATH=src python benchmarks/read_speed.py                 # 200 MB per format, 1 and 2 workers
    PYTHONPATH=src python benchmarks/read_speed.py --mb 50 --formats jsonl,pdf --workers 2
    PYTHONPATH=src python benchmarks/read_speed.py --inputs /tmp/read-inputs   # keep the inputs

Reference: datatrove's readers (huggingface/datatrove, src/datatrove/pipeline/readers: jsonl.py,
parquet.py, warc.py) and its LocalPipelineExecutor (src/datatrove/executor/local.py).
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
import zstandard

from machine import machine, watch  # benchmarks/machine.py: run as python benchmarks/<name>.py

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ("jsonl", "jsonl.gz", "jsonl.zst", "parquet", "warc.gz", "pdf")
PDF_SHARE = 1 / 40  # PDFs read ~20x slower per MB of text than JSON lines (1.6 vs 30 MB/s here)
PDF_PAGES, PDF_LINES = 3, 50
STARTUP = "startup"  # one JSON lines file of one document: a tool's fixed cost


# --- inputs ----------------------------------------------------------------------------------------


def vocabulary(rng: np.random.Generator, size: int = 30_000) -> tuple[list[str], np.ndarray]:
    """Synthetic words (2-12 letters; 1 in 10 ends a sentence, 1 in 20 a clause, 1 in 50 has a
    non-ASCII letter) and their Zipf probabilities (p ~ 1 / (rank + 2.7), Mandelbrot's fit)."""
    letters = np.array(list("etaoinshrdlcumwfgypbvkjxqz"))
    freq = np.array([12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4, 2.4,
                     2.2, 2.0, 2.0, 1.9, 1.5, 1.0, 0.8, 0.2, 0.2, 0.1, 0.1])
    lengths = np.clip(rng.poisson(4.5, size) + 1, 2, 12)
    words = ["".join(rng.choice(letters, n, p=freq / freq.sum())) for n in lengths]
    marks = rng.random(size)
    words = [w + "." if m < 0.1 else w + "," if m < 0.15 else w for w, m in zip(words, marks)]
    accents = "éüñçøå"
    words = [w[:-1] + accents[i % len(accents)] if rng.random() < 0.02 else w
             for i, w in enumerate(words)]
    p = 1 / (np.arange(size) + 2.7)
    return words, p / p.sum()


def texts(rng: np.random.Generator, words: list[str], p: np.ndarray, total_bytes: int,
          median_words: float = 650) -> list[str]:
    """Documents of ``words`` until ``total_bytes`` of UTF-8 text, paragraphs of 60 words."""
    out, size, cdf = [], 0, np.cumsum(p)
    while size < total_bytes:
        n = max(20, int(rng.lognormal(np.log(median_words), 0.7)))
        picked = [words[i] for i in np.searchsorted(cdf, rng.random(n) * cdf[-1])]
        paragraphs = [" ".join(picked[i:i + 60]) for i in range(0, n, 60)]
        out.append("\n\n".join(paragraphs))
        size += len(out[-1].encode())
    return out


def split(items: list, parts: int) -> list[list]:
    """``items`` in ``parts`` consecutive runs of near-equal length."""
    bounds = np.linspace(0, len(items), parts + 1).astype(int).tolist()
    return [items[a:b] for a, b in itertools.pairwise(bounds)]


def write_jsonl(records: list[dict], path: Path) -> None:
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    if path.suffix == ".gz":
        data = gzip.compress(data, compresslevel=6, mtime=0)
    elif path.suffix == ".zst":
        data = zstandard.ZstdCompressor(level=3).compress(data)
    path.write_bytes(data)


def warc_record(kind: str, n: int, block: bytes, msgtype: str) -> bytes:
    """One WARC/1.0 record as its own gzip member (as Common Crawl ships them)."""
    payload = "WARC-Identified-Payload-Type: text/html\r\n" if kind == "response" else ""
    head = (f"WARC/1.0\r\nWARC-Type: {kind}\r\nWARC-Record-ID: <urn:uuid:{kind}-{n}>\r\n"
            f"WARC-Date: 2026-12-07T10:00:00Z\r\nWARC-Target-URI: https://example.org/{n}\r\n"
            f"Content-Type: application/http; msgtype={msgtype}\r\n{payload}"
            f"Content-Length: {len(block)}\r\n\r\n")
    return gzip.compress(head.encode() + block + b"\r\n\r\n", compresslevel=6, mtime=0)


def html_page(doc_id: str, text: str) -> bytes:
    body = "</p>\n<p>".join(text.split("\n\n"))
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{doc_id}</title></head>"
            f"<body><p>{body}</p></body></html>").encode()


def write_warc(records: list[dict], path: Path, first: int) -> int:
    """The records as request/response pairs; returns the bytes of the HTML bodies."""
    size = 0
    with open(path, "wb") as out:
        for n, record in enumerate(records, first):
            raw = html_page(record["id"], record["text"])
            size += len(raw)
            extra = b""
            if n % 3 == 0:
                raw, extra = gzip.compress(raw, mtime=0), b"Content-Encoding: gzip\r\n"
            out.write(warc_record("request", n, b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n",
                                  "request"))
            out.write(warc_record("response", n, b"HTTP/1.1 200 OK\r\nContent-Type: text/html; "
                                  b"charset=utf-8\r\n" + extra + b"\r\n" + raw, "response"))
    return size


def pdf_bytes(pages: list[list[str]]) -> bytes:
    """A minimal PDF 1.4 file (ISO 32000-1, 7.5): catalog, page tree, Helvetica, one content
    stream per page drawing its lines, and the cross-reference table PDFium checks."""
    n = len(pages)
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [%s] /Count %d >>"
               % (b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(n)), n),
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    for i, lines in enumerate(pages):
        ops = b"".join(b"BT /F1 9 Tf 40 %d Td (%s) Tj ET\n" % (770 - 14 * j, line.encode("ascii"))
                       for j, line in enumerate(lines))
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources "
                       b"<< /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (5 + 2 * i))
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(ops), ops))
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for k, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (k, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def write_pdfs(rng: np.random.Generator, words: list[str], p: np.ndarray, folder: Path,
               total_bytes: int) -> int:
    """PDFs of PDF_PAGES pages of PDF_LINES lines of ASCII words until ``total_bytes`` of
    text; returns the text's bytes (lines joined by newlines)."""
    ascii_words = [w for w in words if w.isascii()]
    keep = np.array([w.isascii() for w in words])
    cdf = np.cumsum(np.where(keep, p, 0)[keep])
    size, n = 0, 0
    while size < total_bytes:
        pages = []
        for _ in range(PDF_PAGES):
            picked = [ascii_words[i] for i in np.searchsorted(cdf, rng.random(14 * PDF_LINES) * cdf[-1])]
            pages.append([" ".join(picked[k:k + 14]) for k in range(0, len(picked), 14)])
        (folder / f"doc-{n:05d}.pdf").write_bytes(pdf_bytes(pages))
        size += sum(len(line) + 1 for page in pages for line in page)
        n += 1
    return size


def make_inputs(base: Path, formats: list[str], mb: float, files: int, seed: int) -> dict:
    """Write each format's folder under ``base`` (those that ``base/corpus.json`` lists for the
    same size, files and seed are reused: each format's files depend on these alone), and the
    STARTUP folder; returns {format: text bytes}."""
    (base / STARTUP).mkdir(parents=True, exist_ok=True)
    write_jsonl([{"id": "doc-0", "text": "One short document.", "url": "https://example.org/"}],
                base / STARTUP / "one.jsonl")
    manifest = base / "corpus.json"
    key = {"mb": mb, "files": files, "seed": seed}
    known = json.loads(manifest.read_text()) if manifest.exists() else {"key": None}
    text_bytes = known["text_bytes"] if known["key"] == key else {}
    formats = [f for f in formats if f not in text_bytes]
    if not formats:
        return text_bytes
    rng = np.random.default_rng(seed)
    words, p = vocabulary(rng)
    docs = texts(rng, words, p, int(mb * 1e6))
    records = [{"id": f"doc-{i:07d}", "text": t, "url": f"https://example.org/{i}"}
               for i, t in enumerate(docs)]
    for fmt in formats:
        folder = base / fmt
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        if fmt == "pdf":
            text_bytes[fmt] = write_pdfs(rng, words, p, folder, int(mb * 1e6 * PDF_SHARE))
            continue
        first = html = 0
        for k, part in enumerate(split(records, files)):
            path = folder / f"part-{k:03d}.{fmt}"
            if fmt == "parquet":
                pq.write_table(pa.Table.from_pylist(part), path)
            elif fmt == "warc.gz":
                html += write_warc(part, path, first)
                first += len(part)
            else:
                write_jsonl(part, path)
        # the text a tool reads out: the documents' texts, or for WARC the HTML bodies
        text_bytes[fmt] = html if fmt == "warc.gz" else sum(len(t.encode()) for t in docs)
    manifest.write_text(json.dumps({"key": key, "text_bytes": text_bytes}))
    return text_bytes


# --- running and measuring -------------------------------------------------------------------------


def busy() -> float:
    """CPU seconds this machine has spent busy (every process, every core) since boot."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq


def timed(command: list[str], env: dict | None = None) -> dict:
    """Run ``command`` from the repository root: wall seconds, CPU seconds of its process
    tree, peak RSS bytes, and ``others``: the CPU seconds every other process spent meanwhile
    (a shared machine's load, which slows the run)."""
    before = busy()
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    box, thread = watch(process)
    output, _ = process.communicate()
    wall, used = time.perf_counter() - start, busy() - before
    thread.join()
    if process.returncode:
        raise SystemExit(f"failed ({process.returncode}): {' '.join(command)}\n{output[-3000:]}")
    cpu = sum(box["cpu"].values())
    return {"seconds": wall, "cpu": cpu, "rss": box["rss"], "others": max(0.0, used - cpu)}


def run_ours(inputs: Path, folder: str, workers: int, work: Path) -> dict:
    """stages/download.py on ``inputs/folder`` with ``executor.workers: workers``."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["download"].update(source="files", path=str(inputs / folder))
    params["executor"].update(workers=workers)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = timed([sys.executable, "stages/download.py", "--sources", str(inputs),
                    "--out", str(work / "raw"), "--url-cache", str(work / "url_cache"),
                    "--metrics", str(work / "download.json"), "--params", str(work / "params.yaml")],
                   env)
    result["docs"] = sum(pq.ParquetFile(f).metadata.num_rows for f in (work / "raw").glob("*.parquet"))
    return result


def run_datatrove(python: str, inputs: Path, folder: str, workers: int, work: Path, tasks: int,
                  writer: str) -> dict:
    """benchmarks/read_speed_datatrove.py on ``inputs/folder`` (its files of the format
    ``folder``; ``startup``: JSON lines) in datatrove's environment."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    out = work / "out"
    fmt = "jsonl" if folder == STARTUP else folder
    result = timed([python, str(Path(__file__).with_name("read_speed_datatrove.py")), fmt,
                    str(inputs / folder), str(out), str(work / "logs"), str(tasks), str(workers),
                    writer])
    if writer == "parquet":
        result["docs"] = sum(pq.ParquetFile(f).metadata.num_rows for f in out.rglob("*.parquet"))
    else:
        result["docs"] = 0
        for path in out.rglob("*.jsonl.gz"):
            with gzip.open(path) as lines:
                result["docs"] += sum(1 for _ in lines)
    return result


def datatrove_missing(python: str) -> str | None:
    """Why datatrove cannot run with ``python``; None when it can."""
    if not Path(python).exists():
        return f"{python} does not exist"
    check = subprocess.run([python, "-c", "import datatrove"], capture_output=True, check=False)
    return None if check.returncode == 0 else f"{python} cannot import datatrove"


def warm(folder: Path) -> int:
    """Read every file of ``folder`` once (``cat > /dev/null``); returns their bytes."""
    files = sorted(str(f) for f in folder.iterdir())
    subprocess.run(["cat", *files], stdout=subprocess.DEVNULL, check=True)
    return sum(os.path.getsize(f) for f in files)


def line(r: dict) -> str:
    """One measurement, comparable across runs."""
    return (f"{r['format']:<9} {r['tool']:<17} workers {r['workers']}  {r['seconds']:7.2f} s  "
            f"disk {r['disk'] / 1e6 / r['seconds']:7.1f} MB/s  "
            f"text {r['text'] / 1e6 / r['seconds']:7.1f} MB/s  cpu {r['cpu']:7.1f} s  "
            f"text/cpu-s {r['text'] / 1e6 / max(r['cpu'], 1e-9):6.1f} MB  docs {r['docs']:>8,}  "
            f"peak RSS {r['rss'] / 2**20:6.0f} MB  others {r['others'] / r['seconds']:4.1f} cores")


def table(rows: list[dict], where: str) -> None:
    """Markdown: per format, worker count and tool, the measurement, its text MB/s net of the
    tool's start-up (its ``startup`` row's seconds taken off), and ours / datatrove."""
    print(f"\n{where}\n")
    print("| format | workers | tool | s | disk MB/s | text MB/s | text MB/s net of start-up | "
          "text MB/cpu-s | docs | peak RSS MB | others' cores | ours/datatrove text MB/s | "
          "ours/datatrove peak RSS |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    def find(tool: str, fmt: str, workers: int) -> dict | None:
        return next((o for o in rows if (o["tool"], o["format"], o["workers"]) == (tool, fmt, workers)),
                    None)

    for r in rows:
        ours, startup = find("ours", r["format"], r["workers"]), find(r["tool"], STARTUP, r["workers"])
        net = ("" if r["format"] == STARTUP or startup is None or r["seconds"] <= startup["seconds"]
               else f"{r['text'] / 1e6 / (r['seconds'] - startup['seconds']):.1f}")
        ratio = rss = ""
        if r["tool"] != "ours" and ours is not None:
            ratio, rss = f"{r['seconds'] / ours['seconds']:.2f}", f"{ours['rss'] / r['rss']:.2f}"
        print(f"| {r['format']} | {r['workers']} | {r['tool']} | {r['seconds']:.2f} | "
              f"{r['disk'] / 1e6 / r['seconds']:.1f} | {r['text'] / 1e6 / r['seconds']:.1f} | {net} | "
              f"{r['text'] / 1e6 / max(r['cpu'], 1e-9):.1f} | {r['docs']:,} | "
              f"{r['rss'] / 2**20:.0f} | {r['others'] / r['seconds']:.1f} | {ratio} | {rss} |")


def measure(args: argparse.Namespace, inputs: Path, text_bytes: dict, work: Path,
            dt_python: str | None) -> list[dict]:
    """Every (format, workers, tool), the start-up row first; best of ``args.repeat`` each."""
    tools = [("ours", None)] + [(f"datatrove-{w}", w) for w in args.writers if dt_python]
    rows = []
    for fmt in [STARTUP, *args.formats]:
        for workers in args.workers:
            for tool, writer in tools:
                best = None
                for _ in range(args.repeat):
                    disk = warm(inputs / fmt)
                    r = (run_ours(inputs, fmt, workers, work / "ours") if writer is None else
                         run_datatrove(dt_python, inputs, fmt, workers, work / "datatrove",
                                       args.files, writer))
                    best = r if best is None or r["seconds"] < best["seconds"] else best
                rows.append({"format": fmt, "tool": tool, "workers": workers, "disk": disk,
                             "text": text_bytes.get(fmt, 0), **best})
                print(line(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=200, help="MB of text per text format")
    parser.add_argument("--files", type=int, default=8, help="files per text format; datatrove's tasks")
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    parser.add_argument("--writers", default="parquet", help="datatrove writers: parquet,jsonl")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement (best counts)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--inputs", type=Path, help="generate the inputs here and keep them (reused)")
    parser.add_argument("--datatrove-python", default="/tmp/dtvenv/bin/python",
                        help="the python of an environment with datatrove (requirements-read.txt)")
    args = parser.parse_args()
    args.formats = args.formats.split(",")
    args.workers = [int(w) for w in args.workers.split(",")]
    args.writers = args.writers.split(",")
    unknown = sorted(set(args.formats) - set(FORMATS))
    if unknown:
        parser.error(f"--formats: unknown {unknown} (known: {', '.join(FORMATS)})")
    where = f"# {machine()}; {time.strftime('%Y-%m-%d')}"
    print(where)
    missing = datatrove_missing(args.datatrove_python)
    if missing:
        print(f"datatrove missing ({missing}): ours only; see this script's docstring to install it")
    tmp = Path(tempfile.mkdtemp(prefix="read-speed-"))
    try:
        inputs = args.inputs or tmp / "inputs"
        inputs.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        text_bytes = make_inputs(inputs, args.formats, args.mb, args.files, args.seed)
        print(f"inputs in {inputs} ({time.perf_counter() - start:.0f} s): " + ", ".join(
            f"{f} {sum(p.stat().st_size for p in (inputs / f).iterdir()) / 1e6:.1f} MB on disk "
            f"({len(list((inputs / f).iterdir()))} files) / {text_bytes[f] / 1e6:.1f} MB text"
            for f in args.formats), flush=True)
        rows = measure(args, inputs, text_bytes, tmp / "work", None if missing else args.datatrove_python)
        table(rows, where)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
