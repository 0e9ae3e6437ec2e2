"""The report of a study preset: where each value came from, the paper's tables and figures
as this run made them, the baselines, and a "paper vs this run" table.

A preset builds a list of :class:`Section` s (a title, HTML, and the files it wrote) and
:func:`write_study_report` writes one self-contained ``report.html`` (figures embedded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import write_text
from ..plot.report_html import esc, png_img, table_html

__all__ = ["Section", "figure_section", "provenance_section", "table_section",
           "versus_section", "write_study_report"]


@dataclass
class Section:
    """One part of the report."""

    title: str
    html: str


def table_section(title: str, df: Any, note: str = "", *, digits: int = 4,
                  text_cols: int = 1) -> Section:
    """A table (a ``DataFrame``; its index becomes the first column) with a note."""
    d = df.reset_index()
    rows = [[round(v, digits) if isinstance(v, float) else v for v in r]
            for r in d.itertuples(index=False)]
    body = (f"<p>{esc(note)}</p>" if note else "") + table_html(rows, list(map(str, d.columns)),
                                                              text_cols=text_cols)
    return Section(title, body)


def figure_section(title: str, png: Path, note: str = "") -> Section:
    """A figure written to ``png``, embedded."""
    img = png_img(Path(png).read_bytes(), alt=title)
    return Section(title, (f"<p>{esc(note)}</p>" if note else "") + img)


def provenance_section(record: dict[str, Any]) -> Section:
    """Every preset value: the value used and whether it is the paper's, a stated
    departure, or the user's."""
    rows = [[r["key"], _short(r["value"]), r["source"], r.get("where", "")]
            for r in record["values"]]
    return Section("Where each value comes from",
                   table_html(rows, ["key", "value", "source", "paper section"], text_cols=4))


def versus_section(rows: Sequence[Sequence[Any]]) -> Section:
    """The paper's headline numbers beside this run's, and what differs."""
    return Section("Paper vs this run", table_html(
        rows, ["measure", "paper", "this run", "paper's data", "what differs here"],
        text_cols=5))


def _short(v: Any) -> str:
    s = ", ".join(map(str, v)) if isinstance(v, list) else str(v)
    return s if len(s) < 80 else s[:77] + "..."


CSS = """body{font:14px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222}h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px}td,th{padding:2px 8px;text-align:right;
border-bottom:1px solid #eee}.t{text-align:left}.scroll{overflow-x:auto}img{max-width:100%}
.note{background:#fff8e0;padding:.5em 1em;border-left:3px solid #e0b000}"""


def write_study_report(path: Path, title: str, intro: str, sections: Sequence[Section]) -> Path:
    """Write the report (one HTML file) and return its path."""
    parts = [f"<h1>{esc(title)}</h1>", f'<p class="note">{esc(intro)}</p>']
    for s in sections:
        parts.append(f"<h2>{esc(s.title)}</h2>\n{s.html}")
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")
    write_text(path, page)
    return path
