"""Levers for sections the model never saw, against the colour and random-init baselines of
the same run (issue 20's yardstick).

**(a) Leave-one-section-out** over the shared her2st sections of patient C (one section per
fold, ``--split section``, k = number of sections): each recipe is one ``st fit`` run whose
baselines (colour histograms and the random-init encoder, both through the same head and the
same context) share its folds, genes (top 250 by mean, chosen on each training fold) and
spot filters (with ``smooth``, the model's column is its smoothed predictions, the
strength chosen on the other folds). Its rows give the fold-mean of the mean Pearson r over
the genes for the model and the two baselines, and the model's margin over each.

**(b) Stain shift**: each recipe is one ``st fit`` run trained on ``--train`` (C2, C3, C4;
an inner leave-one-section-out on them) that scores, as held-out groups, the ``--test``
sections (C5, C6) as they are and three re-stained copies of them (``stain_shift.py``):
``svs``, Macenko re-staining onto the stain vectors of another slide (``--target``, the
CMU-1 skin H&E), and ``hed-light`` / ``hed-strong``, HED jitter of strength 0.05 / 0.2
(Tellez et al. 2019) drawn once per section. The spot filters (counts, white patches) are
applied to the original images, and each copy scores the spots its original keeps (a
bleaching shift would otherwise drop spots as white and change what is scored). The genes
(top 250) are chosen on the training spots; each condition's mean Pearson r is taken per
test section, then averaged over the test sections; ``model loss`` / ``colour loss`` are
the drops from the ``original`` row. A lever that makes features stain-robust loses little
while the colour baseline collapses.

With one patient both are within-patient splits: colour does well on (a) (the sections
share a stain), so the margins, not the absolute numbers, say whether a lever helps.

The run folders under ``--out`` are the benchmark's own: a rerun resumes them, and one
whose config changed (e.g. a new ``st fit`` option) is started again (``overwrite``); the
features stay cached under ``OUT/features*``.

    python benchmarks/bench_cross_patient.py [--part ab] [--data ../shared/data/her2st]
        [--recipes plain,tta,context2,tta+context2,macenko] [--out bench_out/cross_patient]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import stain_shift  # beside this file: the script's folder is on sys.path

#: st fit options every recipe starts from: the probe alone (st fit's defaults now hold the
#: recommended recipe, multiscale+context2, so "plain" turns them off)
PLAIN = {"context": 0, "scales": ()}
#: recipe name -> st fit options (over PLAIN and the shared ones)
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
    "context2-attention": {"context": 2, "context_attention": True},
    "multiscale": {"scales": (224.0, 448.0)},  # 112 (the patch) + 224 + 448 µm
    "multiscale+context2": {"scales": (224.0, 448.0), "context": 2},
    "ensemble": {"ensemble_encoders": ("efficientnet_lite1", "efficientnet_lite2")},
    "ensemble+context2": {"ensemble_encoders": ("efficientnet_lite1", "efficientnet_lite2"),
                          "context": 2},
    "smooth-targets": {"smooth_targets": 0.5},
    "context2+smooth-targets": {"context": 2, "smooth_targets": 0.5},
    "macenko": {"stain": "macenko"},  # every patch normalised to the first section's stain
    "stain-aug": {"stain_augment": "light"},
    "stain-aug+tta+context2": {"stain_augment": "light", "tta": True, "context": 2},
}
#: options that change a section's features under the same cache key: such recipes cache
#: theirs apart (a shared cache would swap one recipe's features for the other's at every
#: run); stain-augmented copies have keys of their own
_FEATURE_OPTIONS = ("stain",)
#: the spot filters (st fit's defaults), applied in (b) to the original images only
SPOT_FILTERS = {"min_counts": 1000.0, "max_white": 0.5}
COLUMNS = ["model", "colour", "random-init", "margin vs colour", "margin vs random",
           "model loss", "colour loss", "wall s"]


def _unknown_options(opts: dict) -> list[str]:
    from histoexpr.config import STConfig

    known = {f.name for f in dataclasses.fields(STConfig)}
    return sorted(set(opts) - known)


def _feature_cache(out: Path, opts: dict, part: str = "a") -> Path:
    """The feature cache of a recipe in one part: part (b) keeps its own, since its spots of
    C2-C6 (kept on the original images' filters) are not exactly part (a)'s, and one
    shared cache would recompute each section's features at every switch."""
    tags = [f"{k}-{opts[k]}" for k in _FEATURE_OPTIONS if k in opts]
    return out / "-".join(["features", *tags, *(["shift"] if part == "b" else [])])


def _entry_keys(run) -> dict[str, str]:
    """Column -> entry key of a run: the main model, the colour and the random baselines."""
    plan = run.read_json(run.models_json)
    out = {"model": next(e["key"] for e in plan if e["kind"] == "model")}
    for e in plan:
        if e["features"] == "colour_hist":
            out["colour"] = e["key"]
        elif e["kind"] == "baseline" and e["features"].endswith("-random"):
            out["random-init"] = e["key"]
    return out


def _row(scores: dict[str, float], wall: float | None = None) -> dict[str, float]:
    m = scores["model"]
    return {"model": m, "colour": scores["colour"], "random-init": scores["random-init"],
            "margin vs colour": m - scores["colour"],
            "margin vs random": m - scores["random-init"],
            "wall s": np.nan if wall is None else wall}


def part_a(args, name: str, opts: dict, cohort) -> dict[str, float]:
    """Leave-one-section-out of one recipe: its table row."""
    from histoexpr.config import STConfig
    from histoexpr.st import fit_run

    k = int(cohort.obs["slide_id"].nunique())
    cfg = STConfig.resolve(data=[args.data], encoder=args.encoder, split="section", k=k,
                           refit=False, **{**PLAIN, **opts})
    t0 = time.perf_counter()
    run = fit_run(cfg, args.out / name, adata=cohort, maps=False, overwrite=True,
                  feature_cache=_feature_cache(args.out, opts))
    wall = time.perf_counter() - t0
    s = pd.read_csv(run.summary)
    s = s[(s["fold"] == "mean") & (s["role"] == "cv")].set_index("entry")["pearson_mean"]
    keys = _entry_keys(run)
    if cfg.smooth:
        keys["model"] = f"{keys['model']}+smooth"
    return _row({c: float(s[key]) for c, key in keys.items()}, wall)


def shift_cohort(args, log=print):
    """The stain-shift cohort: training and test sections as they are, plus the test
    sections' re-stained copies (made, or reused, under ``OUT/stain_shift``)."""
    from histoexpr.config import STConfig
    from histoexpr.expression.discover import read_cohort
    from histoexpr.st.data import load_spot_data

    train, test = args.train.split(","), args.test.split(",")
    root = args.out / "stain_shift"
    target = None
    paths = [args.data]
    for cond in stain_shift.CONDITIONS[1:]:
        if cond == "svs" and target is None and not all(
                (root / cond / "images" / f"{s}.jpg").is_file() for s in test):
            target = stain_shift.target_normaliser(args.target)
        folder = stain_shift.make_condition(args.data, root, cond, test, target=target,
                                            target_path=str(args.target), seed=args.seed,
                                            log=log)
        paths.append(f"{cond}={folder}")
    cohort = read_cohort(paths)
    copies = [f"{c}_{s}" for c in stain_shift.CONDITIONS[1:] for s in test]
    # the spot filters on the original images: a copy keeps the spots its original keeps
    # (a bleaching shift would otherwise drop spots as white, and change what is scored)
    kept = set(load_spot_data(STConfig.resolve(**SPOT_FILTERS),
                              _sections(cohort, {*train, *test})).adata.obs_names)
    bare = cohort.obs_names.str.split("_", n=1).str[-1].where(
        cohort.obs["slide_id"].astype(str).isin(copies), cohort.obs_names)
    cohort = _sections(cohort[np.asarray(bare.isin(kept))], {*train, *test, *copies})
    return cohort, paths, [*test, *copies]


def _sections(cohort, keep: set[str]):
    """The spots of the ``keep`` sections, a copy."""
    out = cohort[cohort.obs["slide_id"].astype(str).isin(keep)].copy()
    out.uns["sections"] = {s: v for s, v in out.uns["sections"].items() if s in keep}
    return out


def part_b(args, name: str, opts: dict, cohort, paths: list[str], held: list[str]
           ) -> dict[str, dict[str, float]]:
    """The stain-shift run of one recipe: a row per condition."""
    from histoexpr.config import STConfig
    from histoexpr.st import fit_run

    cfg = STConfig.resolve(data=paths, encoder=args.encoder, split="section", k=args.inner_k,
                           refit=False, holdout=held,
                           **{**PLAIN, **opts, "max_white": 1.0})
    t0 = time.perf_counter()
    run = fit_run(cfg, args.out / "stain_shift" / "runs" / name, adata=cohort, maps=False,
                  overwrite=True, feature_cache=_feature_cache(args.out, opts, "b"))
    wall = time.perf_counter() - t0
    scores, n = stain_shift.condition_scores(run.path, _entry_keys(run), args.test.split(","),
                                             stain_shift.CONDITIONS, smooth=cfg.smooth)
    rows = {}
    for cond in stain_shift.CONDITIONS:
        row = _row(scores.loc[cond].to_dict(), wall if cond == "original" else None)
        row["model loss"] = scores.loc["original", "model"] - row["model"]
        row["colour loss"] = scores.loc["original", "colour"] - row["colour"]
        rows[cond] = row
    print(f"  {n} spots per condition scored", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/her2st")
    ap.add_argument("--part", default="ab", choices=("a", "b", "ab"),
                    help="a: leave-one-section-out; b: the stain-shift test; ab: both")
    ap.add_argument("--recipes", default="plain,context2,multiscale,multiscale+context2,tta,"
                    "tta+context2,macenko",
                    help=f"comma list of {', '.join(RECIPES)}")
    ap.add_argument("--encoder", default="efficientnet_lite0")
    ap.add_argument("--train", default="C2,C3,C4", help="(b) training sections")
    ap.add_argument("--test", default="C5,C6", help="(b) test sections, also re-stained")
    ap.add_argument("--target", type=Path,
                    default=Path("../shared/data/wsi/CMU-1-Small-Region.svs"),
                    help="(b) the slide whose stain vectors the svs condition takes")
    ap.add_argument("--inner-k", type=int, default=3, help="(b) folds on the training sections")
    ap.add_argument("--seed", type=int, default=0, help="(b) seed of the HED draws")
    ap.add_argument("--out", type=Path, default=Path("bench_out/cross_patient"))
    args = ap.parse_args(argv)
    if not Path(args.data).exists():
        print(f"skipped: {args.data} not found (the shared her2st sections)")
        return 0
    logging.basicConfig(level=logging.WARNING)
    from histoexpr.expression.discover import read_cohort

    recipes = []
    for name in args.recipes.split(","):
        missing = _unknown_options(RECIPES[name])
        if missing:
            print(f"{name}: skipped, st fit has no option {', '.join(missing)} yet")
        else:
            recipes.append(name)
    rows = {}
    if "a" in args.part:
        cohort = read_cohort([args.data])
        for name in recipes:
            r = part_a(args, name, RECIPES[name], cohort)
            rows[(name, "LOSO")] = r
            print(f"{name} LOSO: {r['model']:.3f} (colour {r['colour']:.3f}, random "
                  f"{r['random-init']:.3f}) in {r['wall s']:.0f} s", flush=True)
    if "b" in args.part:
        t0 = time.perf_counter()
        cohort, paths, held = shift_cohort(args)
        print(f"stain-shift cohort ready in {time.perf_counter() - t0:.0f} s", flush=True)
        for name in recipes:
            for cond, r in part_b(args, name, RECIPES[name], cohort, paths, held).items():
                rows[(name, cond)] = r
                print(f"{name} {cond}: {r['model']:.3f} (colour {r['colour']:.3f}, random "
                      f"{r['random-init']:.3f})", flush=True)
    if not rows:
        return 0
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.names = ["recipe", "test"]
    table = table.reindex(columns=COLUMNS)
    print(f"\nmean Pearson r over the top-250 genes (chosen on the training spots), "
          f"{args.encoder} + ridge unless named; LOSO: leave-one-section-out over the "
          f"sections of one patient (fold mean); original/svs/hed-*: trained on {args.train}, "
          f"tested on {args.test} as they are and re-stained (mean over the test sections); "
          f"loss = original - this row; wall s: this invocation's fit_run (a resumed run only "
          f"re-reads its features and re-scores)")
    print(table.round(3).to_string(na_rep=""))
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / f"table_{args.part}.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
