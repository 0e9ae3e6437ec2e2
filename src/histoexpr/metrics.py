"""Evaluation metrics for predicted expression — pure functions over arrays.

Rows are observations (spots, tiles or bulk samples), columns are genes.

- :func:`per_gene` — per-gene Pearson and Spearman (r, two-sided p, Benjamini-Hochberg q),
  R², MAE and RMSE, computed for all genes at once.
- :func:`per_sample` — correlation *across genes* within each row (a patient or a spot),
  as the bulk workflows report it (hist2RNA: per-sample Spearman).
- :func:`summarise` / :func:`top_genes` — one metric summarised over genes: mean, median,
  genes above thresholds, mean of the top-k genes, genes significant after FDR.
- :func:`evaluate` — the tidy table ``fold, section, gene, metric, value``: a ``"pooled"``
  block over all spots plus one block per section; write it with
  ``tidy.to_csv(path, index=False)``.
- :func:`summary_table` — the tidy table summarised per ``(fold, section, metric)``.
- :func:`bh_adjust` — Benjamini-Hochberg q-values over the non-NaN p-values (statsmodels).

Protocol: a gene whose measured or predicted values are constant (within the block being
scored) has no correlation; its r, p and q are NaN, it is flagged in the ``constant`` column
and counted by :func:`summarise`, never dropped and never a warning. R² is the coefficient of
determination of the predictions, ``1 - SS_res / SS_tot`` (not the squared correlation); it
is NaN when the *measured* values are constant. FDR is applied per block, over the genes with
a p-value.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError

__all__ = [
    "METRICS",
    "POOLED",
    "bh_adjust",
    "evaluate",
    "format_p",
    "per_gene",
    "per_sample",
    "summarise",
    "summary_table",
    "top_genes",
]

logger = logging.getLogger(__name__)

#: Columns of :func:`per_gene`, in order; also the ``metric`` values of :func:`evaluate`.
METRICS = (
    "pearson_r",
    "pearson_p",
    "pearson_q",
    "spearman_r",
    "spearman_p",
    "spearman_q",
    "r2",
    "mae",
    "rmse",
    "constant",
)
#: The ``section`` label of the block computed over all spots together.
POOLED = "pooled"
_METHODS = ("pearson", "spearman")
_LOWER_IS_BETTER = ("mae", "rmse")
_TIDY_COLUMNS = ("fold", "section", "gene", "metric", "value")


# --------------------------------------------------------------------------- input checks


def _as_matrix(a: Any, name: str) -> np.ndarray:
    try:
        m = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InputError(f"{name} must be numeric (rows x genes): {e}") from None
    if m.ndim != 2:
        raise InputError(
            f"{name} must be 2-D (rows x genes), got shape {m.shape}; "
            "use .reshape(-1, 1) for a single gene"
        )
    bad = ~np.isfinite(m)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise InputError(
            f"{name} holds {int(bad.sum())} NaN/inf value(s) (first at row {i}, column {j}); "
            "impute or drop them before computing metrics"
        )
    return m


def _pair(y_true: Any, y_pred: Any, *, min_rows: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    t, p = _as_matrix(y_true, "y_true"), _as_matrix(y_pred, "y_pred")
    if t.shape != p.shape:
        raise InputError(
            f"y_true has shape {t.shape} but y_pred has shape {p.shape}; "
            "they must match (rows = observations, columns = genes, same order)"
        )
    n = t.shape[0] if what == "rows" else t.shape[1]
    if n < min_rows:
        raise InputError(
            f"need at least {min_rows} {what} to compute correlations with p-values, "
            f"got {n} (shape {t.shape})"
        )
    return t, p


def _labels(given: Sequence[Hashable] | None, fallback: Any, n: int, kind: str) -> list:
    labels = list(fallback) if given is None and fallback is not None else given
    if labels is None:
        return list(range(n))
    labels = list(labels)
    if len(labels) != n:
        raise InputError(f"got {len(labels)} {kind} names for {n} {kind}s; give one per {kind}")
    if len(set(labels)) != n:
        dup = pd.Series(labels)[pd.Series(labels).duplicated()].iloc[0]
        raise InputError(f"{kind} names must be unique; {dup!r} appears more than once")
    return labels


# --------------------------------------------------------------------------- core maths


def _colwise(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column-wise Pearson r, two-sided p and constant mask (as scipy.stats.pearsonr)."""
    from scipy import special

    n = x.shape[0]
    const = (x == x[:1]).all(axis=0) | (y == y[:1]).all(axis=0)
    xm = x - x.mean(axis=0)
    ym = y - y.mean(axis=0)
    sxy = np.einsum("ij,ij->j", xm, ym)
    sxx = np.einsum("ij,ij->j", xm, xm)
    syy = np.einsum("ij,ij->j", ym, ym)
    # sqrt(sxx * syy) rather than a product of norms: a perfect (or perfectly reversed)
    # prediction then gives exactly +-1, so its p-value is exactly 0 as in scipy.stats.spearmanr
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.clip(sxy / np.sqrt(sxx * syy), -1.0, 1.0)
    r[const] = np.nan
    # under H0, r follows a beta(n/2 - 1, n/2 - 1) law on [-1, 1] (same as the t test, n - 2 df)
    ab = n / 2 - 1
    p = 2 * special.betaincc(ab, ab, (np.abs(r) + 1) / 2)
    return r, np.minimum(p, 1.0), const


def _ranks(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x, axis=0)


# --------------------------------------------------------------------------- public API


def bh_adjust(p: Any) -> np.ndarray:
    """Benjamini-Hochberg q-values (FDR-adjusted p-values) of ``p``, NaN-aware.

    The family is the non-NaN p-values: a NaN (an undefined test) stays NaN and is not
    counted in the number of tests. Otherwise equal to statsmodels'
    ``multipletests(p, method="fdr_bh")[1]``, which computes it.

    Parameters
    ----------
    p
        P-values in [0, 1], any shape (one family over all of them).

    Returns
    -------
    numpy.ndarray
        float64 q-values, the shape of ``p``.

    Examples
    --------
    >>> bh_adjust([0.01, np.nan, 0.04, 0.03]).round(3).tolist()
    [0.03, nan, 0.04, 0.04]
    """
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        q[ok] = multipletests(p[ok], method="fdr_bh")[1]
    return q



def per_gene(y_true: Any, y_pred: Any, genes: Sequence[Hashable] | None = None) -> pd.DataFrame:
    """Per-gene metrics of predicted against measured expression.

    Parameters
    ----------
    y_true, y_pred
        ``(n_obs, n_genes)`` measured and predicted values, same shape, finite, ``n_obs >= 3``.
        DataFrames are accepted; their columns name the genes when ``genes`` is not given.
    genes
        One unique name per column; defaults to the columns of ``y_true`` or ``0..n_genes-1``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``gene`` with the columns of :data:`METRICS`: ``pearson_r/p/q``,
        ``spearman_r/p/q`` (two-sided p-values equal to scipy's ``pearsonr``/``spearmanr``;
        q = Benjamini-Hochberg over the genes that have a p-value), ``r2`` (``1 - SS_res /
        SS_tot``; NaN when the measured gene is constant), ``mae``, ``rmse`` and ``constant``
        (measured or predicted column constant, so r, p and q are NaN).

    Examples
    --------
    >>> y = np.array([[1.0, 5.0], [2.0, 5.0], [4.0, 5.0], [3.0, 5.0]])
    >>> m = per_gene(y, 2 * y, genes=["A", "B"])
    >>> m["pearson_r"].round(6).tolist(), m["constant"].tolist()
    ([1.0, nan], [False, True])
    >>> m.loc["A", ["mae", "rmse"]].astype(float).round(3).tolist()
    [2.5, 2.739]
    """
    t, p = _pair(y_true, y_pred, min_rows=3, what="rows")
    names = _labels(genes, getattr(y_true, "columns", None), t.shape[1], "gene")
    pr, pp, const = _colwise(t, p)
    sr, sp, _ = _colwise(_ranks(t), _ranks(p))
    err = p - t
    ss_res = (err**2).sum(axis=0)
    ss_tot = ((t - t.mean(axis=0)) ** 2).sum(axis=0)
    true_const = (t == t[:1]).all(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(true_const, np.nan, 1.0 - ss_res / ss_tot)
    out = pd.DataFrame(
        {
            "pearson_r": pr,
            "pearson_p": pp,
            "pearson_q": bh_adjust(pp),
            "spearman_r": sr,
            "spearman_p": sp,
            "spearman_q": bh_adjust(sp),
            "r2": r2,
            "mae": np.abs(err).mean(axis=0),
            "rmse": np.sqrt(ss_res / t.shape[0]),
            "constant": const,
        },
        index=pd.Index(names, name="gene"),
    )
    return out


def per_sample(
    y_true: Any,
    y_pred: Any,
    samples: Sequence[Hashable] | None = None,
    *,
    method: str = "spearman",
) -> pd.DataFrame:
    """Correlation across genes within each row (a patient, sample or spot).

    Parameters
    ----------
    y_true, y_pred
        ``(n_samples, n_genes)`` measured and predicted values, same shape, ``n_genes >= 3``.
    samples
        One unique name per row; defaults to the index of a DataFrame ``y_true`` or
        ``0..n_samples-1``.
    method
        ``"spearman"`` (default, as hist2RNA) or ``"pearson"``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``sample`` with ``{method}_r``, ``{method}_p``, ``{method}_q`` (BH over the
        samples) and ``constant`` (a row with constant measured or predicted values; NaN r).

    Examples
    --------
    >>> y = np.array([[1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]])
    >>> yhat = np.array([[1.0, 3.0, 2.0, 9.0], [1.0, 1.0, 1.0, 1.0]])
    >>> per_sample(y, yhat, ["p1", "p2"])["spearman_r"].tolist()
    [0.8, nan]
    """
    if method not in _METHODS:
        raise InputError(f"unknown correlation method {method!r}; choose one of pearson, spearman")
    t, p = _pair(y_true, y_pred, min_rows=3, what="genes")
    names = _labels(samples, getattr(y_true, "index", None), t.shape[0], "sample")
    x, y = t.T, p.T
    if method == "spearman":
        x, y = _ranks(x), _ranks(y)
    r, pv, const = _colwise(x, y)
    return pd.DataFrame(
        {f"{method}_r": r, f"{method}_p": pv, f"{method}_q": bh_adjust(pv), "constant": const},
        index=pd.Index(names, name="sample"),
    )


def summarise(
    per_gene_df: pd.DataFrame,
    *,
    metric: str = "pearson_r",
    thresholds: Sequence[float] = (0, 0.3, 0.5),
    top_k: Sequence[int] = (10, 50),
    alpha: float = 0.05,
) -> dict[str, float]:
    """Summarise one per-gene metric over genes.

    Parameters
    ----------
    per_gene_df
        A :func:`per_gene` frame (or any frame with a ``metric`` column, one row per gene).
    metric
        The column to summarise.
    thresholds
        Count the genes whose metric is strictly greater than each value.
    top_k
        Mean of the k best genes (largest values; smallest for ``mae``/``rmse``); NaN when
        fewer than k genes have a value.
    alpha
        For an ``*_r`` metric whose ``*_q`` column is present: count genes with ``q < alpha``.

    Returns
    -------
    dict
        ``n_genes``, ``n_constant`` (the ``constant`` column, else the NaN count),
        ``n_valid`` (genes with a value), ``mean``, ``median`` (over genes with a value),
        ``n_r_gt_{t}`` per threshold (``r`` is the summarised metric), ``top{k}_mean``
        per k and ``n_q_lt_{alpha}``.

    Examples
    --------
    >>> df = pd.DataFrame({"pearson_r": [0.9, 0.4, -0.1, np.nan],
    ...                    "constant": [False, False, False, True]})
    >>> s = summarise(df, top_k=(2,))
    >>> s["n_constant"], s["n_r_gt_0"], s["n_r_gt_0.3"], s["n_r_gt_0.5"], round(s["top2_mean"], 2)
    (1, 2, 2, 1, 0.65)
    """
    if metric not in per_gene_df.columns:
        raise InputError(
            f"no column {metric!r} to summarise; available: {', '.join(map(str, per_gene_df))}"
        )
    v = per_gene_df[metric].to_numpy(dtype=np.float64)
    valid = v[~np.isnan(v)]
    if "constant" in per_gene_df.columns:
        n_constant = int(per_gene_df["constant"].astype(bool).sum())
    else:
        n_constant = int(np.isnan(v).sum())
    out: dict[str, float] = {
        "n_genes": len(v),
        "n_constant": n_constant,
        "n_valid": int(valid.size),
        "mean": float(valid.mean()) if valid.size else np.nan,
        "median": float(np.median(valid)) if valid.size else np.nan,
    }
    for thr in thresholds:
        out[f"n_r_gt_{thr:g}"] = int((valid > thr).sum())
    best = np.sort(valid) if metric in _LOWER_IS_BETTER else np.sort(valid)[::-1]
    for k in top_k:
        out[f"top{k}_mean"] = float(best[:k].mean()) if valid.size >= k else np.nan
    q_col = metric[:-2] + "_q" if metric.endswith("_r") else None
    if q_col is not None and q_col in per_gene_df.columns:
        q = per_gene_df[q_col].to_numpy(dtype=np.float64)
        out[f"n_q_lt_{alpha:g}"] = int((q < alpha).sum())
    return out


def top_genes(per_gene_df: pd.DataFrame, k: int = 10, *, metric: str = "pearson_r") -> pd.DataFrame:
    """The ``k`` best genes by ``metric`` (largest first; smallest first for mae/rmse).

    Genes without a value (constant) are left out; ties keep the input order.

    Examples
    --------
    >>> df = pd.DataFrame({"pearson_r": [0.2, np.nan, 0.7]}, index=["A", "B", "C"])
    >>> top_genes(df, 2).index.tolist()
    ['C', 'A']
    """
    if metric not in per_gene_df.columns:
        raise InputError(
            f"no column {metric!r} to rank by; available: {', '.join(map(str, per_gene_df))}"
        )
    ranked = per_gene_df.dropna(subset=[metric]).sort_values(
        metric, ascending=metric in _LOWER_IS_BETTER, kind="stable"
    )
    return ranked.head(k)


def _tidy_block(df: pd.DataFrame, fold: Hashable | None, section: Hashable) -> pd.DataFrame:
    long = (
        df.astype(np.float64)
        .rename_axis("gene")
        .reset_index()
        .melt(id_vars="gene", var_name="metric", value_name="value")
    )
    long.insert(0, "section", pd.Series([section] * len(long), dtype=object))
    long.insert(0, "fold", pd.Series([fold] * len(long), dtype=object))
    return long


def evaluate(
    y_true: Any,
    y_pred: Any,
    *,
    genes: Sequence[Hashable] | None = None,
    sections: Sequence[Hashable] | None = None,
    fold: Hashable | None = None,
    min_spots: int = 3,
) -> pd.DataFrame:
    """Tidy per-gene metrics, pooled over all spots and per section.

    Parameters
    ----------
    y_true, y_pred
        ``(n_spots, n_genes)`` measured and predicted expression (see :func:`per_gene`).
    genes
        Gene names, one per column.
    sections
        Section (slide) of each spot; ``None`` gives only the pooled block. Sections with
        fewer than ``min_spots`` spots are skipped with a logged warning.
    fold
        Cross-validation fold written into the ``fold`` column (``None`` leaves it empty).
    min_spots
        Smallest section that is scored on its own (at least 3).

    Returns
    -------
    pandas.DataFrame
        Columns ``fold, section, gene, metric, value``: the ``"pooled"`` block, then one
        block per section in order of first appearance; within a block, rows run over
        :data:`METRICS` (``constant`` as 1.0/0.0), then genes. BH q-values are per block.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(size=(8, 2))
    >>> tidy = evaluate(y, y + 0.1, genes=["A", "B"], sections=list("aaaabbbb"), fold=0)
    >>> tidy["section"].unique().tolist(), len(tidy) == 3 * 2 * len(METRICS)
    (['pooled', 'a', 'b'], True)
    """
    if min_spots < 3:
        raise InputError(
            f"min_spots must be at least 3 (correlations need 3 spots), got {min_spots}"
        )
    t, p = _pair(y_true, y_pred, min_rows=3, what="rows")
    names = _labels(genes, getattr(y_true, "columns", None), t.shape[1], "gene")
    blocks = [_tidy_block(per_gene(t, p, names), fold, POOLED)]
    if sections is not None:
        sec = np.asarray(sections, dtype=object)
        if sec.shape != (t.shape[0],):
            raise InputError(
                f"got {sec.size} section labels for {t.shape[0]} spots; give one per spot"
            )
        order = pd.unique(pd.Series(sec))
        if POOLED in set(order):
            raise InputError(
                f"a section is named {POOLED!r}, which labels the pooled block; rename it"
            )
        for s in order:
            rows = sec == s
            n = int(rows.sum())
            if n < min_spots:
                logger.warning(
                    "section %r has %d spot(s) (< %d); left out of the per-section metrics",
                    s,
                    n,
                    min_spots,
                )
                continue
            blocks.append(_tidy_block(per_gene(t[rows], p[rows], names), fold, s))
    return pd.concat(blocks, ignore_index=True)


def summary_table(
    tidy: pd.DataFrame,
    *,
    metrics: Sequence[str] = ("pearson_r", "spearman_r"),
    thresholds: Sequence[float] = (0, 0.3, 0.5),
    top_k: Sequence[int] = (10, 50),
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Summarise a tidy :func:`evaluate` table per ``(fold, section, metric)``.

    One row per fold, section and summarised metric, with the keys of :func:`summarise` as
    columns. Several folds' tables can be concatenated first.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(size=(8, 3))
    >>> tidy = evaluate(y, y + rng.normal(size=y.shape), sections=list("aaaabbbb"))
    >>> s = summary_table(tidy, metrics=["pearson_r"], top_k=[2])
    >>> s[["section", "metric", "n_genes"]].values.tolist()
    [['pooled', 'pearson_r', 3], ['a', 'pearson_r', 3], ['b', 'pearson_r', 3]]
    """
    missing = [c for c in _TIDY_COLUMNS if c not in tidy.columns]
    if missing:
        raise InputError(
            f"tidy table lacks column(s) {', '.join(missing)}; pass the output of evaluate()"
        )
    rows = []
    for _, block in tidy.groupby(["fold", "section"], sort=False, dropna=False):
        wide = block.pivot(index="gene", columns="metric", values="value")
        for m in metrics:
            head = {"fold": block["fold"].iloc[0], "section": block["section"].iloc[0], "metric": m}
            rows.append(
                head | summarise(wide, metric=m, thresholds=thresholds, top_k=top_k, alpha=alpha)
            )
    return pd.DataFrame(rows)


def format_p(p: float | None, *, missing: str = "n/a") -> str:
    """A p-value for tables and figures: two significant digits, scientific below 1e-3.

    >>> format_p(0.0312), format_p(2.5e-7), format_p(float("nan"))
    ('0.031', '2.5e-07', 'n/a')
    """
    if p is None or not np.isfinite(p):
        return missing
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"
