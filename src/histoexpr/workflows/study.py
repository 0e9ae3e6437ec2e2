"""What every downstream study shares on its way out: its output folder (tables kept in memory
as well as written, ``analysis.json``) and the result it returns. What it reads, and how,
is :mod:`histoexpr.workflows.inputs`.

Examples
--------
>>> import tempfile, pandas as pd
>>> out = StudyOutput(tempfile.mkdtemp(), "demo")
>>> _ = out.table("result", pd.DataFrame({"a": [1]}))
>>> res = out.result(out.finish(params={"k": 1}))
>>> res.files[0].name, res["result"].shape
('result.csv', (1, 1))
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..analysis.output import AnalysisOutput
from .inputs import input_path

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["StudyOutput", "StudyResult", "safe_name"]


@dataclass(frozen=True)
class StudyResult:
    """What a study wrote and found.

    Attributes
    ----------
    out
        The output folder.
    record
        The content of ``out/analysis.json`` (analysis, parameters, inputs and their SHA-256,
        summary, notes, files).
    tables
        Every table written, by name (``tables["km"]`` is ``out/km.csv``).
    """

    out: Path
    record: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def files(self) -> list[Path]:
        """The files written (``analysis.json`` not included), in order."""
        return [self.out / f for f in self.record["files"]]

    @property
    def summary(self) -> dict[str, Any]:
        return self.record["summary"]

    @property
    def notes(self) -> list[str]:
        return self.record["notes"]

    def __getitem__(self, name: str) -> pd.DataFrame:
        try:
            return self.tables[name]
        except KeyError:
            raise KeyError(f"no table {name!r}; have {', '.join(self.tables)}") from None


class StudyOutput(AnalysisOutput):
    """:class:`~histoexpr.analysis.output.AnalysisOutput` that also keeps each table it
    writes, for the :class:`StudyResult`."""

    def __init__(self, path: str | Path, analysis: str) -> None:
        super().__init__(path, analysis)
        self.frames: dict[str, pd.DataFrame] = {}

    def table(self, name: str, df: pd.DataFrame, *, index: bool = False) -> Path:
        p = super().table(name, df, index=index)
        self.frames[name] = df
        return p

    def finish(self, *, params: dict[str, Any] | None = None,
               inputs: dict[str, Any] | None = None,
               summary: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write ``analysis.json``; ``inputs`` may hold in-memory tables (not recorded)."""
        return super().finish(params=params, summary=summary,
                              inputs={k: input_path(v) for k, v in (inputs or {}).items()})

    def result(self, record: dict[str, Any]) -> StudyResult:
        return StudyResult(self.path, record, dict(self.frames))


def safe_name(name: str) -> str:
    """A column, gene or feature-set name usable in a file name.

    >>> safe_name("ER status (IHC)")
    'ER_status_IHC'
    """
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "x"
