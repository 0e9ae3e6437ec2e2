"""``histoexpr bulk``: slide-level expression from bulk RNA-seq cohorts (TCGA-style).

    histoexpr bulk fit --features DIR --expression FILE
                       [--genes hist2rna138|gastric4|pam50|all|top250|FILE|A,B]
                       [--model ridge|mlp|hist2rna|gastric_baseline|gastric_mean|gastric_max|
                                multitask|gastric_simplified|he2rna|abmil|mean] --out RUN
    histoexpr bulk evaluate RUN
    histoexpr bulk predict RUN --features DIR [--out FILE]

``fit`` joins the slides of a feature folder (``histoexpr embed`` output, one ``.h5`` per
slide) to the expression table by TCGA barcode (or ``--manifest``), keeps the panel's genes,
log-transforms them, and cross-validates the model by patient (5 folds plus a 20 % held-out
set, or ``--protocol split`` for 60/20/20) beside its baselines: the mean predictor, colour
histograms and the random-init encoder on the same tiles (the last two need the slides).
It scores every fit across genes and across patients with FDR, records time and energy,
and keeps the model refitted on all non-held-out slides for ``predict``. Rerunning the same
command resumes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..runs import files
from . import add_common, parse_params


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bulk", help="bulk RNA-seq cohorts: fit, evaluate, predict",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(p)
    ss = p.add_subparsers(dest="bulk_command", metavar="STEP", title="steps")
    ss.required = True

    f = ss.add_parser("fit", help="cross-validate a slide-level model and its baselines",
                      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    f.add_argument("--features", default=None, help="folder of per-slide feature .h5 files")
    f.add_argument("--expression", default=None,
                   help="expression table (CSV/TSV, GDC STAR or FPKM-UQ, cBioPortal, GCT)")
    f.add_argument("--format", dest="expression_format", default=None,
                   help="expression format (default: sniffed)")
    f.add_argument("--value", dest="expression_value", default=None,
                   help="GDC STAR column (default tpm_unstranded)")
    f.add_argument("--config", type=Path, default=None,
                   help="JSON config (options given here override it)")
    f.add_argument("--genes", default=None,
                   help="hist2rna138 (default), gastric4, pam50, all, topN, hvgN (chosen on "
                   "the training patients), a file, or A,B,C")
    f.add_argument("--panel", dest="genes", default=None, help=argparse.SUPPRESS)  # old name
    f.add_argument("--strict-genes", action="store_const", const=True, default=None,
                   help="every gene of a panel or file must be in the table")
    f.add_argument("--transform", default=None, choices=["log1p", "log2", "none"])
    f.add_argument("--model", default=None, help="bulk model (default ridge)")
    f.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="model parameter, e.g. --param max_epochs=20 (JSON values)")
    f.add_argument("--join-rule", default=None, choices=["first_dx", "all"],
                   help="slides per patient: the first DX slide (default) or all")
    f.add_argument("--sample-types", default=None,
                   help="TCGA sample types kept, comma list (default 01); 'any' for all")
    f.add_argument("--manifest", default=None, help="CSV slide,patient[,sample] (non-TCGA)")
    f.add_argument("--select", default=None, choices=["all", "top", "random"],
                   help="tiles per slide: all (default), top-N by heatmap, random N")
    f.add_argument("--n-tiles", type=int, default=None, help="N for --select top/random")
    f.add_argument("--heatmaps", default=None, help="folder of tumour heatmaps (--select top)")
    f.add_argument("--slides", dest="slides_dir", default=None,
                   help="where the slides are now (patch models, colour/random baselines)")
    f.add_argument("--protocol", default=None, choices=["kfold", "split"])
    f.add_argument("--folds", dest="k", type=int, default=None, help="k (default 5)")
    f.add_argument("--holdout", type=float, default=None,
                   help="fraction of patients held out (default 0.2; 0 for none)")
    f.add_argument("--split-fractions", default=None,
                   help="train,val,test for --protocol split (default 0.6,0.2,0.2)")
    f.add_argument("--baselines", default=None,
                   help="comma list of mean,colour,random (default all); 'none' for none")
    f.add_argument("--no-refit", dest="refit", action="store_const", const=False, default=None,
                   help="keep no final model (bulk predict needs it)")
    f.add_argument("--seed", type=int, default=None)
    f.add_argument("--device", default=None)
    f.add_argument("--out", required=True, type=Path, help="run folder")
    f.add_argument("--overwrite", action="store_true",
                   help="replace a run folder that holds another config")
    add_common(f)
    f.set_defaults(func=run_fit)

    e = ss.add_parser("evaluate", help="rescore a bulk run (metrics, patients, summary)")
    e.add_argument("run", type=Path, metavar="RUN")
    add_common(e)
    e.set_defaults(func=run_evaluate)

    pr = ss.add_parser("predict", help="predict the slides of a feature folder with a run")
    pr.add_argument("run", type=Path, metavar="RUN")
    pr.add_argument("--features", required=True, type=Path, help="feature folder")
    pr.add_argument("--heatmaps", default=None, help="tumour heatmaps (runs with --select top)")
    pr.add_argument("--slides", dest="slides_dir", default=None, help="slides (patch models)")
    pr.add_argument("--out", type=Path, default=None,
                    help="CSV to write (default RUN/predict/predictions.csv)")
    add_common(pr)
    pr.set_defaults(func=run_predict)


def print_bulk_summary(summary, *, title: str) -> None:
    """One row per entry and role: the fold mean for CV (the pooled out-of-fold score when
    folds are too small to score alone), then held-out / val / test."""
    import math

    from rich.console import Console
    from rich.table import Table

    def f(v, fmt=".3f"):
        return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    fold = summary["fold"].astype(str)
    has_mean = set(summary.loc[fold == "mean", "entry"])
    keep = ((summary["role"] != "cv") | (fold == "mean")
            | ((fold == "pooled") & ~summary["entry"].isin(has_mean)))
    t = Table(title=title)
    cols = ("model", "features", "role", "fold", "patients", "genes", "Spearman med",
            "Pearson mean", "q<0.05", "r>0.4", "R²", "patients ρ med", "fit CPU s", "energy Wh")
    for c in cols:
        t.add_column(c, justify="left" if c in ("model", "features", "role", "fold") else "right")
    for _, r in summary[keep].iterrows():
        t.add_row(str(r["model"]), str(r["features"]), str(r["role"]), str(r["fold"]),
                  f(r["n_patients"], ".0f"), f(r["n_genes"], ".0f"), f(r["spearman_median"]),
                  f(r["pearson_mean"]), f(r["n_spearman_q_lt_0.05"], ".1f"),
                  f(r["n_spearman_r_gt_0.4"], ".1f"), f(r["r2_mean"]),
                  f(r.get("patient_spearman_median")), f(r["cpu_s"], ".1f"),
                  f(r["energy_wh"], ".3g"))
    console = Console()
    if not console.is_terminal:
        console = Console(width=170)
    console.print(t)


def _list(value: str | None, *, none: str = "none") -> list[str] | None:
    if value is None:
        return None
    return [] if value == none else [v.strip() for v in value.split(",") if v.strip()]


def run_fit(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..bulk import fit_run
    from ..config import BulkConfig

    cfg = BulkConfig.resolve(
        args.config, features=args.features, expression=args.expression,
        expression_format=args.expression_format, expression_value=args.expression_value,
        genes=args.genes, strict_genes=args.strict_genes, transform=args.transform,
        model=args.model,
        model_params=parse_params(args.param) or None, join_rule=args.join_rule,
        sample_types=_list(args.sample_types, none="any"), manifest=args.manifest,
        select=args.select, n_tiles=args.n_tiles, heatmaps=args.heatmaps,
        slides_dir=args.slides_dir, protocol=args.protocol, k=args.k, holdout=args.holdout,
        split_fractions=_list(args.split_fractions), baselines=_list(args.baselines),
        refit=args.refit, seed=args.seed, device=args.device,
    )
    run = fit_run(cfg, args.out, overwrite=args.overwrite)
    split = json.loads(run.splits.read_text())
    title = (f"{split['k']}-fold CV by patient (mean over folds) + "
             f"{len(split['holdout_patients'])} held-out patients"
             if split["protocol"] == "kfold" else "train / validation / test split by patient")
    print_bulk_summary(pd.read_csv(run.summary), title=title)
    print(f"run folder: {run.path}  (summary.csv, metrics.csv, patients.csv, cost.json, final/)")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from ..bulk import evaluate_run

    print_bulk_summary(evaluate_run(args.run), title=f"{args.run}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from ..bulk import predict_bulk

    df = predict_bulk(args.run, args.features, out=args.out, heatmaps=args.heatmaps,
                      slides_dir=args.slides_dir)
    out = args.out or Path(args.run) / files.PREDICT / files.PREDICTIONS_CSV
    print(f"{len(df)} slides x {df.shape[1] - 1} genes predicted -> {out}")
    return 0
