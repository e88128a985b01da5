"""The ``dedup`` section of params.yaml: exact and MinHash-LSH near-duplicate removal."""

from __future__ import annotations

import dataclasses

from pretrain.config import positive


@dataclasses.dataclass(frozen=True)
class DedupConfig:
    normalize: bool = True
    """Compare texts after Unicode NFC and whitespace collapsing (False: byte-exact)."""
    near: bool = True
    """Also remove near-duplicates (MinHash LSH); False: exact duplicates only."""
    ngram: int = 5
    """Words per shingle (Lee et al. 2022 and FineWeb: 5)."""
    num_perm: int = 100
    """MinHash permutations per document; must equal bands * rows."""
    bands: int = 25
    """LSH bands: documents sharing all the rows of any band are candidate pairs."""
    rows: int = 4
    """Signature values per band."""
    threshold: float = 0.65
    """Jaccard similarity meant as near-duplicate: checks bands/rows, and verifies candidates."""
    verify: bool = True
    """Keep only candidate pairs whose signatures' estimated Jaccard is >= threshold."""
    seed: int = 1
    """Seed of the MinHash permutations."""
    batch_chars: int = 250_000
    """Bytes of text a shard task hashes at once (bounds its memory, whatever the shard size)."""
    sort_chunk: int = 4_000_000
    """Most bucket keys a bucket-step task sorts at once (a band with more eligible documents
    is split by key range into tasks; smaller bands are grouped, this many keys to a task)."""
    samples: int = 20
    """Removed documents per reason written to removed_pairs.jsonl for audit."""

    def __post_init__(self) -> None:
        for name in ("ngram", "num_perm", "bands", "rows", "batch_chars", "sort_chunk"):
            positive(name, getattr(self, name))
        if self.bands * self.rows != self.num_perm:
            raise ValueError(f"num_perm: must equal bands * rows ({self.bands} * {self.rows} = "
                             f"{self.bands * self.rows}), got {self.num_perm}")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold: expected a value in (0, 1], got {self.threshold!r}")
        positive("samples", self.samples, zero=True)
