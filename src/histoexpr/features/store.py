"""The feature store: one HDF5 file per slide, ``coords`` + ``features`` + attributes.

The layout CLAM/TRIDENT-style tools read: datasets ``coords`` ``(N, 2)`` int64 (level-0
top-left corners) and ``features`` ``(N, D)`` float32, so their files are read too
(:func:`load_features`: TRIDENT's magnification and encoder folder become the tile µm/px and
the encoder); attributes say how the features were
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


#: TRIDENT's patch-encoder names (its ``features_<name>/`` folders) -> the cards here
TRIDENT_ENCODERS = {"uni_v1": "uni", "uni_v2": "uni2", "conch_v1": "conch",
                    "virchow": "virchow", "virchow2": "virchow2", "hoptimus0": "h_optimus_0",
                    "gigapath": "gigapath", "phikon": "phikon", "resnet50": "resnet50"}


def _foreign_attrs(f: Any, path: Path, attrs: dict[str, Any]) -> dict[str, Any]:
    """A TRIDENT or CLAM feature file's attributes in this package's terms.

    Both keep the tile geometry on the ``coords`` dataset (``patch_size``; TRIDENT also
    ``patch_size_level0`` and ``target_magnification``, CLAM ``patch_level`` and
    ``downsample``) and record the encoder only in the folder name (TRIDENT:
    ``features_<encoder>/``). The tile µm/px is read off the magnification (10 µm/px at 1x:
    0.5 at 20x); CLAM files record none, so commands that must check it refuse them by name.
    A file this package wrote (``tile_spec`` or ``encoder`` at the root) is returned as is.
    """
    if "tile_spec" in attrs or "encoder" in attrs or K.H5_COORDS not in f:
        return attrs
    c = _decode_attrs(f[K.H5_COORDS].attrs)
    if not c:
        return attrs
    out = {**c, **attrs}
    out["format"] = "trident" if {"patch_size_level0", "target_magnification"} & set(c) \
        else "clam"
    mag = c.get("target_magnification")
    if isinstance(mag, (int, float)) and mag > 0 and K.ATTR_MPP not in out:
        out[K.ATTR_MPP] = 10.0 / float(mag)
    folder = path.parent.name
    if folder.startswith("features_"):
        name = folder.removeprefix("features_")
        out["encoder"] = {"name": TRIDENT_ENCODERS.get(name, name), "recorded_as": name}
    size = c.get(K.ATTR_PATCH_SIZE)
    if size and out.get(K.ATTR_MPP):
        out["tile_spec"] = {"size_px": int(size), "mpp": float(out[K.ATTR_MPP])}
    return out


def read_feature_attrs(path: str | Path) -> dict[str, Any]:
    """The attributes of a feature file (JSON values decoded), without reading its arrays;
    TRIDENT and CLAM files are translated (:func:`_foreign_attrs`)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return _foreign_attrs(f, Path(path), _decode_attrs(f.attrs))
    except OSError as e:
        raise InputError(f"{path}: not a feature file ({e}); run `histoexpr embed`") from e


def load_features(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """``(coords, features, attrs)`` from :func:`save_features`, or from a TRIDENT / CLAM
    feature file (``coords`` and ``features`` datasets; a leading batch axis of 1, as some
    tools write, is dropped; its attributes translated by :func:`_foreign_attrs`)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            coords, feats = f[K.H5_COORDS][:], f[K.H5_FEATURES][:]
            attrs = _foreign_attrs(f, Path(path), _decode_attrs(f.attrs))
    except (OSError, KeyError) as e:
        raise InputError(f"{path}: not a feature file ({e}); run `histoexpr embed`, or give "
                         "a TRIDENT / CLAM .h5 with `coords` and `features`") from e
    if feats.ndim == 3 and feats.shape[0] == 1:
        feats = feats[0]
    if coords.ndim == 3 and coords.shape[0] == 1:
        coords = coords[0]
    if feats.ndim != 2 or coords.shape != (len(feats), 2):
        raise InputError(f"{path}: features {feats.shape} and coords {coords.shape} do not "
                         "pair up as (N, D) and (N, 2)")
    if attrs.get("format") in ("trident", "clam"):
        coords = np.asarray(coords).astype(np.int64)
        feats = np.asarray(feats, np.float32)
    return coords, feats, attrs


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
