"""Multi-scale patches (``st fit --scales``) and the attention pool of the spot context
(``--context-attention``), issue 20 item 1."""

from __future__ import annotations

import json

import joblib
import numpy as np
import pytest

from histoexpr.config import STConfig
from histoexpr.datasets.synthetic_st import synthetic_st
from histoexpr.errors import InputError
from histoexpr.features import context as ctx
from histoexpr.features.context import neighbour_mean, with_context


def _grid(n: int = 6) -> np.ndarray:
    return np.array([[x, y] for y in range(n) for x in range(n)], float)


def _attention_reference(f: np.ndarray, xy: np.ndarray, reach: float, tau: float):
    """Brute force: softmax over each spot's neighbours of cos(z_i, z_j) / tau."""
    z = (f - f.mean(0)) / np.maximum(f.std(0), 1e-6)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    out = f.copy()
    for i in range(len(f)):
        d = np.linalg.norm(xy - xy[i], axis=1)
        nb = np.flatnonzero((d <= reach) & (np.arange(len(f)) != i))
        if len(nb):
            w = np.exp(z[nb] @ z[i] / tau)
            out[i] = (w / w.sum()) @ f[nb]
    return out


def test_attention_pool_matches_a_brute_force_softmax_in_chunks(monkeypatch):
    rng = np.random.default_rng(0)
    xy = _grid(7)
    f = rng.normal(size=(len(xy), 5)).astype(np.float32)
    got = neighbour_mean(f, xy, np.zeros(len(xy)), radius=1.5, pool="attention")
    reach = ctx.spot_grid(xy).reach(1.5)
    want = _attention_reference(f.astype(float), xy, reach, ctx.ATTENTION_TEMPERATURE)
    assert np.allclose(got, want, atol=1e-4)
    # the same result when pairs and their scores are held a few at a time
    monkeypatch.setattr(ctx, "PAIRS_PER_CHUNK", 20)
    monkeypatch.setattr(ctx, "ATTENTION_VALUES", 7)
    again = neighbour_mean(f, xy, np.zeros(len(xy)), radius=1.5, pool="attention")
    assert np.allclose(again, got, atol=1e-5)
    # a radius over the whole section attends to every other spot (no mean shortcut)
    whole = neighbour_mean(f, xy, np.zeros(len(xy)), radius=50, pool="attention")
    assert np.allclose(whole, _attention_reference(f.astype(float), xy, 1e9,
                                                   ctx.ATTENTION_TEMPERATURE), atol=1e-4)


def test_attention_weighs_neighbours_like_the_spot_more_than_the_mean_does():
    """Two tissues side by side: at the boundary the mean mixes them, attention keeps to
    the spot's own tissue."""
    xy = _grid(8)
    left = xy[:, 0] < 4
    rng = np.random.default_rng(1)
    f = np.where(left[:, None], [1.0, 0.0], [0.0, 1.0]) + rng.normal(0, 0.05, (len(xy), 2))
    mean = neighbour_mean(f, xy, np.zeros(len(xy)), radius=1)
    att = neighbour_mean(f, xy, np.zeros(len(xy)), radius=1, pool="attention")
    edge = (xy[:, 0] == 3) & (xy[:, 1] > 0) & (xy[:, 1] < 7)  # left spots beside the right
    assert (att[edge, 0] > 0.9).all() and (mean[edge, 0] < 0.8).all()
    assert with_context(f, xy, np.zeros(len(xy)), radius=1, pool="attention").shape == (64, 4)
    with pytest.raises(InputError, match="mean, attention"):
        neighbour_mean(f, xy, np.zeros(len(xy)), radius=1, pool="max")


def test_config_checks_scales_and_attention():
    with pytest.raises(InputError, match="give --context STEPS too"):
        STConfig.resolve(data=["x"], context=0, context_attention=True)
    with pytest.raises(InputError, match="positive patch sides"):
        STConfig.resolve(data=["x"], scales=(224.0, -1.0))
    with pytest.raises(InputError, match="not --patch-um 112 again"):
        STConfig.resolve(data=["x"], scales=(112.0,))
    with pytest.raises(InputError, match="each patch side once"):
        STConfig.resolve(data=["x"], scales=(224.0, 224.0))
    with pytest.raises(InputError, match="multi-scale features take a features model"):
        STConfig.resolve(data=["x"], model="cnn_aux", encoder="toy", scales=(224.0,))
    cfg = STConfig.resolve(data=["x"], scales=(224.0, 448.0), context=2,
                           context_attention=True)
    assert cfg.scales == (224.0, 448.0) and cfg.context_attention


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn_scales")
    s = synthetic_st(out, n_sections=4, n_patients=2, seed=0)
    (out / "sections.json").write_text(json.dumps(s.specs))
    return s, out / "sections.json"


def test_st_fit_joins_each_scale_and_st_predict_rebuilds_them(syn, tmp_path):
    from histoexpr.expression import read_sections
    from histoexpr.features.per_spot import spot_features
    from histoexpr.st import fit_run, predict_section
    from histoexpr.st.fit import entry_features
    from histoexpr.tiling.spec import TileSpec

    s, specs = syn
    common = {"encoder": "toy", "genes": "SIG0,SIG1,NOISE0", "patch_px": 32, "k": 2,
              "baselines": ["mean", "colour"]}
    cfg = STConfig.resolve(data=[str(specs)], scales=(224.0,), context=1,
                           context_attention=True, **common)
    run = fit_run(cfg, tmp_path / "ms", maps=False)
    final = joblib.load(run.final / "model.joblib")
    # toy: 16 features per scale; two scales, each spot beside its attended ring
    assert final.pipeline_[0].scaler_.n_features_in_ == 2 * 2 * 16
    adata = read_sections(s.specs[:1])
    x = entry_features(cfg, adata, "toy", TileSpec.from_um(112, size_px=32),
                       pretrained=True)
    wide = spot_features(adata, "toy", TileSpec.from_um(224, size_px=32), store=False)
    assert np.allclose(x[:, 16:32], wide, atol=1e-6)  # the second block: 224 µm patches
    assert not np.allclose(x[:, :16], wide, atol=1e-3)
    pred = predict_section(run.path, s.specs[0]["image"], s.specs[0]["spots"])
    assert pred.n_obs > 0 and np.isfinite(pred.X).all()
    # the colour baseline sees the same scales
    summ = json.loads((run.path / "models.json").read_text())
    assert {m["features"] for m in summ} >= {"toy", "colour_hist"}


def test_predict_slide_embeds_the_run_scales_centred_on_each_tile(synthetic_tiff, tmp_path):
    import anndata as ad

    from histoexpr.st import fit_run
    from histoexpr.st.predict_slide import _recentred, predict_slide
    from histoexpr.tiling.spec import TileSpec

    base, wide = TileSpec(64, 0.5), TileSpec(64, 1.0)
    c = _recentred(np.array([[100, 200]]), base, wide, 0.25)
    # a 64 px tile at 0.5 µm/px is 128 level-0 px at 0.25; the wide one 256, same centre
    assert (c == [[36, 136]]).all()
    out = tmp_path / "syn"
    s = synthetic_st(out, n_sections=2, n_patients=2, grid=(5, 5), n_genes=12, n_signal=4,
                     seed=1)
    (out / "sections.json").write_text(json.dumps(s.specs))
    cfg = STConfig.resolve(data=[str(out / "sections.json")], split="section", encoder="toy",
                           scales=(64.0,), context=1, genes="top10", patch_px=64,
                           patch_um=32.0, k=2, baselines=())
    run = fit_run(cfg, tmp_path / "ms", maps=False)
    res = predict_slide(synthetic_tiff, run.path, out=tmp_path / "slide", n_maps=1, quiet=True)
    a = ad.read_h5ad(res.h5ad)
    assert a.n_obs == res.n_tiles > 10 and np.isfinite(a.X).all()
    # a feature file holds one patch size: refused for a multi-scale run
    from histoexpr.cli import main

    assert main(["-q", "tile", str(synthetic_tiff), "--out", str(tmp_path / "t"),
                 "--tile-size", "64", "--mpp", "0.5"]) == 0
    assert main(["-q", "embed", str(synthetic_tiff), "--coords",
                 str(tmp_path / "t" / "64px_0.5mpp"), "--encoder", "toy", "--out",
                 str(tmp_path / "e")]) == 0
    with pytest.raises(InputError, match=r"64 µm beside the tiles .*drop --features"):
        predict_slide(synthetic_tiff, run.path, out=tmp_path / "o2",
                      features=tmp_path / "e" / "synthetic.h5", quiet=True)
