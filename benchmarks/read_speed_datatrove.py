"""datatrove's side of benchmarks/read_speed.py, run in the benchmark's own environment (datatrove is
not a project dependency): ``python read_speed_datatrove.py FORMAT INPUT OUTPUT LOGS TASKS WORKERS
WRITER`` reads every file under the folder INPUT with datatrove's reader for FORMAT (``jsonl``,
``jsonl.gz``, ``jsonl.zst``, ``parquet``, ``warc.gz``, ``pdf``) and writes the documents to the
folder OUTPUT with WRITER (``parquet``: ParquetWriter, Zstandard as the download stage's shards;
``jsonl``: JsonlWriter, its default gzip), through a LocalPipelineExecutor of TASKS tasks (task r
reads the files r, r + TASKS, ...) on WORKERS processes, logging to LOGS. Exits 0 when every task
completed.

datatrove 0.10.1 has readers for JSON lines, Parquet, CSV, Arrow IPC, WARC (warcio) and
Hugging Face datasets (datatrove.pipeline.readers), none for PDF: the ``pdf`` reader here is the
one a user would write, datatrove's BaseDiskReader around pypdfium2 reading the text layer as
pretrain.sources.pdf does (every character of every page, pages joined by a blank line).
"""

from __future__ import annotations

import sys
from typing import ClassVar

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader, ParquetReader, WarcReader
from datatrove.pipeline.readers.base import BaseDiskReader
from datatrove.pipeline.writers import JsonlWriter, ParquetWriter


class PdfReader(BaseDiskReader):
    """One document per PDF: its pages' text (pypdfium2), joined by a blank line; id the file's path."""

    name = "PDF (pypdfium2)"
    _requires_dependencies: ClassVar[list[str]] = ["pypdfium2"]

    def read_file(self, filepath: str):
        import pypdfium2

        with self.data_folder.open(filepath, "rb") as handle:
            pdf = pypdfium2.PdfDocument(handle.read())
        with self.track_time():
            try:
                pages = []
                for i in range(len(pdf)):
                    page = pdf[i]
                    textpage = page.get_textpage()
                    pages.append(textpage.get_text_range().translate({0xFFFE: None, 0x02: None}))
                    textpage.close()
                    page.close()
            finally:
                pdf.close()
            text = "\n\n".join(p.strip() for p in pages if p.strip())
            document = self.get_document_from_dict({"text": text, "id": filepath}, filepath, 0)
        if document:
            yield document


READERS = {"jsonl": JsonlReader, "jsonl.gz": JsonlReader, "jsonl.zst": JsonlReader,
           "parquet": ParquetReader, "warc.gz": WarcReader, "pdf": PdfReader}
WRITERS = {"parquet": lambda out: ParquetWriter(out, compression="zstd"),
           "jsonl": lambda out: JsonlWriter(out)}


def main() -> None:
    fmt, source, out, logs, tasks, workers, writer = sys.argv[1:8]
    executor = LocalPipelineExecutor(
        pipeline=[READERS[fmt](source), WRITERS[writer](out)],
        tasks=int(tasks), workers=int(workers), logging_dir=logs)  # LOGS is new: nothing skipped
    executor.run()
    missing = executor.get_incomplete_ranks(skip_completed=True)
    if missing:
        sys.exit(f"datatrove: tasks {missing} did not complete (logs in {logs})")


if __name__ == "__main__":
    main()
