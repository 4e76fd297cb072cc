"""Embeddings as stored in ``detections.embedding``: float16 values, little-endian."""

from __future__ import annotations

import numpy as np

from trapgui.core.errors import UserInputError

STORED_DTYPE = np.dtype("<f2")


def encode_embedding(vector) -> bytes:
    """A 1-D vector as float16 little-endian bytes (2 bytes a value)."""
    values = np.asarray(vector, dtype=np.float32).reshape(-1)
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise UserInputError("An embedding must be a non-empty vector of finite numbers.")
    if np.abs(values).max() > np.finfo(np.float16).max:
        raise UserInputError("An embedding has values too large for float16; normalise it first.")
    return values.astype(STORED_DTYPE).tobytes()


def decode_embedding(data: bytes | None) -> np.ndarray | None:
    """The stored bytes as a float32 vector; None for None/empty."""
    if not data:
        return None
    if len(data) % STORED_DTYPE.itemsize:
        raise UserInputError(f"A stored embedding has {len(data)} bytes, which is not a whole "
                             "number of float16 values: the catalogue entry is damaged.")
    return np.frombuffer(data, dtype=STORED_DTYPE).astype(np.float32)
