"""Spot and gene preprocessing for spatial expression (seed 003, BrST-Net), as pure functions.

- :func:`spot_mask`: spots with at least ``min_counts`` total counts (1000 in the seed);
- :func:`expressed_genes`: genes whose mean count is above zero;
- :func:`normalise`: counts per 10k then ``log1p`` (or ``log2(1 + x)``);
- :class:`GeneSelector`: the top-N genes by mean (250 in the seed) or top-N highly variable
  genes, *fitted on the training spots only* and then applied unchanged to the test spots,
  so the gene panel never sees the evaluation fold.

Arrays are ``(spots, genes)``; dense NumPy or SciPy sparse counts are accepted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["GENE_SELECTIONS", "GeneSelector", "dense", "expressed_genes", "normalise",
           "spot_mask"]

#: gene-selection methods of :class:`GeneSelector`
GENE_SELECTIONS = ("top_mean", "hvg")


def dense(x: Any, dtype: Any = np.float64) -> np.ndarray:
    """A matrix (scipy sparse or array-like) as a dense array of ``dtype``."""
    return np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=dtype)


def _row_sums(x: Any) -> np.ndarray:
    return np.asarray(x.sum(axis=1)).ravel().astype(np.float64)


def spot_mask(counts: Any, *, min_counts: float = 1000) -> np.ndarray:
    """Boolean mask of spots whose total count is at least ``min_counts``.

    Examples
    --------
    >>> spot_mask(np.array([[600, 500], [10, 20]]), min_counts=1000).tolist()
    [True, False]
    """
    return _row_sums(counts) >= min_counts


def expressed_genes(counts: Any) -> np.ndarray:
    """Boolean mask of genes with a mean count above zero (seed 003's gene filter).

    Examples
    --------
    >>> expressed_genes(np.array([[0, 3], [0, 1]])).tolist()
    [False, True]
    """
    return np.asarray(counts.mean(axis=0)).ravel() > 0


def normalise(counts: Any, *, target_sum: float | None = 1e4, log: str = "log1p"
              ) -> np.ndarray:
    """Counts per ``target_sum`` per spot, then ``log1p`` (natural) or ``log2`` (``log2(1+x)``).

    Spots with no counts stay zero. ``target_sum`` 0 (or ``None``): no scaling, the raw
    counts are transformed. Returns dense float32 ``(spots, genes)``.

    Examples
    --------
    >>> normalise(np.array([[1, 1], [0, 0]]), target_sum=2, log="log2").tolist()
    [[1.0, 1.0], [0.0, 0.0]]
    """
    if log not in ("log1p", "log2", "none"):
        raise InputError(f"log must be 'log1p', 'log2' or 'none', got {log!r}")
    x = dense(counts)
    if np.isnan(x).any() or (x < 0).any():
        raise InputError("counts contain NaN or negative values; give raw counts")
    if target_sum:
        totals = x.sum(axis=1, keepdims=True)
        x = np.divide(x * target_sum, totals, out=np.zeros_like(x), where=totals > 0)
    if log == "log1p":
        x = np.log1p(x)
    elif log == "log2":
        x = np.log2(1.0 + x)
    return x.astype(np.float32)


def _hvg_scores(log_expr: np.ndarray, n_bins: int = 20) -> np.ndarray:
    """Seurat-style normalised dispersion: variance / mean of the de-logged expression,
    z-scored within bins of mean expression (genes alone in a bin score their raw log
    dispersion)."""
    expr = np.expm1(log_expr.astype(np.float64))
    mean = expr.mean(axis=0)
    var = expr.var(axis=0, ddof=1) if len(expr) > 1 else np.zeros_like(mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        disp = np.log(np.where(mean > 0, var / np.where(mean > 0, mean, 1), np.nan))
        log_mean = np.log1p(mean)
    edges = np.linspace(log_mean.min(), log_mean.max() + 1e-12, n_bins + 1)
    bins = np.clip(np.digitize(log_mean, edges) - 1, 0, n_bins - 1)
    score = np.full_like(disp, np.nan)
    for b in np.unique(bins):
        idx = np.flatnonzero((bins == b) & np.isfinite(disp))
        if len(idx) == 0:
            continue
        d = disp[idx]
        sd = d.std(ddof=1) if len(idx) > 1 else 0.0
        score[idx] = (d - d.mean()) / sd if sd > 0 else d
    return score


class GeneSelector:
    """Choose ``n`` genes on training spots; apply the same panel to any other spots.

    Parameters
    ----------
    method
        ``"top_mean"``: highest mean normalised expression (seed 003's top 250);
        ``"hvg"``: highest Seurat-style normalised dispersion.
    n
        Number of genes to keep (all of them when fewer exist).
    genes
        An explicit panel instead of a data-driven choice; every name must exist.

    Attributes
    ----------
    genes_ : list of str
        The chosen genes, best first.
    index_ : ndarray of int
        Their columns in the ``var_names`` seen by :meth:`fit`.

    Examples
    --------
    >>> x = np.array([[1.0, 5.0, 0.1], [2.0, 6.0, 0.2]])
    >>> GeneSelector(n=2).fit(x, ["a", "b", "c"]).genes_
    ['b', 'a']
    """

    def __init__(self, *, method: str = "top_mean", n: int = 250,
                 genes: Sequence[str] | None = None) -> None:
        if method not in GENE_SELECTIONS:
            raise InputError(f"unknown gene selection {method!r}; choose one of: "
                             f"{', '.join(GENE_SELECTIONS)}")
        if int(n) < 1:
            raise InputError(f"n must be at least 1, got {n!r}")
        self.method, self.n = method, int(n)
        self.genes = list(genes) if genes is not None else None

    def fit(self, log_expr: Any, var_names: Sequence[str]) -> GeneSelector:
        """Choose the genes from normalised expression of the *training* spots."""
        names = [str(g) for g in var_names]
        x = dense(log_expr)
        if x.shape[1] != len(names):
            raise InputError(f"expression has {x.shape[1]} genes but {len(names)} names")
        if self.genes is not None:
            where = {g: i for i, g in enumerate(names)}
            missing = [g for g in self.genes if g not in where]
            if missing:
                raise InputError(
                    f"{len(missing)} of {len(self.genes)} requested genes are not in the data "
                    f"(e.g. {', '.join(missing[:5])}); check the symbols or drop them"
                )
            self.index_ = np.array([where[g] for g in self.genes], dtype=int)
        else:
            score = x.mean(axis=0) if self.method == "top_mean" else _hvg_scores(x)
            score = np.where(np.isfinite(score), score, -np.inf)
            order = np.argsort(-score, kind="stable")
            self.index_ = order[: min(self.n, len(names))]
        self.genes_ = [names[i] for i in self.index_]
        return self

    def transform(self, log_expr: Any) -> np.ndarray:
        """The chosen columns, in the order of :attr:`genes_`."""
        if not hasattr(self, "index_"):
            raise InputError("GeneSelector is not fitted; call fit() on the training spots")
        return dense(log_expr)[:, self.index_].astype(np.float32)

    def rest(self, n_genes: int) -> np.ndarray:
        """Columns *not* chosen (the auxiliary head's targets in seed 003)."""
        if not hasattr(self, "index_"):
            raise InputError("GeneSelector is not fitted; call fit() on the training spots")
        keep = np.ones(n_genes, bool)
        keep[self.index_] = False
        return np.flatnonzero(keep)

    def to_dict(self) -> dict[str, Any]:
        """What a run folder records: the method, ``n`` and the chosen genes."""
        return {"method": self.method, "n": self.n, "genes": list(getattr(self, "genes_", []))}
