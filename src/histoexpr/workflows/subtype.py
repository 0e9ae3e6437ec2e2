"""Subtype study: call subtypes on (predicted) expression with a soft-voting classifier,
nearest centroids or clusters, and score the calls against known classes. ``histoexpr analyze
subtype`` is :func:`subtype_study`."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from .inputs import expression_frame, input_label, input_path, named_genes
from .study import StudyOutput, StudyResult

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CLASSIFIER_PARAMS", "LABEL_HEADERS", "classifier_params", "label_series",
           "subtype_study"]

logger = logging.getLogger(__name__)

#: the keyword arguments of :func:`~histoexpr.clinical.subtypes.make_voting_classifier` a
#: caller may set (its seed, ``random_state``, is the study's ``seed``)
CLASSIFIER_PARAMS = ("n_estimators", "hidden_layer_sizes", "alpha", "learning_rate_init",
                     "max_iter", "C", "weights")
#: label columns looked for when no label column is named (lower case)
LABEL_HEADERS = ("subtype", "pam50", "pam50_subtype", "subtype_pam50", "pam50call", "label",
                 "class")


def label_series(table: Any, *, id_col: str | None, col: str | None, what: str) -> pd.Series:
    """The classes of a labels table (path, DataFrame or Series): column ``col``, else the
    only column, else one named subtype/pam50/label/class."""
    import pandas as pd

    from ..analysis.tables import read_clinical

    if isinstance(table, pd.Series):
        s = table.copy()  # a Series: the classes themselves
        s.index = s.index.astype(str)
        return s
    tab = table if hasattr(table, "columns") else read_clinical(table, id_col=id_col)
    name = input_label(table, f"{what} table")
    if col is None:
        lower = {str(c).lower(): c for c in tab.columns}
        found = [lower[h] for h in LABEL_HEADERS if h in lower]
        if tab.shape[1] == 1:
            col = tab.columns[0]
        elif found:
            col = found[0]
        else:
            raise InputError(f"{name}: which column holds the classes? name it with "
                             f"--{what}-col (columns: {', '.join(map(str, tab.columns))})")
    if col not in tab.columns:
        raise InputError(f"{name}: no column {col!r} (columns: "
                         f"{', '.join(map(str, tab.columns))})")
    logger.info("%s: classes from column %r of %s", what, col, name)
    return tab[col]


def _genes(spec: str | Sequence[str] | None) -> list[str] | None:
    request = named_genes(spec, use="a subtype caller",
                          instead="leave --genes out to use the genes the inputs share")
    return None if request is None else list(request.genes or ())


def _covers(expr: pd.DataFrame, labels: pd.Series) -> bool:
    from ..analysis.tables import align_samples

    try:
        align_samples(expr, labels.to_frame("label"), what=("expression", "labels"))
    except InputError:
        return False
    return True


def classifier_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """``params`` checked against :data:`CLASSIFIER_PARAMS` (the seed is ``seed``).

    >>> classifier_params({"n_estimators": 500})
    {'n_estimators': 500}
    """
    params = dict(params or {})
    allowed = CLASSIFIER_PARAMS
    bad = [k for k in params if k not in allowed]
    if bad:
        raise InputError(f"--param {', '.join(bad)}: not a voting-classifier parameter; "
                         f"use one of {', '.join(allowed)} (the seed is --seed)")
    return params


def _json_safe(d: dict[str, Any]) -> dict[str, Any]:
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in d.items()}


def _training_data(expression: Any, *, train: Any, train_source: str, source: str,
                   needs_labels: bool, uses_train: bool,
                   notes: list[str]) -> tuple[pd.DataFrame | None, str | None]:
    """The labelled training expression and how ``analysis.json`` names it."""
    from ..analysis.tables import is_bulk_run

    name = input_label(expression, "expression")
    if train is not None and uses_train:
        df = expression_frame(train, source=train_source)
        if isinstance(train, str | Path) and is_bulk_run(train):
            return df, f"{train} ({train_source})"
        return df, input_label(train, "in-memory training table")
    if needs_labels and isinstance(expression, str | Path) and is_bulk_run(expression) \
            and source == "predicted":
        notes.append("trained on the run's measured expression and applied to its "
                     "predictions; called patients that are training patients are "
                     "called by the fold model that did not see them")
        return expression_frame(expression, source="measured"), f"{name} (measured)"
    if needs_labels:
        notes.append("no --train: the classifier is trained on the expression it calls; "
                     "every call is cross-fitted (out-of-fold)")
        return None, f"{name} (the expression called)"
    return None, None


def _write(output: StudyOutput, res: Any, *, method: str) -> None:
    from ..plot.subtype import confusion_figure, roc_figure

    output.table("calls", res.calls)
    output.table("class_sizes", res.class_sizes)
    score_cols = [f"score_{c}" for c in res.classes]
    if res.metrics is not None:
        output.table("metrics", res.metrics.table)
        output.table("confusion", res.metrics.confusion, index=True)
        if method != "cluster":
            known = res.calls[res.calls["truth"].notna()]
            output.figure("roc", roc_figure(known["truth"], known[score_cols].to_numpy(),
                                            res.classes, title="called samples, one-vs-rest"))
        output.figure("confusion", confusion_figure(
            res.metrics.confusion, normalise=method != "cluster",
            title="clusters vs known classes" if method == "cluster" else None))
    if res.cv_metrics is not None and res.cv_calls is not None:
        output.table("cv_calls", res.cv_calls)
        output.table("cv_metrics", res.cv_metrics.table)
        output.table("cv_confusion", res.cv_metrics.confusion, index=True)
        output.figure("cv_roc", roc_figure(res.cv_calls["truth"],
                                           res.cv_calls[score_cols].to_numpy(), res.classes,
                                           title="training set, cross-validated"))
    if res.centroids is not None:
        output.table("centroids", res.centroids, index=True)


def subtype_study(
    expression: str | Path | pd.DataFrame,
    *,
    out: str | Path,
    method: str = "vote",
    train: str | Path | pd.DataFrame | None = None,
    train_source: str = "measured",
    labels: str | Path | pd.DataFrame | pd.Series | None = None,
    label_col: str | None = None,
    id_col: str | None = None,
    truth: str | Path | pd.DataFrame | pd.Series | None = None,
    truth_col: str | None = None,
    centroids: str | Path | pd.DataFrame | None = None,
    genes: str | Sequence[str] | None = None,
    missing_genes: str = "error",
    k: int = 5,
    cluster_method: str = "hierarchical",
    standardise: bool = True,
    transform: str = "auto",
    centre: str | None = "median",
    folds: int = 5,
    min_class_size: int = 5,
    drop_small_classes: bool = False,
    cross_fit: bool = True,
    classifier: Mapping[str, Any] | None = None,
    seed: int = 0,
    entry: str | None = None,
    source: str = "predicted",
    role: str | None = None,
) -> StudyResult:
    """Call subtypes of ``expression`` and, with known classes, score the calls.

    ``vote``: hist2RNA's soft-voting classifier (random forest, MLP, LDA, logistic
    regression) trained on expression with known labels. ``centroid``: nearest centroid by
    Spearman correlation, centroids from the labelled training data or ``centroids``.
    ``cluster``: ``k`` clusters of the gene panel, no labels. The classifier is
    cross-validated on the training set; called samples that are training samples are called
    by the fold model that did not see them (unless ``cross_fit=False``).

    Parameters
    ----------
    expression
        The expression to call, any expression input of :mod:`histoexpr.workflows.inputs`
        (``entry``, ``source``, ``role`` pick a run folder's rows).
    out
        Output folder: ``calls.csv``, ``class_sizes.csv``, [``metrics.csv``,
        ``confusion.csv``, ``roc.png``, ``confusion.png``], [``cv_*``], [``centroids.csv``],
        ``analysis.json``.
    train, train_source
        Expression with known labels (a run folder's ``train_source`` expression, a table or
        a DataFrame). Default: a run folder's measured expression, else ``expression``.
    labels, label_col, id_col
        Known classes of the training samples: a table (path or DataFrame; ``label_col``, or
        a column named subtype/pam50/label/class) or a Series indexed by id.
    truth, truth_col
        Known classes of the called samples (default: ``labels`` where they cover them).
    centroids
        Centroids for ``method="centroid"``: genes x classes (path or DataFrame).
    genes, missing_genes
        Gene panel (``"pam50"``, a panel file, ``"A,B"`` or a list; default the shared genes);
        panel genes absent from an input: ``"error"`` or ``"drop"``.
    standardise, transform, centre
        Z-score each gene within each dataset; ``log2(1+x)`` (auto, log2, none); gene
        centring of the centroid and cluster callers (median, mean, none).
    classifier
        Voting-classifier parameters, e.g. ``{"n_estimators": 500}``.

    Returns
    -------
    StudyResult
        ``res["calls"]``, ``res["class_sizes"]``, ``res["metrics"]`` (with known classes).

    Examples
    --------
    >>> from histoexpr.workflows import subtype_study
    >>> res = subtype_study("runs/bulk", labels="clinical.tsv", label_col="SUBTYPE",
    ...                     genes="pam50", out="out/subtype")  # doctest: +SKIP
    >>> res["metrics"]  # doctest: +SKIP
    """
    from ..clinical.subtypes import NearestCentroidCaller, subtype_analysis

    expr = expression_frame(expression, entry=entry, source=source, role=role)
    notes: list[str] = []
    label_s = (None if labels is None else
               label_series(labels, id_col=id_col, col=label_col, what="label"))
    needs_labels = method == "vote" or (method == "centroid" and centroids is None)
    if needs_labels and label_s is None:
        raise InputError(f"--method {method} needs --labels FILE (known classes of the "
                         "training samples)" + (" or --centroids FILE"
                                                if method == "centroid" else ""))
    train_df, train_from = _training_data(
        expression, train=train, train_source=train_source, source=source,
        needs_labels=needs_labels, uses_train=not (method == "centroid" and centroids is not
                                                   None), notes=notes)
    truth_s = None
    if truth is not None:
        truth_s = label_series(truth, id_col=id_col, col=truth_col or label_col, what="truth")
    elif label_s is not None and _covers(expr, label_s):
        truth_s = label_s
        notes.append("known classes of the called samples taken from --labels")
    cents = None
    if centroids is not None:
        if method != "centroid":
            raise InputError("--centroids goes with --method centroid")
        cents = (centroids if hasattr(centroids, "columns") else
                 NearestCentroidCaller.from_table(centroids).centroids)

    res = subtype_analysis(
        expr, method=method, train=train_df, labels=label_s, truth=truth_s,
        centroids=cents, genes=_genes(genes), missing_genes=missing_genes,
        standardise=standardise, transform=transform,
        centre=None if centre in (None, "none") else centre, k=k,
        cluster_method=cluster_method, folds=folds, min_class_size=min_class_size,
        small_classes="drop" if drop_small_classes else "error", cross_fit=cross_fit,
        classifier_params=classifier_params(classifier), random_state=seed)

    output = StudyOutput(out, "subtype")
    _write(output, res, method=method)
    for n in notes + res.notes:
        output.note(n)
    params = {
        "expression": input_path(expression), "entry": entry, "source": source, "role": role,
        "method": method, "train": input_path(train), "train_source": train_source,
        "labels": input_path(labels), "label_col": label_col, "id_col": id_col,
        "truth": input_path(truth), "truth_col": truth_col,
        "centroids": input_path(centroids), "genes": genes, "missing_genes": missing_genes,
        "k": k, "cluster_method": cluster_method, "standardise": standardise,
        "transform": transform, "centre": centre, "folds": folds,
        "min_class_size": min_class_size, "drop_small_classes": drop_small_classes,
        "cross_fit": cross_fit, "classifier": dict(classifier or {}), "seed": seed,
        "out": str(out)}
    params = {k_: (str(v) if isinstance(v, Path) else v) for k_, v in params.items()}
    summary = {**_json_safe(res.summary), "training_data": train_from}
    record = output.finish(params=params, summary=summary, inputs={
        "expression": expression, "train": train, "labels": labels, "truth": truth,
        "centroids": centroids})
    return output.result(record)
