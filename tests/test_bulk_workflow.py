"""The bulk workflow end to end on synthetic cohorts: join, bags, protocol, scoring, cost,
resume, predict, CLI and bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from histoexpr.bulk import evaluate_run, fit_run, load_bulk_data, predict_bulk
from histoexpr.bulk.protocol import make_units
from histoexpr.config import BulkConfig
from histoexpr.datasets.synthetic_bulk import synthetic_bulk
from histoexpr.errors import InputError


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    return synthetic_bulk(tmp_path_factory.mktemp("bulk"), n_slides=90, n_genes=8, n_signal=3,
                          seed=1)


def _cfg(syn, **kw):
    base = dict(features=str(syn.features_dir), expression=str(syn.expression_path),
                genes="all", baselines=["mean"], k=3)
    return BulkConfig.resolve(**(base | kw))


@pytest.fixture(scope="module")
def run(syn, tmp_path_factory):
    return fit_run(_cfg(syn), tmp_path_factory.mktemp("run") / "run")


def test_ridge_finds_signal_genes_and_the_mean_predictor_does_not(run, syn):
    s = pd.read_csv(run.summary)
    assert set(s["role"]) == {"cv", "holdout"}
    assert {"pooled", "mean", "0", "1", "2"} <= set(s["fold"].astype(str))
    m = pd.read_csv(run.metrics)
    cv = m[(m["fold"] == "pooled") & (m["role"] == "cv") & (m["metric"] == "spearman_r")]
    ridge = cv[cv["model"] == "ridge"].set_index("gene")["value"]
    assert ridge[syn.signal_genes].min() > 0.5
    assert ridge[syn.noise_genes].abs().max() < 0.35
    mean = s[(s["model"] == "mean") & (s["fold"] == "mean")].iloc[0]
    assert np.isnan(mean["spearman_median"]) and mean["n_spearman_r_gt_0.4"] == 0
    ridge_row = s[(s["model"] == "ridge") & (s["fold"] == "mean")].iloc[0]
    assert ridge_row["n_spearman_q_lt_0.05"] >= 2 and ridge_row["r2_mean"] > mean["r2_mean"]


def test_across_patient_scores_and_predictions_tables(run, syn):
    p = pd.read_csv(run.patients_csv)
    assert {"patient", "spearman_r", "spearman_q", "pearson_r", "model", "role"} <= set(p)
    held = json.loads(run.splits.read_text())["holdout_patients"]
    assert set(p[p["role"] == "holdout"]["patient"]) == set(held)
    pred = pd.read_csv(run.predictions_csv)
    oof = pred[(pred["model"] == "ridge") & (pred["role"] == "cv")]
    assert len(oof) == 90 - len(held) and oof["slide"].is_unique


def test_run_record_cost_and_final_model(run):
    cost = json.loads(run.cost_json.read_text())
    ridge = cost["entries"]["ridge"]
    assert ridge["n_fits"] == 4 and ridge["wall_s"] > 0 and ridge["energy_wh"] >= 0
    assert ridge["energy_method"] == "power x time"
    info = json.loads((run.final / "model.json").read_text())
    assert info["encoder"] == "synthetic" and info["n_features"] == 32
    data = json.loads(run.data_json.read_text())
    assert data["join"]["counts"]["pairs"] == 90 and len(data["checksums"]) == 1
    entries = json.loads(run.entries_json.read_text())
    assert [e["key"] for e in entries] == ["ridge", "mean"]


def test_rerun_resumes_without_refitting(run, syn):
    stamps = {p: p.stat().st_mtime_ns for p in run.path.glob("folds/*/*.npz")}
    fit_run(_cfg(syn), run.path)
    assert {p: p.stat().st_mtime_ns for p in run.path.glob("folds/*/*.npz")} == stamps


def test_another_config_in_the_same_folder_is_refused(run, syn):
    with pytest.raises(InputError, match="differs in: k"):
        fit_run(_cfg(syn, k=4), run.path)


def test_predict_checks_the_encoder(run, syn, tmp_path):
    from histoexpr.features.store import load_features, save_features

    df = predict_bulk(run.path, syn.features_dir, out=tmp_path / "p.csv")
    assert df.shape == (90, 9) and df["patient"].iloc[0] == "TCGA-SY-0000"
    other = tmp_path / "other"
    c, f, _ = load_features(next(syn.features_dir.glob("*.h5")))
    save_features(other / "TCGA-SY-9999-01Z-00-DX1.h5", c, f, {"encoder": "resnet50"})
    with pytest.raises(InputError, match="made with encoder 'resnet50'"):
        predict_bulk(run.path, other)


def test_split_protocol_scores_validation_and_test(syn, tmp_path):
    rf = fit_run(_cfg(syn, protocol="split", baselines=[]), tmp_path / "r")
    s = pd.read_csv(rf.summary)
    assert set(s["role"]) == {"val", "test"} and rf.final_model.is_file()
    sp = json.loads(rf.splits.read_text())
    assert len(sp["train_patients"]) == 54 and len(sp["test_patients"]) == 18
    assert not set(sp["train_patients"]) & set(sp["test_patients"])


def test_units_keep_patients_whole():
    pts = np.repeat([f"p{i}" for i in range(12)], 3)
    units, rec = make_units(pts, k=3, holdout=0.25, seed=2)
    held = set(rec["holdout_patients"])
    assert len(held) == 3
    for u in units[:-1]:
        assert not set(pts[u.train]) & set(pts[u.rows])
        assert not held & set(pts[u.rows]) and not held & set(pts[u.train])
    assert set(pts[units[-1].rows]) == held and units[-1].final


def test_join_reports_orphans_and_missing_panel_genes(syn, tmp_path):
    expr = pd.read_csv(syn.expression_path, index_col=0)
    expr.loc["TCGA-SY-7777"] = 1.0  # a patient without a slide
    expr = expr.drop(index="TCGA-SY-0003")  # a slide without expression
    path = tmp_path / "e.csv"
    expr.to_csv(path)
    panel = tmp_path / "panel.txt"  # a panel file: missing genes named, the rest fitted
    panel.write_text("SIG0\nSIG1\nNOPE1\n")
    data = load_bulk_data(_cfg(syn, expression=str(path), genes=str(panel)))
    assert data.missing_genes == ["NOPE1"] and data.genes == ["SIG0", "SIG1"]
    assert data.join.expression_without_slides == ["TCGA-SY-7777"]
    assert "TCGA-SY-0003-01Z-00-DX1" in data.join.slides_without_expression
    assert len(data.bags) == 89
    with pytest.raises(InputError, match="NOPE1"):  # genes listed by name must all exist
        load_bulk_data(_cfg(syn, expression=str(path), genes="SIG0,NOPE1"))
    with pytest.raises(InputError, match="strict"):
        load_bulk_data(_cfg(syn, expression=str(path), genes=str(panel), strict_genes=True))


def test_bad_expression_values_are_clear_errors(syn, tmp_path):
    expr = pd.read_csv(syn.expression_path, index_col=0)
    neg = expr.copy()
    neg.iloc[2, 0] = -1.0
    neg.to_csv(tmp_path / "neg.csv")
    with pytest.raises(InputError, match=r"neg\.csv: 1 negative value"):
        load_bulk_data(_cfg(syn, expression=str(tmp_path / "neg.csv")))
    txt = expr.astype(object)
    txt.iloc[1, 1] = "n/a"
    txt.to_csv(tmp_path / "txt.csv")
    with pytest.raises(InputError):
        load_bulk_data(_cfg(syn, expression=str(tmp_path / "txt.csv")))


def test_random_tile_choice_is_seeded_per_slide(syn):
    a = load_bulk_data(_cfg(syn, select="random", n_tiles=7, seed=3))
    b = load_bulk_data(_cfg(syn, select="random", n_tiles=7, seed=3))
    assert {len(x) for x in a.bags} == {7}
    assert all(np.array_equal(x.coords, y.coords) for x, y in zip(a.bags, b.bags, strict=True))


def test_top_tiles_by_heatmap_scores(syn, tmp_path):
    from histoexpr.features.bags import load_bag
    from histoexpr.features.store import feature_files, load_features

    heat = tmp_path / "heat"
    heat.mkdir()
    for slide, path in feature_files(syn.features_dir).items():
        coords, _, _ = load_features(path)
        score = syn.signal_tiles[slide].astype(float)
        pd.DataFrame({"x": coords[:, 0], "y": coords[:, 1], "score": score}).to_csv(
            heat / f"{slide}.csv", index=False)
    slide = syn.slides[0]
    bag = load_bag(feature_files(syn.features_dir)[slide], select="top", n=3, heatmaps=heat)
    mask = syn.signal_tiles[slide]
    assert len(bag) == min(3, len(mask)) and mask.sum() >= 3
    coords, _, _ = load_features(feature_files(syn.features_dir)[slide])
    sig = {tuple(c) for c in coords[mask]}
    assert all(tuple(c) in sig for c in bag.coords)
    with pytest.raises(InputError, match="heatmaps"):
        BulkConfig.resolve(features="f", expression="e", select="top", n_tiles=3)


def test_cli_fit_evaluate_predict(syn, tmp_path, capsys):
    from histoexpr.cli import main

    out = tmp_path / "cli"
    rc = main(["-q", "bulk", "fit", "--features", str(syn.features_dir), "--expression",
               str(syn.expression_path), "--genes", "SIG0,SIG1,SIG2,NOISE0", "--folds", "3",
               "--baselines", "mean", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "3-fold CV by patient" in text and "ridge" in text and "mean" in text
    assert main(["-q", "bulk", "evaluate", str(out)]) == 0
    assert main(["-q", "bulk", "predict", str(out), "--features", str(syn.features_dir)]) == 0
    assert (out / "predict" / "predictions.csv").is_file()
    assert main(["-q", "bulk", "fit", "--features", str(tmp_path / "none"), "--expression",
                 str(syn.expression_path), "--out", str(tmp_path / "x")]) != 0
    assert "no such feature folder" in capsys.readouterr().err


def test_evaluate_without_fits_is_a_clear_error(tmp_path):
    with pytest.raises(InputError):
        evaluate_run(tmp_path)


def test_top_genes_are_chosen_on_the_training_patients_only(syn, tmp_path):
    rf = fit_run(_cfg(syn, genes="top3"), tmp_path / "top")
    data = json.loads(rf.data_json.read_text())
    sel = data["gene_selection"]
    assert sel["method"] == "top_mean" and len(sel["genes"]) == 3 == len(data["genes"])
    assert "training patients" in sel["chosen_on"]
    held = set(json.loads(rf.splits.read_text())["holdout_patients"])
    n_train = len({p for s, p in pd.read_csv(rf.slides_csv)[["slide", "patient"]].values
                   if p not in held})
    assert f"the {n_train} training patients" in sel["chosen_on"]


def test_in_memory_table_and_bags_give_the_file_run(run, syn, tmp_path):
    from histoexpr.expression import read_expression
    from histoexpr.features.bags import load_bags

    expr = read_expression(syn.expression_path)
    bags = {b.slide: b for b in load_bags(syn.features_dir).bags}
    cfg = BulkConfig.resolve(genes="all", baselines=["mean"], k=3)   # no files named
    mem = fit_run(cfg, tmp_path / "mem", expression=expr, bags=bags)
    keys = ["model", "role", "fold", "spearman_mean", "pearson_mean"]
    a = pd.read_csv(run.summary)[keys].sort_values(keys[:3]).reset_index(drop=True)
    b = pd.read_csv(mem.summary)[keys].sort_values(keys[:3]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, rtol=1e-6)
    sums = json.loads(mem.data_json.read_text())["checksums"]
    assert {"<in-memory expression>", "<in-memory bags>"} <= set(sums)
    # the same folder with other data is refused, not silently mixed
    other = expr * 2.0
    with pytest.raises(InputError, match="input"):
        fit_run(cfg, tmp_path / "mem", expression=other, bags=bags)
    # arrays are accepted as bags; a bad table is a clear error
    arrays = {k: v.features for k, v in bags.items()}
    assert load_bulk_data(cfg, expression=expr, bags=arrays).y.shape == (90, 8)
    with pytest.raises(InputError, match="negative"):
        load_bulk_data(cfg, expression=expr - 1e6, bags=arrays)
    with pytest.raises(InputError, match="needs --features DIR"):
        load_bulk_data(cfg, expression=expr)


def test_subtype_stratified_train_test_split(syn, tmp_path):
    """hist2RNA's split: train/test only (validation 0), the test patients drawn in
    proportion to each subtype."""
    pts = sorted({str(s)[:12] for s in syn.slides})
    labels = pd.DataFrame({"patient": pts, "subtype": ["LumA" if i % 3 else "Basal"
                                                      for i in range(len(pts))]})
    labels.to_csv(tmp_path / "subtypes.csv", index=False)
    cfg = _cfg(syn, protocol="split", split_fractions=[2 / 3, 0, 1 / 3],
               strata=str(tmp_path / "subtypes.csv"))
    run = fit_run(cfg, tmp_path / "run", evaluate=False)
    rec = json.loads(run.splits.read_text())
    assert rec["stratified"] and rec["val_patients"] == []
    lab = labels.set_index("patient")["subtype"]
    test = lab[rec["test_patients"]].value_counts(normalize=True)
    assert abs(test["Basal"] - (lab == "Basal").mean()) < 0.02
    assert len(rec["test_patients"]) == round(len(pts) / 3)
    with pytest.raises(InputError, match="validation may be 0"):
        BulkConfig.resolve(features="f", expression="e", split_fractions=[0.5, 0.5, 0])


def test_split_protocol_stops_early_on_the_validation_patients(syn, tmp_path):
    """Seed 000: the 20 % validation set stops the torch models early (all training bags
    trained on); a model without the tag keeps its own inner split."""
    from histoexpr.models import HE2RNA, tags_of

    assert tags_of(HE2RNA).validation
    cfg = _cfg(syn, protocol="split", model="he2rna", baselines=[],
               model_params={"max_epochs": 3})
    run = fit_run(cfg, tmp_path / "run", evaluate=False)
    import joblib

    model = joblib.load(run.final_model)
    n_train = len(json.loads(run.splits.read_text())["train_patients"])
    assert len(model.history_) >= 1 and model.n_epochs_ <= 3
    # direct: the eval_set bags are not trained on, and their loss is the validation loss
    from histoexpr.features.bags import load_bags

    bags = load_bags(syn.features_dir).bags[:12]
    y = np.random.default_rng(0).normal(size=(12, 2))
    m = HE2RNA(max_epochs=2, random_state=0, device="cpu").fit(bags[:8], y[:8],
                                                                 eval_set=(bags[8:], y[8:]))
    assert len(m.history_) == 2 and np.isfinite(m.history_[-1]["val_loss"])
    assert n_train > 0
