"""``histoexpr info SLIDE...``: dimensions, levels, mpp, vendor and the reader used.
``histoexpr info --encoders``: the encoder cards, and where each one's weights resolve now."""

from __future__ import annotations

import argparse

from ..atomic import dumps
from . import add_common, table_console


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe slides (size, levels, mpp, vendor, reader)",
                       description=__doc__)
    p.add_argument("slides", nargs="*", metavar="SLIDE", help="slide files, images or tile folders")
    p.add_argument("--encoders", action="store_true",
                   help="list the encoder cards and where their weights resolve")
    p.add_argument("--mpp", type=float, default=None,
                   help="level-0 microns per pixel, for files that do not record it")
    p.add_argument("--reader", default=None, help="force a reader (openslide, tiffslide, ...)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_common(p)
    p.set_defaults(func=run)


def encoder_rows() -> list[dict]:
    """One row per encoder card, with the source its weights resolve to now (no download)."""
    import logging

    from ..errors import HistoexprError
    from ..features.encoders import ENCODERS, resolve_weights

    log = logging.getLogger(resolve_weights.__module__)
    level = log.level
    log.setLevel(logging.WARNING)  # one table, not a log line per card
    rows = []
    try:
        for name in ENCODERS.list():
            card = ENCODERS.get(name)
            try:
                w = resolve_weights(card)
                where = w.source if w.path is None else f"{w.source}: {w.path.name}"
            except HistoexprError:
                where = "none local" + (" (gated: README, offline weights)" if card.gated
                                        else " (offline: no download)")
            rows.append(_row(card, where))
    finally:
        log.setLevel(level)
    return rows


def _row(card, where: str) -> dict:
    return {"name": card.name, "input": card.input_size, "dim": card.embed_dim,
            "mpp": card.mpp, "params_m": card.n_params_m, "licence": card.licence,
            "gated": card.gated, "weights": where}


def _print_encoders(as_json: bool) -> int:
    from rich.table import Table

    rows = encoder_rows()
    if as_json:
        print(dumps(rows, indent=1))
        return 0
    t = Table(title="encoder cards (weights: where they resolve now)", title_justify="left")
    for c in ("name", "input", "dim", "mpp", "params_m", "licence", "gated", "weights"):
        t.add_column(c, justify="right" if c in ("input", "dim", "mpp", "params_m") else "left",
                     overflow="fold")  # a narrow terminal folds, never cuts ("…")
    for r in rows:
        t.add_row(*(("yes" if v else "") if k == "gated" else str(v) for k, v in r.items()))
    table_console().print(t)
    return 0


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ..errors import InputError
    from ..slide import open_slide

    if args.encoders:
        return _print_encoders(args.json)
    if not args.slides:
        raise InputError("give one or more slides to describe, or --encoders")

    infos = []
    for path in args.slides:
        with open_slide(path, mpp=args.mpp, reader=args.reader) as s:
            infos.append(s.info())
    if args.json:
        print(dumps(infos if len(infos) > 1 else infos[0], indent=1))
        return 0
    console = table_console()
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
