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
import logging

from ..errors import InputError
from .analyze import add_expression_args, add_out_arg, load_expression, print_files

logger = logging.getLogger(__name__)


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
    add_out_arg(p)
    p.set_defaults(func=run_survival)


def _parse_cutoff(text: str) -> str | float | list[float]:
    if text.strip().lower() == "median":
        return "median"
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--cutoff {text!r}: give 'median' or number(s) like 0.5 or "
                         "-0.5,0.5") from None
    if not vals:
        raise InputError("--cutoff is empty")
    return vals[0] if len(vals) == 1 else vals


def clinical_column(clin, col: str, what: str):
    """A clinical column as numbers when every known value is one, else as strings; missing
    markers (NA, [Not Available], ...) become NaN."""
    import numpy as np
    import pandas as pd

    from ..clinical.labels import is_missing

    if col not in clin.columns:
        raise InputError(f"{what}: no column {col!r}; columns are {list(clin.columns)[:15]}")
    s = clin[col].map(lambda v: np.nan if is_missing(v) else v)
    num = pd.to_numeric(s, errors="coerce")
    if num.notna().sum() == s.notna().sum():
        return num.astype(float)
    return s.astype(object).where(s.notna())


def as_grouping(s):
    """A clinical column as an ordered categorical (numbers sorted numerically)."""
    import pandas as pd

    if s.dtype == object:
        return s
    levels = sorted(s.dropna().unique())
    labels = s.map(lambda v: f"{v:g}", na_action="ignore")
    return pd.Series(pd.Categorical(labels, categories=[f"{v:g}" for v in levels],
                                    ordered=True), index=s.index, name=s.name)


def add_covariates(data, clin, spec: str | None, what: str) -> list[str]:
    """Put the --covariates columns into ``data`` (``COL:V`` split at V); their names."""
    from ..clinical.survival import risk_groups

    names = []
    for item in [s.strip() for s in (spec or "").split(",") if s.strip()]:
        col, _, cut = item.partition(":")
        x = clinical_column(clin, col.strip(), what).reindex(data.index)
        if cut:
            try:
                c = float(cut)
            except ValueError:
                raise InputError(f"--covariates {item!r}: the cut after ':' must be a "
                                 "number") from None
            if x.dtype == object:
                raise InputError(f"--covariates {item!r}: column {col!r} is not numeric")
            x = risk_groups(x.rename(col), cutoff=c, labels=[f"<={c:g}", f">{c:g}"])
        missing = int(x.isna().sum())
        if missing:
            logger.info("covariate %r: %d of %d patients without a value", col, missing,
                        len(x))
        data[col.strip()] = x
        names.append(col.strip())
    return names


def survival_outputs(out, data, *, primary: str, covariates: list[str], km_by: list[str],
                     univariate: list[str], describe: dict, penalizer: float,
                     time_label: str, reference: dict | None = None,
                     per_sd: tuple[str, ...] = ()) -> dict:
    """Cox tables, Table 1, Kaplan–Meier and their figures into ``out``; a summary dict."""
    import pandas as pd

    from ..clinical import survival as sv
    from ..plot.survival import forest_figure, km_figure

    uni = sv.cox_univariate(data, univariate + covariates, reference=reference,
                            penalizer=penalizer)
    uni.loc[uni["variable"].isin(per_sd), "comparison"] = "per SD"
    out.table("cox_univariate", uni)
    summary: dict = {"n": len(data), "events": int(data["event"].sum())}
    for _, r in uni[uni["note"].fillna("").str.contains("cannot")].iterrows():
        out.note(f"{r['variable']} ({r['comparison']}): {r['note']}")
    try:
        multi = sv.cox_multivariate(data, [primary, *covariates], reference=reference,
                                    penalizer=penalizer)
    except InputError as e:
        if covariates:  # asked for: the user must fix it
            raise
        # the grouping alone is already in cox_univariate.csv; Kaplan–Meier still runs
        out.note(f"no multivariate model or Table 1: {e}")
        multi = None
    if multi is not None:
        out.table("cox_multivariate", multi)
        if not covariates:
            out.note("no --covariates: the multivariate model holds the risk grouping alone")
        if multi.attrs.get("dropped"):
            out.note(f"multivariate Cox and Table 1: {multi.attrs['dropped']} of {len(data)} "
                     "patients with a missing covariate left out")
        t1 = sv.table_one(data, [primary, *covariates], describe=describe,
                          reference=reference, penalizer=penalizer)
        out.table("table1", t1)
        summary["multivariate"] = {"n": int(multi["n"].iloc[0]),
                                   "events": int(multi["events"].iloc[0]),
                                   "dropped": int(multi.attrs.get("dropped", 0)),
                                   "concordance": float(multi["concordance"].iloc[0]),
                                   "lr_p": float(multi["lr_p"].iloc[0])}
    summary["hazard_ratios"] = [
        {k: (None if pd.isna(r[k]) else r[k]) for k in
         ("model", "variable", "comparison", "hr", "hr_low", "hr_high", "p", "concordance")}
        for _, r in pd.concat([uni, multi]).iterrows()]  # concat skips None
    kms = [sv.kaplan_meier(data, g) for g in km_by]
    out.table("km", pd.concat([k.table.assign(grouping=k.grouping) for k in kms])
              [["grouping", *kms[0].table.columns]])
    out.table("km_medians", pd.concat([k.medians.assign(grouping=k.grouping) for k in kms])
              [["grouping", *kms[0].medians.columns]])
    out.table("logrank", pd.concat([k.logrank.assign(grouping=k.grouping) for k in kms])
              .reindex(columns=["grouping", "comparison", "statistic", "df", "p", "p_bh"]))
    summary["logrank_p"] = {k.grouping: k.p for k in kms}
    out.figure("km", km_figure(kms, time_label=time_label))
    out.figure("forest", forest_figure(pd.concat([uni, multi]), title="Cox proportional "
                                       "hazards (95% CI)"))
    return summary


def load_survival(args, expr):
    """Clinical table, survival frame and expression on the same patients."""
    from ..analysis.tables import align_samples, read_clinical
    from ..clinical.survival import survival_frame

    clin = read_clinical(args.clinical, id_col=args.id_col)
    expr, clin = align_samples(expr, clin, what=(str(args.expression), str(args.clinical)))
    values = [v.strip() for v in args.event_values.split(",")] if args.event_values else None
    surv = survival_frame(clin, time=args.time, event=args.event, event_values=values)
    return expr.loc[surv.index], clin.loc[surv.index], surv


def dropped_note(out, surv, args) -> dict:
    d = surv.attrs.get("dropped", {})
    if d.get("missing_time") or d.get("missing_event"):
        out.note(f"{d['missing_time']} patient(s) without {args.time!r} and "
                 f"{d['missing_event']} without {args.event!r} dropped (of {d['n_in']} with "
                 "expression)")
    return {k: v for k, v in d.items() if k != "ids"}


def run_survival(args: argparse.Namespace) -> int:
    from lifelines.utils import concordance_index

    from ..analysis.output import AnalysisOutput
    from ..clinical import scores
    from ..clinical import survival as sv

    if not args.score and not args.groups:
        raise InputError("nothing to analyse: give --score GENE|A,B|cox and/or --groups COL")
    expr, clin, surv = load_survival(args, load_expression(args))
    out = AnalysisOutput(args.out, "survival")
    data = surv.copy()
    summary: dict = {"dropped": dropped_note(out, surv, args)}
    univariate, km_by, describe = [], [], {}
    primary, per_sd = None, False
    if args.score:
        spec = args.score.strip()
        if spec == "cox" or spec.startswith("cox:"):
            genes = [g.strip() for g in spec[4:].split(",") if g.strip()] or None
            score = scores.cv_cox_score(expr, surv, genes=genes, folds=args.folds,
                                    random_state=args.seed, penalizer=max(args.penalizer, 0.1))
            out.note(f"score 'cox_cv': out-of-fold log partial hazard of a ridge Cox model "
                     f"of {len(score.attrs['genes'])} genes ({args.folds}-fold CV, penalizer "
                     f"{score.attrs['penalizer']}); it is fitted on these same patients, so "
                     "each patient is scored by a model that did not see them")
        else:
            genes = [g.strip() for g in spec.split(",") if g.strip()]
            score, per_sd = scores.signature_score(expr, genes), True
            out.note(f"score {score.name!r}: " + ("the gene" if len(genes) == 1 else
                     "the mean of the genes") + " z-scored over the cohort; its HR is per SD")
        data[score.name] = score
        groups = sv.risk_groups(score, cutoff=_parse_cutoff(args.cutoff))
        data[groups.name] = groups
        cuts = ", ".join(f"{c:.3g}" for c in groups.attrs["cutoffs"])
        rule = "cohort median" if groups.attrs["rule"] == "median" else "given"
        describe[groups.name] = f"{{comparison}} (cut at {cuts}, {rule})"
        out.note(f"risk groups of {score.name!r}: cut at {cuts} ({rule}); the higher group "
                 "has scores above the cut-off")
        c = concordance_index(data["time"], -data[score.name], data["event"])
        summary["score"] = {"name": score.name, "concordance": float(c), "cutoffs":
                            groups.attrs["cutoffs"], "rule": groups.attrs["rule"],
                            "sizes": {str(k): int(v) for k, v in
                                      groups.value_counts(sort=False).items()}}
        univariate += [score.name, groups.name]
        km_by.append(groups.name)
        primary = groups.name
    if args.groups:
        data[args.groups] = as_grouping(clinical_column(clin, args.groups, str(args.clinical)))
        univariate.append(args.groups)
        km_by.append(args.groups)
        primary = primary or args.groups
    covariates = add_covariates(data, clin, args.covariates, str(args.clinical))
    summary.update(survival_outputs(out, data, primary=primary, covariates=covariates,
                                    km_by=km_by, univariate=univariate, describe=describe,
                                    penalizer=args.penalizer, time_label=args.time,
                                    per_sd=(score.name,) if per_sd else ()))
    record = out.finish(
        params={"time": args.time, "event": args.event, "event_values": args.event_values,
                "score": args.score, "cutoff": args.cutoff, "covariates": args.covariates,
                "groups": args.groups, "penalizer": args.penalizer, "folds": args.folds,
                "seed": args.seed, "entry": args.entry, "source": args.source,
                "role": args.role, "id_col": args.id_col},
        inputs={"expression": args.expression, "clinical": args.clinical}, summary=summary)
    if not getattr(args, "quiet", False):
        _print_summary(summary, primary)
        print_files(record, args.out)
    return 0


def _print_summary(summary: dict, primary: str | None) -> None:
    print(f"{summary['n']} patients, {summary['events']} events")
    if "score" in summary:
        print(f"score {summary['score']['name']}: c-index {summary['score']['concordance']:.3f}")
    for r in summary["hazard_ratios"]:
        if r["variable"] == primary and r["hr"] is not None:
            print(f"{r['model']}: {r['variable']} {r['comparison']}: HR {r['hr']:.2f} "
                  f"({r['hr_low']:.2f}-{r['hr_high']:.2f}), p={r['p']:.2g}")
    for g, p in summary["logrank_p"].items():
        print(f"log-rank by {g}: p={p:.2g}")
