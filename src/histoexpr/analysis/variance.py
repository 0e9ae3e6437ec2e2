"""How much variability image features and expression share (seed 002, Plan Q1).

For image features ``F`` (samples x features) and expression ``E`` (samples x genes) of the
same samples:

1. PCA of each (:func:`pca`): columns are z-scored first by default (``standardise=True``),
   so every feature and gene weighs the same; constant columns and columns with NaN are
   dropped and counted, never propagated.
2. Components are kept until their cumulative share of variance reaches ``variance_cutoff``
   (the Plan says 99.9 %, its Methods 95 %; the default here is 0.95, see below).
3. Pearson correlations ``r_ij`` between image PC ``i`` and expression PC ``j``
   (:func:`component_correlations`).
4. Shared variance (:func:`shared_variance`)::

       S = sum_i lambda_i sum_j r_ij^2

   with ``lambda_i`` the eigenvalue of image PC ``i`` divided by the *total* variance of the
   (standardised) image features, i.e. sklearn's ``explained_variance_ratio_``
   (``normalise="total"``; ``"kept"`` divides by the kept components' variance instead).
   The expression PCs are uncorrelated, so ``sum_j r_ij^2`` is the R^2 of image PC ``i``
   regressed on the kept expression PCs, and ``S`` is the fraction of image-feature variance
   that expression explains linearly.

What the value means, and its guarantees:

- ``F`` a rotation (any invertible linear map) of ``E`` and a cut-off that keeps every
  component: ``S = 1`` up to rounding. A cut-off ``c < 1`` keeps image PCs that carry about
  ``c`` of the variance, so ``S`` is at most about ``c`` (with ``normalise="total"``); the
  expression cut-off drops the expression directions that carry the last ``1 - c``.
- Independent ``F`` and ``E``: ``S`` is not 0 but biased upwards by chance correlations,
  ``E[R^2] = k_E / (n - 1)`` per image PC for ``k_E`` expression PCs and ``n`` samples.
  The result reports this ``expected_null`` beside ``S``, an adjusted value (each R^2 adjusted
  like an adjusted R^2, about 0 under independence) and, with ``n_permutations``, a
  permutation null (sample pairing shuffled, PCs fixed) with its mean and a p-value. With
  ``k_E >= n - 1`` every image PC is explained perfectly and ``S`` says nothing (a warning
  and a note say so); that is why the default cut-off is 0.95, not 99.9 %.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> E = rng.normal(size=(100, 6))
>>> Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
>>> round(shared_variance(E @ Q, E, variance_cutoff=1.0).value, 6)
1.0
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError

logger = logging.getLogger(__name__)

__all__ = [
    "NORMALISATIONS",
    "PCAResult",
    "SharedVariance",
    "component_correlations",
    "drop_uninformative",
    "pca",
    "pearson_matrix",
    "shared_variance",
]

#: how the image eigenvalues lambda_i are normalised in :func:`shared_variance`
NORMALISATIONS = ("total", "kept")
#: components whose share of variance is below this are numerically zero (rank deficiency)
_ZERO_RATIO = 1e-12


def _as_frame(X: Any, what: str) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        df = X
    else:
        a = np.asarray(X, dtype=float)
        if a.ndim != 2:
            raise InputError(f"{what}: expected a samples x columns table, got shape {a.shape}")
        df = pd.DataFrame(a, columns=[f"c{k}" for k in range(a.shape[1])])
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise InputError(f"{what}: empty table ({df.shape[0]} rows x {df.shape[1]} columns)")
    try:
        return df.astype(float)
    except (TypeError, ValueError) as e:
        bad = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
        raise InputError(f"{what}: non-numeric column(s) {', '.join(map(str, bad[:5]))}; "
                         "give numbers only (ids as the first column)") from e


def drop_uninformative(X: Any, *, what: str = "data") -> tuple[pd.DataFrame, dict[str, int]]:
    """``X`` without the columns that hold NaN/infinity or are constant, and their counts.

    Returns ``(frame, {"nonfinite": k1, "constant": k2})``; both drops are logged with a few
    column names. No column left is an error.

    Examples
    --------
    >>> X = pd.DataFrame({"a": [1.0, 2, 3], "b": [5.0, 5, 5], "c": [1.0, None, 2]})
    >>> kept, dropped = drop_uninformative(X)
    >>> list(kept.columns), dropped
    (['a'], {'nonfinite': 1, 'constant': 1})
    """
    df = _as_frame(X, what)
    vals = df.to_numpy()
    finite = np.isfinite(vals).all(axis=0)
    constant = np.zeros(df.shape[1], bool)
    if finite.any():
        v = vals[:, finite]
        spread = v.max(axis=0) - v.min(axis=0)
        constant[finite] = spread <= 1e-12 * np.maximum(1.0, np.abs(v).max(axis=0))
    counts = {"nonfinite": int((~finite).sum()), "constant": int(constant.sum())}
    for mask, why in ((~finite, "hold NaN or infinity"), (constant, "are constant")):
        if mask.any():
            names = ", ".join(map(str, df.columns[mask][:5]))
            logger.warning("%s: %d of %d columns %s and are left out (%s%s)", what,
                           int(mask.sum()), df.shape[1], why, names,
                           ", ..." if mask.sum() > 5 else "")
    keep = finite & ~constant
    if not keep.any():
        raise InputError(f"{what}: no column left after dropping {counts['nonfinite']} with "
                         f"NaN and {counts['constant']} constant one(s); check the input")
    return df.loc[:, keep], counts


@dataclass
class PCAResult:
    """Scores of the kept components and their shares of variance.

    ``ratio[k]`` is component ``k``'s variance over the total variance of the (standardised)
    columns; ``ratio_all`` holds every component's; ``loadings`` is components x columns.
    """

    scores: pd.DataFrame
    ratio: np.ndarray
    ratio_all: np.ndarray
    loadings: pd.DataFrame
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def n_components(self) -> int:
        return int(self.scores.shape[1])

    @property
    def variance_kept(self) -> float:
        return float(self.ratio.sum())


def pca(
    X: Any,
    *,
    variance_cutoff: float = 0.95,
    n_components: int | None = None,
    standardise: bool = True,
    what: str = "data",
) -> PCAResult:
    """PCA of a samples x columns table (scikit-learn, full SVD), components up to a cut-off.

    Parameters
    ----------
    X
        Samples x columns (DataFrame or array). Columns with NaN and constant columns are
        dropped and counted (:func:`drop_uninformative`).
    variance_cutoff
        Keep the fewest leading components whose cumulative share of variance reaches this
        (0 < c <= 1; 1 keeps every component of non-zero variance).
    n_components
        Keep exactly this many instead; more than the data have (``min(n - 1, p)`` and the
        numerical rank) is an error.
    standardise
        z-score each column first (else only centre it).
    what
        Name used in messages.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> res = pca(rng.normal(size=(50, 4)) @ np.diag([10, 1, 1, 0.1]), standardise=False)
    >>> res.n_components, round(res.variance_kept, 2)
    (1, 0.98)
    >>> pca(rng.normal(size=(50, 4)), variance_cutoff=1.0).n_components
    4
    """
    from sklearn.decomposition import PCA

    if not 0 < variance_cutoff <= 1:
        raise InputError(f"variance cut-off must be in (0, 1], got {variance_cutoff}")
    df, dropped = drop_uninformative(X, what=what)
    n, p = df.shape
    if n < 3:
        raise InputError(f"{what}: {n} sample(s); PCA and correlations need at least 3")
    vals = df.to_numpy()
    vals = vals - vals.mean(axis=0)
    if standardise:
        vals = vals / vals.std(axis=0)
    model = PCA(n_components=min(n, p), svd_solver="full")
    scores = model.fit_transform(vals)
    ratio_all = model.explained_variance_ratio_
    rank = int((ratio_all > _ZERO_RATIO).sum())
    limit = min(n - 1, p)
    if n_components is not None:
        k = int(n_components)
        if k < 1:
            raise InputError(f"{what}: n_components must be >= 1, got {k}")
        if k > limit:
            raise InputError(f"{what}: asked for {k} components but {n} samples x {p} columns "
                             f"give at most {limit}; ask for fewer or use a variance cut-off")
        if k > rank:
            raise InputError(f"{what}: asked for {k} components but the data have rank {rank}")
    else:
        cum = np.cumsum(ratio_all)
        k = int(np.searchsorted(cum, variance_cutoff - 1e-9) + 1)
        k = max(1, min(k, rank))
    names = [f"PC{i + 1}" for i in range(k)]
    return PCAResult(
        scores=pd.DataFrame(scores[:, :k], index=df.index, columns=names),
        ratio=ratio_all[:k].copy(),
        ratio_all=ratio_all.copy(),
        loadings=pd.DataFrame(model.components_[:k], index=names, columns=df.columns),
        dropped=dropped,
    )


def pearson_matrix(X: Any, Y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Pearson ``r`` and two-sided p of every column of ``X`` against every column of ``Y``.

    Vectorised (one matrix product); p comes from the same beta distribution as
    :func:`scipy.stats.pearsonr` (equivalently, Student's t with ``n - 2`` df). Columns must
    not be constant (drop them first).

    Returns
    -------
    r, p : arrays of shape (X columns, Y columns)

    Examples
    --------
    >>> x = np.array([[1.0], [2], [3], [4]])
    >>> r, p = pearson_matrix(x, np.c_[2 * x[:, 0], [1.0, 3, 2, 4]])
    >>> r.round(2).tolist()
    [[1.0, 0.8]]
    """
    from scipy import special

    x = np.asarray(X, dtype=float)
    y = np.asarray(Y, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if y.ndim == 1:
        y = y[:, None]
    n = x.shape[0]
    if y.shape[0] != n:
        raise InputError(f"pearson_matrix: {n} rows against {y.shape[0]}")
    if n < 3:
        raise InputError(f"correlations need at least 3 samples, got {n}")
    xc = x - x.mean(axis=0)
    yc = y - y.mean(axis=0)
    xn = np.linalg.norm(xc, axis=0)
    yn = np.linalg.norm(yc, axis=0)
    if (xn == 0).any() or (yn == 0).any():
        raise InputError("pearson_matrix: constant column(s); drop them first "
                         "(drop_uninformative)")
    r = np.clip((xc / xn).T @ (yc / yn), -1.0, 1.0)
    # scipy.stats.pearsonr: p = 2 * sf of Beta(n/2 - 1, n/2 - 1) on [-1, 1] at |r|, which by
    # symmetry is the regularised incomplete beta function at (1 - |r|) / 2 (10x faster)
    ab = n / 2 - 1
    p = 2 * special.betainc(ab, ab, (1 - np.abs(r)) / 2)
    return r, np.clip(p, 0.0, 1.0)


def component_correlations(
    FS: pd.DataFrame, ES: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(r, p)``: image PCs (rows) x expression PCs (columns), Pearson with p-values.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> a = pd.DataFrame(rng.normal(size=(30, 2)), columns=["PC1", "PC2"])
    >>> r, p = component_correlations(a, a)
    >>> float(r.loc["PC1", "PC1"]), bool(p.loc["PC1", "PC1"] < 1e-10)
    (1.0, True)
    """
    r, p = pearson_matrix(FS.to_numpy(), ES.to_numpy())
    return (pd.DataFrame(r, index=FS.columns, columns=ES.columns),
            pd.DataFrame(p, index=FS.columns, columns=ES.columns))


@dataclass
class SharedVariance:
    """The result of :func:`shared_variance` (see the module text for the definitions).

    ``components`` has one row per kept image PC: ``variance_ratio`` (lambda_i), ``r2``
    (sum_j r_ij^2), ``contribution`` (their product; the contributions sum to ``value``),
    ``r2_adjusted``, and the best-correlated expression PC.
    """

    value: float
    adjusted: float
    expected_null: float
    n_samples: int
    k_features: int
    k_expression: int
    variance_kept_features: float
    variance_kept_expression: float
    components: pd.DataFrame
    r: pd.DataFrame
    p: pd.DataFrame
    n_features: int
    n_genes: int
    dropped_features: dict[str, int]
    dropped_expression: dict[str, int]
    normalise: str = "total"
    null_mean: float = float("nan")
    null_sd: float = float("nan")
    p_value: float = float("nan")
    n_permutations: int = 0
    saturated: bool = False

    def summary(self) -> dict[str, Any]:
        """One flat row (the CLI's ``shared_variance.csv``)."""
        return {
            "n_samples": self.n_samples,
            "n_features": self.n_features,
            "n_genes": self.n_genes,
            "features_dropped": sum(self.dropped_features.values()),
            "genes_dropped": sum(self.dropped_expression.values()),
            "k_features": self.k_features,
            "k_expression": self.k_expression,
            "variance_kept_features": self.variance_kept_features,
            "variance_kept_expression": self.variance_kept_expression,
            "shared_variance": self.value,
            "shared_variance_adjusted": self.adjusted,
            "expected_null": self.expected_null,
            "null_mean": self.null_mean,
            "null_sd": self.null_sd,
            "p_value": self.p_value,
            "n_permutations": self.n_permutations,
            "saturated": self.saturated,
        }


def _zscore_cols(a: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=0)
    return a / np.linalg.norm(a, axis=0)


def _paired(F: Any, E: Any) -> tuple[Any, Any]:
    if isinstance(F, pd.DataFrame) and isinstance(E, pd.DataFrame):
        if F.index.equals(E.index):
            return F, E
        from .tables import align_samples

        return align_samples(F, E, what=("image features", "expression"))
    nf, ne = len(F), len(E)
    if nf != ne:
        raise InputError(f"image features have {nf} rows but expression has {ne}; give the "
                         "same samples in the same order (or DataFrames indexed by sample)")
    return F, E


def shared_variance(
    F: Any,
    E: Any,
    *,
    variance_cutoff: float = 0.95,
    expression_cutoff: float | None = None,
    n_components: tuple[int | None, int | None] | None = None,
    standardise: bool = True,
    normalise: str = "total",
    n_permutations: int = 0,
    seed: int = 0,
    n_covariates: int = 0,
) -> SharedVariance:
    """Fraction of image-feature variance shared with expression, ``sum_i l_i sum_j r_ij^2``.

    Parameters
    ----------
    F, E
        Image features and expression of the same samples (DataFrames are joined on their
        index; arrays must be row-aligned).
    variance_cutoff
        Cumulative variance share up to which image PCs are kept (and expression PCs, unless
        ``expression_cutoff`` is given). Seed 002's Plan uses 0.999, its Methods 0.95.
    expression_cutoff
        A different cut-off for the expression PCs.
    n_components
        ``(k_F, k_E)``: exact component counts instead of cut-offs (``None`` for either side
        keeps its cut-off).
    standardise
        z-score columns before the PCAs.
    normalise
        ``"total"``: ``l_i`` = share of the total image variance (the value is a fraction of
        all image variance, at most the kept share); ``"kept"``: share of the kept variance.
    n_permutations
        Shuffle the sample pairing this many times (seeded) for a null distribution;
        ``p_value = (1 + #null >= value) / (1 + n_permutations)``.
    seed
        Seed of the permutations.
    n_covariates
        Covariate parameters already regressed out of ``F`` and ``E`` (not counting the
        intercept); they lower the residual degrees of freedom used by ``expected_null`` and
        ``adjusted``.

    Returns
    -------
    SharedVariance

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> res = shared_variance(rng.normal(size=(300, 5)), rng.normal(size=(300, 5)),
    ...                       variance_cutoff=1.0)
    >>> bool(res.value < 0.05), round(res.expected_null, 4)
    (True, 0.0167)
    """
    if normalise not in NORMALISATIONS:
        raise InputError(f"normalise must be one of {', '.join(NORMALISATIONS)}, not "
                         f"{normalise!r}")
    F, E = _paired(F, E)
    kf, ke = n_components if n_components is not None else (None, None)
    pf = pca(F, variance_cutoff=variance_cutoff, n_components=kf, standardise=standardise,
             what="image features")
    pe = pca(E, variance_cutoff=variance_cutoff if expression_cutoff is None
             else expression_cutoff, n_components=ke, standardise=standardise,
             what="expression")
    n = len(pf.scores)
    k_e = pe.n_components
    lam = pf.ratio if normalise == "total" else pf.ratio / pf.ratio.sum()
    fz = _zscore_cols(pf.scores.to_numpy())
    ez = _zscore_cols(pe.scores.to_numpy())
    r, p = component_correlations(pf.scores, pe.scores)
    r2 = (r.to_numpy() ** 2).sum(axis=1)
    value = float(lam @ r2)

    dof = n - 1 - int(n_covariates)
    saturated = k_e >= dof
    if saturated:
        logger.warning("expression keeps %d components for %d samples (%d residual df): every "
                       "image PC is explained perfectly and the shared variance is "
                       "meaningless; lower the variance cut-off", k_e, n, dof)
    expected = float(lam.sum() * min(1.0, k_e / dof)) if dof > 0 else float(lam.sum())
    if dof - k_e > 0:
        r2_adj = 1 - (1 - r2) * dof / (dof - k_e)
        adjusted = float(lam @ r2_adj)
    else:
        r2_adj = np.full_like(r2, np.nan)
        adjusted = float("nan")

    null_mean = null_sd = p_value = float("nan")
    if n_permutations > 0:
        rng = np.random.default_rng(seed)
        null = np.empty(int(n_permutations))
        for b in range(len(null)):
            rb = fz.T @ ez[rng.permutation(n)]
            null[b] = lam @ (rb**2).sum(axis=1)
        null_mean = float(null.mean())
        null_sd = float(null.std(ddof=1)) if len(null) > 1 else 0.0
        p_value = float((1 + (null >= value - 1e-12).sum()) / (1 + len(null)))

    best = np.abs(r.to_numpy()).argmax(axis=1)
    comp = pd.DataFrame({
        "component": list(pf.scores.columns),
        "variance_ratio": lam,
        "r2": r2,
        "r2_adjusted": r2_adj,
        "contribution": lam * r2,
        "best_expression_pc": [pe.scores.columns[j] for j in best],
        "best_r": r.to_numpy()[np.arange(len(best)), best],
    })
    logger.info("shared variance %.3f (image PCs %d, expression PCs %d, n = %d; null "
                "expectation %.3f)", value, pf.n_components, k_e, n, expected)
    return SharedVariance(
        value=value, adjusted=adjusted, expected_null=expected, n_samples=n,
        k_features=pf.n_components, k_expression=k_e,
        variance_kept_features=pf.variance_kept, variance_kept_expression=pe.variance_kept,
        components=comp, r=r, p=p, n_features=int(pf.loadings.shape[1]),
        n_genes=int(pe.loadings.shape[1]), dropped_features=pf.dropped,
        dropped_expression=pe.dropped, normalise=normalise, null_mean=null_mean,
        null_sd=null_sd, p_value=p_value, n_permutations=int(n_permutations),
        saturated=bool(saturated),
    )
