"""What every downstream study shares: its inputs (a path or an in-memory table), its output
folder (tables kept in memory as well as written) and the result it returns.

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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..analysis.output import AnalysisOutput
from ..errors import InputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["StudyOutput", "StudyResult", "clinical_table", "expression_frame", "input_label",
           "input_path", "safe_name", "split_list"]


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

    def result(self, record: dict[str, Any]) -> StudyResult:
        return StudyResult(self.path, record, dict(self.frames))


def input_label(x: Any, default: str) -> str:
    """How messages name an input: its path, or ``default`` for an in-memory table."""
    return default if x is None or hasattr(x, "columns") else str(x)


def input_path(x: Any) -> str | Path | None:
    """The input as ``analysis.json`` records it: a path, or nothing for an in-memory
    table."""
    return None if x is None or hasattr(x, "columns") else x


def safe_name(name: str) -> str:
    """A column, gene or feature-set name usable in a file name.

    >>> safe_name("ER status (IHC)")
    'ER_status_IHC'
    """
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "x"


def split_list(value: str | Sequence[str] | None) -> list[str]:
    """``"A, B"`` or ``["A", "B"]`` as ``["A", "B"]`` (blanks dropped).

    >>> split_list("A, B,,C"), split_list(["A", " B"]), split_list(None)
    (['A', 'B', 'C'], ['A', 'B'], [])
    """
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(v).strip() for v in items if str(v).strip()]


def expression_frame(expression: Any, *, entry: str | None = None,
                     source: str = "predicted", role: str | None = None) -> pd.DataFrame:
    """Samples x genes from a path (bulk run folder with ``entry``/``source``/``role``,
    ``bulk predict`` CSV, expression table) or an in-memory table; rows averaged per TCGA
    patient either way."""
    from ..analysis.tables import read_expression_input, to_patients

    if hasattr(expression, "columns"):
        df = expression.copy()
        df.index = df.index.astype(str)
        try:
            df = df.astype(float)
        except (TypeError, ValueError) as e:
            raise InputError(f"expression: samples x genes of numbers only ({e})") from None
        return to_patients(df, list(df.index), "expression")
    return read_expression_input(expression, entry=entry, source=source, role=role)


def clinical_table(clinical: Any, *, id_col: str | None = None) -> pd.DataFrame:
    """A clinical table indexed by id: read from a path
    (:func:`~histoexpr.analysis.tables.read_clinical`), or an in-memory table (indexed by
    ``id_col`` when given, else by its index)."""
    from ..analysis.tables import read_clinical

    if not hasattr(clinical, "columns"):
        return read_clinical(clinical, id_col=id_col)
    tab = clinical.copy()
    if id_col is not None:
        if id_col not in tab.columns:
            raise InputError(f"clinical table: no id column {id_col!r}; columns are "
                             f"{list(tab.columns)}")
        tab = tab.set_index(id_col)
    tab.index = tab.index.astype(str)
    dup = tab.index[tab.index.duplicated()].unique().tolist()
    if dup:
        raise InputError(f"clinical table: id(s) {', '.join(dup[:5])} appear more than once; "
                         "keep one row per patient")
    return tab
