"""``predict-slide`` over a cohort: every slide of a list or a manifest through one spatial
run, in this process or as one Dask task per slide (issue 21).

Each slide writes ``OUT/<slide>/`` (its ``.h5ad``, ``.geojson``, ``maps/`` and, last,
``predict_slide.json``); a slide whose record exists is done and skipped by a rerun, so a
run killed at any point (driver or worker) finishes with the slides that are missing, and a
slide killed half-way is redone whole. ``OUT/run.json`` lists each slide's status, tiles,
seconds and the worker that ran it; a second run on ``OUT`` is refused while the first
holds it. A manifest (CSV) has a ``slide`` column and optionally ``slide_mpp`` and
``features`` (the slide's ``histoexpr embed`` file).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import InputError

__all__ = ["SlidePrediction", "predict_cohort"]

logger = logging.getLogger(__name__)

#: the file a slide writes last: its presence means the slide is done
RECORD = "predict_slide.json"


@dataclass(frozen=True)
class SlidePrediction:
    """One slide of a cohort: ``status`` is ``done``, ``done before`` or ``failed``."""

    name: str
    status: str
    n_tiles: int = 0
    seconds: float = 0.0
    message: str = ""
    where: str = ""
    slide: str = ""


@dataclass(frozen=True)
class _Job:
    slide: Path
    out: Path
    slide_mpp: float | None = None
    features: Path | None = None


def _predict_one(job: _Job, run: str, options: dict[str, Any], overwrite: bool
                 ) -> SlidePrediction:
    """One slide; bad input becomes a ``failed`` result (the others go on)."""
    from ..errors import HistoexprError, OutputError
    from ..runner import worker_index
    from ..slide import slide_name
    from .predict_slide import predict_slide

    name = slide_name(job.slide)
    where = f"worker {worker_index()} (pid {os.getpid()})" if _on_worker() else ""
    if (job.out / RECORD).is_file() and not overwrite:
        return SlidePrediction(name, "done before", where=where, slide=str(job.slide))
    t0 = time.perf_counter()
    try:
        res = predict_slide(job.slide, run, out=job.out, mpp=job.slide_mpp,
                            features=job.features, quiet=True, **options)
    except OutputError:
        raise  # a full disk: every other slide would fail alike
    except HistoexprError as e:
        return SlidePrediction(name, "failed", message=str(e), where=where,
                               seconds=time.perf_counter() - t0, slide=str(job.slide))
    return SlidePrediction(name, "done", res.n_tiles, time.perf_counter() - t0, where=where,
                           slide=str(job.slide))


def _on_worker() -> bool:
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return False
    return True


def _task(job: _Job, *, run: str, options: dict[str, Any], overwrite: bool
          ) -> SlidePrediction:
    """Runs on a Dask worker (one GPU each when there are GPUs)."""
    from ..runner import worker_device

    opts = dict(options)
    if opts.get("device") in (None, "auto"):
        opts["device"] = worker_device() or "cpu"
    return _predict_one(job, run, opts, overwrite)


def _jobs(slides: Sequence[str | Path], out: Path, manifest: str | Path | None,
          dask_options: bool) -> list[_Job]:
    from ..runner import manifest_rows, unique_items
    from ..slide import slide_name

    if manifest is None:
        if dask_options:
            raise InputError("--workers / --scheduler run on Dask and need --manifest "
                             "slides.csv")
        if not slides:
            raise InputError("no slides: list SLIDE files or pass --manifest slides.csv")
        return [_Job(p, out / slide_name(p)) for p in unique_items(slides, name=slide_name)]
    if slides:
        raise InputError("give slides either on the command line or in --manifest, not both")
    rows = manifest_rows(manifest)
    unique_items([r.slide for r in rows], name=slide_name)  # two files, one name: refused
    seen: set[Path] = set()
    jobs = []
    for r in rows:
        if r.slide in seen:
            continue
        seen.add(r.slide)
        feats = r.columns.get("features")
        jobs.append(_Job(r.slide, out / slide_name(r.slide), r.slide_mpp,
                         Path(manifest).parent / feats if feats else None))
    return jobs


def predict_cohort(
    slides: Sequence[str | Path] = (), *, run: str | Path, out: str | Path,
    manifest: str | Path | None = None, workers: int | None = None,
    scheduler: str | None = None, overwrite: bool = False, slide_mpp: float | None = None,
    **options: Any,
) -> list[SlidePrediction]:
    """Predict every slide with a spatial run, resumably; one result per slide in input
    order.

    Parameters
    ----------
    slides, manifest
        Slide files, or a manifest CSV (``slide`` [, ``slide_mpp``, ``features``]): one
        Dask task per slide on a LocalCluster (``workers``) or a running ``scheduler``.
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
    from ..atomic import write_json
    from ..runner import BatchOutput, map_on_dask
    from .predict import load_spot_model

    out = Path(out)
    jobs = _jobs(slides, out, manifest, workers is not None or scheduler is not None)
    jobs = [j if j.slide_mpp is not None else replace(j, slide_mpp=slide_mpp) for j in jobs]
    load_spot_model(run)  # a bad run folder fails once, here, not once per slide
    run = str(Path(run).resolve())
    t0 = time.perf_counter()
    with BatchOutput(out) as output:
        if manifest is None:
            results = []
            for k, job in enumerate(jobs, 1):
                results.append(_predict_one(job, run, options, overwrite))
                _log(results[-1], k, len(jobs))
        else:
            def hook(i: int, value: Any, k: int, n: int) -> None:
                _log(_as_result(jobs[i], value), k, n)

            values = map_on_dask(_task, jobs, names=[f"predict-{j.out.name}" for j in jobs],
                                 workers=workers, scheduler=scheduler, on_result=hook,
                                 run=run, options=options, overwrite=overwrite)
            results = [_as_result(j, v) for j, v in zip(jobs, values)]
        output.produced = any(r.status != "failed" for r in results)
        if output.produced:
            counts = {s: sum(r.status == s for r in results)
                      for s in ("done", "done before", "failed")}
            write_json(out / "run.json", {
                "command": "predict-slide", "run": run, "on_dask": manifest is not None,
                "counts": counts, "seconds": round(time.perf_counter() - t0, 3),
                "slides": [r.__dict__ for r in results]})
    return results


def _as_result(job: _Job, value: Any) -> SlidePrediction:
    from ..runner import TaskFailed

    if isinstance(value, TaskFailed):
        return SlidePrediction(job.out.name, "failed", message=value.message,
                               slide=str(job.slide))
    return value


def _log(r: SlidePrediction, k: int, n: int) -> None:
    log = logger.error if r.status == "failed" else logger.info
    log("[%d/%d] %s: %s%s", k, n, r.name, r.status, f" ({r.message})" if r.message else "")
