"""``histoexpr st``: the spatial-transcriptomics workflow.

    histoexpr st fit --data DIR... [--encoder efficientnet_lite0] [--model ridge|mlp|cnn_aux]
                     [--genes top250|hvg50|FILE|A,B,C] [--split patient|section] --out RUN
    histoexpr st evaluate RUN [--genes A,B]
    histoexpr st predict RUN --image IMG --spots FILE [--counts FILE] [--out DIR]

``fit`` reads the sections (her2st-style folders, Space Ranger outputs, .h5ad files, or a
JSON list of section specs), filters spots (counts, white patches), cross-validates the model
with splits grouped by patient (or section), choosing genes on each training fold, beside
three baselines (mean predictor, colour histograms, random-init encoder), then refits the
model on all training spots. Rerunning the same command resumes an interrupted run.
``evaluate`` rewrites metrics.csv, summary.csv, uncertainty.json and the maps; ``predict``
maps a new section with per-spot intervals, and scores it when its counts are given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import STConfig, config_from_args
from . import add_common, add_dask_options, report_failures, table_console
from .steps import add_fit_step, add_steps, cell


def _fit_options(f: argparse.ArgumentParser) -> None:
    f.add_argument("--feature-cache", type=Path, default=None,
                   help="share spot features between runs (default RUN/features)")
    f.add_argument("--no-maps", dest="maps", action="store_false",
                   help="skip the maps (draw them later with st evaluate)")
    f.add_argument("--spatialdata", action="store_true",
                   help="also write the held-out predictions as a SpatialData store, "
                        "RUN/predictions.zarr (H&E, spots, measured and predicted)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    ss = add_steps(sub, "st", help="spatial transcriptomics: fit, evaluate, predict",
                   description=__doc__)
    add_fit_step(ss, STConfig, help="cross-validate a spot model and its baselines",
                 description=__doc__, run=run_fit, options=_fit_options)

    e = ss.add_parser("evaluate", help="metrics, summary table and maps of a run")
    e.add_argument("run", type=Path, metavar="RUN")
    e.add_argument("--genes", default=None, help="genes to map, comma separated")
    e.add_argument("--no-maps", dest="maps", action="store_false")
    e.add_argument("--spatialdata", action="store_true",
                   help="also write RUN/predictions.zarr (SpatialData)")
    add_common(e)
    e.set_defaults(func=run_evaluate)

    pr = ss.add_parser("predict", help="predict a new section (image + spots) with a run")
    pr.add_argument("run", type=Path, metavar="RUN",
                    help="run folder of `st fit`, or its `histoexpr export-model` file")
    pr.add_argument("--image", type=Path, default=None, help="the section's H&E image")
    pr.add_argument("--spots", type=Path, default=None,
                    help="spot table (legacy ST selection, Visium tissue_positions, CSV x,y)")
    pr.add_argument("--manifest", type=Path, default=None,
                    help="CSV of sections (columns image, spots[, section, mpp, counts]) "
                         "instead of --image/--spots: one Dask task per section; a rerun "
                         "skips the sections done")
    pr.add_argument("--overwrite", action="store_true",
                    help="with --manifest: redo sections that are done")
    pr.add_argument("--mpp", type=float, default=None,
                    help="image µm/px (default: from the legacy-ST spot grid)")
    pr.add_argument("--section", default=None, help="section id (default: image name)")
    pr.add_argument("--genes", default=None, help="genes to map, comma separated")
    pr.add_argument("--out", type=Path, default=None, help="output folder (RUN/predict)")
    pr.add_argument("--spatialdata", action="store_true",
                    help="also write OUT/<section>.zarr, a SpatialData store (H&E as a "
                         "multiscale image, spots as circles, predictions table)")
    pr.add_argument("--counts", type=Path, default=None,
                    help="the section's measured counts (spots x genes table as legacy ST, "
                         ".h5ad, 10x .h5 or matrix folder; spot ids as in --spots): score the "
                         "predictions per gene and map truth, prediction and uncertainty")
    add_dask_options(pr)
    add_common(pr)
    pr.set_defaults(func=run_predict)


def print_summary(summary, *, title: str) -> None:
    """The summary table (one row per model: the mean over folds, plus the held-out set).
    A mean predictor has no correlation (constant predictions): its r columns show "—" and
    R²/RMSE compare it."""
    import math

    from rich.table import Table

    def genes(r) -> str:  # scored / predicted when some r are undefined (constant genes)
        n, k = r["n_genes"], r.get("n_scored", r["n_genes"])
        if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in (n, k)):
            return "—"
        return f"{k:.0f}" if abs(k - n) < 1e-9 else f"{k:.3g}/{n:.0f}"

    rows = summary[(summary["fold"].astype(str) == "mean") | (summary["role"] == "holdout")]
    t = Table(title=title)
    for c in ("model", "features", "role", "fold", "genes scored", "PCC mean", "PCC median",
              "r>0", "r>0.3", "top10", "q<0.05", "R²", "RMSE", "CPU s/fold"):
        t.add_column(c, justify="left" if c in ("model", "features", "role", "fold")
                     else "right")
    for _, r in rows.iterrows():
        t.add_row(str(r["model"]), str(r["features"]), str(r["role"]), str(r["fold"]),
                  genes(r), cell(r["pearson_mean"]), cell(r["pearson_median"]),
                  cell(r["n_pearson_r_gt_0"], ".0f"), cell(r["n_pearson_r_gt_0.3"], ".0f"),
                  cell(r["pearson_top10_mean"]), cell(r["n_pearson_q_lt_0.05"], ".0f"),
                  cell(r["r2_mean"]), cell(r["rmse_mean"]), cell(r["cpu_s"], ".1f"))
    console = table_console()
    console.print(t)
    if "n_scored" in rows and (rows["n_scored"] < rows["n_genes"]).any():
        console.print("genes scored: k/n means Pearson r is undefined for n-k genes constant "
                      "in the test spots (a mean predictor is constant for every gene); the "
                      "PCC columns average the k scored genes", highlight=False)


def run_fit(args: argparse.Namespace) -> int:
    from ..st import fit_run

    cfg = config_from_args(STConfig, args)
    run = fit_run(cfg, args.out, overwrite=args.overwrite, maps=args.maps,
                  feature_cache=args.feature_cache, spatialdata=args.spatialdata)
    import pandas as pd

    summary = pd.read_csv(run.summary)
    split = json.loads(run.splits.read_text())
    print_summary(summary, title=f"split by {split['by']}, "
                  f"{len(split['fold_test_groups'])} folds: mean over folds")
    made = [n for n, p in (("metrics.csv", run.metrics), ("summary.csv", run.summary),
                           ("maps/", run.maps), ("final/", run.final), ("report.html",
                           run.report), ("predictions.zarr",
                                         run.path / "predictions.zarr")) if p.exists()]
    print(f"run folder: {run.path}  ({', '.join(made)})")
    return 0


def _predict_manifest(args: argparse.Namespace, genes: list[str] | None) -> int:
    from ..errors import InputError
    from ..st.predict_cohort import predict_sections

    given = [f for f in ("image", "spots", "counts", "section", "mpp")
             if getattr(args, f) is not None]
    if given:
        raise InputError(f"--manifest lists the sections; drop --{', --'.join(given)} (give "
                         "them as manifest columns)")
    out = args.out or Path(args.run) / "predict"
    results = predict_sections(args.manifest, run=args.run, out=out, genes=genes,
                               workers=args.workers, scheduler=args.scheduler,
                               overwrite=args.overwrite)
    counts = {s: sum(r.status == s for r in results) for s in ("done", "done before", "failed")}
    print(f"done {counts['done']} · skipped {counts['done before']} · failed "
          f"{counts['failed']} -> {out}")
    return report_failures([(r.name, r.message) for r in results if r.status == "failed"],
                           total=len(results))


def run_evaluate(args: argparse.Namespace) -> int:
    from ..st import evaluate_run

    genes = args.genes.split(",") if args.genes else None
    summary = evaluate_run(args.run, map_genes=genes, maps=args.maps,
                           spatialdata=args.spatialdata)
    print_summary(summary, title="mean over folds")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..st import predict_section

    genes = args.genes.split(",") if args.genes else None
    if args.manifest is not None:
        return _predict_manifest(args, genes)
    if args.image is None or args.spots is None:
        raise InputError("give the section's --image and --spots, or --manifest sections.csv")
    from ..runner import check_cohort_inputs

    check_cohort_inputs([args.image], None, dask_options=args.workers is not None
                        or args.scheduler is not None, what="sections", example="sections.csv")
    res = predict_section(args.run, args.image, args.spots, out=args.out, mpp=args.mpp,
                          section=args.section, genes=genes, counts=args.counts,
                          spatialdata=args.spatialdata)
    out = args.out or Path(args.run) / "predict"
    interval = res.uns.get("interval", {}).get("method")
    print(f"{res.n_obs} spots x {res.n_vars} genes predicted"
          + (f" with {interval} intervals" if interval else "") + f" -> {out}")
    if args.counts is not None:
        from .. import _keys as K
        from ..runs import files

        section = str(res.obs[K.SLIDE_ID].iloc[0])
        m = json.loads((out / files.PREDICT_SCORES.format(section=section)).read_text())
        text = (f"{section}: {m['n_scored_genes']} genes scored on {m['n_scored_spots']} "
                f"spots, mean Pearson r {cell(m['pearson_mean'])}, mean Spearman r "
                f"{cell(m['spearman_mean'])}")
        if m["missing_genes"]:
            text += f" ({len(m['missing_genes'])} genes not in the counts)"
        if interval:
            text += (f"; {100 * m['nominal_coverage']:.0f} % intervals cover "
                     f"{100 * m['coverage']:.1f} %")
        print(text)
    return 0
