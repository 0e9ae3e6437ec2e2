"""The spatial workflow end to end on synthetic sections with a known image → expression
signal: fit (CV + baselines + final model), the run folder, resume, evaluate, predict, CLI."""

from __future__ import annotations

import json
import os

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from histoexpr.cli import main
from histoexpr.config import STConfig
from histoexpr.datasets.synthetic_st import synthetic_st
from histoexpr.errors import InputError
from histoexpr.expression import GeneSelector
from histoexpr.st import RunFolder, fit_run

FAST = {"encoder": "toy", "genes": "top40", "patch_px": 32, "k": 2}


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn_st")
    s = synthetic_st(out, n_sections=4, n_patients=2, seed=0)
    (out / "sections.json").write_text(json.dumps(s.specs))
    return s, out / "sections.json"


@pytest.fixture(scope="module")
def run(syn, tmp_path_factory):
    _, specs = syn
    cfg = STConfig.resolve(data=[str(specs)], **FAST)
    return fit_run(cfg, tmp_path_factory.mktemp("runs") / "ridge")


def _pooled_r(run: RunFolder) -> pd.DataFrame:
    m = pd.read_csv(run.metrics)
    m = m[(m["section"] == "pooled") & (m["metric"] == "pearson_r")]
    return m.pivot_table(index="gene", columns="features", values="value")


def test_ridge_recovers_the_signal_and_baselines_share_the_table(run, syn):
    s, _ = syn
    r = _pooled_r(run)
    sig, noise = r.loc[s.signal_genes, "toy"], r.loc[s.noise_genes, "toy"]
    assert sig.median() > 0.9 and sig.min() > 0.8, sig
    assert noise.abs().mean() < 0.1, noise
    summary = pd.read_csv(run.summary)
    assert set(summary["features"]) == {"toy", "none", "colour_hist", "toy-random"}
    assert sorted(summary["fold"].astype(str).unique()) == ["0", "1", "mean"]
    mean = summary[summary["model"] == "mean"]
    assert mean["pearson_mean"].isna().all()  # constant predictions have no correlation
    # one vocabulary with the bulk workflow: entry, kind (model / baseline), role, fold
    assert list(summary.columns[:6]) == ["entry", "model", "features", "kind", "role", "fold"]
    assert set(summary["kind"]) == {"model", "baseline"} and set(summary["role"]) == {"cv"}
    metrics = pd.read_csv(run.metrics)
    assert list(metrics.columns[:6]) == ["entry", "model", "features", "kind", "role", "fold"]
    assert (mean["n_constant"] == mean["n_genes"]).all()


def test_run_folder_records_config_data_splits_and_genes(run, syn):
    s, specs = syn
    cfg = json.loads(run.config.read_text())
    assert STConfig.from_dict(cfg).identity() == cfg  # execution settings are in run.json
    data = json.loads(run.data_json.read_text())
    inputs = {p for spec in s.specs for p in (spec["counts"], spec["spots"], spec["image"])}
    assert set(data["sha256"]) == inputs
    assert sum(sum(v["dropped"].values()) for v in data["sections"].values()) == 4
    info = json.loads(run.run_json.read_text())
    assert info["status"] == "done" and {"data", "features", "cross_validation"} <= set(
        info["stages"])
    assert info["execution"] == {"batch_size": 64, "num_workers": 0, "device": None}
    assert data["genes"]["spec"] == "top40" and "training spots" in data["genes"]["chosen_on"]

    split = json.loads(run.splits.read_text())
    spots = pd.Index(split["spots"])
    fold = np.array(split["fold_of_spot"])
    cohort = ad.read_h5ad(run.predictions)
    patient = {f"S{i}": f"P{i % 2}" for i in range(4)}
    pats = np.array([patient[x.split(":")[0]] for x in spots])
    for k in (0, 1):
        assert not set(pats[fold == k]) & set(pats[fold != k])  # no patient on both sides

    # genes were chosen on each fold's training spots only
    from histoexpr.expression import read_sections
    from histoexpr.st import load_spot_data

    sd = load_spot_data(STConfig.resolve(data=[str(specs)], **FAST))
    assert sd.adata.obs_names.equals(spots)
    assert read_sections(s.specs).n_obs == len(spots) + 4
    for k in (0, 1):
        genes = json.loads((run.fold(k) / "genes.json").read_text())["genes"]
        train = np.asarray(sd.adata.X)[fold != k]
        expect = GeneSelector(n=40).fit(train, sd.adata.var_names).genes_
        assert genes == expect
    assert cohort.n_obs == len(spots) and "measured" in cohort.layers
    assert {p.name for p in run.maps.iterdir()} == {"S0.png", "S1.png", "S2.png", "S3.png",
                                                     "scatter.png"}
    assert (run.final / "model.joblib").is_file()


def test_rerun_resumes_and_recomputes_only_what_is_missing(run, syn, caplog):
    _, specs = syn
    done = run.fold(0) / "ridge.npz"
    feat = run.features / "toy" / "S0.h5"
    before = done.stat().st_mtime_ns, feat.stat().st_mtime_ns
    (run.fold(1) / "ridge-colour_hist.npz").unlink()
    caplog.set_level("INFO", logger="histoexpr")
    fit_run(STConfig.resolve(data=[str(specs)], **FAST), run.path, maps=False)
    assert (run.fold(1) / "ridge-colour_hist.npz").is_file()
    assert (done.stat().st_mtime_ns, feat.stat().st_mtime_ns) == before
    assert "unit 0, ridge: done earlier; skipped" in caplog.text


def test_another_config_in_the_same_folder_is_refused(run, syn):
    _, specs = syn
    with pytest.raises(InputError, match="differs in: genes"):
        fit_run(STConfig.resolve(data=[str(specs)], **{**FAST, "genes": "top10"}), run.path)


def test_changed_input_files_are_not_resumed_and_their_features_not_reused(tmp_path):
    def write(seed):
        s = synthetic_st(tmp_path / "data", n_sections=2, grid=(4, 4), n_genes=8,
                         n_signal=2, n_low=0, seed=seed)  # same spots each time
        (tmp_path / "s.json").write_text(json.dumps(s.specs))

    write(0)
    cfg = STConfig.resolve(data=[str(tmp_path / "s.json")],
                           **{**FAST, "genes": "top8", "baselines": (), "refit": False},
                           split="section")
    run = fit_run(cfg, tmp_path / "run", maps=False)
    write(1)  # same paths, other pixels and counts
    with pytest.raises(InputError, match=r"input file.*changed since this run started"):
        fit_run(cfg, run.path, maps=False)
    fit_run(cfg, run.path, maps=False, overwrite=True, feature_cache=tmp_path / "cache")
    assert json.loads(run.run_json.read_text())["resumed"] is False
    # a cache shared between runs is checked against the image, not only the spots
    shared = tmp_path / "cache" / "toy" / "S0.h5"
    stamp = shared.stat().st_mtime_ns
    write(2)
    fit_run(cfg, run.path, maps=False, overwrite=True, feature_cache=tmp_path / "cache")
    assert shared.stat().st_mtime_ns != stamp


def test_one_patient_with_patient_split_suggests_section_split(tmp_path):
    s = synthetic_st(tmp_path, n_sections=2, n_patients=1, grid=(4, 4), n_genes=8, n_signal=2)
    (tmp_path / "s.json").write_text(json.dumps(s.specs))
    cfg = STConfig.resolve(data=[str(tmp_path / "s.json")], **{**FAST, "genes": "top8"},
                           baselines=[])
    with pytest.raises(InputError, match="--split section"):
        fit_run(cfg, tmp_path / "run")


def test_gene_list_naming_absent_genes_is_an_error(syn, tmp_path):
    _, specs = syn
    cfg = STConfig.resolve(data=[str(specs)], **{**FAST, "genes": "SIG0,ERBB2"}, baselines=[])
    with pytest.raises(InputError, match="not in the data"):
        fit_run(cfg, tmp_path / "run")


def test_cli_fit_with_holdout_then_evaluate_and_predict(syn, tmp_path, capsys):
    s, specs = syn
    out = tmp_path / "run"
    rc = main(["-q", "st", "fit", "--data", str(specs), "--encoder", "toy", "--genes", "top40",
               "--patch-px", "32", "--split", "section", "--folds", "3", "--holdout", "S3",
               "--baselines", "mean,colour", "--no-maps", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert "split by section" in text and "holdout" in text and "colour_hist" in text
    summary = pd.read_csv(out / "summary.csv")
    held = summary[summary["role"] == "holdout"]
    assert set(held["fold"]) == {"pooled"}
    assert set(held["model"]) == {"ridge", "mean"} and len(held) == 3
    assert held[held["features"] == "toy"]["n_spots"].item() == 63

    assert main(["-q", "st", "evaluate", str(out), "--genes", "SIG1,SIG2"]) == 0
    assert (out / "maps" / "S0.png").is_file()

    img, sel = s.specs[3]["image"], s.specs[3]["spots"]
    rc = main(["-q", "st", "predict", str(out), "--image", img, "--spots", sel,
               "--out", str(tmp_path / "pred"), "--genes", "SIG0"])
    assert rc == 0, capsys.readouterr().err
    pred = ad.read_h5ad(tmp_path / "pred" / "S3_predictions.h5ad")
    assert pred.n_obs == 64 and "SIG0" in pred.var_names
    assert (tmp_path / "pred" / "S3_map.png").is_file()
    # the final model's predictions on S3 follow the measured signal
    measured = ad.read_h5ad(out / "predictions.h5ad")  # CV folds only: S3 was held out
    assert "S3" not in set(measured.obs["slide_id"])
    truth = s.latents.loc[pred.obs_names]
    w = s.weights[0]
    expect = truth.to_numpy() @ w
    assert np.corrcoef(pred[:, "SIG0"].X.ravel(), expect)[0, 1] > 0.8


def test_cli_errors_are_one_line(tmp_path, capsys):
    rc = main(["st", "fit", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "r")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "no such file or folder" in err and len(err.strip().splitlines()) == 1
    assert main(["st", "evaluate", str(tmp_path)]) == 2
    assert "st fit" in capsys.readouterr().err


def test_predict_needs_a_final_model(run, syn, tmp_path):
    from histoexpr.st import predict_section

    s, _ = syn
    final = run.final / "model.joblib"
    os.replace(final, tmp_path / "m.joblib")
    try:
        with pytest.raises(InputError, match="no final model"):
            predict_section(run.path, s.specs[0]["image"], s.specs[0]["spots"])
    finally:
        os.replace(tmp_path / "m.joblib", final)


def test_cnn_aux_trains_end_to_end_in_the_workflow(syn, tmp_path):
    _, specs = syn
    cfg = STConfig.resolve(data=[str(specs)], **{**FAST, "genes": "top10"}, model="cnn_aux",
                           model_params={"max_epochs": 3, "batch_size": 16}, baselines=["mean"])
    run = fit_run(cfg, tmp_path / "cnn", maps=False)
    summary = pd.read_csv(run.summary)
    assert set(summary["features"]) == {"patches", "none"}
    ckpt = run.fold(0) / "cnn_aux_checkpoints"
    assert (ckpt / "last.pt").is_file()
    import joblib

    model = joblib.load(run.final / "model.joblib")
    assert model.checkpoint_dir is None and len(model.history_) == 3
    assert model.predict_aux(np.zeros((2, 32, 32, 3), np.uint8)).shape[1] == 30  # the rest


@pytest.mark.data
def test_st_fit_on_two_real_her2st_sections(shared_data, tmp_path):
    """A short real-data run: C2 and C3 (patient C, so --split section), small patches, the
    toy encoder; checks the real inputs flow through and the run records them."""
    her2st = shared_data / "her2st"
    specs = [{"platform": "legacy_st", "counts": str(her2st / "counts" / f"{s}.tsv.gz"),
              "spots": str(her2st / "spots" / f"{s}_selection.tsv"),
              "image": str(her2st / "images" / f"{s}.jpg"), "section": s, "patient": "C"}
             for s in ("C2", "C3")]
    (tmp_path / "s.json").write_text(json.dumps(specs))
    with pytest.raises(InputError, match="--split section"):
        fit_run(STConfig.resolve(data=[str(tmp_path / "s.json")], encoder="toy"), tmp_path / "a")
    cfg = STConfig.resolve(data=[str(tmp_path / "s.json")], encoder="toy", genes="top50",
                           patch_px=32, split="section", baselines=["mean", "colour"])
    run = fit_run(cfg, tmp_path / "run", maps=False)
    data = json.loads(run.data_json.read_text())
    kept = {s: v["spots_kept"] for s, v in data["sections"].items()}
    assert 170 <= kept["C2"] <= 187 and 170 <= kept["C3"] <= 180, kept
    summary = pd.read_csv(run.summary)
    row = summary[(summary["fold"] == "mean") & (summary["features"] == "colour_hist")]
    assert row["n_genes"].item() == 50 and np.isfinite(row["pearson_mean"].item())


def test_native_resolution_patches_and_unscaled_counts(syn, tmp_path):
    """patch_um 0: patch_px pixels at the sections' own µm/px, recorded and reused by
    predict; target_sum 0: the raw counts are log-transformed (BrST-Net's choices)."""
    from histoexpr.st import predict_section

    s, specs = syn
    cfg = STConfig.resolve(data=[str(specs)], patch_um=0, target_sum=0, baselines=["mean"],
                           **{**FAST, "genes": "SIG0,SIG1"})
    run = fit_run(cfg, tmp_path / "native", maps=False)
    patch = json.loads(run.data_json.read_text())["patch"]
    mpps = {sec["mpp"] for sec in json.loads(run.data_json.read_text())["sections"].values()}
    assert patch["size_px"] == 32 and patch["mpp"] == pytest.approx(np.median(sorted(mpps)))
    pred = predict_section(run.path, s.specs[0]["image"], s.specs[0]["spots"])
    assert pred.n_obs > 0
    from histoexpr.expression import normalise

    raw = np.array([[3.0, 0.0], [10.0, 5.0]])
    assert np.allclose(normalise(raw, target_sum=0), np.log1p(raw))
    with pytest.raises(InputError, match=r"patch_um \(--patch-um\) must be 0 or positive"):
        STConfig.resolve(data=["x"], patch_um=-1)


def test_spot_context_joins_neighbour_features_in_fit_and_predict(syn, tmp_path):
    """--context 1: every feature entry (the baselines too) sees its spot and the mean of
    the ring around it; st predict applies the same."""
    import joblib

    from histoexpr.st import predict_section

    s, specs = syn
    cfg = STConfig.resolve(data=[str(specs)], context=1, scales=(),
                           baselines=["mean", "colour"], **{**FAST, "genes": "SIG0,SIG1,NOISE0"})
    run = fit_run(cfg, tmp_path / "ctx", maps=False)
    plain = fit_run(STConfig.resolve(data=[str(specs)], baselines=["mean"], context=0, scales=(),
                                     **{**FAST, "genes": "SIG0,SIG1,NOISE0"}),
                    tmp_path / "plain", maps=False)
    width = [joblib.load(r.final / "model.joblib").pipeline_[0].scaler_.n_features_in_
             for r in (run, plain)]
    assert width[0] == 2 * width[1]
    summ = pd.read_csv(run.summary)
    assert {"ridge", "ridge-colour_hist"} <= set(summ["entry"])
    pred = predict_section(run.path, s.specs[0]["image"], s.specs[0]["spots"])
    assert pred.n_obs > 0 and np.isfinite(pred.X).all()
    with pytest.raises(InputError, match=r"context must be a positive .*\(0: off\)"):
        STConfig.resolve(data=["x"], context=-1)
    assert STConfig.resolve(data=["x"], context=0).context is None  # 0 turns it off


def test_st_fit_defaults_are_the_recommended_recipe_and_saved_runs_keep_theirs():
    """st fit's defaults: --context 2 and patches of 2 and 4 times --patch-um beside the
    spot's (features models only); a saved config is read as it was written (an option it
    lacks predates the recipe, so it stays off)."""
    cfg = STConfig.resolve(data=["x"])
    assert cfg.context == 2.0 and cfg.scales == (224.0, 448.0)
    assert STConfig.resolve(data=["x"], patch_um=100).scales == (200.0, 400.0)
    assert STConfig.resolve(data=["x"], model="cnn_aux", encoder="toy").scales == ()
    assert STConfig.resolve(data=["x"], scales="none").scales == ()
    saved = cfg.to_dict()
    saved["context"] = None
    del saved["scales"]  # a run written before --scales existed
    old = STConfig.from_dict(saved)
    assert old.context is None and old.scales == ()


def test_conformal_intervals_and_their_held_out_coverage(syn, tmp_path):
    """90 % split-conformal intervals from the out-of-fold residuals; the held-out section
    measures the coverage reached; st predict writes lower / upper layers."""
    from histoexpr.st import predict_section

    s, specs = syn
    cfg = STConfig.resolve(data=[str(specs)], split="section", holdout=["S3"],
                           baselines=["mean"], **{**FAST, "k": 3})
    run = fit_run(cfg, tmp_path / "unc", maps=False)
    unc = json.loads((run.path / "uncertainty.json").read_text())
    assert unc["nominal_coverage"] == 0.9 and unc["n_calibration_spots"] > 100
    assert set(unc["halfwidth"]) >= {"SIG0", "SIG1"}
    assert 0.75 <= unc["held_out"]["coverage"] <= 1.0
    pred = predict_section(run.path, s.specs[3]["image"], s.specs[3]["spots"])
    assert (pred.layers["upper"] >= pred.X).all() and (pred.layers["lower"] <= pred.X).all()


def test_output_smoothing_is_scored_beside_the_model_and_applied_by_predict(syn, tmp_path):
    from histoexpr.st import predict_section

    s, specs = syn
    cfg = STConfig.resolve(data=[str(specs)], split="section", holdout=["S3"], smooth=True,
                           baselines=["mean"], **{**FAST, "k": 3})
    run = fit_run(cfg, tmp_path / "smooth", maps=False)
    summ = pd.read_csv(run.summary)
    assert {"ridge", "ridge+smooth"} <= set(summ["entry"])
    rec = json.loads((run.path / "smoothing.json").read_text())
    assert rec["strength"] in (0.0, 0.25, 0.5, 0.75, 1.0) and len(rec["per_fold"]) == 3
    pred = predict_section(run.path, s.specs[3]["image"], s.specs[3]["spots"])
    assert np.isfinite(pred.X).all()


def test_st_predict_a_manifest_of_sections_on_dask_resumes_and_fails_alone(run, syn, tmp_path,
                                                                           capsys):
    """st predict --manifest: one Dask task per section, the same predictions as predicting
    each alone, a section with a missing image fails alone, a rerun skips what is done."""
    pytest.importorskip("distributed")
    from histoexpr.st import predict_section

    s, _ = syn
    man = tmp_path / "sections.csv"
    rows = [f"{sp['image']},{sp['spots']},{sp['counts']}" for sp in s.specs[2:4]]
    man.write_text("image,spots,counts\n" + "\n".join(rows)
                   + f"\n{tmp_path / 'gone.jpg'},{s.specs[0]['spots']},\n")
    args = ["-q", "st", "predict", str(run.path), "--manifest", str(man), "--workers", "2",
            "--out", str(tmp_path / "pred")]
    assert main(args) == 2
    assert "done 2 · skipped 0 · failed 1" in capsys.readouterr().out
    rec = json.loads((tmp_path / "pred" / "run.json").read_text())
    assert [i["status"] for i in rec["items"]] == ["done", "done", "failed"]
    assert (tmp_path / "pred" / "S3_metrics.csv").is_file()  # its counts were scored
    alone = predict_section(run.path, s.specs[3]["image"], s.specs[3]["spots"],
                            out=tmp_path / "alone")
    got = ad.read_h5ad(tmp_path / "pred" / "S3_predictions.h5ad")
    np.testing.assert_allclose(got.X, alone.X, rtol=1e-5, atol=1e-6)
    man.write_text("image,spots\n" + "\n".join(r.rsplit(",", 1)[0] for r in rows) + "\n")
    assert main(args) == 0
    assert "done 0 · skipped 2 · failed 0" in capsys.readouterr().out
    assert main(["-q", "st", "predict", str(run.path), "--manifest", str(man), "--image",
                 s.specs[0]["image"]]) == 2
    assert "drop --image" in capsys.readouterr().err
