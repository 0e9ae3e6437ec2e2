"""Survival analysis of (predicted) expression: Cox models, Kaplan–Meier curves, risk groups.

Pure functions over ``pandas`` frames; the fitting is lifelines'
(:class:`~lifelines.CoxPHFitter`, :class:`~lifelines.KaplanMeierFitter`, its log-rank tests).
The data frame every function takes has one row per patient, a ``time`` and an ``event``
(0/1) column (:func:`survival_frame` builds them from a clinical table) and the variables.

- :func:`survival_frame`: time and event (0/1, bool, cBioPortal's ``1:DECEASED``...);
  missing ones dropped and counted; non-positive times are an error.
- :func:`cox_univariate`, :func:`cox_multivariate`: HR with 95 % CI, Wald p, concordance;
  categorical variables one-hot coded against a stated reference level.
- :func:`risk_groups` (median or given cut-offs), :func:`kaplan_meier` (curves, medians,
  log-rank p), :func:`table_one` (shaped like Table 1 of hist2RNA, seed 001).
- :func:`signature_score`, :func:`cv_cox_score`: risk scores from expression (a gene, a
  z-scored signature's mean, or a cross-validated Cox model's linear predictor).

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> x = rng.integers(0, 2, 200)
>>> t = rng.exponential(1 / np.exp(np.log(2.0) * x))
>>> d = pd.DataFrame({"time": t, "event": 1, "x": x})
>>> row = cox_univariate(d, ["x"]).iloc[0]
>>> bool(row["hr_low"] < 2.0 < row["hr_high"])
True
>>> km = kaplan_meier(d, "x")
>>> bool(km.logrank["p"].iloc[0] < 1e-3)
True
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import InputError
from .labels import is_missing

logger = logging.getLogger(__name__)

__all__ = [
    "KMResult",
    "cox_multivariate",
    "cox_univariate",
    "fit_cox",
    "kaplan_meier",
    "risk_groups",
    "survival_frame",
    "table_one",
]

#: event words recognised without ``event_values`` (after cBioPortal's ``1:``/``0:`` prefix)
EVENT_WORDS = {"dead": 1, "deceased": 1, "died": 1, "yes": 1, "true": 1, "event": 1,
               "alive": 0, "living": 0, "no": 0, "false": 0, "censored": 0}
def _parse_event(col: pd.Series, name: str, event_values: Sequence[str] | None) -> pd.Series:
    """0/1 (float, NaN where missing) from a column of 0/1, bools or strings."""
    if event_values is None and (pd.api.types.is_bool_dtype(col)
                                 or pd.api.types.is_numeric_dtype(col)):
        vals = col.astype(float)
        bad = sorted(set(vals.dropna().unique()) - {0.0, 1.0})
        if bad:
            raise InputError(f"event column {name!r} holds {bad[:5]}, not only 0/1; give the "
                             "values that mean an event with --event-values")
        return vals
    wanted = {str(v).strip().lower() for v in event_values or ()}
    unknown: set[str] = set()

    def parse(v: object) -> float:
        if is_missing(v):
            return np.nan
        s = (f"{v:g}" if isinstance(v, (int, float)) else str(v)).strip().lower()
        head, _, tail = s.partition(":")
        if event_values is not None:
            return float(s in wanted or tail.strip() in wanted)
        if head.strip() in ("0", "1"):
            return float(head)
        if s not in EVENT_WORDS:
            unknown.add(str(v))
        return float(EVENT_WORDS.get(s, np.nan))

    out = col.map(parse).astype(float)
    if unknown:
        raise InputError(f"event column {name!r}: cannot tell events from censoring in "
                         f"{sorted(unknown)[:6]}; name the event values with --event-values "
                         "(e.g. --event-values DECEASED)")
    if event_values is not None and out.notna().any() and out.sum() == 0:
        raise InputError(f"event column {name!r}: none of its values "
                         f"{sorted(col.dropna().astype(str).unique())[:8]} is among "
                         f"--event-values {list(event_values)}")
    return out


def survival_frame(clinical: pd.DataFrame, *, time: str, event: str,
                   event_values: Sequence[str] | None = None) -> pd.DataFrame:
    """Columns ``time`` (float) and ``event`` (0/1) of each patient, from a clinical table.

    Parameters
    ----------
    clinical
        Indexed by patient id.
    time, event
        Column names. ``event`` may hold 0/1, bools, cBioPortal strings (``1:DECEASED``,
        ``0:LIVING``, ``1:Recurred/Progressed``), or dead/alive, yes/no.
    event_values
        Strings that count as an event (case-insensitive; also matched after a ``N:``
        prefix); every other non-missing value is censored.

    Returns
    -------
    DataFrame indexed like ``clinical`` (rows with a missing time or event dropped), with
    ``attrs["dropped"] = {"missing_time": n, "missing_event": n, "n_in": n, "ids": [...]}``.
    Missing columns, unreadable events, no events at all, or times <= 0 raise InputError.
    """
    for c in (time, event):
        if c not in clinical.columns:
            raise InputError(f"clinical table has no column {c!r}; columns are "
                             f"{list(clinical.columns)[:12]}")
    t = pd.to_numeric(clinical[time].map(lambda v: np.nan if is_missing(v) else v),
                      errors="coerce")
    unparsed = clinical[time].map(lambda v: not is_missing(v)) & t.isna()
    if unparsed.any():
        logger.warning("time column %r: %d value(s) are not numbers (e.g. %r) and count as "
                       "missing", time, int(unparsed.sum()), clinical.loc[unparsed, time].iloc[0])
    e = _parse_event(clinical[event], event, event_values)
    miss_t, miss_e = t.isna(), e.isna() & t.notna()
    keep = ~(miss_t | miss_e)
    dropped = {"n_in": len(clinical), "missing_time": int(miss_t.sum()),
               "missing_event": int(miss_e.sum()),
               "ids": [str(i) for i in clinical.index[~keep]]}
    if (~keep).any():
        logger.warning("survival: %d of %d patients dropped (%d without %r, %d without %r)",
                       int((~keep).sum()), len(clinical), dropped["missing_time"], time,
                       dropped["missing_event"], event)
    out = pd.DataFrame({"time": t[keep].astype(float), "event": e[keep].astype(int)})
    if out.empty:
        raise InputError(f"no patient has both {time!r} and {event!r}")
    bad = out.index[out["time"] <= 0]
    if len(bad):
        raise InputError(f"{time!r}: {len(bad)} patient(s) have a time <= 0 (e.g. "
                         f"{', '.join(map(str, bad[:5]))}); Cox models need positive times: "
                         "fix or remove them (or add a small offset)")
    if out["event"].sum() == 0:
        raise InputError(f"no events among {len(out)} patients in {event!r} (values "
                         f"{sorted(clinical[event].dropna().astype(str).unique())[:6]}); "
                         "check the column or --event-values")
    out.attrs["dropped"] = dropped
    return out


# ---------------------------------------------------------------------------- Cox models
@dataclass(frozen=True)
class _Term:
    variable: str
    term: str
    comparison: str
    level: object = None
    reference: object = None


def _levels(s: pd.Series, name: str, reference: object) -> list:
    s = s.dropna()
    if isinstance(s.dtype, pd.CategoricalDtype):
        levels = [c for c in s.cat.categories if (s == c).any()]
    else:
        levels = sorted(s.unique(), key=str)
    if len(levels) < 2:
        raise InputError(f"variable {name!r} has a single value {levels!r} among {len(s)} "
                         "patients; nothing to compare (drop it)")
    if reference is not None:
        match = [lv for lv in levels if str(lv) == str(reference)]
        if not match:
            raise InputError(f"variable {name!r}: reference level {reference!r} not among "
                             f"{levels}")
        levels.remove(match[0])
        levels.insert(0, match[0])
    return levels


def _design(data: pd.DataFrame, variables: Sequence[str],
            reference: Mapping[str, object]) -> tuple[pd.DataFrame, list[_Term]]:
    """Numeric columns as they are; categorical ones one-hot against their reference."""
    cols, terms = {}, []
    for v in variables:
        s = data[v]
        if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            levels = _levels(s, v, reference.get(v))
            for lv in levels[1:]:
                name = f"{v}[{lv}]"
                cols[name] = (s == lv).astype(float).where(s.notna())
                terms.append(_Term(v, name, f"{lv} vs {levels[0]}", lv, levels[0]))
        else:
            x = s.astype(float)
            if x.dropna().nunique() < 2:
                raise InputError(f"variable {v!r} is constant; nothing to estimate (drop it)")
            cols[v] = x
            terms.append(_Term(v, v, "per unit"))
    return pd.DataFrame(cols, index=data.index), terms


def _check_columns(data: pd.DataFrame, cols: Sequence[str]) -> None:
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise InputError(f"survival data has no column(s) {', '.join(missing)}; have "
                         f"{list(data.columns)[:12]}")


def _no_event_levels(data: pd.DataFrame, terms: list[_Term], event: str) -> list[str]:
    out = []
    for tm in terms:
        if tm.level is None:
            continue
        col = data[tm.variable]
        for lv in (tm.level, tm.reference):
            if data.loc[col == lv, event].sum() == 0:
                out.append(f"{tm.variable}={lv}")
    return list(dict.fromkeys(out))


def fit_cox(df: pd.DataFrame, duration: str, event: str, penalizer: float, what: str):
    """A lifelines Cox fit of every column of ``df``; convergence warnings are logged and
    returned as a note, a failed fit is one :class:`InputError` naming ``what``."""
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceError, ConvergenceWarning
    from scipy.linalg import LinAlgWarning

    with warnings.catch_warnings(record=True) as caught:
        # expected on hard data: recorded and logged (ill-conditioned ones precede the
        # ConvergenceError that lifelines raises for collinear covariates)
        warnings.simplefilter("always", ConvergenceWarning)
        warnings.simplefilter("always", LinAlgWarning)
        try:
            cph = CoxPHFitter(penalizer=penalizer).fit(df, duration, event)
        except ConvergenceError as e:
            raise InputError(f"Cox model of {what} did not converge ({str(e).split('. ')[0]});"
                             " use fewer covariates, merge rare levels, or give a penalizer "
                             "(e.g. --penalizer 0.1)") from None
    notes = [str(w.message).split(". ")[0] for w in caught
             if issubclass(w.category, (ConvergenceWarning, LinAlgWarning))]
    for n in notes:
        logger.warning("Cox model of %s: %s", what, n)
    return cph, "; ".join(notes)


def _rows(cph, terms: list[_Term], **extra: object) -> list[dict]:
    s = cph.summary
    return [{"variable": tm.variable, "term": tm.term, "comparison": tm.comparison, **extra,
             "hr": s.at[tm.term, "exp(coef)"], "hr_low": s.at[tm.term, "exp(coef) lower 95%"],
             "hr_high": s.at[tm.term, "exp(coef) upper 95%"], "p": s.at[tm.term, "p"]}
            for tm in terms]


_COLUMNS = ["model", "variable", "term", "comparison", "n", "events", "hr", "hr_low",
            "hr_high", "p", "concordance", "note"]


def cox_univariate(data: pd.DataFrame, variables: Sequence[str], *, duration: str = "time",
                   event: str = "event", reference: Mapping[str, object] | None = None,
                   penalizer: float = 0.0) -> pd.DataFrame:
    """One Cox model per variable: hazard ratio (95 % CI), Wald p and concordance.

    Each variable uses every patient that has it (``n`` says how many). Numeric variables
    give the HR per unit; categorical ones (strings, bools, categoricals) one row per level
    against the reference (``comparison`` reads ``"high vs low"``): the first category of a
    categorical, else the first level in sorted order, unless ``reference`` names it. A
    level without events gives a row with NaN HR and a ``note`` (an HR cannot be
    estimated) rather than an error.

    Returns
    -------
    DataFrame with columns ``model`` ("univariate"), ``variable``, ``term``, ``comparison``,
    ``n``, ``events``, ``hr``, ``hr_low``, ``hr_high``, ``p``, ``concordance``, ``note``.
    """
    _check_columns(data, [duration, event, *variables])
    reference = dict(reference or {})
    rows = []
    for v in variables:
        d = data[[duration, event, v]].dropna()
        if len(d) < len(data):
            logger.info("univariate Cox of %r: %d patient(s) without a value left out", v,
                        len(data) - len(d))
        x, terms = _design(d, [v], reference)
        n, ev = len(d), int(d[event].sum())
        empty = _no_event_levels(d, terms, event)
        if empty or ev == 0:
            note = (f"no events in {', '.join(empty)}: an HR cannot be estimated" if empty
                    else "no events: an HR cannot be estimated")
            logger.warning("univariate Cox of %r: %s", v, note)
            rows += [{"variable": tm.variable, "term": tm.term, "comparison": tm.comparison,
                      "n": n, "events": ev, "note": note} for tm in terms]
            continue
        cph, note = fit_cox(pd.concat([d[[duration, event]], x], axis=1), duration, event,
                             penalizer, repr(v))
        rows += _rows(cph, terms, n=n, events=ev, concordance=float(cph.concordance_index_),
                      note=note)
    out = pd.DataFrame(rows).reindex(columns=_COLUMNS)
    out["model"] = "univariate"
    return out


def cox_multivariate(data: pd.DataFrame, variables: Sequence[str], *, duration: str = "time",
                     event: str = "event", reference: Mapping[str, object] | None = None,
                     penalizer: float = 0.0) -> pd.DataFrame:
    """One Cox model of all ``variables`` together (complete cases).

    Rows with a missing value in any variable are dropped and counted (logged, and in
    ``attrs["dropped"]``). Coding of categorical variables is as in :func:`cox_univariate`.

    Returns one row per term, columns as :func:`cox_univariate` (``model`` is
    "multivariate"; ``n``, ``events`` and ``concordance`` are the model's) plus ``lr_p``,
    the log-likelihood ratio test of the whole model. Fewer than 10 patients left, no more
    events than terms, a level without events, or a fit that does not converge (the
    message suggests a ``penalizer``) raise InputError.
    """
    _check_columns(data, [duration, event, *variables])
    d = data[[duration, event, *variables]].dropna()
    dropped = len(data) - len(d)
    if dropped:
        logger.warning("multivariate Cox: %d of %d patients with a missing %s left out",
                       dropped, len(data), "/".join(variables))
    if len(d) < 10:
        raise InputError(f"multivariate Cox: {len(d)} patients left ({dropped} dropped for "
                         f"missing values of {', '.join(variables)}); need at least 10: use "
                         "fewer or more complete covariates")
    x, terms = _design(d, variables, dict(reference or {}))
    n, ev, k = len(d), int(d[event].sum()), len(terms)
    if ev <= k:
        raise InputError(f"multivariate Cox: {n} patients ({dropped} dropped for missing "
                         f"values) with {ev} events for {k} terms; a Cox model needs more "
                         "events than terms (about 10 per term): use fewer covariates")
    if ev < 10 * k:
        logger.warning("multivariate Cox: %d events for %d terms (fewer than 10 per term); "
                       "estimates may be unstable", ev, k)
    empty = _no_event_levels(d, terms, event)
    if empty:
        raise InputError(f"multivariate Cox: no events in {', '.join(empty)}, so its hazard "
                         "ratio cannot be estimated; merge the level with another or leave "
                         "the variable out")
    cph, note = fit_cox(pd.concat([d[[duration, event]], x], axis=1), duration, event,
                         penalizer, "/".join(variables))
    lr_p = float(cph.log_likelihood_ratio_test().p_value)
    out = pd.DataFrame(_rows(cph, terms, n=n, events=ev,
                             concordance=float(cph.concordance_index_), note=note))
    out = out.reindex(columns=_COLUMNS)
    out["model"], out["lr_p"] = "multivariate", lr_p
    out.attrs["dropped"] = dropped
    return out


# ---------------------------------------------------------------------------- groups, KM
def risk_groups(score: pd.Series, *, cutoff: str | float | Sequence[float] = "median",
                labels: Sequence[str] | None = None) -> pd.Series:
    """Groups of a score split at the median or at given cut-offs (``> cut-off`` is higher).

    Returns an ordered categorical Series named ``<score>_group`` (labels ``low``/``high``
    for one cut-off, ``low``/``intermediate``/``high`` for two, else ``G1``...), with
    ``attrs["cutoffs"]`` and ``attrs["rule"]``. NaN scores give NaN groups.

    Examples
    --------
    >>> g = risk_groups(pd.Series([1.0, 2, 3, 4], name="s"))
    >>> list(g), g.attrs["cutoffs"]
    (['low', 'low', 'high', 'high'], [2.5])
    """
    s = pd.Series(score, dtype=float)
    if isinstance(cutoff, str):
        if cutoff != "median":
            raise InputError(f"cutoff must be 'median' or number(s), not {cutoff!r}")
        cuts, rule = [float(s.median())], "median"
    elif np.ndim(cutoff) == 0:
        cuts, rule = [float(cutoff)], "given"  # type: ignore[arg-type]
    else:
        cuts, rule = sorted(float(c) for c in cutoff), "given"  # type: ignore[union-attr]
    k = len(cuts) + 1
    if labels is None:
        labels = ["low", "high"] if k == 2 else (["low", "intermediate", "high"] if k == 3
                                                 else [f"G{i + 1}" for i in range(k)])
    if len(labels) != k:
        raise InputError(f"{len(cuts)} cut-off(s) make {k} groups but {len(labels)} labels "
                         "were given")
    g = pd.cut(s, [-np.inf, *cuts, np.inf], labels=list(labels), right=True, ordered=True)
    sizes = g.value_counts()
    if (sizes == 0).any():
        raise InputError(f"score {s.name!r}: cut-off(s) {cuts} leave group(s) "
                         f"{list(sizes.index[sizes == 0])} empty (score range "
                         f"{s.min():.3g} to {s.max():.3g})")
    g.name = f"{s.name}_group" if s.name is not None else "group"
    g.attrs = {"cutoffs": cuts, "rule": rule}
    return g


@dataclass(frozen=True)
class KMResult:
    """Kaplan–Meier estimates by group.

    ``table``: group, time, survival, ci_low, ci_high, at_risk, events, censored;
    ``medians``: group, n, events, median (NaN if not reached), median_ci_low/high;
    ``logrank``: comparison ("overall", "A vs B"), statistic, df, p (p_bh: pairwise rows,
    more than two groups); ``data``: time, event, group of each patient.
    """

    grouping: str
    table: pd.DataFrame
    medians: pd.DataFrame
    logrank: pd.DataFrame
    data: pd.DataFrame = field(repr=False)

    @property
    def p(self) -> float:
        """The overall log-rank p (NaN with one group)."""
        return float(self.logrank["p"].iloc[0]) if len(self.logrank) else float("nan")


def _logrank(d: pd.DataFrame, la: object, lb: object) -> dict:
    from lifelines.statistics import logrank_test

    a, b = d[d["group"] == la], d[d["group"] == lb]
    r = logrank_test(a["time"], b["time"], a["event"], b["event"])
    return {"comparison": f"{lb} vs {la}", "statistic": float(r.test_statistic), "df": 1,
            "p": float(r.p_value)}


def kaplan_meier(data: pd.DataFrame, group: str | pd.Series, *, duration: str = "time",
                 event: str = "event", alpha: float = 0.05) -> KMResult:
    """Kaplan–Meier curves per group with (1 - alpha) CIs, median survival and log-rank p.

    ``group`` is a column of ``data`` or a Series aligned to it; patients with no group are
    left out (logged). Two groups: :func:`lifelines.statistics.logrank_test`; more: the
    overall :func:`~lifelines.statistics.multivariate_logrank_test` plus pairwise tests
    with BH-adjusted p.
    """
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import multivariate_logrank_test
    from lifelines.utils import median_survival_times

    _check_columns(data, [duration, event])
    if isinstance(group, str):
        _check_columns(data, [group])
        g, name = data[group], group
    else:
        g, name = pd.Series(group).reindex(data.index), str(getattr(group, "name", "group"))
    d = pd.DataFrame({"time": data[duration], "event": data[event], "group": g}).dropna()
    if len(d) < len(data):
        logger.info("Kaplan–Meier by %r: %d patient(s) without a group left out", name,
                    len(data) - len(d))
    levels = (list(d["group"].cat.categories) if isinstance(d["group"].dtype,
              pd.CategoricalDtype) else sorted(d["group"].unique(), key=str))
    levels = [lv for lv in levels if (d["group"] == lv).any()]
    tables, medians = [], []
    for lv in levels:
        sub = d[d["group"] == lv]
        km = KaplanMeierFitter(alpha=alpha).fit(sub["time"], sub["event"], label=str(lv))
        ci = km.confidence_interval_
        et = km.event_table
        tables.append(pd.DataFrame({
            "group": str(lv), "time": km.survival_function_.index.to_numpy(),
            "survival": km.survival_function_.iloc[:, 0].to_numpy(),
            "ci_low": ci.iloc[:, 0].to_numpy(), "ci_high": ci.iloc[:, 1].to_numpy(),
            "at_risk": et["at_risk"].to_numpy(), "events": et["observed"].to_numpy(),
            "censored": et["censored"].to_numpy()}))
        med = [float(km.median_survival_time_), *median_survival_times(ci).to_numpy(float)[0]]
        med = [m if np.isfinite(m) else np.nan for m in med]  # not reached: NaN
        medians.append({"group": str(lv), "n": len(sub), "events": int(sub["event"].sum()),
                        "median": med[0], "median_ci_low": med[1], "median_ci_high": med[2]})
    tests = []
    if len(levels) == 2:
        tests.append(_logrank(d, *levels))
    elif len(levels) > 2:
        from statsmodels.stats.multitest import multipletests

        r = multivariate_logrank_test(d["time"], d["group"].astype(str), d["event"])
        tests.append({"comparison": "overall", "statistic": float(r.test_statistic),
                      "df": len(levels) - 1, "p": float(r.p_value)})
        pair = [_logrank(d, la, lb) for i, la in enumerate(levels) for lb in levels[i + 1:]]
        adj = multipletests([p["p"] for p in pair], method="fdr_bh")[1]
        tests += [{**p, "p_bh": float(q)} for p, q in zip(pair, adj)]
    else:
        logger.warning("Kaplan–Meier by %r: one group only, no log-rank test", name)
    d = d.assign(group=d["group"].astype(str))
    return KMResult(name, pd.concat(tables, ignore_index=True), pd.DataFrame(medians),
                    pd.DataFrame(tests, columns=["comparison", "statistic", "df", "p", "p_bh"]
                                 [:4 + (len(levels) > 2)]), d)


# ---------------------------------------------------------------------------- Table 1
def _fmt_p(p: float) -> str:
    from ..metrics import format_p

    return format_p(p, missing="")


def table_one(data: pd.DataFrame, variables: Sequence[str], *, duration: str = "time",
              event: str = "event", reference: Mapping[str, object] | None = None,
              describe: Mapping[str, str] | None = None, penalizer: float = 0.0) -> pd.DataFrame:
    """A table shaped like Table 1 of hist2RNA (seed 001): univariate and multivariate Cox.

    Columns: ``Parameter``, ``Risk group cut-off value`` (the comparison, "high vs low", or
    ``describe[variable]`` where ``{comparison}`` stands for it), ``No. of patients in each
    group`` ("69 vs 336"), then HR, 95 % CI and p of the multivariate and univariate models,
    both fitted on the same patients (complete cases) as in the seed, ``n`` in the headers.
    """
    _check_columns(data, [duration, event, *variables])
    d = data[[duration, event, *variables]].dropna()
    multi = cox_multivariate(d, variables, duration=duration, event=event,
                             reference=reference, penalizer=penalizer)
    uni = cox_univariate(d, variables, duration=duration, event=event, reference=reference,
                         penalizer=penalizer).set_index("term")
    describe = dict(describe or {})
    _, terms = _design(d, variables, dict(reference or {}))
    n = len(d)
    rows = []
    for tm, (_, r) in zip(terms, multi.iterrows()):
        u = uni.loc[r["term"]]
        col = d[tm.variable]
        counts = (str(n) if tm.level is None else
                  f"{int((col == tm.level).sum())} vs {int((col == tm.reference).sum())}")
        row = {"Parameter": r["variable"],
               "Risk group cut-off value": describe.get(r["variable"], "{comparison}")
               .format(comparison=r["comparison"]),
               "No. of patients in each group": counts}
        for label, x in ((f"Multivariate (n={n})", r), (f"Univariate (n={n})", u)):
            row[f"{label} HR"] = f"{x['hr']:.2f}" if np.isfinite(x["hr"]) else "NA"
            row[f"{label} 95% CI"] = (f"{x['hr_low']:.2f}-{x['hr_high']:.2f}"
                                      if np.isfinite(x["hr"]) else "NA")
            row[f"{label} p"] = _fmt_p(float(x["p"]))
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs.update(n=n, events=int(d[event].sum()),
                     concordance=float(multi["concordance"].iloc[0]))
    return out
