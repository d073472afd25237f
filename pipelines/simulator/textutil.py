"""Vectorised string building (Arrow compute) for ids, addresses and IPs."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def single(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous array: Arrow converts a large NumPy string array (beyond about 16 MB of
    text) into a chunked one, which ``ListArray.from_arrays`` and the like refuse."""
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def struct_array(arrays: list, names: list[str]) -> pa.StructArray:
    """``pa.StructArray.from_arrays`` over arrays that may have come back chunked."""
    return pa.StructArray.from_arrays([single(a) for a in arrays], names)


def list_array(offsets: pa.Array, values: pa.Array | pa.ChunkedArray) -> pa.ListArray:
    """``pa.ListArray.from_arrays`` over values that may have come back chunked."""
    return pa.ListArray.from_arrays(single(offsets), single(values))


def cat(*parts: pa.Array | str) -> pa.Array:
    """Concatenate Arrow string arrays / literal strings element-wise."""
    arrays = [pa.scalar(p) if isinstance(p, str) else p for p in parts]
    return pc.binary_join_element_wise(*arrays, "")


def num_str(values: np.ndarray, width: int = 0) -> pa.Array:
    """Integers as (optionally zero-padded) decimal strings."""
    s = pa.array(np.asarray(values, dtype=np.int64)).cast(pa.string())
    return pc.utf8_lpad(s, width=width, padding="0") if width else s


def hex_str(values: np.ndarray, prefix: str = "", ndigits: int = 16) -> pa.Array:
    """uint64 values as fixed-width lowercase hex with a prefix, without a Python loop."""
    v = np.asarray(values, dtype=np.uint64)
    shifts = np.arange(ndigits - 1, -1, -1, dtype=np.uint64) * np.uint64(4)
    nibbles = ((v[:, None] >> shifts[None, :]) & np.uint64(15)).astype(np.uint8)
    chars = _HEX[nibbles]
    raw = np.ascontiguousarray(chars).view(f"S{ndigits}").ravel()
    arr = single(pa.array(raw, type=pa.binary()).cast(pa.string()))
    return cat(prefix, arr) if prefix else arr


def pattern_str(rng: np.random.Generator, pattern: str, n: int) -> pa.Array:
    """Random strings following a pattern where 9 is a digit and A an upper-case letter."""
    out = np.empty((n, len(pattern)), dtype=np.uint8)
    for i, ch in enumerate(pattern):
        if ch == "9":
            out[:, i] = rng.integers(48, 58, n)
        elif ch == "A":
            out[:, i] = rng.integers(65, 91, n)
        else:
            out[:, i] = ord(ch)
    raw = np.ascontiguousarray(out).view(f"S{len(pattern)}").ravel()
    return single(pa.array(raw, type=pa.binary()).cast(pa.string()))


def dotted_ip(ip: np.ndarray) -> pa.Array:
    """32-bit integers to dotted-quad IPv4 strings."""
    ip = np.asarray(ip, dtype=np.uint32).astype(np.int64)
    octets = [num_str((ip >> s) & 255) for s in (24, 16, 8, 0)]
    return pc.binary_join_element_wise(*octets, ".")


def pick(options: list[str], idx: np.ndarray) -> pa.Array:
    """Vectorised ``options[idx]`` into an Arrow string array."""
    return pa.array(options, type=pa.string()).take(pa.array(np.asarray(idx, dtype=np.int32)))


def map_values(values: np.ndarray, mapping: dict) -> np.ndarray:
    """Vectorised dictionary lookup (``mapping[v]`` for each element)."""
    uniq, inv = np.unique(np.asarray(values), return_inverse=True)
    return np.array([mapping[u] for u in uniq.tolist()])[inv]


def splitmix64(x: np.ndarray) -> np.ndarray:
    """Stateless 64-bit mixer: stable pseudo-hashes (instrument fingerprints) from integers."""
    z = np.asarray(x, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))
