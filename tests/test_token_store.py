"""The token store: Megatron's indexed-dataset files, read a row at a time; a corpus larger than
the memory a training process may use still trains."""

import json
import os
import pickle
import resource
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pretrain.errors import DataError
from pretrain.token_store import (
    IndexedShardWriter,
    PackedRows,
    read_manifest,
    store_name,
    token_dtype,
    write_index,
    write_manifest,
)

ROOT = Path(__file__).resolve().parents[1]


def write_store(folder: Path, splits: dict[str, list[np.ndarray]], seq_len: int, vocab_size: int) -> None:
    """A store whose split ``s`` has one shard per array of ``splits[s]`` (rows x seq_len ids)."""
    folder.mkdir(parents=True, exist_ok=True)
    dtype, shards = token_dtype(vocab_size), {}
    for split, arrays in splits.items():
        shards[split] = []
        for i, rows in enumerate(arrays):
            writer = IndexedShardWriter(folder, store_name(split, i), seq_len, dtype)
            writer.write(rows.reshape(-1))
            shards[split].append(writer.close())
    write_manifest(folder, seq_len, dtype, vocab_size, shards)


@pytest.fixture
def store(tmp_path):
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 1000, (n, 8)) for n in (5, 1, 7)]
    write_store(tmp_path / "store", {"train": arrays, "val": [arrays[1]]}, seq_len=8, vocab_size=1000)
    return tmp_path / "store", np.concatenate(arrays)


def test_rows_read_one_at_a_time_a_range_across_shards_or_any_list_of_rows(store):
    folder, whole = store
    rows = PackedRows(folder, "train")
    assert rows.shape == whole.shape == (13, 8) and len(rows) == 13
    assert np.array_equal(rows[6], whole[6]) and np.array_equal(rows[-1], whole[-1])
    assert np.array_equal(rows[3:9], whole[3:9])  # shards 0, 1 and 2
    assert np.array_equal(rows[:], whole) and rows[10:200].shape == (3, 8)
    order = np.array([12, 0, 5, 5, 6, -2])
    got = rows[order]
    assert got.dtype == np.int64 and np.array_equal(got, whole[order])
    assert np.array_equal(np.concatenate(list(rows.chunks(4))), whole)
    with pytest.raises(IndexError):
        rows[13]
    with pytest.raises(IndexError):
        rows[np.array([0, 13])]


def test_a_row_list_read_after_pickling_or_in_a_forked_process_is_the_same(store):
    folder, whole = store
    rows = PackedRows(folder, "train")
    rows[0]  # opens a file in this process
    assert np.array_equal(pickle.loads(pickle.dumps(rows))[[4, 11]], whole[[4, 11]])
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child reads through its own descriptors
        os.write(write, rows[[12, 3]].tobytes())
        os._exit(0)
    os.waitpid(pid, 0)
    assert np.array_equal(np.frombuffer(os.read(read, 1 << 16), dtype=np.int64).reshape(2, 8), whole[[12, 3]])
    assert np.array_equal(rows[[7]], whole[[7]])  # the parent's descriptor still reads


def test_the_narrowest_type_megatron_knows_holds_the_vocabulary(tmp_path):
    assert token_dtype(65_536) == np.uint16 and token_dtype(65_537) == np.int32
    ids = np.array([[0, 65_535], [7, 1]])
    write_store(tmp_path, {"train": [ids]}, seq_len=2, vocab_size=65_536)
    assert (tmp_path / "train-00000.bin").stat().st_size == ids.size * 2  # 2 bytes a token
    assert np.array_equal(np.fromfile(tmp_path / "train-00000.bin", dtype="<u2").reshape(-1, 2), ids)
    assert np.array_equal(PackedRows(tmp_path, "train")[:], ids)
    big = np.array([[70_000, 1]])
    write_store(tmp_path / "big", {"train": [big]}, seq_len=2, vocab_size=80_000)
    assert np.array_equal(np.fromfile(tmp_path / "big" / "train-00000.bin", dtype="<i4"), big.ravel())
    writer = IndexedShardWriter(tmp_path, "x", 2, token_dtype(65_536))
    with pytest.raises(DataError, match="token id 70000 does not fit the token store's uint16"):
        writer.write(big.ravel())
    writer.abort()
    assert not list(tmp_path.glob("x*")) and not list(tmp_path.glob(".x*"))


def test_the_index_is_megatron_mmidx_one_sequence_and_one_document_per_row(store):
    """The layout of megatron/core/datasets/indexed_dataset.py (_IndexWriter.write): header,
    version, dtype code, sequence and document counts, lengths, byte offsets, document indices."""
    folder, _ = store
    data = (folder / "train-00000.idx").read_bytes()
    assert data[:9] == b"MMIDIDX\x00\x00"
    version, code, sequences, documents = struct.unpack_from("<QBQQ", data, 9)
    assert (version, code, sequences, documents) == (1, 8, 5, 6)  # 8: uint16
    at = 9 + 8 + 1 + 16
    assert np.frombuffer(data, "<i4", 5, at).tolist() == [8] * 5
    assert np.frombuffer(data, "<i8", 5, at + 20).tolist() == [i * 16 for i in range(5)]
    assert np.frombuffer(data, "<i8", 6, at + 60).tolist() == list(range(6))
    assert len(data) == at + 20 + 40 + 48


def test_a_damaged_or_missing_store_is_a_one_line_error_naming_the_file(store, tmp_path):
    folder, _ = store
    with pytest.raises(DataError, match="no token store"):
        PackedRows(tmp_path / "nothing", "train")
    with open(folder / "train-00001.bin", "r+b") as handle:
        handle.truncate(10)
    with pytest.raises(DataError, match=r"train-00001\.bin: 10 bytes"):
        PackedRows(folder, "train")
    (folder / "val-00000.idx").write_bytes(b"not an index")
    with pytest.raises(DataError, match=r"val-00000\.idx: not a Megatron indexed-dataset index"):
        PackedRows(folder, "val")
    manifest = read_manifest(folder)
    manifest["splits"]["val"] = {"rows": 0, "shards": []}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="no packed val rows"):
        PackedRows(folder, "val")


TRAIN_UNDER_LIMIT = r"""
import resource, sys
from pathlib import Path
limit = int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
try:
    bytearray(limit)  # the limit holds: the whole store could never be read into memory
    raise SystemExit("RLIMIT_AS did not apply")
except MemoryError:
    pass
from pretrain.config.train import TrainConfig
from pretrain.train.loop import train
report = train(TrainConfig(max_steps=3, warmup_steps=1, micro_batch_size=2, eval_every=0, log_every=1,
                           precision="fp32"),
               Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[2]).parent / "model",
               Path(sys.argv[2]).parent / "live")
print("steps", report["steps"])
"""


def test_a_token_store_larger_than_the_process_may_address_still_trains(tmp_path, init_dir):
    """The training process may address 3 GiB (RLIMIT_AS: its whole virtual memory, libraries,
    model and threads included); the token store is 4 GiB (a sparse file of 2^31 uint16 ids:
    no disk is used). Loading it, or mapping it whole, would fail; reading a batch at a time
    trains."""
    seq_len, rows = 512, (4 << 30) // (512 * 2)
    store = tmp_path / "tokens"
    store.mkdir()
    writer = IndexedShardWriter(store, store_name("train", 0), seq_len, np.dtype("<u2"))
    writer.write(np.arange(seq_len * 4) % 500)  # a few rows of real ids, then the sparse rest (id 0)
    shard = writer.close()
    os.truncate(store / "train-00000.bin", rows * seq_len * 2)
    write_index(store / "train-00000.idx", rows, seq_len, np.dtype("<u2"))
    write_manifest(store, seq_len, np.dtype("<u2"), 512, {"train": [{**shard, "rows": rows}]})
    assert (store / "train-00000.bin").stat().st_size == 4 << 30 > 3 << 30
    assert len(PackedRows(store, "train")) == rows
    limit = 3 << 30
    result = subprocess.run([sys.executable, "-c", TRAIN_UNDER_LIMIT, str(init_dir), str(store), str(limit)],
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "steps 3" in result.stdout
    assert resource.getrlimit(resource.RLIMIT_AS)[0] != limit  # the limit stayed in the child
