"""``histoexpr analyze variance`` end to end on a small GTEx-like cohort with planted truth."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from histoexpr.cli import main
from histoexpr.features.store import save_features

N, D, G, TILES, PX = 60, 6, 20, 4, 16


def run(capsys, *argv):
    rc = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line_error(rc, err, *needles):
    """Exit status 2 and one ``error:`` line, last (logged warnings may come before it)."""
    errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert rc == 2 and len(errors) == 1 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == errors[0]
    for n in needles:
        assert n in errors[0], errors[0]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Slides GTEX-xxxx-0126 (features folder with PNG 'slides', and a table), expression
    samples GTEX-xxxx-0126-SM-k, covariates. Biology: z drives f0 and G0-G3. Technical:
    log ischaemic time drives f1 and G4-G5."""
    from PIL import Image

    rng = np.random.default_rng(7)
    root = tmp_path_factory.mktemp("gtex")
    slides = [f"GTEX-{0x1000 + i:04X}-0126" for i in range(N)]
    samples = [f"{s}-SM-{i}" for i, s in enumerate(slides)]
    isch = rng.uniform(30, 1400, N)
    c = (np.log(isch) - np.log(isch).mean()) / np.log(isch).std()
    z = rng.normal(size=N)
    F = rng.normal(size=(N, D))
    F[:, 0] += 2 * z
    F[:, 1] += 2 * c
    E = rng.normal(size=(N, G)) + 5
    E[:, :4] += 2 * z[:, None]
    E[:, 4:6] += 2 * c[:, None]
    fdir, sdir = root / "features", root / "slides"
    sdir.mkdir()
    for i, s in enumerate(slides):
        tiles = F[i] + rng.normal(0, 0.05, (TILES, D))
        img = np.full((PX, PX * TILES, 3), int(np.clip(128 + 40 * F[i, 0], 0, 255)), np.uint8)
        Image.fromarray(img).save(sdir / f"{s}.png")
        save_features(fdir / f"{s}.h5", np.c_[np.arange(TILES) * PX, np.zeros(TILES, int)],
                      tiles, {"encoder": "toy", "slide_path": str(sdir / f"{s}.png"),
                              "tile_spec": {"size_px": PX, "mpp": 1.0}, "level0_mpp": 1.0})
    pd.DataFrame(F, index=pd.Index(slides, name="slide")).add_prefix("f").to_csv(
        root / "tuned.csv")
    pd.DataFrame(E, index=pd.Index(samples, name="sample"),
                 columns=[f"G{k}" for k in range(G)]).to_csv(root / "expr.csv")
    cov = pd.DataFrame({"SAMPID": samples, "SMTISCH": isch, "SEX": rng.choice(["F", "M"], N),
                        "AGE": rng.uniform(20, 70, N).round()})
    cov.loc[3, "AGE"] = np.nan
    cov.to_csv(root / "cov.csv", index=False)
    return root


def test_end_to_end_two_feature_sets(cohort, tmp_path, capsys):
    out = tmp_path / "out"
    rc, stdout, err = run(capsys, "analyze", "variance", "--features",
                          f"raw={cohort / 'features'}", "--features",
                          f"tuned={cohort / 'tuned.csv'}", "--expression", cohort / "expr.csv",
                          "--covariates", cohort / "cov.csv", "--permutations", 30,
                          "--variance-cutoff", 0.95, "--out", out)
    assert rc == 0, err
    for f in ("shared_variance.csv", "components.csv", "association.csv",
              "association_features.csv", "confounders_r2.csv", "confounders_summary.csv",
              "shared_variance.png", "association_heatmap_raw.png",
              "association_heatmap_tuned.png", "analysis.json"):
        assert (out / f).is_file(), f
        assert f in stdout or f == "analysis.json"
    sv = pd.read_csv(out / "shared_variance.csv").set_index(["features", "data"])
    assert list(sv.index) == [("raw", "raw"), ("raw", "residual"), ("tuned", "raw"),
                              ("tuned", "residual")]
    assert (sv["n_samples"] == N - 1).all()  # one sample lacks AGE: dropped on both sides
    for name in ("raw", "tuned"):
        raw, res = sv.loc[(name, "raw")], sv.loc[(name, "residual")]
        assert raw["shared_variance"] > res["shared_variance"] > res["expected_null"]
        assert raw["p_value"] < 0.05
    assert sv.loc[("raw", "raw"), "shared_variance"] == pytest.approx(
        sv.loc[("tuned", "raw"), "shared_variance"], abs=0.02)  # same features, tiny noise
    assoc = pd.read_csv(out / "association.csv")
    assert (assoc["data"] == "residual").all() and (assoc["q"] < 0.05).all()
    raw_pairs = assoc[assoc["features"] == "raw"]
    assert set(zip(raw_pairs["feature"], raw_pairs["gene"])) >= {("f0", f"G{k}")
                                                                 for k in range(4)}
    assert not ((raw_pairs["feature"] == "f1") & raw_pairs["gene"].isin(["G4", "G5"])).any()
    conf = pd.read_csv(out / "confounders_summary.csv")
    feats = conf[(conf["features"] == "raw") & (conf["source"] == "features")]
    by = feats.set_index("covariate")["mean_r2"]
    assert by["SMTISCH"] > max(by["SEX"], by["AGE"])
    r2 = pd.read_csv(out / "confounders_r2.csv").set_index(
        ["features", "source", "column", "covariate"])["r2"]
    assert r2[("raw", "features", "f1", "SMTISCH")] > 0.6
    rec = json.loads((out / "analysis.json").read_text())
    assert rec["params"]["logged_covariates"] == ["SMTISCH"]
    assert rec["summary"]["samples"]["raw"]["dropped_by_covariates"] == 1
    assert any("lack covariates" in n for n in rec["notes"])


def test_gmt_and_montage(cohort, tmp_path, capsys):
    pytest.importorskip("histoexpr.analysis.enrichment")
    pytest.importorskip("histoexpr.analysis.montage")
    gmt = tmp_path / "sets.gmt"
    gmt.write_text("planted\tna\tG0\tG1\tG2\tG3\tG9\nother\tna\tG10\tG11\tG12\tG13\tG14\n")
    out = tmp_path / "out"
    rc, _, err = run(capsys, "analyze", "variance", "--features", cohort / "features",
                     "--expression", cohort / "expr.csv", "--permutations", 0, "--gmt", gmt,
                     "--top-associated", 2, "--montage", 1, "--slides", cohort / "slides",
                     "--out", out)
    assert rc == 0, err
    enr = pd.read_csv(out / "enrichment.csv")
    f0 = enr[enr["query"] == "f0"].iloc[0]
    assert f0["gene_set"] == "planted" and f0["overlap"] == 4 and f0["p"] < 0.01
    assert "union" in set(enr["query"])
    assert (out / "montage_f0.png").is_file()
    assert (out / "association_heatmap.png").is_file()
    sv = pd.read_csv(out / "shared_variance.csv")
    assert list(sv["data"]) == ["raw"] and sv["features"].iloc[0] == "features"


def test_errors_are_one_line(cohort, tmp_path, capsys):
    base = ["analyze", "variance", "-q", "--expression", cohort / "expr.csv",
            "--out", tmp_path / "o"]
    other = tmp_path / "other.csv"
    pd.DataFrame({"sample": ["x1", "x2", "x3"], "a": [1.0, 2, 3]}).to_csv(other, index=False)
    _one_line_error(*run(capsys, *base, "--features", other)[::2], "no ids in common")
    _one_line_error(*run(capsys, *base, "--features", f"a={other}", "--features",
                         f"a={other}")[::2], "given twice")
    bad = tmp_path / "cov.csv"
    cov = pd.read_csv(cohort / "cov.csv")
    cov.loc[0, "SMTISCH"] = 0
    cov.to_csv(bad, index=False)
    _one_line_error(*run(capsys, *base, "--features", cohort / "tuned.csv", "--covariates",
                         bad)[::2], "SMTISCH", "--log-offset")
    _one_line_error(*run(capsys, *base, "--features", cohort / "tuned.csv",
                         "--variance-cutoff", 2)[::2], "cut-off")
    _one_line_error(*run(capsys, *base, "--features", cohort / "tuned.csv", "--covariates",
                         cohort / "cov.csv", "--covariate-columns", "SMTISCH,RIN")[::2],
                    "RIN")
