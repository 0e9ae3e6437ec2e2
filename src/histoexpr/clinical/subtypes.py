"""Subtype calling on measured or predicted expression (issue 6; seed 001, hist2RNA).

Three callers, one protocol:

- ``"vote"``: :func:`make_voting_classifier`, soft voting over a random forest, an MLP, LDA
  and logistic regression (hist2RNA's PAM50 classifier), trained on labelled expression;
- ``"centroid"``: :class:`NearestCentroidCaller`, the class whose centroid correlates best
  (Spearman, after centring each gene within the cohort being called, as PAM50 does), with
  centroids from labelled training data or from a user table (genes x classes);
- ``"cluster"``: no labels: :func:`~histoexpr.clinical.clusters.cluster_samples` finds ``k``
  clusters on the gene panel and their centroids call the samples.

:func:`subtype_analysis` ties them together. A classifier trained on *measured* expression
and applied to *predicted* expression meets values shrunk towards the mean and on another
scale; so by default each gene is z-scored within each dataset separately. Training
labels are checked (missing ones dropped and counted, too-small classes refused), the
classifier is cross-validated (stratified) on the training set, and called samples that are
also training samples are called *cross-fitted*: by the fold model that did not see them.
:func:`evaluate_calls` scores calls against known labels: accuracy, macro-F1, one-vs-rest
AUROC per class and the confusion matrix.

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> y = np.repeat(["A", "B", "C"], 20)
>>> shift = {"A": [2, 0, 0, 0], "B": [0, 2, 0, 0], "C": [0, 0, 2, 0]}
>>> x = np.array([shift[c] for c in y]) + rng.normal(0, 0.5, (60, 4))
>>> expr = pd.DataFrame(x, columns=list("WXYZ"), index=[f"s{i}" for i in range(60)])
>>> res = subtype_analysis(expr, method="centroid", labels=pd.Series(y, index=expr.index),
...                        truth=pd.Series(y, index=expr.index))
>>> res.summary["accuracy"] > 0.9, res.summary["cv_accuracy"] > 0.9
(True, True)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..analysis.tables import align_samples, select_genes
from ..barcodes import try_parse_barcode
from ..errors import InputError
from .clusters import (
    NearestCentroidCaller,
    cluster_samples,
    compare_clusters,
    log_scale,
    standardise_genes,
)
from .labels import drop_missing_labels

logger = logging.getLogger(__name__)

__all__ = [
    "METHODS",
    "CallMetrics",
    "NearestCentroidCaller",
    "SubtypeResult",
    "compare_clusters",
    "evaluate_calls",
    "make_voting_classifier",
    "standardise_genes",
    "subtype_analysis",
]

#: subtype callers of :func:`subtype_analysis`
METHODS = ("vote", "centroid", "cluster")


def make_voting_classifier(
    *,
    random_state: int | None = 0,
    n_estimators: int = 200,
    hidden_layer_sizes: tuple[int, ...] = (100,),
    alpha: float = 1e-4,
    learning_rate_init: float = 1e-3,
    max_iter: int = 2000,
    C: float = 1.0,
    weights: Sequence[float] | None = None,
) -> Any:
    """hist2RNA's subtype classifier: soft voting over RF, MLP, LDA and logistic regression.

    Seed 001 names the four learners and soft voting but no hyper-parameters; these are
    scikit-learn's defaults except where small, wide training sets need otherwise: LDA uses
    the ``lsqr`` solver with Ledoit-Wolf shrinkage (stable when genes approach samples), the
    MLP and logistic regression get enough iterations to converge. The MLP, LDA and logistic
    regression see standardised genes (a :class:`~sklearn.preprocessing.StandardScaler` in
    front); the forest does not need it.

    Parameters
    ----------
    random_state
        Seed of the forest and the MLP.
    n_estimators, (hidden_layer_sizes, alpha, learning_rate_init, max_iter), C
        Trees of the forest; the MLP's hidden layers, L2 penalty, Adam step and epoch limit;
        inverse regularisation of the logistic regression.
    weights
        Weights of the four learners' probabilities (RF, MLP, LDA, LR); equal by default.

    Returns
    -------
    sklearn.ensemble.VotingClassifier (unfitted)

    Examples
    --------
    >>> clf = make_voting_classifier(random_state=1)
    >>> [name for name, _ in clf.estimators], clf.voting
    (['rf', 'mlp', 'lda', 'lr'], 'soft')
    """
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.ensemble import RandomForestClassifier, VotingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    estimators = [
        ("rf", RandomForestClassifier(n_estimators=n_estimators, random_state=random_state)),
        ("mlp", make_pipeline(StandardScaler(), MLPClassifier(
            hidden_layer_sizes=hidden_layer_sizes, alpha=alpha, max_iter=max_iter,
            learning_rate_init=learning_rate_init, random_state=random_state))),
        ("lda", make_pipeline(StandardScaler(), LinearDiscriminantAnalysis(
            solver="lsqr", shrinkage="auto"))),
        ("lr", make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))),
    ]
    return VotingClassifier(estimators, voting="soft",
                            weights=None if weights is None else list(weights))


@dataclass(frozen=True)
class CallMetrics:
    """What :func:`evaluate_calls` measured.

    ``table``: columns ``metric, class, value``: ``n``, ``accuracy``, ``macro_f1``,
    ``auroc_macro`` (mean over defined AUROCs) for ``class = "all"``; ``n_true``, ``f1``,
    ``auroc`` per class. ``confusion``: rows true, columns predicted. ``n_auroc_undefined``:
    classes whose AUROC is NaN (absent from, or the only class of, ``y_true``).
    """

    table: pd.DataFrame
    confusion: pd.DataFrame
    n_auroc_undefined: int

    def value(self, metric: str, cls: str = "all") -> float:
        t = self.table
        return float(t.loc[(t["metric"] == metric) & (t["class"] == cls), "value"].iloc[0])


def evaluate_calls(y_true: Sequence[Any], y_pred: Sequence[Any], scores: Any,
                   classes: Sequence[Any]) -> CallMetrics:
    """Accuracy, macro-F1, one-vs-rest AUROC per class and the confusion matrix.

    Parameters
    ----------
    y_true, y_pred
        Known and called class of each sample.
    scores
        (samples, classes), higher = more of that class (probabilities or correlations).
    classes
        The classes the caller can call. True classes outside them count as errors and get
        a confusion row but no AUROC.

    Returns
    -------
    CallMetrics
        Macro-F1 averages the classes in ``y_true`` or ``y_pred``; a class absent from
        ``y_true`` has AUROC NaN (counted in ``n_auroc_undefined``, logged).

    Examples
    --------
    >>> m = evaluate_calls(["a", "a", "b", "b"], ["a", "b", "b", "b"],
    ...                    [[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]], ["a", "b"])
    >>> m.value("accuracy"), round(m.value("macro_f1"), 3), m.value("auroc", "a")
    (0.75, 0.733, 1.0)
    >>> m.confusion.to_numpy().tolist()
    [[1, 1], [0, 2]]
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score

    yt, yp = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    s = np.asarray(scores, dtype=np.float64)
    classes = list(classes)
    if len(yt) == 0 or len(yt) != len(yp) or s.shape != (len(yt), len(classes)):
        raise InputError(f"evaluate_calls: {len(yt)} true labels, {len(yp)} calls and scores "
                         f"of shape {s.shape} for {len(classes)} classes do not match")
    extra = [c for c in dict.fromkeys(yt) if c not in classes]
    if extra:
        logger.warning("true class(es) %s are not among the caller's classes; their samples "
                       "count as errors", ", ".join(map(str, extra)))
    present = [c for c in classes + extra if c in set(yt) | set(yp)]
    f1 = f1_score(yt, yp, labels=present, average=None, zero_division=0)
    f1_by = dict(zip(present, f1))
    rows: list[tuple[str, Any, float]] = [("n", "all", float(len(yt))),
                                          ("accuracy", "all", float(accuracy_score(yt, yp))),
                                          ("macro_f1", "all", float(np.mean(f1)))]
    aurocs = []
    for j, c in enumerate(classes):
        pos = yt == c
        auc = float(roc_auc_score(pos, s[:, j])) if 0 < pos.sum() < len(yt) else float("nan")
        aurocs.append(auc)
        rows += [("n_true", c, float(pos.sum())), ("f1", c, float(f1_by.get(c, 0.0))),
                 ("auroc", c, auc)]
    for c in extra:
        rows += [("n_true", c, float((yt == c).sum())), ("f1", c, 0.0)]
    n_nan = int(np.isnan(aurocs).sum())
    if n_nan:
        logger.info("AUROC undefined for %d class(es) absent from (or alone in) the truth", n_nan)
    defined = [a for a in aurocs if not np.isnan(a)]
    rows.insert(3, ("auroc_macro", "all", float(np.mean(defined)) if defined else float("nan")))
    labels = classes + extra
    cm = confusion_matrix(yt, yp, labels=labels)
    confusion = pd.DataFrame(cm, index=pd.Index(labels, name="true"),
                             columns=pd.Index(labels, name="predicted"))
    table = pd.DataFrame(rows, columns=["metric", "class", "value"])
    return CallMetrics(table=table, confusion=confusion, n_auroc_undefined=n_nan)


@dataclass
class SubtypeResult:
    """Tables of :func:`subtype_analysis` (``None`` where the inputs allow none).

    ``calls``: ``sample, call, [truth], model`` (``"all"``: the model trained on all training
    samples; ``"fold k"``: cross-fitted, the sample was in training), ``score_<class>``
    (probabilities for ``vote``, Spearman correlations for ``centroid``/``cluster``).
    ``class_sizes``: ``class, n_called, fraction[, n_train]``. ``metrics``: calls vs ``truth``
    (``cluster``: adjusted Rand, NMI and the contingency table). ``cv_*``: the classifier
    cross-validated on the training set. ``centroids``: genes x classes of the centroid
    callers."""

    calls: pd.DataFrame
    class_sizes: pd.DataFrame
    classes: list[str]
    metrics: CallMetrics | None = None
    cv_calls: pd.DataFrame | None = None
    cv_metrics: CallMetrics | None = None
    centroids: pd.DataFrame | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _complete_rows(df: pd.DataFrame, what: str, summary: dict[str, Any], key: str
                   ) -> pd.DataFrame:
    """Rows without missing values; the count of the others goes in ``summary[key]``."""
    ok = df.notna().all(axis=1).to_numpy()
    if summary.setdefault(key, int((~ok).sum())):
        logger.warning("%s: %d of %d samples have missing gene values and are left out", what,
                       summary[key], len(df))
    return df.loc[ok].set_axis(df.index[ok].astype(str), axis=0)


def _select_panel(expr: pd.DataFrame, train: pd.DataFrame | None, cent: pd.DataFrame | None,
                  genes: Sequence[str] | None, required: bool) -> list[str]:
    if genes is None:
        if cent is not None:
            genes = list(cent.index)
        elif train is not None:
            genes = [g for g in expr.columns if g in set(train.columns)]
            if not genes:
                raise InputError("the training expression and the expression to call share no "
                                 "gene; are the gene ids of the same kind?")
            if len(genes) < max(expr.shape[1], train.shape[1]):
                logger.info("genes in only one of the training and called expression are left "
                            "out; %d shared", len(genes))
        else:
            genes = list(expr.columns)
    genes = list(dict.fromkeys(genes))
    for df, what in ((expr, "expression to call"), (train, "training expression"),
                     (None if cent is None else cent.T, "centroid table")):
        if df is not None:
            genes = list(select_genes(df, genes, what=what, required=required).columns)
    return genes


def _ids(ids: Any, *others: Any) -> list[str]:
    """The keys :func:`align_samples` joins on: patient barcodes when every id (here and in
    ``others``) is a TCGA barcode, else the ids."""
    bcs = [try_parse_barcode(s) for s in ids]
    tcga = all(bcs) and all(try_parse_barcode(s) for o in others for s in o)
    return [b.patient for b in bcs] if tcga else [str(s) for s in ids]  # type: ignore


def _scores(model: Any, x: pd.DataFrame) -> np.ndarray:
    """Correlations of the centroid caller, soft-vote probabilities otherwise."""
    if isinstance(model, NearestCentroidCaller):
        return model.decision_function(x)
    return model.predict_proba(x)


@dataclass
class _Trained:
    model: Any
    y: np.ndarray
    classes: list[str]
    train_ids: set[str]
    fold_models: list[Any]
    fold_of: dict[str, int]
    cv_calls: pd.DataFrame | None
    cv_metrics: CallMetrics | None


def _train(train: pd.DataFrame, labels: pd.Series, new_model: Any, prep: Any, *,
           transform: str, folds: int, min_class_size: int, small_classes: str,
           random_state: int, summary: dict[str, Any], notes: list[str]) -> _Trained:
    """Labels checked and joined, the model fitted on all of them and cross-validated."""
    lab, n_nolab = drop_missing_labels(labels, "labels")
    n0 = len(train)
    train, lab_df = align_samples(train, lab.to_frame("label"),
                                  what=("training expression", "labels"))
    summary.update(n_train_unlabelled=n0 - len(train), n_labels_missing=n_nolab)
    if n0 > len(train):
        notes.append(f"{n0 - len(train)} of {n0} training samples had no label and were dropped")
    y = lab_df["label"].to_numpy(dtype=object)
    counts = pd.Series(y).value_counts()
    small = counts[counts < min_class_size]
    names = ", ".join(f"{c!r} ({n})" for c, n in small.items())
    if len(small) and small_classes == "error":
        raise InputError(f"too few training samples in class(es) {names}; each needs "
                         f"{min_class_size}: merge or remove them (CLI --drop-small-classes "
                         "drops their samples)")
    if len(small):
        keep = ~pd.Series(y).isin(small.index).to_numpy()
        notes.append(f"class(es) {names} with fewer than {min_class_size} training samples "
                     "dropped")
        logger.warning(notes[-1])
        train, y = train.loc[keep], y[keep]
    classes = sorted(set(y))
    if len(classes) < 2:
        raise InputError(f"the training labels hold only one class ({classes[0]!r}, after "
                         "dropping missing labels and small classes); a classifier needs two")
    train_l, summary["transform_train"] = log_scale(train, transform=transform,
                                                    what="training expression")
    summary["n_train"] = len(train)
    model = new_model().fit(prep(train_l), y)
    trained = _Trained(model, y, classes, set(_ids(train.index)), [], {}, None, None)
    n_splits = min(folds, int(counts.reindex(classes).min()))
    summary["cv_folds"] = n_splits if n_splits >= 2 else 0
    if n_splits >= 2:
        _cross_validate(trained, train_l, new_model, prep, n_splits, random_state)
    else:
        notes.append("no cross-validation: a class has fewer than 2 training samples")
    return trained


def _cross_validate(t: _Trained, train_l: pd.DataFrame, new_model: Any, prep: Any,
                    n_splits: int, random_state: int) -> None:
    """Stratified k-fold on the training set, each part standardised on its own; fills the
    fold models, ``{sample: fold}``, the out-of-fold calls and their metrics."""
    from sklearn.model_selection import StratifiedKFold

    skf = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    oof = np.zeros((len(t.y), len(t.classes)))
    fold = np.zeros(len(t.y), dtype=int)
    for f, (tr, te) in enumerate(skf.split(train_l, t.y)):
        m = new_model().fit(prep(train_l.iloc[tr]), t.y[tr])
        t.fold_models.append(m)
        oof[te] = _scores(m, prep(train_l.iloc[te]))
        fold[te] = f
    call = np.asarray(t.classes, dtype=object)[np.argmax(oof, axis=1)]
    t.cv_calls = pd.DataFrame({"sample": train_l.index, "truth": t.y, "call": call,
                               "fold": fold + 1})
    for j, c in enumerate(t.classes):
        t.cv_calls[f"score_{c}"] = oof[:, j]
    t.cv_metrics = evaluate_calls(t.y, call, oof, t.classes)
    t.fold_of = dict(zip(_ids(train_l.index), fold.tolist()))


def subtype_analysis(
    expr: pd.DataFrame,
    *,
    method: str = "vote",
    train: pd.DataFrame | None = None,
    labels: pd.Series | None = None,
    truth: pd.Series | None = None,
    centroids: pd.DataFrame | None = None,
    genes: Sequence[str] | None = None,
    missing_genes: str = "error",
    standardise: bool = True,
    transform: str = "auto",
    centre: str | None = "median",
    k: int = 5,
    cluster_method: str = "hierarchical",
    folds: int = 5,
    min_class_size: int = 5,
    small_classes: str = "error",
    cross_fit: bool = True,
    classifier_params: Mapping[str, Any] | None = None,
    random_state: int = 0,
) -> SubtypeResult:
    """Call subtypes of the samples of ``expr`` and, with known labels, score the calls.

    Parameters
    ----------
    expr
        Samples x genes to call (e.g. predicted expression).
    method
        ``"vote"`` (:func:`make_voting_classifier`), ``"centroid"``
        (:class:`NearestCentroidCaller`, from ``labels`` or ``centroids``) or ``"cluster"``
        (``k`` clusters of ``train``, or of ``expr`` itself, call the samples by centroid).
    train
        Samples x genes with known ``labels`` (e.g. measured expression); ``None``: ``expr``
        itself (its calls are then all cross-fitted).
    labels
        Class per training sample (index = sample id; TCGA barcodes join by patient);
        missing labels are dropped and counted.
    truth
        Known class of called samples; scored where present (the others counted).
    centroids
        Genes x classes table for ``method="centroid"`` (no training then).
    genes, missing_genes
        The gene panel (default: the genes the inputs share). Panel genes absent from an
        input are an error naming them (``"error"``) or dropped and logged (``"drop"``).
    standardise
        Z-score each gene within each dataset separately (training set, called set, each
        cross-validation part), so a classifier trained on measured expression applies to
        predictions that are shrunk and shifted. The summary and notes say which was used.
    transform
        ``"auto"``, ``"log2"`` or ``"none"``, decided per dataset
        (:func:`~histoexpr.clinical.clusters.log_scale`).
    centre
        Within-cohort gene centring of the centroid and cluster callers.
    k, cluster_method
        Clusters for ``method="cluster"`` (:func:`~histoexpr.clinical.clusters.cluster_samples`).
    folds
        Stratified cross-validation folds on the training set (fewer if a class is smaller).
    min_class_size, small_classes
        A class with fewer training samples is an error (``"error"``) or its samples are
        dropped (``"drop"``, logged and noted).
    cross_fit
        Call samples that are also training samples with the fold model that left them out
        (default); ``False`` uses the model trained on all samples (optimistic, noted).
    classifier_params, random_state
        Keyword arguments of :func:`make_voting_classifier`; seed of classifiers, folds, k-means.

    Returns
    -------
    SubtypeResult
    """
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    if missing_genes not in ("error", "drop") or small_classes not in ("error", "drop"):
        raise InputError("missing_genes and small_classes must be 'error' or 'drop'")
    use_table = method == "centroid" and centroids is not None
    supervised = method == "vote" or (method == "centroid" and not use_table)
    if supervised and labels is None:
        raise InputError(f"method {method!r} needs training labels (a labels table)"
                         + (" or a centroid table" if method == "centroid" else ""))
    summary: dict[str, Any] = {"method": method, "standardise": standardise}
    notes: list[str] = []
    train = None if use_table else expr if train is None and supervised else train
    cent_in = pd.DataFrame(centroids).astype(np.float64) if use_table else None
    panel = _select_panel(expr, train, cent_in, genes, missing_genes == "error")
    summary["n_genes"] = len(panel)
    summary["genes_dropped"] = [str(g) for g in (panel if genes is None else genes)
                                if g not in panel]
    expr = _complete_rows(expr[panel], "expression to call", summary, "n_called_missing_values")
    if len(expr) < 2:
        raise InputError(f"expression to call: {len(expr)} complete sample(s); need 2 or more")
    expr_l, summary["transform_called"] = log_scale(expr, transform=transform,
                                                    what="expression to call")
    prep = (lambda d: standardise_genes(d)[0]) if standardise else (lambda d: d)
    expr_z = prep(expr_l)
    if train is not None:
        train = _complete_rows(train[panel], "training expression", summary,
                               "n_train_missing_values")

    t: _Trained | None = None
    cl = own_clusters = None
    if supervised:
        assert train is not None and labels is not None

        def new_model() -> Any:
            if method == "vote":
                return make_voting_classifier(random_state=random_state,
                                              **dict(classifier_params or {}))
            return NearestCentroidCaller(centre=centre)

        t = _train(train, labels, new_model, prep, transform=transform, folds=folds,
                   min_class_size=min_class_size, small_classes=small_classes,
                   random_state=random_state, summary=summary, notes=notes)
        model, classes = t.model, t.classes
        centroids = model.centroids_ if method == "centroid" else None
    elif method == "centroid":
        model = NearestCentroidCaller(centroids=cent_in.loc[panel], centre=centre).fit(expr_z)
        centroids, classes = model.centroids_, [str(c) for c in model.classes_]
    else:
        base = expr_z
        if train is not None:
            tr_l, summary["transform_train"] = log_scale(train, transform=transform,
                                                         what="training expression")
            base = prep(tr_l)
        cl = cluster_samples(base, k=k, method=cluster_method, transform="none", centre=centre,
                             random_state=random_state)
        summary.update(silhouette=cl.silhouette, n_clustered=len(cl.labels))
        centroids = cl.centroids
        model = NearestCentroidCaller(centroids=centroids, centre=centre).fit(expr_z)
        classes = list(centroids.columns)
        if base is expr_z:
            summary["cluster_call_agreement"] = float(
                np.mean(model.predict(expr_z) == cl.labels.to_numpy()))
            own_clusters = cl.labels.to_numpy()

    sc = _scores(model, expr_z)
    origin = np.full(len(expr_z), "all", dtype=object)
    keys = _ids(expr_z.index)
    overlap = [] if t is None else [i for i, s in enumerate(keys) if s in t.train_ids]
    summary["n_overlap_train"] = len(overlap)
    if overlap and cross_fit and t is not None and t.fold_models:
        for f, m in enumerate(t.fold_models):
            rows = [i for i in overlap if t.fold_of[keys[i]] == f]
            if rows:
                # the fold model scores the whole called cohort (the centroid caller centres
                # genes within it), and its rows are kept
                sc[rows] = _scores(m, expr_z)[rows]
                origin[rows] = f"fold {f + 1}"
        notes.append(f"{len(overlap)} called samples are also training samples; each was "
                     "called by the cross-validation model that did not see it (cross-fitted)")
    elif overlap:
        notes.append(f"{len(overlap)} called samples are also training samples and were called "
                     "by a model trained on them: their calls are optimistic")
    calls = pd.DataFrame({"sample": expr_z.index,
                          "call": np.asarray(classes, dtype=object)[np.argmax(sc, axis=1)],
                          "model": origin})
    if own_clusters is not None:  # the clustering's own labels beside the centroid calls
        calls.insert(2, "cluster", own_clusters)
    for j, c in enumerate(classes):
        calls[f"score_{c}"] = sc[:, j]
    summary["n_called"] = len(calls)
    summary["standardised"] = ("each gene z-scored within each dataset separately"
                               if standardise else "no per-dataset standardisation")
    notes.append(f"standardisation: {summary['standardised']}")

    metrics = None
    if truth is not None:
        calls, metrics = _score_truth(calls, truth, classes, method, summary, notes)
    elif not supervised:
        notes.append("no known labels for the called samples: class sizes only, no accuracy")
    if t is not None and t.cv_metrics is not None:
        summary.update({f"cv_{key}": t.cv_metrics.value(key)
                        for key in ("accuracy", "macro_f1", "auroc_macro")})
    sizes = calls["call"].value_counts().reindex(classes, fill_value=0)
    class_sizes = pd.DataFrame({"class": classes, "n_called": sizes.to_numpy(),
                                "fraction": sizes.to_numpy() / len(calls)})
    if t is not None:
        class_sizes["n_train"] = pd.Series(t.y).value_counts().reindex(classes).to_numpy()
    if cl is not None:
        class_sizes["n_clustered"] = cl.sizes.reindex(classes).to_numpy()
    summary["class_sizes"] = {str(c): int(n) for c, n in sizes.items()}
    logger.info("called %d samples: %s", len(calls),
                ", ".join(f"{c}={n}" for c, n in summary["class_sizes"].items()))
    return SubtypeResult(calls=calls, class_sizes=class_sizes, classes=classes, metrics=metrics,
                         cv_calls=None if t is None else t.cv_calls,
                         cv_metrics=None if t is None else t.cv_metrics, centroids=centroids,
                         summary=summary, notes=notes)


def _score_truth(calls: pd.DataFrame, truth: pd.Series, classes: list[str], method: str,
                 summary: dict[str, Any], notes: list[str]) -> tuple[pd.DataFrame, CallMetrics]:
    """Join the known classes to the calls and score them."""
    tr_lab, _ = drop_missing_labels(truth, "truth")
    called, t_df = align_samples(calls.set_index("sample"), tr_lab.to_frame("truth"),
                                 what=("called samples", "truth"))
    keys = _ids(calls["sample"], tr_lab.index)
    calls = calls.copy()
    calls.insert(2, "truth", pd.Series(keys).map(t_df["truth"]).to_numpy())
    summary.update(n_truth=len(t_df), n_called_without_truth=len(calls) - len(t_df))
    if summary["n_called_without_truth"]:
        notes.append(f"{summary['n_called_without_truth']} called samples have no known label "
                     "and are not scored")
    if method == "cluster":
        m = CallMetrics(*compare_clusters(t_df["truth"].to_numpy(), called["call"].to_numpy()),
                        n_auroc_undefined=0)
        summary.update(adjusted_rand=m.value("adjusted_rand"),
                       normalized_mutual_info=m.value("normalized_mutual_info"))
        return calls, m
    m = evaluate_calls(t_df["truth"].to_numpy(), called["call"].to_numpy(),
                       called[[f"score_{c}" for c in classes]].to_numpy(), classes)
    summary.update(accuracy=m.value("accuracy"), macro_f1=m.value("macro_f1"),
                   auroc_macro=m.value("auroc_macro"), n_auroc_undefined=m.n_auroc_undefined)
    unknown = sorted(set(t_df["truth"]) - set(classes))
    if unknown:
        notes.append(f"true class(es) {', '.join(unknown)} cannot be called by this caller; "
                     "their samples count as errors")
    return calls, m
