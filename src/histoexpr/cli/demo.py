"""``histoexpr demo --out DIR``: the whole pipeline on data it generates itself.

Generates six legacy-ST sections (three patients, 10 x 10 spots, 40 genes) and a whole
slide, in which ten genes follow the *shape* of the nuclei (size and elongation, at constant
nuclear coverage) and thirty are noise, so only a model that sees shape can find the signal;
colour histograms cannot. Each patient (and the slide, a fourth one) is stained and scanned
in its own way (stain vectors and amounts, glass tint, scanner gamma, brightness and blur;
``--stain-shift`` sets how much, 0 for none), so features must also carry over to a
held-out patient's colours. Then runs, as a user would:

1. ``histoexpr st fit``   patient-grouped 3-fold CV of a ridge probe on efficientnet_lite0
                          (ImageNet weights) spot features with st fit's default recipe
                          (the 112 µm patch beside 224 and 448 µm ones, and the mean of the
                          grid neighbours within 2 steps), beside the mean predictor, colour
                          histograms and a random-init encoder given the same, and the
                          final model;
2. ``histoexpr st evaluate``  metrics and spatial maps;
3. ``histoexpr report``   the run's HTML report;
4. ``histoexpr predict-slide``  expression maps of the whole slide: its tissue tiled at
                          112 µm, each tile embedded at the run's three scales.

and ends with the mean Pearson r on the signal and the noise genes per feature set, the
slide-level agreement with the true signal, and the path of the report; it exits 1 when
the model did not find the signal (r > 0.5 and 0.3 above colour histograms). Rerunning
resumes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ..atomic import write_json
from . import add_common


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole pipeline on data it generates itself",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--small", action="store_true",
                   help="a smaller data set (for quick checks; the signal is weaker)")
    p.add_argument("--stain-shift", type=float, default=None, metavar="S",
                   help="how far each patient's stain and scanner departs from the reference "
                        "(default 1: of the order seen between labs; 0: all alike)")
    add_common(p)
    p.set_defaults(func=run)


#: ``--small``: fewer and smaller sections, a smaller slide
SMALL = {"n_sections": 4, "n_patients": 2, "grid": [6, 6], "slide_size": [1536, 1152]}


def _table(scores: dict[str, Any]) -> list[str]:
    rows = [f"  {'model / features':<34} {'signal genes':>12} {'noise genes':>12}"]
    for entry, s in scores["sections"].items():
        sig = "—" if s["signal"] != s["signal"] else f"{s['signal']:.3f}"
        noise = "—" if s["noise"] != s["noise"] else f"{s['noise']:.3f}"
        rows.append(f"  {entry:<34} {sig:>12} {noise:>12}")
    return rows


def _signal_r(scores: dict[str, Any], entry: str) -> float:
    """Mean r over the signal genes of one model / feature set (NaN when absent)."""
    return scores["sections"].get(entry, {}).get("signal", float("nan"))


def signal_found(scores: dict[str, Any]) -> bool:
    """The demo's pass mark: the model finds the signal and beats colour histograms by far."""
    model = _signal_r(scores, "ridge efficientnet_lite0")
    return bool(model > 0.5 and model > _signal_r(scores, "ridge colour_hist") + 0.3)


def _verdict(scores: dict[str, Any]) -> list[str]:
    model = _signal_r(scores, "ridge efficientnet_lite0")
    colour = _signal_r(scores, "ridge colour_hist")
    rand = _signal_r(scores, "ridge efficientnet_lite0-random")
    found = signal_found(scores)
    lines = [f"  {'signal found' if found else 'signal NOT found'}: efficientnet_lite0 r = "
             f"{model:.2f} on the signal genes; colour histograms r = {colour:.2f}, random-init "
             f"encoder r = {rand:.2f}, mean predictor: no correlation"]
    if scores.get("slide"):
        s = scores["slide"]
        lines.append(f"  whole slide: predicted vs true signal across {s['n_tiles']} tiles, "
                     f"mean r = {s['signal']:.2f} over the signal genes")
    return lines


def _truth_map(inp: Any, a: Any, out: Path) -> Path:
    """The first signal gene's true signal over the slide (``a``: predict-slide's AnnData),
    drawn like predict-slide's maps."""
    from ..datasets.demo import slide_truth
    from ..plot import save_figure
    from ..slide import open_slide
    from ..st.predict_slide import tile_heatmap

    gene = inp.signal_genes[0]
    ts = a.uns["tile_spec"]
    with open_slide(inp.slide) as s:
        fig = tile_heatmap(s.thumbnail(1200), s.dimensions, a.obs[["x", "y"]].to_numpy(),
                           ts["size_level0"], ts["stride_level0"], slide_truth(inp, a)[:, 0],
                           gene, s.name, label="true")
    return save_figure(fig, out / f"{gene}.png")


def run(args: argparse.Namespace) -> int:
    from ..datasets.demo import make_demo_inputs, score_demo
    from . import main

    out: Path = args.out
    flags = ["--debug"] if args.debug else []
    flags += ["--quiet"] if args.quiet else []
    t_start = time.perf_counter()
    steps: dict[str, float] = {}

    def step(name: str, argv: list[str]) -> None:
        t0 = time.perf_counter()
        rc = main([*flags, *argv])
        steps[name] = time.perf_counter() - t0
        if rc != 0:
            raise SystemExit(f"demo: `histoexpr {' '.join(argv)}` failed (exit {rc})")

    print(f"[0/4] generating sections and a slide in {out}/inputs")
    t0 = time.perf_counter()
    params = {**(SMALL if args.small else {}), "seed": args.seed}
    if args.stain_shift is not None:
        params["stain_shift"] = args.stain_shift
    inp, new = make_demo_inputs(out / "inputs", **params)
    steps["generate"] = time.perf_counter() - t0
    if not new:
        print("  (reusing the inputs of an earlier run)")
    slide, run_dir = str(inp.slide), out / "run"
    print("[1/4] histoexpr st fit: ridge on efficientnet_lite0 spot features (112, 224 and "
          "448 µm, grid context), patient-grouped 3-fold CV, three baselines")
    step("st fit", ["st", "fit", "--data", str(inp.sections), "--encoder", "efficientnet_lite0",
                    "--patch-px", "112", "--folds", "3", "--split", "patient", "--no-maps",
                    "--out", str(run_dir)])
    import importlib.util

    # SpatialData stores (scverse, napari-spatialdata): `spatialdata` is an install extra
    sdata = ["--spatialdata"] if importlib.util.find_spec("spatialdata") else []
    print("[2/4] histoexpr st evaluate: metrics, spatial maps"
          + (", held-out predictions as SpatialData" if sdata else ""))
    step("st evaluate", ["st", "evaluate", str(run_dir), *sdata])
    print("[3/4] histoexpr report")
    step("report", ["report", str(run_dir)])
    print("[4/4] histoexpr export-model + predict-slide: the run as one portable file, then "
          "expression maps of the whole slide from it")
    model_file = out / "demo_model.histoexpr"
    step("export-model", ["export-model", str(run_dir), str(model_file)])
    step("predict-slide", ["predict-slide", slide, "--model", str(model_file),
                           "--genes", ",".join(inp.signal_genes[:4]),
                           "--out", str(out / "slide_maps"), *sdata])

    import anndata as ad

    from ..errors import InputError
    from ..plot.viewer import build_viewer

    t0 = time.perf_counter()
    try:  # the deep-zoom viewer: libvips and OpenSeadragon are install-time extras
        viewer = build_viewer(out / "slide_maps")
    except InputError as e:
        viewer, why = None, str(e)
    steps["view"] = time.perf_counter() - t0
    pred = ad.read_h5ad(out / "slide_maps" / f"{inp.slide.stem}.h5ad")
    scores = score_demo(inp, run_dir, pred)
    truth_map = _truth_map(inp, pred, out / "slide_maps" / "truth")
    total = time.perf_counter() - t_start
    summary = {"scores": scores, "seconds": {k: round(v, 1) for k, v in steps.items()},
               "total_seconds": round(total, 1), "params": params}
    write_json(out / "demo_summary.json", summary, indent=1)
    print("\nMean cross-validated Pearson r (held-out patients) on the sections:")
    print("\n".join(_table(scores)))
    print("\n".join(_verdict(scores)))
    print(f"  time: {total:.0f} s (" + ", ".join(f"{k} {v:.0f}s" for k, v in steps.items())
          + ")")
    print(f"\nslide maps: {out / 'slide_maps' / 'maps'} (PNG over the thumbnail, and "
          f"OME-TIFF overlays; the true signal: {truth_map})")
    print(f"QuPath objects (every gene a measurement; File > Import objects): "
          f"{out / 'slide_maps' / (inp.slide.stem + '.geojson')}")
    if sdata:
        print(f"SpatialData stores (spatialdata.read_zarr, napari-spatialdata): "
              f"{out / 'slide_maps' / (inp.slide.stem + '.zarr')} (the slide, its tiles and "
              f"predictions) and {run_dir / 'predictions.zarr'} (held-out spot predictions "
              "beside the measured expression)")
    else:
        print("SpatialData stores: not written (pip install 'histoexpr[spatial]')")
    print(f"portable model (st predict / predict-slide take it in place of the run): "
          f"{model_file}")
    print(f"deep-zoom viewer (open in a browser): {viewer}" if viewer is not None
          else f"deep-zoom viewer: not built ({why})")
    print(f"report: {(run_dir / 'report.html').resolve()}")
    return 0 if signal_found(scores) else 1
