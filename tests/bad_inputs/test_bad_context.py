"""Bad inputs and limits of the spot grid (issue 20): the options that average over grid
neighbours (`--context`, `--smooth`, `--smooth-targets`) on spots or tiles that are not on a
grid, a context radius under one grid step or over a whole section, more folds than groups,
sections too small to score, and tiles smaller than an encoder's fixed input. Refusals end in
one line with exit status 2 and leave nothing behind; limits a run can live with are one
warning line each and the run goes on. Below them, the grid geometry itself: legacy ST's
jittered square grid and Visium's hexagonal one."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
from matrix import assert_clear_error, files_under

from histoexpr.datasets.synthetic_st import synthetic_st
from histoexpr.errors import InputError
from histoexpr.features import context
from histoexpr.features.context import neighbour_mean, spot_grid

ST_FAST = ["--encoder", "toy", "--patch-px", "32", "--genes", "top6", "--baselines", "mean",
           "--no-maps", "-q", "--context", "0", "--scales", "none"]


@pytest.fixture(autouse=True)
def _wide_log_lines(monkeypatch):
    """Rich wraps log records at the console width; one record per line makes them countable."""
    monkeypatch.setenv("COLUMNS", "1000")


@pytest.fixture(scope="module")
def st_data(tmp_path_factory):
    """4 synthetic sections (5 x 5 spots, 200 µm apart) of 2 patients: ``good.json``, and
    ``scattered.json`` in which section S1's spots lie anywhere on its image."""
    out = tmp_path_factory.mktemp("ctx")
    s = synthetic_st(out, n_sections=4, n_patients=2, grid=(5, 5), n_genes=10, n_signal=3,
                     seed=0)
    (out / "good.json").write_text(json.dumps(s.specs))
    spots = pd.read_csv(s.specs[1]["spots"], sep="\t")
    rng = np.random.default_rng(0)
    spots["pixel_x"] = rng.uniform(100, 500, len(spots)).round(1)
    spots["pixel_y"] = rng.uniform(100, 500, len(spots)).round(1)
    scattered = out / "S1_scattered.tsv"
    spots.to_csv(scattered, sep="\t", index=False)
    specs = [dict(sp) for sp in s.specs]
    specs[1]["spots"] = str(scattered)
    (out / "scattered.json").write_text(json.dumps(specs))
    return out


def st_fit(cli, data, out, *extra):
    return cli("st", "fit", "--data", data, *ST_FAST, *extra, "--out", out)


def _warnings(res) -> list[str]:
    return [ln for ln in res.err_lines if "WARNING" in ln]


# -- options that need a spot grid ----------------------------------------------------------


@pytest.mark.parametrize("opts, named, them", [
    (["--context", "1"], "--context 1: ", "leave it out"),
    (["--smooth"], "--smooth: ", "leave it out"),
    (["--smooth-targets", "0.5"], "--smooth-targets 0.5: ", "leave it out"),
    (["--context", "3", "--smooth"], "--context 3 and --smooth: ", "leave them out"),
    # st fit's default context (2), given or not, says how to turn it off
    (["--context", "2"], "--context 2 (st fit's default; --context 0 turns it off): ",
     "leave it out"),
])
def test_grid_options_on_scattered_spots_name_the_option_and_the_section(
        cli, st_data, tmp_path, opts, named, them):
    out = tmp_path / "run"
    res = st_fit(cli, st_data / "scattered.json", out, "--folds", "2", *opts)
    line = assert_clear_error(res, named, "section S1", "S1_scattered.tsv", "has no spot grid",
                              "have a neighbour one grid step", "check the section's spot "
                              "positions", them)
    assert line.startswith(f"error: {named}")
    assert files_under(out) == set()


def test_context_under_one_grid_step_is_refused(cli, st_data, tmp_path):
    out = tmp_path / "run"
    res = st_fit(cli, st_data / "good.json", out, "--folds", "2", "--context", "0.5")
    assert_clear_error(res, "--context 0.5 is under one grid step", "S0, S1, S2 and 1 more",
                       "repeat each spot's own features", "give 1 or more grid steps")
    assert files_under(out) == set()


def test_limits_a_run_can_live_with_are_one_warning_each(cli, st_data, tmp_path):
    """--context wider than every section, --folds above the number of patients and patches
    smaller than the encoder's input: each is said once, and the run finishes."""
    from histoexpr.features.encoders.build import _note_resize

    _note_resize.cache_clear()  # said once per process: this test must see it
    out = tmp_path / "run"
    res = st_fit(cli, st_data / "good.json", out, "--context", "50", "--folds", "5",
                 "--patch-px", "16")
    assert res.rc == 0, res.err
    warns = _warnings(res)
    assert len(warns) == 3, res.err
    reach, folds, resize = (next(w for w in warns if k in w) for k in
                            ("--context 50", "--folds 5", "upsampled"))
    for needle in ("reaches across the whole of 4 of 4 sections (S0, S1, S2 and 1 more)",
                   "spans 5.7 grid steps (1131 µm)", "the radius is 50 steps (10000 µm there)",
                   "its section's mean", "a radius of 2 grid steps or less keeps it local"):
        assert needle in reach, reach
    assert "--folds 5, but 2 patients in the data: 2 folds, leave-one-patient-out" in folds
    for needle in ("toy takes 32 px input: tiles of 16 px are upsampled", "--patch-px 32",
                   "histoexpr info --encoders"):
        assert needle in resize, resize
    data = json.loads((out / "data.json").read_text())
    assert {round(v["grid_step_um"]) for v in data["sections"].values()} == {200}
    assert len(json.loads((out / "splits.json").read_text())["fold_test_groups"]) == 2


def test_sections_too_small_to_score_are_refused_before_the_run(cli, tmp_path):
    """One spot per section: no fold could be scored (it took the whole fit to find out,
    then `No objects to concatenate`)."""
    s = synthetic_st(tmp_path / "tiny", n_sections=3, n_patients=3, grid=(2, 1), n_genes=10,
                     n_signal=3, seed=0)
    (tmp_path / "tiny.json").write_text(json.dumps(s.specs))
    out = tmp_path / "run"
    res = st_fit(cli, tmp_path / "tiny.json", out, "--folds", "5", "--split", "section")
    assert_clear_error(res, "--folds 5: no fold would hold the 3 test spots a fold is scored "
                       "on", "spots per section: S0 1, S1 1, S2 1", "add sections with more "
                       "spots")
    assert files_under(out) == set()


# -- predict-slide with a run fitted with --context -----------------------------------------


@pytest.fixture(scope="module")
def context_run(st_data, tmp_path_factory):
    from histoexpr.config import STConfig
    from histoexpr.st import fit_run

    cfg = STConfig.resolve(data=[str(st_data / "good.json")], split="section", context=1,
                           scales=(), encoder="toy", genes="top6", patch_px=64, patch_um=32.0, k=2,
                           baselines=(), model="ridge")
    return fit_run(cfg, tmp_path_factory.mktemp("ctx_run") / "run", maps=False)


def test_predict_slide_refuses_context_over_scattered_tiles(cli, context_run, synthetic_tiff,
                                                            tmp_path):
    """12 random tiles of the grid (`tile --n-tiles 12`): no grid to take a context from."""
    assert cli("-q", "tile", synthetic_tiff, "--out", tmp_path / "t", "--tile-size", "64",
               "--mpp", "0.5", "--n-tiles", "12").rc == 0
    assert cli("-q", "embed", synthetic_tiff, "--coords", tmp_path / "t" / "64px_0.5mpp",
               "--encoder", "toy", "--out", tmp_path / "e").rc == 0
    h5 = tmp_path / "e" / "synthetic.h5"
    out = tmp_path / "pred"
    res = cli("-q", "predict-slide", synthetic_tiff, "--model", context_run.path,
              "--features", h5, "--out", out)
    assert_clear_error(res, str(h5), "was fitted with --context 1", "these tiles are not on "
                       "a grid", "of 12 tiles have a neighbour one grid step (64 px) away",
                       "drop --features to tile the whole slide", "a run fitted without "
                       "--context")
    assert files_under(out) == set()


def test_predict_slide_says_when_its_tile_grid_is_not_the_spot_grid(cli, context_run,
                                                                    synthetic_tiff, tmp_path):
    """The run's spots were 200 µm apart; tiles 64 µm apart take their context from a third
    of that distance: said, with the --stride that matches."""
    out = tmp_path / "pred"
    res = cli("-q", "predict-slide", synthetic_tiff, "--model", context_run.path, "--out", out,
              "--stride", "128", "--n-maps", "1")
    assert res.rc == 0, res.err
    (warn,) = _warnings(res)
    for needle in ("the run's --context 1 spanned 200 µm (its spots were 200 µm apart), "
                   "here 64 µm (tiles 64 µm apart)", "--stride 400 places the tiles one spot "
                   "step apart"):
        assert needle in warn, warn
    assert json.loads((out / "predict_slide.json").read_text())["warnings"] == [
        warn.split("WARNING", 1)[1].strip()]


# -- the folds ------------------------------------------------------------------------------


def test_fewer_groups_than_folds_is_said_and_too_small_folds_refused(caplog):
    from histoexpr.cohort import grouped_splits

    with caplog.at_level(logging.WARNING, logger="histoexpr.cohort"):
        s = grouped_splits(["a", "a", "b", "c"], ["1", "2", "3", "4"], k=5, holdout=["c"])
    assert len(s.folds) == 2
    assert "--folds 5, but 2 patients left after the hold-out: 2 folds" in caplog.text
    with pytest.raises(InputError, match=r"no fold would hold the 3 test spots .*"
                       r"spots per section: x 2, y 1\); add sections with more spots"):
        grouped_splits(["p", "p", "p"], ["x", "x", "y"], by="section", k=2, min_test=3,
                       row_name="spot")
    # some folds too small is the scorer's to skip; the split itself goes on
    assert len(grouped_splits(["p"] * 4, list("xxxy"), by="section", k=2, min_test=3).folds) == 2


# -- the grid geometry ----------------------------------------------------------------------


def _square(n: int = 15, pitch: float = 100.0) -> np.ndarray:
    return np.array([[i, j] for i in range(n) for j in range(n)], float) * pitch


def _hex(n: int = 15, pitch: float = 100.0) -> np.ndarray:
    return np.array([[i + 0.5 * (j % 2), j * np.sqrt(3) / 2] for i in range(n)
                     for j in range(n)]) * pitch


def _neighbour_counts(xy: np.ndarray, radius: float) -> np.ndarray:
    from scipy.spatial import cKDTree

    g = spot_grid(xy)
    return np.array([len(v) - 1 for v in cKDTree(xy).query_ball_point(xy, g.reach(radius))])


def _brute_mean(f: np.ndarray, xy: np.ndarray, reach: float) -> np.ndarray:
    d = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    near = (d <= reach) & ~np.eye(len(xy), dtype=bool)
    out = f.copy()
    has = near.any(axis=1)
    out[has] = (near[has] @ f) / near[has].sum(axis=1, keepdims=True)
    return out


@pytest.mark.parametrize("kind, ring1, ring15, ring2", [
    ("square", 4, 8, 12),  # legacy ST: 4 sides, + 4 diagonals at 1.41, + 4 at 2
    ("hex", 6, 6, 18),     # Visium: 6 around, the next ring at 1.73 and 2
])
def test_exact_grids_give_their_rings(kind, ring1, ring15, ring2):
    xy = _square() if kind == "square" else _hex()
    g = spot_grid(xy)
    assert g.regular and g.on_grid == 1.0
    assert g.step == pytest.approx(100.0) and g.slack == pytest.approx(context.SLACK[0])
    inner = np.linalg.norm(xy - xy.mean(0), axis=1) < 300  # away from the edges
    for radius, want in ((1, ring1), (1.5, ring15), (2, ring2)):
        assert set(_neighbour_counts(xy, radius)[inner]) == {want}


def test_a_jittered_legacy_st_grid_keeps_its_four_neighbours():
    """her2st's spots sit up to ±15 % of a step off their grid (hand alignment): the shortest
    neighbour distance underestimates the pitch and a 5 % slack lost most neighbours (the
    median spot had 1 of its 4 at --context 1, a fifth had none)."""
    rng = np.random.default_rng(0)
    xy = _square(pitch=290.0) + rng.normal(0, 20, (225, 2))
    g = spot_grid(xy)
    assert g.step == pytest.approx(290, rel=0.03) and g.regular
    assert 0.1 < g.slack <= context.SLACK[1]
    inner = np.linalg.norm(xy - xy.mean(0), axis=1) < 3 * 290
    one = _neighbour_counts(xy, 1)[inner]
    assert np.median(one) == 4 and one.min() >= 2
    assert np.median(_neighbour_counts(xy, 1.5)[inner]) == 8


@pytest.mark.data
def test_her2st_sections_have_their_neighbours_at_one_step(shared_data):
    from histoexpr.expression.discover import read_cohort

    a = read_cohort([shared_data / "her2st"])
    for s in a.obs["slide_id"].unique():
        xy = a.obs.loc[a.obs["slide_id"] == s, ["x", "y"]].to_numpy(float)
        g = spot_grid(xy)
        assert g.regular and g.step * a.uns["sections"][s]["mpp"] == pytest.approx(200, rel=0.05)
        counts = _neighbour_counts(xy, 1)
        assert np.median(counts) == 4 and counts.min() >= 1, s


@pytest.mark.parametrize("radius", [1, 2.5, 40])
def test_neighbour_mean_is_the_mean_of_the_spots_within_reach(radius, monkeypatch):
    """The chunked sparse sum (small chunks here) and the whole-section shortcut (radius 40)
    agree with the plain definition."""
    rng = np.random.default_rng(1)
    xy = _hex(12) + rng.normal(0, 3, (144, 2))
    f = rng.normal(size=(144, 5)).astype(np.float32)
    monkeypatch.setattr(context, "PAIRS_PER_CHUNK", 50)
    got = neighbour_mean(f, xy, np.zeros(144), radius=radius)
    want = _brute_mean(f.astype(float), xy, spot_grid(xy).reach(radius))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_positions_without_a_grid_are_refused():
    rng = np.random.default_rng(2)
    scattered = rng.uniform(0, 1000, (60, 2))
    assert not spot_grid(scattered).regular
    secs = np.r_[np.zeros(60), np.ones(225)].astype(int)
    xy = np.r_[scattered, _square()]
    with pytest.raises(InputError, match=r"output smoothing \(--smooth\) needs spots on a grid, "
                       r"and section 0 has none \(only \d+ of 60 spots have a neighbour"):
        neighbour_mean(np.ones((285, 2)), xy, secs, radius=1,
                       what="output smoothing (--smooth)")
    xy[3] = np.nan
    with pytest.raises(InputError, match="section 0: 1 of 60 spots have no position"):
        neighbour_mean(np.ones((285, 2)), xy, secs, radius=1)
    with pytest.raises(InputError, match="share their position"):
        spot_grid(np.zeros((5, 2)))
