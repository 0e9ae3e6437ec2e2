"""The synthetic clinical table carries the links it claims (so demos and tests built on it
have a known right answer)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from histoexpr.datasets.synthetic_clinical import synthetic_clinical
from histoexpr.errors import InputError


@pytest.fixture(scope="module")
def cohort():
    rng = np.random.default_rng(1)
    e = pd.DataFrame(rng.lognormal(2, 1, (1500, 5)), columns=list("ABCDE"),
                     index=[f"P{i}" for i in range(1500)])
    syn = synthetic_clinical(e, survival_gene="A", er_gene="B", ki67_gene="C",
                             grade_gene="D", subtype_genes=("B", "E"), hazard_ratio=2.0)
    return e, syn


def test_planted_links_are_there(cohort):
    e, syn = cohort
    t = syn.table
    z = np.log1p(e)
    assert z.loc[t["ER_STATUS"] == "Positive", "B"].mean() > z.loc[
        t["ER_STATUS"] == "Negative", "B"].mean() + 0.5
    assert stats.spearmanr(z["C"], t["KI67_PERCENT"])[0] > 0.6
    assert stats.spearmanr(z["D"], t["GRADE"])[0] > 0.6
    assert stats.spearmanr(z["A"], t["AGE"])[0] == pytest.approx(0, abs=0.1)
    assert t["SUBTYPE"].nunique() == 4 and t["OS_STATUS"].str.startswith("1:").sum() > 300


def test_hazard_ratio_is_recovered(cohort):
    from lifelines import CoxPHFitter

    e, syn = cohort
    t = syn.table
    za = np.log1p(e["A"])
    df = pd.DataFrame({"z": (za - za.mean()) / za.std(ddof=0), "T": t["OS_MONTHS"],
                       "E": t["OS_STATUS"].str.startswith("1:").astype(int)})
    s = CoxPHFitter().fit(df, "T", "E").summary.loc["z"]
    assert s["exp(coef) lower 95%"] < 2.0 < s["exp(coef) upper 95%"]


def test_missing_gene_is_named():
    e = pd.DataFrame({"A": [1.0, 2.0]})
    with pytest.raises(InputError, match="ZZ"):
        synthetic_clinical(e, survival_gene="A", er_gene="ZZ", ki67_gene="A", grade_gene="A",
                           subtype_genes=("A", "A"))
