"""Survival figures: Kaplan–Meier curves with log-rank p and numbers at risk, and forest
plots of Cox hazard ratios.

Built on an Agg canvas with matplotlib's object-oriented API (no pyplot); the functions
return the :class:`~matplotlib.figure.Figure` and the caller saves it.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from histoexpr.clinical.survival import kaplan_meier
>>> d = pd.DataFrame({"time": np.arange(1.0, 21), "event": 1, "g": ["a", "b"] * 10})
>>> fig = km_figure(kaplan_meier(d, "g"))
>>> fig.axes[0].get_title()
'g'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import InputError
from .figures import new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..clinical.survival import KMResult

__all__ = ["forest_figure", "km_figure"]


def _p_text(p: float) -> str:
    from ..metrics import format_p

    return "log-rank: n/a" if not np.isfinite(p) else f"log-rank p = {format_p(p)}"


def km_figure(
    km: KMResult | Sequence[KMResult],
    *,
    time_label: str = "time",
    at_risk: bool = True,
    ci: bool = True,
    n_ticks: int = 6,
) -> Figure:
    """Kaplan–Meier curves, one panel per result (grouping), with CI bands, censoring
    marks, the log-rank p and a number-at-risk row per group under each panel."""
    results = [km] if hasattr(km, "table") else list(km)  # type: ignore[arg-type]
    if not results:
        raise InputError("km_figure: no Kaplan–Meier result to draw")
    ngroups = max(r.medians.shape[0] for r in results)
    h = 3.6 + (0.22 * ngroups + 0.4 if at_risk else 0)
    fig = new_figure((5.2 * len(results), h))
    axes = fig.subplots(1, len(results), squeeze=False)[0]
    from matplotlib.ticker import MaxNLocator

    colours = [f"C{i}" for i in range(10)]
    for ax, r in zip(axes, results):
        tmax = float(r.data["time"].max())
        for i, (g, tab) in enumerate(r.table.groupby("group", sort=False)):
            c = colours[i % 10]
            med = r.medians.set_index("group").loc[g]
            ax.step(tab["time"], tab["survival"], where="post", color=c, lw=1.5,
                    label=f"{g} (n={int(med['n'])}, {int(med['events'])} events)")
            if ci:
                ax.fill_between(tab["time"], tab["ci_low"], tab["ci_high"], step="post",
                                color=c, alpha=0.15, lw=0)
            cens = tab[tab["censored"] > 0]
            ax.plot(cens["time"], cens["survival"], "|", color=c, ms=5)
        ax.set_xlim(0, tmax * 1.02)
        ax.set_ylim(0, 1.03)
        ax.set_title(r.grouping)
        ax.set_ylabel("survival probability")
        ax.legend(loc="upper right", fontsize=7, frameon=False, title=_p_text(r.p),
                  title_fontsize=8)
        ticks = MaxNLocator(n_ticks).tick_values(0, tmax)
        ticks = ticks[(ticks >= 0) & (ticks <= tmax * 1.02)]
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{t:g}" for t in ticks])
        if not at_risk:
            ax.set_xlabel(time_label)
            continue
        ax.set_xlabel(f"{time_label}\nnumber at risk", fontsize=9)
        groups = list(r.table["group"].drop_duplicates())
        for j, g in enumerate(groups):
            times = r.data.loc[r.data["group"] == g, "time"].to_numpy()
            y = -0.32 - 0.09 * j
            ax.text(-0.07, y, g, transform=ax.transAxes, ha="right", va="center", fontsize=7,
                    color=colours[j % 10])
            for t in ticks:
                ax.text(t, y, str(int((times >= t).sum())), ha="center", va="center",
                        fontsize=7, transform=ax.get_xaxis_transform())
    fig.tight_layout()
    return fig


def forest_figure(
    cox: pd.DataFrame,
    *,
    title: str | None = None,
) -> Figure:
    """Hazard ratios with 95 % CIs on a log axis, one row per term (``cox_univariate`` /
    ``cox_multivariate`` tables, or both concatenated: each ``model`` gets its colour).

    Terms whose HR could not be estimated are listed as "not estimable".

    Examples
    --------
    >>> t = pd.DataFrame({"variable": ["x"], "comparison": ["per unit"], "hr": [2.0],
    ...                   "hr_low": [1.5], "hr_high": [2.6], "p": [1e-5]})
    >>> forest_figure(t).axes[0].get_xscale()
    'log'
    """
    need = {"variable", "comparison", "hr", "hr_low", "hr_high", "p"}
    if not need <= set(cox.columns):
        raise InputError(f"forest_figure: the table lacks {sorted(need - set(cox.columns))}")
    if cox.empty:
        raise InputError("forest_figure: empty Cox table")
    t = cox.copy()
    if "model" not in t.columns:
        t["model"] = ""
    t["label"] = t["variable"].astype(str) + ": " + t["comparison"].astype(str)
    labels = list(dict.fromkeys(t["label"]))
    models = list(dict.fromkeys(t["model"]))
    fig = new_figure((7.5, 0.9 + 0.42 * len(labels) * max(1, len(models) * 0.7)))
    ax = fig.add_subplot()
    off = np.linspace(-0.15, 0.15, len(models)) if len(models) > 1 else np.zeros(1)
    ok = t["hr"].notna() & np.isfinite(t["hr"].astype(float))
    lo = float(t.loc[ok, "hr_low"].min()) if ok.any() else 0.5
    hi = float(t.loc[ok, "hr_high"].max()) if ok.any() else 2.0
    lo, hi = min(lo, 0.8) / 1.3, max(hi, 1.25) * 1.3
    for k, m in enumerate(models):
        sub = t[t["model"] == m]
        for _, r in sub.iterrows():
            y = labels.index(r["label"]) + off[k]
            if not (pd.notna(r["hr"]) and np.isfinite(r["hr"])):
                ax.text(1.0, y, "not estimable", ha="center", va="center", fontsize=7,
                        color="0.4")
                continue
            ax.errorbar(r["hr"], y, xerr=[[r["hr"] - r["hr_low"]], [r["hr_high"] - r["hr"]]],
                        fmt="s", color=f"C{k}", ms=5, capsize=3, lw=1.2,
                        label=m if m and r.name == sub.index[0] else None)
            ax.text(1.02, y, f"{r['hr']:.2f} ({r['hr_low']:.2f}-{r['hr_high']:.2f}) "
                    f"p={r['p']:.2g}", transform=ax.get_yaxis_transform(), va="center",
                    fontsize=7, color=f"C{k}")
    ax.axvline(1.0, color="0.5", lw=0.8, ls="--")
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    cand = np.array([0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 4, 5, 10, 20, 50, 100])
    ax.set_xticks(cand[(cand >= lo) & (cand <= hi)])
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_xlabel("hazard ratio (95% CI)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, frameon=False, loc="lower right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
