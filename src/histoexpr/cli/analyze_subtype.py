"""``histoexpr analyze subtype``: call subtypes on (predicted) expression.

    histoexpr analyze subtype --expression RUN|FILE --out DIR
        [--method vote|centroid|cluster] [--train RUN|FILE] [--train-source measured]
        [--labels FILE --label-col COL] [--truth FILE [--truth-col COL]] [--centroids FILE]
        [--genes pam50|FILE|A,B] [--missing-genes error|drop] [--k 5]
        [--no-standardise] [--seed 0]

``vote``: hist2RNA's soft-voting classifier (random forest, MLP, LDA, logistic regression)
trained on expression with known labels. ``centroid``: nearest centroid by Spearman
correlation, centroids from the labelled training data or from ``--centroids`` (genes x
classes). ``cluster``: no labels; ``--k`` clusters of the gene panel, whose centroids call
the samples (class sizes only).

Training data: ``--train`` (a run folder's ``--train-source`` expression, or a table); when
``--expression`` is a bulk run folder and ``--train`` is not given, the run's measured
expression. Labels (``--labels``) are joined by id (TCGA barcodes by patient); samples without
a label are dropped and counted. The classifier is cross-validated (stratified) on the
training set; called samples that are also training samples are called by the fold model
that did not see them. By default each gene is z-scored within each dataset separately
(predictions are shrunk and shifted against measured expression); ``--no-standardise`` turns
that off. Known classes of the called samples (``--truth``, or the labels where they cover the
called samples) give accuracy, macro-F1, per-class AUROC and the confusion matrix.

Writes calls.csv, class_sizes.csv, [metrics.csv, confusion.csv, roc.png, confusion.png],
[cv_calls.csv, cv_metrics.csv, cv_confusion.csv, cv_roc.png], [centroids.csv],
analysis.json.
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import Any

from ..errors import InputError
from .analyze import add_expression_args, add_out_arg, load_expression, print_files

logger = logging.getLogger(__name__)

#: label columns looked for when --label-col is not given (lower case)
LABEL_HEADERS = ("subtype", "pam50", "pam50_subtype", "subtype_pam50", "pam50call", "label",
                 "class")


def add_parser(ss: argparse._SubParsersAction) -> None:
    p = ss.add_parser("subtype", help="call subtypes: soft-voting classifier, nearest "
                      "centroid, or clusters", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    add_expression_args(p)
    p.add_argument("--method", default="vote", choices=["vote", "centroid", "cluster"],
                   help="caller (default vote)")
    p.add_argument("--train", type=Path, default=None, metavar="RUN|FILE",
                   help="expression with known labels (default: a run's measured expression, "
                   "else --expression itself)")
    p.add_argument("--train-source", default="measured", choices=["measured", "predicted"],
                   help="--train run folder: measured (default) or predicted expression")
    p.add_argument("--labels", type=Path, default=None, help="table of known classes")
    p.add_argument("--label-col", default=None, help="class column of --labels (default: the "
                   "only column, or one named subtype/pam50/label/class)")
    p.add_argument("--id-col", default=None, help="id column of --labels/--truth")
    p.add_argument("--truth", type=Path, default=None, help="known classes of the called "
                   "samples (default: --labels where they cover them)")
    p.add_argument("--truth-col", default=None, help="class column of --truth")
    p.add_argument("--centroids", type=Path, default=None,
                   help="centroid table for --method centroid: genes (first column) x classes")
    p.add_argument("--genes", default=None,
                   help="gene panel: pam50, a panel file, or A,B,C (default: shared genes)")
    p.add_argument("--missing-genes", default="error", choices=["error", "drop"],
                   help="panel genes absent from an input: error (default) or drop them")
    p.add_argument("--k", type=int, default=5, help="clusters of --method cluster")
    p.add_argument("--cluster-method", default="hierarchical", choices=["hierarchical",
                                                                          "kmeans"])
    p.add_argument("--no-standardise", dest="standardise", action="store_false",
                   help="do not z-score genes within each dataset")
    p.add_argument("--transform", default="auto", choices=["auto", "log2", "none"],
                   help="log2(1+x) the values (auto: when they look linear, e.g. RSEM)")
    p.add_argument("--centre", default="median", choices=["median", "mean", "none"],
                   help="gene centring of the centroid and cluster callers")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    p.add_argument("--min-class-size", type=int, default=5)
    p.add_argument("--drop-small-classes", action="store_true",
                   help="drop classes with fewer than --min-class-size training samples")
    p.add_argument("--no-cross-fit", dest="cross_fit", action="store_false",
                   help="call training samples with the full model (optimistic)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="voting-classifier parameter, e.g. --param n_estimators=500")
    p.add_argument("--seed", type=int, default=0)
    add_out_arg(p)
    p.set_defaults(func=run_subtype)


def _label_series(path: Path, *, id_col: str | None, col: str | None, what: str) -> Any:
    from ..analysis.tables import read_clinical

    tab = read_clinical(path, id_col=id_col)
    if col is None:
        lower = {str(c).lower(): c for c in tab.columns}
        found = [lower[h] for h in LABEL_HEADERS if h in lower]
        if tab.shape[1] == 1:
            col = tab.columns[0]
        elif found:
            col = found[0]
        else:
            raise InputError(f"{path}: which column holds the classes? name it with "
                             f"--{what}-col (columns: {', '.join(map(str, tab.columns))})")
    if col not in tab.columns:
        raise InputError(f"{path}: no column {col!r} (columns: "
                         f"{', '.join(map(str, tab.columns))})")
    logger.info("%s: classes from column %r of %s", what, col, path)
    return tab[col]


def _genes(spec: str | None) -> list[str] | None:
    if spec is None:
        return None
    from ..expression.panels import list_panels, load_panel

    if spec.lower() in list_panels() or Path(spec).is_file():
        return load_panel(spec)
    return [g.strip() for g in spec.split(",") if g.strip()]


def _covers(expr: Any, labels: Any) -> bool:
    from ..analysis.tables import align_samples

    try:
        align_samples(expr, labels.to_frame("label"), what=("expression", "labels"))
    except InputError:
        return False
    return True


def _classifier_params(items: list[str]) -> dict[str, Any]:
    import inspect

    from ..clinical.subtypes import make_voting_classifier
    from . import parse_params

    params = parse_params(items)
    allowed = [k for k in inspect.signature(make_voting_classifier).parameters
               if k != "random_state"]
    bad = [k for k in params if k not in allowed]
    if bad:
        raise InputError(f"--param {', '.join(bad)}: not a voting-classifier parameter; "
                         f"use one of {', '.join(allowed)} (the seed is --seed)")
    return params


def _json_safe(d: dict[str, Any]) -> dict[str, Any]:
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in d.items()}


def run_subtype(args: argparse.Namespace) -> int:
    from ..analysis.output import AnalysisOutput
    from ..analysis.tables import is_bulk_run, read_expression_input
    from ..clinical.subtypes import NearestCentroidCaller, subtype_analysis
    from ..plot.subtype import confusion_figure, roc_figure

    expr = load_expression(args)
    extra_notes: list[str] = []
    labels = (None if args.labels is None else
              _label_series(args.labels, id_col=args.id_col, col=args.label_col, what="label"))
    needs_labels = args.method == "vote" or (args.method == "centroid" and not args.centroids)
    if needs_labels and labels is None:
        raise InputError(f"--method {args.method} needs --labels FILE (known classes of the "
                         "training samples)" + (" or --centroids FILE"
                                                if args.method == "centroid" else ""))
    train = train_from = None
    if args.train is not None and not (args.method == "centroid" and args.centroids):
        train = read_expression_input(args.train, source=args.train_source)
        train_from = f"{args.train} ({args.train_source})" if is_bulk_run(args.train) \
            else str(args.train)
    elif needs_labels and is_bulk_run(args.expression) and args.source == "predicted":
        train = read_expression_input(args.expression, source="measured")
        train_from = f"{args.expression} (measured)"
        extra_notes.append("trained on the run's measured expression and applied to its "
                           "predictions; called patients that are training patients are "
                           "called by the fold model that did not see them")
    elif needs_labels:
        train_from = f"{args.expression} (the expression called)"
        extra_notes.append("no --train: the classifier is trained on the expression it calls; "
                           "every call is cross-fitted (out-of-fold)")
    truth = None
    if args.truth is not None:
        truth = _label_series(args.truth, id_col=args.id_col,
                              col=args.truth_col or args.label_col, what="truth")
    elif labels is not None and _covers(expr, labels):
        truth = labels
        extra_notes.append("known classes of the called samples taken from --labels")
    centroids = None
    if args.centroids is not None:
        if args.method != "centroid":
            raise InputError("--centroids goes with --method centroid")
        centroids = NearestCentroidCaller.from_table(args.centroids).centroids

    res = subtype_analysis(
        expr, method=args.method, train=train, labels=labels, truth=truth,
        centroids=centroids, genes=_genes(args.genes), missing_genes=args.missing_genes,
        standardise=args.standardise, transform=args.transform,
        centre=None if args.centre == "none" else args.centre, k=args.k,
        cluster_method=args.cluster_method, folds=args.folds,
        min_class_size=args.min_class_size,
        small_classes="drop" if args.drop_small_classes else "error",
        cross_fit=args.cross_fit, classifier_params=_classifier_params(args.param),
        random_state=args.seed)

    out = AnalysisOutput(args.out, "subtype")
    out.table("calls", res.calls)
    out.table("class_sizes", res.class_sizes)
    score_cols = [f"score_{c}" for c in res.classes]
    if res.metrics is not None:
        out.table("metrics", res.metrics.table)
        out.table("confusion", res.metrics.confusion, index=True)
        if args.method != "cluster":
            known = res.calls[res.calls["truth"].notna()]
            out.figure("roc", roc_figure(known["truth"], known[score_cols].to_numpy(),
                                         res.classes, title="called samples, one-vs-rest"))
        out.figure("confusion", confusion_figure(
            res.metrics.confusion, normalise=args.method != "cluster",
            title="clusters vs known classes" if args.method == "cluster" else None))
    if res.cv_metrics is not None and res.cv_calls is not None:
        out.table("cv_calls", res.cv_calls)
        out.table("cv_metrics", res.cv_metrics.table)
        out.table("cv_confusion", res.cv_metrics.confusion, index=True)
        out.figure("cv_roc", roc_figure(res.cv_calls["truth"],
                                        res.cv_calls[score_cols].to_numpy(), res.classes,
                                        title="training set, cross-validated"))
    if res.centroids is not None:
        out.table("centroids", res.centroids, index=True)
    for n in extra_notes + res.notes:
        out.note(n)
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
              if k != "func"}
    summary = {**_json_safe(res.summary), "training_data": train_from}
    record = out.finish(params=params, summary=summary, inputs={
        "expression": args.expression, "train": args.train, "labels": args.labels,
        "truth": args.truth, "centroids": args.centroids})
    print_files(record, args.out)
    return 0
