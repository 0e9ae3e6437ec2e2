"""``histoexpr tile SLIDE... --out DIR``: tissue → tile coordinates (HDF5) + QC PNG per slide.

Outputs, per tile spec (``<size>px_<mpp>mpp``): ``DIR/<spec>/<slide>.h5`` (``coords``,
CLAM/TRIDENT layout) and ``DIR/<spec>/qc/<slide>.png``; ``DIR/run.json`` records the
resolved settings, package version, the run's status and each slide's status and timings
(tissue detection, tile sampling + filters). Finished slides are skipped on a rerun
(``--overwrite`` redoes them); a slide that fails is reported and the others go on. A run in
which every slide fails leaves the folder as it found it (a new folder is removed). A full
disk or read-only folder stops the run at once (the other slides would fail alike). One run
at a time writes a folder: a second one is refused while the first holds its lock.

With ``--manifest slides.csv`` (a ``slide`` column, optionally ``slide_mpp``) each slide is
one Dask task, on a LocalCluster or a running scheduler (``--scheduler``); a slide whose
worker dies fails alone, and a rerun tiles what is missing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import add_common, add_dask_options, report_failures


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tile", help="find tissue and cut tile coordinates (HDF5 + QC PNG)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("slides", nargs="*", metavar="SLIDE", help="slide files, images or tile folders")
    p.add_argument("--manifest", type=Path, default=None,
                   help="CSV of slides (columns slide[,slide_mpp]); runs on Dask")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--tile-size", type=int, nargs="+", default=[224], metavar="PX",
                   help="tile side in pixels at --mpp; several values tile at several sizes")
    p.add_argument("--mpp", type=float, default=0.5, help="tile pixel size in µm/px (0.5 = 20x)")
    p.add_argument("--stride", type=int, default=None,
                   help="grid step in pixels (default: the tile size)")
    p.add_argument("--slide-mpp", default=None, metavar="MPP|from-spots",
                   help="level-0 µm/px of the slides when the files lack it (JPEG, PNG, tile "
                   "folders); 'from-spots' derives it from a legacy ST spot grid (200 µm pitch)")
    p.add_argument("--spots", type=Path, default=None,
                   help="spot table (Visium tissue_positions, ST selection table, x/y CSV), or a "
                   "folder holding <slide>_selection.tsv / <slide>.csv: spot-centred tiles")
    p.add_argument("--all-spots", action="store_true", help="also spots not under tissue")
    p.add_argument("--heatmap", type=Path, default=None,
                   help="tumour-probability map covering the slide (.npy in [0,1], or 8/16-bit "
                   "image), or a folder of <slide>.npy/.png: heatmap-guided tiles")
    p.add_argument("--n-tiles", type=int, default=None,
                   help="tiles per slide (heatmap: the top N passing the filters, default 10; "
                   "grid: a random N)")
    p.add_argument("--min-prob", type=float, default=0.5, help="heatmap: minimum mean probability")
    p.add_argument("--filter", default="", metavar="white,kmeans",
                   help="pixel filters: white (> 50%% white pixels dropped), kmeans (seed 000)")
    p.add_argument("--kmeans-model", type=Path, default=None,
                   help="K-means filter JSON: reused when it exists, else fitted on the first "
                   "slide and saved here (default DIR/kmeans_filter.json)")
    p.add_argument("--min-tissue", type=float, default=0.5, help="grid: minimum tissue fraction")
    p.add_argument("--tissue", default="otsu", help="tissue detector (otsu, saturation)")
    p.add_argument("--overwrite", action="store_true", help="redo slides that are already done")
    p.add_argument("--no-qc", action="store_true", help="skip the QC PNGs")
    add_dask_options(p)
    add_common(p)
    p.set_defaults(func=run)


def _print_table(res) -> None:
    from rich.table import Table

    from . import table_console

    def secs(v: float) -> str:
        return f"{v:.2f}" if v else "-"

    t = Table(title=f"tiles in {res.out}", title_justify="left",
              caption="tissue s: tissue detection; tiles s: sampling and filters",
              caption_justify="left")
    cols = ("slide", "tiles of", "status", "tissue %", "candidates", "tiles", "tissue s",
            "tiles s", "total s")
    for col in cols:
        t.add_column(col, justify="left" if col in cols[:4] else "right",
                     overflow="fold")
    for o in res.outcomes:
        pct = "-" if o.tissue_pct is None else f"{o.tissue_pct:.1f}"
        t.add_row(o.slide, o.spec, o.status, pct, str(o.n_candidates or "-"), str(o.n_tiles),
                  secs(o.tissue_seconds), secs(o.tiles_seconds), f"{o.seconds:.1f}")
    table_console().print(t)
    print(f"run record: {res.record}")


def run(args: argparse.Namespace) -> int:
    from ..tiling import TileSpec
    from ..workflows import tile_cohort

    res = tile_cohort(
        args.slides, out=args.out,
        specs=[TileSpec(int(s), float(args.mpp), args.stride) for s in args.tile_size],
        slide_mpp=args.slide_mpp, spots=args.spots, all_spots=args.all_spots,
        heatmap=args.heatmap, n_tiles=args.n_tiles, min_prob=args.min_prob,
        filters=args.filter, kmeans_model=args.kmeans_model, min_tissue=args.min_tissue,
        tissue=args.tissue, overwrite=args.overwrite, qc=not args.no_qc,
        progress=not args.quiet, manifest=args.manifest, workers=args.workers,
        scheduler=args.scheduler)
    if res.record is not None and not args.quiet:
        _print_table(res)
    return report_failures(res.failed, total=res.n_slides)
