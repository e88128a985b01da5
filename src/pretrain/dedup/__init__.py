"""The dedup stage: exact and near-duplicate removal, keeping the first copy.

- ``runner.py``: ``dedup()``, the stage over shards on the executor: deciding, writing the survivors.
- ``scan.py``: pass 1, one task per shard: keys, counts, signatures and band keys to files.
- ``exact.py``: normalised-text hashes for exact duplicates.
- ``minhash.py``: words, shingles and MinHash signatures.
- ``lsh.py``: LSH bands and rows, candidate pairs, verification, clusters (bounded memory).
"""
