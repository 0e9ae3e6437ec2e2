"""Survival study: Cox models and Kaplan–Meier curves of a risk score from (predicted)
expression, beside clinical covariates (hist2RNA Table 1 and Fig. 9). ``histoexpr analyze
survival`` is :func:`survival_study`; the Cheong study reuses its Cox and Kaplan–Meier
outputs (:func:`survival_outputs`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from .inputs import clinical_table, expression_frame, input_label, split_list
from .study import StudyOutput, StudyResult

if TYPE_CHECKING:
    import pandas as pd

    from ..analysis.output import AnalysisOutput

__all__ = ["SurvivalResult", "add_covariates", "as_grouping", "clinical_column",
           "dropped_note", "load_survival", "parse_cutoff", "survival_outputs",
           "survival_study"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SurvivalResult(StudyResult):
    """A :class:`~histoexpr.workflows.study.StudyResult` that also names the primary grouping
    (the score's risk groups, else ``groups``)."""

    primary: str | None = None


def parse_cutoff(text: str | float | Sequence[float]) -> str | float | list[float]:
    """``"median"``, ``"0.5"`` or ``"-0.5,0.5"`` (or a number, or numbers) as a cut-off.

    >>> parse_cutoff("median"), parse_cutoff("-0.5,0.5"), parse_cutoff(1)
    ('median', [-0.5, 0.5], 1.0)
    """
    if not isinstance(text, str):
        vals = [float(v) for v in np.atleast_1d(text)]
        return vals[0] if len(vals) == 1 else vals
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


def clinical_column(clin: pd.DataFrame, col: str, what: str) -> pd.Series:
    """A clinical column as numbers when every known value is one, else as strings; missing
    markers (NA, [Not Available], ...) become NaN."""
    import pandas as pd

    from ..clinical.labels import is_missing

    if col not in clin.columns:
        raise InputError(f"{what}: no column {col!r}; columns are {list(clin.columns)[:15]}")
    s = clin[col].map(lambda v: np.nan if is_missing(v) else v)
    num = pd.to_numeric(s, errors="coerce")
    if num.notna().sum() == s.notna().sum():
        return num.astype(float)
    return s.astype(object).where(s.notna())


def as_grouping(s: pd.Series) -> pd.Series:
    """A clinical column as an ordered categorical (numbers sorted numerically)."""
    import pandas as pd

    if s.dtype == object:
        return s
    levels = sorted(s.dropna().unique())
    labels = s.map(lambda v: f"{v:g}", na_action="ignore")
    return pd.Series(pd.Categorical(labels, categories=[f"{v:g}" for v in levels],
                                    ordered=True), index=s.index, name=s.name)


def add_covariates(data: pd.DataFrame, clin: pd.DataFrame, spec: str | Sequence[str] | None,
                   what: str) -> list[str]:
    """Put the covariate columns into ``data`` (``COL:V`` split at V); their names."""
    from ..clinical.survival import risk_groups

    names = []
    for item in split_list(spec):
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


def survival_outputs(out: AnalysisOutput, data: pd.DataFrame, *, primary: str | None,
                     covariates: list[str], km_by: list[str], univariate: list[str],
                     describe: dict, penalizer: float, time_label: str,
                     reference: dict | None = None, per_sd: tuple[str, ...] = ()) -> dict:
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


def load_survival(expr: pd.DataFrame, *, clinical: Any, time: str, event: str,
                  event_values: str | Sequence[str] | None = None, id_col: str | None = None,
                  what: str = "expression") -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Expression, clinical table and survival frame on the same patients."""
    from ..analysis.tables import align_samples
    from ..clinical.survival import survival_frame

    clin = clinical_table(clinical, id_col=id_col)
    expr, clin = align_samples(expr, clin, what=(what, input_label(clinical, "clinical table")))
    values = split_list(event_values) or None
    surv = survival_frame(clin, time=time, event=event, event_values=values)
    return expr.loc[surv.index], clin.loc[surv.index], surv


def dropped_note(out: AnalysisOutput, surv: pd.DataFrame, *, time: str, event: str) -> dict:
    """A note on the patients without a time or event; their counts."""
    d = surv.attrs.get("dropped", {})
    if d.get("missing_time") or d.get("missing_event"):
        out.note(f"{d['missing_time']} patient(s) without {time!r} and "
                 f"{d['missing_event']} without {event!r} dropped (of {d['n_in']} with "
                 "expression)")
    return {k: v for k, v in d.items() if k != "ids"}


def survival_study(
    expression: str | Path | pd.DataFrame,
    *,
    clinical: str | Path | pd.DataFrame,
    time: str,
    event: str,
    out: str | Path,
    score: str | Sequence[str] | None = None,
    groups: str | None = None,
    cutoff: str | float | Sequence[float] = "median",
    covariates: str | Sequence[str] | None = None,
    event_values: str | Sequence[str] | None = None,
    id_col: str | None = None,
    penalizer: float = 0.0,
    folds: int = 5,
    seed: int = 0,
    entry: str | None = None,
    source: str = "predicted",
    role: str | None = None,
) -> SurvivalResult:
    """Cox models (HR, CI, c-index), Kaplan–Meier curves and log-rank tests of a risk score
    and/or a clinical grouping.

    Parameters
    ----------
    expression, entry, source, role
        The expression the score is computed from, any expression input of
        :mod:`histoexpr.workflows.inputs` (``entry``, ``source``, ``role`` pick a run
        folder's rows).
    clinical, id_col
        Clinical table with the survival and covariate columns (a path, or a DataFrame
        indexed by patient unless ``id_col`` names its id column).
    time, event
        Survival time and event columns (event: 0/1, bool, or strings such as
        ``1:DECEASED``; ``event_values`` lists the values that mean an event).
    out
        Output folder: ``cox_univariate.csv``, ``cox_multivariate.csv``, ``table1.csv``,
        ``km.csv``, ``km_medians.csv``, ``logrank.csv``, ``km.png``, ``forest.png``,
        ``analysis.json``.
    score
        Risk score: a gene, genes (``"A,B"`` or a list: mean of z-scored genes), ``"cox"``
        or ``"cox:A,B"`` (out-of-fold ridge Cox over ``folds`` folds, seeded by ``seed``).
        Split into risk groups at ``cutoff`` (``"median"``, a value or values).
    groups
        Also Kaplan–Meier and Cox by this clinical column.
    covariates
        Clinical columns of the multivariate model; ``"COL:V"`` splits a number at V.
    penalizer
        Ridge penalty of the Cox fits.

    Returns
    -------
    SurvivalResult
        Tables by name (``res["cox_univariate"]``), ``analysis.json`` as ``res.record``.

    Examples
    --------
    >>> from histoexpr.workflows import survival_study
    >>> res = survival_study("runs/bulk", clinical="clinical.tsv", time="OS_MONTHS",
    ...                      event="OS_STATUS", score="MKI67", covariates="AGE:55,STAGE",
    ...                      out="out/survival")  # doctest: +SKIP
    >>> res.summary["logrank_p"], res["table1"]  # doctest: +SKIP
    """
    from lifelines.utils import concordance_index

    from ..clinical import scores
    from ..clinical import survival as sv

    if not score and not groups:
        raise InputError("nothing to analyse: give --score GENE|A,B|cox and/or --groups COL")
    expr = expression_frame(expression, entry=entry, source=source, role=role)
    clin_name = input_label(clinical, "clinical table")
    expr, clin, surv = load_survival(expr, clinical=clinical, time=time, event=event,
                                     event_values=event_values, id_col=id_col,
                                     what=input_label(expression, "expression"))
    output = StudyOutput(out, "survival")
    data = surv.copy()
    summary: dict = {"dropped": dropped_note(output, surv, time=time, event=event)}
    univariate: list[str] = []
    km_by: list[str] = []
    describe: dict[str, str] = {}
    primary, per_sd = None, False
    if score:
        spec = score.strip() if isinstance(score, str) else ",".join(split_list(score))
        if spec == "cox" or spec.startswith("cox:"):
            genes = split_list(spec[4:]) or None
            s = scores.cv_cox_score(expr, surv, genes=genes, folds=folds, random_state=seed,
                                    penalizer=max(penalizer, 0.1))
            output.note(f"score 'cox_cv': out-of-fold log partial hazard of a ridge Cox model "
                        f"of {len(s.attrs['genes'])} genes ({folds}-fold CV, penalizer "
                        f"{s.attrs['penalizer']}); it is fitted on these same patients, so "
                        "each patient is scored by a model that did not see them")
        else:
            genes = split_list(spec)
            s, per_sd = scores.signature_score(expr, genes), True
            output.note(f"score {s.name!r}: " + ("the gene" if len(genes) == 1 else
                        "the mean of the genes") + " z-scored over the cohort; its HR is per SD")
        data[s.name] = s
        risk = sv.risk_groups(s, cutoff=parse_cutoff(cutoff))
        data[risk.name] = risk
        cuts = ", ".join(f"{c:.3g}" for c in risk.attrs["cutoffs"])
        rule = "cohort median" if risk.attrs["rule"] == "median" else "given"
        describe[risk.name] = f"{{comparison}} (cut at {cuts}, {rule})"
        output.note(f"risk groups of {s.name!r}: cut at {cuts} ({rule}); the higher group "
                    "has scores above the cut-off")
        c = concordance_index(data["time"], -data[s.name], data["event"])
        summary["score"] = {"name": s.name, "concordance": float(c), "cutoffs":
                            risk.attrs["cutoffs"], "rule": risk.attrs["rule"],
                            "sizes": {str(k): int(v) for k, v in
                                      risk.value_counts(sort=False).items()}}
        univariate += [s.name, risk.name]
        km_by.append(risk.name)
        primary = risk.name
    if groups:
        data[groups] = as_grouping(clinical_column(clin, groups, clin_name))
        univariate.append(groups)
        km_by.append(groups)
        primary = primary or groups
    covs = add_covariates(data, clin, covariates, clin_name)
    summary.update(survival_outputs(output, data, primary=primary, covariates=covs,
                                    km_by=km_by, univariate=univariate, describe=describe,
                                    penalizer=penalizer, time_label=time,
                                    per_sd=(s.name,) if per_sd else ()))
    record = output.finish(
        params={"time": time, "event": event, "event_values": event_values, "score": score,
                "cutoff": cutoff, "covariates": covariates, "groups": groups,
                "penalizer": penalizer, "folds": folds, "seed": seed, "entry": entry,
                "source": source, "role": role, "id_col": id_col},
        inputs={"expression": expression, "clinical": clinical},
        summary=summary)
    return SurvivalResult(output.path, record, dict(output.frames), primary=primary)
