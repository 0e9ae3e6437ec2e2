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
import os
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["RunFolder", "write_json"]

FORMAT = 1  # bumped when the layout changes; older runs get a clear message


def write_json(path: Path, obj: Any) -> Path:
    """Write JSON atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")
    tmp.replace(path)
    return path


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


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
    def start(self, config: dict[str, Any], *, overwrite: bool = False,
              inputs: dict[str, str] | None = None) -> bool:
        """Create the folder or resume it; returns ``True`` when resuming.

        ``inputs`` (file -> SHA-256) is recorded in ``run.json``; a run is resumed only when
        the config and these checksums are both unchanged, so results computed from other
        data are never mixed in.

        Raises
        ------
        InputError
            The folder holds a run with another config or other input files (and
            ``overwrite`` is false), or a run of another layout version.
        """
        from .. import __version__

        resuming = False
        if self.config.is_file():
            old = self.read_json(self.config)
            if old != config and not overwrite:
                diff = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
                raise InputError(
                    f"{self.path} holds a run with another config (differs in: "
                    f"{', '.join(diff)}); choose a new --out, or pass --overwrite"
                )
            if self.run_json.is_file():
                fmt = self.read_json(self.run_json).get("format")
                if fmt != FORMAT:
                    raise InputError(f"{self.path} was written by another histoexpr layout "
                                     f"(format {fmt}, this version reads {FORMAT}); use a new "
                                     "--out")
            resuming = old == config
            before = (self.read_json(self.run_json).get("inputs")
                      if self.run_json.is_file() else None)
            if resuming and inputs is not None and before is not None and before != inputs:
                changed = sorted(k for k in set(before) | set(inputs)
                                 if before.get(k) != inputs.get(k))
                if not overwrite:
                    raise InputError(
                        f"{self.path}: {len(changed)} input file(s) changed since this run "
                        f"started (e.g. {changed[0]}); pass --overwrite to start it again, "
                        "or choose a new --out")
                resuming = False
        if overwrite and self.path.is_dir() and not resuming:
            import shutil

            for p in self.path.iterdir():
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.config, config)
        info = self.read_json(self.run_json) if resuming and self.run_json.is_file() else {}
        info.update({"command": self.command, "format": FORMAT, "version": __version__,
                     "status": "running",
                     "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                     "resumed": resuming})
        if inputs is not None:
            info["inputs"] = inputs
        info.setdefault("stages", {})
        write_json(self.run_json, info)
        return resuming

    def stage(self, name: str, seconds: float, **extra: Any) -> None:
        """Record a stage's wall time (and anything else) in ``run.json``."""
        info = self.read_json(self.run_json)
        info.setdefault("stages", {})[name] = {"seconds": round(seconds, 3), **extra}
        write_json(self.run_json, info)

    def finish(self, status: str = "done") -> None:
        info = self.read_json(self.run_json)
        info["status"] = status
        info["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        write_json(self.run_json, info)


def sha256_files(paths: list[str]) -> dict[str, str]:
    """SHA-256 of each existing file (the data checksums of a run)."""
    from ..slide import file_sha256

    return {p: file_sha256(p) for p in paths if p and Path(p).is_file()}
