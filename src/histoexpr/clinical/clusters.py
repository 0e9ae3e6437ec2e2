"""Centroid methods: the nearest-centroid subtype caller, and unsupervised clusters of
samples on a gene panel (e.g. PAM50) whose centroids feed that caller.

The preparation follows the intrinsic-subtype practice (Perou, Sørlie, Parker): expression on
a log scale (``log2(1 + x)``), each gene centred within the cohort (median by default), samples
compared by the correlation of their centred profiles. :class:`NearestCentroidCaller` calls
the class whose centroid a sample's profile correlates best with (Spearman).
:func:`cluster_samples` clusters by correlation by standardising each *sample* across genes
(centre and scale its profile): the squared Euclidean distance between two standardised
profiles is ``2 p (1 - r)``, so Ward's linkage or k-means on them groups samples by
correlation while keeping Ward's balanced clusters (average linkage on correlation distance,
the microarray classic, tends to split off singletons in a cohort of a thousand).

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> base = rng.normal(0, 1, (3, 12))                       # three "subtypes", 12 genes
>>> x = np.repeat(base, 10, axis=0) + rng.normal(0, 0.3, (30, 12))
>>> expr = pd.DataFrame(x, columns=[f"g{i}" for i in range(12)])
>>> res = cluster_samples(expr, k=3, transform="none")
>>> sorted(res.sizes.tolist()), res.silhouette > 0.5
([10, 10, 10], True)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from ..errors import InputError

logger = logging.getLogger(__name__)

__all__ = [
    "CENTRES",
    "CLUSTER_METHODS",
    "TRANSFORMS",
    "Clustering",
    "NearestCentroidCaller",
    "centre_genes",
    "cluster_samples",
    "compare_clusters",
    "log_scale",
    "standardise_genes",
]

#: how genes are centred within a cohort
CENTRES = ("median", "mean", None)
#: clustering algorithms of :func:`cluster_samples`
CLUSTER_METHODS = ("hierarchical", "kmeans")
#: expression scales :func:`log_scale` accepts
TRANSFORMS = ("auto", "log2", "none")
#: ``transform="auto"`` takes values as linear (counts, RSEM, TPM) above this maximum; log2
#: expression rarely exceeds 20
LINEAR_MAX = 50.0


def log_scale(expr: pd.DataFrame, *, transform: str = "auto",
              what: str = "expression") -> tuple[pd.DataFrame, str]:
    """Expression on a log scale: ``log2(1 + x)`` or unchanged.

    Parameters
    ----------
    expr
        Samples x genes.
    transform
        ``"log2"``: ``log2(1 + x)`` (negative values are an error); ``"none"``: unchanged;
        ``"auto"``: ``log2`` when every value is >= 0 and the largest exceeds
        :data:`LINEAR_MAX` (RSEM, TPM, counts), else unchanged (already log-scale, or
        centred).
    what
        Name of the data in messages.

    Returns
    -------
    (DataFrame, str)
        The values and the transform applied (``"log2"`` or ``"none"``).

    Examples
    --------
    >>> e = pd.DataFrame({"A": [0.0, 1023.0]})
    >>> x, used = log_scale(e)
    >>> x["A"].tolist(), used
    ([0.0, 10.0], 'log2')
    """
    if transform not in TRANSFORMS:
        raise InputError(f"transform must be one of {', '.join(TRANSFORMS)}, not {transform!r}")
    vals = expr.to_numpy(dtype=np.float64)
    finite = vals[np.isfinite(vals)]
    if transform == "auto":
        linear = finite.size > 0 and finite.min() >= 0 and finite.max() > LINEAR_MAX
        transform = "log2" if linear else "none"
        logger.info("%s: values %s; transform %s", what,
                    f"up to {finite.max():.3g}" if finite.size else "empty", transform)
    if transform == "none":
        return expr.astype(np.float64), "none"
    if finite.size and finite.min() < 0:
        raise InputError(f"{what}: negative values ({finite.min():.3g}) cannot be log2(1+x) "
                         "transformed; is it already on a log scale? use transform 'none'")
    return np.log2(1.0 + expr.astype(np.float64)), "log2"


def centre_genes(x: np.ndarray, centre: str | None) -> np.ndarray:
    """Subtract each gene's (column's) median or mean within the rows given; ``None``: copy.

    Examples
    --------
    >>> centre_genes(np.array([[1.0, 5.0], [2.0, 7.0], [9.0, 6.0]]), "median").tolist()
    [[-1.0, -1.0], [0.0, 1.0], [7.0, 0.0]]
    """
    if centre not in CENTRES:
        raise InputError(f"centre must be 'median', 'mean' or None, not {centre!r}")
    x = np.asarray(x, dtype=np.float64)
    if centre is None:
        return x.copy()
    ref = np.median(x, axis=0) if centre == "median" else x.mean(axis=0)
    return x - ref


def _spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation of every row of ``a`` (n, p) with every row of ``b`` (k, p); a
    constant row correlates 0 with everything."""
    from scipy.stats import rankdata

    def z(x: np.ndarray) -> np.ndarray:
        r = rankdata(x, axis=1)
        r = r - r.mean(axis=1, keepdims=True)
        sd = np.sqrt((r ** 2).mean(axis=1, keepdims=True))
        return np.divide(r, sd, out=np.zeros_like(r), where=sd > 0)

    return z(a) @ z(b).T / a.shape[1]


class NearestCentroidCaller(ClassifierMixin, BaseEstimator):
    """Call each sample the class whose centroid its profile correlates best with (Spearman).

    Before correlating, each gene is centred within the cohort being called (``centre``), as
    PAM50 practice does; call a cohort, not a lone sample. A scikit-learn classifier:
    :meth:`fit` stores the centroids, :meth:`decision_function` gives the correlations (the
    scores AUROC is computed from), :meth:`predict_proba` a softmax of them (not calibrated).

    Parameters
    ----------
    centroids
        Genes x classes table (e.g. the published PAM50 centroids); when given, :meth:`fit`
        needs no labels and takes the centroids as they are. ``None``: :meth:`fit` computes
        each class's mean of the centred training expression.
    centre
        ``"median"`` (default), ``"mean"`` or ``None``: how genes are centred within the
        training set (centroids from labels) and within each cohort called.
    temperature
        Softmax temperature of :meth:`predict_proba`.
    missing_genes
        A centroid gene absent from the expression: ``"error"`` (default, naming them) or
        ``"drop"`` (logged; the centroids are cut to the genes present).

    Examples
    --------
    >>> cent = pd.DataFrame({"up": [1.0, 1.0, -1.0, -1.0], "down": [-1.0, -1.0, 1.0, 1.0]},
    ...                     index=["A", "B", "C", "D"])
    >>> x = pd.DataFrame([[5, 6, 1, 2], [1, 2, 5, 6], [4, 7, 2, 1]], columns=list("ABCD"))
    >>> NearestCentroidCaller(centroids=cent).fit(x).predict(x).tolist()
    ['up', 'down', 'up']
    """

    def __init__(self, *, centroids: pd.DataFrame | None = None, centre: str | None = "median",
                 temperature: float = 0.1, missing_genes: str = "error") -> None:
        self.centroids = centroids
        self.centre = centre
        self.temperature = temperature
        self.missing_genes = missing_genes

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "centroids_")

    @classmethod
    def from_table(cls, path: str | Path, **kwargs: Any) -> NearestCentroidCaller:
        """A caller with the centroids of a CSV/TSV file: first column genes, one column per
        class (e.g. genefu's ``pam50_centroids``)."""
        p = Path(path)
        if not p.is_file():
            raise InputError(f"{p}: centroid table not found")
        sep = "," if p.suffix.lower() == ".csv" else "\t"
        tab = pd.read_csv(p, sep=sep, index_col=0, comment="#")
        try:
            tab = tab.astype(np.float64)
        except ValueError as e:
            raise InputError(f"{p}: centroid table must be genes (first column) x classes, "
                             f"numbers only ({e})") from None
        tab.index = tab.index.astype(str)
        return cls(centroids=tab, **kwargs)

    def fit(self, X: Any, y: Any = None) -> NearestCentroidCaller:
        """Store the centroids (from ``centroids``, or per-class means of the centred ``X``)."""
        if self.centre not in CENTRES:
            raise InputError(f"centre must be 'median', 'mean' or None, not {self.centre!r}")
        if self.missing_genes not in ("error", "drop"):
            raise InputError(f"missing_genes must be 'error' or 'drop', not "
                             f"{self.missing_genes!r}")
        if self.centroids is not None:
            tab = pd.DataFrame(self.centroids).astype(np.float64)
            if tab.shape[1] < 2 or tab.isna().to_numpy().any():
                raise InputError("centroid table: needs genes x at least 2 classes, no missing "
                                 f"values (have {tab.shape[1]} class column(s))")
            self.centroids_ = tab
        else:
            if y is None:
                raise InputError("NearestCentroidCaller.fit needs labels y, or give centroids=")
            x = np.asarray(X, dtype=np.float64)
            y = np.asarray(y)
            classes = np.unique(y)
            if len(classes) < 2:
                raise InputError(f"centroids need at least 2 classes; the labels have "
                                 f"{len(classes)} ({', '.join(map(str, classes))})")
            xc = centre_genes(x, self.centre)
            genes = X.columns if isinstance(X, pd.DataFrame) else pd.RangeIndex(x.shape[1])
            self.centroids_ = pd.DataFrame(
                np.vstack([xc[y == c].mean(axis=0) for c in classes]).T,
                index=genes, columns=classes)
        self.classes_ = np.asarray(self.centroids_.columns)
        if X is not None:
            self._match(X)
        return self

    def _match(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        cent = self.centroids_
        if isinstance(X, pd.DataFrame) and not isinstance(cent.index, pd.RangeIndex):
            missing = [str(g) for g in cent.index if g not in X.columns]
            if missing and self.missing_genes == "error":
                raise InputError(
                    f"gene(s) {', '.join(missing)} of the centroids absent from the expression "
                    "to call; supply them, or drop them (missing_genes='drop', CLI "
                    "--missing-genes drop)")
            if missing:
                logger.warning("centroid gene(s) %s absent from the expression; left out",
                               ", ".join(missing))
            genes = [g for g in cent.index if g in X.columns]
            x, c = X[genes].to_numpy(dtype=np.float64), cent.loc[genes].to_numpy()
        else:
            x, c = np.asarray(X, dtype=np.float64), cent.to_numpy()
            if x.ndim != 2 or x.shape[1] != c.shape[0]:
                raise InputError(f"expression has {x.shape[-1]} genes, the centroids "
                                 f"{c.shape[0]}")
        if x.shape[1] < 3:
            raise InputError(f"a Spearman correlation needs at least 3 genes; {x.shape[1]} "
                             "are shared by the expression and the centroids")
        return x, c

    def decision_function(self, X: Any) -> np.ndarray:
        """Spearman correlation of each (centred) sample with each centroid, (n, classes)."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        x, c = self._match(X)
        if not np.isfinite(x).all():
            raise InputError("expression to call has missing values; drop those samples first")
        if self.centre is not None and len(x) < 2:
            raise InputError("centring genes within the cohort needs at least 2 samples; "
                             "call a cohort, or use centre=None")
        return _spearman_rows(centre_genes(x, self.centre), c.T)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Softmax of the correlations over ``temperature`` (a ranking, not calibrated)."""
        from scipy.special import softmax

        return softmax(self.decision_function(X) / self.temperature, axis=1)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]


def standardise_genes(expr: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Z-score each gene within this dataset (mean 0, SD 1, population SD); constant genes
    become 0 and are returned (and logged).

    Examples
    --------
    >>> z, const = standardise_genes(pd.DataFrame({"A": [1.0, 3.0], "B": [2.0, 2.0]}))
    >>> z["A"].tolist(), const
    ([-1.0, 1.0], ['B'])
    """
    x = expr.to_numpy(dtype=np.float64)
    mu, sd = x.mean(axis=0), x.std(axis=0)
    const = [str(g) for g, s in zip(expr.columns, sd) if not s > 0]
    if const:
        logger.info("%d constant gene(s) set to 0 by standardisation: %s", len(const),
                    ", ".join(const[:10]))
    z = np.divide(x - mu, sd, out=np.zeros_like(x), where=sd > 0)
    return pd.DataFrame(z, index=expr.index, columns=expr.columns), const


def _standardise_rows(x: np.ndarray) -> np.ndarray:
    """Each row centred and scaled across its columns (a constant row stays zero)."""
    z = x - x.mean(axis=1, keepdims=True)
    sd = z.std(axis=1, keepdims=True)
    return np.divide(z, sd, out=np.zeros_like(z), where=sd > 0)


@dataclass(frozen=True)
class Clustering:
    """What :func:`cluster_samples` found.

    Attributes
    ----------
    labels
        Per sample (index = the samples clustered), ``"C1"`` ... ``"Ck"``, numbered by
        decreasing size.
    sizes
        Samples per cluster, indexed ``C1`` ... ``Ck``.
    silhouette
        Mean silhouette width under ``metric`` on the centred values (-1 to 1).
    centroids
        Genes x clusters: mean of the centred (log-scale) values of each cluster's samples,
        the table :class:`~histoexpr.clinical.subtypes.NearestCentroidCaller` takes.
    transform
        The transform applied (see :func:`log_scale`).
    n_dropped
        Samples left out because a gene value was missing.
    """

    labels: pd.Series
    sizes: pd.Series
    silhouette: float
    centroids: pd.DataFrame
    transform: str
    n_dropped: int = 0


def cluster_samples(
    expr: pd.DataFrame,
    *,
    k: int = 5,
    method: str = "hierarchical",
    metric: str = "correlation",
    transform: str = "auto",
    centre: str | None = "median",
    random_state: int = 0,
) -> Clustering:
    """Cluster samples on their gene profiles (e.g. the 50 PAM50 genes).

    Parameters
    ----------
    expr
        Samples x genes (the panel already selected).
    k
        Number of clusters (PAM50 has five intrinsic subtypes).
    method
        ``"hierarchical"`` (agglomerative, Ward's linkage) or ``"kmeans"`` (10 starts).
    metric
        ``"correlation"``: samples standardised across genes first, so clusters gather
        samples whose centred profiles correlate (see the module notes); ``"euclidean"``: the
        centred values as they are.
    transform
        ``"auto"``, ``"log2"`` or ``"none"`` (:func:`log_scale`); applied before centring.
    centre
        ``"median"`` (PAM50 practice), ``"mean"`` or ``None``: how each gene is centred
        within the cohort.
    random_state
        Seed of k-means.

    Returns
    -------
    Clustering
        Labels, sizes, silhouette and centroids (see :class:`Clustering`).
    """
    from sklearn.cluster import AgglomerativeClustering, KMeans
    from sklearn.metrics import silhouette_score

    if method not in CLUSTER_METHODS:
        raise InputError(f"method must be one of {', '.join(CLUSTER_METHODS)}, not {method!r}")
    if metric not in ("correlation", "euclidean"):
        raise InputError(f"metric must be 'correlation' or 'euclidean', not {metric!r}")
    ok = expr.notna().all(axis=1)
    n_dropped = int((~ok).sum())
    if n_dropped:
        logger.warning("clustering: %d of %d samples have missing gene values and are left "
                       "out", n_dropped, len(expr))
    expr = expr.loc[ok]
    if expr.shape[1] < 2:
        raise InputError(f"clustering needs at least 2 genes, have {expr.shape[1]}")
    if not 2 <= k < len(expr):
        raise InputError(f"k = {k} clusters needs 2 <= k < the number of samples ({len(expr)})")
    logged, used = log_scale(expr, transform=transform, what="clustering")
    xc = centre_genes(logged.to_numpy(), centre)
    feats = _standardise_rows(xc) if metric == "correlation" else xc
    if method == "hierarchical":
        raw = AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(feats)
    else:
        raw = KMeans(n_clusters=k, n_init=10, random_state=random_state).fit_predict(feats)
    # number clusters by decreasing size (ties: first appearance), so names are stable
    ids, counts = np.unique(raw, return_counts=True)
    order = ids[np.lexsort((ids, -counts))]
    rename = {int(c): f"C{i + 1}" for i, c in enumerate(order)}
    labels = pd.Series([rename[int(c)] for c in raw], index=expr.index, name="cluster")
    names = [f"C{i + 1}" for i in range(len(order))]
    sizes = labels.value_counts().reindex(names).rename("n")
    sil = float(silhouette_score(xc, labels.to_numpy(), metric=metric))
    centroids = pd.DataFrame(xc, index=expr.index, columns=expr.columns).groupby(
        labels.to_numpy()).mean().T[names]
    centroids.index.name = "gene"
    logger.info("clustering: %d samples into %d clusters (%s), silhouette %.3f", len(labels), k,
                ", ".join(f"{n}={s}" for n, s in sizes.items()), sil)
    return Clustering(labels=labels, sizes=sizes, silhouette=sil, centroids=centroids,
                      transform=used, n_dropped=n_dropped)


def compare_clusters(truth: Any, clusters: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Agreement of clusters with known classes: a table ``metric, class, value`` (``n``,
    ``adjusted_rand``, ``normalized_mutual_info``) and the contingency table (rows true class,
    columns cluster). Cluster names carry no class, so there is no accuracy.

    Examples
    --------
    >>> table, cont = compare_clusters(["a", "a", "b", "b"], ["C2", "C2", "C1", "C1"])
    >>> table["value"].tolist(), int(cont.loc["a", "C2"])
    ([4.0, 1.0, 1.0], 2)
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    t, c = np.asarray(truth, dtype=object), np.asarray(clusters, dtype=object)
    table = pd.DataFrame([("n", "all", float(len(t))),
                          ("adjusted_rand", "all", float(adjusted_rand_score(t, c))),
                          ("normalized_mutual_info", "all",
                           float(normalized_mutual_info_score(t, c)))],
                         columns=["metric", "class", "value"])
    conf = pd.crosstab(pd.Series(t, name="true"), pd.Series(c, name="predicted"))
    return table, conf
