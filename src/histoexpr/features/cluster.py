"""Feature extraction over a Dask cluster: one :mod:`histoexpr.runner` task per slide.

Each worker builds the encoder once (from its name, the network is not shipped) and keeps it
for its later slides; with GPUs each worker uses its own. A slide that fails (bad input, a
bug, a worker that dies mid-slide) is reported ``failed`` and the others go on; outputs are
never half-written (see :func:`~histoexpr.features.embed_to_h5`), so a re-run finishes
exactly the slides that are missing.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ..errors import HistoexprError
from ..runner import TaskFailed, map_on_dask, worker_device, worker_index
from .jobs import JobResult, SlideJob, run_job

logger = logging.getLogger(__name__)

__all__ = ["EncoderSpec", "embed_on_dask"]

#: encoders already built in this worker process, by (name, weights, pretrained)
_BUILT: dict[tuple, Any] = {}


@dataclass(frozen=True)
class EncoderSpec:
    """What a worker needs to build the encoder itself."""

    name: str
    weights: str | None = None
    pretrained: bool = True


def _encoder(spec: EncoderSpec):
    key = (spec.name, spec.weights, spec.pretrained)
    if key not in _BUILT:
        from .encoders import build_encoder

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
    where = f"worker {worker_index()} (pid {os.getpid()})"
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
    """Embed every job on Dask; one :class:`~histoexpr.features.jobs.JobResult` per job, in
    the order of ``jobs``.

    Parameters
    ----------
    jobs
        From :func:`~histoexpr.features.jobs.read_manifest`.
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
        Passed to :func:`~histoexpr.features.embed` (batch_size, num_workers, device, ...).
    """
    from .encoders import get_card
    from .weights import resolve_weights

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
