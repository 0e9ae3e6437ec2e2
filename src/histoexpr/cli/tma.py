"""``histoexpr tma``: tissue microarrays.

    histoexpr tma dearray SLIDE --out cores.csv [--core-diameter UM] [--mpp M]
    histoexpr tma predict RUN --features SLIDE.h5 --cores cores.csv [--core-map map.csv]
                          [--out DIR]

``dearray`` finds the cores of a TMA slide and names them by grid position (``B-7``, as
QuPath's TMA dearrayer does); ``predict`` runs a bulk run's final model on each core's tiles
(the slide tiled and embedded as a whole) and averages each patient's cores, with a core
map (CSV core,patient; QuPath's Name / Unique ID export works too).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import add_common
from .steps import add_steps


def add_parser(sub: argparse._SubParsersAction) -> None:
    ss = add_steps(sub, "tma", help="tissue microarrays: find cores, predict per core and "
                   "patient", description=__doc__)
    d = ss.add_parser("dearray", help="find and name the cores of a TMA slide")
    d.add_argument("slide", type=Path, metavar="SLIDE")
    d.add_argument("--out", required=True, type=Path, help="cores CSV")
    d.add_argument("--core-diameter", type=float, default=None, metavar="UM",
                   help="expected core diameter in µm (default: the typical tissue region)")
    d.add_argument("--mpp", type=float, default=None,
                   help="level-0 µm per pixel, for files that do not record it")
    add_common(d)
    d.set_defaults(func=run_dearray)
    r = ss.add_parser("predict", help="a bulk run's model per core and per patient")
    r.add_argument("run", type=Path, metavar="RUN")
    r.add_argument("--features", required=True, type=Path, help="the TMA slide's feature file")
    r.add_argument("--cores", required=True, type=Path, help="cores CSV from tma dearray")
    r.add_argument("--core-map", type=Path, default=None, help="CSV core,patient")
    r.add_argument("--out", type=Path, default=None, help="folder (default RUN/predict)")
    add_common(r)
    r.set_defaults(func=run_predict)


def run_dearray(args: argparse.Namespace) -> int:
    from ..atomic import write_csv
    from ..slide import open_slide
    from ..tiling.tma import dearray

    cores = dearray(open_slide(args.slide, mpp=args.mpp),
                    core_diameter_um=args.core_diameter)
    write_csv(args.out, cores, index=False)
    print(f"{len(cores)} cores in {cores['row'].nunique()} rows -> {args.out}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from ..bulk.tma import predict_tma

    cores, patients = predict_tma(args.run, args.features, args.cores, core_map=args.core_map,
                                  out=args.out)
    print(f"{len(cores)} cores, {len(patients)} patients predicted")
    return 0
