"""``histoexpr embed``: tile features per slide, in-process or over a Dask cluster.

    histoexpr embed SLIDE... --coords DIR --out DIR            # in this process
    histoexpr embed --manifest slides.csv --out DIR [--workers N] [--scheduler ADDRESS]

Reads the coordinates ``histoexpr tile`` wrote (``DIR/<slide>.h5``, or the manifest's
``coords`` column), checks they belong to the slide (SHA-256 recorded at tiling time),
embeds every tile with the encoder and writes ``OUT/<slide>.h5`` (``coords``, ``features``,
encoder card, tile spec). With ``--manifest`` (CSV: ``slide`` [, ``coords``, ``slide_mpp``])
there is one Dask task per slide on a LocalCluster, or on a running cluster with
``--scheduler``. Finished slides are skipped, so re-running finishes what is missing; one
run at a time writes an output folder (a second is refused while the first holds its lock;
the Dask workers of one run share it through a lock per slide); a slide that fails (or whose
worker dies) is reported at the end and the others finish. Each file is written whole or not
at all: a full disk stops the run with one message, the finished slides kept for the rerun.
``--random-init`` embeds with the encoder's architecture and random weights (seed 0), the
baseline that shows what the pretrained weights add.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import add_common, add_dask_options, report_failures


def batch_size_arg(text: str) -> int | str:
    """``--batch-size``: a positive number or ``auto``."""
    if text == "auto":
        return text
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a positive number or 'auto'")
    return n


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="extract tile features with an encoder (HDF5 per slide)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("slides", nargs="*", metavar="SLIDE", help="slide files, images or tile folders")
    p.add_argument("--manifest", type=Path, default=None,
                   help="CSV of slides (columns slide[,coords,slide_mpp]); runs on Dask")
    p.add_argument("--coords", type=Path, default=None,
                   help="folder of `histoexpr tile` coordinate files, e.g. tiles/224px_0.5mpp")
    p.add_argument("--encoder", default="efficientnet_lite0",
                   help="encoder card name (default efficientnet_lite0: ImageNet, offline), "
                   "or a `histoexpr finetune` output folder")
    p.add_argument("--weights", type=Path, default=None, help="explicit checkpoint path")
    p.add_argument("--random-init", action="store_true",
                   help="the encoder with random weights (seed 0) instead of pretrained ones")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--slide-mpp", type=float, default=None,
                   help="level-0 µm/px for files that do not record it")
    p.add_argument("--stain", default=None,
                   help="stain normaliser (macenko, vahadane, reinhard, luminosity)")
    p.add_argument("--stain-target", type=Path, default=None,
                   help="reference H&E image the normaliser is fitted on")
    p.add_argument("--batch-size", type=batch_size_arg, default=64,
                   help="tiles per batch, or auto (1024 on a GPU, 64 on the CPU); a batch "
                        "that runs out of GPU memory is halved and retried (64)")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")
    p.add_argument("--compile", nargs="?", const=True, default=False, choices=[True, "auto"],
                   metavar="auto",
                   help="torch.compile the encoder; --compile auto: time compiled and eager "
                        "on the first batch and keep the faster")
    p.add_argument("--overwrite", action="store_true", help="redo slides that are done")
    add_dask_options(p)
    add_common(p)
    p.set_defaults(func=run)


def _print_table(res) -> None:
    from rich.table import Table

    from . import table_console

    t = Table(title=f"{res.encoder} features in {res.out}", title_justify="left")
    where = ["where"] if res.on_dask else []
    for col in ("slide", "status", "tiles", "s", "tiles/s", *where):
        t.add_column(col)
    for r in res.results:
        rate = f"{r.n_tiles / r.seconds:.1f}" if r.n_tiles and r.seconds > 0 else "-"
        t.add_row(r.name, r.status, str(r.n_tiles or "-"), f"{r.seconds:.1f}", rate,
                  *([r.where or "-"] if res.on_dask else []))
    console = table_console()
    console.print(t)
    c = res.counts
    console.print(f"done {c['done']} · skipped {c['skipped']} · failed {c['failed']}")


def run(args: argparse.Namespace) -> int:
    from ..workflows import embed_cohort

    res = embed_cohort(
        args.slides, out=args.out, manifest=args.manifest, coords=args.coords,
        encoder=args.encoder, weights=args.weights, random_init=args.random_init,
        slide_mpp=args.slide_mpp, stain=args.stain, stain_target=args.stain_target,
        batch_size=args.batch_size, num_workers=args.num_workers, device=args.device,
        compile=args.compile, overwrite=args.overwrite, workers=args.workers,
        scheduler=args.scheduler)
    if not args.quiet:
        _print_table(res)
    return report_failures(res.failed, total=res.n_slides)
