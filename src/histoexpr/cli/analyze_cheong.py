"""``histoexpr analyze cheong``: the gastric-cancer rules of Cheong et al. (Lancet Oncol 2018)
on measured or predicted GZMB, WARS, SFRP4 and CDX1.

    histoexpr analyze cheong --expression RUN|FILE
        [--immune-quantile 0.87 --stem-quantile 0.54 | --immune-threshold V --stem-threshold V]
        [--no-standardise] [--log1p]
        [--clinical FILE --time COL --event COL [--event-values ...] [--covariates ...]]
        --out DIR

Scores: immune = mean of z-scored GZMB and WARS, stem-like = z-scored SFRP4, epithelial =
z-scored CDX1. Rules in the published order: immune-high → "immune" (low risk, no
chemotherapy benefit predicted); else stem-like-high → "stem-like" (high risk, no benefit);
else "epithelial" (intermediate risk, chemotherapy benefit predicted).

The published cut-offs are qPCR values that do not transfer to RNA-seq or predicted
expression, so the thresholds are **cohort quantiles** by default: immune-high is the top 13 %
of the immune score, stem-like-high the top 46 % of the stem-like score among the rest,
which reproduces the 13 / 47 / 40 % low / intermediate / high-risk split of the CLASSIC
validation cohort. ``--immune-threshold``/``--stem-threshold`` give values on the score scale
instead (z-scores, or the values as given with ``--no-standardise``).

Writes ``cheong_groups.csv`` (per sample: scores, group, risk, chemotherapy_benefit),
``cheong_group_sizes.csv``, ``cheong_thresholds.csv`` and ``analysis.json``; with
``--clinical/--time/--event`` also Kaplan–Meier curves and log-rank p by Cheong group and Cox
models of the group (reference: immune) as ``analyze survival`` writes them.
"""

from __future__ import annotations

import argparse

from .analyze import add_expression_args, add_out_arg, run_study
from .analyze_survival import add_survival_args


def add_parser(ss: argparse._SubParsersAction) -> None:
    from ..clinical.cheong import DEFAULT_IMMUNE_QUANTILE, DEFAULT_STEM_QUANTILE

    p = ss.add_parser("cheong", help="gastric immune / stem-like / epithelial groups, risk and "
                      "predicted chemotherapy benefit (Cheong et al. 2018)",
                      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_expression_args(p)
    p.add_argument("--immune-quantile", type=float, default=DEFAULT_IMMUNE_QUANTILE,
                   help=f"immune-high above this cohort quantile (default "
                   f"{DEFAULT_IMMUNE_QUANTILE})")
    p.add_argument("--stem-quantile", type=float, default=DEFAULT_STEM_QUANTILE,
                   help=f"stem-like-high above this quantile of the non-immune samples "
                   f"(default {DEFAULT_STEM_QUANTILE})")
    p.add_argument("--immune-threshold", type=float, default=None,
                   help="immune score threshold (overrides --immune-quantile)")
    p.add_argument("--stem-threshold", type=float, default=None,
                   help="stem-like score threshold (overrides --stem-quantile)")
    p.add_argument("--no-standardise", "--no-standardize", dest="standardize", action="store_false",
                   help="score the values as given instead of z-scoring each gene")
    p.add_argument("--log1p", action="store_true",
                   help="take log1p of the expression first (raw TPM/FPKM tables)")
    add_survival_args(p, required=False)
    add_out_arg(p, run=run_cheong)


def run_cheong(args: argparse.Namespace) -> int:
    from ..workflows import cheong_study

    return run_study(
        args, cheong_study, args.expression, show=_print_groups,
        immune_quantile=args.immune_quantile, stem_quantile=args.stem_quantile,
        immune_threshold=args.immune_threshold, stem_threshold=args.stem_threshold,
        standardize=args.standardize, log1p=args.log1p, clinical=args.clinical,
        time=args.time, event=args.event, event_values=args.event_values,
        covariates=args.covariates, id_col=args.id_col, penalizer=args.penalizer)


def _print_groups(res) -> None:
    from ..clinical.cheong import THRESHOLD_NOTE

    th = res.summary["thresholds"]
    print(f"{res.summary['n']} samples: " + ", ".join(
        f"{r.group} {r.n} ({r.fraction:.0%}, {r.risk} risk)"
        for r in res["cheong_group_sizes"].itertuples()))
    print(f"{THRESHOLD_NOTE}: immune > {th['immune']:.3g} ({th['immune_rule']}), "
          f"stem-like > {th['stem_like']:.3g} ({th['stem_like_rule']})")
    if "survival" in res.summary:
        s = res.summary["survival"]
        print(f"log-rank by Cheong group: p={s['logrank_p']['cheong_group']:.2g} "
              f"({s['n']} patients, {s['events']} events)")
