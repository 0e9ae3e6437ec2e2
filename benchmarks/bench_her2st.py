"""Spot-level expression prediction on the real her2st sections (C2–C6, one patient).

Split: leave-one-section-out over C2–C6. All five sections come from patient C, so this is
the only split the data allow, and it is a *within-patient* split: neighbouring sections of
one tumour share stain, morphology and expression, so even colour features do well. It says
little about new patients; prefer choices that would also generalise across patients.

For each gene set (top 250 by mean, top 50 highly variable; always chosen on the training
sections of each fold) and each head (ridge = PCA → RidgeCV, mlp), the same folds score:

- the model on efficientnet_lite0 features (ImageNet weights, the offline default encoder);
- three baselines: the training-mean predictor, the same head on colour histograms, and the
  same head on a randomly initialised efficientnet_lite0.

It prints mean/median Pearson r over genes (pooled over the held-out section's spots, then
averaged over the five folds), genes with r > 0 and > 0.3, the mean r of the top 10 genes,
genes with BH q < 0.05, the model's ratio to the colour baseline, and CPU seconds per fold.
A short CPU run of the end-to-end ``cnn_aux`` (BrST-Net) on one fold shows that it trains;
it is reported as such, not as a tuned result.

    python benchmarks/bench_her2st.py [--data ../shared/data/her2st] [--out bench_out/her2st]
                                      [--cnn-epochs 2] [--skip-cnn]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "her2st"
NOTE = ("split: leave-one-section-out over her2st C2-C6, all from patient C - the only split "
        "one patient allows; a within-patient estimate, optimistic for new patients")


def _cv_table(data: Path, out: Path, genes_sets: list[str], heads: list[str]) -> pd.DataFrame:
    from histoexpr.config import STConfig
    from histoexpr.st import fit_run

    rows = []
    for genes in genes_sets:
        for head in heads:
            cfg = STConfig.resolve(context=0, scales=(),  # the probe alone
                                   data=[str(data)], model=head, genes=genes, split="section",
                                   k=5, encoder="efficientnet_lite0")
            t0 = time.perf_counter()
            run = fit_run(cfg, out / f"{head}_{genes}", feature_cache=out / "features",
                          maps=(genes == genes_sets[0] and head == heads[0]))
            s = pd.read_csv(run.summary)
            s["genes"], s["head"] = genes, head
            s["run_wall_s"] = time.perf_counter() - t0
            rows.append(s)
    return pd.concat(rows, ignore_index=True)


def _print(df: pd.DataFrame, held: dict[str, str]) -> None:
    mean = df[df["fold"] == "mean"].copy()
    colour = mean[mean["features"] == "colour_hist"].set_index(["genes", "head"])["pearson_mean"]
    mean["vs_colour"] = [r.pearson_mean / colour.get((r.genes, r["head"]), np.nan)
                         for _, r in mean.iterrows()]
    cols = ["genes", "head", "model", "features", "pearson_mean", "pearson_median",
            "n_pearson_r_gt_0", "n_pearson_r_gt_0.3", "pearson_top10_mean", "n_pearson_q_lt_0.05",
            "vs_colour", "r2_mean", "rmse_mean", "cpu_s", "wall_s"]
    for c in ("n_pearson_r_gt_0", "n_pearson_r_gt_0.3", "n_pearson_q_lt_0.05"):
        mean[c] = mean[c].map(lambda v: f"{v:.1f}")
    print(f"\n{NOTE}\n")
    print("mean over the 5 folds (per-gene Pearson r pooled over the held-out section's spots;"
          " vs_colour: pearson_mean / the colour baseline's; the mean predictor has no r, compare"
          " R2/RMSE; cpu_s / wall_s: fitting + predicting one fold, features excluded)")
    print(mean[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    folds = df[(df["fold"] != "mean") & (df["kind"] == "model")].copy()
    folds["held-out section"] = folds["fold"].astype(str).map(held)
    piv = folds.pivot_table(index=["genes", "head"], columns="held-out section",
                            values="pearson_mean")
    print("\nthe model's mean Pearson r over genes, per held-out section")
    print(piv.to_string(float_format=lambda v: f"{v:.3f}"))


def _cnn_aux(data: Path, epochs: int, out: Path) -> None:
    """BrST-Net end to end on one fold (train C2–C5, test C6), a few CPU epochs."""
    from histoexpr import _keys as K
    from histoexpr.config import STConfig
    from histoexpr.expression import GeneSelector
    from histoexpr.metrics import per_gene
    from histoexpr.models import CNNAux, RidgeProbe
    from histoexpr.st import load_spot_data
    from histoexpr.tiling.spots import iter_section_patches

    cfg = STConfig.resolve(context=0, scales=(), data=[str(data)], split="section")
    sd = load_spot_data(cfg)
    a = sd.adata
    test = (a.obs[K.SLIDE_ID].astype(str) == "C6").to_numpy()
    x = np.asarray(a.X)
    sel = GeneSelector(n=250).fit(x[~test], a.var_names)
    rest = sel.rest(a.n_vars)
    rest = rest[x[~test][:, rest].max(axis=0) > 0]
    patches = np.empty((a.n_obs, sd.spec.size_px, sd.spec.size_px, 3), np.uint8)
    for _, rows, p, _ in iter_section_patches(a, sd.spec):
        patches[rows] = p
    y, y_aux = sel.transform(x), x[:, rest]
    groups = a.obs[K.SLIDE_ID].astype(str).to_numpy()
    w0, c0 = time.perf_counter(), time.process_time()
    model = CNNAux(encoder="efficientnet_lite0", pretrained=True, max_epochs=epochs,
                   patience=epochs, checkpoint_dir=str(out / "cnn_aux_ckpt"))
    model.fit(patches[~test], y[~test], y_aux=y_aux[~test], groups=groups[~test])
    pred = model.predict(patches[test])
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    r = per_gene(y[test], pred)["pearson_r"]
    print(f"\ncnn_aux (efficientnet_lite0, ImageNet init, aux head on {len(rest)} genes, "
          f"lambda={model.aux_weight}) - a short CPU run to show it trains, not a result:")
    print(pd.DataFrame(model.history_).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"train C2-C5, test C6: mean Pearson r {np.nanmean(r):.3f} over 250 genes "
          f"({int((r > 0).sum())} with r > 0); {wall:.0f} s wall, {cpu:.0f} s CPU")
    from histoexpr.features.per_spot import spot_features

    feats = spot_features(a, "efficientnet_lite0", sd.spec, cache_dir=out / "features",
                          store=False)
    ridge = RidgeProbe().fit(feats[~test], y[~test]).predict(feats[test])
    rr = per_gene(y[test], ridge)["pearson_r"]
    print(f"same fold, ridge on frozen efficientnet_lite0 features: mean r {np.nanmean(rr):.3f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--out", type=Path, default=ROOT / "bench_out" / "her2st")
    p.add_argument("--genes", nargs="+", default=["top250", "hvg50"])
    p.add_argument("--heads", nargs="+", default=["ridge", "mlp"])
    p.add_argument("--cnn-epochs", type=int, default=2)
    p.add_argument("--skip-cnn", action="store_true")
    args = p.parse_args(argv)
    if not (args.data / "counts").is_dir():
        print(f"her2st not found at {args.data}; nothing to do", file=sys.stderr)
        return 0
    logging.basicConfig(level=logging.WARNING)
    import torch

    print(f"torch threads {torch.get_num_threads()}, {torch.__version__}")
    df = _cv_table(args.data, args.out, args.genes, args.heads)
    df.to_csv(args.out / "bench_summary.csv", index=False)
    import json

    split = json.loads((args.out / f"{args.heads[0]}_{args.genes[0]}" / "splits.json").read_text())
    _print(df, {str(k): ",".join(g) for k, g in enumerate(split["fold_test_groups"])})
    if not args.skip_cnn:
        _cnn_aux(args.data, args.cnn_epochs, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
