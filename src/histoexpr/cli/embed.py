"""``histoexpr embed SLIDE... --coords DIR --encoder NAME --out DIR``: tile features per slide.

Reads the coordinates ``histoexpr tile`` wrote (``DIR/<slide>.h5``), checks they belong to
the slide (SHA-256 recorded at tiling time), embeds every tile with the encoder and writes
``OUT/<slide>.h5`` (``coords``, ``features``, encoder card, tile spec). Finished slides are
skipped; a lock per slide lets several runs share one output folder; a failing slide is
reported at the end and the others finish.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from ..slide import slide_name
from . import add_common, report_failures

logger = logging.getLogger("histoexpr.cli.embed")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="extract tile features with an encoder (HDF5 per slide)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("slides", nargs="+", metavar="SLIDE", help="slide files, images or tile folders")
    p.add_argument("--coords", required=True, type=Path,
                   help="folder of `histoexpr tile` coordinate files, e.g. tiles/224px_0.5mpp")
    p.add_argument("--encoder", default="efficientnet_lite0",
                   help="encoder card name (default efficientnet_lite0: ImageNet, offline)")
    p.add_argument("--weights", type=Path, default=None, help="explicit checkpoint path")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--slide-mpp", type=float, default=None,
                   help="level-0 µm/px for files that do not record it")
    p.add_argument("--stain", default=None,
                   help="stain normaliser (macenko, vahadane, reinhard, luminosity)")
    p.add_argument("--stain-target", type=Path, default=None,
                   help="reference H&E image the normaliser is fitted on")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")
    p.add_argument("--compile", action="store_true", help="torch.compile the encoder")
    p.add_argument("--overwrite", action="store_true", help="redo slides that are done")
    add_common(p)
    p.set_defaults(func=run)


def _stain(args):
    """The fitted stain normaliser the options ask for, or ``None``."""
    import numpy as np
    from PIL import Image

    from ..errors import InputError
    from ..stain import get_normalizer

    if args.stain is None:
        return None
    norm = get_normalizer(args.stain)
    if args.stain in ("luminosity", "none"):  # nothing to fit
        return norm
    if args.stain_target is None:
        raise InputError(f"--stain {args.stain} needs --stain-target IMAGE to fit on")
    try:
        with Image.open(args.stain_target) as im:
            target = np.asarray(im.convert("RGB"))
    except OSError as e:
        raise InputError(f"{args.stain_target}: cannot read the stain target ({e})") from e
    return norm.fit(target)


def embed_one(path: Path, args, encoder, stain) -> tuple[str, str, int, float]:
    """Embed one slide; returns ``(slide, status, n_tiles, seconds)``."""
    from ..errors import InputError
    from ..features import embed_to_h5
    from ..slide import open_slide, slide_checksum
    from ..tiling import load_coords

    t0 = time.perf_counter()
    stem = slide_name(path)
    out = args.out / f"{stem}.h5"
    if out.exists() and not args.overwrite:
        return stem, "done before", 0, 0.0
    cpath = args.coords / f"{stem}.h5"
    if not cpath.exists():
        raise InputError(f"{cpath}: no coordinates for {path}; run `histoexpr tile` first")
    coords, attrs = load_coords(cpath)
    with open_slide(path, mpp=args.slide_mpp) as slide:
        recorded = str(attrs.get("slide_sha256", ""))
        if recorded and recorded != slide_checksum(slide):
            raise InputError(
                f"{cpath}: these coordinates were cut from another file than {path} "
                "(checksum differs); re-run `histoexpr tile` on this slide"
            )
        _, status = embed_to_h5(
            out, slide, coords, encoder, size_px=int(attrs["patch_size"]),
            mpp=float(attrs["mpp"]), overwrite=args.overwrite, batch_size=args.batch_size,
            num_workers=args.num_workers, stain=stain, device=args.device, compile=args.compile,
            extra_attrs={"coords_file": str(cpath.resolve())},
        )
    return stem, status, len(coords), time.perf_counter() - t0


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..errors import HistoexprError
    from ..features import build_encoder

    encoder = build_encoder(args.encoder, weights=args.weights)
    stain = _stain(args)
    rows, failed = [], []
    for s in args.slides:
        path = Path(s)
        try:
            rows.append(embed_one(path, args, encoder, stain))
        except HistoexprError as e:
            if len(args.slides) == 1:
                raise
            logger.error("skipped %s: %s", path, e)
            failed.append((path.name, str(e)))
            rows.append((path.name, "failed", 0, 0.0))
    if not args.quiet:
        t = Table(title=f"{encoder.card.name} features in {args.out}", title_justify="left")
        for col in ("slide", "status", "tiles", "s", "tiles/s"):
            t.add_column(col)
        for stem, status, n, sec in rows:
            rate = f"{n / sec:.1f}" if sec > 0 else "-"
            t.add_row(stem, status, str(n or "-"), f"{sec:.1f}", rate)
        console = Console()
        (console if console.is_terminal else Console(width=120)).print(t)
    return report_failures(failed, total=len(args.slides))
