"""``histoexpr predict-slide``: whole-slide expression maps from a spatial run.

    histoexpr predict-slide SLIDE --model RUN --out DIR [--genes A,B] [--n-maps 6]
                            [--device cuda] [--batch-size 64] [--stride PX] [--mpp 0.5]
                            [--features EMBED/<slide>.h5]

Tiles the slide's tissue at the run's spot patch (its µm/px), embeds the tiles with the
run's encoder, predicts every tile with the run's final spot-level model and writes
``DIR/<slide>.h5ad`` (tiles x genes), ``DIR/maps/<gene>.png`` (heatmaps over the
thumbnail), ``DIR/maps/<gene>.ome.tif`` (pyramidal overlays at ``--map-mpp`` µm/px
that QuPath / napari align with the slide), ``DIR/<slide>.geojson`` (tiles with
predictions; QuPath: File > Import objects)
and ``DIR/predict_slide.json`` (seconds per stage, tiles, pixel sizes, warnings). With
``--features`` the tiles and embeddings of ``histoexpr embed`` are used instead (checked
against the run's encoder, tile size, µm/px and stain).

Several slides, or ``--manifest slides.csv`` (a ``slide`` column, optionally ``slide_mpp``
and ``features``), write ``DIR/<slide>/`` each and ``DIR/run.json``; with a manifest each
slide is one Dask task (``--workers``, ``--scheduler``). Slides done are skipped by a rerun.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import add_common, add_dask_options, report_failures


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict-slide", help="whole-slide expression maps from an st run",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("slides", type=Path, nargs="*", metavar="SLIDE",
                   help="whole-slide image(s)")
    p.add_argument("--manifest", type=Path, default=None,
                   help="CSV of slides (columns slide[,slide_mpp,features]); runs on Dask")
    p.add_argument("--model", required=True, type=Path, metavar="RUN",
                   help="run folder of `histoexpr st fit` (with final/), or its "
                        "`histoexpr export-model` file")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--genes", default=None,
                   help="genes to map, comma separated (default: the run's best)")
    p.add_argument("--n-maps", type=int, default=6, help="how many best genes to map (6)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--batch-size", type=int, default=None, help="default: the run's")
    p.add_argument("--num-workers", type=int, default=0, help="tile-reading processes")
    p.add_argument("--stride", type=int, default=None,
                   help="grid step in model pixels (default: the tile size)")
    p.add_argument("--mpp", type=float, default=None,
                   help="the slide's µm/px when the file records none")
    p.add_argument("--min-tissue", type=float, default=0.5,
                   help="minimum tissue fraction of a tile (0.5)")
    p.add_argument("--features", type=Path, default=None, metavar="H5",
                   help="this slide's `histoexpr embed` file (the run's encoder, tile size "
                        "and µm/px): skip tiling and embedding")
    p.add_argument("--map-mpp", type=float, default=8.0,
                   help="µm/px of the maps/<gene>.ome.tif overlays (8); 0: write none")
    p.add_argument("--spatialdata", action="store_true",
                   help="also write OUT/<slide>.zarr, a SpatialData store (the slide as a "
                        "multiscale image, tiles as squares, predictions as the table)")
    p.add_argument("--spatialdata-mpp", type=float, default=None, metavar="UM",
                   help="with --spatialdata: store the slide's pyramid level nearest UM µm/px "
                        "instead of full resolution")
    p.add_argument("--overwrite", action="store_true",
                   help="several slides: redo slides that are done")
    add_dask_options(p)
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..st.predict_slide import predict_slide

    genes = [g for g in args.genes.split(",") if g] if args.genes else None
    options = {"genes": genes, "n_maps": args.n_maps, "batch_size": args.batch_size,
               "device": args.device, "num_workers": args.num_workers,
               "stride": args.stride, "min_tissue": args.min_tissue,
               "map_mpp": args.map_mpp or None, "spatialdata": args.spatialdata,
               "spatialdata_mpp": args.spatialdata_mpp}
    if args.manifest is not None or len(args.slides) != 1:
        return _cohort(args, options)
    res = predict_slide(args.slides[0], args.model, out=args.out, mpp=args.mpp,
                        features=args.features, quiet=args.quiet, **options)
    total = sum(res.stages.values())
    times = ", ".join(f"{k} {v:.1f}s" for k, v in res.stages.items())
    print(f"{res.n_tiles} tiles x {res.adata.n_vars} genes in {total:.1f} s ({times}) -> "
          f"{args.out}")
    return 0


def _cohort(args: argparse.Namespace, options: dict) -> int:
    from ..errors import InputError
    from ..st.predict_cohort import predict_cohort

    if args.features is not None:
        raise InputError("--features is one slide's file; with several slides give a "
                         "`features` column in --manifest")
    results = predict_cohort(args.slides, run=args.model, out=args.out,
                             manifest=args.manifest, workers=args.workers,
                             scheduler=args.scheduler, overwrite=args.overwrite,
                             slide_mpp=args.mpp, **options)
    counts = {s: sum(r.status == s for r in results) for s in ("done", "done before", "failed")}
    print(f"done {counts['done']} · skipped {counts['done before']} · failed "
          f"{counts['failed']} -> {args.out}")
    return report_failures([(r.name, r.message) for r in results if r.status == "failed"],
                           total=len(results))
