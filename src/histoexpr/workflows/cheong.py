"""Cheong study: the gastric-cancer rules of Cheong et al. (Lancet Oncol 2018) on measured or
predicted GZMB, WARS, SFRP4 and CDX1, with survival by group when a clinical table is given.
``histoexpr analyze cheong`` is :func:`cheong_study`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from .inputs import expression_frame, input_label
from .study import StudyOutput, StudyResult
from .survival import add_covariates, dropped_note, load_survival, survival_outputs

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["cheong_study"]

logger = logging.getLogger(__name__)


def cheong_study(
    expression: str | Path | pd.DataFrame,
    *,
    out: str | Path,
    immune_quantile: float | None = None,
    stem_quantile: float | None = None,
    immune_threshold: float | None = None,
    stem_threshold: float | None = None,
    standardize: bool = True,
    log1p: bool = False,
    clinical: str | Path | pd.DataFrame | None = None,
    time: str | None = None,
    event: str | None = None,
    event_values: str | Sequence[str] | None = None,
    covariates: str | Sequence[str] | None = None,
    id_col: str | None = None,
    penalizer: float = 0.0,
    entry: str | None = None,
    source: str = "predicted",
    role: str | None = None,
) -> StudyResult:
    """Immune / stem-like / epithelial groups, risk and predicted chemotherapy benefit.

    Scores: immune = mean of z-scored GZMB and WARS, stem-like = z-scored SFRP4, epithelial =
    z-scored CDX1; rules in the published order (immune first). The published cut-offs are
    qPCR values that do not transfer, so thresholds are cohort quantiles by default.

    Parameters
    ----------
    expression, entry, source, role
        Expression with GZMB, WARS, SFRP4 and CDX1, as any expression input of
        :mod:`histoexpr.workflows.inputs`.
    out
        Output folder: ``cheong_groups.csv``, ``cheong_group_sizes.csv``,
        ``cheong_thresholds.csv``, ``analysis.json`` (and the survival outputs).
    immune_quantile, stem_quantile
        Cohort quantiles of the thresholds (default 0.87 and 0.54: the 13 / 47 / 40 % split
        of the CLASSIC cohort).
    immune_threshold, stem_threshold
        Thresholds on the score scale instead (override the quantiles).
    standardize
        Z-score each gene first (else score the values as given).
    log1p
        Take log1p of the expression first (raw TPM/FPKM tables).
    clinical, time, event
        All three, for Kaplan–Meier, log-rank and Cox by group (reference: immune), as
        :func:`~histoexpr.workflows.survival_study` writes them; ``event_values``,
        ``covariates``, ``id_col`` and ``penalizer`` as there.

    Returns
    -------
    StudyResult
        ``res["cheong_groups"]`` (per sample: scores, group, risk, benefit),
        ``res["cheong_group_sizes"]``; ``res.summary["thresholds"]``.

    Examples
    --------
    >>> from histoexpr.workflows import cheong_study
    >>> res = cheong_study("runs/gastric", out="out/cheong")  # doctest: +SKIP
    >>> res["cheong_group_sizes"]  # doctest: +SKIP
    """
    import numpy as np
    import pandas as pd

    from ..clinical.cheong import (
        DEFAULT_IMMUNE_QUANTILE,
        DEFAULT_STEM_QUANTILE,
        GROUPS,
        cheong_classify,
    )

    immune_quantile = DEFAULT_IMMUNE_QUANTILE if immune_quantile is None else immune_quantile
    stem_quantile = DEFAULT_STEM_QUANTILE if stem_quantile is None else stem_quantile
    given = [x for x in (clinical, time, event)
             if x is not None and not (isinstance(x, str) and not x)]
    if given and len(given) < 3:
        raise InputError("survival by Cheong group needs all of --clinical, --time and --event")
    expr = expression_frame(expression, entry=entry, source=source, role=role)
    if log1p:
        neg = expr.columns[(expr < 0).any()]
        if len(neg):
            raise InputError(f"--log1p: gene(s) {', '.join(map(str, neg[:5]))} have negative "
                             "values (already log-scale?); drop --log1p")
        expr = np.log1p(expr)
    thresholds = {k: v for k, v in (("immune", immune_threshold),
                                    ("stem_like", stem_threshold)) if v is not None}
    res = cheong_classify(expr, thresholds=thresholds, immune_quantile=immune_quantile,
                          stem_quantile=stem_quantile, standardize=standardize)
    th = res.attrs["thresholds"]
    output = StudyOutput(out, "cheong")
    output.note(th["note"])
    z = "z-scored " if standardize else ""
    output.note(f"immune-high: immune score (mean of {z}GZMB, WARS) > {th['immune']:.3g}, "
                f"{th['immune_rule']}; stem-like-high: {z}SFRP4 score > {th['stem_like']:.3g}, "
                f"{th['stem_like_rule']}; rules applied in the published order (immune first)")
    tab = res.reset_index(names="sample")
    tab.insert(1, "group", tab.pop("group").astype(str))
    output.table("cheong_groups", tab)
    sizes = res["group"].value_counts(sort=False)
    size_tab = pd.DataFrame({"group": [str(g) for g in sizes.index],
                             "risk": [GROUPS[g][0] for g in sizes.index],
                             "chemotherapy_benefit": [GROUPS[g][1] for g in sizes.index],
                             "n": sizes.to_numpy(), "fraction": sizes.to_numpy() / len(res)})
    output.table("cheong_group_sizes", size_tab)
    output.table("cheong_thresholds", pd.DataFrame([
        {"signature": "immune", "genes": "GZMB,WARS", "threshold": th["immune"],
         "quantile": th.get("immune_quantile"), "derivation": th["immune_rule"]},
        {"signature": "stem_like", "genes": "SFRP4", "threshold": th["stem_like"],
         "quantile": th.get("stem_quantile"), "derivation": th["stem_like_rule"]}]))
    summary: dict = {"n": len(res), "thresholds": th,
                     "groups": {str(g): int(n) for g, n in sizes.items()}}
    if given and time and event:
        _, clin, surv = load_survival(expr, clinical=clinical, time=time, event=event,
                                      event_values=event_values, id_col=id_col,
                                      what=input_label(expression, "expression"))
        summary["dropped"] = dropped_note(output, surv, time=time, event=event)
        data = surv.copy()
        data["cheong_group"] = res["group"].reindex(data.index)
        nog = int(data["cheong_group"].isna().sum())
        if nog:
            output.note(f"{nog} patient(s) with survival but no Cheong group (missing gene "
                        "values) left out")
            data = data[data["cheong_group"].notna()]
        covs = add_covariates(data, clin, covariates, input_label(clinical, "clinical table"))
        summary["survival"] = survival_outputs(
            output, data, primary="cheong_group", covariates=covs, km_by=["cheong_group"],
            univariate=["cheong_group"], describe={}, penalizer=penalizer,
            time_label=time, reference={"cheong_group": "immune"})
    record = output.finish(
        params={"immune_quantile": immune_quantile, "stem_quantile": stem_quantile,
                "immune_threshold": immune_threshold, "stem_threshold": stem_threshold,
                "standardize": standardize, "log1p": log1p, "time": time, "event": event,
                "event_values": event_values, "covariates": covariates,
                "penalizer": penalizer, "entry": entry, "source": source, "role": role,
                "id_col": id_col},
        inputs={"expression": expression, "clinical": clinical},
        summary=summary)
    return output.result(record)
