"""Patch filters: decide from pixels which sampled tiles to keep.

- :func:`white_fraction` / :func:`white_filter` — drop tiles with more than half white
  pixels (BrST-Net, seed 003).
- :class:`KMeansPatchFilter` — k = 3 clustering of patch colour statistics into background,
  tissue and artefacts, keeping the tissue cluster (seed 000); fitted once on a slide or a
  cohort, saved as JSON and reused.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ..atomic import write_json
from ..errors import HistoexprError, InputError

logger = logging.getLogger(__name__)

__all__ = [
    "KMeansPatchFilter",
    "is_he_colour",
    "patch_colour_stats",
    "white_filter",
    "white_fraction",
]

#: a pixel is white when all three channels exceed this
WHITE_LEVEL = 220


def _check_batch(batch: np.ndarray) -> np.ndarray:
    b = np.asarray(batch)
    if b.ndim == 3:
        b = b[None]
    if b.ndim != 4 or b.shape[-1] != 3:
        raise InputError(f"expected tiles as (N, H, W, 3), got shape {b.shape}")
    return b


def white_fraction(batch: np.ndarray, *, level: int = WHITE_LEVEL) -> np.ndarray:
    """Fraction of white pixels (all channels > ``level``) in each tile; ``(N,)``.

    Examples
    --------
    >>> t = np.zeros((1, 4, 4, 3), np.uint8); t[0, :2] = 255
    >>> white_fraction(t)
    array([0.5])
    """
    b = _check_batch(batch)
    return (b > level).all(axis=-1).mean(axis=(1, 2))


def white_filter(batch: np.ndarray, *, max_white: float = 0.5) -> np.ndarray:
    """Boolean keep-mask: tiles with at most ``max_white`` white pixels."""
    return white_fraction(batch) <= max_white


#: tiles per pass of :func:`patch_colour_stats` (its float64 HSV copy is ~100 KB a tile
#: at 64 px: 512 tiles keep it near 50 MB whatever the batch)
STATS_CHUNK = 512


def patch_colour_stats(batch: np.ndarray) -> np.ndarray:
    """Per-tile colour statistics, ``(N, 9)``: RGB means, RGB standard deviations and the
    mean HSV saturation, value and (circular) hue-cosine — what separates glass, H&E
    tissue and pen, ink or blur artefacts. Computed :data:`STATS_CHUNK` tiles at a time."""
    batch = _check_batch(batch)
    if len(batch) > STATS_CHUNK:
        return np.concatenate([patch_colour_stats(batch[i:i + STATS_CHUNK])
                               for i in range(0, len(batch), STATS_CHUNK)])
    from skimage.color import rgb2hsv

    b = batch.astype(np.float32) / 255.0
    mean = b.mean(axis=(1, 2))
    std = b.std(axis=(1, 2))
    hsv = rgb2hsv(b.reshape(-1, b.shape[2], 3)).reshape(b.shape)
    sat = hsv[..., 1].mean(axis=(1, 2))
    val = hsv[..., 2].mean(axis=(1, 2))
    hue = np.cos(2 * np.pi * hsv[..., 0]).mean(axis=(1, 2))
    return np.column_stack([mean, std, sat, val, hue]).astype(np.float64)


def is_he_colour(mean_rgb: np.ndarray) -> np.ndarray:
    """Whether mean RGB colours (0–1) look like H&E tissue: not glass, not black, and pink to
    purple (red and blue above green), unlike green/blue/black pen and ink."""
    m = np.atleast_2d(mean_rgb)
    r, g, b = m[:, 0], m[:, 1], m[:, 2]
    brightness = m.mean(axis=1)
    return (brightness < 0.86) & (brightness > 0.2) & (r - g > 0.04) & (b - g > -0.02)


class KMeansPatchFilter:
    """K-means (k = 3) patch filter of seed 000 on :func:`patch_colour_stats`.

    Seed 000 clusters patches into background, tissue and artefacts and keeps the tissue
    class. Which cluster is tissue is decided from the cluster centres' colour
    (:func:`is_he_colour`); every H&E-coloured cluster is kept, so a cohort without
    artefacts does not lose a third of its tissue to an arbitrary split. When no centre
    looks like H&E, the darkest non-background cluster is kept and a warning logged.

    Parameters
    ----------
    n_clusters
        k (3 in the seed).
    random_state
        Seed for k-means.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> tiles = np.concatenate([np.full((20, 8, 8, 3), (240, 240, 240), np.uint8),
    ...                         np.full((20, 8, 8, 3), (200, 110, 180), np.uint8),
    ...                         np.full((20, 8, 8, 3), (40, 120, 60), np.uint8)])
    >>> f = KMeansPatchFilter(random_state=0).fit(tiles)
    >>> f.predict(tiles).reshape(3, 20).all(axis=1).tolist()
    [False, True, False]
    """

    def __init__(self, *, n_clusters: int = 3, random_state: int = 0) -> None:
        self.n_clusters = n_clusters
        self.random_state = random_state

    def fit(self, batch: np.ndarray | None = None, *, stats: np.ndarray | None = None):
        """Fit on tiles (or precomputed :func:`patch_colour_stats`); returns ``self``."""
        from sklearn.cluster import KMeans

        x = patch_colour_stats(batch) if stats is None else np.asarray(stats, np.float64)
        if len(x) < self.n_clusters:
            raise InputError(
                f"the K-means patch filter needs at least {self.n_clusters} tiles to fit, "
                f"got {len(x)}"
            )
        self.mean_ = x.mean(axis=0)
        self.scale_ = x.std(axis=0)
        self.scale_[self.scale_ == 0] = 1.0
        km = KMeans(self.n_clusters, n_init=10, random_state=self.random_state)
        km.fit((x - self.mean_) / self.scale_)
        self.centers_ = km.cluster_centers_ * self.scale_ + self.mean_  # in stats units
        self.keep_ = self._tissue_clusters(self.centers_)
        self.n_fit_ = len(x)
        return self

    @staticmethod
    def _tissue_clusters(centers: np.ndarray) -> np.ndarray:
        he = is_he_colour(centers[:, :3])
        if he.any():
            return np.flatnonzero(he)
        bright = centers[:, :3].mean(axis=1)
        order = np.argsort(bright)  # darkest first; the brightest is glass
        logger.warning(
            "K-means patch filter: no cluster centre looks like H&E; keeping the darkest "
            "non-background cluster"
        )
        return order[:1] if len(order) == 1 else order[-2:-1]

    def _check(self) -> None:
        if not hasattr(self, "centers_"):
            raise HistoexprError("KMeansPatchFilter is not fitted: call fit(tiles) or load()")

    def labels(self, batch: np.ndarray | None = None, *, stats: np.ndarray | None = None):
        """Cluster of each tile (nearest centre in standardised statistics)."""
        self._check()
        x = patch_colour_stats(batch) if stats is None else np.asarray(stats, np.float64)
        z = (x - self.mean_) / self.scale_
        zc = (self.centers_ - self.mean_) / self.scale_
        d = ((z[:, None, :] - zc[None]) ** 2).sum(-1)
        return d.argmin(axis=1)

    def predict(self, batch: np.ndarray | None = None, *, stats: np.ndarray | None = None):
        """Boolean keep-mask: tiles in a tissue cluster."""
        return np.isin(self.labels(batch, stats=stats), self.keep_)

    def to_dict(self) -> dict[str, object]:
        self._check()
        return {
            "kind": "kmeans_patch_filter",
            "n_clusters": self.n_clusters,
            "random_state": self.random_state,
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
            "centers": self.centers_.tolist(),
            "keep": self.keep_.tolist(),
            "n_fit": self.n_fit_,
        }

    def save(self, path: str | Path) -> Path:
        """Write the fitted filter as JSON (atomically), to reuse on other slides."""
        return write_json(path, self.to_dict(), indent=1)

    @classmethod
    def load(cls, path: str | Path) -> KMeansPatchFilter:
        path = Path(path)
        try:
            d = json.loads(path.read_text())
            f = cls(n_clusters=int(d["n_clusters"]), random_state=int(d["random_state"]))
            f.mean_ = np.asarray(d["mean"], np.float64)
            f.scale_ = np.asarray(d["scale"], np.float64)
            f.centers_ = np.asarray(d["centers"], np.float64)
            f.keep_ = np.asarray(d["keep"], np.int64)
            f.n_fit_ = int(d["n_fit"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(
                f"{path}: not a saved K-means patch filter ({e}); delete it to refit"
            ) from e
        return f
