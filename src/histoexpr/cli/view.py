"""``histoexpr view``: an interactive deep-zoom viewer of a predict-slide output (tiles) or
an st predict output (spots; with their measured values when --counts was given), or a
SpatialData store that --spatialdata wrote (held-out predictions beside the measured ones).

    histoexpr view OUT [--slide SLIDE] [--genes A,B] [--dest DIR]

Builds DIR (default OUT/viewer): the full-resolution H&E as a Deep Zoom pyramid (libvips
``dzsave``), one layer per predicted gene over it, and an OpenSeadragon page with a gene
picker, an opacity slider, a colour bar and the values of the tile under the pointer. Open
DIR/index.html in a browser, or serve it: ``python -m http.server -d DIR``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import add_common


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("view", help="deep-zoom viewer of predict-slide or st predict output",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, metavar="OUT",
                   help="a predict-slide output folder, an st predict output (its folder "
                        "when it holds one section, else <section>_predictions.h5ad), or a "
                        "SpatialData store (--spatialdata)")
    p.add_argument("--slide", type=Path, default=None,
                   help="the slide (default: the path the predictions record)")
    p.add_argument("--genes", default=None, help="genes to layer, comma separated "
                   "(default: all, or the mapped genes on very large slides)")
    p.add_argument("--dest", type=Path, default=None, help="viewer folder (OUT/viewer)")
    p.add_argument("--section", default=None,
                   help="a SpatialData store of several sections: the one to view")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..plot.viewer import build_viewer

    page = build_viewer(args.out, dest=args.dest, slide=args.slide, section=args.section,
                        genes=[g for g in args.genes.split(",") if g] if args.genes else None)
    print(f"viewer: {page} (open it, or `python -m http.server -d {page.parent}`)")
    return 0
