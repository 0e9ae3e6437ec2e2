"""PAM50 on the 1,093 TCGA-BRCA patients (RSEM, not log-transformed, no subtype labels):
unsupervised clustering on the 50 genes and the nearest-centroid caller, end to end through
the CLI. Without labels only class sizes are reported; no accuracy is claimed."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from histoexpr.cli import main

N_PATIENTS = 1093


@pytest.mark.data
def test_pam50_clusters_and_centroid_calls_on_tcga_brca(shared_data, tmp_path, capsys):
    expr = shared_data / "tcga_brca" / "pam50_gene_expression.csv"
    clusters, calls = tmp_path / "clusters", tmp_path / "centroid"
    rc = main(["-q", "analyze", "subtype", "--expression", str(expr), "--method", "cluster",
               "--genes", "pam50", "--k", "5", "--out", str(clusters)])
    assert rc == 0
    sizes = pd.read_csv(clusters / "class_sizes.csv").set_index("class")["n_called"]
    rec = json.loads((clusters / "analysis.json").read_text())
    assert sizes.sum() == N_PATIENTS and len(sizes) == 5
    assert sizes.min() >= 0.05 * N_PATIENTS  # every cluster is a real group, not a handful
    assert rec["summary"]["transform_called"] == "log2"  # RSEM was recognised as linear
    assert rec["summary"]["n_genes"] == 50 and rec["summary"]["silhouette"] > 0.1
    assert not (clusters / "metrics.csv").exists()

    # the basal-like group is there: the cluster lowest in ESR1 is highest in FOXC1 and KRT5
    cent = pd.read_csv(clusters / "centroids.csv", index_col=0)
    basal = cent.loc["ESR1"].idxmin()
    assert cent.loc["FOXC1"].idxmax() == basal and cent.loc["KRT5"].idxmax() == basal

    # the cluster centroids as a user table for the nearest-centroid caller
    rc = main(["-q", "analyze", "subtype", "--expression", str(expr), "--method", "centroid",
               "--centroids", str(clusters / "centroids.csv"), "--out", str(calls)])
    assert rc == 0
    by_table = pd.read_csv(calls / "calls.csv")
    by_cluster = pd.read_csv(clusters / "calls.csv")
    assert len(by_table) == N_PATIENTS and by_table["sample"].str.startswith("TCGA-").all()
    assert (by_table["call"].to_numpy() == by_cluster["call"].to_numpy()).all()
    capsys.readouterr()
    with capsys.disabled():
        print(f"\nTCGA-BRCA PAM50 clusters (k=5, Ward on correlation, silhouette "
              f"{rec['summary']['silhouette']:.3f}; basal-like = {basal}):")
        print(pd.read_csv(clusters / "class_sizes.csv").to_string(index=False))
