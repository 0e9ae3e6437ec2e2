"""Uncertainty maps: the width of each spot's prediction interval over the H&E section, one
row per gene, beside the prediction's error when the section's counts are known — the same
layout and crop as :func:`~histoexpr.plot.spatial.expression_maps`.

Examples
--------
>>> img = np.full((60, 80, 3), 230, np.uint8)
>>> yy, xx = np.mgrid[10:60:10, 10:80:10]
>>> xy = np.c_[xx.ravel(), yy.ravel()] * 2.0
>>> width = np.c_[xy[:, 0] / 100, xy[:, 1] / 100]
>>> fig = interval_maps(img, xy, ["gx"], width=width, gene_names=["gx", "gy"], scale=2.0,
...                     error=width / 2, coverage={"gx": 0.9})
>>> [ax.get_title() for ax in fig.axes[:3]]
['gx', 'interval width', '|measured - predicted|, 90 % inside']
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from .figures import new_figure
from .spatial import (
    PANEL_INCHES,
    _as_xy,
    _crop,
    _default_diameter,
    _gene_index,
    _show_section,
    spot_scatter,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["interval_maps"]

#: the colour map of widths and errors (not the expression maps' viridis)
CMAP = "magma"


def _matrix(a: Any, name: str, shape: tuple[int, int]) -> np.ndarray:
    m = np.asarray(a, dtype=np.float64)
    if m.ndim == 1:
        m = m[:, None]
    if m.shape != shape:
        raise InputError(f"{name} has shape {m.shape}; expected {shape} (spots x genes)")
    return m


def interval_maps(
    image: np.ndarray | None,
    xy: Any,
    genes: str | Sequence[str],
    *,
    width: Any,
    gene_names: Sequence[str],
    error: Any = None,
    scale: float = 1.0,
    spot_diameter: float | None = None,
    coverage: Mapping[str, float] | None = None,
) -> Figure:
    """Per gene, the H&E, the interval width (``upper - lower``) per spot and, with
    ``error``, the absolute error of the prediction on the same colour range (a spot whose
    error is brighter than its width lies outside its interval).

    Parameters
    ----------
    image
        The section thumbnail ``(h, w, 3)`` (``None``: no H&E column).
    xy
        ``(N, 2)`` spot centres in full-resolution pixels.
    genes
        Gene(s) to draw, one row each.
    width, error
        ``(N, G)`` interval widths and absolute errors (NaN: not measured, drawn grey),
        columns named by ``gene_names``.
    scale, spot_diameter
        As for :func:`~histoexpr.plot.spatial.expression_maps`.
    coverage
        Gene → share of the measured values inside the interval, shown in the error title.

    Returns
    -------
    matplotlib.figure.Figure
        On an Agg canvas; write it with :func:`~histoexpr.plot.spatial.save_figure`.
    """
    xy = _as_xy(xy)
    names = list(gene_names)
    shape = (len(xy), len(names))
    w = _matrix(width, "width", shape)
    err = None if error is None else _matrix(error, "error", shape)
    cols = _gene_index(genes, names)
    d = float(spot_diameter) if spot_diameter is not None else _default_diameter(xy, image, scale)
    x0, x1, y0, y1 = _crop(xy, d, None)
    aspect = (y1 - y0) / max(x1 - x0, 1e-9)
    pw, ph = ((PANEL_INCHES, PANEL_INCHES * aspect) if aspect <= 1
              else (PANEL_INCHES / aspect, PANEL_INCHES))
    kinds = (["he"] if image is not None else []) + ["width"] + (["error"] if err is not None
                                                                  else [])
    n_bars = len(kinds) - (image is not None)
    fig = new_figure((len(kinds) * pw + 0.9 * n_bars, len(cols) * (ph + 0.45)),
                     layout="constrained")
    axes = fig.subplots(len(cols), len(kinds), squeeze=False)
    for row, j in enumerate(cols):
        gene = names[j]
        shown = [w[:, j]] + ([err[:, j]] if err is not None else [])
        finite = np.concatenate([v[np.isfinite(v)] for v in shown])
        hi = float(np.percentile(finite, 99)) if len(finite) else 1.0
        for ax, kind in zip(axes[row], kinds):
            if kind == "he":
                _show_section(ax, image, xy, d, scale)
                ax.set_title(gene, fontweight="bold")
                continue
            title = "interval width"
            if kind == "error":
                title = "|measured - predicted|"
                c = None if coverage is None else coverage.get(gene)
                if c is not None and math.isfinite(c):
                    title += f", {100 * c:.0f} % inside"
            m = spot_scatter(ax, image, xy, w[:, j] if kind == "width" else err[:, j],
                             scale=scale, spot_diameter=d, cmap=CMAP, vmin=0.0,
                             vmax=hi if hi > 0 else 1.0, title=title)
            fig.colorbar(m, ax=ax, shrink=0.8, pad=0.02, aspect=25)
    return fig
