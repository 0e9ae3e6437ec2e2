"""The gastric-cancer rules of Cheong et al. (Lancet Oncol 2018; seed 000's reference [2]).

Four genes, three signatures:

- **immune**: GZMB and WARS; the score is the mean of the two genes z-scored over the cohort;
- **stem-like**: SFRP4 (z-scored);
- **epithelial**: CDX1 (z-scored; reported beside the others, the assignment does not use it).

Assignment, in the published order:

1. immune-high → ``"immune"``: low risk, no chemotherapy benefit predicted;
2. else stem-like-high → ``"stem-like"``: high risk, no chemotherapy benefit predicted;
3. else → ``"epithelial"``: intermediate risk, chemotherapy benefit predicted.

A sample high on both immune and stem-like signatures is therefore ``"immune"``.

**Thresholds.** The published cut-offs are qPCR values (ΔCq against reference genes) that
do not transfer to RNA-seq or to predicted expression, so here the thresholds are parameters,
derived by default from the cohort itself (quantiles) and recorded with every result:

- immune-high: immune score above its cohort quantile ``immune_quantile = 0.87`` (the top
  13 %);
- stem-like-high: stem-like score above the quantile ``stem_quantile = 0.54`` *of the samples
  that are not immune-high* (the rule's order), i.e. the top 46 % of them.

These defaults reproduce the group proportions of the CLASSIC validation cohort of Cheong et
al. (n = 625): 13 % low risk (immune), 47 % intermediate (epithelial), 40 % high risk
(stem-like) (0.87 x 0.46 ≈ 0.40). They make groups of the published sizes, not of the
published biology: a cohort with another make-up gets the same proportions. Thresholds can
also be given explicitly, on the score scale (z-scores unless ``standardize=False``).

Examples
--------
>>> import pandas as pd
>>> e = pd.DataFrame({"GZMB": [3.0, 3.0, 0.0, 0.0], "WARS": [3.0, 3.0, 0.0, 0.0],
...                   "SFRP4": [0.0, 5.0, 5.0, 0.0], "CDX1": [1.0, 1.0, 1.0, 1.0]},
...                  index=["a", "b", "c", "d"])
>>> res = cheong_classify(e, thresholds={"immune": 1.0, "stem_like": 1.0}, standardize=False)
>>> list(res["group"]), list(res["chemotherapy_benefit"])
(['immune', 'immune', 'stem-like', 'epithelial'], [False, False, False, True])
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..errors import InputError

logger = logging.getLogger(__name__)

__all__ = [
    "CHEONG_GENES",
    "DEFAULT_IMMUNE_QUANTILE",
    "DEFAULT_STEM_QUANTILE",
    "GROUPS",
    "cheong_classify",
    "cheong_thresholds",
    "signature_scores",
]

#: signature → genes (Cheong et al. 2018)
CHEONG_GENES = {"immune": ("GZMB", "WARS"), "stem_like": ("SFRP4",), "epithelial": ("CDX1",)}
#: group → (risk, chemotherapy benefit predicted), in the order the rules assign them
GROUPS = {"immune": ("low", False), "stem-like": ("high", False),
          "epithelial": ("intermediate", True)}
#: top 13 % immune-high: the low-risk share of the CLASSIC validation cohort
DEFAULT_IMMUNE_QUANTILE = 0.87
#: among the rest, top 46 % stem-like-high, so 0.87 x 0.46 ≈ 40 % high risk as in CLASSIC
DEFAULT_STEM_QUANTILE = 0.54
#: what every result says about its thresholds
THRESHOLD_NOTE = ("Cheong thresholds are not the published qPCR cut-offs (those do not transfer "
                  "to RNA-seq or predicted expression)")


def signature_scores(expr: pd.DataFrame, *, standardize: bool = True) -> pd.DataFrame:
    """Immune, stem-like and epithelial scores of each sample.

    Parameters
    ----------
    expr
        Samples x genes (log-scale expression, measured or predicted) with GZMB, WARS,
        SFRP4 and CDX1.
    standardize
        z-score each gene over the cohort first (default); else use the values as given.

    Returns
    -------
    DataFrame with columns ``immune`` (mean of GZMB and WARS), ``stem_like`` (SFRP4),
    ``epithelial`` (CDX1).
    """
    genes = [g for gs in CHEONG_GENES.values() for g in gs]
    missing = [g for g in genes if g not in expr.columns]
    if missing:
        raise InputError(f"Cheong signatures: gene(s) {', '.join(missing)} absent from the "
                         f"expression ({len(expr.columns)} genes: "
                         f"{', '.join(map(str, expr.columns[:6]))}, ...); predict or measure "
                         "GZMB, WARS, SFRP4 and CDX1 (e.g. bulk fit --panel gastric4)")
    x = expr[genes].astype(float)
    nan = x.isna().any(axis=1)
    if nan.any():
        logger.warning("Cheong signatures: %d sample(s) with a missing value left out "
                       "(e.g. %s)", int(nan.sum()), ", ".join(map(str, x.index[nan][:3])))
        x = x[~nan]
    if len(x) < 3:
        raise InputError(f"Cheong signatures: {len(x)} complete sample(s); need at least 3")
    if standardize:
        from .scores import zscore_genes

        x = zscore_genes(x, what="Cheong signatures", hint=" (give thresholds on "
                         "unstandardised values with standardize=False / --no-standardise)")
    return pd.DataFrame({name: x[list(gs)].mean(axis=1) for name, gs in CHEONG_GENES.items()})


def _check_q(q: float, name: str) -> float:
    if not 0 < q < 1:
        raise InputError(f"{name} must be between 0 and 1, not {q}")
    return float(q)


def cheong_thresholds(
    scores: pd.DataFrame,
    *,
    immune_quantile: float = DEFAULT_IMMUNE_QUANTILE,
    stem_quantile: float = DEFAULT_STEM_QUANTILE,
    immune: float | None = None,
    stem_like: float | None = None,
) -> dict:
    """Thresholds of the immune and stem-like scores, and how each was derived.

    Each is the value given (``immune`` / ``stem_like``) or a cohort quantile: the immune
    threshold the ``immune_quantile`` of all immune scores, the stem-like threshold the
    ``stem_quantile`` of the stem-like scores of the samples that are not immune-high
    (see the module docstring for the defaults and why).

    Returns
    -------
    dict with ``immune``, ``stem_like`` (floats), ``immune_rule``, ``stem_like_rule``
    (readable derivations), the quantiles, ``n`` (samples) and ``note``.
    """
    out: dict = {"n": len(scores)}
    if immune is None:
        q = _check_q(immune_quantile, "immune_quantile")
        out["immune"] = float(np.quantile(scores["immune"], q))
        out["immune_quantile"] = q
        out["immune_rule"] = (f"cohort quantile {q:g} of the immune score "
                              f"(n={len(scores)})")
    else:
        out["immune"], out["immune_rule"] = float(immune), "given"
    rest = scores.loc[~(scores["immune"] > out["immune"]), "stem_like"]
    if stem_like is None:
        q = _check_q(stem_quantile, "stem_quantile")
        if rest.empty:
            raise InputError("every sample is immune-high; no stem-like threshold can be "
                             "derived (raise the immune threshold)")
        out["stem_like"] = float(np.quantile(rest, q))
        out["stem_quantile"] = q
        out["stem_like_rule"] = (f"quantile {q:g} of the stem-like score among the "
                                 f"{len(rest)} samples not immune-high")
    else:
        out["stem_like"], out["stem_like_rule"] = float(stem_like), "given"
    derived = [k for k in ("immune", "stem_like") if out[f"{k}_rule"] != "given"]
    out["note"] = (f"{THRESHOLD_NOTE}; "
                   + (f"{' and '.join(derived)} derived from this cohort's quantiles, so the "
                      "group sizes follow the chosen quantiles" if derived
                      else "they were given explicitly"))
    return out


def cheong_classify(
    expr: pd.DataFrame,
    *,
    thresholds: Mapping[str, float] | None = None,
    immune_quantile: float = DEFAULT_IMMUNE_QUANTILE,
    stem_quantile: float = DEFAULT_STEM_QUANTILE,
    standardize: bool = True,
) -> pd.DataFrame:
    """Cheong group, risk and predicted chemotherapy benefit of each sample.

    Parameters
    ----------
    expr
        Samples x genes with GZMB, WARS, SFRP4, CDX1 (measured or predicted, log scale).
    thresholds
        ``{"immune": v, "stem_like": v}`` on the score scale (either may be left out and is
        then derived from the quantiles); default both from the cohort quantiles.
    immune_quantile, stem_quantile
        See :func:`cheong_thresholds`.
    standardize
        z-score genes before scoring (see :func:`signature_scores`).

    Returns
    -------
    DataFrame indexed by sample: ``immune_score``, ``stem_like_score``, ``epithelial_score``,
    ``immune_high``, ``stem_like_high``, ``group`` (ordered categorical immune <
    epithelial < stem-like), ``risk``, ``chemotherapy_benefit``; ``attrs["thresholds"]``
    is the dict of :func:`cheong_thresholds`.
    """
    scores = signature_scores(expr, standardize=standardize)
    given = dict(thresholds or {})
    unknown = set(given) - {"immune", "stem_like"}
    if unknown:
        raise InputError(f"thresholds: unknown key(s) {sorted(unknown)}; use 'immune' and "
                         "'stem_like'")
    th = cheong_thresholds(scores, immune_quantile=immune_quantile,
                           stem_quantile=stem_quantile, immune=given.get("immune"),
                           stem_like=given.get("stem_like"))
    th["standardize"] = standardize
    immune_high = scores["immune"] > th["immune"]
    stem_high = scores["stem_like"] > th["stem_like"]
    group = np.where(immune_high, "immune", np.where(stem_high, "stem-like", "epithelial"))
    out = pd.DataFrame({
        "immune_score": scores["immune"], "stem_like_score": scores["stem_like"],
        "epithelial_score": scores["epithelial"], "immune_high": immune_high,
        "stem_like_high": stem_high,
        "group": pd.Categorical(group, categories=["immune", "epithelial", "stem-like"],
                                ordered=True),
        "risk": [GROUPS[g][0] for g in group],
        "chemotherapy_benefit": [GROUPS[g][1] for g in group],
    }, index=scores.index)
    out.attrs["thresholds"] = th
    sizes = out["group"].value_counts()
    logger.info("Cheong groups: %s (%s)",
                ", ".join(f"{g} {int(sizes[g])}" for g in sizes.index), th["note"])
    for g in sizes.index[sizes == 0]:
        logger.warning("Cheong groups: no sample is %r with these thresholds", g)
    return out
