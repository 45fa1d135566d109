import subprocess
import sys

import pyarrow as pa

from recship.features.hashing import hash_strings, hash_to_buckets


def _fnv1a_reference(text: str) -> int:
    value = 0xCBF29CE484222325
    for byte in text.encode("utf-8"):
        value = ((value ^ byte) * 0x100000001B3) % (1 << 64)
    return value


def test_hash_matches_scalar_fnv1a_for_mixed_lengths_and_unicode():
    texts = ["", "a", "430548_1007", "ünïcödé", "x" * 70]
    got = hash_strings(pa.array(texts))
    assert [int(v) for v in got] == [_fnv1a_reference(t) for t in texts]


def test_hash_ignores_array_slicing_offsets():
    array = pa.array(["skip", "pid_1", "pid_2"])
    assert list(hash_strings(array.slice(1))) == list(
        hash_strings(pa.array(["pid_1", "pid_2"]))
    )


def test_null_hashes_like_empty_string():
    got = hash_strings(pa.array(["", None]))
    assert got[0] == got[1]


def test_buckets_are_stable_across_processes():
    code = (
        "import pyarrow as pa;"
        "from recship.features.hashing import hash_to_buckets;"
        "print(hash_to_buckets(pa.array(['a','bc','430539_1007']), 20).tolist())"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(runs) == 1
    local = hash_to_buckets(pa.array(["a", "bc", "430539_1007"]), 20)
    assert runs.pop().strip() == str(local.tolist())
