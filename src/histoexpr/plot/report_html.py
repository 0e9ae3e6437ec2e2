"""The pieces of the run report's HTML, shared by :mod:`.report` (the page) and
:mod:`.report_sections` (its sections): what a section knows about the run
(:class:`RunInfo`), the exception of a missing input (:class:`Missing`), escaped text, embedded
images and tables.

Examples
--------
>>> esc(float("nan")), esc(0.123456), esc("<b>")
('—', '0.123', '&lt;b&gt;')
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["Missing", "RunInfo", "esc", "figure_img", "png_img", "table_html"]


class Missing(Exception):
    """Raised by a section whose input is not in the run folder (``str`` is the file)."""


class RunInfo:
    """What the sections know about a run: its folder, kind and small JSON files."""

    def __init__(self, path: Path, kind: str, config: dict[str, Any], run: dict[str, Any]):
        self.path, self.kind, self.config, self.run = path, kind, config, run

    def file(self, name: str) -> Path:
        """``RUN/name``; raises :class:`Missing` when it does not exist."""
        p = self.path / name
        if not p.exists():
            raise Missing(name)
        return p

    def json(self, name: str) -> Any:
        return json.loads(self.file(name).read_text())


# --------------------------------------------------------------------------- html


def esc(x: Any) -> str:
    """Escaped text of ``x`` (floats shown with 3 significant digits, NaN as a dash)."""
    if isinstance(x, float):
        return "—" if x != x else f"{x:.3g}"
    return html.escape(str(x))


def png_img(data: bytes, *, alt: str, mime: str = "image/png") -> str:
    """An ``<img>`` tag with ``data`` (PNG bytes, or ``mime``) embedded as base64."""
    b64 = base64.b64encode(data).decode("ascii")
    return f'<img src="data:{mime};base64,{b64}" alt="{html.escape(alt)}">'


def figure_img(fig: Any, *, alt: str, dpi: int = 100) -> str:
    """A matplotlib figure as an embedded PNG ``<img>``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return png_img(buf.getvalue(), alt=alt)


def table_html(rows: Sequence[Sequence[Any]], header: Sequence[str], *,
               text_cols: int = 1, row_class: Sequence[str] | None = None) -> str:
    """A table inside a horizontally scrolling wrapper (the page itself never overflows)."""
    def cell(tag: str, i: int, v: Any) -> str:
        cls = ' class="t"' if i < text_cols else ""
        return f"<{tag}{cls}>{esc(v)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = []
    for j, r in enumerate(rows):
        cls = f' class="{html.escape(row_class[j])}"' if row_class and row_class[j] else ""
        body.append(f"<tr{cls}>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>")
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>'
            + "".join(body) + "</tbody></table></div>")
