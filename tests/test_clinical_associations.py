"""Clinical associations of predicted genes (hist2RNA Figs. 7 and 8): group tests against
scipy/statsmodels, planted effects found, bad labels and measures handled, CLI end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from histoexpr.cli import main
from histoexpr.clinical.associations import (
    compare_groups,
    correlate_with_measure,
    parse_measure,
)
from histoexpr.clinical.labels import clean_labels
from histoexpr.errors import InputError
from histoexpr.plot.clinical import correlation_figure, violin_figure

N = 120


@pytest.fixture(scope="module")
def cohort():
    """120 patients: ESR1 higher in ER+, MKI67 rising with grade and tracking Ki67 %, and
    two null genes."""
    rng = np.random.default_rng(1)
    ids = [f"P{i:03d}" for i in range(N)]
    er = np.array(["Positive", "Negative"] * (N // 2))
    grade = np.repeat([1, 2, 3], N // 3)
    rng.shuffle(grade)
    ki67 = np.clip(10 * grade + rng.normal(0, 8, N), 1, 95).round()
    expr = pd.DataFrame({
        "ESR1": 5 + 1.5 * (er == "Positive") + rng.normal(0, 1, N),
        "MKI67": 3 + 0.04 * ki67 + rng.normal(0, 0.4, N),
        "NULL1": 4 + rng.normal(0, 1, N),
        "NULL2": 4 + rng.normal(0, 1, N),
    }, index=ids)
    clin = pd.DataFrame({"er": er, "grade": grade, "ki67": [f"{k:.0f}%" for k in ki67]},
                        index=ids)
    return expr, clin


def test_two_groups_planted_difference_and_null(cohort):
    expr, clin = cohort
    res = compare_groups(expr, clin["er"], genes=["ESR1", "NULL1", "NULL2"]).set_index("gene")
    assert res.attrs["groups"] == ["Negative", "Positive"] and res.attrs["test"] == "t"
    assert res.loc["ESR1", "p"] < 1e-6 and res.loc["ESR1", "q"] < 1e-6
    assert 1.0 < res.loc["ESR1", "difference"] < 2.0 and res.loc["ESR1", "statistic"] > 0
    assert res.loc["NULL1", "p"] > 0.05 and res.loc["NULL2", "p"] > 0.05
    assert (res["n_Negative"] == 60).all() and (res["n_Positive"] == 60).all()


def test_numbers_equal_scipy_and_statsmodels(cohort):
    expr, clin = cohort
    pos = expr[clin["er"] == "Positive"]
    neg = expr[clin["er"] == "Negative"]
    for test, fn in [("t", lambda a, b: stats.ttest_ind(a, b)),
                     ("welch", lambda a, b: stats.ttest_ind(a, b, equal_var=False)),
                     ("mannwhitney", lambda a, b: stats.mannwhitneyu(a, b,
                                                                     alternative="two-sided"))]:
        res = compare_groups(expr, clin["er"], test=test).set_index("gene")
        for g in expr.columns:
            ref = fn(pos[g], neg[g])  # second group (Positive) vs first
            assert res.loc[g, "statistic"] == pytest.approx(ref.statistic, rel=1e-12)
            assert res.loc[g, "p"] == pytest.approx(ref.pvalue, rel=1e-10)
        q_ref = multipletests(res["p"].to_numpy(), method="fdr_bh")[1]
        np.testing.assert_allclose(res["q"].to_numpy(), q_ref, rtol=1e-12)
    res = compare_groups(expr, clin["er"]).set_index("gene")
    g = "ESR1"
    assert res.loc[g, "mean_Positive"] == pytest.approx(pos[g].mean())
    assert res.loc[g, "median_Negative"] == pytest.approx(neg[g].median())
    # eta squared = R² of the one-way model = SS_between / SS_total
    fitted = expr[g].groupby(clin["er"]).transform("mean")
    eta2 = ((fitted - expr[g].mean()) ** 2).sum() / ((expr[g] - expr[g].mean()) ** 2).sum()
    assert res.loc[g, "eta_squared"] == pytest.approx(eta2)


def test_grades_anova_trend_and_null(cohort):
    expr, clin = cohort
    res = compare_groups(expr, clin["grade"], genes=["MKI67", "NULL1"]).set_index("gene")
    assert res.attrs["test"] == "anova" and res.attrs["groups"] == ["1", "2", "3"]
    assert res.loc["MKI67", "p"] < 1e-6 and res.loc["NULL1", "p"] > 0.05
    assert res.loc["MKI67", "mean_1"] < res.loc["MKI67", "mean_2"] < res.loc["MKI67", "mean_3"]
    assert np.isnan(res.loc["MKI67", "difference"])
    samples = [expr.loc[clin["grade"] == k, "MKI67"] for k in (1, 2, 3)]
    ref = stats.f_oneway(*samples)
    assert res.loc["MKI67", "statistic"] == pytest.approx(ref.statistic, rel=1e-12)
    assert res.loc["MKI67", "p"] == pytest.approx(ref.pvalue, rel=1e-10)
    kw = compare_groups(expr, clin["grade"], genes=["MKI67"], test="kruskal")
    assert kw.loc[0, "p"] == pytest.approx(stats.kruskal(*samples).pvalue, rel=1e-10)
    with pytest.raises(InputError, match="compares two"):
        compare_groups(expr, clin["grade"], test="t")


def test_placeholders_missing_counted_and_small_group_left_out(cohort):
    expr, clin = cohort
    lab = clin["er"].copy()
    lab.iloc[:5] = ["[Not Available]", "", None, " NA ", "[Unknown]"]
    lab.iloc[5:7] = [" Positive ", "Negative  "]  # stripped
    lab.iloc[7] = "Equivocal"  # a group of one: left out and reported
    lab = lab.sample(frac=1.0, random_state=0)  # aligned by index, not position
    res = compare_groups(expr, lab, genes=["ESR1"])
    a = res.attrs
    assert a["n_missing_label"] == 5 and a["groups_left_out"] == {"Equivocal": 1}
    assert a["missing_labels"] == {"[Not Available]": 1, "<empty>": 2, "NA": 1, "[Unknown]": 1}
    assert a["n_used"] == N - 6 == res.loc[0, "n"] and a["groups"] == ["Negative", "Positive"]
    assert res.loc[0, "n_Positive"] + res.loc[0, "n_Negative"] == N - 6
    # order picks and orders the groups; others are counted as left out
    flipped = compare_groups(expr, lab, genes=["ESR1"], order=["Positive", "Negative"])
    assert flipped.loc[0, "difference"] == pytest.approx(-res.loc[0, "difference"])
    assert flipped.attrs["groups_left_out"] == {"Equivocal": 1}


def test_bad_groups_and_genes_are_clear_errors(cohort):
    expr, clin = cohort
    with pytest.raises(InputError, match="single group"):
        compare_groups(expr, pd.Series("Positive", index=expr.index, name="er"))
    few = pd.Series(["A"] * (N - 1) + ["B"], index=expr.index, name="her2")
    with pytest.raises(InputError, match="fewer than 2 groups"):
        compare_groups(expr, few)
    with pytest.raises(InputError, match="ABSENT1"):
        compare_groups(expr, clin["er"], genes=["ESR1", "ABSENT1"])
    with pytest.raises(InputError, match="do not occur"):
        compare_groups(expr, clin["er"], order=["Positive", "Neg"])


def test_constant_gene_gives_nan_not_warning(cohort):
    expr, clin = cohort
    e = expr.assign(FLAT=1.0)
    res = compare_groups(e, clin["er"]).set_index("gene")
    assert np.isnan(res.loc["FLAT", "p"]) and res.loc["FLAT", "note"] == "constant"
    assert res.attrs["n_undefined"] == 1
    q_ref = multipletests(res["p"].dropna().to_numpy(), method="fdr_bh")[1]
    np.testing.assert_allclose(res["q"].dropna().to_numpy(), q_ref)


def test_correlation_equals_scipy_and_parses_percent(cohort):
    expr, clin = cohort
    meas = clin["ki67"].copy()
    meas.iloc[:3] = ["[Not Available]", "", "NA"]
    x = meas.str.rstrip("%").replace({"[Not Available]": np.nan, "": np.nan, "NA": np.nan})
    x = x.astype(float)
    ok = x.notna()
    for method, fn in [("pearson", stats.pearsonr), ("spearman", stats.spearmanr)]:
        r = correlate_with_measure(expr["MKI67"], meas, method=method)
        ref = fn(x[ok], expr.loc[ok, "MKI67"])
        assert r["n"] == N - 3 and r["n_dropped"] == 3
        assert r["r"] == pytest.approx(ref.statistic, rel=1e-12)
        assert r["p"] == pytest.approx(ref.pvalue, rel=1e-10)
        assert r["r"] > 0.6 and r["p"] < 1e-10
    slope, intercept = np.polyfit(x[ok], expr.loc[ok, "MKI67"], 1)
    assert r["slope"] == pytest.approx(slope) and r["intercept"] == pytest.approx(intercept)
    assert r["slope"] == pytest.approx(0.04, abs=0.01)  # the planted slope
    null = correlate_with_measure(expr["NULL1"], meas)
    assert null["p"] > 0.05
    v, n_missing = parse_measure(pd.Series(["30%", "7.5 %", 12, "[Not Available]"]))
    assert v.tolist()[:3] == [30.0, 7.5, 12.0] and n_missing == 1
    with pytest.raises(InputError, match=r"'ki67'.*'high'"):
        parse_measure(pd.Series(["30%", "high"], name="ki67"))
    with pytest.raises(InputError, match="at least 3"):
        correlate_with_measure(pd.Series([1.0, 2.0, 3.0]), pd.Series(["1", "NA", "[Unknown]"]))


def test_clean_labels_numbers_and_placeholders():
    lab, miss = clean_labels(pd.Series([1.0, 3.0, np.nan, "G2", "'--", "not reported"]))
    assert lab.tolist()[:2] == ["1", "3"] and lab.tolist()[3] == "G2"
    assert lab.isna().sum() == 3 and sum(miss.values()) == 3


def test_figures(cohort):
    expr, clin = cohort
    stats_ = compare_groups(expr, clin["grade"], genes=["MKI67", "NULL1"])
    fig = violin_figure(expr, clin["grade"], ["MKI67", "NULL1"], stats=stats_)
    assert len(fig.axes) == 2
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any("one-way ANOVA" in t and "p = " in t for t in texts)
    assert fig.axes[0].get_xticklabels()[0].get_text() == "1\n(n=40)"
    x, _ = parse_measure(clin["ki67"])
    fig = correlation_figure(x, expr["MKI67"], r=0.5, p=1e-5, xlabel="Ki67 %", ylabel="MKI67",
                             method="spearman")
    assert "ρ = 0.50" in fig.axes[0].texts[0].get_text()


def _run(capsys, *argv):
    rc = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_end_to_end(cohort, tmp_path, capsys):
    expr, clin = cohort
    pred = expr.copy()
    pred.insert(0, "patient", expr.index)
    pred.index = [f"{i}-slide" for i in expr.index]
    pred.index.name = "slide"
    pred.to_csv(tmp_path / "predictions.csv")  # the `bulk predict` format
    c = clin.copy()
    c.loc["P000", "er"] = "[Not Available]"
    c.loc["P001", "ki67"] = "[Not Available]"
    c.index.name = "patient_id"
    c.to_csv(tmp_path / "clinical.csv")
    out = tmp_path / "out"
    rc, _, err = _run(capsys, "-q", "analyze", "clinical", "--expression",
                      tmp_path / "predictions.csv", "--clinical", tmp_path / "clinical.csv",
                      "--genes", "ESR1,MKI67,NULL1", "--group", "er", "--group", "grade=1,2,3",
                      "--correlate", "MKI67=ki67", "--method", "spearman", "--out", out)
    assert rc == 0, err
    names = {p.name for p in out.iterdir()}
    assert {"groups_er.csv", "groups_grade.csv", "violin_er.png", "violin_grade.png",
            "correlations.csv", "correlation_MKI67_ki67.png", "analysis.json"} <= names
    g = pd.read_csv(out / "groups_er.csv").set_index("gene")
    assert g.loc["ESR1", "q"] < 1e-6 and g.loc["NULL1", "p"] > 0.05
    assert g.loc["ESR1", "n"] == N - 1
    gr = pd.read_csv(out / "groups_grade.csv").set_index("gene")
    assert gr.loc["MKI67", "test"] == "anova" and gr.loc["MKI67", "p"] < 1e-6
    cor = pd.read_csv(out / "correlations.csv")
    assert cor.loc[0, "n_dropped"] == 1 and cor.loc[0, "r"] > 0.6
    rec = json.loads((out / "analysis.json").read_text())
    assert rec["summary"]["groups"]["er"]["n_missing_label"] == 1
    assert any("er: 1 of" in n for n in rec["notes"])


def test_cli_single_group_is_one_line_error(cohort, tmp_path, capsys):
    expr, clin = cohort
    pred = expr.assign(patient=expr.index)
    pred.index = [f"{i}-slide" for i in expr.index]
    pred.to_csv(tmp_path / "predictions.csv")
    clin.assign(er="Positive").rename_axis("patient_id").to_csv(tmp_path / "clinical.csv")
    rc, _, err = _run(capsys, "analyze", "clinical", "--expression",
                      tmp_path / "predictions.csv", "--clinical", tmp_path / "clinical.csv",
                      "--genes", "ESR1", "--group", "er", "--out", tmp_path / "o")
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert rc == 2 and len(lines) == 1 and "single group" in lines[0] and "'er'" in lines[0]
    rc, _, err = _run(capsys, "analyze", "clinical", "--expression",
                      tmp_path / "predictions.csv", "--clinical", tmp_path / "clinical.csv",
                      "--genes", "ESR1", "--group", "stage", "--out", tmp_path / "o")
    assert rc == 2 and "'stage'" in err
