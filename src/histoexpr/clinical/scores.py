"""Risk scores from (predicted) expression for the survival analyses: one gene or the mean of
a z-scored signature, or the cross-validated linear predictor of a ridge Cox model.

Examples
--------
>>> import pandas as pd
>>> e = pd.DataFrame({"A": [1.0, 2.0, 3.0], "B": [2.0, 2.0, 5.0]})
>>> signature_score(e, ["A", "B"]).round(2).tolist()
[-0.79, -0.29, 1.08]
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from .survival import fit_cox

logger = logging.getLogger(__name__)

__all__ = ["cv_cox_score", "signature_score", "zscore_genes"]


def zscore_genes(x: pd.DataFrame, *, what: str, hint: str = "") -> pd.DataFrame:
    """Each gene z-scored over the cohort (sample SD); a constant gene is an error naming it
    (``what`` says whose genes, ``hint`` what to do instead)."""
    sd = x.std(ddof=1)
    flat = list(sd.index[~(sd > 0)])
    if flat:
        raise InputError(f"{what}: gene(s) {', '.join(map(str, flat))} are constant across the "
                         f"cohort; z-scores are undefined{hint}")
    return (x - x.mean()) / sd


def signature_score(expr: pd.DataFrame, genes: Sequence[str], *,
                    standardize: bool = True) -> pd.Series:
    """One gene, or the mean of several, as a risk score.

    With ``standardize`` (default) each gene is z-scored over the cohort first, so the genes
    of a signature weigh the same and a Cox HR of the score is per standard deviation.
    """
    from ..analysis.tables import select_genes

    x = select_genes(expr, list(genes), what="expression (score)").astype(float)
    if standardize:
        x = zscore_genes(x, what="signature score", hint=" (a z-scored signature cannot use "
                         "them)")
    return x.mean(axis=1).rename(genes[0] if len(genes) == 1 else f"mean({','.join(genes)})")


def cv_cox_score(expr: pd.DataFrame, surv: pd.DataFrame, *, genes: Sequence[str] | None = None,
                 folds: int = 5, penalizer: float = 0.1, random_state: int = 0,
                 duration: str = "time", event: str = "event") -> pd.Series:
    """Cross-validated linear predictor of a ridge-penalised Cox model of the genes.

    The model is fitted on the same patients it scores, so each patient's score comes from
    a model fitted without them (``folds``-fold, stratified by event); the out-of-fold
    log partial hazards form the score (higher = higher risk). Genes are z-scored inside
    each training fold.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    from ..analysis.tables import select_genes

    common = expr.index.intersection(surv.index, sort=False)
    if len(common) < 2 * folds:
        raise InputError(f"Cox score: {len(common)} patients with expression and survival; "
                         f"need at least {2 * folds} for {folds}-fold cross-validation")
    genes = list(expr.columns if genes is None else genes)
    x = select_genes(expr.loc[common], genes, what="expression (Cox score)").astype(float)
    y = surv.loc[common, [duration, event]]
    if int(y[event].sum()) < folds:
        raise InputError(f"Cox score: only {int(y[event].sum())} events for {folds} folds")
    score = pd.Series(np.nan, index=common, name="cox_cv")
    strat = y[event].value_counts().min() >= folds and y[event].nunique() == 2
    cv = (StratifiedKFold if strat else KFold)(folds, shuffle=True, random_state=random_state)
    for i, (tr, te) in enumerate(cv.split(x, y[event])):
        mu, sd = x.iloc[tr].mean(), x.iloc[tr].std(ddof=1).replace(0, 1.0)
        cph, _ = fit_cox(pd.concat([(x.iloc[tr] - mu) / sd, y.iloc[tr]], axis=1), duration,
                          event, penalizer, f"the score (fold {i + 1})")
        score.iloc[te] = cph.predict_log_partial_hazard((x.iloc[te] - mu) / sd).to_numpy()
    score.attrs = {"folds": folds, "penalizer": penalizer, "genes": genes,
                   "random_state": random_state}
    return score
