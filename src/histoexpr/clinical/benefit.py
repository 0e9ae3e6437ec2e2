"""Does a predicted group say who benefits from chemotherapy? Two tests the gastric study
(seed 000) plans for Cheong et al.'s rules on predicted genes.

- :func:`threshold_search`: the binarising thresholds of the Cheong scores chosen against an
  observed response. Every pair of cohort quantiles on a grid is scored by the balanced
  accuracy of "benefit predicted" against "responded"; the chosen pair is the best on the
  grid. In-sample, that number is optimistic, so the search is also cross-validated: the
  thresholds are chosen on the training folds and scored on the held-out one, and that
  out-of-fold accuracy is the one to quote.
- :func:`benefit_interaction`: the chemotherapy-benefit test of Cheong et al.: a Cox model of
  survival on treatment, the predicted group and their product; a group predicts benefit
  when the treatment's hazard ratio differs between groups (the interaction term).

Examples
--------
>>> rng = np.random.default_rng(0)
>>> s = pd.DataFrame({"immune": rng.normal(size=200), "stem_like": rng.normal(size=200)})
>>> resp = pd.Series((s["immune"] < 1.0) & (s["stem_like"] < 0.3), index=s.index)
>>> res = threshold_search(s, resp, folds=4)
>>> res["best"]["balanced_accuracy"] > 0.9, 0.8 < res["cv_balanced_accuracy"] <= 1.0
(True, True)
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError

__all__ = ["QUANTILE_GRID", "benefit_interaction", "threshold_search"]

logger = logging.getLogger(__name__)

#: the cohort quantiles tried for each threshold
QUANTILE_GRID = tuple(round(q, 2) for q in np.arange(0.3, 0.96, 0.05))


def _benefit(scores: pd.DataFrame, immune: float, stem: float) -> np.ndarray:
    """Cheong's rule: benefit predicted for the epithelial group (neither immune-high nor,
    among the rest, stem-like-high)."""
    immune_high = scores["immune"].to_numpy() > immune
    stem_high = scores["stem_like"].to_numpy() > stem
    return ~immune_high & ~stem_high


def _balanced_accuracy(pred: np.ndarray, truth: np.ndarray) -> float:
    pos, neg = truth, ~truth
    if not pos.any() or not neg.any():
        return float("nan")
    return float(((pred & pos).sum() / pos.sum() + (~pred & neg).sum() / neg.sum()) / 2)


def _grid(scores: pd.DataFrame, truth: np.ndarray, grid: tuple[float, ...]) -> pd.DataFrame:
    rows = []
    for qi in grid:
        immune = float(np.quantile(scores["immune"], qi))
        rest = scores.loc[~(scores["immune"] > immune), "stem_like"]
        for qs in grid:
            stem = float(np.quantile(rest, qs)) if len(rest) else float("inf")
            pred = _benefit(scores, immune, stem)
            rows.append({"immune_quantile": qi, "stem_quantile": qs, "immune": immune,
                         "stem_like": stem, "n_benefit": int(pred.sum()),
                         "balanced_accuracy": _balanced_accuracy(pred, truth)})
    return pd.DataFrame(rows)


def threshold_search(scores: pd.DataFrame, response: pd.Series, *,
                     grid: tuple[float, ...] = QUANTILE_GRID, folds: int = 5,
                     seed: int = 0) -> dict[str, Any]:
    """Choose the Cheong thresholds against ``response`` (see the module docstring).

    Parameters
    ----------
    scores
        Samples x ``immune`` / ``stem_like`` scores
        (:func:`~histoexpr.clinical.cheong.signature_scores`).
    response
        Per sample, True when the patient responded to (benefited from) chemotherapy;
        samples without one are left out.
    grid, folds, seed
        Quantiles tried for each threshold; cross-validation folds (stratified) and seed.

    Returns
    -------
    dict with ``grid`` (every pair and its balanced accuracy), ``best`` (the chosen pair),
    ``cv_balanced_accuracy`` (out of fold), ``n`` and ``n_responders``.
    """
    from sklearn.model_selection import StratifiedKFold

    both = scores.index.intersection(response.dropna().index)
    if len(both) < 10:
        raise InputError(f"threshold search: {len(both)} samples have both scores and a "
                         "response; at least 10 are needed")
    s = scores.loc[both]
    truth = response.loc[both].astype(bool).to_numpy()
    if truth.all() or not truth.any():
        raise InputError("threshold search: every sample has the same response; nothing to "
                         "separate")
    table = _grid(s, truth, grid)
    best = table.sort_values("balanced_accuracy", ascending=False, kind="stable").iloc[0]
    k = int(min(folds, truth.sum(), (~truth).sum()))
    oof = np.zeros(len(s), bool)
    if k >= 2:
        for tr, te in StratifiedKFold(k, shuffle=True, random_state=seed).split(s, truth):
            inner = _grid(s.iloc[tr], truth[tr], grid)
            pick = inner.sort_values("balanced_accuracy", ascending=False,
                                     kind="stable").iloc[0]
            oof[te] = _benefit(s.iloc[te], float(pick["immune"]), float(pick["stem_like"]))
    cv = _balanced_accuracy(oof, truth) if k >= 2 else float("nan")
    logger.info("Cheong thresholds vs response: best in-sample balanced accuracy %.3f, "
                "out-of-fold %.3f (n = %d)", best["balanced_accuracy"], cv, len(s))
    return {"grid": table, "best": best.to_dict(), "cv_balanced_accuracy": cv, "n": len(s),
            "n_responders": int(truth.sum()), "folds": k}


def benefit_interaction(data: pd.DataFrame, *, time: str, event: str, treatment: str,
                        group: str, penalizer: float = 0.0) -> pd.DataFrame:
    """Cox model ``treatment + group + treatment x group`` (both binary 0/1): the hazard
    ratio of each term with its 95 % CI and p; the ``interaction`` row is the test of a
    differential treatment effect (predicted benefit).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> n = 400
    >>> d = pd.DataFrame({"chemo": rng.integers(0, 2, n), "benefit": rng.integers(0, 2, n)})
    >>> hazard = np.exp(-1.0 * d["chemo"] * d["benefit"])
    >>> d["time"] = rng.exponential(1 / hazard); d["event"] = 1
    >>> tab = benefit_interaction(d, time="time", event="event", treatment="chemo",
    ...                           group="benefit")
    >>> bool(tab.loc["interaction", "hr"] < 0.6), bool(tab.loc["interaction", "p"] < 0.01)
    (True, True)
    """
    from .survival import fit_cox

    need = [c for c in (time, event, treatment, group) if c not in data]
    if need:
        raise InputError(f"interaction test: no column(s) {', '.join(need)}; columns are "
                         f"{', '.join(map(str, data.columns))}")
    d = data[[time, event, treatment, group]].dropna()
    for c in (treatment, group):
        vals = set(pd.unique(d[c]))
        if not vals <= {0, 1} or len(vals) < 2:
            raise InputError(f"interaction test: {c!r} must be binary 0/1 with both values "
                             f"present, got {sorted(map(str, vals))}")
    df = pd.DataFrame({"time": d[time].astype(float), "event": d[event].astype(int),
                       "treatment": d[treatment].astype(int), "group": d[group].astype(int)})
    df["interaction"] = df["treatment"] * df["group"]
    if df["event"].sum() < 4:
        raise InputError(f"interaction test: {int(df['event'].sum())} events; too few for a "
                         "Cox model of 3 terms")
    cph, note = fit_cox(df, "time", "event", penalizer, "treatment x predicted group")
    s = cph.summary
    out = pd.DataFrame({"hr": s["exp(coef)"], "hr_low": s["exp(coef) lower 95%"],
                        "hr_high": s["exp(coef) upper 95%"], "p": s["p"]})
    out.index = pd.Index(["treatment", "group", "interaction"], name="term")
    out["n"], out["events"], out["note"] = len(df), int(df["event"].sum()), note
    return out
