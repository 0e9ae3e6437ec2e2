"""``histoexpr bulk``: slide-level expression from bulk RNA-seq cohorts (TCGA-style).

    histoexpr bulk fit --features DIR --expression FILE
                       [--genes hist2rna138|gastric4|pam50|all|top250|FILE|A,B]
                       [--model ridge|mlp|hist2rna|gastric_baseline|gastric_mean|gastric_max|
                                multitask|gastric_simplified|he2rna|abmil|mean] --out RUN
    histoexpr bulk evaluate RUN
    histoexpr bulk predict RUN --features DIR [--out FILE]
    histoexpr bulk predict RUN --manifest slides.csv [--features DIR] [--out DIR]
                           [--workers N | --scheduler tcp://HOST:8786]

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

from ..config import BulkConfig, config_from_args
from ..runs import files
from . import add_common, add_dask_options, report_failures
from .steps import add_fit_step, add_steps, cell


def add_parser(sub: argparse._SubParsersAction) -> None:
    ss = add_steps(sub, "bulk", help="bulk RNA-seq cohorts: fit, evaluate, predict",
                   description=__doc__)
    add_fit_step(ss, BulkConfig, help="cross-validate a slide-level model and its baselines",
                 description=__doc__, run=run_fit)

    e = ss.add_parser("evaluate", help="rescore a bulk run (metrics, patients, summary)")
    e.add_argument("run", type=Path, metavar="RUN")
    add_common(e)
    e.set_defaults(func=run_evaluate)

    pr = ss.add_parser("predict", help="predict the slides of a feature folder with a run")
    pr.add_argument("run", type=Path, metavar="RUN",
                    help="run folder of `bulk fit`, or its `histoexpr export-model` file")
    pr.add_argument("--features", type=Path, default=None,
                    help="feature folder (with --manifest: for rows without `features`)")
    pr.add_argument("--manifest", type=Path, default=None,
                    help="CSV of slides (slide[,features,patient]): one Dask task per slide")
    pr.add_argument("--overwrite", action="store_true",
                    help="with --manifest: redo slides already predicted")
    pr.add_argument("--heatmaps", default=None, help="tumour heatmaps (runs with --select top)")
    pr.add_argument("--slides", dest="slides_dir", default=None, help="slides (patch models)")
    pr.add_argument("--out", type=Path, default=None,
                    help="CSV to write (default RUN/predict/predictions.csv); with "
                         "--manifest the output folder (default RUN/predict)")
    add_dask_options(pr)
    add_common(pr)
    pr.set_defaults(func=run_predict)


def print_bulk_summary(summary, *, title: str) -> None:
    """One row per entry and role: the fold mean for CV (the pooled out-of-fold score when
    folds are too small to score alone), then held-out / val / test."""
    from rich.console import Console
    from rich.table import Table

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
                  cell(r["n_patients"], ".0f"), cell(r["n_genes"], ".0f"),
                  cell(r["spearman_median"]), cell(r["pearson_mean"]),
                  cell(r["n_spearman_q_lt_0.05"], ".1f"), cell(r["n_spearman_r_gt_0.4"], ".1f"),
                  cell(r["r2_mean"]), cell(r.get("patient_spearman_median")),
                  cell(r["cpu_s"], ".1f"), cell(r["energy_wh"], ".3g"))
    console = Console()
    if not console.is_terminal:
        console = Console(width=170)
    console.print(t)


def run_fit(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..bulk import fit_run

    cfg = config_from_args(BulkConfig, args)
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
    from ..errors import InputError

    if args.manifest is not None:
        return _predict_manifest(args)
    if args.features is None:
        raise InputError("bulk predict needs --features DIR (the `histoexpr embed` folder of "
                         "the new slides) or --manifest slides.csv")
    if args.workers is not None or args.scheduler is not None:
        raise InputError("--workers / --scheduler run on Dask and need --manifest slides.csv")
    df = predict_bulk(args.run, args.features, out=args.out, heatmaps=args.heatmaps,
                      slides_dir=args.slides_dir)
    out = args.out or _default_out(args.run) / files.PREDICTIONS_CSV
    print(f"{len(df)} slides x {df.shape[1] - 1} genes predicted -> {out}")
    return 0


def _predict_manifest(args: argparse.Namespace) -> int:
    from ..bulk import predict_bulk_cohort

    df, results = predict_bulk_cohort(
        args.run, args.manifest, out=args.out, features=args.features, heatmaps=args.heatmaps,
        slides_dir=args.slides_dir, workers=args.workers, scheduler=args.scheduler,
        overwrite=args.overwrite)
    counts = {s: sum(r.status == s for r in results) for s in ("done", "done before", "failed")}
    out = args.out or _default_out(args.run)
    print(f"{len(df)} slides x {df.shape[1] - 1} genes predicted (done {counts['done']} · "
          f"skipped {counts['done before']} · failed {counts['failed']}) -> "
          f"{out / files.PREDICTIONS_CSV}")
    return report_failures([(r.name, r.message) for r in results if r.status == "failed"],
                           total=len(results))


def _default_out(run: Path) -> Path:
    from ..runs.portable import is_model_file, portable_output

    return portable_output(run) if is_model_file(run) else Path(run) / files.PREDICT
