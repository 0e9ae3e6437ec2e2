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
from pathlib import Path

from .analyze import add_expression_args, add_out_arg, run_study


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
    add_out_arg(p, run=run_subtype)


def run_subtype(args: argparse.Namespace) -> int:
    from ..workflows import subtype_study
    from . import parse_params

    return run_study(
        args, subtype_study, args.expression, files_when_quiet=True, method=args.method,
        train=args.train, train_source=args.train_source, labels=args.labels,
        label_col=args.label_col, id_col=args.id_col, truth=args.truth,
        truth_col=args.truth_col, centroids=args.centroids, genes=args.genes,
        missing_genes=args.missing_genes, k=args.k, cluster_method=args.cluster_method,
        standardise=args.standardise, transform=args.transform, centre=args.centre,
        folds=args.folds, min_class_size=args.min_class_size,
        drop_small_classes=args.drop_small_classes, cross_fit=args.cross_fit,
        classifier=parse_params(args.param), seed=args.seed)
