"""``histoexpr predict-slide`` on a small synthetic slide with a tiny spatial run (toy
encoder, ridge): the AnnData, heatmaps and GeoJSON agree; bad inputs fail clearly."""

from __future__ import annotations

import json
import logging
import os

import anndata as ad
import numpy as np
import pytest

from histoexpr.cli import main
from histoexpr.config import STConfig
from histoexpr.datasets.synthetic_st import synthetic_st
from histoexpr.errors import InputError
from histoexpr.st import fit_run
from histoexpr.st.predict_slide import predict_slide

# 64 px over 32 µm: the model works at 0.5 µm/px, as the synthetic TIFF
# the plain probe (no context, one patch size): what these tests check is the slide path
FAST = {"encoder": "toy", "genes": "top10", "patch_px": 64, "patch_um": 32.0, "k": 2,
        "context": 0, "scales": (),
        "baselines": (), "model": "ridge"}


def _genes(run) -> list[str]:
    return json.loads((run.final / "model.json").read_text())["genes"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ps_syn")
    s = synthetic_st(out, n_sections=2, n_patients=2, grid=(5, 5), n_genes=12, n_signal=4,
                     seed=1)
    (out / "sections.json").write_text(json.dumps(s.specs))
    cfg = STConfig.resolve(data=[str(out / "sections.json")], split="section", **FAST)
    return fit_run(cfg, tmp_path_factory.mktemp("ps_runs") / "ridge", maps=False)


@pytest.fixture(scope="module")
def result(run, synthetic_tiff, tmp_path_factory):
    return predict_slide(synthetic_tiff, run.path, out=tmp_path_factory.mktemp("ps_out"),
                         n_maps=2, quiet=True)


def test_h5ad_png_geojson_agree(result, synthetic_tiff):
    a = ad.read_h5ad(result.h5ad)
    assert a.n_obs == result.n_tiles > 10 and a.n_vars == 10
    w, h = a.uns["slide"]["dimensions"]
    size0 = a.uns["tile_spec"]["size_level0"]
    xy = a.obs[["x", "y"]].to_numpy()
    assert (xy >= 0).all() and (xy[:, 0] + size0 <= w).all() and (xy[:, 1] + size0 <= h).all()
    assert np.isfinite(a.X).all()
    geo = json.loads(result.geojson.read_text())
    assert geo["type"] == "FeatureCollection" and len(geo["features"]) == a.n_obs
    for f, (x, y), row in zip(geo["features"], xy, a.X):
        ring = f["geometry"]["coordinates"][0]
        assert ring[0] == [x, y] and ring[2] == [x + size0, y + size0]
        assert f["properties"]["objectType"] == "tile"
        m = f["properties"]["measurements"]
        assert list(m) == list(a.var_names)  # every predicted gene, for QuPath's maps
        np.testing.assert_allclose([m[g] for g in a.var_names], row, atol=5e-5)
    assert len(result.maps) == 2 and all(p.stat().st_size > 1000 for p in result.maps)
    assert result.maps[0].read_bytes()[:4] == b"\x89PNG"
    rec = json.loads(result.record.read_text())
    assert rec["files"]["overlays"] == [f"maps/{g}.ome.tif" for g in result.genes]
    assert set(rec["stages"]) == {"tissue", "tiles", "embed", "predict", "write"}
    assert rec["n_tiles"] == a.n_obs and rec["warnings"] == [] and rec["model_mpp"] == 0.5


def test_predictions_follow_the_tile_image(result, run, synthetic_tiff):
    """The same tiles through the spot-level path give the same numbers."""
    import joblib

    from histoexpr.features import build_encoder
    from histoexpr.features.extract import embed
    from histoexpr.slide import open_slide

    a = result.adata
    with open_slide(synthetic_tiff) as s:
        x = embed(s, a.obs[["x", "y"]].to_numpy()[:20], build_encoder("toy"), size_px=64,
                  mpp=0.5, device="cpu")
    pred = joblib.load(run.final / "model.joblib").predict(x)
    np.testing.assert_allclose(pred, a.X[:20], rtol=1e-4, atol=1e-5)


def test_mpp_mismatch_warns_and_resamples(run, synthetic, tmp_path, caplog):
    from histoexpr.datasets.synthetic import write_pyramidal_tiff

    coarse = write_pyramidal_tiff(tmp_path / "coarse.tif", synthetic.rgb[::2, ::2], mpp=1.0,
                                  compression="zlib")
    with caplog.at_level(logging.WARNING, logger="histoexpr"):
        res = predict_slide(coarse, run.path, out=tmp_path / "o", genes=_genes(run)[:1],
                            quiet=True, min_tissue=0.3)
    assert "fitted at 0.5" in caplog.text and res.warnings
    assert res.adata.uns["tile_spec"]["size_level0"] == 32  # 64 px at 0.5 on a 1.0 slide
    assert json.loads(res.record.read_text())["warnings"] == res.warnings


def test_bad_runs_are_clear_errors(run, synthetic_tiff, tmp_path):
    bulk = tmp_path / "bulk"
    bulk.mkdir()
    (bulk / "config.json").write_text("{}")
    (bulk / "entries.json").write_text("[]")
    with pytest.raises(InputError, match=r"bulk run.*spot-level"):
        predict_slide(synthetic_tiff, bulk, out=tmp_path / "o")
    final = run.final / "model.joblib"
    os.replace(final, tmp_path / "m.joblib")
    try:
        with pytest.raises(InputError, match="no final spot-level model"):
            predict_slide(synthetic_tiff, run.path, out=tmp_path / "o")
    finally:
        os.replace(tmp_path / "m.joblib", final)
    with pytest.raises(InputError, match="not predicted"):
        predict_slide(synthetic_tiff, run.path, out=tmp_path / "o", genes=["NOPE"])


def test_overlay_tiff_holds_each_tile_value_at_the_slide_scale(result):
    """The OME-TIFF overlay: pixel size in the metadata, covers the slide, each tile's
    centre pixel holds its prediction, NaN off the tiles, a pyramid of halved levels."""
    tifffile = pytest.importorskip("tifffile")
    a = ad.read_h5ad(result.h5ad)
    w, h = a.uns["slide"]["dimensions"]
    mpp0, size0 = a.uns["tile_spec"]["slide_mpp"], a.uns["tile_spec"]["size_level0"]
    with tifffile.TiffFile(result.overlays[0]) as tf:
        assert tf.is_ome and "PhysicalSizeX=\"8.0\"" in tf.ome_metadata
        page = tf.series[0].levels[0]
        im = page.asarray()
        assert len(tf.series[0].levels) >= 1 and im.dtype == np.float32
    px0 = 8.0 / mpp0
    assert im.shape == (int(np.ceil(h / px0)), int(np.ceil(w / px0)))
    j = list(a.var_names).index(result.genes[0])
    centre = (a.obs[["x", "y"]].to_numpy() + size0 / 2) / px0
    got = im[centre[:, 1].astype(int), centre[:, 0].astype(int)]
    np.testing.assert_allclose(got, a.X[:, j], rtol=1e-6)
    assert np.isnan(im).any() and np.isfinite(im).sum() >= a.n_obs


def test_cli_end_to_end(run, synthetic_tiff, tmp_path, capsys):
    g = _genes(run)[:2]
    rc = main(["-q", "predict-slide", str(synthetic_tiff), "--model", str(run.path), "--out",
               str(tmp_path), "--genes", ",".join(g), "--stride", "128"])
    assert rc == 0
    assert "tiles x 10 genes" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == sorted(
        f"{x}.{ext}" for x in g for ext in ("png", "ome.tif"))
    assert (tmp_path / "synthetic.geojson").is_file() and (tmp_path / "synthetic.h5ad").is_file()
    rc = main(["-q", "predict-slide", str(synthetic_tiff), "--model", str(tmp_path), "--out",
               str(tmp_path / "x")])
    assert rc == 2


def test_an_embed_file_replaces_tiling_and_embedding(run, synthetic_tiff, result, tmp_path):
    assert main(["-q", "tile", str(synthetic_tiff), "--out", str(tmp_path / "t"),
                 "--tile-size", "64", "--mpp", "0.5"]) == 0
    coords = tmp_path / "t" / "64px_0.5mpp"
    assert main(["-q", "embed", str(synthetic_tiff), "--coords", str(coords), "--encoder",
                 "toy", "--out", str(tmp_path / "e")]) == 0
    h5 = tmp_path / "e" / "synthetic.h5"
    res = predict_slide(synthetic_tiff, run.path, out=tmp_path / "o", features=h5,
                        genes=result.genes, quiet=True)
    assert set(res.stages) == {"features", "predict", "write"}
    # the same tiles predicted from the embed file and from predict-slide's own embedding
    mine = result.adata.to_df().set_index(result.adata.obs_names)
    theirs = res.adata.to_df().set_index(res.adata.obs_names)
    shared = mine.index.intersection(theirs.index)
    assert len(shared) > 10
    np.testing.assert_allclose(theirs.loc[shared], mine.loc[shared], rtol=1e-4, atol=1e-4)
    assert json.loads(res.record.read_text())["features_file"] == str(h5.resolve())
    # features of other tiles are refused
    other = tmp_path / "t2"
    main(["-q", "tile", str(synthetic_tiff), "--out", str(other), "--tile-size", "32",
          "--mpp", "1.0"])
    main(["-q", "embed", str(synthetic_tiff), "--coords", str(other / "32px_1mpp"),
          "--encoder", "toy", "--out", str(tmp_path / "e2")])
    with pytest.raises(InputError, match=r"tiles of 32 px at 1\.0 µm/px"):
        predict_slide(synthetic_tiff, run.path, out=tmp_path / "o2",
                      features=tmp_path / "e2" / "synthetic.h5", quiet=True)


def test_a_cohort_from_a_manifest_runs_one_dask_task_per_slide(run, result, synthetic_tiff,
                                                               tmp_path, capsys):
    """predict-slide --manifest: each slide in OUT/<slide>/ with the same predictions as a
    run on its own, a missing slide fails alone, run.json names the workers, a rerun
    skips the slides done."""
    import shutil

    pytest.importorskip("distributed")
    twin = tmp_path / "twin.tif"
    shutil.copy(synthetic_tiff, twin)
    man = tmp_path / "slides.csv"
    man.write_text(f"slide\n{synthetic_tiff}\n{twin}\n{tmp_path / 'gone.tif'}\n")
    args = ["-q", "predict-slide", "--manifest", str(man), "--model", str(run.path), "--out",
            str(tmp_path / "out"), "--workers", "2", "--n-maps", "1"]
    assert main(args) == 2  # one of three failed
    assert "done 2 · skipped 0 · failed 1" in capsys.readouterr().out
    rec = json.loads((tmp_path / "out" / "run.json").read_text())
    assert [s["status"] for s in rec["items"]] == ["done", "done", "failed"]
    assert all(s["where"].startswith("worker") for s in rec["items"][:2])
    assert rec["items"][0]["n"] == result.n_tiles
    alone = ad.read_h5ad(result.h5ad)
    for name in ("synthetic", "twin"):
        a = ad.read_h5ad(tmp_path / "out" / name / f"{name}.h5ad")
        np.testing.assert_allclose(a.X, alone.X, rtol=1e-5, atol=1e-6)
    man.write_text(f"slide\n{synthetic_tiff}\n{twin}\n")
    assert main(args) == 0
    assert "done 0 · skipped 2 · failed 0" in capsys.readouterr().out
    with pytest.raises(InputError, match="need --manifest"):
        from histoexpr.st.predict_cohort import predict_cohort

        predict_cohort([synthetic_tiff], run=run.path, out=tmp_path / "x", workers=2)


def test_cohort_killed_mid_run_resumes_to_identical_outputs(run, synthetic_tiff, tmp_path):
    """SIGKILL the driver of a predict-slide cohort after its first slide; the rerun does
    only the rest, and every slide's predictions equal an uninterrupted run's."""
    import signal
    import subprocess
    import sys
    import time

    names = ["a", "b", "c"]
    for n in names:
        os.symlink(synthetic_tiff, tmp_path / f"{n}.tif")
    cmd = [sys.executable, "-m", "histoexpr", "-q", "predict-slide",
           *(str(tmp_path / f"{n}.tif") for n in names), "--model", str(run.path),
           "--n-maps", "1", "--map-mpp", "0"]
    assert subprocess.run([*cmd, "--out", str(tmp_path / "whole")]).returncode == 0
    out = tmp_path / "killed"
    p = subprocess.Popen([*cmd, "--out", str(out)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    while not (out / "a" / "predict_slide.json").exists():
        assert p.poll() is None, "ended before the kill"
        assert time.monotonic() - t0 < 120
        time.sleep(0.02)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert not (out / "c" / "predict_slide.json").exists(), "finished before the kill"
    stamp = (out / "a" / "a.h5ad").stat().st_mtime_ns
    assert subprocess.run([*cmd, "--out", str(out)]).returncode == 0
    assert (out / "a" / "a.h5ad").stat().st_mtime_ns == stamp  # done slides untouched
    for n in names:
        want = ad.read_h5ad(tmp_path / "whole" / n / f"{n}.h5ad")
        got = ad.read_h5ad(out / n / f"{n}.h5ad")
        np.testing.assert_array_equal(got.X, want.X)
    rec = json.loads((out / "run.json").read_text())
    status = [i["status"] for i in rec["items"]]
    assert status[0] == "done before" and status[2] == "done"
    assert not list(out.rglob("*.tmp*")) and not list(out.rglob(".*.h5ad*"))


def _as_trident(src, dest, *, magnification=20.0, with_mag=True):
    """An embed file rewritten as TRIDENT stores one: attributes on `coords`, none at the root,
    the encoder only in the folder name (features_<encoder>/<slide>.h5)."""
    import h5py

    from histoexpr.features.store import load_features

    coords, feats, attrs = load_features(src)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(dest, "w") as f:
        f.create_dataset("features", data=feats)
        c = f.create_dataset("coords", data=coords.astype(np.int32))
        c.attrs["patch_size"] = attrs["tile_spec"]["size_px"]
        c.attrs["name"] = "synthetic"
        if with_mag:  # CLAM records no magnification, only the level and downsample
            c.attrs["patch_size_level0"] = attrs["tile_spec"]["size_px"]
            c.attrs["target_magnification"] = magnification
            c.attrs["level0_magnification"] = magnification
        else:
            c.attrs["patch_level"] = 0
            c.attrs["downsample"] = [1.0, 1.0]
    return dest


def test_trident_and_clam_feature_files(run, synthetic_tiff, result, tmp_path):
    """A TRIDENT file of the same tiles predicts as the embed file does; a CLAM file (no
    magnification, no encoder) and one of another width are refused by name."""
    assert main(["-q", "tile", str(synthetic_tiff), "--out", str(tmp_path / "t"),
                 "--tile-size", "64", "--mpp", "0.5"]) == 0
    assert main(["-q", "embed", str(synthetic_tiff), "--coords",
                 str(tmp_path / "t" / "64px_0.5mpp"), "--encoder", "toy", "--out",
                 str(tmp_path / "e")]) == 0
    ours = predict_slide(synthetic_tiff, run.path, out=tmp_path / "o1",
                         features=tmp_path / "e" / "synthetic.h5", quiet=True)
    tri = _as_trident(tmp_path / "e" / "synthetic.h5",
                      tmp_path / "trident" / "features_toy" / "synthetic.h5")
    theirs = predict_slide(synthetic_tiff, run.path, out=tmp_path / "o2", features=tri,
                           quiet=True)
    np.testing.assert_allclose(theirs.adata.X, ours.adata.X, rtol=1e-6)
    assert list(theirs.adata.obs_names) == list(ours.adata.obs_names)
    # 40x TRIDENT tiles are 0.25 µm/px: not the run's 0.5
    tri40 = _as_trident(tmp_path / "e" / "synthetic.h5",
                        tmp_path / "t40" / "features_toy" / "synthetic.h5", magnification=40)
    with pytest.raises(InputError, match=r"tiles of 64 px at 0\.25 µm/px"):
        predict_slide(synthetic_tiff, run.path, out=tmp_path / "o3", features=tri40,
                      quiet=True)
    clam = _as_trident(tmp_path / "e" / "synthetic.h5", tmp_path / "clam" / "synthetic.h5",
                       with_mag=False)
    with pytest.raises(InputError, match="CLAM feature file that does not record its "
                                         "encoder and its tiles' µm/px"):
        predict_slide(synthetic_tiff, run.path, out=tmp_path / "o4", features=clam,
                      quiet=True)
    import h5py

    with h5py.File(tri, "r+") as f:  # another encoder's width under the same name
        feats = f["features"][:]
        del f["features"]
        f.create_dataset("features", data=np.c_[feats, feats])
    with pytest.raises(InputError, match=rf"{feats.shape[1] * 2} feature columns do not fit "
                                         rf"the run's final model .*expecting {feats.shape[1]}"):
        predict_slide(synthetic_tiff, run.path, out=tmp_path / "o5", features=tri,
                      quiet=True)
