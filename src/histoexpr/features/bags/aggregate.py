"""Slide-level summaries of tile features for the bulk-expression models.

- :func:`pool` — mean / max / median over a slide's tiles (hist2RNA uses the mean,
  seed 002 the mean and median, seed 000 mean or max over its patches).
- :func:`supertiles` — HE2RNA: k-means on tile *coordinates* into 100 clusters, mean
  feature per cluster.
"""

from __future__ import annotations

import numpy as np

from ...errors import InputError

__all__ = ["POOLINGS", "pool", "supertiles"]

POOLINGS = ("mean", "max", "median")


def pool(features: np.ndarray, how: str = "mean") -> np.ndarray:
    """Pool ``(N, D)`` tile features into one ``(D,)`` slide vector.

    Examples
    --------
    >>> pool(np.array([[1.0, 4.0], [3.0, 0.0]]), "max").tolist()
    [3.0, 4.0]
    """
    f = np.asarray(features, np.float32)
    if f.ndim != 2 or len(f) == 0:
        raise InputError(f"expected (N, D) features with N >= 1, got shape {f.shape}")
    if how == "mean":
        return f.mean(axis=0)
    if how == "max":
        return f.max(axis=0)
    if how == "median":
        return np.median(f, axis=0)
    raise InputError(f"unknown pooling {how!r}; choose one of {', '.join(POOLINGS)}")


def supertiles(
    coords: np.ndarray, features: np.ndarray, *, n_clusters: int = 100, random_state: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """HE2RNA supertiles: cluster tiles by position, average features per cluster.

    Returns ``(features (K, D), labels (N,))`` with ``K = min(n_clusters, N)``; clusters are
    ordered by their first tile so the result does not depend on k-means' label order.

    Examples
    --------
    >>> c = np.array([[0, 0], [1, 0], [100, 100], [101, 100]])
    >>> f = np.array([[1.0], [3.0], [10.0], [20.0]])
    >>> supertiles(c, f, n_clusters=2)[0].ravel().tolist()
    [2.0, 15.0]
    """
    from sklearn.cluster import KMeans

    c = np.asarray(coords, np.float64).reshape(-1, 2)
    f = np.asarray(features, np.float32)
    if len(c) != len(f) or len(c) == 0:
        raise InputError(f"coords ({len(c)}) and features ({len(f)}) must match and be non-empty")
    k = min(n_clusters, len(c))
    if k == len(c):
        labels = np.arange(len(c))
    else:
        labels = KMeans(k, n_init=3, random_state=random_state).fit_predict(c)
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(first)
    remap = np.empty(k, np.int64)
    remap[np.unique(labels)[order]] = np.arange(k)
    labels = remap[labels]
    out = np.zeros((k, f.shape[1]), np.float32)
    np.add.at(out, labels, f)
    out /= np.bincount(labels, minlength=k)[:, None]
    return out, labels
