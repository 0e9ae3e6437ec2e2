"""One self-contained HTML report per run folder (``histoexpr report RUN``).

The report opens offline: every figure is embedded as a base64 PNG (large photographic ones,
such as maps over the tissue, as JPEG), the style is inline and there are no scripts. Each
section is drawn by a small function in :mod:`.report_sections` from the HTML pieces of
:mod:`.report_html`; a section whose input file is missing (a half-finished run) says so
instead of failing, so any run folder gets a report of what exists.

Examples
--------
>>> import tempfile
>>> write_report(tempfile.mkdtemp())  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
histoexpr.errors.InputError: ...: not a run folder (no config.json or run.json); ...
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import InputError
from . import report_sections as sections
from .report_html import Missing, RunInfo, esc

__all__ = ["load_run", "render_report", "write_report", "write_report_after_fit"]

logger = logging.getLogger(__name__)

#: run-folder layout versions this report reads (``run.json`` ``format``)
FORMATS = (1, 2)  # 2: the one fold loop (fold files changed; what the report reads did not)

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
    return [
        ("config", "Configuration and data", sections.config_section),
        ("qc", "Quality control", sections.qc_section),
        ("metrics", "Metrics: models and baselines", sections.metrics_section),
        ("genes", "Best and worst genes", sections.genes_section),
        ("correlations", "Per-gene and per-patient correlations", sections.box_section),
        ("spatial", "Spatial maps", sections.spatial_section),
        ("analyses", "Analyses (survival and others)", sections.analyses_section),
        ("cost", "Time and energy", sections.cost_section),
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
