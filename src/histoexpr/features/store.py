"""The feature store: one HDF5 file per slide, ``coords`` + ``features`` + attributes.

The layout CLAM/TRIDENT-style tools read: datasets ``coords`` ``(N, 2)`` int64 (level-0
top-left corners) and ``features`` ``(N, D)`` float32; attributes say how the features were
made (encoder card, tile spec, slide path, histoexpr version; dicts and lists stored as
JSON). :func:`save_features` writes a file atomically (:mod:`histoexpr.atomic`: a full disk
leaves no partial file); :func:`load_features` and :func:`read_feature_attrs` read it back;
:func:`feature_files` lists a folder of them.

Examples
--------
>>> import tempfile, os
>>> p = save_features(os.path.join(tempfile.mkdtemp(), "s.h5"), np.zeros((2, 2)),
...                   np.ones((2, 4)), {"encoder": {"name": "toy"}})
>>> read_feature_attrs(p)["encoder"], list(feature_files(p.parent))
({'name': 'toy'}, ['s'])
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .. import _keys as K
from ..atomic import atomic_path, dumps
from ..errors import InputError

__all__ = ["feature_files", "load_features", "read_feature_attrs", "save_features"]


def save_features(path: str | Path, coords: np.ndarray, features: np.ndarray,
                  attrs: dict[str, Any] | None = None) -> Path:
    """Write ``coords`` + ``features`` (+ attributes) to HDF5 atomically.

    Dict and list attributes are stored as JSON (strict: NaN becomes ``null``); ``None``
    ones are left out (read back as absent). The file appears whole or not at all: a full
    disk or read-only folder raises :class:`~histoexpr.errors.OutputError` and leaves no
    partial file behind.

    Examples
    --------
    >>> import tempfile, os
    >>> p = save_features(os.path.join(tempfile.mkdtemp(), "s.h5"), np.zeros((2, 2)),
    ...                   np.ones((2, 4)))
    >>> load_features(p)[1].shape
    (2, 4)
    """
    with atomic_path(path) as tmp:
        _write_h5(tmp, coords, features, attrs or {})
    return Path(path)


def _write_h5(path: Path, coords: np.ndarray, features: np.ndarray,
              attrs: dict[str, Any]) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset(K.H5_COORDS, data=np.asarray(coords, np.int64))
        f.create_dataset(K.H5_FEATURES, data=np.asarray(features, np.float32))
        for k, v in attrs.items():
            if v is None:
                continue
            f.attrs[k] = dumps(v, indent=None) if isinstance(v, dict | list) else v


def _decode_attrs(attrs: Any) -> dict[str, Any]:
    out = {}
    for k, v in attrs.items():
        if isinstance(v, str) and v[:1] in "{[":
            v = json.loads(v)
        out[k] = v.item() if isinstance(v, np.generic) else v
    return out


def read_feature_attrs(path: str | Path) -> dict[str, Any]:
    """The attributes of a feature file (JSON values decoded), without reading its arrays."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return _decode_attrs(f.attrs)
    except OSError as e:
        raise InputError(f"{path}: not a feature file ({e}); run `histoexpr embed`") from e


def load_features(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """``(coords, features, attrs)`` from :func:`save_features`."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return f[K.H5_COORDS][:], f[K.H5_FEATURES][:], _decode_attrs(f.attrs)
    except (OSError, KeyError) as e:
        raise InputError(f"{path}: not a feature file ({e}); run `histoexpr embed`") from e


def feature_files(features_dir: str | Path) -> dict[str, Path]:
    """``{slide name: path}`` of the ``*.h5`` feature files in a folder (sorted).

    Raises :class:`InputError` when the folder is missing or holds no ``.h5`` file.
    """
    d = Path(features_dir)
    if not d.is_dir():
        raise InputError(f"{d}: no such feature folder; run `histoexpr embed` to make one")
    files = {p.stem: p for p in sorted(d.glob("*.h5")) if not p.name.startswith(".")}
    if not files:
        raise InputError(f"{d}: no .h5 feature files; run `histoexpr embed --out {d}` first")
    return files
