"""Survival analysis against planted truth: exponential survival with a known hazard ratio."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from histoexpr.cli import main
from histoexpr.clinical.scores import cv_cox_score, signature_score
from histoexpr.clinical.survival import (
    cox_multivariate,
    cox_univariate,
    kaplan_meier,
    risk_groups,
    survival_frame,
    table_one,
)
from histoexpr.errors import InputError

RATE = 0.1  # baseline hazard: median survival ln2 / 0.1 = 6.93


def simulate(hr: float, *, n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Binary x with hazard ratio ``hr``, a continuous z with HR 2 per unit, uniform censoring."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, n)
    t = rng.exponential(1 / (RATE * hr ** x))
    c = rng.uniform(0, 30, n)
    return pd.DataFrame({"time": np.minimum(t, c), "event": (t <= c).astype(int), "x": x,
                         "noise": rng.normal(size=n),
                         "stage": rng.choice(["I", "II", "III"], n)},
                        index=[f"P{i:03d}" for i in range(n)])


@pytest.fixture(scope="module")
def planted():
    return simulate(2.0)


def test_cox_ci_covers_the_planted_hazard_ratio(planted):
    row = cox_univariate(planted, ["x"]).iloc[0]
    assert row["hr_low"] < 2.0 < row["hr_high"]
    assert row["p"] < 1e-6 and row["n"] == 400 and row["events"] == planted["event"].sum()
    assert row["concordance"] > 0.55


def test_null_effect_is_not_significant():
    d = simulate(1.0, seed=1)
    row = cox_univariate(d, ["x"]).iloc[0]
    assert row["hr_low"] < 1.0 < row["hr_high"] and row["p"] > 0.05
    assert kaplan_meier(d, "x").p > 0.05


def test_logrank_separates_and_km_medians_match_theory(planted):
    km = kaplan_meier(planted, "x")
    assert km.p < 1e-3
    med = km.medians.set_index("group")["median"]
    assert med["0"] == pytest.approx(np.log(2) / RATE, rel=0.2)
    assert med["1"] == pytest.approx(np.log(2) / (2 * RATE), rel=0.2)
    first = km.table.groupby("group")["at_risk"].first()
    assert first.sum() == 400 and set(km.table.columns) >= {"survival", "ci_low", "ci_high"}


def test_logrank_with_three_groups_reports_overall_and_pairwise(planted):
    km = kaplan_meier(planted, "stage")
    assert km.logrank["comparison"].iloc[0] == "overall" and len(km.logrank) == 4
    assert km.logrank["df"].iloc[0] == 2 and km.logrank["p_bh"].iloc[1:].notna().all()


def test_categorical_reference_and_multivariate(planted):
    d = planted.assign(grp=np.where(planted["x"] == 1, "high", "low"))
    uni = cox_univariate(d, ["grp"], reference={"grp": "low"})
    assert list(uni["comparison"]) == ["high vs low"] and uni["hr"].iloc[0] > 1.5
    multi = cox_multivariate(d, ["grp", "noise", "stage"])
    assert list(multi["term"]) == ["grp[low]", "noise", "stage[II]", "stage[III]"]
    r = multi.iloc[0]  # default reference is the first level in sorted order: "high"
    assert r["hr_low"] < 0.5 < r["hr_high"] and r["lr_p"] < 1e-3 and r["concordance"] > 0.55


def test_nan_covariates_are_dropped_and_counted(planted):
    d = planted.copy()
    d.loc[d.index[:7], "noise"] = np.nan
    multi = cox_multivariate(d, ["x", "noise"])
    assert multi["n"].iloc[0] == 393 and multi.attrs["dropped"] == 7
    assert cox_univariate(d, ["noise"])["n"].iloc[0] == 393
    d.loc[d.index[:395], "noise"] = np.nan
    with pytest.raises(InputError, match=r"5 patients left \(395 dropped"):
        cox_multivariate(d, ["x", "noise"])


def test_more_terms_than_events_is_a_clear_error():
    rng = np.random.default_rng(0)
    d = pd.DataFrame({"time": rng.uniform(1, 10, 30), "event": [1] * 3 + [0] * 27,
                      **{f"c{i}": rng.normal(size=30) for i in range(4)}})
    with pytest.raises(InputError, match="3 events for 4 terms"):
        cox_multivariate(d, [f"c{i}" for i in range(4)])


def test_collinear_covariates_break_the_fit_with_a_clear_error(planted):
    d = planted.assign(twice=2 * planted["noise"])
    with pytest.raises(InputError, match=r"did not converge.*penalizer"):
        cox_multivariate(d, ["noise", "twice"])


def test_a_group_without_events(planted):
    d = planted.copy()
    d["grp"] = np.where(d["x"] == 1, "b", "a")
    d.loc[d["grp"] == "b", "event"] = 0
    row = cox_univariate(d, ["grp"]).iloc[0]
    assert np.isnan(row["hr"]) and "cannot be estimated" in row["note"]
    with pytest.raises(InputError, match="no events in grp=b"):
        cox_multivariate(d, ["grp", "noise"])
    km = kaplan_meier(d, "grp")  # KM is fine: that group's curve stays at 1
    assert np.isnan(km.medians.set_index("group").loc["b", "median"])


def test_risk_groups_median_and_given_cutoffs():
    s = pd.Series(np.arange(10.0), name="score")
    g = risk_groups(s)
    assert g.value_counts().to_dict() == {"low": 5, "high": 5} and g.name == "score_group"
    assert g.attrs == {"cutoffs": [4.5], "rule": "median"}
    g3 = risk_groups(s, cutoff=[6.5, 2.5])
    assert g3.value_counts(sort=False).tolist() == [3, 4, 3]
    assert list(g3.cat.categories) == ["low", "intermediate", "high"]
    assert risk_groups(s, cutoff=7).value_counts()["high"] == 2  # > cut-off is high
    with pytest.raises(InputError, match="empty"):
        risk_groups(s, cutoff=20.0)


def test_survival_frame_parses_cbioportal_and_counts_drops():
    clin = pd.DataFrame({
        "OS_MONTHS": [10.0, 5.0, np.nan, 7.0, "[Not Available]", 3.0],
        "OS_STATUS": ["1:DECEASED", "0:LIVING", "1:DECEASED", None, "0:LIVING", "1:DECEASED"],
    }, index=list("abcdef"))
    s = survival_frame(clin, time="OS_MONTHS", event="OS_STATUS")
    assert list(s.index) == ["a", "b", "f"] and list(s["event"]) == [1, 0, 1]
    assert s.attrs["dropped"] == {"n_in": 6, "missing_time": 2, "missing_event": 1,
                                  "ids": ["c", "d", "e"]}
    alt = pd.DataFrame({"t": [1, 2, 3], "vital": ["Dead", "Alive", "dead"]})
    assert survival_frame(alt, time="t", event="vital")["event"].tolist() == [1, 0, 1]
    both = pd.DataFrame({"t": [1, 2, 3], "e": [True, False, True]})
    assert survival_frame(both, time="t", event="e")["event"].tolist() == [1, 0, 1]
    rec = pd.DataFrame({"t": [1, 2, 3], "e": ["Relapse", "None", "relapse"]})
    with pytest.raises(InputError, match="event-values"):
        survival_frame(rec, time="t", event="e")
    got = survival_frame(rec, time="t", event="e", event_values=["relapse"])
    assert got["event"].tolist() == [1, 0, 1]


def test_survival_frame_errors():
    bad = pd.DataFrame({"t": [0.0, -1.0, 2.0, 3.0], "e": [1, 1, 0, 1]}, index=list("wxyz"))
    with pytest.raises(InputError, match=r"2 patient\(s\) have a time <= 0 \(e.g. w, x\)"):
        survival_frame(bad, time="t", event="e")
    none = pd.DataFrame({"t": [1.0, 2.0], "e": ["0:LIVING", "0:LIVING"]})
    with pytest.raises(InputError, match="no events among 2"):
        survival_frame(none, time="t", event="e")
    with pytest.raises(InputError, match="no column 'OS'"):
        survival_frame(none, time="OS", event="e")


def test_scores_from_expression(planted):
    rng = np.random.default_rng(2)
    expr = pd.DataFrame({"G1": planted["x"] + rng.normal(0, 0.2, 400),
                         "G2": rng.normal(size=400), "G3": rng.normal(size=400)},
                        index=planted.index)
    s = signature_score(expr, ["G1", "G2"])
    z = (expr - expr.mean()) / expr.std()
    assert np.allclose(s, (z["G1"] + z["G2"]) / 2) and s.name == "mean(G1,G2)"
    with pytest.raises(InputError, match="MKI67"):
        signature_score(expr, ["G1", "MKI67"])
    cv = cv_cox_score(expr, planted, folds=3)
    assert cv.notna().all() and cv.attrs["folds"] == 3
    d = planted.assign(cv=cv, noise_score=expr["G3"], g1=expr["G1"])
    uni = cox_univariate(d, ["cv", "noise_score", "g1"]).set_index("variable")
    assert uni.loc["cv", "concordance"] > 0.57 and uni.loc["cv", "p"] < 1e-4
    # out-of-fold, the model finds G1 (about as good as G1 alone) and ignores the noise genes
    assert uni.loc["cv", "concordance"] > uni.loc["g1", "concordance"] - 0.02
    assert uni.loc["noise_score", "concordance"] < 0.55


def test_table_one_is_shaped_like_the_seed(planted):
    d = planted.assign(grp=pd.Categorical(np.where(planted["x"] == 1, "high", "low"),
                                          categories=["low", "high"]))
    t1 = table_one(d, ["grp", "noise"], describe={"grp": "high vs low (median)"})
    assert list(t1.columns[:3]) == ["Parameter", "Risk group cut-off value",
                                    "No. of patients in each group"]
    assert "Multivariate (n=400) HR" in t1.columns and "Univariate (n=400) 95% CI" in t1.columns
    row = t1.iloc[0]
    n_high = int((planted["x"] == 1).sum())
    assert row["No. of patients in each group"] == f"{n_high} vs {400 - n_high}"
    assert row["Risk group cut-off value"] == "high vs low (median)"
    lo, hi = map(float, row["Multivariate (n=400) 95% CI"].split("-"))
    assert lo < 2.0 < hi


def test_figures(planted):
    from matplotlib.figure import Figure

    from histoexpr.plot.survival import forest_figure, km_figure

    fig = km_figure([kaplan_meier(planted, "x"), kaplan_meier(planted, "stage")])
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert "log-rank p" in fig.axes[0].get_legend().get_title().get_text()
    tab = pd.concat([cox_univariate(planted, ["x", "stage"]),
                     cox_multivariate(planted, ["x", "stage"])])
    assert isinstance(forest_figure(tab), Figure)


# ---------------------------------------------------------------------------- CLI
def run(capsys, *argv):
    rc = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def cohort_files(tmp_path_factory):
    from histoexpr.datasets.synthetic_clinical import synthetic_clinical

    root = tmp_path_factory.mktemp("surv")
    rng = np.random.default_rng(3)
    e = pd.DataFrame(rng.lognormal(2, 1, (200, 4)), columns=["ESR1", "MKI67", "PGR", "CDX1"],
                     index=[f"P{i:03d}" for i in range(200)])
    syn = synthetic_clinical(e, survival_gene="MKI67", er_gene="ESR1", ki67_gene="MKI67",
                             grade_gene="PGR", subtype_genes=("ESR1", "PGR"))
    clin = syn.table.copy()
    clin.loc["P000", "OS_MONTHS"] = np.nan
    clin.loc["P001", "AGE"] = np.nan
    clin.to_csv(root / "clinical.csv")
    np.log1p(e).to_csv(root / "expr.csv")
    return root


def test_cli_survival_end_to_end(capsys, cohort_files, tmp_path):
    out = tmp_path / "out"
    rc, stdout, err = run(capsys, "analyze", "survival", "--expression",
                          cohort_files / "expr.csv", "--clinical", cohort_files / "clinical.csv",
                          "--time", "OS_MONTHS", "--event", "OS_STATUS", "--score", "MKI67",
                          "--covariates", "AGE:55,STAGE", "--groups", "SUBTYPE", "--out", out)
    assert rc == 0, err
    for f in ("cox_univariate.csv", "cox_multivariate.csv", "table1.csv", "km.csv",
              "logrank.csv", "km.png", "forest.png", "analysis.json"):
        assert (out / f).is_file(), f
    uni = pd.read_csv(out / "cox_univariate.csv").set_index("term")
    assert uni.loc["MKI67", "comparison"] == "per SD"
    assert uni.loc["MKI67", "hr_low"] < 2.0 < uni.loc["MKI67", "hr_high"]  # planted 2 per SD
    rec = json.loads((out / "analysis.json").read_text())
    assert rec["summary"]["dropped"]["missing_time"] == 1
    assert rec["summary"]["multivariate"]["dropped"] == 1
    assert rec["summary"]["logrank_p"]["MKI67_group"] < 1e-3
    assert set(pd.read_csv(out / "logrank.csv")["grouping"]) == {"MKI67_group", "SUBTYPE"}
    t1 = pd.read_csv(out / "table1.csv")
    assert list(t1["Parameter"])[:2] == ["MKI67_group", "AGE"] and "HR" in stdout


def test_cli_survival_errors_are_one_line(capsys, cohort_files, tmp_path):
    clin = pd.read_csv(cohort_files / "clinical.csv")
    clin.loc[:2, "OS_MONTHS"] = 0.0
    clin.to_csv(tmp_path / "zero.csv", index=False)
    common = ["analyze", "survival", "--expression", cohort_files / "expr.csv", "--time",
              "OS_MONTHS", "--event", "OS_STATUS", "--out", tmp_path / "o"]
    rc, _, err = run(capsys, *common, "--clinical", tmp_path / "zero.csv", "--score", "MKI67")
    assert rc == 2 and "3 patient(s) have a time <= 0" in err and len(err.strip().splitlines()) == 1
    rc, _, err = run(capsys, *common, "--clinical", cohort_files / "clinical.csv",
                     "--score", "MKI67,GZMB")
    assert rc == 2 and "GZMB" in err.splitlines()[-1]
