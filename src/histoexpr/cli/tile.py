"""``histoexpr tile SLIDE... --out DIR``: tissue → tile coordinates (HDF5) + QC PNG per slide.

Outputs, per tile spec (``<size>px_<mpp>mpp``): ``DIR/<spec>/<slide>.h5`` (``coords``,
CLAM/TRIDENT layout) and ``DIR/<spec>/qc/<slide>.png``; ``DIR/run.json`` records the
resolved settings, package version, the run's status and each slide's status and timings
(tissue detection, tile sampling + filters). Finished slides are skipped on a rerun
(``--overwrite`` redoes them); a slide that fails is reported and the others go on. A run in
which every slide fails leaves the folder as it found it (a new folder is removed). A full
disk or read-only folder stops the run at once (the other slides would fail alike). One run
at a time writes a folder: a second one is refused while the first holds its lock.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..slide import slide_name
from . import add_common, report_failures

logger = logging.getLogger("histoexpr.cli.tile")

SPOT_SUFFIXES = ("_selection.tsv", ".tsv", ".csv", "_tissue_positions.csv")
HEATMAP_SUFFIXES = (".npy", ".png", ".tif", ".tiff", ".jpg")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tile", help="find tissue and cut tile coordinates (HDF5 + QC PNG)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("slides", nargs="+", metavar="SLIDE", help="slide files, images or tile folders")
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
    add_common(p)
    p.set_defaults(func=run)


@dataclass
class SlideOutcome:
    slide: str
    spec: str
    status: str  # "done", "done before" (resumed run), "failed"
    message: str = ""
    n_tiles: int = 0
    n_candidates: int = 0
    tissue_pct: float | None = None
    tissue_seconds: float = 0.0  # tissue detection (once per slide, shared by its specs)
    tiles_seconds: float = 0.0  # sampler + pixel filters
    seconds: float = 0.0  # all of it, with writing the coordinates and the QC image


def _done_before(stem: str, spec, out: Path) -> SlideOutcome:
    from ..tiling import load_coords

    return SlideOutcome(stem, spec.name, "done before", n_tiles=len(load_coords(out)[0]))


def _find_for_slide(folder: Path, slide: Path, suffixes: tuple[str, ...], what: str) -> Path:
    from ..errors import InputError

    stem = slide_name(slide)
    for suf in suffixes:
        cand = folder / f"{stem}{suf}"
        if cand.is_file():
            return cand
    raise InputError(
        f"{folder}: no {what} file for slide {stem} (looked for {stem}"
        f"{{{','.join(suffixes)}}}); name it after the slide"
    )


def load_heatmap(path: Path) -> np.ndarray:
    """A probability map in [0, 1] from ``.npy`` or an 8/16-bit grayscale image."""
    from ..errors import InputError
    from ..slide import read_image

    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False).astype(np.float64)
        a = read_image(path, mode=None)  # keeps 8/16-bit; cut files refused; no bomb warning
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot read the heatmap ({e})") from e
    if a.ndim == 3:
        a = a[..., :3].mean(axis=2)
    top = 65535.0 if a.dtype == np.uint16 else 255.0 if a.dtype == np.uint8 else 1.0
    return a.astype(np.float64) / top


def _specs(args: argparse.Namespace):
    from ..tiling import TileSpec

    return [TileSpec(int(s), float(args.mpp), args.stride) for s in args.tile_size]


def _tile_one(path: Path, args, filters, kmeans_state: dict) -> list[SlideOutcome]:
    from ..expression import estimate_mpp_from_spots, read_spots
    from ..plot import qc_image, save_png
    from ..slide import open_slide, slide_checksum
    from ..tiling import KMeansPatchFilter, save_coords, tile_slide

    specs = _specs(args)
    stem = slide_name(path)
    outs = [args.out / spec.name / f"{stem}.h5" for spec in specs]
    if not args.overwrite and all(o.exists() for o in outs):
        return [_done_before(stem, spec, out) for spec, out in zip(specs, outs)]

    spots_df = None
    if args.spots is not None:
        spots_file = args.spots
        if args.spots.is_dir():
            spots_file = _find_for_slide(args.spots, path, SPOT_SUFFIXES, "spot")
        spots_df = read_spots(spots_file, only_in_tissue=not args.all_spots)
    slide_mpp = args.slide_mpp
    if slide_mpp == "from-spots":
        if spots_df is None:
            from ..errors import InputError

            raise InputError("--slide-mpp from-spots needs --spots")
        slide_mpp = estimate_mpp_from_spots(spots_df)
        logger.info("%s: %.4f µm/px from the spot grid", stem, slide_mpp)
    heatmap = None
    if args.heatmap is not None:
        hp = args.heatmap
        if hp.is_dir():
            hp = _find_for_slide(hp, path, HEATMAP_SUFFIXES, "heatmap")
        heatmap = load_heatmap(hp)

    with open_slide(path, mpp=None if slide_mpp is None else float(slide_mpp)) as slide:
        checksum = slide_checksum(slide)
        tissue = thumb = None
        outcomes = []
        for spec, out in zip(specs, outs):
            t0 = time.perf_counter()
            if out.exists() and not args.overwrite:
                outcomes.append(_done_before(stem, spec, out))
                continue
            if "kmeans" in filters and kmeans_state.get("filter") is None:
                kp = kmeans_state["path"]
                if kp.exists():
                    kmeans_state["filter"] = KMeansPatchFilter.load(kp)
                    logger.info("reusing the K-means patch filter in %s", kp)
            result = tile_slide(
                slide, spec,
                spots=None if spots_df is None else spots_df[["x", "y"]].to_numpy(),
                spot_ids=None if spots_df is None else spots_df["spot_id"].to_numpy(),
                spots_source=str(args.spots), heatmap=heatmap, n_tiles=args.n_tiles,
                filters=filters, tissue_method=args.tissue, min_tissue=args.min_tissue,
                min_prob=args.min_prob, kmeans=kmeans_state.get("filter"), tissue=tissue,
            )
            tissue = result.tissue
            if "kmeans" in filters and kmeans_state.get("filter") is None and result.kmeans:
                kmeans_state["filter"] = result.kmeans
                result.kmeans.save(kmeans_state["path"])
                logger.info("saved the K-means patch filter to %s", kmeans_state["path"])
            save_coords(out, result.coords, result.attrs(slide, checksum=checksum))
            if not args.no_qc:
                thumb = slide.thumbnail(1024) if thumb is None else thumb
                w0, h0 = slide.dimensions
                scale = (w0 / thumb.shape[1], h0 / thumb.shape[0])
                qc = qc_image(
                    thumb, scale=scale,
                    mask=None if result.tissue is None else result.tissue.mask,
                    coords=result.coords, size0=spec.size_level0(slide.mpp),
                )
                save_png(out.parent / "qc" / f"{stem}.png", qc)
            outcomes.append(SlideOutcome(
                stem, spec.name, "done", n_tiles=len(result.coords),
                n_candidates=result.n_candidates,
                tissue_pct=None if tissue is None else 100 * tissue.fraction,
                tissue_seconds=result.tissue_seconds, tiles_seconds=result.tiles_seconds,
                seconds=time.perf_counter() - t0,
            ))
    return outcomes


def _write_manifest(args, outcomes: list[SlideOutcome]) -> Path:
    from .. import __version__
    from ..atomic import write_json

    n_failed = sum(o.status == "failed" for o in outcomes)
    manifest = {
        "histoexpr_version": __version__,
        "command": "tile",
        "status": "finished" if not n_failed else "finished with failures",
        "n_failed": n_failed,
        "settings": {k: v for k, v in vars(args).items() if k not in ("func", "slides")},
        "specs": [s.to_dict() for s in _specs(args)],
        "slides": [o.__dict__ for o in outcomes],
    }
    return write_json(args.out / "run.json", manifest)


def _check_args(args: argparse.Namespace, filters: tuple[str, ...]) -> None:
    from ..errors import InputError
    from ..tiling import FILTERS

    bad = set(filters) - set(FILTERS)
    if bad:
        raise InputError(f"unknown --filter {sorted(bad)}; choose from {', '.join(FILTERS)}")
    if args.spots is not None and args.heatmap is not None:
        raise InputError("give --spots or --heatmap, not both")
    if args.spots is not None and args.spots.is_file() and len(args.slides) > 1:
        raise InputError(
            f"{args.spots}: one spot file for {len(args.slides)} slides; pass a folder of "
            "<slide>_selection.tsv / <slide>.csv files instead"
        )
    _specs(args)  # validate sizes before any work


def _tile_all(slides: list[Path], args, filters) -> list[SlideOutcome]:
    from rich.console import Console
    from rich.progress import Progress

    from ..errors import HistoexprError, OutputError

    kmeans_state = {"path": args.kmeans_model or args.out / "kmeans_filter.json", "filter": None}
    outcomes: list[SlideOutcome] = []
    err = Console(stderr=True)  # no bar in pipes and logs: it would leave a blank line
    with Progress(console=err, disable=args.quiet or not err.is_terminal,
                  transient=True) as progress:
        task = progress.add_task("tiling", total=len(slides))
        for path in slides:
            progress.update(task, description=f"tiling {path.name[:40]}")
            try:
                outcomes.extend(_tile_one(path, args, filters, kmeans_state))
            except OutputError:
                raise  # a full disk or read-only folder: every other slide would fail alike
            except HistoexprError as e:
                if len(slides) == 1:
                    raise
                msg = str(e)  # named once: most messages start with the file already
                logger.error("skipped %s", msg if str(path) in msg else f"{path}: {msg}")
                outcomes.append(SlideOutcome(slide_name(path), "-", "failed", str(e)))
            progress.advance(task)
    return outcomes


def _print_table(args, outcomes: list[SlideOutcome], manifest: Path) -> None:
    from rich.table import Table

    from . import table_console

    def secs(v: float) -> str:
        return f"{v:.2f}" if v else "-"

    t = Table(title=f"tiles in {args.out}", title_justify="left",
              caption="tissue s: tissue detection; tiles s: sampling and filters",
              caption_justify="left")
    cols = ("slide", "tiles of", "status", "tissue %", "candidates", "tiles", "tissue s",
            "tiles s", "total s")
    for col in cols:
        t.add_column(col, justify="left" if col in cols[:4] else "right",
                     overflow="fold")
    for o in outcomes:
        pct = "-" if o.tissue_pct is None else f"{o.tissue_pct:.1f}"
        t.add_row(o.slide, o.spec, o.status, pct, str(o.n_candidates or "-"), str(o.n_tiles),
                  secs(o.tissue_seconds), secs(o.tiles_seconds), f"{o.seconds:.1f}")
    table_console().print(t)
    print(f"run record: {manifest}")


def run(args: argparse.Namespace) -> int:
    from ..runner import BatchOutput, unique_items

    filters = tuple(f.strip() for f in args.filter.split(",") if f.strip())
    _check_args(args, filters)
    slides = unique_items(args.slides, name=slide_name)
    # locked for the run: a second run on --out, or a read-only one, fails before any work
    with BatchOutput(args.out) as output:
        outcomes = _tile_all(slides, args, filters)
        # a run in which every slide failed made nothing: no record that looks finished
        output.produced = any(o.status != "failed" for o in outcomes)
        manifest = _write_manifest(args, outcomes) if output.produced else None
    if manifest is not None and not args.quiet:
        _print_table(args, outcomes, manifest)
    failed = [(o.slide, o.message) for o in outcomes if o.status == "failed"]
    return report_failures(failed, total=len(slides))
