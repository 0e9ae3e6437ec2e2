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
import logging
from pathlib import Path

from . import add_common, report_failures

logger = logging.getLogger("histoexpr.cli.embed")


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
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")
    p.add_argument("--compile", action="store_true", help="torch.compile the encoder")
    p.add_argument("--overwrite", action="store_true", help="redo slides that are done")
    d = p.add_argument_group("Dask (with --manifest)")
    d.add_argument("--workers", type=int, default=None,
                   help="LocalCluster workers (default: one per GPU, else cores / 4)")
    d.add_argument("--scheduler", default=None,
                   help="address of a running Dask scheduler, e.g. tcp://head:8786")
    add_common(p)
    p.set_defaults(func=run)


def _stain(args):
    """The fitted stain normaliser the options ask for, or ``None``."""

    from ..errors import InputError
    from ..stain import get_normalizer

    if args.stain is None:
        return None
    norm = get_normalizer(args.stain)
    if args.stain in ("luminosity", "none"):  # nothing to fit
        return norm
    if args.stain_target is None:
        raise InputError(f"--stain {args.stain} needs --stain-target IMAGE to fit on")
    from ..slide import read_image

    return norm.fit(read_image(args.stain_target))


def _jobs(args):
    from ..errors import InputError
    from ..features.jobs import make_job, read_manifest
    from ..runner import unique_items
    from ..slide import slide_name

    if args.random_init and args.weights is not None:
        raise InputError("give --weights or --random-init, not both")
    if args.manifest is not None:
        if args.slides:
            raise InputError("give slides either on the command line or in --manifest, not both")
        return read_manifest(args.manifest, args.out, coords_dir=args.coords,
                             slide_mpp=args.slide_mpp)
    if not args.slides:
        raise InputError("no slides: list SLIDE files or pass --manifest slides.csv")
    if args.workers is not None or args.scheduler is not None:
        raise InputError("--workers / --scheduler run on Dask and need --manifest slides.csv")
    return [make_job(s, args.out, coords_dir=args.coords, slide_mpp=args.slide_mpp)
            for s in unique_items(args.slides, name=slide_name)]


def _embed_kwargs(args) -> dict:
    return {"batch_size": args.batch_size, "num_workers": args.num_workers,
            "device": args.device, "compile": args.compile}


def _in_process(jobs, args, stain):
    from ..errors import HistoexprError, OutputError
    from ..features import build_encoder
    from ..features.jobs import JobResult, run_job

    encoder = build_encoder(args.encoder, weights=args.weights,
                            pretrained=not args.random_init)
    results = []
    for job in jobs:
        try:
            results.append(run_job(job, encoder, stain=stain, overwrite=args.overwrite,
                                   **_embed_kwargs(args)))
        except OutputError:
            raise  # a full disk or read-only folder: every other slide would fail alike
        except HistoexprError as e:
            if len(jobs) == 1:
                raise
            logger.error("skipped %s: %s", job.slide, e)
            results.append(JobResult(job.name, "failed", message=str(e)))
    return results


def _on_dask(jobs, args, stain):
    from ..features.jobs import EncoderSpec, embed_on_dask

    def progress(r, k, n):
        log = logger.error if r.status == "failed" else logger.info
        log("[%d/%d] %s: %s%s", k, n, r.name, r.status, f" ({r.message})" if r.message else "")

    spec = EncoderSpec(args.encoder, str(args.weights) if args.weights else None,
                       pretrained=not args.random_init)
    return embed_on_dask(jobs, spec, workers=args.workers, scheduler=args.scheduler,
                         stain=stain, overwrite=args.overwrite, on_result=progress,
                         **_embed_kwargs(args))


def run(args: argparse.Namespace) -> int:
    from collections import Counter

    from rich.table import Table

    from ..runner import BatchOutput
    from . import table_console

    jobs = _jobs(args)
    stain = _stain(args)
    # locked for the run: a second run on --out, or a read-only one, fails before any work;
    # a run that finished no slide leaves the folder as it found it
    with BatchOutput(args.out) as output:
        results = (_on_dask if args.manifest is not None else _in_process)(jobs, args, stain)
        output.produced = any(r.status != "failed" for r in results)
    for r in results:
        if r.status == "locked":
            logger.warning("%s: another worker holds %s.lock; if none does, delete the lock",
                           r.name, args.out / f"{r.name}.h5")
    if not args.quiet:
        t = Table(title=f"{args.encoder} features in {args.out}", title_justify="left")
        on_dask = args.manifest is not None
        for col in ("slide", "status", "tiles", "s", "tiles/s", *(["where"] if on_dask else [])):
            t.add_column(col)
        for r in results:
            rate = f"{r.n_tiles / r.seconds:.1f}" if r.n_tiles and r.seconds > 0 else "-"
            t.add_row(r.name, r.status, str(r.n_tiles or "-"), f"{r.seconds:.1f}", rate,
                      *([r.where or "-"] if on_dask else []))
        console = table_console()
        console.print(t)
        c = Counter("skipped" if r.status in ("done before", "locked") else r.status
                    for r in results)
        console.print(f"done {c['done']} · skipped {c['skipped']} · failed {c['failed']}")
    failed = [(r.name, r.message) for r in results if r.status == "failed"]
    return report_failures(failed, total=len(results))
