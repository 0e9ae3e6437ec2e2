"""The bulk path on real TCGA-BRCA tiles (../shared/data/tcga_brca): four patients' tile
folders are tiled and embedded with efficientnet_lite0, joined by barcode to the 1,093-patient
PAM50 expression table, and every bulk model runs fit / evaluate / predict. Four patients is a
smoke test of the whole path, not a result: leave-one-patient-out scores are meaningless."""

from __future__ import annotations

import json

import pandas as pd
import pytest

pytest.importorskip("torch")

from histoexpr.cli import main

pytestmark = pytest.mark.data
PATIENTS = ["TCGA-A2-A04R", "TCGA-A2-A04Y", "TCGA-A2-A0YG", "TCGA-E2-A15K"]


@pytest.fixture(scope="module")
def tcga(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("tcga")
    tiles = shared_data / "tcga_brca" / "tiles"
    folders = [str(tiles / p) for p in PATIENTS]
    common = ["--slide-mpp", "0.25"]
    assert main(["-q", "tile", *folders, "--out", str(root / "t"), "--mpp", "0.25",
                 "--tile-size", "224", "--min-tissue", "0.3", *common]) == 0
    assert main(["-q", "embed", *folders, "--coords", str(root / "t" / "224px_0.25mpp"),
                 "--out", str(root / "f"), *common]) == 0
    return root, shared_data / "tcga_brca" / "pam50_gene_expression.csv"


def _fit(root, expr, out, *extra):
    return main(["-q", "bulk", "fit", "--features", str(root / "f"), "--expression", str(expr),
                 "--panel", "pam50", "--holdout", "0", "--out", str(out), *extra])


def test_tiles_embed_join_and_run_with_all_baselines(tcga, capsys):
    root, expr = tcga
    run = root / "ridge"
    assert _fit(root, expr, run) == 0
    assert "ridge" in capsys.readouterr().out
    data = json.loads((run / "data.json").read_text())
    assert data["encoder"] == "efficientnet_lite0" and data["n_genes"] == 50
    counts = data["join"]["counts"]
    assert counts["pairs"] == 4 and counts["expression_without_slides"] == 1093 - 4
    s = pd.read_csv(run / "summary.csv")
    assert set(s["entry"]) == {"ridge", "mean", "ridge@colour", "ridge@random"}
    assert (s["n_patients"] == 4).all()
    assert main(["-q", "bulk", "predict", str(run), "--features", str(root / "f")]) == 0
    pred = pd.read_csv(run / "predict" / "predictions.csv", index_col=0)
    assert sorted(pred["patient"]) == PATIENTS and pred.shape[1] == 51


@pytest.mark.parametrize("model", ["mlp", "hist2rna", "gastric_baseline", "gastric_mean",
                                   "gastric_max", "multitask", "he2rna", "abmil"])
def test_every_feature_model_runs_on_real_tiles(tcga, model):
    root, expr = tcga
    run = root / model
    assert _fit(root, expr, run, "--model", model, "--baselines", "none",
                "--param", "max_epochs=2") == 0
    assert (run / "final" / "model.joblib").is_file()
    assert main(["-q", "bulk", "predict", str(run), "--features", str(root / "f")]) == 0


def test_gastric_simplified_fine_tunes_on_real_patches(tcga):
    root, expr = tcga
    run = root / "gastric_simplified"
    assert _fit(root, expr, run, "--model", "gastric_simplified", "--baselines", "none",
                "--select", "random", "--n-tiles", "4",
                "--param", "encoder=efficientnet_lite0", "--param", "max_epochs=1",
                "--param", "n_patches=4") == 0
    s = pd.read_csv(run / "summary.csv")
    assert s["n_patients"].iloc[0] == 4
    assert main(["-q", "bulk", "predict", str(run), "--features", str(root / "f")]) == 0
