"""``histoexpr analyze survival``: Cox models and Kaplan–Meier curves of a risk score from
(predicted) expression, beside clinical covariates (hist2RNA Table 1 and Fig. 9).

    histoexpr analyze survival --expression RUN|FILE --clinical FILE [--id-col COL]
        --time COL --event COL [--event-values DECEASED,...]
        [--score GENE | A,B,... | cox | cox:A,B,...] [--cutoff median|VALUE[,VALUE]]
        [--covariates AGE:55,STAGE,...] [--groups COL] [--penalizer 0] --out DIR

``--score`` is one gene, the mean of z-scored genes (``A,B``), or ``cox``: the out-of-fold
linear predictor of a ridge Cox model of all genes (or ``cox:A,B``), cross-validated because
it is fitted on the same patients it scores. The score is split into low/high risk groups at
its median (or ``--cutoff``). ``--groups COL`` adds Kaplan–Meier curves and a Cox row for an
existing clinical grouping (e.g. a subtype). ``--covariates`` are clinical columns; ``COL:V``
splits a number at V (``> V`` vs ``<= V``, as age >55 in the seed's Table 1).

Writes ``cox_univariate.csv`` (each variable alone, all patients that have it),
``cox_multivariate.csv`` (risk group + covariates, complete cases), ``table1.csv`` (both side
by side on the same patients), ``km.csv``, ``km_medians.csv``, ``logrank.csv``, ``km.png``,
``forest.png`` and ``analysis.json`` (patients dropped for a missing time, event or
covariate are counted there).
"""

from __future__ import annotations

import argparse

from .analyze import add_expression_args, add_out_arg, run_study


def add_survival_args(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    """--clinical, --id-col, --time, --event, --event-values, --covariates, --penalizer."""
    p.add_argument("--clinical", required=required, default=None,
                   help="clinical table (CSV/TSV, cBioPortal)")
    p.add_argument("--id-col", default=None,
                   help="id column of the clinical table (default: a usual id header)")
    p.add_argument("--time", required=required, default=None, metavar="COL",
                   help="survival time column (e.g. OS_MONTHS)")
    p.add_argument("--event", required=required, default=None, metavar="COL",
                   help="event column: 0/1, bool, or strings like 1:DECEASED/0:LIVING")
    p.add_argument("--event-values", default=None, metavar="A,B",
                   help="values of --event that mean an event (others are censored)")
    p.add_argument("--covariates", default=None, metavar="COL[:CUT],...",
                   help="clinical covariates for the multivariate model; COL:V splits at V")
    p.add_argument("--penalizer", type=float, default=0.0,
                   help="ridge penalty of the Cox fits (default 0; try 0.1 if a fit fails)")


def add_parser(ss: argparse._SubParsersAction) -> None:
    p = ss.add_parser("survival", help="Cox models (HR, CI, c-index), Kaplan–Meier curves and "
                      "log-rank tests of a risk score", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    add_expression_args(p)
    add_survival_args(p)
    p.add_argument("--score", default=None, metavar="GENE|A,B|cox[:A,B]",
                   help="risk score: a gene, mean of z-scored genes, or cross-validated Cox")
    p.add_argument("--cutoff", default="median", metavar="median|V[,V]",
                   help="risk-group cut-off(s) of the score (default the cohort median; "
                   "write --cutoff=-0.5,0.5 for negative values)")
    p.add_argument("--groups", default=None, metavar="COL",
                   help="also Kaplan–Meier and Cox by this clinical column")
    p.add_argument("--folds", type=int, default=5, help="folds of --score cox (default 5)")
    p.add_argument("--seed", type=int, default=0, help="fold assignment of --score cox")
    add_out_arg(p, run=run_survival)


def run_survival(args: argparse.Namespace) -> int:
    from ..workflows import survival_study

    return run_study(
        args, survival_study, args.expression, show=_print_summary, clinical=args.clinical,
        time=args.time, event=args.event, score=args.score, groups=args.groups,
        cutoff=args.cutoff, covariates=args.covariates, event_values=args.event_values,
        id_col=args.id_col, penalizer=args.penalizer, folds=args.folds, seed=args.seed)


def _print_summary(res) -> None:
    summary, primary = res.summary, res.primary
    print(f"{summary['n']} patients, {summary['events']} events")
    if "score" in summary:
        print(f"score {summary['score']['name']}: c-index {summary['score']['concordance']:.3f}")
    for r in summary["hazard_ratios"]:
        if r["variable"] == primary and r["hr"] is not None:
            print(f"{r['model']}: {r['variable']} {r['comparison']}: HR {r['hr']:.2f} "
                  f"({r['hr_low']:.2f}-{r['hr_high']:.2f}), p={r['p']:.2g}")
    for g, p in summary["logrank_p"].items():
        print(f"log-rank by {g}: p={p:.2g}")
