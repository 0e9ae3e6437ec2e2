"""Bulk models on the synthetic cohort: recovery, fit time and energy, in one table.

The cohort (:func:`histoexpr.datasets.synthetic_bulk.synthetic_bulk`, 300 slides by default,
one per patient) has 20 genes: 5 signal genes linear in a slide latent state carried only by
a slide-specific 10-50 % of its tiles, and 15 noise genes independent of the image. Every
model runs through ``histoexpr.bulk.fit_run`` with the same protocol: 20 % of the patients
held out, 5-fold CV by patient on the rest, and the model refitted on all CV patients scores
the held-out set. Figures are from the held-out set unless a column says "CV".

Columns: median Spearman ρ across all genes (per gene over patients), mean ρ of the signal
genes and of the noise genes, genes with ρ > 0.4, genes with BH q < 0.05, median Spearman
across patients (per patient over genes), the CV fold-mean median ρ, the summed wall and
CPU time of the model's six fits, its energy estimate (power x time: 10 W per busy CPU core
unless configured, see histoexpr.cost), the ratio of its fit wall time to ridge's, and, for
models that score tiles (``tile_scores``), the mean AUROC of those scores against the true
signal tiles of the held-out slides. The mean predictor and ridge on slide means are the
baselines. ``gastric_simplified`` trains on image patches and cannot run on this
features-only cohort; the colour and random-init baselines need images too (see
bench_her2st.py and the TCGA data test for those).

    python benchmarks/bench_bulk.py [--slides 300] [--models ridge,abmil] [--out bench_out/bulk]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

MODELS = ["mean", "ridge", "mlp", "hist2rna", "gastric_baseline", "gastric_mean",
          "gastric_max", "multitask", "he2rna", "abmil"]


def _tile_auroc(run: Path, syn, held: list[str]) -> float:
    import joblib
    from sklearn.metrics import roc_auc_score

    from histoexpr.features.bags import load_bags

    model = joblib.load(run / "final" / "model.joblib")
    if not hasattr(model, "tile_scores"):
        return float("nan")
    slides = [f"{p}-01Z-00-DX1" for p in held]
    bags = load_bags(syn.features_dir, slides).bags
    aucs = []
    for b, s in zip(bags, model.tile_scores(bags), strict=True):
        m = syn.signal_tiles[b.slide]
        if 0 < m.mean() < 1:
            aucs.append(roc_auc_score(m, s))
    return float(np.mean(aucs))


def run_model(model: str, syn, out: Path) -> dict:
    from histoexpr.bulk import fit_run
    from histoexpr.config import BulkConfig

    cfg = BulkConfig.resolve(features=str(syn.features_dir), expression=str(syn.expression_path),
                             genes="all", model=model, baselines=[], k=5, holdout_fraction=0.2)
    t0 = time.perf_counter()
    rf = fit_run(cfg, out / model)
    wall = time.perf_counter() - t0
    s = pd.read_csv(rf.summary)
    held = s[(s["role"] == "holdout")].iloc[0]
    cv = s[(s["role"] == "cv") & (s["fold"] == "mean")].iloc[0]
    m = pd.read_csv(rf.metrics)
    rho = m[(m["role"] == "holdout") & (m["metric"] == "spearman_r")].set_index("gene")["value"]
    cost = json.loads(rf.cost_json.read_text())["entries"][model]
    held_patients = json.loads(rf.splits.read_text())["holdout_patients"]
    return {
        "model": model, "rho_median": held["spearman_median"],
        "rho_signal": rho[syn.signal_genes].mean(), "rho_noise": rho[syn.noise_genes].mean(),
        "genes_r>0.4": held["n_spearman_r_gt_0.4"], "genes_q<0.05": held["n_spearman_q_lt_0.05"],
        "patients_rho": held["patient_spearman_median"], "cv_rho_median": cv["spearman_median"],
        "fit_wall_s": cost["wall_s"], "fit_cpu_s": cost["cpu_s"], "energy_wh": cost["energy_wh"],
        "run_wall_s": wall, "tile_auroc": _tile_auroc(rf.path, syn, held_patients),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slides", type=int, default=300)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench_out/bulk"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import torch

    from histoexpr.datasets.synthetic_bulk import synthetic_bulk

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    syn = synthetic_bulk(args.out / "cohort", n_slides=args.slides, n_genes=20, n_signal=5,
                         seed=0)
    rows = []
    for model in args.models.split(","):
        rows.append(run_model(model, syn, args.out / "runs"))
        print(f"{model}: done in {rows[-1]['run_wall_s']:.1f} s", file=sys.stderr, flush=True)
    df = pd.DataFrame(rows).set_index("model")
    if "ridge" in df.index:
        df["wall_vs_ridge"] = df["fit_wall_s"] / df.loc["ridge", "fit_wall_s"]
    pd.set_option("display.width", 200)
    print(f"\nsynthetic bulk cohort: {args.slides} slides, 5 signal + 15 noise genes; "
          f"held-out 20 % of patients (5-fold CV fold-mean in cv_rho_median); "
          f"{args.threads} CPU threads")
    print(df.drop(columns="run_wall_s").to_string(float_format=lambda v: f"{v:.3f}"))
    df.to_csv(args.out / "bench_bulk.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
