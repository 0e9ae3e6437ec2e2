"""``histoexpr info SLIDE...``: dimensions, levels, mpp, vendor and the reader used."""

from __future__ import annotations

import argparse
import json

from . import add_common


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe slides (size, levels, mpp, vendor, reader)",
                       description=__doc__)
    p.add_argument("slides", nargs="+", metavar="SLIDE", help="slide files, images or tile folders")
    p.add_argument("--mpp", type=float, default=None,
                   help="level-0 microns per pixel, for files that do not record it")
    p.add_argument("--reader", default=None, help="force a reader (openslide, tiffslide, ...)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..slide import open_slide

    infos = []
    for path in args.slides:
        with open_slide(path, mpp=args.mpp, reader=args.reader) as s:
            infos.append(s.info())
    if args.json:
        print(json.dumps(infos if len(infos) > 1 else infos[0], indent=1))
        return 0
    console = Console()
    for d in infos:
        t = Table(title=str(d["path"]), show_header=False, title_justify="left")
        t.add_row("reader", str(d["reader"]))
        t.add_row("vendor", str(d["vendor"]))
        t.add_row("dimensions", "{} x {} px".format(*d["dimensions"]))
        t.add_row("mpp", f"{d['mpp']} µm/px")
        t.add_row("levels", str(d["level_count"]))
        for i, (dim, ds) in enumerate(zip(d["level_dimensions"], d["level_downsamples"])):
            t.add_row(f"  level {i}", f"{dim[0]} x {dim[1]} px, downsample {ds}")
        console.print(t)
    return 0
