"""Checksums of in-memory inputs (a run records them beside the files' SHA-256, so that a
resume with other data is refused just as with another file).

Examples
--------
>>> import numpy as np, pandas as pd
>>> a = arrays_sha256([np.zeros((2, 3), np.float32)], "genes")
>>> a == arrays_sha256([np.zeros((2, 3), np.float32)], "genes"), len(a)
(True, 64)
>>> a == arrays_sha256([np.zeros((3, 2), np.float32)], "genes")   # the shape counts
False
>>> frame_sha256(pd.DataFrame({"A": [1.0]}, index=["s"])) == frame_sha256(
...     pd.DataFrame({"B": [1.0]}, index=["s"]))
False
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["arrays_sha256", "frame_sha256"]


def arrays_sha256(arrays: Iterable[Any], *texts: str) -> str:
    """SHA-256 over each array's dtype, shape and bytes (sparse: its CSR parts), then
    ``texts``."""
    import scipy.sparse as sp

    h = hashlib.sha256()
    for a in arrays:
        parts = ((a.tocsr().data, a.tocsr().indices, a.tocsr().indptr) if sp.issparse(a)
                 else (np.asarray(a),))
        for p in parts:
            p = np.ascontiguousarray(p)
            h.update(f"{p.dtype.str}{p.shape}".encode())
            h.update(p.tobytes())
    for t in texts:
        h.update(t.encode())
    return h.hexdigest()


def frame_sha256(df: Any) -> str:
    """SHA-256 of a table's values, row names and column names."""
    return arrays_sha256([df.to_numpy()], "\n".join(map(str, df.index)),
                         "\n".join(map(str, df.columns)))
