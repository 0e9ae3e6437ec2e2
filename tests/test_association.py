"""Seed 002 Q3 feature x gene tests (against scipy/statsmodels) and reading image features."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from histoexpr.analysis.association import associate, feature_summary, top_varying
from histoexpr.analysis.features_table import (
    align_features,
    apply_manifest,
    read_image_features,
)
from histoexpr.analysis.variance import pearson_matrix
from histoexpr.errors import InputError
from histoexpr.features.store import save_features


def _data(rng, n=80, nf=6, ng=8):
    ids = [f"s{i}" for i in range(n)]
    F = pd.DataFrame(rng.normal(size=(n, nf)), index=ids).add_prefix("f")
    E = pd.DataFrame(rng.normal(size=(n, ng)) + 3, index=ids).add_prefix("G")
    E["G5"] += 1.5 * F["f2"]  # the planted pair
    return F, E


def test_r_p_match_scipy_and_q_matches_statsmodels(rng):
    F, E = _data(rng)
    tab = associate(F, E)
    assert len(tab) == 48 and tab.attrs["n_tests"] == 48
    for _, row in tab.sample(10, random_state=0).iterrows():
        ref = stats.pearsonr(F[row["feature"]], E[row["gene"]])
        assert row["r"] == pytest.approx(ref.statistic, abs=1e-12)
        assert row["p"] == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
        slope = stats.linregress(F[row["feature"]], E[row["gene"]]).slope
        assert row["slope"] == pytest.approx(slope, rel=1e-9)
    assert tab["q"].to_numpy() == pytest.approx(multipletests(tab["p"], method="fdr_bh")[1])
    assert tab["p"].is_monotonic_increasing
    top = tab.iloc[0]
    assert (top["feature"], top["gene"]) == ("f2", "G5") and top["q"] < 0.05
    assert (tab["q"] < 0.05).sum() <= 2  # the planted pair, and at most one chance hit


def test_spearman_matches_scipy(rng):
    F, E = _data(rng, n=30, nf=3, ng=6)
    tab = associate(F, E, method="spearman").set_index(["feature", "gene"])
    ref = stats.spearmanr(F["f0"], E["G1"])
    assert tab.loc[("f0", "G1"), "r"] == pytest.approx(ref.statistic, abs=1e-12)
    assert tab.loc[("f0", "G1"), "p"] == pytest.approx(ref.pvalue, rel=1e-6)
    with pytest.raises(InputError, match="unknown association method"):
        associate(F, E, method="kendall")


def test_top_varying_and_dropped_columns(rng, caplog):
    F, E = _data(rng)
    F["f0"] *= 10  # the most variable feature
    F["flat"] = 1.0
    E["Gnan"] = np.r_[np.nan, np.ones(len(E) - 1)]
    E["Glow"] = rng.normal(size=len(E)) * 20 - 50  # most variable but low mean
    tab = associate(F, E, top_features=2, top_genes=3, min_mean=0)
    assert "f0" in set(tab["feature"]) and tab["feature"].nunique() == 2
    assert set(tab["gene"]).isdisjoint({"Gnan", "Glow"}) and tab["gene"].nunique() == 3
    assert tab[["r", "p", "q"]].notna().all().all()
    assert "constant" in caplog.text and "NaN" in caplog.text
    assert list(top_varying(E, None, min_mean=0).columns[:1]) != ["Glow"]
    with pytest.raises(InputError, match="no column has mean above"):
        top_varying(E, 3, min_mean=100)


def test_vectorised_speed_and_pearson_matrix_errors(rng):
    F = pd.DataFrame(rng.normal(size=(100, 500))).add_prefix("f")
    E = pd.DataFrame(rng.normal(size=(100, 500))).add_prefix("g")
    t0 = time.perf_counter()
    tab = associate(F, E)
    assert time.perf_counter() - t0 < 1.5 and len(tab) == 250_000
    with pytest.raises(InputError, match="constant"):
        pearson_matrix(np.ones((5, 1)), np.arange(5.0))


def test_feature_summary_ranks_features(rng):
    F, E = _data(rng)
    E["G6"] += F["f2"]
    s = feature_summary(associate(F, E), fdr=0.05)
    assert s.iloc[0]["feature"] == "f2" and s.iloc[0]["n_significant"] >= 2
    assert s.iloc[0]["best_gene"] == "G5"


def _h5(folder, name, feats, encoder="toy"):
    feats = np.asarray(feats, np.float32)
    coords = np.c_[np.arange(len(feats)) * 256, np.zeros(len(feats), int)]
    return save_features(folder / f"{name}.h5", coords, feats, {"encoder": encoder})


def test_read_feature_folder_pools_tiles(tmp_path):
    d = tmp_path / "feats"
    _h5(d, "TCGA-A1-A0SB-01Z-00-DX1", [[0, 1], [2, 3], [10, 5]])
    _h5(d, "TCGA-A1-A0SD-01Z-00-DX1", [[1, 1]])
    _h5(d, "TCGA-A1-A0SD-01Z-00-DX2", [[3, 5]])
    mean = read_image_features(d)
    assert list(mean.columns) == ["f0", "f1"] and mean.attrs["encoder"] == "toy"
    assert mean.loc["TCGA-A1-A0SB"].tolist() == pytest.approx([4.0, 3.0])
    assert mean.loc["TCGA-A1-A0SD"].tolist() == pytest.approx([2.0, 3.0])  # 2 slides averaged
    med = read_image_features(d, pool="median", patients=False)
    assert med.loc["TCGA-A1-A0SB-01Z-00-DX1"].tolist() == pytest.approx([2.0, 3.0])
    assert len(med) == 3
    with pytest.raises(InputError, match="unknown pooling"):
        read_image_features(d, pool="max")
    with pytest.raises(InputError, match="not one file"):
        read_image_features(d / "TCGA-A1-A0SD-01Z-00-DX1.h5")
    _h5(d, "other", [[1, 1]], encoder="resnet50")
    with pytest.raises(InputError, match="different encoders"):
        read_image_features(d)


def test_manifest_table_and_gtex_matching(tmp_path):
    d = tmp_path / "feats"
    for i, v in enumerate(([0, 0], [2, 2], [4, 4])):
        _h5(d, f"slide{i}", [v])
    man = tmp_path / "manifest.csv"
    pd.DataFrame({"slide": ["slide0.svs", "slide1", "slide2"],
                  "sample": ["A", "A", "B"]}).to_csv(man, index=False)
    F = read_image_features(d, manifest=man)
    assert F["f0"].to_dict() == {"A": 1.0, "B": 4.0}
    with pytest.raises(InputError, match="none of the slides"):
        apply_manifest(F, pd.Series({"zz": "A"}))
    tab = tmp_path / "feats.csv"
    pd.DataFrame({"sample": ["GTEX-1117F-0126", "GTEX-111CU-0226", "GTEX-111FC-0326"],
                  "a": [1.0, 2, 3], "b": [0.0, 1, 0]}).to_csv(tab, index=False)
    F = read_image_features(tab)
    E = pd.DataFrame({"G": [7.0, 8.0]}, index=["GTEX-111FC-0326-SM-1", "GTEX-1117F-0126-SM-2"])
    f, e = align_features(F, E)
    assert list(f.index) == ["GTEX-1117F-0126", "GTEX-111FC-0326"]
    assert e["G"].tolist() == [8.0, 7.0] and f["a"].tolist() == [1.0, 3.0]
    with pytest.raises(InputError, match="no ids in common"):
        align_features(F, pd.DataFrame({"G": [1.0]}, index=["other"]))
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"sample": ["x", "y"], "a": [1, 2], "site": ["p", "q"]}).to_csv(bad,
                                                                               index=False)
    with pytest.raises(InputError, match=r"non-numeric column.*site"):
        read_image_features(bad)
