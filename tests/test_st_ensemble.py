"""``st fit --ensemble-encoders``: one head per encoder, predictions averaged (issue 20,
item 4); the ensemble is the registry's ``ensemble`` model with feature blocks."""

from __future__ import annotations

import json

import joblib
import numpy as np
import pytest

from histoexpr.config import STConfig
from histoexpr.datasets.synthetic_st import synthetic_st
from histoexpr.errors import InputError, UnknownNameError
from histoexpr.models.ensemble import EnsembleModel


def test_blocks_fit_one_member_per_block_and_average():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 7))
    y = np.c_[x[:, 0], x[:, 5]]
    m = EnsembleModel(members=("ridge",), blocks=(3, 4)).fit(x, y)
    assert len(m.members_) == 2
    first = m.members_[0].predict(x[:, :3])
    second = m.members_[1].predict(x[:, 3:])
    assert np.allclose(m.predict(x), (first + second) / 2, atol=1e-5)
    with pytest.raises(InputError, match="do not add up to the 7"):
        EnsembleModel(members=("ridge",), blocks=(3, 3)).fit(x, y)
    with pytest.raises(InputError, match="at least two members"):
        EnsembleModel(members=("ridge",)).fit(x, y)


def test_config_checks_the_encoders():
    with pytest.raises(InputError, match="not --encoder toy again"):
        STConfig.resolve(data=["x"], encoder="toy", ensemble_encoders=("toy",))
    with pytest.raises(InputError, match="trains its own encoder"):
        STConfig.resolve(data=["x"], encoder="toy", model="cnn_aux",
                         ensemble_encoders=("efficientnet_lite0",))
    with pytest.raises(UnknownNameError, match="nope"):
        STConfig.resolve(data=["x"], ensemble_encoders=("nope",))


def test_st_fit_with_two_encoders_fits_an_ensemble_of_blocks(tmp_path):
    from histoexpr.st import fit_run

    out = tmp_path / "syn"
    s = synthetic_st(out, n_sections=4, n_patients=2, seed=0)
    (out / "sections.json").write_text(json.dumps(s.specs))
    cfg = STConfig.resolve(data=[str(out / "sections.json")], encoder="toy",
                           ensemble_encoders=("toy@3",), pretrained=False, context=1,
                           scales=(), genes="SIG0,SIG1,NOISE0", patch_px=32, k=2,
                           baselines=["mean", "colour"])
    run = fit_run(cfg, tmp_path / "ens", maps=False)
    final = joblib.load(run.final / "model.joblib")
    assert isinstance(final, EnsembleModel) and len(final.members_) == 2
    widths = [sl.stop - sl.start for sl in final.slices_]
    assert widths[0] == 2 * 16  # toy's 16 features, with their context mean
    models = json.loads((run.path / "models.json").read_text())
    assert models[0]["model"] == "ensemble" and models[0]["source"] == "toy+toy@3"
    assert {m["model"] for m in models[1:]} == {"mean", "ridge"}  # colour: one head
    from histoexpr.st import predict_section

    pred = predict_section(run.path, s.specs[0]["image"], s.specs[0]["spots"])
    assert pred.n_obs > 0 and np.isfinite(pred.X).all()


def test_predict_slide_embeds_each_encoder_with_its_own_context(synthetic_tiff, tmp_path):
    """predict-slide rebuilds an ensemble's features as st fit did: each encoder's block
    beside its own context; a single-encoder feature file is refused for it."""
    import anndata as ad

    from histoexpr.st import fit_run
    from histoexpr.st.predict_slide import predict_slide

    out = tmp_path / "syn"
    s = synthetic_st(out, n_sections=2, n_patients=2, grid=(5, 5), n_genes=12, n_signal=4,
                     seed=1)
    (out / "sections.json").write_text(json.dumps(s.specs))
    cfg = STConfig.resolve(data=[str(out / "sections.json")], split="section", encoder="toy",
                           ensemble_encoders=("toy@3",), pretrained=False, context=1,
                           genes="top10", patch_px=64, patch_um=32.0, k=2, baselines=())
    run = fit_run(cfg, tmp_path / "ens", maps=False)
    res = predict_slide(synthetic_tiff, run.path, out=tmp_path / "slide", n_maps=1, quiet=True)
    a = ad.read_h5ad(res.h5ad)
    assert a.n_obs == res.n_tiles > 10 and np.isfinite(a.X).all()
