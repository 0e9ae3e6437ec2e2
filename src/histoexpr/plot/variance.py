"""Figures of the variance studies: shared-variance bars and the association heatmap.

Built with matplotlib's object-oriented API on an Agg canvas (never ``pyplot``); each
function returns the :class:`~matplotlib.figure.Figure` and the caller saves it.

Examples
--------
>>> import pandas as pd
>>> summary = pd.DataFrame({"features": ["raw", "raw"], "data": ["raw", "residual"],
...                         "shared_variance": [0.4, 0.2], "expected_null": [0.05, 0.05]})
>>> fig = shared_variance_bars(summary)
>>> fig.axes[0].get_ylabel()
'shared variance'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import InputError
from .figures import new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["association_heatmap", "shared_variance_bars"]

_DATA_COLOURS = {"raw": "#4c72b0", "residual": "#dd8452"}


def _need(df: pd.DataFrame, cols: list[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InputError(f"{what}: missing column(s) {', '.join(missing)}")


def shared_variance_bars(
    summary: pd.DataFrame,
    components: pd.DataFrame | None = None,
    *,
    max_components: int = 20,
) -> Figure:
    """Shared variance per feature set, raw vs residual, and per image-PC contributions.

    Parameters
    ----------
    summary
        One row per feature set and data kind: ``features``, ``data`` (``raw``/``residual``),
        ``shared_variance``; optional ``expected_null`` (drawn as a black tick) and
        ``null_sd`` with ``null_mean`` (permutation null, drawn as an error bar).
    components
        Optional per-PC table: ``features``, ``data``, ``component``, ``contribution``; a
        second panel shows the first ``max_components`` contributions of each set.
    max_components
        Image PCs shown in the second panel.
    """
    _need(summary, ["features", "data", "shared_variance"], "shared-variance summary")
    sets = list(dict.fromkeys(summary["features"].astype(str)))
    kinds = list(dict.fromkeys(summary["data"].astype(str)))
    two = components is not None and not components.empty
    fig = new_figure((4 + 1.2 * len(sets) + (5 if two else 0), 3.8), layout="constrained")
    axes = fig.subplots(1, 2 if two else 1, squeeze=False,
                        gridspec_kw={"width_ratios": [1, 1.6] if two else [1]})[0]
    ax = axes[0]
    width = 0.8 / max(len(kinds), 1)
    x = np.arange(len(sets))
    for j, kind in enumerate(kinds):
        rows = summary[summary["data"].astype(str) == kind]
        rows = rows.set_axis(rows["features"].astype(str), axis=0)
        vals = rows["shared_variance"].reindex(sets).to_numpy(float)
        pos = x + (j - (len(kinds) - 1) / 2) * width
        ax.bar(pos, vals, width * 0.95, label=kind, color=_DATA_COLOURS.get(kind, f"C{j}"))
        if "expected_null" in rows:
            null = rows["expected_null"].reindex(sets).to_numpy(float)
            ax.hlines(null, pos - width * 0.45, pos + width * 0.45, colors="k", lw=1.5,
                      label="null expectation" if j == 0 else None)
        if {"null_mean", "null_sd"} <= set(rows.columns):
            m = rows["null_mean"].reindex(sets).to_numpy(float)
            s = rows["null_sd"].reindex(sets).to_numpy(float)
            ok = np.isfinite(m) & np.isfinite(s)
            if ok.any():
                ax.errorbar(pos[ok], m[ok], yerr=2 * s[ok], fmt="none", ecolor="0.3",
                            capsize=3, label="permutation null ± 2 sd" if j == 0 else None)
    ax.set_xticks(x, sets, rotation=30 if len(sets) > 3 else 0)
    ax.set_ylabel("shared variance")
    ax.set_ylim(0, max(1.0, float(np.nanmax(summary["shared_variance"])) * 1.05))
    ax.set_title("image variance explained by expression")
    ax.legend(fontsize="small", frameon=False)
    if two:
        _need(components, ["features", "data", "component", "contribution"], "components")
        ax2 = axes[1]
        groups = list(dict.fromkeys(zip(components["features"].astype(str),
                                        components["data"].astype(str))))
        w = 0.8 / len(groups)
        for g, (fs, kind) in enumerate(groups):
            c = components[(components["features"].astype(str) == fs)
                           & (components["data"].astype(str) == kind)].head(max_components)
            pos = np.arange(len(c)) + (g - (len(groups) - 1) / 2) * w
            ax2.bar(pos, c["contribution"].to_numpy(float), w * 0.95,
                    label=f"{fs} ({kind})" if len(sets) > 1 else kind,
                    color=_DATA_COLOURS.get(kind) if len(sets) == 1 else f"C{g}")
        n = int(min(max_components, components.groupby(["features", "data"]).size().max()))
        ax2.set_xticks(np.arange(n), [str(i + 1) for i in range(n)],
                       fontsize="small" if n > 10 else None)
        ax2.set_xlabel("image PC")
        ax2.set_ylabel(r"$\lambda_i \sum_j r_{ij}^2$")
        ax2.set_title("contribution of each image PC")
        ax2.legend(fontsize="small", frameon=False)
    return fig


def association_heatmap(
    assoc: pd.DataFrame,
    *,
    max_features: int = 30,
    max_genes: int = 50,
    cluster: bool = True,
    fdr: float | None = 0.05,
    title: str | None = None,
) -> Figure:
    """Heatmap of ``r`` for the features and genes with the strongest associations.

    Parameters
    ----------
    assoc
        Tidy table of :func:`~histoexpr.analysis.association.associate` (``feature``,
        ``gene``, ``r``, ``p``, optionally ``q``); pairs it lacks are drawn blank.
    max_features, max_genes
        Rows and columns shown: features and genes ordered by their smallest p.
    cluster
        Order rows and columns by average-linkage clustering of their ``r`` profiles.
    fdr
        Pairs with ``q < fdr`` get a dot (when ``q`` is present).
    title
        Figure title.

    Examples
    --------
    >>> a = pd.DataFrame({"feature": ["f1", "f1", "f2", "f2"], "gene": ["A", "B"] * 2,
    ...                   "r": [0.9, -0.2, 0.1, 0.3], "p": [1e-6, .3, .6, .1],
    ...                   "q": [4e-6, .4, .6, .2]})
    >>> association_heatmap(a, cluster=False).axes[0].get_ylabel()
    'image feature'
    """
    _need(assoc, ["feature", "gene", "r", "p"], "association table")
    if assoc.empty:
        raise InputError("association table is empty: nothing to draw")
    feats = assoc.groupby("feature", sort=False)["p"].min().sort_values(kind="stable")
    genes = assoc.groupby("gene", sort=False)["p"].min().sort_values(kind="stable")
    feats, genes = list(feats.index[:max_features]), list(genes.index[:max_genes])
    sub = assoc[assoc["feature"].isin(feats) & assoc["gene"].isin(genes)]
    r = sub.pivot_table(index="feature", columns="gene", values="r", aggfunc="first")
    r = r.reindex(index=feats, columns=genes)
    if cluster and min(r.shape) > 2 and r.notna().all().all():
        from scipy.cluster.hierarchy import leaves_list, linkage

        r = r.iloc[leaves_list(linkage(r.to_numpy(), "average")),
                   leaves_list(linkage(r.to_numpy().T, "average"))]
    nf, ng = r.shape
    fig = new_figure((min(2.5 + 0.22 * ng, 16), min(1.8 + 0.22 * nf, 12)),
                      layout="constrained")
    ax = fig.add_subplot()
    lim = float(np.nanmax(np.abs(r.to_numpy()))) if np.isfinite(r.to_numpy()).any() else 1.0
    im = ax.imshow(np.ma.masked_invalid(r.to_numpy(float)), cmap="RdBu_r", vmin=-lim,
                   vmax=lim, aspect="auto", interpolation="nearest")
    marked = False
    if fdr is not None and "q" in sub.columns:
        q = sub.pivot_table(index="feature", columns="gene", values="q", aggfunc="first")
        q = q.reindex(index=r.index, columns=r.columns).to_numpy(float)
        yy, xx = np.nonzero(q < fdr)
        ax.scatter(xx, yy, s=6, c="k", marker="o")
        marked = len(xx) > 0
    ax.set_xticks(np.arange(ng), list(map(str, r.columns)), rotation=90,
                  fontsize="x-small" if ng > 25 else "small")
    ax.set_yticks(np.arange(nf), list(map(str, r.index)),
                  fontsize="x-small" if nf > 25 else "small")
    ax.set_xlabel("gene")
    ax.set_ylabel("image feature")
    fig.colorbar(im, ax=ax, label="Pearson r", shrink=0.8)
    parts = [title] if title else []
    if marked:
        parts.append(f"dots: q < {fdr:g}")
    if parts:
        ax.set_title(", ".join(parts))
    return fig
