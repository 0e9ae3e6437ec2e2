"""Seed 002 Q1/Q2: PCA, shared variance and confounder regression against planted truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from histoexpr.analysis.confounders import design_matrix, regress_out
from histoexpr.analysis.variance import (
    component_correlations,
    drop_uninformative,
    pca,
    shared_variance,
)
from histoexpr.errors import InputError


def _frames(F, E):
    ids = [f"s{i}" for i in range(len(F))]
    return (pd.DataFrame(F, index=ids).add_prefix("f"),
            pd.DataFrame(E, index=ids).add_prefix("g"))


def test_rotation_gives_one(rng):
    E = rng.normal(size=(150, 8)) @ rng.normal(size=(8, 8))  # correlated genes
    Q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    F, E = _frames(E @ Q, E)
    res = shared_variance(F, E, variance_cutoff=1.0)
    assert res.value == pytest.approx(1.0, abs=1e-6)
    assert res.k_features == res.k_expression == 8
    assert res.components["contribution"].sum() == pytest.approx(res.value)
    assert res.components["r2"].to_numpy() == pytest.approx(np.ones(8), abs=1e-6)
    # z-scoring or not, "kept" normalisation: still a linear map of E, still 1
    assert shared_variance(F, E, variance_cutoff=1.0, standardise=False).value == \
        pytest.approx(1.0, abs=1e-6)
    # a cut-off keeps about that share of image variance, so the value is at most about it
    cut = shared_variance(F, E, variance_cutoff=0.8)
    assert cut.k_features < 8
    assert 0.5 < cut.value <= cut.variance_kept_features + 1e-9
    kept = shared_variance(F, E, variance_cutoff=0.8, normalise="kept")
    assert kept.value == pytest.approx(cut.value / cut.variance_kept_features)


def test_independent_data_near_zero_with_reported_bias(rng):
    n = 400
    F, E = _frames(rng.normal(size=(n, 10)), rng.normal(size=(n, 12)))
    res = shared_variance(F, E, variance_cutoff=1.0, n_permutations=100, seed=1)
    assert res.expected_null == pytest.approx(12 / (n - 1))
    assert res.value < 0.06 and res.value < 2.5 * res.expected_null
    assert abs(res.adjusted) < 0.02
    assert res.null_mean == pytest.approx(res.expected_null, rel=0.25)
    assert res.p_value > 0.05 and res.n_permutations == 100
    assert not res.saturated


def test_planted_factor_intermediate_and_rising(rng):
    n = 300
    z = rng.normal(size=n)
    base_f, base_e = rng.normal(size=(n, 6)), rng.normal(size=(n, 6))
    values, adjusted, truth = [], [], []
    for s in (0.0, 0.5, 1.0, 2.0):
        F = base_f.copy()
        E = base_e.copy()
        F[:, :2] += s * z[:, None]  # 2 of 6 z-scored features carry s^2 / (1 + s^2) of z
        E[:, :3] += s * z[:, None]  # expression predicts z with R^2 = 3 s^2 / (3 s^2 + 1)
        res = shared_variance(*_frames(F, E), variance_cutoff=1.0, n_permutations=50)
        values.append(res.value)
        adjusted.append(res.adjusted)
        truth.append(2 / 6 * s**2 / (1 + s**2) * 3 * s**2 / (3 * s**2 + 1))
    assert values == sorted(values) and values[0] < 0.06
    assert 0.1 < values[2] < 0.5
    assert adjusted == pytest.approx(truth, abs=0.04)
    assert res.p_value == pytest.approx(1 / 51)
    assert res.components["contribution"].iloc[0] == res.components["contribution"].max()


def test_saturated_when_expression_pcs_reach_samples(rng, caplog):
    F, E = _frames(rng.normal(size=(12, 3)), rng.normal(size=(12, 40)))
    res = shared_variance(F, E, variance_cutoff=1.0)
    assert res.saturated and np.isnan(res.adjusted)
    assert res.value == pytest.approx(1.0, abs=1e-6)
    assert "meaningless" in caplog.text


def test_pca_cutoff_drops_and_errors(rng):
    X = pd.DataFrame(rng.normal(size=(30, 5)) * [5, 3, 1, 1, 1], columns=list("abcde"))
    X["const"] = 2.0
    X["nan"] = np.r_[np.nan, np.ones(29)]
    res = pca(X, variance_cutoff=1.0, standardise=False)
    assert res.dropped == {"nonfinite": 1, "constant": 1}
    assert list(res.loadings.columns) == list("abcde")
    assert res.n_components == 5 and res.variance_kept == pytest.approx(1.0)
    assert pca(X, variance_cutoff=0.5, standardise=False).n_components <= 2
    with pytest.raises(InputError, match="asked for 40 components but 30 samples"):
        pca(rng.normal(size=(30, 50)), n_components=40)
    with pytest.raises(InputError, match="at least 3"):
        pca(rng.normal(size=(2, 4)))
    with pytest.raises(InputError, match="no column left"):
        drop_uninformative(pd.DataFrame({"a": [1.0, 1.0, 1.0]}))
    with pytest.raises(InputError, match="cut-off"):
        pca(X, variance_cutoff=1.5)


def test_component_correlations_and_pairing_errors(rng):
    a = pd.DataFrame(rng.normal(size=(20, 2)), columns=["PC1", "PC2"])
    r, _ = component_correlations(a, a.rename(columns={"PC1": "E1", "PC2": "E2"}))
    assert r.loc["PC1", "E1"] == pytest.approx(1.0) and abs(r.loc["PC1", "E2"]) < 0.6
    F = pd.DataFrame(rng.normal(size=(5, 2)), index=list("abcde"))
    E = pd.DataFrame(rng.normal(size=(5, 2)), index=list("vwxyz"))
    with pytest.raises(InputError, match="no ids in common"):
        shared_variance(F, E)
    with pytest.raises(InputError, match="same samples"):
        shared_variance(rng.normal(size=(10, 2)), rng.normal(size=(9, 2)))


def _confounded(rng, n=150):
    """F and E share only log ischaemic time (plus independent noise)."""
    isch = rng.uniform(30, 1500, n)
    c = np.log(isch) - np.log(isch).mean()
    c /= c.std()
    ids = [f"s{i}" for i in range(n)]
    F = rng.normal(size=(n, 6))
    E = rng.normal(size=(n, 8))
    F[:, :3] += 1.5 * c[:, None]
    E[:, :4] += 1.5 * c[:, None]
    cov = pd.DataFrame({"SMTISCH": isch, "SEX": rng.choice(["F", "M"], n),
                        "AGE": rng.uniform(20, 70, n)}, index=ids)
    return (pd.DataFrame(F, index=ids).add_prefix("f"),
            pd.DataFrame(E, index=ids).add_prefix("g"), cov)


def test_regressing_out_a_confounder_removes_shared_variance(rng):
    F, E, cov = _confounded(rng)
    rf, re_ = regress_out(F, cov), regress_out(E, cov)
    assert rf.design.logged == ["SMTISCH"]  # the default log column
    assert (rf.r2.loc[["f0", "f1", "f2"], "SMTISCH"] > 0.5).all()
    assert (rf.r2.loc[["f3", "f4", "f5"], "all"] < 0.15).all()
    assert list(rf.r2.columns) == ["all", "SMTISCH", "SEX", "AGE"]
    assert rf.summary().set_index("covariate").loc["all", "mean_r2"] == \
        pytest.approx(rf.r2["all"].mean())
    raw = shared_variance(F, E, variance_cutoff=1.0, n_permutations=50)
    res = shared_variance(rf.residuals, re_.residuals, variance_cutoff=1.0, n_permutations=50,
                          n_covariates=rf.n_covariates)
    assert raw.value > 0.3 and raw.p_value < 0.05
    assert res.value < 0.12 and abs(res.adjusted) < 0.03
    # residuals are orthogonal to the (logged) covariate
    logc = np.log(cov["SMTISCH"])
    assert abs(np.corrcoef(rf.residuals["f0"], logc)[0, 1]) < 1e-8


def test_covariates_nan_rows_dropped_and_counted(rng, caplog):
    F, _, cov = _confounded(rng, n=40)
    cov.iloc[[1, 5, 7], 2] = np.nan
    cov = cov.drop(index="s9")
    reg = regress_out(F, cov)
    assert reg.n_dropped == 4 and len(reg.residuals) == 36
    assert set(reg.design.dropped_rows) == {"s1", "s5", "s7"}
    assert "3 of 39 samples have missing covariates" in caplog.text
    assert "1 of 40 samples are not in the covariate table" in caplog.text


def test_covariate_errors(rng):
    F, _, cov = _confounded(rng, n=20)
    bad = cov.copy()
    bad.iloc[0, 0] = 0.0
    with pytest.raises(InputError, match=r"SMTISCH.*no log.*--log-offset"):
        regress_out(F, bad)
    assert regress_out(F, bad, log_offset=1.0).residuals.shape == F.shape
    with pytest.raises(InputError, match="no covariate column 'ischemic'"):
        regress_out(F, cov, log=["ischemic"])
    ids = pd.DataFrame({"donor": [f"d{i}" for i in range(20)]}, index=cov.index)
    with pytest.raises(InputError, match=r"20 design columns.*'donor'.*20 samples"):
        regress_out(F, ids)
    with pytest.raises(InputError, match="no sample ids in common"):
        regress_out(F, cov.set_axis([f"x{i}" for i in range(20)]))


def test_design_matrix_categories_and_constant_covariate(rng):
    C = pd.DataFrame({"site": ["a", "b", "c", "a"], "batch": [1, 2, 1, 2], "one": [3, 3, 3, 3]})
    d = design_matrix(C, log=[], categorical=["batch"])
    assert list(d.matrix.columns) == ["intercept", "site[b]", "site[c]", "batch[2]"]
    assert d.dropped_covariates == ["one"] and d.n_params == 4


def test_figures(rng):
    from histoexpr.plot.variance import association_heatmap, shared_variance_bars

    F, E = _frames(rng.normal(size=(40, 3)), rng.normal(size=(40, 4)))
    res = shared_variance(F, E, n_permutations=10)
    summary = pd.DataFrame([{"features": "raw", "data": "raw", **res.summary()},
                            {"features": "tuned", "data": "raw", **res.summary()}])
    comp = pd.concat([res.components.assign(features=k, data="raw") for k in ("raw", "tuned")])
    fig = shared_variance_bars(summary, comp)
    assert len(fig.axes) == 2 and fig.axes[1].get_xlabel() == "image PC"
    from histoexpr.analysis.association import associate

    tab = associate(F, E)
    fig = association_heatmap(tab, title="raw")
    assert fig.axes[0].get_xlabel() == "gene" and len(fig.axes[0].get_yticks()) == 3
