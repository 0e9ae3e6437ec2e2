"""Study presets: paper values with their sources, user overrides recorded, and each preset's
tables and figures written with finite numbers (synthetic sections, a toy encoder, a short
schedule)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from histoexpr.cli import main
from histoexpr.datasets.synthetic_st import synthetic_st
from histoexpr.reproduce import BRSTNET
from histoexpr.reproduce.brstnet_outputs import pcc_bins

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_brstnet_preset_holds_the_papers_values_and_says_where():
    cfg, prov = BRSTNET.resolve({"data": ("x",)})
    assert (cfg.model, cfg.encoder, cfg.pretrained, cfg.genes) == (
        "cnn_aux", "efficientnet_b0", False, "top250")
    assert (cfg.min_counts, cfg.target_sum, cfg.patch_px, cfg.patch_um) == (1000, 0, 224, 0)
    assert cfg.stain == "luminosity+vahadane" and cfg.k == 5
    mp = dict(cfg.model_params)
    assert (mp["batch_size"], mp["max_epochs"], mp["lr"], mp["aux_weight"]) == (32, 200, 1e-3, 40)
    src = {r["key"]: r for r in prov.rows()}
    assert src["model_params.aux_weight"]["source"] == "paper"
    assert "Eq. 5" in src["model_params.aux_weight"]["where"]
    assert src["model_params.loss"]["source"].startswith("departure:")
    # the user's values win and are named as theirs, beside the paper's
    cfg, prov = BRSTNET.resolve({"data": ("x",), "k": 3, "model_params": {"max_epochs": 4}})
    src = {r["key"]: r["source"] for r in prov.rows()}
    assert cfg.k == 3 and src["k"] == "user (paper: 5)"
    assert cfg.model_params["max_epochs"] == 4 and cfg.model_params["batch_size"] == 32
    assert src["model_params.max_epochs"] == "user (paper: 200)"


def test_pcc_bins_are_the_papers_fig2_bins():
    assert pcc_bins(pd.Series([0.51, 0.31, 0.11, 0.01, -0.2])) == {
        "> 0.5": 1, "0.3-0.5": 1, "0.1-0.3": 1, "0-0.1": 1, "negative": 1}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("brstnet")
    s = synthetic_st(out / "data", n_sections=4, n_patients=1, seed=0)
    (out / "sections.json").write_text(json.dumps(s.specs))
    rc = main(["-q", "reproduce", "brstnet", "--data", str(out / "sections.json"),
               "--encoder", "toy", "--patch-px", "32", "--genes", "top20", "--min-counts", "0",
               "--stain", "luminosity+reinhard", "--short", "--param", "batch_size=16",
               "--out", str(out / "study")])
    assert rc == 0
    return out / "study"


def test_brstnet_study_writes_the_papers_tables_and_figures(study):
    t1 = pd.read_csv(study / "tables" / "table1_top10_median_pcc.csv", index_col=0)
    assert len(t1) == 10 and np.isfinite(t1.to_numpy()).all()
    t2 = pd.read_csv(study / "tables" / "table2_errors.csv", index_col=0)
    assert len(t2) == 2 and np.isfinite(t2.to_numpy(float)).all()   # with and without AuxNet
    assert any("AuxNet" in i for i in t2.index)
    t3 = pd.read_csv(study / "tables" / "table3_training_time.csv", index_col=0)
    assert (t3["seconds"] > 0).all()
    base = pd.read_csv(study / "tables" / "baselines.csv", index_col=0)
    assert any("colour" in i for i in base.index) and "margin over colour" in base
    for f in ("fig2_bins.png", "fig3_positive_pcc.png", "fig4_held_out_maps.png"):
        assert (study / "figures" / f).stat().st_size > 1000
    html = (study / "report.html").read_text()
    for title in ("Table 1", "Table 2", "Table 3", "Fig. 2", "Fig. 3", "Fig. 4",
                  "Paper vs this run", "Where each value comes from", "SHORT schedule"):
        assert title in html
    rec = json.loads((study / "preset.json").read_text())
    src = {r["key"]: r["source"] for r in rec["values"]}
    # one patient: sections are the groups, one held out, k capped; each said as a departure
    assert src["split"].startswith("departure: 1 patient")
    assert src["k"].startswith("departure: only 3 sections")
    assert src["model_params.max_epochs"].startswith("short schedule")
    assert src["stain"] == "user (paper: luminosity+vahadane)"
    assert rec["config"]["holdout"] and len(list((study / "runs").iterdir())) == 2


def test_brstnet_study_resumes_without_refitting(study, capsys):
    before = {p: p.stat().st_mtime_ns for p in (study / "runs").rglob("*.npz")}
    data = json.loads((study / "preset.json").read_text())["config"]["data"]
    rc = main(["-q", "reproduce", "brstnet", "--data", *data, "--encoder", "toy",
               "--patch-px", "32", "--genes", "top20", "--min-counts", "0",
               "--stain", "luminosity+reinhard", "--short", "--param", "batch_size=16",
               "--out", str(study)])
    assert rc == 0
    after = {p: p.stat().st_mtime_ns for p in (study / "runs").rglob("*.npz")}
    assert before == after
    assert re.search(r"report: .*report\.html", capsys.readouterr().out)


@pytest.fixture(scope="module")
def h2r(tmp_path_factory):
    """A synthetic bulk cohort named with the 138 hist2RNA genes (PAM50 first, the signal
    genes among them), PAM50-like subtypes planted on two signal genes, and OS data."""
    from histoexpr.datasets.synthetic_bulk import synthetic_bulk
    from histoexpr.datasets.synthetic_clinical import synthetic_clinical
    from histoexpr.expression import load_panel

    out = tmp_path_factory.mktemp("h2r")
    syn = synthetic_bulk(out / "cohort", n_slides=90, n_genes=138, n_signal=12, seed=3)
    pam50 = load_panel("pam50")
    names = pam50 + [g for g in load_panel("hist2rna138") if g not in pam50]
    expr = pd.read_csv(syn.expression_path)
    expr.columns = ["PATIENT_ID", *names]
    expr.to_csv(syn.expression_path, index=False)
    clin = synthetic_clinical(expr.set_index("PATIENT_ID"), survival_gene=names[0],
                              er_gene=names[1], ki67_gene=names[2], grade_gene=names[3],
                              subtype_genes=(names[0], names[1]), seed=0)
    table = clin.table.copy()
    table["SUBTYPE"] = table["SUBTYPE"].map(dict(zip(sorted(table["SUBTYPE"].unique()),
                                                     ["Basal", "Her2", "LumA", "LumB"])))
    table.index.name = "PATIENT_ID"
    table.reset_index()[["PATIENT_ID", "SUBTYPE"]].to_csv(out / "subtypes.csv", index=False)
    table.to_csv(out / "clinical.csv")
    return syn, out


def test_hist2rna_preset_writes_scores_figures_subtypes_and_survival(h2r):
    syn, out = h2r
    study = out / "study"
    rc = main(["-q", "reproduce", "hist2rna", "--features", str(syn.features_dir),
               "--expression", str(syn.expression_path), "--subtypes",
               str(out / "subtypes.csv"), "--clinical", str(out / "clinical.csv"),
               "--baselines", "mean", "--short", "--out", str(study)])
    assert rc == 0
    rec = json.loads((study / "preset.json").read_text())
    src = {r["key"]: r["source"] for r in rec["values"]}
    assert src["model"] == "paper" and src["genes"] == "paper"
    assert src["model_params.max_epochs"].startswith("short schedule")
    splits = json.loads((study / "run" / "splits.json").read_text())
    assert splits["stratified"] and splits["val_patients"] == []
    assert len(splits["test_patients"]) == round(90 * 160 / 495)
    scores = pd.read_csv(study / "tables" / "scores.csv", index_col=0)
    assert {"hist2rna", "mean"} <= set(scores.index)
    assert np.isfinite(scores.loc["hist2rna", "median Spearman r across genes"])
    assert scores.loc["hist2rna", "genes"] == 138
    sub = pd.read_csv(study / "tables" / "subtype_metrics.csv")
    assert len(sub) and np.isfinite(sub.select_dtypes("number").to_numpy()).any()
    assert any(study.glob("tables/survival_*.csv"))
    for f in ("fig3_spearman.png", "fig5_r2.png"):
        assert (study / "figures" / f).stat().st_size > 1000
    html = (study / "report.html").read_text()
    for title in ("Fig. 3", "Fig. 5", "Subtypes from the predicted PAM50 genes",
                  "Tables 1-2", "Paper vs this run", "Where each value comes from"):
        assert title in html


def test_gastric_preset_writes_table1_fig7_and_cheong_groups(tmp_path):
    from histoexpr.datasets.synthetic_bulk import synthetic_bulk
    from histoexpr.datasets.synthetic_clinical import synthetic_clinical

    syn = synthetic_bulk(tmp_path / "cohort", n_slides=60, n_genes=4, n_signal=3, dim=16,
                         seed=2)
    expr = pd.read_csv(syn.expression_path)
    expr.columns = ["PATIENT_ID", "GZMB", "WARS", "SFRP4", "CDX1"]
    expr.to_csv(syn.expression_path, index=False)
    clin = synthetic_clinical(expr.set_index("PATIENT_ID"), survival_gene="GZMB",
                              er_gene="WARS", ki67_gene="SFRP4", grade_gene="CDX1",
                              subtype_genes=("GZMB", "CDX1"), seed=0)
    table = clin.table.rename_axis("PATIENT_ID")
    rng = np.random.default_rng(5)
    table["CHEMO"] = rng.choice(["yes", "no"], len(table))
    table["RESPONSE"] = rng.choice(["responder", "non-responder"], len(table))
    table.to_csv(tmp_path / "clinical.csv")
    study = tmp_path / "study"
    rc = main(["-q", "reproduce", "gastric", "--features", str(syn.features_dir),
               "--expression", str(syn.expression_path), "--baselines", "mean",
               "--clinical", str(tmp_path / "clinical.csv"), "--response", "RESPONSE",
               "--treatment", "CHEMO", "--short", "--out", str(study)])
    assert rc == 0
    t1 = pd.read_csv(study / "tables" / "table1_pearson.csv", index_col=0)
    assert {"M2 baseline", "M4 + multi-task"} <= set(t1.index)
    assert np.isfinite(t1.loc["M4 + multi-task", "N = 10"])
    assert t1.loc["M3 mean aggregation", "N = 1"] == t1.loc["M2 baseline", "N = 1"]
    rec = json.loads((study / "preset.json").read_text())
    src = {r["key"]: r["source"] for r in rec["values"]}
    assert src["select"].startswith("departure: no --heatmaps")
    assert src["split_fractions"] == "paper"
    assert (study / "figures" / "fig7_violins.png").stat().st_size > 1000
    assert (study / "tables" / "cheong_group_sizes.csv").is_file()
    html = (study / "report.html").read_text()
    best = pd.read_csv(study / "tables" / "cheong_threshold_best.csv")
    assert 0 <= best.loc[0, "cv balanced accuracy"] <= 1 and best.loc[0, "n"] > 0
    inter = pd.read_csv(study / "tables" / "benefit_interaction.csv", index_col=0)
    assert list(inter.index) == ["treatment", "group", "interaction"]
    assert np.isfinite(inter["p"]).all()
    for title in ("Table 1", "Fig. 7", "Cheong groups", "Paper vs this run",
                  "Cheong thresholds searched", "treatment x predicted group"):
        assert title in html


def test_gtex_preset_writes_shared_variance_confounders_and_associations(tmp_path):
    """Feature tables at two patch sizes share a planted factor with log-RPKM expression;
    ischaemic time drives part of both."""
    rng = np.random.default_rng(0)
    n = 80
    ids = [f"GTEX-{i:04d}-0126-SM-1" for i in range(n)]
    z, isch = rng.normal(size=n), rng.uniform(100, 1000, n)
    for size in (256, 512):
        f = rng.normal(size=(n, 20)) + np.outer(z, rng.normal(size=20)) \
            + 0.5 * np.outer(np.log(isch), rng.normal(size=20))
        pd.DataFrame(f, index=ids).add_prefix("f").to_csv(tmp_path / f"f{size}.csv")
    expr = np.exp(rng.normal(1, 1, (n, 30)) + 0.5 * np.outer(z, rng.normal(size=30)))
    pd.DataFrame(expr, index=ids).add_prefix("G").to_csv(tmp_path / "rpkm.csv")
    pd.DataFrame({"SAMPID": ids, "SMTSISCH": isch, "SMRIN": rng.uniform(6, 9, n)}).to_csv(
        tmp_path / "cov.tsv", sep="\t", index=False)
    study = tmp_path / "study"
    rc = main(["-q", "reproduce", "gtex", "--features", f"256={tmp_path / 'f256.csv'}",
               f"512={tmp_path / 'f512.csv'}", "--expression", str(tmp_path / "rpkm.csv"),
               "--covariates", str(tmp_path / "cov.tsv"), "--permutations", "20",
               "--top-genes", "20", "--top-features", "10", "--min-mean", "0",
               "--out", str(study)])
    assert rc == 0
    shared = pd.read_csv(study / "tables" / "shared_variance.csv")
    assert set(shared["pool"]) == {"mean", "median"} and set(shared["features"]) == {256, 512}
    assert ((shared["total"] > shared["chance (total)"]) & np.isfinite(shared["technical"])).all()
    rec = json.loads((study / "preset.json").read_text())
    src = {r["key"]: r["source"] for r in rec["values"]}
    assert src["top_genes"] == "user (paper: 2000)" and src["variance_cutoff"] == "paper"
    assert src["log"].startswith("departure:")
    for f in ("fig4_confounders.png", "q2_total_vs_technical.png"):
        assert (study / "figures" / f).stat().st_size > 1000
    html = (study / "report.html").read_text()
    for title in ("Fig. 4", "Q2.3", "Q3", "Paper vs this run"):
        assert title in html


def test_hist2rna_backbones_are_encoder_cards():
    from histoexpr.features.encoders import build_network, get_card
    from histoexpr.reproduce.hist2rna import BACKBONES

    cards = {b: get_card(b) for b in BACKBONES}
    assert cards["regnety_320"].embed_dim == 3712 and cards["efficientnetv2_s"].input_size == 300
    net, _ = build_network(cards["efficientnetv2_s"], pretrained=False)
    assert sum(p.numel() for p in net.parameters()) > 1e7
