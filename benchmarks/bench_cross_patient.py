"""Levers for sections the model never saw, against the colour and random-init baselines of
the same run (issue 20's yardstick, part (a)).

Leave-one-section-out over the shared her2st sections of patient C (one section per fold,
``--split section``, k = number of sections): each recipe is one ``st fit`` run whose
baselines (colour histograms and the random-init encoder, both through the same head and the
same context) share its folds, genes (top 250 by mean, chosen on each training fold) and
spot filters (with ``smooth``, the model's column is its smoothed predictions, the
strength chosen on the other folds). The table gives, per recipe, the fold-mean of the mean
Pearson r over the genes for the model and the two baselines, and the model's margin over
each.

With one patient this is a within-patient split: colour does well on it (the sections share
a stain), so the margins, not the absolute numbers, say whether a lever helps.

    python benchmarks/bench_cross_patient.py [--data ../shared/data/her2st]
        [--recipes plain,context1,context2] [--out bench_out/cross_patient]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import pandas as pd

#: recipe name -> st fit options (beside the shared ones)
RECIPES = {
    "plain": {},
    "context1": {"context": 1},
    "context2": {"context": 2},
    "context3": {"context": 3},
    "tta": {"tta": True},
    "tta+context2": {"tta": True, "context": 2},
    "smooth": {"smooth": True},
    "context3+smooth": {"context": 3, "smooth": True},
    "mlp": {"model": "mlp"},
    "mlp+context1": {"model": "mlp", "context": 1},
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/her2st")
    ap.add_argument("--recipes", default="plain,context1,context2")
    ap.add_argument("--encoder", default="efficientnet_lite0")
    ap.add_argument("--out", type=Path, default=Path("bench_out/cross_patient"))
    args = ap.parse_args(argv)
    if not Path(args.data).exists():
        print(f"skipped: {args.data} not found (the shared her2st sections)")
        return 0
    logging.basicConfig(level=logging.WARNING)
    from histoexpr.config import STConfig
    from histoexpr.expression.discover import read_cohort
    from histoexpr.st import fit_run

    cohort = read_cohort([args.data])
    k = int(cohort.obs["slide_id"].nunique())
    rows = []
    for name in args.recipes.split(","):
        opts = {"encoder": args.encoder, "split": "section", "k": k, "refit": False,
                **RECIPES[name]}
        cfg = STConfig.resolve(data=[args.data], **opts)
        t0 = time.perf_counter()
        run = fit_run(cfg, args.out / name, adata=cohort, maps=False,
                      feature_cache=args.out / "features")
        wall = time.perf_counter() - t0
        s = pd.read_csv(run.summary)
        s = s[(s["fold"] == "mean") & (s["role"] == "cv")].set_index("entry")["pearson_mean"]
        model = float(s[f"{cfg.model}+smooth" if cfg.smooth else cfg.model])
        colour = float(s[next(e for e in s.index if "colour" in e)])
        random = float(s[next(e for e in s.index if e.endswith("-random"))])
        rows.append({"recipe": name, "model": model, "colour": colour, "random-init": random,
                     "margin vs colour": model - colour, "margin vs random": model - random,
                     "wall s": wall})
        print(f"{name}: {model:.3f} (colour {colour:.3f}, random {random:.3f})", flush=True)
    table = pd.DataFrame(rows).set_index("recipe")
    print(f"\nleave-one-section-out, {k} sections of one patient, top-250 genes, "
          f"{args.encoder} + ridge unless named; mean Pearson r (fold mean)")
    print(table.round(3).to_string())
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "table.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
