"""Batch runs on Dask: one task per item (a slide, a section), failures kept to their item.

:func:`map_on_dask` starts a ``LocalCluster`` (one process and one thread per worker, one
GPU each when there are GPUs) or connects to a running scheduler, submits ``fn(item)`` for
every item in order, and returns one value per item: ``fn``'s result, or a
:class:`TaskFailed` saying why (an exception, or a worker that died mid-task). The stage
that calls it makes its outputs atomic and skips finished items, so re-running a batch
finishes exactly what is missing.

On the ``LocalCluster`` this module starts, a task whose worker dies is retried once on
another worker and fails on a second death (``distributed.scheduler.allowed-failures =
1``), and each worker holds one task at a time (``worker-saturation = 1``), so a death
costs at most its one item. A cluster you start yourself
keeps its own settings (by default Dask retries a task on three worker deaths).

:class:`BatchOutput` guards the output folder of a batch run (``tile``, ``embed``): one run
at a time writes it (:class:`~histoexpr.atomic.FolderLock`), and a run that produced nothing
leaves it as it found it. :func:`unique_items` refuses two inputs that would share an output.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import FolderLock, sweep_temporaries
from .errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["BatchOutput", "ItemResult", "ManifestRow", "TaskFailed", "check_cohort_inputs",
           "item_failure", "manifest_rows",
           "map_on_dask", "run_cohort", "unique_items", "worker_device", "worker_label"]


@dataclass(frozen=True)
class TaskFailed:
    """An item whose task raised or whose worker died."""

    message: str


def _n_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except ImportError:
        return 0


def worker_index() -> int:
    """This Dask worker's number (its name on a LocalCluster), 0 outside a worker."""
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return 0
    return name if isinstance(name, int) else 0


def worker_device() -> str | None:
    """``cuda:<i>`` for this worker (one GPU each, round robin), ``None`` without CUDA."""
    n = _n_gpus()
    return f"cuda:{worker_index() % n}" if n else None


def _torch_threads_plugin(n: int):
    """A worker plugin that splits the CPU cores between the workers (Dask's nanny sets
    ``OMP_NUM_THREADS=1``, which would leave torch one core per worker)."""
    from distributed import WorkerPlugin

    class TorchThreads(WorkerPlugin):
        name = "histoexpr-torch-threads"

        def setup(self, worker) -> None:
            import torch

            torch.set_num_threads(n)

    return TorchThreads()


def _local_cluster(workers: int | None):
    import dask
    from distributed import LocalCluster

    gpus = _n_gpus()
    n = workers or (gpus or max(1, (os.cpu_count() or 1) // 4))
    if gpus and n > gpus:
        logger.warning("%d workers share %d GPUs", n, gpus)
    with dask.config.set({
        "distributed.worker.daemon": False,  # DataLoader worker processes are allowed
        "distributed.scheduler.allowed-failures": 1,  # retried once, a 2nd death fails it
        "distributed.scheduler.worker-saturation": 1.0,  # one task per worker at a time
    }):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
    logger.info("Dask LocalCluster: %d workers%s", n, f", {gpus} GPUs" if gpus else "")
    return cluster, n, gpus


def _explain(exc: BaseException) -> str:
    from distributed.scheduler import KilledWorker

    if isinstance(exc, KilledWorker):
        return ("the Dask worker died during this task, and again on its retry (out of memory "
                "or killed); re-run the same command to finish it")
    return f"{type(exc).__name__}: {exc}"


def map_on_dask(
    fn: Callable[..., Any],
    items: Sequence[Any],
    *,
    names: Sequence[str],
    workers: int | None = None,
    scheduler: str | None = None,
    on_result: Callable[[int, Any, int, int], None] | None = None,
    **kwargs: Any,
) -> list[Any]:
    """``[fn(item, **kwargs) or TaskFailed, ...]`` in the order of ``items``.

    Parameters
    ----------
    fn
        A function importable on the workers (module level).
    names
        One short name per item, for task keys and logs.
    workers
        LocalCluster size (default: one per GPU, else a quarter of the CPU cores).
    scheduler
        Address of a running scheduler (``tcp://host:8786``) instead of a LocalCluster; its
        workers need histoexpr installed and the inputs at the same paths.
    on_result
        Called as ``on_result(i, value, n_finished, n_total)`` as item ``i`` ends.
    """
    from distributed import Client, as_completed

    if not items:
        return []
    cluster = None
    if scheduler is None:
        cluster, n, gpus = _local_cluster(workers)
        client = Client(cluster)
        if not gpus:
            client.register_plugin(_torch_threads_plugin(max(1, (os.cpu_count() or 1) // n)))
    else:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as e:
            raise InputError(f"cannot reach the Dask scheduler at {scheduler} ({e}); check "
                             "--scheduler or leave it out for a local cluster") from e
    try:
        tag = uuid.uuid4().hex[:8]
        pending, futures = {}, []
        for i, (item, name) in enumerate(zip(items, names, strict=True)):
            fut = client.submit(fn, item, **kwargs, key=f"{name}-{tag}-{i}", pure=False,
                                retries=0, priority=len(items) - i)
            pending[fut.key] = i
            futures.append(fut)
        out: list[Any] = [None] * len(items)
        for k, fut in enumerate(as_completed(futures), 1):
            i = pending.pop(fut.key)
            out[i] = (TaskFailed(_explain(fut.exception())) if fut.status == "error"
                      else fut.result())
            fut.release()  # a result left on a worker that later dies would be recomputed
            if on_result is not None:
                on_result(i, out[i], k, len(items))
        return out
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


@dataclass(frozen=True)
class ManifestRow:
    """One slide of a manifest: its line, the slide (from the manifest's folder), its
    pixel size when the row gives one, and the row's other columns (lower-case names)."""

    line: int
    slide: Path
    slide_mpp: float | None
    columns: dict[str, str]


def manifest_rows(path: str | Path, *, slide_mpp: float | None = None, slide: str = "slide",
                  mpp: str = "slide_mpp") -> list[ManifestRow]:
    """The rows of a manifest CSV (a ``slide`` column, optionally ``slide_mpp`` and
    others; relative paths are taken from the manifest's folder); ``slide_mpp`` is the
    default pixel size; ``slide`` and ``mpp`` name the two columns (a sections manifest
    has ``image`` and ``mpp``). Rows without a slide are skipped.

    Raises :class:`~histoexpr.errors.InputError` naming the manifest (and line) for an
    unreadable file, no rows, no ``slide`` column, or a pixel size that is not positive.
    """
    import csv
    import math

    path = Path(path)
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            rows = [(reader.line_num, row) for row in reader]  # line_num: blank lines count
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"{path}: cannot read the manifest ({e})") from e
    if not rows:
        raise InputError(f"{path}: the manifest lists no slides (one `slide` column, one row "
                         "per slide)")
    cols = {c.strip().lower() for c in rows[0][1] if c}
    if slide not in cols:
        raise InputError(f"{path}: the manifest needs a `{slide}` column (found: "
                         f"{', '.join(sorted(cols)) or 'none'})")
    out = []
    for line, row in rows:
        row = {k.strip().lower(): (v or "").strip() for k, v in row.items()
               if isinstance(k, str) and isinstance(v, str | None)}
        if not row.get(slide):
            continue
        value = slide_mpp
        if row.get(mpp):
            try:
                value = float(row[mpp])
            except ValueError:
                value = math.nan
            if not (value > 0 and math.isfinite(value)):
                raise InputError(f"{path}, line {line}: {mpp} {row[mpp]!r} is not a positive "
                                 "number of µm per pixel")
        out.append(ManifestRow(line, path.parent / row[slide], value, row))
    return out


def check_cohort_inputs(items: Sequence[Any], manifest: Any, *, dask_options: bool,
                        what: str = "slides", example: str = "slides.csv") -> None:
    """The inputs of a cohort command (``tile``, ``embed``, ``predict-slide``, ``st
    predict``): ``items`` on the command line or a ``manifest``, not both and not neither;
    ``--workers`` / ``--scheduler`` (``dask_options``) only with a manifest."""
    if manifest is not None:
        if items:
            raise InputError(f"give {what} either on the command line or in --manifest, not "
                             "both")
        return
    if not items:
        raise InputError(f"no {what}: list SLIDE files or pass --manifest {example}")
    if dask_options:
        raise InputError(f"--workers / --scheduler run on Dask and need --manifest {example}")


def unique_items(paths: Sequence[str | Path], *, name: Callable[[Path], str],
                 what: str = "slide") -> list[Path]:
    """``paths`` once each, in order; a path listed twice is kept once (with a warning),
    two different files whose ``name`` is the same (they would write one output) raise.

    Examples
    --------
    >>> [str(p) for p in unique_items(["a.tif", "b.tif", "a.tif"], name=lambda p: p.stem)]
    ['a.tif', 'b.tif']
    """
    seen: dict[str, Path] = {}
    out = []
    for p in map(Path, paths):
        key = name(p)
        if key in seen:
            if seen[key].resolve() == p.resolve():
                logger.warning("%s is listed twice; using it once", p)
                continue
            raise InputError(f"{seen[key]} and {p} share the {what} name {key!r} and would "
                             f"write one output ({key}.h5); rename one, or run them into "
                             "separate --out folders")
        seen[key] = p
        out.append(p)
    return out


class BatchOutput:
    """The output folder of a batch run, held for the run's duration.

    On entry the folder is created and locked (:class:`~histoexpr.atomic.FolderLock`: a
    second run on it gets a clear error; a read-only or full file system is an
    :class:`~histoexpr.errors.OutputError` before any work). Set :attr:`produced` once the
    run has made something worth keeping; on exit, a run that raised or produced nothing
    leaves the folder as it found it: the lock file and the empty folders it made are
    removed, and the folder itself when the run created it. Files are never removed, except
    the temporaries of a killed run (:func:`~histoexpr.atomic.sweep_temporaries`), once the
    folder is locked.

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "tiles"
    >>> with BatchOutput(out) as run:
    ...     (out / "a").mkdir()
    >>> out.exists()
    False
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.produced = False
        self._before: set[str] | None = None
        self._lock = FolderLock(self.folder)

    def __enter__(self) -> BatchOutput:
        if self.folder.exists() and not self.folder.is_dir():
            raise InputError(f"{self.folder}: exists and is not a folder; choose another --out")
        self._before = set(os.listdir(self.folder)) if self.folder.is_dir() else None
        self._lock.acquire()
        n = sweep_temporaries(self.folder)  # half-written files of a killed run: ours alone
        if n:
            logger.info("%s: removed %d temporary file(s) a killed run left", self.folder, n)
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self._lock.release()
        if exc_type is not None or not self.produced:
            self._undo()

    def _undo(self) -> None:
        folder, before = self.folder, self._before or set()
        if not folder.is_dir():
            return
        if FolderLock.NAME not in before:
            (folder / FolderLock.NAME).unlink(missing_ok=True)
        for top in set(os.listdir(folder)) - before:
            made = folder / top
            if made.is_dir():
                inner = sorted((d for d in made.rglob("*") if d.is_dir()),
                               key=lambda d: -len(d.parts))
                for d in [*inner, made]:
                    try:
                        d.rmdir()  # only empty folders go
                    except OSError:
                        pass
        if self._before is None:
            try:
                folder.rmdir()
            except OSError:
                pass


@dataclass(frozen=True)
class ItemResult:
    """One item (slide, section) of a cohort run: ``status`` is ``done``, ``done before``
    or ``failed``; ``n`` counts what it produced (tiles, spots)."""

    name: str
    status: str
    n: int = 0
    seconds: float = 0.0
    message: str = ""
    where: str = ""
    source: str = ""


def item_failure(e: BaseException) -> bool:
    """Whether ``e`` is bad input of one item (a ``failed`` result that the run goes on
    past) rather than a fault of the whole run (an output folder that cannot be written,
    a bug): histoexpr's own errors except :class:`~histoexpr.errors.OutputError`."""
    from .errors import HistoexprError, OutputError

    return isinstance(e, HistoexprError) and not isinstance(e, OutputError)


def worker_label() -> str:
    """``"worker 1 (pid 123)"`` on a Dask worker, ``""`` in the driver."""
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return ""
    return f"worker {worker_index()} (pid {os.getpid()})"


def _cohort_item(item: Any, *, item_fn: Callable[..., ItemResult],
                 item_kwargs: dict[str, Any]) -> ItemResult:
    """Runs on a Dask worker: one item, its result stamped with the worker."""
    from dataclasses import replace

    return replace(item_fn(item, **item_kwargs), where=worker_label())


def run_cohort(items: Sequence[Any], fn: Callable[..., ItemResult], *, names: Sequence[str],
               out: Path, command: str, on_dask: bool, workers: int | None = None,
               scheduler: str | None = None, record: dict[str, Any] | None = None,
               finish: Callable[[list[ItemResult]], None] | None = None,
               **kwargs: Any) -> list[ItemResult]:
    """``fn(item, **kwargs)`` for every item, in this process or one Dask task each; one
    :class:`ItemResult` per item in input order.

    ``fn`` (module level, so workers can import it) returns ``done before`` for an item
    whose output is complete, turns bad input into a ``failed`` result and writes its
    outputs atomically, so a run killed at any point (driver or worker) resumes with the
    items that are missing. ``out`` is locked for the run (:class:`BatchOutput`);
    ``out/run.json`` lists each item's status, count, seconds and worker (``record`` adds
    keys to it); a task whose worker dies is retried once, a second death fails its item
    alone. ``finish(results)``, when given, runs while ``out`` is still locked, before
    ``run.json`` (to join per-item outputs). On a terminal a bar counts the items done,
    skipped and failed.
    """
    import time

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from .atomic import write_json

    err = Console(stderr=True)  # a bar on a terminal only: none in pipes and logs
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   console=err, disable=not err.is_terminal, transient=True)
    task = bar.add_task(command, total=len(items))
    tally = {"done": 0, "skipped": 0, "failed": 0}

    def log(r: ItemResult, k: int, n: int) -> None:
        (logger.error if r.status == "failed" else logger.info)(
            "[%d/%d] %s: %s%s", k, n, r.name, r.status, f" ({r.message})" if r.message else "")
        tally["skipped" if r.status == "done before" else r.status] += 1
        bar.update(task, advance=1, description=f"{command}: done {tally['done']} · skipped "
                   f"{tally['skipped']} · failed {tally['failed']}")

    def as_result(i: int, value: Any) -> ItemResult:
        if isinstance(value, TaskFailed):
            return ItemResult(names[i], "failed", message=value.message)
        return value

    t0 = time.perf_counter()
    with BatchOutput(out) as output, bar:
        if on_dask:
            values = map_on_dask(_cohort_item, items,
                                 names=[f"{command}-{n}" for n in names], workers=workers,
                                 scheduler=scheduler,
                                 on_result=lambda i, v, k, n: log(as_result(i, v), k, n),
                                 item_fn=fn, item_kwargs=kwargs)
            results = [as_result(i, v) for i, v in enumerate(values)]
        else:
            results = []
            for k, item in enumerate(items, 1):
                results.append(fn(item, **kwargs))
                log(results[-1], k, len(items))
        output.produced = any(r.status != "failed" for r in results)
        if output.produced and finish is not None:
            finish(results)
        if output.produced:
            counts = {s: sum(r.status == s for r in results)
                      for s in ("done", "done before", "failed")}
            write_json(out / "run.json", {
                "command": command, **(record or {}), "on_dask": on_dask, "counts": counts,
                "seconds": round(time.perf_counter() - t0, 3),
                "items": [r.__dict__ for r in results]})
    return results
