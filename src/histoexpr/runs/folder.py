"""The run folder: one place for everything a run wrote, for every workflow.

A :class:`RunFolder` is created (or resumed) by :meth:`RunFolder.start`, which locks it,
records the provenance in ``run.json`` (:func:`~histoexpr.runs.provenance.provenance`:
package versions, git commit, host; the inputs' SHA-256; the execution settings), and is
ended by :meth:`RunFolder.finish` or :meth:`RunFolder.fail` (or both through
:meth:`RunFolder.recording`). Stages are timed into ``run.json`` (wall and CPU seconds).
The file names are the constants of :mod:`histoexpr.runs.files`; every file is written
through :mod:`histoexpr.atomic`.

What defines a result (``config.json``) is kept apart from how it is computed (device,
batch size, workers: ``run.json["execution"]``), so a run started on a CPU resumes on a GPU
or with another batch size; a change of the config is refused, naming the keys.

The spatial layout (:class:`RunFolder`)::

    RUN/
      config.json        the resolved STConfig (without execution settings)
      run.json           provenance, status, start/end, time per stage, execution settings
      data.json          sections, patients, spots kept and why others were dropped,
                         SHA-256 of every input file
      splits.json        the folds (test groups) and held-out groups
      spots.csv          kept spots: section, patient, x, y, total counts, white fraction
      features/<key>/<section>.h5   cached spot features (resume)
      folds/<k>/genes.json          genes chosen on fold k's training spots (+ the rest)
      folds/<k>/<model>.npz         test-spot predictions of one model (resume unit)
      metrics.csv        tidy: model, features, fold, section, gene, metric, value
      summary.csv        one row per model and fold (mean/median PCC, genes r>0 ...)
      predictions.h5ad   out-of-fold predictions of the main model (+ measured)
      predictions.zarr   the same as a SpatialData store (with --spatialdata)
      final/             the model refitted on all training spots, for ``st predict``
      maps/              measured vs predicted maps and scatter plots

The bulk layout is :class:`BulkRunFolder`'s.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from ..atomic import FolderLock, write_json
from ..errors import InputError
from . import files as F
from .provenance import provenance

logger = logging.getLogger(__name__)

__all__ = ["BulkRunFolder", "RunFolder", "sha256_files", "write_json"]

_C = TypeVar("_C")

FORMAT = 2  # bumped when the layout changes; older runs get a clear message (2: one fold loop)


def _paths(table: dict[str, str | Path]) -> Callable[[type[_C]], type[_C]]:
    """Class decorator: one read-only property per entry of ``table`` (attribute -> name
    inside the run folder, from :mod:`histoexpr.runs.files`), ``run.<attr>`` being
    ``run.path / <name>``."""

    def add(cls: type[_C]) -> type[_C]:
        for attr, name in table.items():
            setattr(cls, attr, property(lambda self, name=name: self.path / name,
                                        doc=f"``<run>/{Path(name).as_posix()}``"))
        return cls

    return add


@_paths({
    "config": F.CONFIG,
    "run_json": F.RUN,
    "data_json": F.DATA,
    "splits": F.SPLITS,
    "spots": F.SPOTS,
    "models_json": F.MODELS,
    "features": F.FEATURES,
    "metrics": F.METRICS,
    "summary": F.SUMMARY,
    "predictions": F.PREDICTIONS_H5AD,
    "final": F.FINAL,
    "final_model": Path(F.FINAL, F.FINAL_MODEL),
    "final_info": Path(F.FINAL, F.FINAL_INFO),
    "maps": F.MAPS,
    "report": F.REPORT,
})
class RunFolder:
    """Paths and bookkeeping of one run folder (see the module docstring)."""

    #: the command family whose ``fit`` writes this kind of folder (used in messages)
    command = "st"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def fold(self, k: int | str) -> Path:
        return self.path / F.FOLDS / str(k)

    def read_json(self, path: Path) -> Any:
        if not path.is_file():
            raise InputError(f"{self.path}: no {path.name}; is this a finished `histoexpr "
                             f"{self.command} fit` run folder?")
        try:
            return json.loads(path.read_text())
        except ValueError as e:
            raise InputError(f"{path}: damaged JSON ({e}); rerun `histoexpr {self.command} "
                             "fit`") from e

    # -- life cycle
    def previous(self) -> dict[str, Any] | None:
        """``run.json`` of the run already in the folder, or ``None``."""
        return self.read_json(self.run_json) if self.run_json.is_file() else None

    @staticmethod
    def _restartable(info: dict[str, Any]) -> str | None:
        """Why the run whose ``run.json`` is ``info`` may be replaced without
        ``--overwrite``: it failed, or it never finished its first stage; ``None`` when it
        holds results worth keeping."""
        if info.get("status") == "failed":
            return f"the previous run failed ({info.get('error') or 'no error recorded'})"
        if not info.get("stages"):
            return "the previous run never finished its first stage"
        return None

    def _clear(self) -> None:
        for p in self.path.iterdir():
            if p.name == FolderLock.NAME:
                continue
            shutil.rmtree(p) if p.is_dir() else p.unlink()

    def start(self, config: dict[str, Any], *, overwrite: bool = False,
              inputs: dict[str, str] | None = None,
              execution: dict[str, Any] | None = None) -> bool:
        """Lock the folder, then create it or resume it; returns ``True`` when resuming.

        ``inputs`` (file -> SHA-256) is recorded in ``run.json``; a run is resumed only when
        the config and these checksums are both unchanged, so results computed from other
        data are never mixed in. ``execution`` (device, batch size, workers) is recorded
        in ``run.json`` and may differ on resume: it does not define the result (keys of
        it found in an older ``config.json`` are ignored when comparing). A folder whose
        run failed, or never finished its first
        stage, is started again without ``overwrite``: a failed run never blocks the
        corrected command. The lock is held until :meth:`finish` or :meth:`fail` (or the
        process ends), so two processes never write one folder.

        Raises
        ------
        InputError
            Another process is writing the folder; the folder holds a run with another
            config or other input files (and ``overwrite`` is false), or a run of another
            layout version.
        OutputError
            The folder cannot be written (read-only, disk full).
        """
        from .. import __version__

        self._lock = FolderLock(self.path).acquire()
        try:
            resuming = self._check_previous(config, overwrite=overwrite, inputs=inputs,
                                            ignore=set(execution or ()))
            if not resuming and self.path.is_dir() and self.config.is_file():
                self._clear()
            write_json(self.config, config)
            info = self.previous() if resuming else None
            info = dict(info or {})
            info.pop("error", None)
            if resuming and execution is not None and info.get("execution") not in (
                    None, execution):
                old = info["execution"]
                changed = {k: (old.get(k), v) for k, v in execution.items() if old.get(k) != v}
                logger.info("%s: resuming with other execution settings (%s); they do not "
                            "change the result", self.path,
                            ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items()))
            info.update({"command": self.command, "format": FORMAT, "version": __version__,
                         "status": "running", "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                         "resumed": resuming, "host": socket.gethostname(),
                         "provenance": provenance()})
            if execution is not None:
                info["execution"] = execution
            if inputs is not None:
                info["inputs"] = inputs
            info.setdefault("stages", {})
            write_json(self.run_json, info)
        except BaseException:
            self._release()
            raise
        return resuming

    def _check_previous(self, config: dict[str, Any], *, overwrite: bool,
                        inputs: dict[str, str] | None, ignore: set[str]) -> bool:
        """Whether the folder's run is resumed; raises when it must not be touched."""
        if not self.config.is_file():
            return False
        try:
            old = self.read_json(self.config)
        except InputError:
            old = None  # a damaged config: nothing to resume
        if isinstance(old, dict):  # older layouts kept execution settings in the config
            old = {k: v for k, v in old.items() if k not in ignore}
            # an option added since the run was written, left unset, off or empty (e.g.
            # ensemble_encoders ()), changes nothing
            old.update({k: v for k, v in config.items()
                        if k not in old and (v is None or v is False or v in ([], (), {}))})
        before = self.previous() or {}
        if before.get("stages") and before.get("format") != FORMAT:
            raise InputError(f"{self.path} was written by another histoexpr layout (format "
                             f"{before.get('format')}, this version reads {FORMAT}); use a new "
                             "--out, or pass --overwrite to replace it")
        restart = self._restartable(before)
        if restart is not None:
            if old != config:
                logger.warning("%s: %s; starting it again with the new options", self.path,
                               restart)
                return False
            if before.get("status") == "failed":
                logger.info("%s: %s; resuming with the same options", self.path, restart)
        if old != config:
            if overwrite:
                return False
            diff = sorted(k for k in set(old or {}) | set(config)
                          if (old or {}).get(k) != config.get(k))
            raise InputError(
                f"{self.path} holds a finished or running run with another config (differs "
                f"in: {', '.join(diff)}); choose a new --out, or pass --overwrite to replace it"
            )
        old_inputs = before.get("inputs")
        if inputs is not None and old_inputs is not None and old_inputs != inputs:
            changed = sorted(k for k in set(old_inputs) | set(inputs)
                             if old_inputs.get(k) != inputs.get(k))
            if not overwrite:
                raise InputError(
                    f"{self.path}: {len(changed)} input file(s) changed since this run "
                    f"started (e.g. {changed[0]}); pass --overwrite to start it again, "
                    "or choose a new --out")
            return False
        return True

    @contextmanager
    def recording(self) -> Iterator[RunFolder]:
        """The stages of a started run: :meth:`finish` when the block ends, :meth:`fail`
        (and re-raise) when it raises.

        Examples
        --------
        >>> import tempfile
        >>> run = RunFolder(tempfile.mkdtemp())
        >>> _ = run.start({"k": 2})
        >>> with run.recording():
        ...     run.stage("data", 0.1)
        >>> run.read_json(run.run_json)["status"]
        'done'
        """
        try:
            yield self
        except BaseException as e:
            self.fail(e)
            raise
        self.finish()

    def stage(self, name: str, seconds: float, **extra: Any) -> None:
        """Record a stage's wall time (and anything else: ``cpu_seconds``, counts) in
        ``run.json``."""
        info = self.read_json(self.run_json)
        info.setdefault("stages", {})[name] = {"seconds": round(seconds, 3), **extra}
        write_json(self.run_json, info)

    @contextmanager
    def timed(self, name: str, **extra: Any) -> Iterator[dict[str, Any]]:
        """Time a stage (wall and this process's CPU seconds) into ``run.json``; the
        yielded dict takes more fields to record (counts, sources).

        Examples
        --------
        >>> import tempfile
        >>> run = RunFolder(tempfile.mkdtemp())
        >>> _ = run.start({"k": 2})
        >>> with run.timed("data") as rec:
        ...     rec["n_spots"] = 10
        >>> sorted(run.read_json(run.run_json)["stages"]["data"])
        ['cpu_seconds', 'n_spots', 'seconds']
        >>> run.finish()
        """
        rec: dict[str, Any] = dict(extra)
        w0, c0 = time.perf_counter(), time.process_time()
        yield rec
        rec["cpu_seconds"] = round(time.process_time() - c0, 3)
        self.stage(name, time.perf_counter() - w0, **rec)

    def finish(self, status: str = "done") -> None:
        """Record the end of the run and release the folder."""
        try:
            info = self.read_json(self.run_json)
            info["status"] = status
            info["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            write_json(self.run_json, info)
        finally:
            self._release()

    def fail(self, error: BaseException) -> None:
        """Record that the run stopped on ``error`` (status ``failed``, or ``interrupted``
        for Ctrl-C) and release the folder; a rerun then resumes or starts again without
        ``--overwrite``. Never raises: the original error is what the user must see."""
        try:
            if self.run_json.is_file():
                info = self.read_json(self.run_json)
                interrupted = isinstance(error, KeyboardInterrupt)
                info["status"] = "interrupted" if interrupted else "failed"
                info["error"] = "interrupted" if interrupted else (
                    f"{type(error).__name__}: {error}")
                info["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
                write_json(self.run_json, info)
        except Exception as e:  # the folder may be the very thing that broke
            logger.debug("could not record the failure in %s: %s", self.run_json, e)
        finally:
            self._release()

    def _release(self) -> None:
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.release()
            self._lock = None


@_paths({
    "slides_csv": F.SLIDES,
    "measured_csv": F.MEASURED,
    "entries_json": F.ENTRIES,
    "cost_json": F.COST,
    "patients_csv": F.PATIENTS,
    "predictions_csv": F.PREDICTIONS_CSV,
    "evaluation_json": F.EVALUATION,
})
class BulkRunFolder(RunFolder):
    """A bulk run folder::

        RUN/
          config.json        the resolved BulkConfig
          run.json           version, status, time per stage, host
          data.json          slides, patients, genes (and panel genes missing from the table),
                             tiles per slide, skipped slides, the slide-expression join report,
                             SHA-256 of the expression table and manifest
          splits.json        protocol, held-out / validation / test patients, folds
          slides.csv         slide, patient, tiles in the bag
          measured.csv       slides x genes: the measured expression, transformed
          entries.json       the model and its baselines, and whether their features exist
          features/<kind>/   baseline tile features (colour histograms, random-init encoder)
          folds/<unit>/<entry>.npz|.json   predictions and the cost record of one fit
          cost.json          wall / CPU / GPU time and energy per entry, summed over its fits
          metrics.csv        across genes, tidy: model, features, role, fold, gene, metric, value
          patients.csv       across patients: model, features, role, patient,
                             spearman/pearson r, p, q
          summary.csv        one row per entry and role (and fold)
          predictions.csv    out-of-fold / held-out predictions of every entry (long format)
          final/model.joblib, final/model.json   the model `bulk predict` uses
    """

    command = "bulk"

    def fit_records(self) -> list[dict[str, Any]]:
        """The JSON record of every finished fit (``folds/*/*.json``)."""
        import json

        out = []
        for p in sorted((self.path / F.FOLDS).glob("*/*.json")):
            out.append(json.loads(p.read_text()))
        return out

    def cost_summary(self) -> dict[str, Any]:
        """Cost per entry (summed over its fits) and in total."""
        from ..cost import sum_costs

        by: dict[str, list[dict[str, Any]]] = {}
        for r in self.fit_records():
            by.setdefault(r["entry"]["key"], []).append(r["cost"])
        per = {k: sum_costs(v) | {"n_fits": len(v)} for k, v in by.items()}
        return {"entries": per, "total": sum_costs([c for v in by.values() for c in v])}

    def unit_dirs(self) -> list[Path]:
        return sorted(p for p in (self.path / F.FOLDS).glob("*") if p.is_dir())


def sha256_files(paths: list[str]) -> dict[str, str]:
    """SHA-256 of each existing file (the data checksums of a run)."""
    from ..slide import file_sha256

    return {p: file_sha256(p) for p in paths if p and Path(p).is_file()}
