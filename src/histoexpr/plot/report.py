"""One self-contained HTML report per run folder (``histoexpr report RUN``).

The report opens offline: every figure is embedded as a base64 PNG (large photographic ones,
such as maps over the tissue, as JPEG), the style is inline and
there are no scripts. Each section is drawn by a small function in :mod:`.report_sections`;
a section whose input file is missing (a half-finished run) says so instead of failing, so
any run folder gets a report of what exists.

Examples
--------
>>> import tempfile
>>> write_report(tempfile.mkdtemp())  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
histoexpr.errors.InputError: ...: not a run folder (no config.json or run.json); ...
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError

__all__ = ["Missing", "RunInfo", "figure_img", "png_img", "table_html", "write_report",
           "write_report_after_fit"]

logger = logging.getLogger(__name__)

#: run-folder layout versions this report reads (``run.json`` ``format``)
FORMATS = (1,)

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;
max-width:1100px;padding:1em;color:#222;line-height:1.4;box-sizing:border-box}
*,*:before,*:after{box-sizing:inherit}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
img{max-width:100%;height:auto;display:block;margin:.4em 0}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:.85em;margin:.4em 0}
th,td{border:1px solid #ddd;padding:.2em .5em;text-align:right;white-space:nowrap}
th{background:#f3f3f3}td.t,th.t{text-align:left}
tr.baseline td{color:#666;background:#fafafa}
.na{color:#a60;font-style:italic}.note{color:#555;font-size:.9em}
.grid{display:flex;flex-wrap:wrap;gap:.5em}.grid figure{margin:0;max-width:240px}
figcaption{font-size:.8em;color:#555;overflow-wrap:anywhere}
pre{white-space:pre-wrap;overflow-wrap:anywhere;font-size:.85em}
nav a{margin-right:.8em}
"""


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


# --------------------------------------------------------------------------- html helpers


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


# --------------------------------------------------------------------------- the report


def load_run(path: str | Path) -> RunInfo:
    """Read a run folder's ``config.json`` / ``run.json`` and tell its kind (st or bulk).

    Raises
    ------
    InputError
        The folder does not exist, holds no run, or was written by an unknown layout.
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: no such run folder; give the --out folder of "
                         "`histoexpr st fit` or `histoexpr bulk fit`")
    cfg_p, run_p = path / "config.json", path / "run.json"
    if not cfg_p.is_file() and not run_p.is_file():
        raise InputError(f"{path}: not a run folder (no config.json or run.json); run "
                         "`histoexpr st fit` or `histoexpr bulk fit` with --out there first")
    try:
        config = json.loads(cfg_p.read_text()) if cfg_p.is_file() else {}
        run = json.loads(run_p.read_text()) if run_p.is_file() else {}
    except ValueError as e:
        raise InputError(f"{path}: damaged config.json or run.json ({e}); rerun the fit") from e
    fmt = run.get("format", 1)
    if fmt not in FORMATS:
        raise InputError(f"{path} was written by another histoexpr layout (format {fmt}, this "
                         f"version reads {', '.join(map(str, FORMATS))}); rerun the fit with "
                         "this version")
    kind = run.get("command")
    if kind not in ("st", "bulk"):
        if (path / "entries.json").is_file() or "expression" in config:
            kind = "bulk"
        elif "data" in config or (path / "spots.csv").is_file():
            kind = "st"
        else:
            raise InputError(f"{path}: cannot tell whether this is an st or a bulk run "
                             "(config.json has neither 'data' nor 'expression'); rerun the fit")
    return RunInfo(path, kind, config, run)


def _sections() -> list[tuple[str, str, Callable[[RunInfo], str]]]:
    from . import report_sections as s

    return [
        ("config", "Configuration and data", s.config_section),
        ("qc", "Quality control", s.qc_section),
        ("metrics", "Metrics: models and baselines", s.metrics_section),
        ("genes", "Best and worst genes", s.genes_section),
        ("correlations", "Per-gene and per-patient correlations", s.box_section),
        ("spatial", "Spatial maps", s.spatial_section),
        ("analyses", "Analyses (survival and others)", s.analyses_section),
        ("cost", "Time and energy", s.cost_section),
    ]


def render_report(run: RunInfo) -> str:
    """The report's HTML text (see :func:`write_report`)."""
    parts, nav = [], []
    for key, title, fn in _sections():
        try:
            body = fn(run)
        except Missing as e:
            body = f'<p class="na">not available: {esc(e)} missing</p>'
        except Exception as e:  # a damaged file must not lose the rest of the report
            logger.warning("report section %r failed: %s", key, e)
            body = (f'<p class="na">not available: {esc(type(e).__name__)}: {esc(e)}</p>')
        nav.append(f'<a href="#{key}">{esc(title)}</a>')
        parts.append(f'<section id="{key}"><h2>{esc(title)}</h2>\n{body}\n</section>')
    from .. import __version__

    status = run.run.get("status", "unknown")
    warn = ("" if status == "done" else
            f'<p class="na">run status: {esc(status)} — this run did not finish; the report '
            "shows what exists.</p>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>histoexpr {esc(run.kind)} run: {esc(run.path.name)}</title>"
        f"<style>{CSS}</style></head><body>\n"
        f"<h1>histoexpr {esc(run.kind)} run: {esc(run.path.name)}</h1>\n"
        f'<p class="note">{esc(run.path.resolve())} — written by histoexpr {esc(__version__)} '
        f"on {esc(time.strftime('%Y-%m-%d %H:%M'))}; run by histoexpr "
        f"{esc(run.run.get('version', '?'))}, status {esc(status)}</p>\n{warn}"
        f"<nav>{''.join(nav)}</nav>\n" + "\n".join(parts) + "\n</body></html>\n"
    )


def write_report(run: str | Path, *, out: str | Path | None = None) -> Path:
    """Write the run's self-contained HTML report; returns its path.

    Parameters
    ----------
    run
        A run folder of ``histoexpr st fit`` or ``histoexpr bulk fit`` (finished or not).
    out
        The HTML file (default ``RUN/report.html``); written atomically.

    Raises
    ------
    InputError
        ``run`` is no run folder, or one of an unknown layout version.
    """
    info = load_run(run)
    text = render_report(info)
    out = Path(out) if out is not None else info.path / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    logger.info("report written to %s (%.0f kB)", out, out.stat().st_size / 1e3)
    return out


def write_report_after_fit(run: str | Path) -> Path | None:
    """:func:`write_report` at the end of a fit: a failure is a warning, never the fit's.

    Returns the report's path, or ``None`` when it could not be written.
    """
    try:
        return write_report(run)
    except Exception as e:  # the report never fails a fit
        logger.warning("report not written: %s (run `histoexpr report %s`)", e, run)
        return None
