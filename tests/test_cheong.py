"""The gastric rules of Cheong et al. on hand-made cases, and the cohort-quantile thresholds."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from histoexpr.cli import main
from histoexpr.clinical.cheong import cheong_classify, cheong_thresholds, signature_scores
from histoexpr.errors import InputError

GENES = ["GZMB", "WARS", "SFRP4", "CDX1"]


def hand_made() -> pd.DataFrame:
    # columns: GZMB, WARS, SFRP4, CDX1 (values used as given: standardize=False)
    rows = {
        "immune_only": [3.0, 3.0, 0.0, 0.0],
        "immune_and_stem": [3.0, 3.0, 5.0, 0.0],   # published order: immune wins
        "stem_only": [0.0, 0.0, 5.0, 0.0],
        "neither": [0.0, 0.0, 0.0, 4.0],
        "half_immune": [3.0, -3.0, 0.0, 0.0],      # immune score is the mean of GZMB, WARS
    }
    return pd.DataFrame(rows, index=GENES).T


def test_rules_in_the_published_order():
    res = cheong_classify(hand_made(), thresholds={"immune": 1.0, "stem_like": 1.0},
                          standardize=False)
    assert res["group"].astype(str).to_dict() == {
        "immune_only": "immune", "immune_and_stem": "immune", "stem_only": "stem-like",
        "neither": "epithelial", "half_immune": "epithelial"}
    assert res.loc["immune_and_stem", "stem_like_high"]  # high, but immune comes first
    assert res["risk"].tolist() == ["low", "low", "high", "intermediate", "intermediate"]
    assert res["chemotherapy_benefit"].tolist() == [False, False, False, True, True]
    assert res.attrs["thresholds"]["immune_rule"] == "given"


def test_scores_are_means_of_z_scored_genes():
    e = hand_made()
    s = signature_scores(e)
    z = (e - e.mean()) / e.std()
    assert np.allclose(s["immune"], (z["GZMB"] + z["WARS"]) / 2)
    assert np.allclose(s["stem_like"], z["SFRP4"]) and np.allclose(s["epithelial"], z["CDX1"])


def test_default_quantiles_reproduce_the_published_proportions():
    rng = np.random.default_rng(0)
    e = pd.DataFrame(rng.normal(size=(400, 4)), columns=GENES)
    res = cheong_classify(e)
    frac = res["group"].value_counts(normalize=True)
    assert frac["immune"] == pytest.approx(0.13, abs=0.01)
    assert frac["stem-like"] == pytest.approx(0.40, abs=0.01)
    assert frac["epithelial"] == pytest.approx(0.47, abs=0.01)
    th = res.attrs["thresholds"]
    assert "qPCR" in th["note"] and "quantile" in th["immune_rule"]
    assert th["immune_quantile"] == 0.87 and th["stem_quantile"] == 0.54


def test_thresholds_mix_given_and_derived():
    s = pd.DataFrame({"immune": np.arange(10.0), "stem_like": np.arange(10.0)[::-1]})
    th = cheong_thresholds(s, immune=7.0, stem_quantile=0.5)
    assert th["immune"] == 7.0 and th["immune_rule"] == "given"
    assert th["stem_like"] == pytest.approx(np.quantile(np.arange(2.0, 10.0), 0.5))
    with pytest.raises(InputError, match="between 0 and 1"):
        cheong_thresholds(s, immune_quantile=1.5)


def test_bad_input():
    e = hand_made().drop(columns="SFRP4")
    with pytest.raises(InputError, match="SFRP4"):
        cheong_classify(e)
    flat = hand_made().assign(CDX1=1.0)
    with pytest.raises(InputError, match="CDX1 are constant"):
        cheong_classify(flat)
    with pytest.raises(InputError, match="unknown key"):
        cheong_classify(hand_made(), thresholds={"stem": 1.0})


def test_cli_cheong(capsys, tmp_path):
    from histoexpr.datasets.synthetic_clinical import synthetic_clinical

    rng = np.random.default_rng(4)
    e = pd.DataFrame(rng.lognormal(2, 1, (150, 4)), columns=GENES,
                     index=[f"P{i:03d}" for i in range(150)])
    syn = synthetic_clinical(e, survival_gene="SFRP4", er_gene="CDX1", ki67_gene="GZMB",
                             grade_gene="WARS", subtype_genes=("CDX1", "WARS"))
    np.log1p(e).to_csv(tmp_path / "expr.csv")
    syn.table.to_csv(tmp_path / "clin.csv")
    out = tmp_path / "out"
    rc = main(["analyze", "cheong", "--expression", str(tmp_path / "expr.csv"), "--clinical",
               str(tmp_path / "clin.csv"), "--time", "OS_MONTHS", "--event", "OS_STATUS",
               "--out", str(out)])
    stdout, err = capsys.readouterr()
    assert rc == 0, err
    assert "not the published qPCR cut-offs" in stdout
    groups = pd.read_csv(out / "cheong_groups.csv")
    assert len(groups) == 150 and set(groups["group"]) == {"immune", "epithelial", "stem-like"}
    sizes = pd.read_csv(out / "cheong_group_sizes.csv").set_index("group")
    assert abs(sizes.loc["immune", "n"] - 0.13 * 150) <= 1
    assert abs(sizes.loc["stem-like", "n"] - 0.40 * 150) <= 2
    for f in ("km.csv", "logrank.csv", "km.png", "cox_univariate.csv", "forest.png"):
        assert (out / f).is_file(), f
    rec = json.loads((out / "analysis.json").read_text())
    assert any("qPCR" in n for n in rec["notes"])
    # SFRP4 carries the planted hazard, so stem-like patients do worse than the others
    assert rec["summary"]["survival"]["logrank_p"]["cheong_group"] < 0.05
    rc = main(["analyze", "cheong", "--expression", str(tmp_path / "expr.csv"), "--clinical",
               str(tmp_path / "clin.csv"), "--out", str(out)])
    assert rc == 2 and "--time" in capsys.readouterr().err
    # no deaths in the immune group: the HR against it cannot be estimated, said in a note
    clin = syn.table.copy()
    clin.loc[groups.loc[groups["group"] == "immune", "sample"], "OS_STATUS"] = "0:LIVING"
    clin.to_csv(tmp_path / "clin0.csv")
    rc = main(["-q", "analyze", "cheong", "--expression", str(tmp_path / "expr.csv"),
               "--clinical", str(tmp_path / "clin0.csv"), "--time", "OS_MONTHS", "--event",
               "OS_STATUS", "--out", str(tmp_path / "out0")])
    assert rc == 0, capsys.readouterr().err
    notes = json.loads((tmp_path / "out0" / "analysis.json").read_text())["notes"]
    assert any("no events in cheong_group=immune" in n for n in notes)
    assert (tmp_path / "out0" / "km.png").is_file()
