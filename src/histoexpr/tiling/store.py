"""Per-slide coordinate files in the CLAM/TRIDENT HDF5 layout.

One file per slide: dataset ``coords`` (N x 2 int64, level-0 top-left ``x, y``) with the
tile geometry and provenance as attributes, so CLAM/TRIDENT-style tools and our own feature
extraction read the same file. Writes are atomic (:func:`histoexpr.atomic.atomic_path`): an
interrupted run, a full disk or a read-only folder never leaves a half-written file that a
resumed run would trust.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import _keys as K
from ..atomic import atomic_path
from ..errors import InputError

__all__ = ["load_coords", "save_coords"]


def save_coords(path: str | Path, coords: np.ndarray, attrs: dict[str, Any]) -> Path:
    """Write ``coords`` and ``attrs`` to ``path`` atomically; returns the path.

    Examples
    --------
    >>> import tempfile, os
    >>> p = save_coords(os.path.join(tempfile.mkdtemp(), "s.h5"), np.zeros((2, 2)),
    ...                 {"patch_size": 224})
    >>> load_coords(p)[0].dtype
    dtype('int64')
    """
    import h5py

    path = Path(path)
    c = np.asarray(coords).reshape(-1, 2).astype(np.int64)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        ds = f.create_dataset(K.H5_COORDS, data=c, maxshape=(None, 2))
        for k, v in attrs.items():
            ds.attrs[k] = "" if v is None else v
    return path


def load_coords(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Read ``(coords, attrs)`` back from :func:`save_coords` (or a CLAM patch file)."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            ds = f[K.H5_COORDS]
            attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in ds.attrs.items()}
            return np.asarray(ds[:], np.int64), attrs
    except (OSError, KeyError) as e:
        raise InputError(
            f"{path}: not a coordinates file ({e}); run `histoexpr tile` to make it"
        ) from e
