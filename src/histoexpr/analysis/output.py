"""The output folder of one downstream analysis.

::

    OUT/
      analysis.json     analysis name, histoexpr version, parameters, inputs (+ SHA-256),
                        notes (e.g. how thresholds were derived), files written
      <table>.csv       the analysis' tables
      <figure>.png      its figures

Tables and figures are written atomically, so an interrupted run leaves no half file.

Examples
--------
>>> import tempfile, pandas as pd
>>> out = AnalysisOutput(tempfile.mkdtemp(), "demo")
>>> _ = out.table("result", pd.DataFrame({"a": [1]}))
>>> sorted(out.finish(params={"k": 1})["files"])
['result.csv']
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from ..atomic import atomic_path, write_json
from ..runs import sha256_files

__all__ = ["AnalysisOutput"]


class AnalysisOutput:
    """Collects the tables, figures and notes of one analysis and writes ``analysis.json``."""

    def __init__(self, path: str | Path, analysis: str) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.analysis = analysis
        self.files: list[str] = []
        self.notes: list[str] = []
        self._t0 = time.time()

    def table(self, name: str, df: pd.DataFrame, *, index: bool = False) -> Path:
        """Write ``name.csv`` atomically."""
        p = self.path / f"{name}.csv"
        with atomic_path(p) as tmp:
            df.to_csv(tmp, index=index)
        self._add(p)
        return p

    def figure(self, name: str, fig: Any, *, dpi: int = 150) -> Path:
        """Save a matplotlib figure as ``name.png`` atomically (figures here are built on an
        Agg canvas without pyplot, so there is nothing to close)."""
        p = self.path / f"{name}.png"
        with atomic_path(p, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
        self._add(p)
        return p

    def note(self, text: str) -> None:
        """A sentence the reader must see beside the results (kept in ``analysis.json``)."""
        self.notes.append(text)

    def _add(self, p: Path) -> None:
        if p.name not in self.files:
            self.files.append(p.name)

    def finish(self, *, params: dict[str, Any] | None = None,
               inputs: dict[str, str | Path | None] | None = None,
               summary: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write ``analysis.json``; returns its content."""
        from .. import __version__

        files_in = {k: str(v) for k, v in (inputs or {}).items() if v is not None}
        hashable = [v for v in files_in.values() if Path(v).is_file()]
        record = {
            "analysis": self.analysis,
            "histoexpr_version": __version__,
            "seconds": round(time.time() - self._t0, 2),
            "params": params or {},
            "inputs": files_in,
            "sha256": sha256_files(hashable) if hashable else {},
            "summary": summary or {},
            "notes": self.notes,
            "files": self.files,
        }
        write_json(self.path / "analysis.json", record)
        return record
