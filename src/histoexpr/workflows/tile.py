"""Tile a cohort: tissue → tile coordinates (HDF5) + QC PNG per slide and tile spec.

Outputs, per tile spec (``<size>px_<mpp>mpp``): ``OUT/<spec>/<slide>.h5`` (``coords``,
CLAM/TRIDENT layout) and ``OUT/<spec>/qc/<slide>.png``; ``OUT/run.json`` records the settings,
package version, the run's status and each slide's status and timings (tissue detection, tile
sampling + filters). Finished slides are skipped on a rerun (``overwrite=True`` redoes them); a
slide that fails is logged and the others go on. A run in which every slide fails leaves the
folder as it found it (a new folder is removed). A full disk or read-only folder stops the run
at once (the other slides would fail alike). One run at a time writes a folder: a second one is
refused while the first holds its lock. ``histoexpr tile`` is this function.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from ..slide import slide_name
from ..tiling import TileSpec

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["HEATMAP_SUFFIXES", "SPOT_SUFFIXES", "SlideOutcome", "TileCohortResult",
           "load_heatmap", "tile_cohort"]

logger = logging.getLogger(__name__)

#: spot files looked for in a ``spots`` folder, after the slide's name
SPOT_SUFFIXES = ("_selection.tsv", ".tsv", ".csv", "_tissue_positions.csv")
#: heatmap files looked for in a ``heatmap`` folder, after the slide's name
HEATMAP_SUFFIXES = (".npy", ".png", ".tif", ".tiff", ".jpg")


@dataclass
class SlideOutcome:
    """One slide at one tile spec (a failed slide has spec ``"-"``)."""

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
    where: str = ""  # the Dask worker that ran it ("" in this process)


@dataclass(frozen=True)
class TileCohortResult:
    """What :func:`tile_cohort` did.

    Attributes
    ----------
    out, specs
        The output folder and the tile specs; ``out / spec.name`` holds each spec's
        ``<slide>.h5``.
    outcomes
        One :class:`SlideOutcome` per slide and spec (one per failed slide).
    record
        ``out/run.json``, or None when every slide failed (nothing was kept).
    n_slides
        Slides asked for (a path listed twice counts once).
    """

    out: Path
    specs: list[TileSpec]
    outcomes: list[SlideOutcome] = field(default_factory=list)
    record: Path | None = None
    n_slides: int = 0

    @property
    def failed(self) -> list[tuple[str, str]]:
        """``(slide, reason)`` of each slide that failed."""
        return [(o.slide, o.message) for o in self.outcomes if o.status == "failed"]

    @property
    def coords(self) -> list[Path]:
        """The coordinate files of the slides done (now or before)."""
        return [self.out / o.spec / f"{o.slide}.h5" for o in self.outcomes
                if o.status != "failed"]

    @property
    def table(self) -> pd.DataFrame:
        """The outcomes as a table (one row per slide and spec)."""
        import pandas as pd

        return pd.DataFrame([o.__dict__ for o in self.outcomes],
                            columns=list(SlideOutcome.__dataclass_fields__))


def load_heatmap(path: Path) -> np.ndarray:
    """A probability map in [0, 1] from ``.npy`` or an 8/16-bit grayscale image."""
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


@dataclass(frozen=True)
class _Options:
    """The settings of one run (what ``run.json`` records)."""

    out: Path
    specs: list[TileSpec]
    slide_mpp: float | str | None
    spots: Path | None
    all_spots: bool
    heatmap: Path | None
    n_tiles: int | None
    min_prob: float
    filters: tuple[str, ...]
    kmeans_model: Path
    min_tissue: float
    tissue: str
    overwrite: bool
    qc: bool

    def settings(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "specs"}


def _find_for_slide(folder: Path, slide: Path, suffixes: tuple[str, ...], what: str) -> Path:
    stem = slide_name(slide)
    for suf in suffixes:
        cand = folder / f"{stem}{suf}"
        if cand.is_file():
            return cand
    raise InputError(
        f"{folder}: no {what} file for slide {stem} (looked for {stem}"
        f"{{{','.join(suffixes)}}}); name it after the slide"
    )


def _done_before(stem: str, spec: TileSpec, out: Path) -> SlideOutcome:
    from ..tiling import load_coords

    return SlideOutcome(stem, spec.name, "done before", n_tiles=len(load_coords(out)[0]))


def _slide_inputs(path: Path, opt: _Options) -> tuple[Any, float | str | None, Any]:
    """The slide's spot table, level-0 µm/px and heatmap (each None when not asked for)."""
    from ..expression import estimate_mpp_from_spots, read_spots

    stem = slide_name(path)
    spots_df = None
    if opt.spots is not None:
        spots_file = opt.spots
        if opt.spots.is_dir():
            spots_file = _find_for_slide(opt.spots, path, SPOT_SUFFIXES, "spot")
        spots_df = read_spots(spots_file, only_in_tissue=not opt.all_spots)
    slide_mpp = opt.slide_mpp
    if slide_mpp == "from-spots":
        if spots_df is None:
            raise InputError("--slide-mpp from-spots needs --spots")
        slide_mpp = estimate_mpp_from_spots(spots_df)
        logger.info("%s: %.4f µm/px from the spot grid", stem, slide_mpp)
    heatmap = None
    if opt.heatmap is not None:
        hp = opt.heatmap
        if hp.is_dir():
            hp = _find_for_slide(hp, path, HEATMAP_SUFFIXES, "heatmap")
        heatmap = load_heatmap(hp)
    return spots_df, slide_mpp, heatmap


def _tile_one(path: Path, opt: _Options, kmeans_state: dict) -> list[SlideOutcome]:
    from ..plot import qc_image, save_png
    from ..slide import open_slide, slide_checksum
    from ..tiling import KMeansPatchFilter, save_coords, tile_slide

    stem = slide_name(path)
    outs = [opt.out / spec.name / f"{stem}.h5" for spec in opt.specs]
    if not opt.overwrite and all(o.exists() for o in outs):
        return [_done_before(stem, spec, out) for spec, out in zip(opt.specs, outs)]
    spots_df, slide_mpp, heatmap = _slide_inputs(path, opt)
    filters = opt.filters

    with open_slide(path, mpp=None if slide_mpp is None else float(slide_mpp)) as slide:
        checksum = slide_checksum(slide)
        tissue = thumb = None
        outcomes = []
        for spec, out in zip(opt.specs, outs):
            t0 = time.perf_counter()
            if out.exists() and not opt.overwrite:
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
                spots_source=str(opt.spots), heatmap=heatmap, n_tiles=opt.n_tiles,
                filters=filters, tissue_method=opt.tissue, min_tissue=opt.min_tissue,
                min_prob=opt.min_prob, kmeans=kmeans_state.get("filter"), tissue=tissue,
            )
            tissue = result.tissue
            if "kmeans" in filters and kmeans_state.get("filter") is None and result.kmeans:
                kmeans_state["filter"] = result.kmeans
                result.kmeans.save(kmeans_state["path"])
                logger.info("saved the K-means patch filter to %s", kmeans_state["path"])
            save_coords(out, result.coords, result.attrs(slide, checksum=checksum))
            if opt.qc:
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


def _tile_all(slides: list[Path], opt: _Options, *, progress: bool,
              strict: bool = True) -> list[SlideOutcome]:
    """The slides one after the other in this process; with ``strict``, the error of a
    run of one slide is raised (else it is a failed outcome)."""
    from rich.console import Console
    from rich.progress import Progress

    from ..errors import HistoexprError, OutputError

    kmeans_state = {"path": opt.kmeans_model, "filter": None}
    outcomes: list[SlideOutcome] = []
    err = Console(stderr=True)  # no bar in pipes and logs: it would leave a blank line
    with Progress(console=err, disable=not progress or not err.is_terminal,
                  transient=True) as bar:
        task = bar.add_task("tiling", total=len(slides))
        for path in slides:
            bar.update(task, description=f"tiling {path.name[:40]}")
            try:
                outcomes.extend(_tile_one(path, opt, kmeans_state))
            except OutputError:
                raise  # a full disk or read-only folder: every other slide would fail alike
            except HistoexprError as e:
                if len(slides) == 1 and strict:
                    raise
                msg = str(e)  # named once: most messages start with the file already
                logger.error("skipped %s", msg if str(path) in msg else f"{path}: {msg}")
                outcomes.append(SlideOutcome(slide_name(path), "-", "failed", str(e)))
            bar.advance(task)
    return outcomes


def _tile_task(item: tuple[Path, _Options]) -> list[SlideOutcome]:
    """Runs on a Dask worker: one slide (each worker reads the saved K-means filter);
    bad input becomes a ``failed`` outcome."""
    from ..errors import HistoexprError
    from ..runner import worker_label

    path, opt = item
    where = worker_label()
    try:
        outcomes = _tile_one(path, opt, {"path": opt.kmeans_model, "filter": None})
    except HistoexprError as e:
        outcomes = [SlideOutcome(slide_name(path), "-", "failed", str(e))]
    for o in outcomes:
        o.where = where
    return outcomes


def _tile_on_dask(slides: list[tuple[Path, _Options]], *, workers: int | None,
                  scheduler: str | None, progress: bool) -> list[SlideOutcome]:
    """One Dask task per slide, outcomes in manifest order. A K-means filter that does not
    exist yet is fitted on the first slide here first (as in-process runs do), so every
    worker filters with the same one."""
    from ..runner import TaskFailed, map_on_dask

    first: list[SlideOutcome] = []
    opt0 = slides[0][1] if slides else None
    if opt0 is not None and "kmeans" in opt0.filters and not opt0.kmeans_model.exists():
        first = _tile_all([slides[0][0]], opt0, progress=progress, strict=False)
        slides = slides[1:]

    def report(i: int, value: Any, k: int, n: int) -> None:
        name = slide_name(slides[i][0])
        if isinstance(value, TaskFailed):
            logger.error("[%d/%d] %s: failed (%s)", k, n, name, value.message)
        else:
            bad = [o.message for o in value if o.status == "failed"]
            (logger.error if bad else logger.info)(
                "[%d/%d] %s: %s", k, n, name, f"failed ({bad[0]})" if bad else
                ", ".join(sorted({o.status for o in value})))

    values = map_on_dask(_tile_task, slides, names=[f"tile-{slide_name(p)}" for p, _ in slides],
                         workers=workers, scheduler=scheduler, on_result=report)
    out = list(first)
    for (p, _), v in zip(slides, values):
        out.extend([SlideOutcome(slide_name(p), "-", "failed", v.message)]
                   if isinstance(v, TaskFailed) else v)
    return out


def _write_record(opt: _Options, outcomes: list[SlideOutcome]) -> Path:
    from .. import __version__
    from ..atomic import write_json

    n_failed = sum(o.status == "failed" for o in outcomes)
    record = {
        "histoexpr_version": __version__,
        "command": "tile",
        "status": "finished" if not n_failed else "finished with failures",
        "n_failed": n_failed,
        "settings": opt.settings(),
        "specs": [s.to_dict() for s in opt.specs],
        "slides": [o.__dict__ for o in outcomes],
    }
    return write_json(opt.out / "run.json", record)


def _cohort_slides(slides: Sequence[str | Path], opt: _Options, *,
                   manifest: str | Path | None, dask_options: bool
                   ) -> list[tuple[Path, _Options]]:
    """Each slide once, with its options (a manifest row's ``slide_mpp`` is its own)."""
    from dataclasses import replace

    from ..runner import check_cohort_inputs, manifest_rows, unique_items

    check_cohort_inputs(slides, manifest, dask_options=dask_options)
    if manifest is None:
        return [(p, opt) for p in unique_items(slides, name=slide_name)]
    rows = manifest_rows(manifest, slide_mpp=None)
    paths = unique_items([r.slide for r in rows], name=slide_name)
    mpp = {r.slide: r.slide_mpp for r in rows}
    return [(p, opt if mpp.get(p) is None else replace(opt, slide_mpp=mpp[p])) for p in paths]


def _filters(filters: str | Sequence[str]) -> tuple[str, ...]:
    from ..tiling import FILTERS

    items = filters.split(",") if isinstance(filters, str) else list(filters)
    out = tuple(f.strip() for f in items if f.strip())
    bad = set(out) - set(FILTERS)
    if bad:
        raise InputError(f"unknown --filter {sorted(bad)}; choose from {', '.join(FILTERS)}")
    return out


def tile_cohort(
    slides: Sequence[str | Path],
    *,
    out: str | Path,
    specs: TileSpec | Sequence[TileSpec] | None = None,
    slide_mpp: float | str | None = None,
    spots: str | Path | None = None,
    all_spots: bool = False,
    heatmap: str | Path | None = None,
    n_tiles: int | None = None,
    min_prob: float = 0.5,
    filters: str | Sequence[str] = (),
    kmeans_model: str | Path | None = None,
    min_tissue: float = 0.5,
    tissue: str = "otsu",
    overwrite: bool = False,
    qc: bool = True,
    progress: bool = True,
    manifest: str | Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
) -> TileCohortResult:
    """Find tissue and cut tile coordinates for many slides, resumably.

    Parameters
    ----------
    slides
        Slide files, images or tile folders (a path listed twice is tiled once; two files
        with one slide name are refused).
    out
        Output folder: ``out/<spec>/<slide>.h5``, ``out/<spec>/qc/<slide>.png``,
        ``out/run.json``. Locked for the run.
    specs
        Tile specs (default ``TileSpec(224, 0.5)``); several tile each slide at each spec.
    slide_mpp
        Level-0 µm/px of slides whose files lack it, or ``"from-spots"`` (legacy ST grid).
    spots
        Spot table, or a folder of ``<slide>_selection.tsv`` / ``<slide>.csv``: spot-centred
        tiles. ``all_spots`` keeps spots not under tissue.
    heatmap
        Probability map (``.npy`` or image) or a folder of ``<slide>.npy/.png``:
        heatmap-guided tiles (top ``n_tiles`` with mean probability >= ``min_prob``).
    n_tiles
        Tiles per slide (heatmap: default 10; grid: a random N).
    filters
        Pixel filters, ``"white"`` and/or ``"kmeans"`` (a list, or ``"white,kmeans"``).
    kmeans_model
        K-means filter JSON: reused when it exists, else fitted on the first slide and saved
        (default ``out/kmeans_filter.json``).
    min_tissue, tissue
        Grid: minimum tissue fraction of a tile; the tissue detector (otsu, saturation).
    overwrite
        Redo slides already done.
    qc
        Write the QC PNGs.
    progress
        Show a progress bar (on a terminal only).
    manifest
        CSV of slides (a ``slide`` column, optionally ``slide_mpp``; relative paths from
        its folder) instead of ``slides``: one Dask task per slide.
    workers, scheduler
        With ``manifest``: LocalCluster workers (default one per GPU, else cores / 4), or
        the address of a running scheduler (``tcp://head:8786``); see
        :func:`histoexpr.runner.map_on_dask`.

    Returns
    -------
    TileCohortResult
        The outcomes per slide and spec, ``run.json`` and the failed slides.

    Raises
    ------
    InputError
        Bad settings (before any work), the folder is locked, or the only slide failed.
    OutputError
        The folder cannot be written (a full disk, read-only).

    Examples
    --------
    >>> from histoexpr.workflows import tile_cohort
    >>> res = tile_cohort(["slides/a.svs", "slides/b.svs"], out="tiles",
    ...                   specs=[TileSpec(224, 0.5)], filters=["white"])  # doctest: +SKIP
    >>> res.failed, res.table[["slide", "n_tiles"]]  # doctest: +SKIP
    """
    from ..runner import BatchOutput

    fs = _filters(filters)
    if spots is not None and heatmap is not None:
        raise InputError("give --spots or --heatmap, not both")
    spots = None if spots is None else Path(spots)
    if spots is not None and spots.is_file() and len(slides) > 1:
        raise InputError(
            f"{spots}: one spot file for {len(slides)} slides; pass a folder of "
            "<slide>_selection.tsv / <slide>.csv files instead"
        )
    spec_list = ([TileSpec(224, 0.5)] if specs is None else
                 [specs] if isinstance(specs, TileSpec) else list(specs))
    out = Path(out)
    opt = _Options(out=out, specs=spec_list, slide_mpp=slide_mpp, spots=spots,
                   all_spots=all_spots, heatmap=None if heatmap is None else Path(heatmap),
                   n_tiles=n_tiles, min_prob=min_prob, filters=fs,
                   kmeans_model=Path(kmeans_model) if kmeans_model else
                   out / "kmeans_filter.json", min_tissue=min_tissue, tissue=tissue,
                   overwrite=overwrite, qc=qc)
    items = _cohort_slides(slides, opt, manifest=manifest,
                           dask_options=workers is not None or scheduler is not None)
    paths = [p for p, _ in items]
    # locked for the run: a second run on out, or a read-only one, fails before any work
    with BatchOutput(out) as output:
        outcomes = (_tile_on_dask(items, workers=workers, scheduler=scheduler,
                                  progress=progress) if manifest is not None
                    else _tile_all(paths, opt, progress=progress))
        # a run in which every slide failed made nothing: no record that looks finished
        output.produced = any(o.status != "failed" for o in outcomes)
        record = _write_record(opt, outcomes) if output.produced else None
    return TileCohortResult(out, spec_list, outcomes, record, len(paths))
