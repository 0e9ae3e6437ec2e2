"""Per-spot (adaptive) conformal intervals: calibration and coverage on simulated folds with
heteroscedastic noise, ``uncertainty.json`` of a run, and ``st predict`` writing per-spot
intervals, the uncertainty map and — given the section's counts — its scores and maps."""

from __future__ import annotations

import gzip
import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from histoexpr.cli import main
from histoexpr.config import STConfig
from histoexpr.datasets.synthetic_st import synthetic_st
from histoexpr.errors import InputError
from histoexpr.st import fit_run, predict_section
from histoexpr.st.uncertainty import (
    FEATURES,
    difficulty_features,
    interval_halfwidths,
    uncertainty_record,
)

FAST = {"encoder": "toy", "genes": "top40", "patch_px": 32, "k": 3}


# ----------------------------------------------------------------- simulated fold results


def _simulated(seed: int = 0, n_sections: int = 8, grid: int = 12, n_genes: int = 20):
    """Fold results like ``load_predictions`` returns: 3 cv folds of 2 sections and 2
    held-out sections; the noise of a spot grows with its predicted level (sd 0.1 to 0.7),
    so a spot's difficulty is visible in the predictions."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:grid, 0:grid]
    xy1 = np.c_[xx.ravel(), yy.ravel()].astype(float) * 100
    genes = np.array([f"G{j}" for j in range(n_genes)])
    pos, sections = {}, []
    for s in range(n_sections):
        u = rng.normal(size=len(xy1))
        pred = (rng.normal(2, 0.5, n_genes) + np.outer(u, rng.uniform(0.5, 1, n_genes))
                + rng.normal(0, 0.1, (len(xy1), n_genes)))
        sd = 0.1 + 0.6 / (1 + np.exp(-2 * u))
        ids = np.array([f"S{s}:{i}" for i in range(len(xy1))])
        pos.update({i: (p, f"S{s}") for i, p in zip(ids, xy1)})
        sections.append({"spots": ids, "y_pred": pred, "sd": sd,
                         "y_true": pred + rng.normal(size=pred.shape) * sd[:, None]})

    def merged(parts, role, fold):
        return {"kind": "model", "role": role, "fold": fold, "key": "ridge", "genes": genes,
                **{k: np.concatenate([p[k] for p in parts])
                   for k in ("spots", "y_true", "y_pred", "sd")}}

    results = [merged(sections[2 * k:2 * k + 2], "cv", str(k)) for k in range(3)]
    results.append(merged(sections[6:], "holdout", "pooled"))

    def xy_of(spots):
        return (np.array([pos[s][0] for s in spots]),
                np.array([pos[s][1] for s in spots]))

    return results, xy_of


def test_adaptive_intervals_cover_nominally_and_are_narrower_where_noise_is_lower():
    results, xy_of = _simulated()
    rec = uncertainty_record(results, xy_of=xy_of)
    json.dumps(rec)  # plain JSON: no numpy values, no pickles
    assert rec["interval"] == "adaptive" and len(rec["adaptive"]["difficulty"]["coef"]) == len(
        FEATURES)
    held = rec["held_out_comparison"]
    for kind in ("constant", "adaptive"):
        assert 0.86 <= held[kind]["coverage"] <= 0.95, (kind, held[kind]["coverage"])
        assert 0.86 <= rec["cv"][kind]["coverage"] <= 0.94, (kind, rec["cv"][kind])
        assert set(held[kind]["per_section"]) == {"S6", "S7"}
        assert set(rec["cv"][kind]["per_section"]) == {f"S{i}" for i in range(6)}
    # the same coverage from shorter intervals on average, and held where the noise is
    assert held["adaptive"]["mean_width"] < 0.95 * held["constant"]["mean_width"]
    assert held["adaptive"]["spearman_sigma_error"] > 0.6
    assert held["constant"]["coverage_by_sigma_third"]["hardest"] < 0.85
    assert held["adaptive"]["coverage_by_sigma_third"]["hardest"] > 0.85

    # st predict's half-widths for the held-out spots follow the true noise
    test = results[-1]
    xy, sec = xy_of(test["spots"])
    half, method = interval_halfwidths(rec, test["y_pred"], list(test["genes"]), xy, sec)
    assert method == "adaptive" and half.shape == test["y_pred"].shape
    low, high = test["sd"] < np.quantile(test["sd"], 0.25), test["sd"] > np.quantile(
        test["sd"], 0.75)
    assert half[low].mean() < 0.6 * half[high].mean()
    assert np.ptp(half[:, 0]) > 0  # widths differ across spots


def test_without_spot_positions_or_adaptive_model_the_widths_are_one_per_gene():
    results, xy_of = _simulated(n_genes=4)
    rec = uncertainty_record(results)  # no positions: the constant intervals only
    assert rec["interval"] == "constant" and rec["adaptive"] is None
    assert 0.85 <= rec["held_out"]["coverage"] <= 0.95
    test = results[-1]
    xy, sec = xy_of(test["spots"])
    half, method = interval_halfwidths(rec, test["y_pred"][:, :3], ["G0", "G1", "NEW"], xy, sec)
    assert method == "constant"
    assert np.allclose(half[:, 0], rec["halfwidth"]["G0"]) and np.isnan(half[:, 2]).all()
    # an adaptive record whose quantiles lack a gene gives it its constant width
    full = uncertainty_record(results, xy_of=xy_of)
    del full["adaptive"]["quantile"]["G1"]
    half, method = interval_halfwidths(full, test["y_pred"][:, :2], ["G0", "G1"], xy, sec)
    assert method == "adaptive" and np.ptp(half[:, 0]) > 0
    assert np.allclose(half[:, 1], full["halfwidth"]["G1"])


def test_difficulty_features_see_disagreeing_neighbours_and_edges():
    yy, xx = np.mgrid[0:6, 0:6]
    xy = np.c_[xx.ravel(), yy.ravel()].astype(float)
    pred = np.tile(np.linspace(0, 1, 36)[:, None], (1, 3))
    pred[14] += 5.0  # one spot unlike its neighbours
    f = difficulty_features(pred, xy, np.zeros(36))
    dis, edge = f[:, FEATURES.index("disagreement")], f[:, FEATURES.index("edge")]
    assert dis.argmax() == 14
    corner, inner = 0, 21
    assert edge[corner] == 0.5 and edge[inner] == 0.0
    spread = f[:, FEATURES.index("neighbour_spread")]
    assert spread[[8, 13, 15, 20]].min() > spread[0]  # the odd spot's neighbours disagree


# ----------------------------------------------------------------- a run and st predict


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn_unc")
    s = synthetic_st(out, n_sections=4, n_patients=2, seed=0)
    (out / "sections.json").write_text(json.dumps(s.specs))
    return s, out / "sections.json"


@pytest.fixture(scope="module")
def run(syn, tmp_path_factory):
    _, specs = syn
    cfg = STConfig.resolve(data=[str(specs)], split="section", holdout=["S3"],
                           baselines=["mean"], **FAST)
    return fit_run(cfg, tmp_path_factory.mktemp("runs") / "unc", maps=False)


@pytest.fixture(scope="module")
def predicted(run, syn, tmp_path_factory):
    """S3 predicted without and with its counts."""
    s, _ = syn
    out = tmp_path_factory.mktemp("pred")
    spec = s.specs[3]
    plain = predict_section(run.path, spec["image"], spec["spots"], out=out / "plain")
    scored = predict_section(run.path, spec["image"], spec["spots"], out=out / "scored",
                             counts=spec["counts"])
    return out, plain, scored


def test_run_records_constant_and_adaptive_intervals_and_their_coverage(run):
    unc = json.loads((run.path / "uncertainty.json").read_text())
    assert unc["interval"] == "adaptive" and unc["predictor"] == "ridge"
    assert set(unc["halfwidth"]) >= {"SIG0", "SIG1"}  # what older runs had stays
    assert set(unc["adaptive"]["quantile"]) == set(unc["halfwidth"])
    held = unc["held_out_comparison"]
    for kind in ("constant", "adaptive"):
        assert 0.75 <= held[kind]["coverage"] <= 1.0
        assert held[kind]["mean_width"] > 0 and list(held[kind]["per_section"]) == ["S3"]
        assert set(unc["cv"][kind]["per_section"]) == {"S0", "S1", "S2"}
    assert unc["adaptive"]["held_out"] == held["adaptive"]
    assert -1 <= held["adaptive"]["spearman_sigma_error"] <= 1


def test_predict_writes_per_spot_intervals_and_the_uncertainty_map(predicted):
    out, pred, _ = predicted
    assert pred.uns["interval"]["method"] == "adaptive"
    lo, hi = pred.layers["lower"], pred.layers["upper"]
    assert (lo <= pred.X).all() and (pred.X <= hi).all()
    assert (np.ptp(hi - lo, axis=0) > 0).all()  # the widths differ across spots, every gene
    assert (out / "plain" / "S3_uncertainty.png").is_file()
    assert (out / "plain" / "S3_map.png").is_file()
    assert not (out / "plain" / "S3_metrics.csv").exists()
    saved = ad.read_h5ad(out / "plain" / "S3_predictions.h5ad")
    assert np.allclose(saved.layers["upper"], hi)


def test_predict_with_counts_scores_the_section_and_maps_truth_and_error(predicted, syn):
    out, _, pred = predicted
    s, _ = syn
    metrics = pd.read_csv(out / "scored" / "S3_metrics.csv", index_col=0)
    assert {"pearson_r", "spearman_r", "coverage", "mean_width"} <= set(metrics.columns)
    assert (metrics.loc[["SIG0", "SIG1", "SIG2"], "pearson_r"] > 0.8).all()
    summary = json.loads((out / "scored" / "S3_metrics.json").read_text())
    assert summary["n_scored_spots"] == 63  # the low-count spot is left out, as in the run
    assert summary["excluded_spots"]["total counts < 1000"] == 1
    assert summary["missing_genes"] == [] and summary["interval"] == "adaptive"
    assert 0.75 <= summary["coverage"] <= 1.0
    assert summary["pearson_mean"] == pytest.approx(metrics["pearson_r"].mean())
    # the measured values are normalised as the run's targets: per 10,000 counts of every
    # gene of the spot, log1p
    with gzip.open(s.specs[3]["counts"], "rt") as f:
        raw = pd.read_csv(f, sep="\t", index_col=0)
    expect = np.log1p(raw.div(raw.sum(axis=1), axis=0) * 1e4)
    spot = pred.obs_names[pred.obs["scored"].to_numpy(bool)][0]
    got = pred[spot, "SIG0"].layers["measured"].item()
    assert got == pytest.approx(expect.loc[spot.split(":", 1)[1], "SIG0"], rel=1e-5)
    # truth beside prediction, error beside width: one more column in each figure
    for name in ("S3_map.png", "S3_uncertainty.png"):
        with Image.open(out / "plain" / name) as a, Image.open(out / "scored" / name) as b:
            assert b.size[0] > 1.2 * a.size[0]


def _write_counts(path, table: pd.DataFrame) -> None:
    with gzip.open(path, "wt") as f:
        table.to_csv(f, sep="\t")


def test_cli_predict_with_counts_lacking_genes_names_them_and_scores_the_rest(
        run, syn, tmp_path, capsys):
    s, _ = syn
    spec = s.specs[3]
    with gzip.open(spec["counts"], "rt") as f:
        raw = pd.read_csv(f, sep="\t", index_col=0)
    _write_counts(tmp_path / "S3_partial.tsv.gz", raw.drop(columns=["SIG1", "SIG4"]))
    rc = main(["-q", "st", "predict", str(run.path), "--image", spec["image"], "--spots",
               spec["spots"], "--counts", str(tmp_path / "S3_partial.tsv.gz"), "--out",
               str(tmp_path / "out"), "--genes", "SIG0,SIG1"])
    assert rc == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert "adaptive intervals" in text and "2 genes not in the counts" in text
    summary = json.loads((tmp_path / "out" / "S3_metrics.json").read_text())
    assert sorted(summary["missing_genes"]) == ["SIG1", "SIG4"]
    metrics = pd.read_csv(tmp_path / "out" / "S3_metrics.csv", index_col=0)
    assert "SIG1" not in metrics.index and metrics.loc["SIG0", "pearson_r"] > 0.8
    assert summary["n_scored_genes"] == len(metrics) == summary["n_genes"] - 2


def test_counts_of_other_spots_give_one_clear_error(run, syn, tmp_path, capsys):
    s, _ = syn
    spec = s.specs[3]
    with gzip.open(spec["counts"], "rt") as f:
        raw = pd.read_csv(f, sep="\t", index_col=0)
    raw.index = [f"{i}_{j}" for i, j in enumerate(raw.index)]  # ids unlike the spot table's
    bad = tmp_path / "S3_bad.tsv.gz"
    _write_counts(bad, raw)
    with pytest.raises(InputError, match=r"S3_bad\.tsv\.gz.*same section"):
        predict_section(run.path, spec["image"], spec["spots"], counts=bad)
    rc = main(["-q", "st", "predict", str(run.path), "--image", spec["image"], "--spots",
               spec["spots"], "--counts", str(bad), "--out", str(tmp_path / "out")])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "S3_bad.tsv.gz" in err
    assert not (tmp_path / "out").exists()  # failed before predicting anything
    with pytest.raises(InputError, match="no such counts file"):
        predict_section(run.path, spec["image"], spec["spots"], counts=tmp_path / "none.tsv")
