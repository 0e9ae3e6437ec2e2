"""``histoexpr analyze variance``: how much image features and expression share (seed 002).

    histoexpr analyze variance --features [NAME=]DIR|FILE [--features NAME=DIR ...]
        --expression RUN|FILE [--manifest FILE] [--pool mean|median]
        [--covariates FILE [--covariate-columns A,B] [--log-covariates SMTISCH ...]
         [--categorical-covariates SMCENTER ...] [--log-offset 0]]
        [--variance-cutoff 0.95] [--permutations 200] [--seed 0]
        [--top-features 500 --top-genes 2000 --min-mean X] [--method pearson|spearman]
        [--fdr 0.05] [--all-pairs] [--gmt FILE] [--top-associated 10]
        [--montage N [--slides DIR]] --out DIR

Each ``--features`` is a feature folder (``histoexpr embed``; tiles mean-pooled per slide) or
a samples x features table; give several as ``NAME=PATH`` (e.g. ``raw=feats/ tuned=tuned/``)
to compare encoders side by side. Slides meet expression samples by ``--manifest``
(``slide,sample``), TCGA patient barcode or GTEx tissue sample id.

For each feature set:

- **Q1** PCA of features and expression (z-scored columns), components up to
  ``--variance-cutoff``, and the shared variance ``sum_i lambda_i sum_j r_ij^2`` (lambda_i:
  image PC i's share of the total image variance; r_ij: its Pearson r with expression PC j),
  with the chance level ``k_E / (n - 1)`` and a permutation null;
- **Q2** with ``--covariates`` (e.g. GTEx sample attributes; ischaemic time on a log scale):
  the same on the residuals of ``F ~ C`` and ``E ~ C``, and how much of each feature and gene
  the covariates explain;
- **Q3** Pearson tests of the top-varying features x genes (on the residuals when covariates
  are given), Benjamini-Hochberg q over all pairs; ``--gmt`` tests the genes associated with
  the most associated features for gene-set enrichment; ``--montage N`` draws the tiles
  scoring highest and lowest on the N most associated features (Q4).

Writes ``shared_variance.csv`` (one row per feature set and raw/residual), ``components.csv``
(each image PC's contribution), ``association.csv`` (pairs with q < FDR, or all with
``--all-pairs``), ``association_features.csv``, ``confounders_r2.csv`` and
``confounders_summary.csv`` (with covariates), ``enrichment.csv`` (with ``--gmt``),
``shared_variance.png``, ``association_heatmap[_NAME].png``, ``montage_*.png`` and
``analysis.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .analyze import add_expression_args, add_out_arg, run_study


def add_parser(ss: argparse._SubParsersAction) -> None:
    p = ss.add_parser("variance", help="shared variance of image features and expression, "
                      "confounders, feature x gene associations (GTEx study)",
                      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--features", action="append", required=True, metavar="[NAME=]DIR|FILE",
                   help="feature folder or samples x features table (repeatable, NAME=PATH)")
    add_expression_args(p)
    p.add_argument("--manifest", type=Path, default=None,
                   help="CSV slide,sample mapping feature files to expression samples")
    p.add_argument("--pool", default="mean", choices=["mean", "median"],
                   help="pooling of each slide's tile features (default mean)")
    c = p.add_argument_group("confounders (Q2)")
    c.add_argument("--covariates", type=Path, default=None,
                   help="covariate table (id column + e.g. SMTISCH, SMRIN, AGE, SEX)")
    c.add_argument("--covariate-id", default=None, help="its id column (default: guessed)")
    c.add_argument("--covariate-columns", default=None, metavar="A,B,...",
                   help="covariates to use (default every column)")
    c.add_argument("--log-covariates", nargs="*", default=None, metavar="COL",
                   help="covariates on a log scale (default: ischemic_time/SMTISCH if "
                   "present; give none to log nothing)")
    c.add_argument("--log-offset", type=float, default=0.0,
                   help="added before the log (default 0; 1 when times can be 0)")
    c.add_argument("--categorical-covariates", nargs="*", default=(), metavar="COL",
                   help="numeric covariates to one-hot (text columns always are)")
    v = p.add_argument_group("shared variance (Q1)")
    v.add_argument("--variance-cutoff", type=float, default=0.95,
                   help="keep PCs up to this share of variance (default 0.95; seed Plan 0.999)")
    v.add_argument("--no-standardise", dest="standardise", action="store_false",
                   help="only centre columns before PCA (default: z-score)")
    v.add_argument("--permutations", type=int, default=200,
                   help="sample-pairing permutations for the null (default 200; 0 for none)")
    v.add_argument("--seed", type=int, default=0, help="seed of the permutations")
    a = p.add_argument_group("associations (Q3)")
    a.add_argument("--top-features", type=int, default=500,
                   help="most variable features tested (default 500)")
    a.add_argument("--top-genes", type=int, default=2000,
                   help="most variable genes tested (default 2000)")
    a.add_argument("--min-mean", type=float, default=None,
                   help="only genes with mean above this (seed 002: 1 on log RPKM)")
    a.add_argument("--method", default="pearson", choices=["pearson", "spearman"])
    a.add_argument("--fdr", type=float, default=0.05, help="BH q threshold (default 0.05)")
    a.add_argument("--all-pairs", action="store_true",
                   help="write every tested pair to association.csv, not only q < FDR")
    a.add_argument("--gmt", type=Path, default=None,
                   help="gene sets (GMT): enrichment of the genes associated with the top "
                   "features")
    a.add_argument("--top-associated", type=int, default=10,
                   help="features (most associated first) used by --gmt (default 10)")
    a.add_argument("--montage", type=int, default=0, metavar="N",
                   help="tile montages of the N most associated features (feature folders)")
    a.add_argument("--slides", type=Path, default=None,
                   help="folder of the slides, for --montage when they moved since embedding")
    add_out_arg(p, run=run_variance)


def run_variance(args: argparse.Namespace) -> int:
    from ..workflows import variance_study

    return run_study(
        args, variance_study, args.features, files_when_quiet=True,
        expression=args.expression, manifest=args.manifest, pool=args.pool,
        covariates=args.covariates, covariate_id=args.covariate_id,
        covariate_columns=args.covariate_columns, log_covariates=args.log_covariates,
        log_offset=args.log_offset, categorical_covariates=args.categorical_covariates,
        variance_cutoff=args.variance_cutoff, standardise=args.standardise,
        permutations=args.permutations, seed=args.seed, top_features=args.top_features,
        top_genes=args.top_genes, min_mean=args.min_mean, method=args.method, fdr=args.fdr,
        all_pairs=args.all_pairs, gmt=args.gmt, top_associated=args.top_associated,
        montage=args.montage, slides=args.slides)
