"""A synthetic clinical table with planted links to expression, for trying the downstream
analyses (``histoexpr analyze ...``) on a cohort that has no real clinical data.

Given patients x genes expression (measured, e.g. the ``expression.csv`` of
:func:`~histoexpr.datasets.synthetic_bulk`), it writes, per patient:

- ``OS_MONTHS``, ``OS_STATUS`` (cBioPortal style ``1:DECEASED`` / ``0:LIVING``): exponential
  survival whose log-hazard rises by ``log(hazard_ratio)`` per standard deviation of
  ``survival_gene`` (log scale), with uniform censoring;
- ``ER_STATUS`` (``Positive``/``Negative``): positive when ``er_gene`` plus noise is above
  its median;
- ``GRADE`` (1–3): tertiles of ``grade_gene`` plus noise;
- ``KI67_PERCENT``: a percentage linear in ``ki67_gene`` plus noise, clipped to 0–100;
- ``SUBTYPE``: four classes from the signs of two genes (``subtype_genes``), so a classifier
  on expression can learn them;
- ``AGE`` (years) and ``STAGE`` (I–IV), unrelated to expression (covariates for Cox models).

Every link is stated in :attr:`SyntheticClinical.truth`, so tests and examples know what a
correct analysis must find.

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> e = pd.DataFrame(rng.lognormal(2, 1, (50, 3)), columns=["A", "B", "C"])
>>> syn = synthetic_clinical(e, survival_gene="A", er_gene="B", ki67_gene="C",
...                          grade_gene="A", subtype_genes=("B", "C"))
>>> sorted(syn.table["ER_STATUS"].unique())
['Negative', 'Positive']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError

__all__ = ["SyntheticClinical", "synthetic_clinical"]


@dataclass(frozen=True)
class SyntheticClinical:
    """The clinical table (indexed like the expression) and the planted truth."""

    table: pd.DataFrame
    truth: dict[str, Any] = field(default_factory=dict)


def _z(x: pd.Series) -> np.ndarray:
    v = np.log1p(np.clip(x.to_numpy(float), 0, None))
    sd = v.std()
    return (v - v.mean()) / (sd if sd > 0 else 1.0)


def synthetic_clinical(
    expression: pd.DataFrame,
    *,
    survival_gene: str,
    er_gene: str,
    ki67_gene: str,
    grade_gene: str,
    subtype_genes: tuple[str, str],
    hazard_ratio: float = 2.0,
    median_months: float = 60.0,
    censor_months: float = 150.0,
    noise: float = 0.5,
    seed: int = 0,
    out: str | Path | None = None,
) -> SyntheticClinical:
    """Draw a clinical table linked to ``expression`` (see the module docstring).

    Parameters
    ----------
    expression
        Patients x genes, non-negative (log1p is taken before standardising each gene).
    hazard_ratio
        Hazard ratio per standard deviation of ``survival_gene``.
    median_months
        Median survival at the mean of ``survival_gene``.
    censor_months
        Censoring times are uniform on ``[0, censor_months]``.
    noise
        Standard deviation (in gene SDs) of the noise added before thresholding ER, grade,
        Ki67 and subtype.
    out
        Optional CSV path; the table is written there with ``PATIENT_ID`` first.
    """
    genes = [survival_gene, er_gene, ki67_gene, grade_gene, *subtype_genes]
    missing = [g for g in dict.fromkeys(genes) if g not in expression.columns]
    if missing:
        raise InputError(f"synthetic_clinical: gene(s) {', '.join(missing)} not in the "
                         "expression table")
    rng = np.random.default_rng(seed)
    n = len(expression)
    beta = float(np.log(hazard_ratio))
    rate = np.log(2) / median_months * np.exp(beta * _z(expression[survival_gene]))
    t_event = rng.exponential(1.0 / rate)
    t_censor = rng.uniform(0, censor_months, n)
    event = t_event <= t_censor
    months = np.maximum(np.minimum(t_event, t_censor), 0.1)

    er = _z(expression[er_gene]) + noise * rng.normal(size=n)
    grade_score = _z(expression[grade_gene]) + noise * rng.normal(size=n)
    grade = 1 + (grade_score > np.quantile(grade_score, 1 / 3)) + (
        grade_score > np.quantile(grade_score, 2 / 3))
    ki67 = np.clip(30 + 15 * _z(expression[ki67_gene]) + 15 * noise * rng.normal(size=n), 0, 100)
    a = _z(expression[subtype_genes[0]]) + noise * rng.normal(size=n)
    b = _z(expression[subtype_genes[1]]) + noise * rng.normal(size=n)
    names = np.array([["S_lowlow", "S_lowhigh"], ["S_highlow", "S_highhigh"]])
    subtype = names[(a > 0).astype(int), (b > 0).astype(int)]

    table = pd.DataFrame({
        "OS_MONTHS": np.round(months, 2),
        "OS_STATUS": np.where(event, "1:DECEASED", "0:LIVING"),
        "ER_STATUS": np.where(er > np.median(er), "Positive", "Negative"),
        "GRADE": grade.astype(int),
        "KI67_PERCENT": np.round(ki67, 1),
        "SUBTYPE": subtype,
        "AGE": np.round(rng.normal(58, 12, n)).astype(int),
        "STAGE": rng.choice(["I", "II", "III", "IV"], n, p=[0.2, 0.45, 0.25, 0.1]),
    }, index=pd.Index(expression.index.astype(str), name="PATIENT_ID"))
    truth = {"hazard_ratio_per_sd": hazard_ratio, "survival_gene": survival_gene,
             "er_gene": er_gene, "ki67_gene": ki67_gene, "grade_gene": grade_gene,
             "subtype_genes": list(subtype_genes), "events": int(event.sum()),
             "covariates_unrelated": ["AGE", "STAGE"]}
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out)
    return SyntheticClinical(table, truth)
