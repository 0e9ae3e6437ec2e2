"""Feature x gene association tests (seed 002, Methods 6.3.2 and Plan Q3).

Seed 002 takes the 500 most variable image features and the 2000 most variable transcripts
with mean expression above 1 (log RPKM), and tests every pair with a Pearson correlation;
the Plan then corrects for multiple testing and, on the residuals of the technical
confounders (:mod:`histoexpr.analysis.confounders`), reads effect sizes off a linear model of
expression on each feature. :func:`associate` does all of it in one vectorised pass:

- ``r`` and ``p``: Pearson (or Spearman: Pearson on ranks) with the p-value of
  :func:`scipy.stats.pearsonr`, for every feature x gene pair at once;
- ``slope``: the effect size of the simple linear model ``gene ~ feature``
  (``r * sd_gene / sd_feature``; its t-test p equals the correlation's p);
- ``q``: Benjamini-Hochberg FDR over *all* tested pairs
  (:func:`statsmodels.stats.multitest.multipletests`, ``fdr_bh``).

Constant columns and columns with NaN are dropped and counted before ranking by variance.

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> F = pd.DataFrame(rng.normal(size=(60, 3)), columns=["f0", "f1", "f2"])
>>> E = pd.DataFrame(rng.normal(size=(60, 4)), columns=list("ABCD"))
>>> E["B"] += 2 * F["f1"]
>>> tab = associate(F, E)
>>> tab.iloc[0][["feature", "gene"]].tolist(), bool(tab.iloc[0]["q"] < 0.05)
(['f1', 'B'], True)
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from .variance import drop_uninformative, pearson_matrix

logger = logging.getLogger(__name__)

__all__ = ["METHODS", "associate", "feature_summary", "top_varying"]

#: correlation methods of :func:`associate`
METHODS = ("pearson", "spearman")


def top_varying(
    X: Any, n: int | None, *, min_mean: float | None = None, what: str = "data"
) -> pd.DataFrame:
    """The ``n`` columns of highest variance (all when ``n`` is None or larger), in order of
    decreasing variance, after dropping constant/NaN columns and, with ``min_mean``, columns
    whose mean is not above it (seed 002: transcripts with mean log RPKM > 1).

    Examples
    --------
    >>> X = pd.DataFrame({"a": [0.0, 1, 2], "b": [0.0, 10, 20], "c": [5.0, 5, 6]})
    >>> list(top_varying(X, 2).columns), list(top_varying(X, 2, min_mean=4).columns)
    (['b', 'a'], ['b', 'c'])
    """
    df, _ = drop_uninformative(X, what=what)
    if min_mean is not None:
        keep = df.mean(axis=0) > min_mean
        if not keep.any():
            raise InputError(f"{what}: no column has mean above {min_mean}; lower --min-mean "
                             f"(means range {df.mean().min():.3g} to {df.mean().max():.3g})")
        if (~keep).any():
            logger.info("%s: %d of %d columns have mean <= %g and are left out", what,
                        int((~keep).sum()), df.shape[1], min_mean)
        df = df.loc[:, keep.to_numpy()]
    if n is not None:
        if int(n) < 1:
            raise InputError(f"{what}: the number of top-varying columns must be >= 1, got {n}")
        order = np.argsort(-df.var(axis=0).to_numpy(), kind="stable")[: int(n)]
        if int(n) > df.shape[1]:
            logger.info("%s: asked for the top %d varying columns, have %d; using all", what,
                        int(n), df.shape[1])
        df = df.iloc[:, order]
    return df


def associate(
    F: Any,
    E: Any,
    *,
    top_features: int | None = 500,
    top_genes: int | None = 2000,
    min_mean: float | None = None,
    method: str = "pearson",
) -> pd.DataFrame:
    """Test every top-varying feature against every top-varying gene.

    Parameters
    ----------
    F, E
        Image features and expression, samples x columns (DataFrames joined on their index,
        or row-aligned arrays).
    top_features, top_genes
        How many of the most variable features and genes to test (seed 002: 500 and 2000);
        ``None`` tests all.
    min_mean
        Only genes whose mean expression is above this (seed 002: 1 on log RPKM); ``None``
        keeps all (predicted expression may be on any scale).
    method
        ``"pearson"`` or ``"spearman"``.

    Returns
    -------
    DataFrame
        One row per pair: ``feature, gene, r, r2, slope, p, q``, sorted by p (ties by
        ``|r|``). ``.attrs`` holds ``n_samples``, ``n_features``, ``n_genes``, ``n_tests``
        and the columns dropped on each side.
    """
    from statsmodels.stats.multitest import multipletests

    from .variance import _paired

    if method not in METHODS:
        raise InputError(f"unknown association method {method!r}; choose one of "
                         f"{', '.join(METHODS)}")
    if not isinstance(F, pd.DataFrame):
        F = pd.DataFrame(np.asarray(F, float)).rename(columns=lambda k: f"f{k}")
    if not isinstance(E, pd.DataFrame):
        E = pd.DataFrame(np.asarray(E, float)).rename(columns=lambda k: f"g{k}")
    F, E = _paired(F, E)
    f = top_varying(F, top_features, what="image features")
    e = top_varying(E, top_genes, min_mean=min_mean, what="expression")
    n = len(f)
    if n < 4:
        raise InputError(f"association tests need at least 4 samples with both image "
                         f"features and expression, got {n}")
    x, y = f.to_numpy(), e.to_numpy()
    if method == "spearman":
        from scipy.stats import rankdata

        x, y = rankdata(x, axis=0), rankdata(y, axis=0)
    r, p = pearson_matrix(x, y)
    q = multipletests(p.ravel(), method="fdr_bh")[1]
    slope = r * e.std(axis=0).to_numpy()[None, :] / f.std(axis=0).to_numpy()[:, None]
    nf, ng = r.shape
    r, p, slope = r.ravel(), p.ravel(), slope.ravel()
    order = np.lexsort((-np.abs(r), p))
    tab = pd.DataFrame({
        "feature": f.columns.to_numpy(dtype=object)[order // ng],
        "gene": e.columns.to_numpy(dtype=object)[order % ng],
        "r": r[order],
        "r2": r[order] ** 2,
        "slope": slope[order],
        "p": p[order],
        "q": q[order],
    })
    tab.attrs.update({"n_samples": n, "n_features": nf, "n_genes": ng, "n_tests": nf * ng,
                      "method": method})
    logger.info("%d features x %d genes on %d samples: %d pairs with q < 0.05", nf, ng, n,
                int((q < 0.05).sum()))
    return tab


def feature_summary(assoc: pd.DataFrame, *, fdr: float = 0.05) -> pd.DataFrame:
    """Per feature: genes with ``q < fdr``, the best gene and its ``r``, the smallest q.

    Sorted with the features most associated with expression first (most significant genes,
    then smallest p); this ranks features for enrichment and montages.

    Examples
    --------
    >>> a = pd.DataFrame({"feature": ["f1", "f1", "f2"], "gene": ["A", "B", "A"],
    ...                   "r": [0.9, 0.5, 0.1], "p": [1e-9, 1e-3, 0.5], "q": [1e-8, 0.01, 0.5]})
    >>> feature_summary(a)[["feature", "n_significant", "best_gene"]].values.tolist()
    [['f1', 2, 'A'], ['f2', 0, 'A']]
    """
    if assoc.empty:
        return pd.DataFrame(columns=["feature", "n_significant", "best_gene", "best_r",
                                     "min_p", "min_q"])
    best = assoc.loc[assoc.groupby("feature", sort=False)["p"].idxmin()]
    sig = assoc[assoc["q"] < fdr].groupby("feature").size()
    out = pd.DataFrame({
        "feature": best["feature"].to_numpy(),
        "n_significant": sig.reindex(best["feature"]).fillna(0).astype(int).to_numpy(),
        "best_gene": best["gene"].to_numpy(),
        "best_r": best["r"].to_numpy(),
        "min_p": best["p"].to_numpy(),
        "min_q": best["q"].to_numpy(),
    })
    out["_abs"] = -out["best_r"].abs()
    out = out.sort_values(["n_significant", "min_p", "_abs"], ascending=[False, True, True],
                          kind="stable")
    return out.drop(columns="_abs").reset_index(drop=True)
