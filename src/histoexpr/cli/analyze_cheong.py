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
import logging

from ..errors import InputError
from .analyze import add_expression_args, add_out_arg, load_expression, print_files
from .analyze_survival import (
    add_covariates,
    add_survival_args,
    dropped_note,
    load_survival,
    survival_outputs,
)

logger = logging.getLogger(__name__)


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
    add_out_arg(p)
    p.set_defaults(func=run_cheong)


def run_cheong(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from ..analysis.output import AnalysisOutput
    from ..clinical.cheong import GROUPS, THRESHOLD_NOTE, cheong_classify

    given = [x for x in (args.clinical, args.time, args.event) if x]
    if given and len(given) < 3:
        raise InputError("survival by Cheong group needs all of --clinical, --time and --event")
    expr = load_expression(args)
    if args.log1p:
        neg = expr.columns[(expr < 0).any()]
        if len(neg):
            raise InputError(f"--log1p: gene(s) {', '.join(map(str, neg[:5]))} have negative "
                             "values (already log-scale?); drop --log1p")
        expr = np.log1p(expr)
    thresholds = {k: v for k, v in (("immune", args.immune_threshold),
                                    ("stem_like", args.stem_threshold)) if v is not None}
    res = cheong_classify(expr, thresholds=thresholds, immune_quantile=args.immune_quantile,
                          stem_quantile=args.stem_quantile, standardize=args.standardize)
    th = res.attrs["thresholds"]
    out = AnalysisOutput(args.out, "cheong")
    out.note(th["note"])
    z = "z-scored " if args.standardize else ""
    out.note(f"immune-high: immune score (mean of {z}GZMB, WARS) > {th['immune']:.3g}, "
             f"{th['immune_rule']}; stem-like-high: {z}SFRP4 score > {th['stem_like']:.3g}, "
             f"{th['stem_like_rule']}; rules applied in the published order (immune first)")
    tab = res.reset_index(names="sample")
    tab.insert(1, "group", tab.pop("group").astype(str))
    out.table("cheong_groups", tab)
    sizes = res["group"].value_counts(sort=False)
    size_tab = pd.DataFrame({"group": [str(g) for g in sizes.index],
                             "risk": [GROUPS[g][0] for g in sizes.index],
                             "chemotherapy_benefit": [GROUPS[g][1] for g in sizes.index],
                             "n": sizes.to_numpy(), "fraction": sizes.to_numpy() / len(res)})
    out.table("cheong_group_sizes", size_tab)
    out.table("cheong_thresholds", pd.DataFrame([
        {"signature": "immune", "genes": "GZMB,WARS", "threshold": th["immune"],
         "quantile": th.get("immune_quantile"), "derivation": th["immune_rule"]},
        {"signature": "stem_like", "genes": "SFRP4", "threshold": th["stem_like"],
         "quantile": th.get("stem_quantile"), "derivation": th["stem_like_rule"]}]))
    summary: dict = {"n": len(res), "thresholds": th,
                     "groups": {str(g): int(n) for g, n in sizes.items()}}
    if given:
        _, clin, surv = load_survival(args, expr)
        summary["dropped"] = dropped_note(out, surv, args)
        data = surv.copy()
        data["cheong_group"] = res["group"].reindex(data.index)
        nog = int(data["cheong_group"].isna().sum())
        if nog:
            out.note(f"{nog} patient(s) with survival but no Cheong group (missing gene "
                     "values) left out")
            data = data[data["cheong_group"].notna()]
        covariates = add_covariates(data, clin, args.covariates, str(args.clinical))
        summary["survival"] = survival_outputs(
            out, data, primary="cheong_group", covariates=covariates, km_by=["cheong_group"],
            univariate=["cheong_group"], describe={}, penalizer=args.penalizer,
            time_label=args.time, reference={"cheong_group": "immune"})
    record = out.finish(
        params={"immune_quantile": args.immune_quantile, "stem_quantile": args.stem_quantile,
                "immune_threshold": args.immune_threshold,
                "stem_threshold": args.stem_threshold, "standardize": args.standardize,
                "log1p": args.log1p, "time": args.time, "event": args.event,
                "event_values": args.event_values, "covariates": args.covariates,
                "penalizer": args.penalizer, "entry": args.entry, "source": args.source,
                "role": args.role, "id_col": args.id_col},
        inputs={"expression": args.expression, "clinical": args.clinical}, summary=summary)
    if not getattr(args, "quiet", False):
        print(f"{len(res)} samples: " + ", ".join(
            f"{r.group} {r.n} ({r.fraction:.0%}, {r.risk} risk)" for r in size_tab.itertuples()))
        print(f"{THRESHOLD_NOTE}: immune > {th['immune']:.3g} ({th['immune_rule']}), "
              f"stem-like > {th['stem_like']:.3g} ({th['stem_like_rule']})")
        if given:
            s = summary["survival"]
            print(f"log-rank by Cheong group: p={s['logrank_p']['cheong_group']:.2g} "
                  f"({s['n']} patients, {s['events']} events)")
        print_files(record, args.out)
    return 0
