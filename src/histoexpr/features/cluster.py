"""Feature extraction spread over a Dask distributed cluster: one task per slide.

:func:`embed_on_dask` starts a ``LocalCluster`` (one process per worker, one thread each,
one GPU each when there are GPUs) or connects to a running scheduler, submits one task per
:class:`~histoexpr.features.jobs.SlideJob` in manifest order, and returns one
:class:`~histoexpr.features.jobs.JobResult` per slide as they finish.

Each worker builds the encoder once and keeps it for its later slides. A slide that fails
(bad input, a bug, a worker that dies mid-slide) is reported ``failed`` and the others go
on; its output is never half-written (see :func:`~histoexpr.features.embed_to_h5`), so a
re-run finishes exactly the slides that are missing.

On the ``LocalCluster`` this module starts, a worker death fails its slide at once
(``distributed.scheduler.allowed-failures = 0``) and each worker holds one slide at a time
(``worker-saturation = 1``), so one death costs one slide. A cluster you start yourself
keeps its own settings (by default Dask retries a slide on three worker deaths).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ..errors import HistoexprError, InputError
from .jobs import JobResult, SlideJob, run_job

logger = logging.getLogger(__name__)

__all__ = ["EncoderSpec", "embed_on_dask"]

#: encoders already built in this worker process, by (name, weights, pretrained)
_BUILT: dict[tuple, Any] = {}


@dataclass(frozen=True)
class EncoderSpec:
    """What a worker needs to build the encoder itself (the network is not shipped)."""

    name: str
    weights: str | None = None
    pretrained: bool = True


def _encoder(spec: EncoderSpec):
    key = (spec.name, spec.weights, spec.pretrained)
    if key not in _BUILT:
        from .encoders import build_encoder

        _BUILT[key] = build_encoder(spec.name, weights=spec.weights, pretrained=spec.pretrained)
    return _BUILT[key]


def _worker_index() -> int:
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return 0
    return name if isinstance(name, int) else 0


def _task(job: SlideJob, spec: EncoderSpec, stain: Any, overwrite: bool,
          embed_kwargs: dict[str, Any], torch_threads: int | None, run_id: str) -> JobResult:
    """Runs on a worker: embed one slide, bad input becomes a ``failed`` result."""
    import torch

    if torch_threads:
        torch.set_num_threads(torch_threads)
    kw = dict(embed_kwargs)
    if kw.get("device") is None and torch.cuda.is_available():
        kw["device"] = f"cuda:{_worker_index() % torch.cuda.device_count()}"
    if kw.get("num_workers", 0) > 0 and multiprocessing.current_process().daemon:
        logger.warning("this Dask worker is a daemon process and cannot start DataLoader "
                       "workers; reading tiles in the worker itself (start the workers with "
                       "distributed.worker.daemon: false to allow them)")
        kw["num_workers"] = 0
    where = f"worker {_worker_index()} (pid {os.getpid()})"
    try:
        res = run_job(job, _encoder(spec), stain=stain, overwrite=overwrite, run_id=run_id,
                      **kw)
    except HistoexprError as e:
        return JobResult(job.name, "failed", message=str(e), where=where)
    return replace(res, where=where)


def _n_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except ImportError:
        return 0


def _local_cluster(workers: int | None):
    """A LocalCluster: one process and thread per worker, one GPU each when present."""
    import dask
    from distributed import LocalCluster

    gpus = _n_gpus()
    n = workers or (gpus or max(1, (os.cpu_count() or 1) // 4))
    if gpus and n > gpus:
        logger.warning("%d workers share %d GPUs", n, gpus)
    with dask.config.set({
        "distributed.worker.daemon": False,  # DataLoader worker processes are allowed
        "distributed.scheduler.allowed-failures": 0,  # a worker death fails its slide
        "distributed.scheduler.worker-saturation": 1.0,  # one slide per worker at a time
    }):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
    threads = None if gpus else max(1, (os.cpu_count() or 1) // n)
    return cluster, n, threads


def _explain(exc: BaseException) -> str:
    from distributed.scheduler import KilledWorker

    if isinstance(exc, KilledWorker):
        return ("the Dask worker died while embedding this slide (out of memory or killed); "
                "re-run the same command to finish it")
    return f"{type(exc).__name__}: {exc}"


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
    """Embed every job on Dask; one result per job, in the order of ``jobs``.

    Parameters
    ----------
    jobs
        From :func:`~histoexpr.features.jobs.read_manifest`.
    encoder
        Name and weights the workers build the encoder from.
    workers
        LocalCluster size (default: one per GPU, else a quarter of the CPU cores).
    scheduler
        Address of a running scheduler (``tcp://host:8786``) instead of a LocalCluster;
        its workers need histoexpr installed and the slides at the same paths.
    stain
        A fitted stain normaliser, shipped to the workers.
    on_result
        Called as ``on_result(result, n_finished, n_total)`` when each slide ends.
    embed_kwargs
        Passed to :func:`~histoexpr.features.embed` (batch_size, num_workers, device, ...).
    """
    from distributed import Client, as_completed

    from .encoders import get_card
    from .weights import resolve_weights

    card = get_card(encoder.name)  # unknown names and missing weights fail here, not N times
    if encoder.pretrained:
        resolve_weights(card, path=encoder.weights)
    if not jobs:
        return []
    cluster, threads = None, None
    if scheduler is None:
        cluster, n, threads = _local_cluster(workers)
        logger.info("Dask LocalCluster: %d workers", n)
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as e:
            raise InputError(f"cannot reach the Dask scheduler at {scheduler} ({e}); check "
                             "--scheduler or leave it out for a local cluster") from e
    try:
        by_key = {}
        run_id = uuid.uuid4().hex
        for i, job in enumerate(jobs):
            fut = client.submit(_task, job, encoder, stain, overwrite, embed_kwargs, threads,
                                run_id, key=f"embed-{job.name}-{run_id[:8]}-{i}", pure=False,
                                retries=0, priority=len(jobs) - i)
            by_key[fut.key] = (i, job, fut)
        results: list[JobResult | None] = [None] * len(jobs)
        for k, fut in enumerate(as_completed([f for _, _, f in by_key.values()]), 1):
            i, job, _ = by_key[fut.key]
            if fut.status == "error":
                res = JobResult(job.name, "failed", message=_explain(fut.exception()))
            else:
                res = fut.result()
            # drop the finished task at once: a result left on a worker that dies is
            # recomputed (harmless: the task finds its own output, see run_job's run_id)
            fut.release()
            del by_key[fut.key]
            results[i] = res
            if on_result is not None:
                on_result(res, k, len(jobs))
        return [r for r in results if r is not None]
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
