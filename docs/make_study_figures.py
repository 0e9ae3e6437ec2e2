"""Regenerate the README's study figures (docs/figures/*.png) on generated data.

    .venv/bin/python docs/make_study_figures.py

Each study preset runs end to end on generated data of the paper's shape with a short
schedule (minutes on a CPU), and its key figure is copied here. Nothing from real data.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from histoexpr.cli import main

HERE = Path(__file__).parent / "figures"


def _run(args: list[str]) -> None:
    if main(["-q", *args]) != 0:
        sys.exit(f"failed: histoexpr {' '.join(args)}")


def brstnet(tmp: Path) -> None:
    from histoexpr.datasets.synthetic_st import synthetic_st

    s = synthetic_st(tmp / "st", n_sections=4, n_patients=1, seed=0)
    (tmp / "sections.json").write_text(json.dumps(s.specs))
    _run(["reproduce", "brstnet", "--data", str(tmp / "sections.json"), "--encoder", "toy",
          "--patch-px", "32", "--genes", "top20", "--min-counts", "0", "--stain",
          "luminosity+reinhard", "--short", "--out", str(tmp / "brstnet")])
    shutil.copy(tmp / "brstnet/figures/fig4_held_out_maps.png", HERE / "brstnet_fig4.png")


def bulk_cohort(tmp: Path, names: list[str], n: int, seed: int):
    from histoexpr.datasets.synthetic_bulk import synthetic_bulk

    syn = synthetic_bulk(tmp / f"cohort{seed}", n_slides=n, n_genes=len(names),
                         n_signal=min(12, len(names) - 1), seed=seed)
    expr = pd.read_csv(syn.expression_path)
    expr.columns = ["PATIENT_ID", *names]
    expr.to_csv(syn.expression_path, index=False)
    return syn, expr.set_index("PATIENT_ID")


def hist2rna(tmp: Path) -> None:
    from histoexpr.datasets.synthetic_clinical import synthetic_clinical
    from histoexpr.expression import load_panel

    pam50 = load_panel("pam50")
    names = pam50 + [g for g in load_panel("hist2rna138") if g not in pam50]
    syn, expr = bulk_cohort(tmp, names, 120, 3)
    clin = synthetic_clinical(expr, survival_gene=names[0], er_gene=names[1],
                              ki67_gene=names[2], grade_gene=names[3],
                              subtype_genes=(names[0], names[1]))
    lab = clin.table["SUBTYPE"].map(dict(zip(sorted(clin.table["SUBTYPE"].unique()),
                                             ["Basal", "Her2", "LumA", "LumB"])))
    lab.rename_axis("PATIENT_ID").to_csv(tmp / "subtypes.csv")
    _run(["reproduce", "hist2rna", "--features", str(syn.features_dir), "--expression",
          str(syn.expression_path), "--subtypes", str(tmp / "subtypes.csv"), "--short",
          "--out", str(tmp / "hist2rna")])
    shutil.copy(tmp / "hist2rna/figures/fig5_r2.png", HERE / "hist2rna_fig5.png")


def gastric(tmp: Path) -> None:
    syn, _ = bulk_cohort(tmp, ["GZMB", "WARS", "SFRP4", "CDX1"], 80, 2)
    _run(["reproduce", "gastric", "--features", str(syn.features_dir), "--expression",
          str(syn.expression_path), "--short", "--out", str(tmp / "gastric")])
    shutil.copy(tmp / "gastric/figures/fig7_violins.png", HERE / "gastric_fig7.png")


def gtex(tmp: Path) -> None:
    rng = np.random.default_rng(0)
    n = 120
    ids = [f"GTEX-{i:04d}-0126-SM-1" for i in range(n)]
    z, isch = rng.normal(size=n), rng.uniform(100, 1000, n)
    feats = []
    for size in (256, 512):
        f = rng.normal(size=(n, 30)) + np.outer(z, rng.normal(size=30)) \
            + 0.5 * np.outer(np.log(isch), rng.normal(size=30))
        pd.DataFrame(f, index=ids).add_prefix("f").to_csv(tmp / f"f{size}.csv")
        feats.append(f"{size}={tmp / f'f{size}.csv'}")
    expr = np.exp(rng.normal(1, 1, (n, 60)) + 0.5 * np.outer(z, rng.normal(size=60)))
    pd.DataFrame(expr, index=ids).add_prefix("G").to_csv(tmp / "rpkm.csv")
    pd.DataFrame({"SAMPID": ids, "SMTSISCH": isch, "SMRIN": rng.uniform(6, 9, n),
                  "SMCENTER": rng.integers(0, 2, n)}).to_csv(tmp / "cov.tsv", sep="\t",
                                                             index=False)
    _run(["reproduce", "gtex", "--features", *feats, "--expression", str(tmp / "rpkm.csv"),
          "--covariates", str(tmp / "cov.tsv"), "--permutations", "50", "--top-genes", "40",
          "--top-features", "20", "--min-mean", "0", "--out", str(tmp / "gtex")])
    shutil.copy(tmp / "gtex/figures/fig4_confounders.png", HERE / "gtex_fig4.png")


if __name__ == "__main__":
    HERE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        for study in (brstnet, hist2rna, gastric, gtex):
            study(Path(d))
            print(f"{study.__name__}: done")
