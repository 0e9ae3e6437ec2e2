"""Prediction over a cohort (issue 21): ``predict-slide`` for every slide, and ``st
predict`` for every section, of a list or a manifest, in this process or as one Dask task
each (:func:`histoexpr.runner.run_cohort`).

``predict-slide`` writes ``OUT/<slide>/`` per slide (its ``.h5ad``, ``.geojson``, ``maps/``
and, last, ``predict_slide.json``); ``st predict`` writes ``OUT/<section>_*`` per section
(``<section>_predict.json`` last). An item whose record exists is done and skipped by a
rerun, so a run killed at any point (driver or worker) finishes the items that are
missing, and an item killed half-way is redone whole. ``OUT/run.json`` lists each item's
status, count, seconds and worker; a second run on ``OUT`` is refused while the first holds
it.

Manifests (CSV, relative paths from the manifest's folder):

- slides: ``slide`` [, ``slide_mpp``, ``features`` (the slide's ``histoexpr embed`` file)];
- sections: ``image``, ``spots`` [, ``section``, ``mpp``, ``counts``].
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..runner import ItemResult

__all__ = ["SectionJob", "SlideJob", "predict_cohort", "predict_sections"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlideJob:
    """One slide of a ``predict-slide`` cohort."""

    slide: Path
    out: Path
    slide_mpp: float | None = None
    features: Path | None = None


@dataclass(frozen=True)
class SectionJob:
    """One section of an ``st predict`` cohort."""

    section: str
    image: Path
    spots: Path
    mpp: float | None = None
    counts: Path | None = None


def _predict_slide(job: SlideJob, *, run: str, options: dict[str, Any],
                   overwrite: bool) -> ItemResult:
    """One slide (module level: Dask workers import it)."""
    from ..runner import worker_device
    from .predict_slide import predict_slide

    name = job.out.name
    if (job.out / "predict_slide.json").is_file() and not overwrite:
        return ItemResult(name, "done before", source=str(job.slide))
    opts = dict(options)
    if opts.get("device") is None:  # one GPU per Dask worker, when there are GPUs
        opts["device"] = worker_device() or "cpu"
    return _attempt(name, job.slide, lambda: predict_slide(
        job.slide, run, out=job.out, mpp=job.slide_mpp, features=job.features, quiet=True,
        **opts).n_tiles)


def _predict_section(job: SectionJob, *, run: str, out_dir: str, genes: list[str] | None,
                     overwrite: bool) -> ItemResult:
    """One section (module level: Dask workers import it)."""
    from ..runs.files import PREDICT_RECORD
    from .predict import predict_section

    name = job.section or job.image.stem  # st predict's default section id
    if (Path(out_dir) / PREDICT_RECORD.format(section=name)).is_file() and not overwrite:
        return ItemResult(name, "done before", source=str(job.image))
    return _attempt(name, job.image, lambda: predict_section(
        run, job.image, job.spots, out=out_dir, mpp=job.mpp, section=name, genes=genes,
        counts=job.counts).n_obs)


def _attempt(name: str, source: Path, work: Any) -> ItemResult:
    """``work()`` (returning what it made: tiles, spots) timed as one item; bad input of
    this item is a ``failed`` result, anything else is raised."""
    from ..runner import item_failure

    t0 = time.perf_counter()
    try:
        n = work()
    except Exception as e:
        if not item_failure(e):
            raise
        return ItemResult(name, "failed", seconds=time.perf_counter() - t0, message=str(e),
                          source=str(source))
    return ItemResult(name, "done", int(n), time.perf_counter() - t0, source=str(source))


def _slide_jobs(slides: Sequence[str | Path], out: Path, manifest: str | Path | None,
                slide_mpp: float | None) -> list[SlideJob]:
    from ..runner import manifest_rows, unique_items
    from ..slide import slide_name

    if manifest is None:
        return [SlideJob(p, out / slide_name(p), slide_mpp)
                for p in unique_items(slides, name=slide_name)]
    rows = manifest_rows(manifest, slide_mpp=slide_mpp)
    keep = set(unique_items([r.slide for r in rows], name=slide_name))  # one name, two files
    jobs = []
    for r in rows:
        if r.slide in keep:
            keep.discard(r.slide)
            feats = r.columns.get("features")
            jobs.append(SlideJob(r.slide, out / slide_name(r.slide), r.slide_mpp,
                                 Path(manifest).parent / feats if feats else None))
    return jobs


def predict_cohort(
    slides: Sequence[str | Path] = (), *, run: str | Path, out: str | Path,
    manifest: str | Path | None = None, workers: int | None = None,
    scheduler: str | None = None, overwrite: bool = False, slide_mpp: float | None = None,
    **options: Any,
) -> list[ItemResult]:
    """``predict-slide`` for every slide with one spatial run, resumably; one result per
    slide in input order (``n``: its tiles).

    Parameters
    ----------
    slides, manifest
        Slide files (in this process), or a manifest CSV (``slide`` [, ``slide_mpp``,
        ``features``]): one Dask task per slide on a LocalCluster (``workers``) or a
        running ``scheduler``.
    run
        The ``histoexpr st fit`` run folder.
    out
        ``out/<slide>/`` per slide and ``out/run.json``; locked for the run.
    overwrite
        Redo slides already done.
    slide_mpp
        µm/px of slides whose files record none (a manifest row's own value wins).
    options
        Passed to :func:`~histoexpr.st.predict_slide.predict_slide` (genes, n_maps,
        batch_size, device, num_workers, stride, min_tissue).
    """
    from ..runner import check_cohort_inputs, run_cohort
    from .predict import load_spot_model

    check_cohort_inputs(slides, manifest, dask_options=workers is not None
                        or scheduler is not None)
    out = Path(out)
    jobs = _slide_jobs(slides, out, manifest, slide_mpp)
    load_spot_model(run)  # a bad run folder fails once, here, not once per slide
    run = str(Path(run).resolve())
    return run_cohort(jobs, _predict_slide, names=[j.out.name for j in jobs], out=out,
                      command="predict-slide", on_dask=manifest is not None, workers=workers,
                      scheduler=scheduler, record={"run": run}, run=run, options=options,
                      overwrite=overwrite)


def _section_jobs(manifest: str | Path) -> list[SectionJob]:
    from ..runner import manifest_rows

    path = Path(manifest)
    jobs, seen = [], set()
    for r in manifest_rows(path, slide="image", mpp="mpp"):
        c = r.columns
        if not c.get("spots"):
            raise InputError(f"{path}, line {r.line}: no spots file for {c['image']} (a "
                             "sections manifest has the columns image and spots, and "
                             "optionally section, mpp, counts)")
        job = SectionJob(c.get("section", ""), r.slide, path.parent / c["spots"],
                         r.slide_mpp, path.parent / c["counts"] if c.get("counts") else None)
        key = job.section or job.image.stem
        if key in seen:
            raise InputError(f"{path}, line {r.line}: section {key} is listed twice; give "
                             "each section once (or a distinct `section` name)")
        seen.add(key)
        jobs.append(job)
    return jobs


def predict_sections(manifest: str | Path, *, run: str | Path, out: str | Path,
                     genes: list[str] | None = None, workers: int | None = None,
                     scheduler: str | None = None, overwrite: bool = False
                     ) -> list[ItemResult]:
    """``st predict`` for every section of a manifest (``image``, ``spots`` [, ``section``,
    ``mpp``, ``counts``]), one Dask task each; one result per section (``n``: its spots).
    Outputs in ``out`` as ``st predict`` names them, and ``out/run.json``."""
    from ..runner import run_cohort
    from .predict import load_spot_model

    jobs = _section_jobs(manifest)
    load_spot_model(run)
    run = str(Path(run).resolve())
    names = [j.section or j.image.stem for j in jobs]
    return run_cohort(jobs, _predict_section, names=names, out=Path(out), command="st-predict",
                      on_dask=True, workers=workers, scheduler=scheduler,
                      record={"run": run}, run=run, out_dir=str(out), genes=genes,
                      overwrite=overwrite)
