from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error
from statsmodels.stats.multitest import multipletests

from histoexpr.errors import InputError
from histoexpr.metrics import (
    METRICS,
    POOLED,
    evaluate,
    per_gene,
    per_sample,
    summarise,
    summary_table,
    top_genes,
)


def _noisy(rng, n=40, g=25, signal=0.5):
    y = rng.normal(size=(n, g))
    yhat = signal * y + rng.normal(size=(n, g))
    return y, yhat


def _with_ties(y: np.ndarray, yhat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, yhat = y.copy(), yhat.copy()
    yhat[:, 0] = np.round(yhat[:, 0])  # ties in the prediction
    y[:, 1] = np.round(y[:, 1] * 2) / 2  # ties in the measurement
    return y, yhat


@pytest.mark.parametrize("n", [3, 7, 40, 300])
def test_correlations_match_scipy_per_gene(rng, n):
    y, yhat = _with_ties(*_noisy(rng, n=n))
    m = per_gene(y, yhat)
    for j in range(y.shape[1]):
        pr = stats.pearsonr(y[:, j], yhat[:, j])
        sr = stats.spearmanr(y[:, j], yhat[:, j])
        np.testing.assert_allclose(m["pearson_r"].iloc[j], pr.statistic, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(m["pearson_p"].iloc[j], pr.pvalue, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(m["spearman_r"].iloc[j], sr.statistic, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(m["spearman_p"].iloc[j], sr.pvalue, rtol=1e-10, atol=1e-12)
    assert list(m.columns) == list(METRICS)
    assert m.index.name == "gene"
    assert not m["constant"].any()


def test_q_values_are_bh_over_non_nan_p(rng):
    y, yhat = _noisy(rng, n=30, g=40, signal=0.3)
    y[:, 3] = 2.0  # constant gene: no p-value, must not enter the FDR
    m = per_gene(y, yhat)
    for col in ("pearson", "spearman"):
        p = m[f"{col}_p"].to_numpy()
        ok = ~np.isnan(p)
        assert ok.sum() == 39
        expected = multipletests(p[ok], method="fdr_bh")[1]
        np.testing.assert_allclose(m[f"{col}_q"].to_numpy()[ok], expected, rtol=1e-12)
        assert np.isnan(m[f"{col}_q"].iloc[3])
        assert (m[f"{col}_q"].to_numpy()[ok] >= p[ok]).all()


def test_r2_mae_rmse_match_sklearn(rng):
    y, yhat = _noisy(rng, n=50, g=12)
    yhat += 0.7  # a bias, so MAE / RMSE / R² are not just the noise
    m = per_gene(y, yhat)
    np.testing.assert_allclose(m["r2"], r2_score(y, yhat, multioutput="raw_values"), rtol=1e-10)
    np.testing.assert_allclose(
        m["mae"], mean_absolute_error(y, yhat, multioutput="raw_values"), rtol=1e-12
    )
    np.testing.assert_allclose(
        m["rmse"], root_mean_squared_error(y, yhat, multioutput="raw_values"), rtol=1e-12
    )


def test_constant_genes_are_nan_counted_and_silent(rng):
    y, yhat = _noisy(rng, n=20, g=6)
    y[:, 1] = 0.1  # measured constant (a float that is not exact in binary)
    yhat[:, 4] = 3.0  # predicted constant, e.g. a mean predictor
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = per_gene(y, yhat, genes=list("abcdef"))
        s = summarise(m)
    assert m["constant"].tolist() == [False, True, False, False, True, False]
    corr = ["pearson_r", "pearson_p", "pearson_q", "spearman_r", "spearman_p", "spearman_q"]
    assert m.loc[["b", "e"], corr].isna().all().all()
    assert m.loc[["a", "c", "d", "f"], corr].notna().all().all()
    # R² is undefined only when the *measured* gene is constant
    assert np.isnan(m.loc["b", "r2"]) and np.isfinite(m.loc["e", "r2"])
    assert m[["mae", "rmse"]].notna().all().all()
    assert (s["n_genes"], s["n_constant"], s["n_valid"]) == (6, 2, 4)
    np.testing.assert_allclose(s["mean"], m["pearson_r"].dropna().mean())


def test_perfect_and_reversed_prediction(rng):
    y = rng.gamma(2.0, size=(15, 4))
    m = per_gene(y, y)
    assert (m["pearson_r"] == 1.0).all() and (m["spearman_r"] == 1.0).all()
    assert (m["pearson_p"] == 0.0).all() and (m["spearman_p"] == 0.0).all()
    assert (m["r2"] == 1.0).all() and (m["mae"] == 0.0).all() and (m["rmse"] == 0.0).all()
    rev = per_gene(y, -y)
    assert (rev["spearman_r"] == -1.0).all()
    np.testing.assert_allclose(rev["pearson_r"], -1.0, rtol=1e-14)


def test_input_errors(rng):
    y = rng.normal(size=(10, 3))
    with pytest.raises(InputError, match=r"\(10, 3\).*\(10, 4\)"):
        per_gene(y, rng.normal(size=(10, 4)))
    bad = y.copy()
    bad[4, 2] = np.nan
    with pytest.raises(InputError, match=r"y_pred holds 1 NaN.*row 4, column 2"):
        per_gene(y, bad)
    bad[4, 2] = np.inf
    with pytest.raises(InputError, match="y_true holds 1 NaN/inf"):
        per_gene(bad, y)
    with pytest.raises(InputError, match="at least 3 rows"):
        per_gene(y[:2], y[:2])
    with pytest.raises(InputError, match="2-D"):
        per_gene(y[:, 0], y[:, 0])
    with pytest.raises(InputError, match="3 gene names for"):
        per_gene(y[:, :2], y[:, :2], genes=["a", "b", "c"])
    with pytest.raises(InputError, match="'a' appears more than once"):
        per_gene(y, y, genes=["a", "b", "a"])
    with pytest.raises(InputError, match="numeric"):
        per_gene(np.array([["x"] * 3] * 4), y[:4])
    with pytest.raises(InputError, match="at least 3 genes"):
        per_sample(y[:, :2], y[:, :2])
    with pytest.raises(InputError, match="pearson, spearman"):
        per_sample(y, y, method="kendall")


def test_dataframe_inputs_name_genes_and_samples(rng):
    y, yhat = _noisy(rng, n=8, g=3)
    frame = pd.DataFrame(y, columns=["ESR1", "ERBB2", "MKI67"], index=[f"p{i}" for i in range(8)])
    assert per_gene(frame, yhat).index.tolist() == ["ESR1", "ERBB2", "MKI67"]
    assert per_sample(frame, yhat).index.tolist() == [f"p{i}" for i in range(8)]
    assert per_gene(y, yhat).index.tolist() == [0, 1, 2]


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_per_sample_matches_scipy(rng, method):
    y, yhat = _noisy(rng, n=12, g=60, signal=0.4)
    yhat[5] = 1.5  # a sample whose prediction is constant across genes
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = per_sample(y, yhat, [f"s{i}" for i in range(12)], method=method)
    ref = stats.spearmanr if method == "spearman" else stats.pearsonr
    for i in range(12):
        if i == 5:
            continue
        res = ref(y[i], yhat[i])
        np.testing.assert_allclose(out[f"{method}_r"].iloc[i], res.statistic, rtol=1e-10)
        np.testing.assert_allclose(out[f"{method}_p"].iloc[i], res.pvalue, rtol=1e-10)
    assert np.isnan(out.loc["s5", f"{method}_r"]) and out.loc["s5", "constant"]
    assert out["constant"].sum() == 1
    p = out[f"{method}_p"].dropna().to_numpy()
    np.testing.assert_allclose(
        out[f"{method}_q"].dropna(), multipletests(p, method="fdr_bh")[1], rtol=1e-12
    )
    assert out.index.name == "sample"


def test_evaluate_pooled_plus_one_block_per_section(rng, caplog):
    y, yhat = _noisy(rng, n=20, g=5)
    sections = np.array(["B"] * 8 + ["A"] * 10 + ["tiny"] * 2)
    genes = [f"g{j}" for j in range(5)]
    with caplog.at_level(logging.WARNING, logger="histoexpr.metrics"):
        tidy = evaluate(y, yhat, genes=genes, sections=sections, fold=2)
    assert "'tiny' has 2 spot(s)" in caplog.text
    assert list(tidy.columns) == ["fold", "section", "gene", "metric", "value"]
    assert len(tidy) == 3 * 5 * len(METRICS)
    assert tidy["section"].unique().tolist() == [POOLED, "B", "A"]
    assert (tidy["fold"] == 2).all()
    assert tidy.groupby("section").size().tolist() == [5 * len(METRICS)] * 3
    wide = {
        s: b.pivot(index="gene", columns="metric", values="value")
        for s, b in tidy.groupby("section")
    }
    for name, rows in [(POOLED, slice(None)), ("B", slice(0, 8)), ("A", slice(8, 18))]:
        expected = per_gene(y[rows], yhat[rows], genes).astype(float)
        pd.testing.assert_frame_equal(
            wide[name][list(METRICS)], expected, check_names=False, check_exact=False
        )
    # the per-section and pooled numbers really differ (FDR and r are per block)
    assert not np.allclose(wide["A"]["pearson_r"], wide[POOLED]["pearson_r"])


def test_evaluate_without_sections_and_csv_round_trip(rng, tmp_path):
    y, yhat = _noisy(rng, n=10, g=4)
    tidy = evaluate(y, yhat, genes=list("wxyz"))
    assert tidy["section"].unique().tolist() == [POOLED]
    assert tidy["fold"].isna().all()
    assert len(tidy) == 4 * len(METRICS)
    path = tmp_path / "metrics.csv"
    tidy.to_csv(path, index=False)
    back = pd.read_csv(path)
    assert list(back.columns) == ["fold", "section", "gene", "metric", "value"]
    np.testing.assert_allclose(back["value"], tidy["value"].astype(float), equal_nan=True)


def test_evaluate_errors(rng):
    y = rng.normal(size=(6, 2))
    with pytest.raises(InputError, match="5 section labels for 6 spots"):
        evaluate(y, y, sections=list("aabbc"))
    with pytest.raises(InputError, match="named 'pooled'"):
        evaluate(y, y, sections=["pooled"] * 3 + ["x"] * 3)
    with pytest.raises(InputError, match="min_spots"):
        evaluate(y, y, min_spots=2)


def test_summarise_counts_on_a_hand_made_example():
    df = pd.DataFrame(
        {
            "pearson_r": [0.9, 0.6, 0.5, 0.3, 0.0, -0.2, np.nan],
            "pearson_q": [0.001, 0.04, 0.05, 0.2, 0.9, 0.5, np.nan],
            "constant": [False] * 6 + [True],
        },
        index=list("abcdefg"),
    )
    s = summarise(df, top_k=(2, 10))
    assert s["n_genes"] == 7 and s["n_constant"] == 1 and s["n_valid"] == 6
    # strictly greater than the threshold: 0.0, 0.3 and 0.5 themselves do not count
    assert (s["n_r_gt_0"], s["n_r_gt_0.3"], s["n_r_gt_0.5"]) == (4, 3, 2)
    assert s["mean"] == pytest.approx(2.1 / 6)
    assert s["median"] == pytest.approx(0.4)
    assert s["top2_mean"] == pytest.approx(0.75)
    assert np.isnan(s["top10_mean"])  # only 6 genes have a value
    assert s["n_q_lt_0.05"] == 2  # 0.05 itself is not below alpha
    assert summarise(df, thresholds=(0.55,), top_k=())["n_r_gt_0.55"] == 2
    with pytest.raises(InputError, match="available: pearson_r"):
        summarise(df, metric="spearman_r")


def test_summarise_and_top_genes_lower_is_better_for_errors():
    df = pd.DataFrame({"mae": [0.5, 0.1, 0.3], "pearson_r": [0.2, 0.8, np.nan]}, index=list("abc"))
    assert summarise(df, metric="mae", top_k=(2,))["top2_mean"] == pytest.approx(0.2)
    assert "n_q_lt_0.05" not in summarise(df, metric="mae")
    assert top_genes(df, 2, metric="mae").index.tolist() == ["b", "c"]
    assert top_genes(df, 5).index.tolist() == ["b", "a"]  # NaN left out


def test_summary_table_per_fold_section_metric(rng):
    y, yhat = _noisy(rng, n=24, g=30)
    sections = np.repeat(["s1", "s2"], 12)
    tidy = pd.concat(
        [
            evaluate(y[:, :15], yhat[:, :15], sections=sections, fold=0),
            evaluate(y[:, 15:], yhat[:, 15:], sections=sections, fold=1),
        ],
        ignore_index=True,
    )
    table = summary_table(tidy, top_k=(5,))
    assert len(table) == 2 * 3 * 2  # folds x (pooled + 2 sections) x metrics
    assert table[["fold", "section", "metric"]].iloc[:3].values.tolist() == [
        [0, POOLED, "pearson_r"],
        [0, POOLED, "spearman_r"],
        [0, "s1", "pearson_r"],
    ]
    row = table[
        (table["fold"] == 1) & (table["section"] == "s2") & (table["metric"] == "spearman_r")
    ]
    expected = summarise(per_gene(y[12:, 15:], yhat[12:, 15:]), metric="spearman_r", top_k=(5,))
    for key, value in expected.items():
        assert row[key].iloc[0] == pytest.approx(value)
    with pytest.raises(InputError, match="lacks column"):
        summary_table(tidy.drop(columns="fold"))
