"""``histoexpr bulk predict --manifest``: one task per slide over a cohort (issue 21).

Each row of the manifest (CSV, paths relative to its folder) names a ``slide`` and,
optionally, its ``features`` file (``histoexpr embed`` output; default
``--features DIR/<slide>.h5``, so the manifest given to ``tile`` and ``embed`` serves here
too) and its ``patient`` (default: the TCGA barcode in the slide name). Every slide is one
task, in this process or on Dask (:func:`histoexpr.runner.run_cohort`): it reads the bag
with the run's tile choice, reads patches from the slide for patch models, and writes its
row to ``OUT/slides/<slide>.csv`` (atomically; the file marks the slide done). When all
tasks have ended, the rows of the slides that succeeded are joined in manifest order into
``OUT/predictions.csv`` and ``OUT/predictions.json``; ``OUT/run.json`` lists every slide's
status, time and worker. A rerun redoes only the slides without a row, so a run killed at
any point (driver or worker) finishes what is missing; a slide that fails (a missing or
unreadable feature file, features of another encoder) fails alone.

The predictions equal the folder mode's (:func:`~histoexpr.bulk.predict_bulk`): the same
bag reader, the same per-slide tile choice (seeded by the slide's name), the same model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..runner import ItemResult
from .predict import final_run, slide_patient

__all__ = ["BulkSlideJob", "predict_bulk_cohort"]

logger = logging.getLogger(__name__)

#: per-slide rows, under OUT
SLIDES = "slides"

#: final models already loaded in this (worker) process, by model file and its mtime
_MODELS: dict[tuple[str, int], Any] = {}


@dataclass(frozen=True)
class BulkSlideJob:
    """One slide of a ``bulk predict`` cohort."""

    name: str
    features: Path
    slide: Path | None = None
    patient: str = ""


def _model(source: str) -> Any:
    """The final model of a run folder or model file, loaded once per (worker) process."""
    import joblib

    from ..runs import BulkRunFolder
    from ..runs.portable import is_model_file, open_model

    portable = is_model_file(source)
    path = Path(source) if portable else BulkRunFolder(source).final_model
    key = (str(path), path.stat().st_mtime_ns)
    if key not in _MODELS:
        _MODELS.clear()
        _MODELS[key] = open_model(path)[1] if portable else joblib.load(path)
    return _MODELS[key]


def _predict_one(job: BulkSlideJob, *, run: str, info: dict[str, Any], heatmaps: str | None,
                 slides_dir: str | None, seed: int, out_dir: str, overwrite: bool
                 ) -> ItemResult:
    """One slide (module level: Dask workers import it)."""
    import time

    from ..atomic import write_csv
    from ..features.bags import load_bag
    from ..runner import item_failure

    row_file = Path(out_dir) / SLIDES / f"{job.name}.csv"
    source = str(job.slide or job.features)
    if row_file.is_file() and not overwrite:
        return ItemResult(job.name, "done before", source=source)
    t0 = time.perf_counter()
    try:
        if not job.features.is_file():
            raise InputError(f"{job.features}: no feature file for slide {job.name}; run "
                             "`histoexpr embed` on it with the run's encoder "
                             f"({info['encoder']}), or give its `features` in the manifest")
        bag = load_bag(job.features, select=info["select"], n=info["n_tiles"],
                       heatmaps=heatmaps, seed=seed, slide=job.name)
        if info["encoder"] is not None and bag.encoder not in (None, info["encoder"]):
            raise InputError(f"{job.features}: features of encoder {bag.encoder!r}, the model "
                             f"was trained on {info['encoder']!r}; embed the slide with "
                             f"`histoexpr embed --encoder {info['encoder']}`")
        if bag.dim != info["n_features"]:
            raise InputError(f"{job.features}: features of size {bag.dim}, the model expects "
                             f"{info['n_features']}; embed with encoder {info['encoder']!r}")
        x: Any = bag
        if info.get("input_kind") == "patch_bags":
            from ..features.bags import read_bag_patches

            x = read_bag_patches(bag, slides_dir=slides_dir)
        pred = np.asarray(_model(run).predict([x]), np.float32).reshape(1, -1)
    except Exception as e:
        if not item_failure(e):
            raise
        return ItemResult(job.name, "failed", seconds=time.perf_counter() - t0,
                          message=str(e), source=source)
    df = pd.DataFrame(pred, index=pd.Index([job.name], name="slide"), columns=info["genes"])
    df.insert(0, "patient", slide_patient(job.name, job.patient))
    write_csv(row_file, df)
    return ItemResult(job.name, "done", len(bag), time.perf_counter() - t0, source=source)


def _jobs(manifest: Path, features: Path | None) -> list[BulkSlideJob]:
    from ..runner import manifest_rows, unique_items
    from ..slide import slide_name

    rows = manifest_rows(manifest)
    keep = set(unique_items([r.slide for r in rows], name=slide_name))
    jobs = []
    for r in rows:
        if r.slide not in keep:
            continue
        keep.discard(r.slide)
        name = slide_name(r.slide)
        given = r.columns.get("features")
        if given:
            feats = manifest.parent / given
        elif features is not None:
            feats = features / f"{name}.h5"
        else:
            raise InputError(f"{manifest}, line {r.line}: no feature file for {r.slide}; add "
                             "a `features` column or pass --features DIR (the `histoexpr "
                             "embed` output folder)")
        jobs.append(BulkSlideJob(name, feats, r.slide, r.columns.get("patient", "")))
    return jobs


def predict_bulk_cohort(
    run: str | Path, manifest: str | Path, *, out: str | Path | None = None,
    features: str | Path | None = None, heatmaps: str | Path | None = None,
    slides_dir: str | Path | None = None, seed: int | None = None,
    workers: int | None = None, scheduler: str | None = None, overwrite: bool = False,
    in_process: bool = False,
) -> tuple[pd.DataFrame, list[ItemResult]]:
    """Predict every slide of ``manifest`` with the final model of a bulk ``run``.

    Parameters
    ----------
    run
        The ``histoexpr bulk fit`` run folder.
    manifest
        CSV with a ``slide`` column and optionally ``features``, ``patient``.
    out
        Output folder (default ``RUN/predict``); locked for the run.
    features
        Folder of ``<slide>.h5`` for rows without a ``features`` column.
    workers, scheduler
        Dask: a LocalCluster of ``workers`` (default: one per GPU, else a quarter of the
        cores) or a running ``scheduler``; ``in_process`` runs the slides here instead.

    Returns
    -------
    The predictions (slides x genes, with ``patient``, in manifest order; failed slides left
    out) and one :class:`~histoexpr.runner.ItemResult` per slide.
    """
    from ..atomic import write_csv, write_json
    from ..runner import run_cohort
    from ..runs import files

    rf, info, cfg = final_run(run)
    if info["select"] == "top" and not (heatmaps or cfg.heatmaps):
        raise InputError(f"{rf.path}: the run picks the top tiles of a tumour heatmap; pass "
                         "--heatmaps DIR for the new slides")
    if out is None:
        from ..runs.portable import is_model_file, portable_output

        out = portable_output(run) if is_model_file(run) else rf.path / files.PREDICT
    out = Path(out)
    manifest = Path(manifest)
    jobs = _jobs(manifest, Path(features) if features is not None else None)
    source = str(Path(run).resolve())  # the run folder or model file the workers load
    joined: list[pd.DataFrame] = []

    def join(results: list[ItemResult]) -> None:  # under the run's lock, before run.json
        ok = [j.name for j, r in zip(jobs, results, strict=True) if r.status != "failed"]
        df = pd.concat([pd.read_csv(out / SLIDES / f"{n}.csv", index_col="slide",
                                    dtype={"patient": str}, keep_default_na=False)
                        for n in ok])
        path = out / files.PREDICTIONS_CSV
        write_csv(path, df)
        write_json(path.with_suffix(".json"), {
            "run": source, "manifest": str(manifest), "model": info["model"],
            "encoder": info["encoder"], "units": info["transform"], "n_slides": len(df),
            "failed": {r.name: r.message for r in results if r.status == "failed"}})
        logger.info("predicted %d slides x %d genes -> %s", len(df), len(info["genes"]), path)
        joined.append(df)

    results = run_cohort(
        jobs, _predict_one, names=[j.name for j in jobs], out=out, command="bulk-predict",
        on_dask=not in_process, workers=workers,
        scheduler=scheduler, record={"run": source, "manifest": str(manifest)}, finish=join,
        run=source, info=info, heatmaps=str(heatmaps or cfg.heatmaps or "") or None,
        slides_dir=str(slides_dir or cfg.slides_dir or "") or None,
        seed=cfg.seed if seed is None else seed, out_dir=str(out), overwrite=overwrite)
    empty = pd.DataFrame(columns=["patient", *info["genes"]]).rename_axis("slide")
    return (joined[0] if joined else empty), results
