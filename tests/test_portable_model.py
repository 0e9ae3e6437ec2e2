"""Portable models (issue 22, item 4): `export-model` writes one safetensors file that
`st predict` and `bulk predict` take in place of the run folder, with the same
predictions; loading never unpickles; bad files get one clear error."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest

from histoexpr.bulk import fit_run as bulk_fit
from histoexpr.bulk import predict_bulk
from histoexpr.cli import main
from histoexpr.config import BulkConfig
from histoexpr.datasets.synthetic_bulk import synthetic_bulk
from histoexpr.errors import InputError
from histoexpr.runs.portable import export_model, open_model
from histoexpr.st.predict import predict_section


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HISTOEXPR_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def st_run(tiny_st_run):
    return tiny_st_run


@pytest.fixture(scope="module")
def bulk(tmp_path_factory):
    syn = synthetic_bulk(tmp_path_factory.mktemp("pm_bulk"), n_slides=24, n_genes=4,
                         n_signal=2, seed=4)
    runs = {}
    for model in ("ridge", "hist2rna"):
        cfg = BulkConfig.resolve(features=str(syn.features_dir),
                                 expression=str(syn.expression_path), genes="all",
                                 baselines=[], k=2, model=model, **(
                                     {"model_params": {"max_epochs": 3}}
                                     if model != "ridge" else {}))
        runs[model] = bulk_fit(cfg, tmp_path_factory.mktemp(f"pm_{model}") / "run")
    return syn, runs


def _no_unpickling(monkeypatch):
    import joblib

    def refuse(*a, **k):
        raise AssertionError("a model file was unpickled")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(joblib, "load", refuse)


def test_st_model_file_predicts_as_the_run_folder(st_run, tmp_path, monkeypatch):
    run, s = st_run
    spec = s.specs[0]
    want = predict_section(run.path, spec["image"], spec["spots"], out=tmp_path / "a")
    # st predict's QuPath objects: each spot's patch, every gene a measurement
    section = want.obs["slide_id"].iloc[0]
    geo = json.loads((tmp_path / "a" / f"{section}_spots.geojson").read_text())
    assert len(geo["features"]) == want.n_obs
    first = geo["features"][0]
    assert list(first["properties"]["measurements"]) == list(want.var_names)
    ring = np.array(first["geometry"]["coordinates"][0])
    centre = want.obsm["spatial"][0]
    np.testing.assert_allclose(ring[:4].mean(0), centre, atol=1e-6)
    path = tmp_path / "model.histoexpr"
    assert main(["-q", "export-model", str(run.path), str(path)]) == 0
    _no_unpickling(monkeypatch)
    got = predict_section(path, spec["image"], spec["spots"], out=tmp_path / "b")
    np.testing.assert_allclose(got.X, want.X, rtol=1e-6, atol=1e-7)
    assert list(got.var_names) == list(want.var_names)
    # the default output folder sits beside the file, not in the cache
    predict_section(path, spec["image"], spec["spots"])
    assert (tmp_path / "model_predict").is_dir()


@pytest.mark.parametrize("model", ["ridge", "hist2rna"])
def test_bulk_model_file_predicts_as_the_run_folder(bulk, tmp_path, monkeypatch, model):
    syn, runs = bulk
    want = predict_bulk(runs[model].path, syn.features_dir, out=tmp_path / "a.csv")
    path = export_model(runs[model].path, tmp_path / f"{model}.histoexpr")
    _no_unpickling(monkeypatch)
    got = predict_bulk(path, syn.features_dir, out=tmp_path / "b.csv")
    pd.testing.assert_frame_equal(got, want, atol=1e-6)
    from histoexpr.bulk import predict_bulk_cohort

    man = tmp_path / "m.csv"
    pd.DataFrame({"slide": [f"{n}.svs" for n in want.index[:3]]}).to_csv(man, index=False)
    cohort, _ = predict_bulk_cohort(path, man, features=syn.features_dir, in_process=True)
    pd.testing.assert_frame_equal(cohort, want.iloc[:3], atol=1e-6, check_dtype=False)
    assert (tmp_path / f"{model}_predict" / "predictions.csv").is_file()


def test_bad_model_files_are_named(st_run, tmp_path):
    run, _ = st_run
    junk = tmp_path / "junk.histoexpr"
    junk.write_bytes(b"not a model")
    with pytest.raises(InputError, match=r"junk\.histoexpr: not a histoexpr model file"):
        open_model(junk)
    from safetensors.numpy import save_file

    other = tmp_path / "weights.safetensors"
    save_file({"w": np.zeros(2)}, str(other))
    with pytest.raises(InputError, match="not a histoexpr model"):
        open_model(other)
    path = export_model(run.path, tmp_path / "m.histoexpr")
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    newer = tmp_path / "newer.histoexpr"
    save_file(tensors, str(newer), metadata={**meta, "format_version": "99"})
    with pytest.raises(InputError, match=r"model format 99.*upgrade"):
        open_model(newer)
    evil = tmp_path / "evil.histoexpr"
    save_file(tensors, str(evil), metadata={**meta, "model": meta["model"].replace(
        '"RidgeProbe"', '"Popen"')})
    with pytest.raises(InputError, match="class 'Popen'"):
        open_model(evil)
    with pytest.raises(InputError, match="no final model"):
        export_model(tmp_path, tmp_path / "x.histoexpr")


def test_a_model_that_is_not_plain_data_is_refused(tmp_path):
    from histoexpr.models.portable import PortableError, to_tree

    with pytest.raises(PortableError, match="cannot be exported"):
        to_tree({"f": len}, {})


def test_predict_slide_takes_a_model_file(st_run, synthetic_tiff, tmp_path):
    import anndata as ad

    run, _ = st_run
    path = export_model(run.path, tmp_path / "m.histoexpr")
    args = ["-q", "predict-slide", str(synthetic_tiff), "--n-maps", "1", "--map-mpp", "0"]
    assert main([*args, "--model", str(run.path), "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--model", str(path), "--out", str(tmp_path / "b")]) == 0
    a = ad.read_h5ad(tmp_path / "a" / "synthetic.h5ad")
    b = ad.read_h5ad(tmp_path / "b" / "synthetic.h5ad")
    np.testing.assert_allclose(b.X, a.X, rtol=1e-6, atol=1e-7)


def test_cnn_aux_round_trips_without_pickle(tmp_path, monkeypatch):
    """An end-to-end encoder (toy card) with its auxiliary head: the rebuilt network holds
    the trained weights and predicts as the fitted model does."""
    import torch

    from histoexpr.models import CNNAux
    from histoexpr.models.portable import from_tree, to_tree

    rng = np.random.default_rng(0)
    b = rng.uniform(40, 215, 24)
    x = np.clip(b[:, None, None, None] + rng.normal(0, 10, (24, 32, 32, 3)), 0, 255)
    x = x.astype(np.uint8)
    model = CNNAux(encoder="toy", max_epochs=2, batch_size=8, device="cpu").fit(
        x, np.c_[b], y_aux=np.c_[b, -b])
    tensors: dict = {}
    tree = json.loads(json.dumps(to_tree(model, tensors)))  # through JSON, as in a file
    _no_unpickling(monkeypatch)
    back = from_tree(tree, tensors)
    np.testing.assert_allclose(back.predict(x), model.predict(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(back.predict_aux(x), model.predict_aux(x), rtol=1e-5,
                               atol=1e-5)
    assert isinstance(back.network_, torch.nn.Module)
