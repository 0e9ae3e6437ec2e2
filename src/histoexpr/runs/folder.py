"""The run folder of a spatial workflow: one place for everything a run wrote.

::

    RUN/
      config.json        the resolved STConfig
      run.json           histoexpr version, status, start/end, time per stage, host
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
      final/             the model refitted on all training spots, for ``st predict``
      maps/              measured vs predicted maps and scatter plots
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..atomic import FolderLock, write_json
from ..errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["RunFolder", "write_json"]

FORMAT = 1  # bumped when the layout changes; older runs get a clear message


class RunFolder:
    """Paths and bookkeeping of one run folder (see the module docstring)."""

    #: the command family whose ``fit`` writes this kind of folder (used in messages)
    command = "st"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # -- paths
    config = property(lambda self: self.path / "config.json")
    run_json = property(lambda self: self.path / "run.json")
    data_json = property(lambda self: self.path / "data.json")
    splits = property(lambda self: self.path / "splits.json")
    spots = property(lambda self: self.path / "spots.csv")
    features = property(lambda self: self.path / "features")
    metrics = property(lambda self: self.path / "metrics.csv")
    summary = property(lambda self: self.path / "summary.csv")
    predictions = property(lambda self: self.path / "predictions.h5ad")
    final = property(lambda self: self.path / "final")
    maps = property(lambda self: self.path / "maps")

    def fold(self, k: int | str) -> Path:
        return self.path / "folds" / str(k)

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

    def _restartable(self) -> str | None:
        """Why the run in the folder may be replaced without ``--overwrite``: it failed, or
        it never finished its first stage; ``None`` when it holds results worth keeping."""
        info = self.previous() or {}
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
              inputs: dict[str, str] | None = None) -> bool:
        """Lock the folder, then create it or resume it; returns ``True`` when resuming.

        ``inputs`` (file -> SHA-256) is recorded in ``run.json``; a run is resumed only when
        the config and these checksums are both unchanged, so results computed from other
        data are never mixed in. A folder whose run failed, or never finished its first
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
            resuming = self._check_previous(config, overwrite=overwrite, inputs=inputs)
            if not resuming and self.path.is_dir() and self.config.is_file():
                self._clear()
            write_json(self.config, config)
            info = self.previous() if resuming else None
            info = dict(info or {})
            info.pop("error", None)
            info.update({"command": self.command, "format": FORMAT, "version": __version__,
                         "status": "running", "host": socket.gethostname(),
                         "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "resumed": resuming})
            if inputs is not None:
                info["inputs"] = inputs
            info.setdefault("stages", {})
            write_json(self.run_json, info)
        except BaseException:
            self._release()
            raise
        return resuming

    def _check_previous(self, config: dict[str, Any], *, overwrite: bool,
                        inputs: dict[str, str] | None) -> bool:
        """Whether the folder's run is resumed; raises when it must not be touched."""
        if not self.config.is_file():
            return False
        try:
            old = self.read_json(self.config)
        except InputError:
            old = None  # a damaged config: nothing to resume
        restart = self._restartable()
        if restart is not None:
            if old != config:
                logger.warning("%s: %s; starting it again with the new options", self.path,
                               restart)
                return False
            if (self.previous() or {}).get("status") == "failed":
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
        before = self.previous() or {}
        if before and before.get("format") != FORMAT:
            raise InputError(f"{self.path} was written by another histoexpr layout (format "
                             f"{before.get('format')}, this version reads {FORMAT}); use a new "
                             "--out")
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
        """Record a stage's wall time (and anything else) in ``run.json``."""
        info = self.read_json(self.run_json)
        info.setdefault("stages", {})[name] = {"seconds": round(seconds, 3), **extra}
        write_json(self.run_json, info)

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


def sha256_files(paths: list[str]) -> dict[str, str]:
    """SHA-256 of each existing file (the data checksums of a run)."""
    from ..slide import file_sha256

    return {p: file_sha256(p) for p in paths if p and Path(p).is_file()}
