"""Stable string hashing for hash-bucketed features.

Python's `hash()` changes per process, so FG hashes with 64-bit FNV-1a over
the UTF-8 bytes: the same string gives the same bucket on every process,
machine and version. The loop runs over byte positions, vectorized over rows,
so a batch costs (longest string) numpy passes.
"""

import numpy as np
import pyarrow as pa

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def hash_strings(values: pa.Array) -> np.ndarray:
    """FNV-1a 64 of each string of `values` (nulls hash as empty strings).

    Returns:
        uint64 array of shape [len(values)].
    """
    values = (
        values.cast(pa.large_string()) if values.type != pa.large_string() else values
    )
    n = len(values)
    hashes = np.full(n, _FNV_OFFSET, dtype=np.uint64)
    if n == 0:
        return hashes

    offsets_buffer, data_buffer = values.buffers()[1], values.buffers()[2]
    offsets = np.frombuffer(
        offsets_buffer, dtype=np.int64, count=n + 1, offset=values.offset * 8
    )
    data = (
        np.frombuffer(data_buffer, dtype=np.uint8)
        if data_buffer is not None
        else np.zeros(0, dtype=np.uint8)
    )
    starts = offsets[:-1]
    lengths = np.diff(offsets)
    if values.null_count:
        lengths = np.where(values.is_valid().to_numpy(zero_copy_only=False), lengths, 0)

    for position in range(int(lengths.max(initial=0))):
        active = np.nonzero(lengths > position)[0]
        byte = data[starts[active] + position].astype(np.uint64)
        hashes[active] = (hashes[active] ^ byte) * _FNV_PRIME
    return hashes


def hash_to_buckets(values: pa.Array, num_buckets: int) -> np.ndarray:
    """Bucket ids in [0, num_buckets) for strings, as int64 [len(values)]."""
    return (hash_strings(values) % np.uint64(num_buckets)).astype(np.int64)
