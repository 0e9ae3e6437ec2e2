"""Figures of clinical associations: violins of a gene per clinical group (hist2RNA Fig. 7)
and a gene against a measured value with its regression line (hist2RNA Fig. 8).

Both return a :class:`matplotlib.figure.Figure` on an Agg canvas (no pyplot); the caller saves
it (``fig.savefig`` or :meth:`histoexpr.analysis.output.AnalysisOutput.figure`).

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> expr = pd.DataFrame({"ESR1": np.r_[rng.normal(0, 1, 20), rng.normal(2, 1, 20)]})
>>> er = pd.Series(["Negative"] * 20 + ["Positive"] * 20, name="ER")
>>> fig = violin_figure(expr, er, ["ESR1"])
>>> len(fig.axes), fig.axes[0].get_title()
(1, 'ESR1')
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import InputError
from .figures import new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

__all__ = ["correlation_figure", "violin_figure"]

_COLOURS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3",
            "#8C8C8C")


def _fmt_p(p: float) -> str:
    from ..metrics import format_p

    return format_p(p)


def violin_figure(
    expr: pd.DataFrame,
    groups: pd.Series,
    genes: Sequence[str],
    *,
    stats: pd.DataFrame | None = None,
    order: Sequence[str] | None = None,
    min_per_group: int = 2,
    ncols: int = 4,
) -> Figure:
    """One panel per gene: a violin per group with its samples as points, the test's p
    (and BH q) in the panel's corner.

    Parameters
    ----------
    expr, groups, order, min_per_group
        As for :func:`histoexpr.clinical.associations.compare_groups` (same cleaning of
        labels: missing ones and small groups are left out).
    genes
        Genes to draw, one panel each.
    stats
        The table :func:`~histoexpr.clinical.associations.compare_groups` returned (its
        ``p``, ``q`` and ``test`` are written on each panel, its groups are drawn in its
        order); computed with ``test="auto"`` when not given.
    ncols
        Panels per row.
    """
    from ..clinical.associations import (
        GROUP_TESTS,
        compare_groups,
        prepare_groups,
    )
    from ..clinical.labels import clean_labels

    genes = list(genes)
    if not genes:
        raise InputError("violin_figure: name at least one gene")
    if stats is None:
        stats = compare_groups(expr, groups, genes=genes, order=order,
                               min_per_group=min_per_group)
    if isinstance(groups, pd.Series) and not groups.index.equals(expr.index):
        groups = groups.reindex(expr.index)
    elif not isinstance(groups, pd.Series):
        groups = pd.Series(list(groups), index=expr.index, name="groups")
    levels = stats.attrs.get("groups")
    if levels is None:  # a table not made by compare_groups (or one that lost its attrs)
        labels, levels, _ = prepare_groups(groups, order=order, min_per_group=min_per_group)
    else:
        labels = clean_labels(groups)[0]
        labels = labels[labels.isin(levels)]
    by_gene = stats.set_index("gene")
    missing = [g for g in genes if g not in by_gene.index or g not in expr.columns]
    if missing:
        raise InputError(f"violin_figure: gene(s) {', '.join(missing)} absent from the "
                         "expression or the stats table")
    ncols = max(1, min(ncols, len(genes)))
    nrows = math.ceil(len(genes) / ncols)
    width = max(2.6, 0.9 * len(levels) + 1.2)
    fig = new_figure((width * ncols, 3.4 * nrows), layout="constrained")
    rng = np.random.default_rng(0)
    pos = np.arange(1, len(levels) + 1)
    for i, g in enumerate(genes):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        col = expr.loc[labels.index, g].to_numpy(dtype=np.float64)
        data = [col[(labels == lv).to_numpy() & np.isfinite(col)] for lv in levels]
        # a violin needs a spread; a group with one distinct value shows its points only
        drawable = [k for k, d in enumerate(data) if len(d) >= 2 and np.ptp(d) > 0]
        if drawable:
            parts = ax.violinplot([data[k] for k in drawable], positions=pos[drawable],
                                  showmedians=True, showextrema=False, widths=0.8)
            for k, body in zip(drawable, parts["bodies"]):
                body.set_facecolor(_COLOURS[k % len(_COLOURS)])
                body.set_edgecolor("black")
                body.set_alpha(0.45)
            parts["cmedians"].set_color("black")
        for k, d in enumerate(data):
            jitter = rng.uniform(-0.12, 0.12, len(d))
            ax.scatter(pos[k] + jitter, d, s=7, color=_COLOURS[k % len(_COLOURS)],
                       edgecolors="black", linewidths=0.3, alpha=0.8, zorder=3)
        ax.set_xticks(pos, [f"{lv}\n(n={len(d)})" for lv, d in zip(levels, data)],
                        fontsize=8)
        ax.set_xlim(0.4, len(levels) + 0.6)
        ax.set_title(str(g))
        if i % ncols == 0:
            ax.set_ylabel("expression")
        r = by_gene.loc[g]
        test_name = GROUP_TESTS.get(str(r.get("test")), (str(r.get("test")), None))[0]
        text = f"{test_name}\np = {_fmt_p(r.get('p'))}"
        if "q" in r.index:
            text += f", q = {_fmt_p(r.get('q'))}"
        ax.text(0.02, 0.98, text, transform=ax.transAxes, ha="left", va="top", fontsize=7,
                bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 1.5})
        ax.margins(y=0.2)
    if groups.name is not None:
        fig.suptitle(str(groups.name))
    return fig


def correlation_figure(
    x: Sequence[float] | np.ndarray | pd.Series,
    y: Sequence[float] | np.ndarray | pd.Series,
    *,
    r: float,
    p: float,
    xlabel: str,
    ylabel: str,
    method: str = "pearson",
    n: int | None = None,
) -> Figure:
    """Scatter of ``y`` against ``x`` with the least-squares line and ``r``/``p`` written on
    it (hist2RNA Fig. 8: predicted MKI67 against Ki67 %). Pairs with a missing value are
    not drawn.

    Examples
    --------
    >>> fig = correlation_figure([10, 20, 30, 40], [1.0, 2.1, 2.9, 4.2], r=0.99, p=0.01,
    ...                          xlabel="Ki67 %", ylabel="predicted MKI67")
    >>> fig.axes[0].get_xlabel(), len(fig.axes[0].lines)
    ('Ki67 %', 1)
    """
    xv = np.asarray(x, dtype=np.float64).ravel()
    yv = np.asarray(y, dtype=np.float64).ravel()
    if len(xv) != len(yv):
        raise InputError(f"correlation_figure: {len(xv)} x values for {len(yv)} y values")
    ok = np.isfinite(xv) & np.isfinite(yv)
    xv, yv = xv[ok], yv[ok]
    fig = new_figure((4.2, 3.8), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(xv, yv, s=12, color=_COLOURS[0], edgecolors="black", linewidths=0.3,
               alpha=0.8)
    if len(xv) >= 2 and np.ptp(xv) > 0:
        slope, intercept = np.polyfit(xv, yv, 1)
        xs = np.array([xv.min(), xv.max()])
        ax.plot(xs, intercept + slope * xs, color=_COLOURS[3], lw=1.5)
    sym = "ρ" if method == "spearman" else "r"
    n_txt = f", n = {n if n is not None else len(xv)}"
    r_txt = f"{r:.2f}" if r is not None and math.isfinite(r) else "n/a"
    ax.text(0.03, 0.97, f"{sym} = {r_txt}, p = {_fmt_p(p)}{n_txt}", transform=ax.transAxes,
            ha="left", va="top", fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 1.5})
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return fig
