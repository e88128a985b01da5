"""The dedup stage: exact and near-duplicate removal, keeping the first copy.

- ``runner.py``: ``dedup()``, hashing in parallel processes, deciding, writing the survivors.
- ``exact.py``: normalised-text hashes for exact duplicates.
- ``minhash.py``: words, shingles and MinHash signatures.
- ``lsh.py``: LSH bands and rows, candidate pairs, verification, clusters (bounded memory).
"""
