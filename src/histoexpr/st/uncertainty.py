"""Prediction intervals for spots: split-conformal half-widths from the cross-validated
residuals, and their coverage on the held-out sections (issue 20, item 6).

The calibration set is the main model's out-of-fold predictions: every cross-validation
fold predicts patients (or sections) it did not train on, so the absolute residuals are
exchangeable with those of a new patient's spots as far as patients are exchangeable. Per
gene, the half-width is the ``ceil((n + 1)(1 - alpha)) / n`` empirical quantile of them;
``prediction ± half-width`` then covers a new spot's value with probability at least
``1 - alpha``. The held-out set (never seen by the folds) measures the coverage actually
reached: it should read about 90 % for ``alpha = 0.1``.

The intervals have one width per gene (the plain split-conformal interval): they say how far
off a spot of a new patient usually is, not which spots are harder.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> res = [{"genes": np.array(["A"]), "y_true": rng.normal(size=(500, 1)),
...         "y_pred": np.zeros((500, 1))}]
>>> hw = conformal_halfwidths(res, alpha=0.1)
>>> 1.5 < hw["A"] < 1.8   # the 90 % quantile of |N(0, 1)| is 1.645
True
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

__all__ = ["ALPHA", "conformal_halfwidths", "coverage", "uncertainty_record"]

logger = logging.getLogger(__name__)

#: the default miscoverage: 90 % intervals
ALPHA = 0.1


def _residuals(results: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    per: dict[str, list[np.ndarray]] = {}
    for r in results:
        d = np.abs(np.asarray(r["y_true"], float) - np.asarray(r["y_pred"], float))
        for j, g in enumerate(map(str, r["genes"])):
            per.setdefault(g, []).append(d[:, j])
    return {g: np.concatenate(v) for g, v in per.items()}


def conformal_halfwidths(results: list[dict[str, Any]], *, alpha: float = ALPHA
                         ) -> dict[str, float]:
    """Per gene, the split-conformal half-width from the residuals of ``results``."""
    out = {}
    for g, d in _residuals(results).items():
        n = len(d)
        if n == 0:
            continue
        level = min(1.0, math.ceil((n + 1) * (1 - alpha)) / n)
        out[g] = float(np.quantile(d, level, method="higher"))
    return out


def coverage(results: list[dict[str, Any]], halfwidths: dict[str, float]) -> dict[str, Any]:
    """The share of ``results``' values inside ``prediction ± half-width``: over every spot
    and gene, and the spread of the per-gene shares."""
    per_gene = {}
    for g, d in _residuals(results).items():
        if g in halfwidths and len(d):
            per_gene[g] = float((d <= halfwidths[g]).mean())
    if not per_gene:
        return {"coverage": None, "n_genes": 0}
    v = np.array(list(per_gene.values()))
    return {"coverage": float(v.mean()), "coverage_gene_p10": float(np.quantile(v, 0.1)),
            "coverage_gene_p90": float(np.quantile(v, 0.9)), "n_genes": len(v)}


def uncertainty_record(results: list[dict[str, Any]], *, alpha: float = ALPHA
                       ) -> dict[str, Any] | None:
    """``uncertainty.json``: half-widths from the main model's cv results, and their
    coverage on its held-out results (``None`` without cv results)."""
    main = [r for r in results if r["kind"] == "model"]
    cv = [r for r in main if r["role"] == "cv"]
    if not cv:
        return None
    hw = conformal_halfwidths(cv, alpha=alpha)
    held = [r for r in main if r["role"] != "cv"]
    rec: dict[str, Any] = {
        "method": "split conformal on the cross-validated residuals, per gene",
        "alpha": alpha, "nominal_coverage": 1 - alpha,
        "n_calibration_spots": int(sum(len(r["spots"]) for r in cv)), "halfwidth": hw,
        "held_out": coverage(held, hw) if held else None,
    }
    if held and rec["held_out"]["coverage"] is not None:
        logger.info("%.0f %% intervals cover %.1f %% of the held-out spots' values",
                    100 * (1 - alpha), 100 * rec["held_out"]["coverage"])
    return rec
