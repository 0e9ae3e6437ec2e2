"""One slide's embedding as a job: what to read, where to write, how it ended; and a batch
of jobs over a Dask cluster.

The in-process loop of ``histoexpr embed`` and the Dask tasks of :func:`embed_on_dask` run
the same :func:`run_job`, so a slide comes out the same either way. A manifest CSV lists the
jobs of a batch run:

.. code-block:: text

    slide,coords,slide_mpp
    /data/a.svs,,
    b.jpg,tiles/b.h5,0.5

``slide`` is required; ``coords`` defaults to ``<coords dir>/<slide name>.h5``; ``slide_mpp``
fills in the pixel size of files that do not record it. Relative paths are taken from the
manifest's folder.

On Dask (:func:`embed_on_dask`, one :mod:`histoexpr.runner` task per slide) each worker
builds the encoder once (from its name, the network is not shipped) and keeps it for its
later slides; with GPUs each worker uses its own. A slide that fails (bad input, a bug, a
worker that dies mid-slide) is reported ``failed`` and the others go on; outputs are never
half-written (see :func:`~histoexpr.features.extract.embed_to_h5`), so a re-run finishes
exactly the slides that are missing.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import _keys as K
from ..errors import HistoexprError, InputError
from ..runner import TaskFailed, map_on_dask, worker_device, worker_label
from ..slide import open_slide, slide_checksum, slide_name
from ..tiling import load_coords
from .encoders import build_encoder, get_card, resolve_weights
from .extract import embed_to_h5

logger = logging.getLogger(__name__)

__all__ = ["EncoderSpec", "JobResult", "SlideJob", "embed_on_dask", "make_job", "read_manifest",
           "run_job"]

#: encoders already built in this worker process, by (name, weights, pretrained)
_BUILT: dict[tuple, Any] = {}


@dataclass(frozen=True)
class SlideJob:
    """Embed ``slide`` at the tiles of ``coords`` into ``out``."""

    slide: Path
    coords: Path
    out: Path
    slide_mpp: float | None = None

    @property
    def name(self) -> str:
        return self.out.stem


@dataclass(frozen=True)
class JobResult:
    """How a job ended: ``status`` is ``done``, ``done before``, ``locked`` or ``failed``."""

    name: str
    status: str
    n_tiles: int = 0
    seconds: float = 0.0
    message: str = ""
    where: str = ""  # worker that ran it (Dask) or "" in-process


def make_job(slide: str | Path, out_dir: Path, *, coords: str | Path | None = None,
             coords_dir: Path | None = None, slide_mpp: float | None = None) -> SlideJob:
    """A job with the usual file names: ``out_dir/<name>.h5`` from ``coords_dir/<name>.h5``."""
    slide = Path(slide)
    name = slide_name(slide)
    if coords is None:
        if coords_dir is None:
            raise InputError(f"{slide}: no coordinates given; pass --coords DIR (the output "
                             "folder of `histoexpr tile`) or a `coords` column in the manifest")
        coords = coords_dir / f"{name}.h5"
    return SlideJob(slide, Path(coords), out_dir / f"{name}.h5", slide_mpp)


def read_manifest(path: str | Path, out_dir: Path, *, coords_dir: Path | None = None,
                  slide_mpp: float | None = None) -> list[SlideJob]:
    """Jobs from a manifest CSV (columns ``slide`` and optionally ``coords``, ``slide_mpp``).

    Raises :class:`~histoexpr.errors.InputError` naming the manifest and line for a missing
    ``slide`` column, an unreadable pixel size, or two rows that would write the same output.
    """
    from ..runner import manifest_rows

    path = Path(path)
    base = path.parent
    jobs: list[SlideJob] = []
    seen: dict[str, tuple[int, str, SlideJob]] = {}
    for r in manifest_rows(path, slide_mpp=slide_mpp):
        line, row, mpp = r.line, r.columns, r.slide_mpp
        coords = base / row["coords"] if row.get("coords") else None
        job = make_job(r.slide, out_dir, coords=coords, coords_dir=coords_dir, slide_mpp=mpp)
        if job.name in seen:
            first, first_slide, other = seen[job.name]
            if other.slide.resolve() == job.slide.resolve():
                raise InputError(f"{path}: lines {first} and {line} both list slide "
                                 f"{row['slide']}; delete one of the two rows")
            raise InputError(f"{path}: lines {first} ({first_slide}) and {line} "
                             f"({row['slide']}) would both write {job.out.name}; rename one "
                             "of the slides, or list them in separate manifests")
        seen[job.name] = (line, row["slide"], job)
        jobs.append(job)
    return jobs


def _written_by(path: Path, run_id: str) -> int | None:
    """Tile count of ``path`` if this run (``run_id``) wrote it, else ``None``."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("run_id") == run_id:
                return len(f[K.H5_FEATURES])
    except (OSError, KeyError):
        pass
    return None


def run_job(job: SlideJob, encoder: Any, *, stain: Any = None, overwrite: bool = False,
            run_id: str | None = None, **embed_kwargs: Any) -> JobResult:
    """Embed one slide; bad input raises :class:`~histoexpr.errors.HistoexprError`.

    The coordinates must have been cut from this very file: the SHA-256 recorded at tiling
    time is checked (a stale or swapped coords file is an error, not wrong features).
    ``run_id`` is stored in the output; a job that finds its own run's output (Dask
    recomputes a finished task whose worker died before the result was collected) reports
    ``done``, not ``done before``.
    """
    t0 = time.perf_counter()
    if job.out.exists() and not overwrite:
        n = _written_by(job.out, run_id) if run_id else None
        return JobResult(job.name, "done before") if n is None else JobResult(job.name, "done", n)
    if not job.coords.exists():
        raise InputError(f"{job.coords}: no coordinates for {job.slide}; run `histoexpr tile` "
                         "first")
    coords, attrs = load_coords(job.coords)
    # a file without a pixel size (JPEG section) gets the one it was tiled at
    mpp = job.slide_mpp or (float(attrs["level0_mpp"]) if "level0_mpp" in attrs else None)
    with open_slide(job.slide, mpp=mpp) as slide:
        recorded = str(attrs.get("slide_sha256", ""))
        if recorded and recorded != slide_checksum(slide):
            raise InputError(
                f"{job.coords}: these coordinates were cut from another file than {job.slide} "
                "(checksum differs); re-run `histoexpr tile` on this slide"
            )
        _, status = embed_to_h5(
            job.out, slide, coords, encoder, size_px=int(attrs["patch_size"]),
            mpp=float(attrs["mpp"]), overwrite=overwrite, stain=stain,
            extra_attrs={"coords_file": str(job.coords.resolve()),
                         "stain": None if stain is None else stain.params(),
                         **({"run_id": run_id} if run_id else {})}, **embed_kwargs,
        )
    n = _n_rows(job.out) if status == "done" else 0  # unreadable tiles are left out
    return JobResult(job.name, status, n, time.perf_counter() - t0)


def _n_rows(path: Path) -> int:
    import h5py

    with h5py.File(path, "r") as f:
        return len(f[K.H5_FEATURES])


# -- a batch on Dask -------------------------------------------------------------------------
@dataclass(frozen=True)
class EncoderSpec:
    """What a worker needs to build the encoder itself."""

    name: str
    weights: str | None = None
    pretrained: bool = True


def _encoder(spec: EncoderSpec):
    key = (spec.name, spec.weights, spec.pretrained)
    if key not in _BUILT:
        _BUILT[key] = build_encoder(spec.name, weights=spec.weights, pretrained=spec.pretrained)
    return _BUILT[key]


def _task(job: SlideJob, *, spec: EncoderSpec, stain: Any, overwrite: bool, run_id: str,
          embed_kwargs: dict[str, Any]) -> JobResult:
    """Runs on a worker: embed one slide; bad input becomes a ``failed`` result."""
    kw = dict(embed_kwargs)
    if kw.get("device") is None:
        kw["device"] = worker_device()
    if kw.get("num_workers", 0) > 0 and multiprocessing.current_process().daemon:
        logger.warning("this Dask worker is a daemon process and cannot start DataLoader "
                       "workers; reading tiles in the worker itself (start the workers with "
                       "distributed.worker.daemon: false to allow them)")
        kw["num_workers"] = 0
    where = worker_label()
    try:
        res = run_job(job, _encoder(spec), stain=stain, overwrite=overwrite, run_id=run_id,
                      **kw)
    except HistoexprError as e:
        return JobResult(job.name, "failed", message=str(e), where=where)
    return replace(res, where=where)


def embed_on_dask(
    jobs: list[SlideJob],
    encoder: EncoderSpec,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    stain: Any = None,
    overwrite: bool = False,
    on_result: Callable[[JobResult, int, int], None] | None = None,
    **embed_kwargs: Any,
) -> list[JobResult]:
    """Embed every job on Dask; one :class:`JobResult` per job, in the order of ``jobs``.

    Parameters
    ----------
    jobs
        From :func:`read_manifest`.
    encoder
        Name and weights the workers build the encoder from.
    workers, scheduler
        A LocalCluster of this size, or a running scheduler; see
        :func:`histoexpr.runner.map_on_dask`.
    stain
        A fitted stain normaliser, shipped to the workers.
    on_result
        Called as ``on_result(result, n_finished, n_total)`` when each slide ends.
    embed_kwargs
        Passed to :func:`~histoexpr.features.extract.embed` (batch_size, num_workers, device, ...).
    """
    card = get_card(encoder.name)  # unknown names and missing weights fail here, not N times
    if encoder.pretrained:
        resolve_weights(card, path=encoder.weights)

    def as_result(i: int, value: Any) -> JobResult:
        if isinstance(value, TaskFailed):
            return JobResult(jobs[i].name, "failed", message=value.message)
        return value

    def hook(i: int, value: Any, k: int, n: int) -> None:
        if on_result is not None:
            on_result(as_result(i, value), k, n)

    # the run id lets a task that Dask recomputes (its worker died after finishing) recognise
    # its own output and report it as done, not "done before"
    values = map_on_dask(
        _task, jobs, names=[f"embed-{j.name}" for j in jobs], workers=workers,
        scheduler=scheduler, on_result=hook, spec=encoder, stain=stain, overwrite=overwrite,
        run_id=uuid.uuid4().hex, embed_kwargs=embed_kwargs,
    )
    return [as_result(i, v) for i, v in enumerate(values)]
