"""Tissue microarrays: cores found and named by grid position on a synthetic TMA image, tiles
split per core, a bulk model predicted per core and per patient."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from histoexpr.cli import main
from histoexpr.errors import InputError
from histoexpr.features.store import save_features


def _tma(path, rows=3, cols=4, pitch=200, radius=70, missing=((1, 2),), seed=0):
    """A white slide with pink cores on a grid, slightly jittered; one core missing."""
    rng = np.random.default_rng(seed)
    h, w = rows * pitch + 100, cols * pitch + 100
    img = np.full((h, w, 3), 245, np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    centres = {}
    for r in range(rows):
        for c in range(cols):
            if (r, c) in missing:
                continue
            cy = 100 + r * pitch + rng.integers(-10, 10)
            cx = 100 + c * pitch + rng.integers(-10, 10) + 15 * r  # a slight tilt
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2
            img[disc] = rng.integers(120, 200, (int(disc.sum()), 3)) * [1.0, 0.6, 0.9]
            centres[f"{'ABC'[r]}-{c + 1}"] = (cx, cy)
    Image.fromarray(img).save(path)
    return centres


def test_dearray_names_cores_by_row_and_column(tmp_path):
    centres = _tma(tmp_path / "tma.png")
    out = tmp_path / "cores.csv"
    assert main(["-q", "tma", "dearray", str(tmp_path / "tma.png"), "--mpp", "4",
                 "--out", str(out)]) == 0
    cores = pd.read_csv(out).set_index("core")
    assert len(cores) == 11 and "B-3" not in cores.index   # the missing core
    for name, (x, y) in centres.items():
        assert abs(cores.loc[name, "x"] - x) < 8 and abs(cores.loc[name, "y"] - y) < 8
    assert cores["diameter"].between(120, 160).all()


def test_predict_per_core_and_patient(tmp_path):
    from histoexpr.bulk import fit_run
    from histoexpr.config import BulkConfig
    from histoexpr.datasets.synthetic_bulk import synthetic_bulk

    centres = _tma(tmp_path / "tma.png", missing=())
    syn = synthetic_bulk(tmp_path / "cohort", n_slides=30, n_genes=4, n_signal=2, dim=8)
    run = fit_run(BulkConfig.resolve(features=str(syn.features_dir),
                                     expression=str(syn.expression_path), genes="all",
                                     baselines=[], holdout_fraction=0, k=2), tmp_path / "run")
    # a 50 px tile grid over the TMA image, features carrying each core's row
    xs, ys = np.meshgrid(np.arange(0, 900, 50), np.arange(0, 700, 50))
    coords = np.c_[xs.ravel(), ys.ravel()]
    feats = np.random.default_rng(0).normal(size=(len(coords), 8)).astype(np.float32)
    save_features(tmp_path / "tma.h5", coords, feats, {
        "encoder": "synthetic", "tile_spec": {"size_px": 50, "mpp": 4.0}, "level0_mpp": 4.0})
    assert main(["-q", "tma", "dearray", str(tmp_path / "tma.png"), "--mpp", "4",
                 "--out", str(tmp_path / "cores.csv")]) == 0
    pd.DataFrame({"core": list(centres), "patient": [f"P{i // 2}" for i in range(
        len(centres))]}).to_csv(tmp_path / "map.csv", index=False)
    assert main(["-q", "tma", "predict", str(run.path), "--features", str(tmp_path / "tma.h5"),
                 "--cores", str(tmp_path / "cores.csv"), "--core-map",
                 str(tmp_path / "map.csv"), "--out", str(tmp_path / "pred")]) == 0
    per_core = pd.read_csv(tmp_path / "pred" / "tma_cores.csv")
    per_patient = pd.read_csv(tmp_path / "pred" / "tma_patients.csv", index_col=0)
    assert len(per_core) == 12 and (per_core["n_tiles"] >= 4).all()
    assert len(per_patient) == 6 and (per_patient["n_cores"] == 2).all()
    genes = [c for c in per_patient.columns if c != "n_cores"]
    p0 = per_core[per_core["patient"] == "P0"][genes].mean()
    assert np.allclose(per_patient.loc["P0", genes].to_numpy(float), p0.to_numpy(), atol=1e-5)
    assert np.isfinite(per_core[genes].to_numpy()).all()
    # features from another encoder are refused
    save_features(tmp_path / "other.h5", coords, feats, {
        "encoder": "resnet50", "tile_spec": {"size_px": 50, "mpp": 4.0}, "level0_mpp": 4.0})
    from histoexpr.bulk.tma import predict_tma

    with pytest.raises(InputError, match="encoder 'resnet50'"):
        predict_tma(run.path, tmp_path / "other.h5", tmp_path / "cores.csv")
