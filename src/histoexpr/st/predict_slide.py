"""``histoexpr predict-slide``: expression maps of a whole slide from a fitted spatial run.

Stages (each timed in ``OUT/predict_slide.json``):

1. **tissue** — the slide's tissue mask (:func:`histoexpr.tissue.detect_tissue`);
2. **tiles** — a grid of tiles of the run's spot patch (``patch_um`` in ``patch_px`` pixels,
   i.e. the model's µm/px) inside the tissue;
3. **embed** — tiles read at the model's µm/px (stain-normalised as the run was) and embedded
   with the run's encoder (or colour histograms / raw patches, as the final model needs);
4. **predict** — the run's final spot-level model on every tile;
5. **write** — ``OUT/<slide>.h5ad`` (tiles x genes), ``OUT/maps/<gene>.png`` (heatmaps over
   the thumbnail) and ``OUT/maps/<gene>.ome.tif`` (pyramidal float32 overlays at 8 µm/px,
   written tile by tile), ``OUT/<slide>.zarr`` with ``spatialdata`` (a SpatialData store:
   the slide, the tiles as squares, the predictions), ``OUT/<slide>.geojson`` (tiles with
   every predicted gene as a
   QuPath measurement) and ``OUT/predict_slide.json`` (run record).

With ``features=`` (a ``histoexpr embed`` file of this slide, made with the run's encoder at
the run's tile size and µm/px) stages 1–3 are replaced by reading that file, so a slide
embedded once serves every model fitted on that encoder.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import _keys as K
from ..atomic import atomic_path, write_json
from ..errors import InputError
from .qupath import tiles_geojson, write_tiles_geojson

logger = logging.getLogger(__name__)

__all__ = ["PredictSlideResult", "predict_slide", "tile_heatmap", "tiles_geojson"]

#: slide and model pixel sizes further apart than this (relative) give a warning
MPP_TOLERANCE = 0.25
#: tiles per embedding call (the progress bar advances after each)
CHUNK = 1024


@dataclass
class PredictSlideResult:
    """What :func:`predict_slide` wrote and measured.

    Attributes
    ----------
    adata
        Tiles x predicted genes (the contents of ``h5ad``).
    h5ad, geojson, record
        Paths of the written AnnData, GeoJSON and run record.
    maps
        One PNG per mapped gene.
    overlays
        One pyramidal OME-TIFF per mapped gene (none with ``map_mpp=None``).
    genes
        The mapped genes (the GeoJSON holds every predicted gene).
    stages
        Seconds per stage.
    warnings
        Warnings raised on the way (also in the run record).
    """

    adata: Any
    h5ad: Path
    geojson: Path
    record: Path
    maps: list[Path]
    genes: list[str]
    stages: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    overlays: list[Path] = field(default_factory=list)
    spatialdata: Path | None = None

    @property
    def n_tiles(self) -> int:
        return int(self.adata.n_obs)


def _mpp_warning(slide_mpp: float, model_mpp: float, name: str) -> str | None:
    rel = abs(slide_mpp - model_mpp) / model_mpp
    if rel <= MPP_TOLERANCE:
        return None
    how = "downsampled" if slide_mpp < model_mpp else "upsampled (detail the model saw is lost)"
    return (f"{name}: slide is {slide_mpp:.3g} µm/px but the model was fitted at "
            f"{model_mpp:.3g} µm/px ({rel:.0%} apart); tiles are {how} to the model's µm/px")


def _recentred(coords: np.ndarray, spec: Any, other: Any, slide_mpp: float) -> np.ndarray:
    """Top-left corners of ``other``-sized patches centred on ``spec``-sized tiles."""
    shift = (other.size_level0(slide_mpp) - spec.size_level0(slide_mpp)) / 2
    return np.round(np.asarray(coords, np.float64) - shift).astype(np.int64)


def _features(slide: Any, coords: np.ndarray, spec: Any, info: dict[str, Any], *, stain: Any,
              batch_size: int, device: str, num_workers: int, advance: Any,
              tta: bool = False, widths: list[int] | None = None,
              scales: tuple[float, ...] = ()) -> np.ndarray:
    """The final model's input for every tile, computed in chunks of :data:`CHUNK` tiles;
    each encoder's column count goes into ``widths`` when given. With ``scales`` (the run's
    ``--scales``) each encoder also embeds wider patches centred on each tile, side by side
    as st fit joined them."""
    from ..features.colour import COLOUR_FEATURES, colour_histogram
    from .fit import scale_specs

    kind, source = info["features"], info.get("source")
    if kind == "none":  # the mean predictor sees no image
        advance(len(coords))
        return np.zeros((len(coords), 1), np.float32)
    encoders: list[Any] = []
    if kind != "patches" and source != COLOUR_FEATURES:
        from ..features.encoders import build_encoder

        # "a+b": an ensemble of encoders, their features side by side (st fit's order)
        encoders = [build_encoder(n, pretrained=info.get("pretrained", True))
                    for n in str(source).split("+")]
    parts = []
    for i in range(0, len(coords), CHUNK):
        c = coords[i:i + CHUNK]
        if not encoders:
            tiles = slide.read_at_mpp_batch(c, spec.size_px, spec.mpp)
            if stain is not None:
                tiles = stain.transform(tiles)
            parts.append(tiles if kind == "patches" else colour_histogram(tiles))
        else:
            from ..features.extract import embed

            each = [np.concatenate([
                embed(slide, c if not tag else _recentred(c, spec, sp, slide.mpp), enc,
                      size_px=sp.size_px, mpp=sp.mpp, batch_size=batch_size,
                      num_workers=num_workers, device=device, stain=stain, tta=tta,
                      skip_unreadable=True)
                for sp, tag in scale_specs(spec, tuple(scales))], axis=1) for enc in encoders]
            if widths is not None and not widths:
                widths.extend(f.shape[1] for f in each)
            parts.append(np.concatenate(each, axis=1))
        advance(len(c))
    return np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)


def tile_heatmap(thumb: np.ndarray, dims: tuple[int, int], coords: np.ndarray, size0: float,
                 stride0: float, values: np.ndarray, gene: str, slide_name: str, *,
                 label: str = "predicted") -> Any:
    """One gene's tile values as a grid image over the thumbnail (level-0 axes).

    ``thumb`` is an RGB thumbnail of a ``dims`` (level-0 width, height) slide; ``coords`` the
    tiles' level-0 top-left corners, ``size0`` and ``stride0`` their side and grid step in
    level-0 pixels; ``label`` starts the title and names the colour bar.
    """
    from ..plot import new_figure

    w0, h0 = dims
    col = np.rint((coords[:, 0] - coords[:, 0].min()) / stride0).astype(int)
    row = np.rint((coords[:, 1] - coords[:, 1].min()) / stride0).astype(int)
    grid = np.full((row.max() + 1, col.max() + 1), np.nan) if len(coords) else np.full((1, 1),
                                                                                        np.nan)
    if len(coords):
        grid[row, col] = values
        x0 = coords[:, 0].min() + (size0 - stride0) / 2
        y0 = coords[:, 1].min() + (size0 - stride0) / 2
    else:
        x0 = y0 = 0.0
    aspect = h0 / max(w0, 1)
    fig = new_figure((7, max(2.5, 6.2 * aspect + 0.8)), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(thumb, extent=(0, w0, h0, 0))
    im = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", alpha=0.6, interpolation="nearest",
                   extent=(x0, x0 + grid.shape[1] * stride0, y0 + grid.shape[0] * stride0, y0))
    ax.set_xlim(0, w0)
    ax.set_ylim(h0, 0)
    ax.set_axis_off()
    ax.set_title(f"{slide_name}: {label} {gene}")
    fig.colorbar(im, ax=ax, shrink=0.8, label=f"{label} expression")
    return fig


def _tile_and_embed(s: Any, spec: Any, info: dict[str, Any], stages: dict[str, float],
                    task: Any, *, stain: Any, min_tissue: float, path: Path, batch_size: int,
                    device: str, num_workers: int, tta: bool = False,
                    widths: list[int] | None = None,
                    scales: tuple[float, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Stages tissue, tiles and embed; their seconds go into ``stages``."""
    from ..tiling.pipeline import tile_slide
    from ..tissue import detect_tissue

    t0 = time.perf_counter()
    adv = task("tissue")
    tissue = detect_tissue(s)
    adv()
    stages["tissue"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    adv = task("tiles")
    coords = tile_slide(s, spec, tissue=tissue, min_tissue=min_tissue).coords
    adv()
    stages["tiles"] = time.perf_counter() - t0
    if len(coords) == 0:
        raise InputError(f"{path}: no {spec.size_um:g} µm tile is {min_tissue:.0%} "
                         "on tissue; lower --min-tissue or check the slide")
    logger.info("%s: %d tiles of %s", s.name, len(coords), spec.name)

    t0 = time.perf_counter()
    x = _features(s, coords, spec, info, stain=stain, batch_size=batch_size, device=device,
                  num_workers=num_workers, advance=task("embed", len(coords)), tta=tta,
                  widths=widths, scales=scales)
    stages["embed"] = time.perf_counter() - t0
    from ..features.extract import drop_unreadable

    coords, x, _ = drop_unreadable(coords, x, source=path)  # damaged tiles: left out
    return coords, x


def _grid_step(coords: np.ndarray, size0: float) -> float:
    """The grid step of tiles made elsewhere: the smallest x offset between them."""
    steps = np.diff(np.unique(np.asarray(coords)[:, 0]))
    return float(steps[steps > 0].min()) if (steps > 0).any() else float(size0)


def _spot_step_um(run: Any) -> float | None:
    """The median spot grid step (µm) of the sections a run was fitted on (``None`` for
    runs that did not record it)."""
    sections = run.read_json(run.data_json).get("sections") or {}
    steps = [float(v["grid_step_um"]) for v in sections.values() if v.get("grid_step_um")]
    return float(np.median(steps)) if steps else None


def _tile_context(x: np.ndarray, coords: np.ndarray, radius: float, *, slide: Any, run: Any,
                  spec: Any, where: Path, step: float | None, warns: list[str],
                  from_file: bool = False, attention: bool = False) -> np.ndarray:
    """The run's spot context (:mod:`histoexpr.features.context`) over the tile grid
    (``step`` apart, in level-0 pixels; measured when ``None``): the tiles must lie on a
    grid; a radius over the whole slide, or a tile grid much finer or coarser than the spots
    the run was fitted on, is a warning."""
    from ..features.context import no_grid_reason, reach_warning, spot_grid, with_context

    def warn(msg: str) -> None:
        logger.warning("%s", msg)
        warns.append(msg)

    xy = np.asarray(coords, float)
    pool = "attention" if attention else "mean"
    fitted = f"{run.path} was fitted with --context {radius:g} (each spot beside its grid " \
             "neighbours)"
    if len(xy) < 2:
        warn(f"{slide.name}: one tile, no neighbours: its context is its own features")
        return with_context(x, xy, np.zeros(len(xy)), radius=radius, pool=pool)
    try:
        grid = spot_grid(xy, step=step)
    except InputError as e:
        raise InputError(f"{where}: {fitted}, but the tiles give no grid: {e}") from e
    if not grid.regular:
        folder = " (a folder of scattered tiles has none)" \
            if slide.vendor == "tile-folder" else ""
        fix = "drop --features to tile the whole slide" if from_file else \
            "predict from the whole slide"
        raise InputError(f"{where}: {fitted}, but these tiles are not on a grid"
                         f"{folder}: {no_grid_reason(grid, unit='tiles')}; {fix}, or use a "
                         "run fitted without --context")
    msg = reach_warning({slide.name: grid}, radius, option=f"the run's --context {radius:g}",
                        mpp=slide.mpp, what="slide")
    if msg:
        warn(msg)
    spot_um, tile_um = _spot_step_um(run), grid.step * slide.mpp
    if spot_um and abs(tile_um - spot_um) > MPP_TOLERANCE * spot_um:
        px = max(1, round(spot_um / spec.mpp))
        how = (f"tiles {px} px apart (histoexpr tile --stride {px}) match it" if from_file
               else f"--stride {px} places the tiles one spot step apart")
        warn(f"{slide.name}: the run's --context {radius:g} spanned {radius * spot_um:.0f} µm "
             f"(its spots were {spot_um:.0f} µm apart), here {radius * tile_um:.0f} µm (tiles "
             f"{tile_um:.0f} µm apart); {how}")
    return with_context(x, xy, np.zeros(len(xy)), radius=radius, step=grid.step, pool=pool)


def _safe_name(gene: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in gene)


def predict_slide(
    slide: str | Path,
    run: str | Path,
    *,
    out: str | Path,
    genes: list[str] | None = None,
    n_maps: int = 6,
    batch_size: int | None = None,
    device: str = "cpu",
    num_workers: int = 0,
    mpp: float | None = None,
    stride: int | None = None,
    min_tissue: float = 0.5,
    thumbnail_px: int = 1200,
    features: str | Path | None = None,
    quiet: bool = False,
    map_mpp: float | None = 8.0,
    spatialdata: bool = False,
    spatialdata_mpp: float | None = None,
) -> PredictSlideResult:
    """Predict expression on a grid of tiles covering a slide's tissue.

    Parameters
    ----------
    slide
        A whole-slide image (any format :func:`histoexpr.slide.open_slide` reads).
    run
        A ``histoexpr st fit`` run folder with a final model (``final/``).
    out
        Output folder (see the module docstring for what is written).
    genes
        Genes to map and to put in the GeoJSON (default: the run's ``n_maps`` best genes by
        cross-validated Pearson r). The AnnData holds every gene the model predicts.
    batch_size, device, num_workers
        Embedding options (default batch size: the run's).
    mpp
        The slide's level-0 µm/px when the file records none (the file's value wins).
    stride
        Grid step in model pixels (default: the tile size, no overlap).
    min_tissue
        Minimum tissue fraction of a tile.
    map_mpp
        µm per pixel of the ``maps/<gene>.ome.tif`` overlays (pyramidal OME-TIFF, streamed;
        :func:`~histoexpr.st.map_tiff.write_map_tiff`); ``None`` writes none.
    thumbnail_px
        Longer side of the thumbnail under the heatmaps.
    features
        A ``histoexpr embed`` file of this slide to use instead of tiling and embedding it
        (checked against the run's encoder, tile size, µm/px and stain).
    quiet
        No progress bar.
    spatialdata
        Also write ``OUT/<slide>.zarr``, a SpatialData store: the slide as a multiscale
        image, the tiles as squares, the predictions as its table
        (:func:`~histoexpr.st.sdata_out.write_spatialdata`).
    spatialdata_mpp
        Put the slide's pyramid level nearest this µm/px (not finer) in the store instead of
        level 0 (a 20x slide at 2 µm/px is 16 times smaller).

    Returns
    -------
    PredictSlideResult

    Examples
    --------
    >>> res = predict_slide("slide.svs", "runs/ridge", out="pred")  # doctest: +SKIP
    >>> res.n_tiles, res.stages["embed"]  # doctest: +SKIP
    (1532, 41.2)
    """
    import anndata as ad
    import pandas as pd

    from .. import __version__
    from ..slide import open_slide
    from ..stain import StainNormalizer
    from ..tiling.spec import TileSpec
    from .data import patch_spec, recorded_patch
    from .predict import best_genes, load_spot_model

    run_f, cfg, info, model = load_spot_model(run)
    slide_path = Path(slide)
    if not slide_path.exists():
        raise InputError(f"{slide_path}: no such slide file")
    chosen = list(genes) if genes else best_genes(run_f, info["genes"], n_maps)
    missing = [g for g in chosen if g not in info["genes"]]
    if missing:
        raise InputError(f"gene(s) {', '.join(missing)} are not predicted by {run_f.path} "
                         f"(it predicts e.g. {', '.join(info['genes'][:5])})")
    base = patch_spec(cfg, recorded=recorded_patch(run_f))
    spec = TileSpec(base.size_px, base.mpp, stride)
    stain_params = run_f.read_json(run_f.data_json).get("stain")
    stain = StainNormalizer.from_params(stain_params) if stain_params else None
    out = Path(out)
    stages: dict[str, float] = {}
    warns: list[str] = []
    widths: list[int] = []  # per encoder of an ensemble of encoders

    progress = _progress(quiet)
    t0 = time.perf_counter()  # the tissue stage includes opening the slide
    with (progress if progress is not None else nullcontext(),
          open_slide(slide_path, mpp=mpp) as s):
        def task(name: str, total: float | None = 1) -> Any:
            if progress is None:
                return lambda n=1: None
            t = progress.add_task(name, total=total)
            return lambda n=1: progress.advance(t, n)

        msg = _mpp_warning(s.mpp, spec.mpp, s.name)
        if msg:
            logger.warning("%s", msg)
            warns.append(msg)
        if features is not None:
            from ..features.store import load_features
            from .feature_file import check_feature_file

            t0 = time.perf_counter()
            adv = task("features")
            try:
                coords, x, fattrs = load_features(features)
            except (OSError, KeyError) as e:
                raise InputError(f"{features}: not a readable `histoexpr embed` file ({e})") \
                    from e
            check_feature_file(Path(features), fattrs, info, spec, stain_params, s,
                                tuple(cfg.scales))
            adv()
            stages["features"] = time.perf_counter() - t0
        else:
            coords, x = _tile_and_embed(s, spec, info, stages, task, stain=stain,
                                        min_tissue=min_tissue, path=slide_path,
                                        batch_size=batch_size or cfg.batch_size, device=device,
                                        num_workers=num_workers, tta=cfg.tta, widths=widths,
                                        scales=tuple(cfg.scales))

        size0 = spec.size_level0(s.mpp)
        stride0 = spec.stride_level0(s.mpp) if features is None else _grid_step(coords, size0)
        if cfg.context and info["features"] not in ("none", "patches"):
            # each encoder's block with its own context, as st fit joined them
            blocks = np.split(x, np.cumsum(widths)[:-1], axis=1) if len(widths) > 1 else [x]
            x = np.concatenate([
                _tile_context(b, coords, cfg.context, slide=s, run=run_f, spec=spec,
                              where=slide_path if features is None else Path(features),
                              step=stride0 if features is None or stride0 >= size0 / 2
                              else None, warns=warns if k == 0 else [],
                              from_file=features is not None,
                              attention=cfg.context_attention)
                for k, b in enumerate(blocks)], axis=1)
        t0 = time.perf_counter()
        adv = task("predict", len(coords))
        pred = np.empty((len(coords), len(info["genes"])), np.float32)
        for i in range(0, len(coords), CHUNK * 8):
            try:
                pred[i:i + CHUNK * 8] = np.asarray(model.predict(x[i:i + CHUNK * 8]),
                                                   np.float32)
            except ValueError as e:  # scikit-learn names the widths: say what to do
                if features is None or "features" not in str(e):
                    raise
                raise InputError(
                    f"{features}: {x.shape[1]} feature columns do not fit the run's final "
                    f"model ({e}); were they made by another encoder or version of "
                    f"{info.get('source')!r}? drop --features and predict-slide embeds the "
                    "slide") from e
            adv(len(pred[i:i + CHUNK * 8]))
        stages["predict"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        adv = task("write", len(chosen) * (2 if map_mpp else 1) + 3 + bool(spatialdata))
        tile_info = {**spec.to_dict(), "size_level0": float(size0),
                     "stride_level0": float(stride0),
                     "slide_mpp": float(s.mpp), "min_tissue": min_tissue}
        obs = pd.DataFrame({K.X: coords[:, 0].astype(np.int64), K.Y: coords[:, 1].astype(np.int64),
                            "tile_size": np.full(len(coords), float(size0)),
                            K.SLIDE_ID: pd.Categorical([s.name] * len(coords))},
                           index=pd.Index([f"{s.name}:{x_}_{y_}" for x_, y_ in coords]))
        adata = ad.AnnData(X=pred, obs=obs, var=pd.DataFrame(index=list(info["genes"])))
        adata.obsm[K.OBSM_SPATIAL] = coords[:, :2].astype(np.float64) + size0 / 2.0
        adata.uns["run"] = str(run_f.path.resolve())
        adata.uns["model"] = {k: str(info.get(k)) for k in ("key", "model", "features",
                                                            "source")}
        adata.uns[K.UNS_ENCODER] = str(info.get("source") or "none")
        adata.uns[K.UNS_TILE_SPEC] = tile_info
        adata.uns["slide"] = {"path": str(slide_path.resolve()), "dimensions": list(s.dimensions)}
        out.mkdir(parents=True, exist_ok=True)
        h5 = out / f"{s.name}.h5ad"
        stages_so_far = dict(stages)
        adata.uns["stage_seconds"] = {k: round(v, 3) for k, v in stages_so_far.items()}
        with atomic_path(h5, suffix=".h5ad") as tmp:
            adata.write_h5ad(tmp)
        adv()

        gi = [info["genes"].index(g) for g in chosen]
        # QuPath objects: every predicted gene a measurement, streamed to the file
        geo = write_tiles_geojson(out / f"{s.name}.geojson", coords, size0, pred,
                                  list(info["genes"]))
        adv()
        store = None
        if spatialdata:  # scverse: image, tiles as squares, predictions as the table
            from .sdata_out import write_spatialdata

            centred = adata.copy()
            centred.obs[K.X] = adata.obsm[K.OBSM_SPATIAL][:, 0]
            centred.obs[K.Y] = adata.obsm[K.OBSM_SPATIAL][:, 1]
            store = write_spatialdata(
                out / f"{s.name}.zarr", centred, images={s.name: (slide_path, s.mpp)},
                shape="square", size_px={s.name: float(size0)}, image_mpp=spatialdata_mpp,
                uns={"run": str(run_f.path), "model": info.get("model"),
                     "encoder": info.get("source"), "slide_mpp": float(s.mpp)})
            adv()

        from ..plot import save_figure

        thumb = s.thumbnail(thumbnail_px)
        maps, overlays = [], []
        for g, j in zip(chosen, gi):
            fig = tile_heatmap(thumb, s.dimensions, coords, size0, stride0,
                           pred[:, j], g, s.name)
            maps.append(save_figure(fig, out / "maps" / f"{_safe_name(g)}.png"))
            adv()
            if map_mpp:  # the same values as an overlay viewers align with the slide
                from .map_tiff import write_map_tiff

                overlays.append(write_map_tiff(out / "maps" / f"{_safe_name(g)}.ome.tif", coords,
                                           size0, stride0, pred[:, j], dims=s.dimensions,
                                           slide_mpp=s.mpp, map_mpp=map_mpp, gene=g))
                adv()
        stages["write"] = time.perf_counter() - t0

        n = len(coords)
        record = write_json(out / "predict_slide.json", {
            "version": __version__, "slide": str(slide_path.resolve()), "run": str(run_f.path),
            "model": info.get("model"), "features": info.get("features"),
            "encoder": info.get("source"), "n_tiles": n, "n_genes": len(info["genes"]),
            "map_genes": chosen, "slide_mpp": float(s.mpp), "model_mpp": float(spec.mpp),
            "tile_spec": tile_info, "device": device,
            "features_file": None if features is None else str(Path(features).resolve()),
            "stages": {k: {"seconds": round(v, 3)} for k, v in stages.items()},
            "total_seconds": round(sum(stages.values()), 3),
            "tiles_per_second": round(n / max(sum(stages.values()), 1e-9), 2),
            "warnings": warns,
            "files": {"h5ad": h5.name, "geojson": geo.name,
                      "maps": [str(p.relative_to(out)) for p in maps],
                      "overlays": [str(p.relative_to(out)) for p in overlays],
                      "spatialdata": store.name if store else None},
        })
        adv()
    logger.info("%s: %d tiles x %d genes predicted in %.1f s -> %s", s.name, n,
                len(info["genes"]), sum(stages.values()), out)
    return PredictSlideResult(adata=adata, h5ad=h5, geojson=geo, record=record, maps=maps,
                              genes=chosen, stages=stages, warnings=warns, overlays=overlays,
                              spatialdata=store)


def _progress(quiet: bool) -> Any:
    from rich.console import Console

    if quiet or not Console(stderr=True).is_terminal:  # no bar in pipes and logs
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=Console(stderr=True), transient=False)
