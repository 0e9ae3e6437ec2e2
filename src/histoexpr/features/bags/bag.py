"""Bags: one slide's tile features, the input of every bulk-expression model.

A :class:`Bag` holds a slide's ``(N, D)`` tile features and their level-0 ``(N, 2)``
coordinates, read from the feature store (``features/<slide>.h5`` as ``histoexpr embed``
writes it; :mod:`histoexpr.features.store`). Bulk models take a *list of bags* as ``X``
(plain ``(N, D)`` arrays are accepted too, see :func:`as_bags`) and one expression row per
bag as ``y``. Which tiles go in a bag is chosen when it is read (:mod:`.select`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError
from ..store import feature_files, load_features
from .select import select_tiles, tile_scores

__all__ = [
    "Bag",
    "BagSet",
    "as_bags",
    "bag_encoder",
    "load_bag",
    "load_bags",
    "stack_padded",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Bag:
    """One slide's tiles: ``features (N, D)`` float32, ``coords (N, 2)`` level-0 int64."""

    slide: str
    features: np.ndarray = field(repr=False)
    coords: np.ndarray = field(repr=False)
    source: str | None = None  # the feature file it came from
    encoder: str | None = None

    def __post_init__(self) -> None:
        f = np.asarray(self.features, np.float32)
        if f.ndim != 2 or len(f) == 0:
            raise InputError(f"bag {self.slide!r}: features must be (N, D) with N >= 1, "
                             f"got shape {f.shape}")
        c = np.asarray(self.coords, np.int64).reshape(-1, 2)
        if len(c) != len(f):
            raise InputError(f"bag {self.slide!r}: {len(c)} coords for {len(f)} tiles")
        object.__setattr__(self, "features", f)
        object.__setattr__(self, "coords", c)

    def __len__(self) -> int:
        return len(self.features)

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    def take(self, index: np.ndarray) -> Bag:
        """The bag restricted to the tiles ``index`` (in that order)."""
        index = np.asarray(index, np.int64)
        return Bag(self.slide, self.features[index], self.coords[index], self.source,
                   self.encoder)


def _grid_coords(n: int) -> np.ndarray:
    side = int(np.ceil(np.sqrt(max(n, 1))))
    return np.stack([np.arange(n) % side, np.arange(n) // side], 1).astype(np.int64)


def as_bags(X: Any) -> list[Bag]:
    """``X`` as a list of :class:`Bag`: bags pass through; ``(N, D)`` arrays become bags with
    grid coordinates; a 3-D array ``(n_bags, N, D)`` is split along its first axis.

    Raises :class:`InputError` on an empty input, a non-2-D bag or bags of different ``D``.

    Examples
    --------
    >>> bags = as_bags([np.ones((3, 4)), np.zeros((5, 4))])
    >>> [len(b) for b in bags], bags[0].dim
    ([3, 5], 4)
    """
    if isinstance(X, Bag):
        X = [X]
    if isinstance(X, np.ndarray) and X.dtype != object:
        if X.ndim != 3:
            raise InputError(f"bags as one array must be (n_bags, N, D), got shape {X.shape}")
        X = list(X)
    bags = []
    for i, x in enumerate(X):
        if isinstance(x, Bag):
            bags.append(x)
        else:
            a = np.asarray(x, np.float32)
            if a.ndim == 1:
                a = a[None, :]
            bags.append(Bag(str(i), a, _grid_coords(len(a))))
    if not bags:
        raise InputError("no bags: X is empty")
    dims = {b.dim for b in bags}
    if len(dims) > 1:
        raise InputError(f"bags have different feature sizes {sorted(dims)}; were they made "
                         "with different encoders?")
    return bags


def bag_encoder(attrs: Mapping[str, Any]) -> str | None:
    """The encoder name recorded in a feature file's attributes (card dict or plain name)."""
    enc = attrs.get("encoder")
    if isinstance(enc, Mapping):
        return str(enc.get("name")) if enc.get("name") is not None else None
    return None if enc in (None, "") else str(enc)

def load_bag(
    path: str | Path,
    *,
    select: str = "all",
    n: int | None = None,
    heatmaps: str | Path | None = None,
    seed: int = 0,
    slide: str | None = None,
) -> Bag:
    """Read one feature file into a :class:`Bag`, keeping the tiles :func:`select_tiles` picks."""
    path = Path(path)
    coords, feats, attrs = load_features(path)
    name = slide or path.stem
    if len(feats) == 0:
        raise InputError(f"{path}: the feature file has no tiles; re-tile the slide")
    if not np.isfinite(feats).all():
        raise InputError(f"{path}: features contain NaN or infinity; re-embed the slide")
    scores = None
    if select == "top":
        if heatmaps is None:
            raise InputError("tile selection 'top' needs --heatmaps DIR (tumour heatmaps)")
        scores = tile_scores(heatmaps, name, coords, attrs, source=str(path))
    idx = select_tiles(len(feats), select, n=n, scores=scores, seed=seed, key=name)
    return Bag(name, feats[idx], coords[idx], str(path), bag_encoder(attrs))


@dataclass
class BagSet:
    """Bags read from a feature folder, the encoder that made them, and the skipped files."""

    bags: list[Bag]
    encoder: str | None
    skipped: dict[str, str] = field(default_factory=dict)  # slide -> reason

    def by_slide(self) -> dict[str, Bag]:
        return {b.slide: b for b in self.bags}


def load_bags(
    features_dir: str | Path,
    slides: Iterable[str] | None = None,
    *,
    select: str = "all",
    n: int | None = None,
    heatmaps: str | Path | None = None,
    seed: int = 0,
    encoder: str | None = None,
    skip_bad: bool = True,
) -> BagSet:
    """Read the bags of ``slides`` (default: every file) from a feature folder.

    Parameters
    ----------
    features_dir
        Folder of ``<slide>.h5`` feature files.
    slides
        Slide names (file stems) to read; unknown names raise.
    select, n, heatmaps, seed
        Tile choice, see :func:`select_tiles` and :func:`tile_scores`.
    encoder
        The encoder the features must come from (a model's, at predict time); a file made
        with another encoder raises. ``None`` requires only that all files agree.
    skip_bad
        Log and skip unreadable files (listed in ``skipped``) instead of raising.

    Raises
    ------
    InputError
        A missing folder or slide, files from different encoders or from another encoder
        than ``encoder``, different feature sizes, or no readable bag at all.

    Examples
    --------
    >>> import tempfile
    >>> from histoexpr.datasets.synthetic_bulk import synthetic_bulk
    >>> syn = synthetic_bulk(tempfile.mkdtemp(), n_slides=3, n_genes=3, n_signal=1)
    >>> bs = load_bags(syn.features_dir, select="random", n=5)
    >>> [len(b) for b in bs.bags], bs.encoder
    ([5, 5, 5], 'synthetic')
    """
    files = feature_files(features_dir)
    names = list(files) if slides is None else [str(s) for s in slides]
    unknown = [s for s in names if s not in files]
    if unknown:
        raise InputError(f"{features_dir}: no feature file for {len(unknown)} slide(s), e.g. "
                         f"{', '.join(unknown[:3])}; run `histoexpr embed` for them")
    bags, skipped = [], {}
    for name in names:
        try:
            bags.append(load_bag(files[name], select=select, n=n, heatmaps=heatmaps, seed=seed,
                                 slide=name))
        except InputError as e:
            if not skip_bad:
                raise
            logger.warning("skipping %s: %s", name, e)
            skipped[name] = str(e)
    if not bags:
        raise InputError(f"{features_dir}: none of {len(names)} feature files could be read "
                         f"(first error: {next(iter(skipped.values()), '?')})")
    encoders = {b.encoder for b in bags}
    if len(encoders) > 1:
        by = {e: [b.slide for b in bags if b.encoder == e][:2] for e in encoders}
        raise InputError(f"{features_dir}: feature files come from different encoders "
                         f"({by}); embed every slide with one encoder")
    found = encoders.pop()
    if encoder is not None and found is not None and found != encoder:
        raise InputError(f"{features_dir}: features were made with encoder {found!r} but the "
                         f"model was trained on {encoder!r} features; embed the slides with "
                         f"`histoexpr embed --encoder {encoder}`")
    as_bags(bags)  # same D everywhere
    return BagSet(bags, found, skipped)

def stack_padded(bags: Sequence[Bag]) -> tuple[np.ndarray, np.ndarray]:
    """``(features (B, Nmax, D), mask (B, Nmax) bool)``: bags zero-padded to the longest."""
    nmax = max(len(b) for b in bags)
    out = np.zeros((len(bags), nmax, bags[0].dim), np.float32)
    mask = np.zeros((len(bags), nmax), bool)
    for i, b in enumerate(bags):
        out[i, : len(b)] = b.features
        mask[i, : len(b)] = True
    return out, mask
