"""Spatial expression maps: measured and predicted expression drawn over the H&E section.

Every figure is built with matplotlib's object-oriented API (:class:`~matplotlib.figure.Figure`
on an Agg canvas), never ``pyplot``: no global state, no GUI backend, safe in threads and on
headless machines. matplotlib is imported inside the functions, so importing this module is
cheap.

Coordinates are full-resolution (level-0) pixels of the section image, the ``x``/``y`` of a
spot table; the image drawn under the spots may be a thumbnail, with ``scale`` full-resolution
pixels per thumbnail pixel (:func:`section_image` returns both).

Examples
--------
>>> import numpy as np
>>> img = np.full((60, 80, 3), 230, np.uint8)
>>> yy, xx = np.mgrid[10:60:10, 10:80:10]
>>> xy = np.c_[xx.ravel(), yy.ravel()] * 2.0          # full-res = 2 x the thumbnail
>>> y = np.c_[xy[:, 0], xy[:, 1]]                       # two "genes": x and y position
>>> fig = expression_maps(img, xy, ["gx"], measured=y, predicted=y * 0.5,
...                       gene_names=["gx", "gy"], scale=2.0, r={"gx": 1.0})
>>> [ax.get_title() for ax in fig.axes[:3]]
['gx', 'measured', 'predicted, r = 1.00']
"""

from __future__ import annotations

import difflib
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from .figures import new_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.cm import ScalarMappable
    from matplotlib.figure import Figure

__all__ = [
    "NAN_COLOUR",
    "estimate_spot_diameter",
    "expression_maps",
    "prediction_scatter",
    "save_figure",
    "section_image",
    "spot_scatter",
]

#: colour of spots whose value is NaN (not measured, filtered out)
NAN_COLOUR = "#a0a0a0"
#: spot diameter as a fraction of the median nearest-neighbour distance, when not given
SPOT_FILL = 0.8
#: percentiles that set each map's colour range (robust to a few extreme spots)
COLOUR_PERCENTILES = (1.0, 99.0)
#: inches of one map panel's longer side
PANEL_INCHES = 3.0


# --------------------------------------------------------------------------- pure helpers


def estimate_spot_diameter(xy: np.ndarray, *, fill: float = SPOT_FILL) -> float | None:
    """Spot diameter for drawing: ``fill`` x the median nearest-neighbour distance of ``xy``.

    For a Visium grid (55 µm spots, 100 µm apart) 0.8 is about the true size; for legacy ST
    (100 µm spots, 200 µm apart) the drawn spots are larger than the real ones, which makes
    the map easier to read. Returns ``None`` with fewer than two distinct positions.

    Examples
    --------
    >>> estimate_spot_diameter(np.array([[0, 0], [100, 0], [200, 0]]))
    80.0
    """
    from scipy.spatial import cKDTree

    xy = _as_xy(xy)
    if len(xy) < 2:
        return None
    dist, _ = cKDTree(xy).query(xy, k=2)
    nn = dist[:, 1]
    nn = nn[nn > 0]
    if not len(nn):
        return None
    return float(fill * np.median(nn))


def _as_xy(xy: Any) -> np.ndarray:
    a = np.asarray(xy, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 2:
        raise InputError(f"xy must be an (N, 2) array of spot centres (x, y), got {a.shape}")
    if not np.isfinite(a).all():
        raise InputError("xy holds NaN/inf positions; drop those spots first")
    return a


def _colour_range(values: np.ndarray) -> tuple[float, float]:
    """The 1st–99th percentile range of the finite values, widened when it is empty."""
    v = values[np.isfinite(values)]
    if not len(v):
        return 0.0, 1.0
    lo, hi = (float(q) for q in np.percentile(v, COLOUR_PERCENTILES))
    if hi <= lo:
        pad = 0.5 * abs(lo) if lo else 0.5
        lo, hi = lo - pad, hi + pad
    return lo, hi


def _crop(xy: np.ndarray, d: float, extent: tuple[float, float] | None) -> tuple[float, ...]:
    """Axis limits ``(x0, x1, y0, y1)``: the spots' bounding box plus one spot of margin,
    trimmed to the image (but never cutting a spot)."""
    r = d / 2
    lo = xy.min(axis=0) - r
    hi = xy.max(axis=0) + r
    lims = []
    for k in range(2):
        a, b = lo[k] - d, hi[k] + d
        if extent is not None:
            a, b = max(a, min(0.0, lo[k])), min(b, max(extent[k], hi[k]))
        lims += [a, b]
    return tuple(lims)


def _gene_index(genes: str | Sequence[str], gene_names: Sequence[str]) -> list[int]:
    wanted = [genes] if isinstance(genes, str) else list(genes)
    if not wanted:
        raise InputError("no genes chosen; pass at least one gene name")
    pos = {g: i for i, g in enumerate(gene_names)}
    missing = [g for g in wanted if g not in pos]
    if missing:
        names = [str(g) for g in gene_names]
        lower = {n.lower(): n for n in reversed(names)}
        close = [lower[c] for c in difflib.get_close_matches(str(missing[0]).lower(), lower, n=3)]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
        raise InputError(
            f"gene(s) not found: {', '.join(map(str, missing))}{hint} (available: {shown})"
        )
    return [pos[g] for g in wanted]


def _as_expression(a: Any, name: str, n_spots: int | None) -> tuple[np.ndarray, list | None]:
    """``(N, G)`` float array and the column names if ``a`` is a DataFrame."""
    cols = list(a.columns) if hasattr(a, "columns") else None
    try:
        m = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InputError(f"{name} must be numeric (spots x genes): {e}") from None
    if m.ndim == 1:
        m = m[:, None]
    if m.ndim != 2:
        raise InputError(f"{name} must be 2-D (spots x genes), got shape {m.shape}")
    if n_spots is not None and m.shape[0] != n_spots:
        raise InputError(f"{name} has {m.shape[0]} rows but there are {n_spots} spots")
    return m, cols


def _resolve_genes(
    arrays: dict[str, Any], gene_names: Sequence[str] | None, n_spots: int | None
) -> tuple[dict[str, np.ndarray], list[str]]:
    out: dict[str, np.ndarray] = {}
    for name, a in arrays.items():
        if a is None:
            continue
        m, cols = _as_expression(a, name, n_spots)
        if gene_names is None and cols is not None:
            gene_names = [str(c) for c in cols]
        out[name] = m
    if not out:
        raise InputError("give measured and/or predicted expression to plot")
    if gene_names is None:
        raise InputError("gene_names is required to name the expression columns")
    gene_names = list(gene_names)
    for name, m in out.items():
        if m.shape[1] != len(gene_names):
            raise InputError(
                f"{name} has {m.shape[1]} columns but {len(gene_names)} gene names were given"
            )
    return out, gene_names


# --------------------------------------------------------------------------- drawing


def _show_section(
    ax: Axes, image: np.ndarray | None, xy: np.ndarray, d: float, scale: float
) -> None:
    """The H&E under full-resolution coordinates, cropped to the spots; axes off."""
    extent = None
    if image is not None:
        img = np.asarray(image)
        if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
            raise InputError(f"image must be (H, W), (H, W, 3) or (H, W, 4), got {img.shape}")
        h, w = img.shape[:2]
        extent = (w * scale, h * scale)
        ax.imshow(
            img,
            extent=(0, extent[0], extent[1], 0),
            cmap="gray" if img.ndim == 2 else None,
            interpolation="antialiased",
        )
    x0, x1, y0, y1 = _crop(xy, d, extent)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y1, y0)  # image rows grow downwards
    ax.set_aspect("equal")
    ax.set_axis_off()


def _default_diameter(xy: np.ndarray, image: np.ndarray | None, scale: float) -> float:
    d = estimate_spot_diameter(xy)
    if d is not None:
        return d
    if image is not None:
        return 0.02 * max(np.asarray(image).shape[:2]) * scale
    return 1.0


def spot_scatter(
    ax: Axes,
    image: np.ndarray | None,
    xy: np.ndarray,
    values: np.ndarray,
    *,
    scale: float = 1.0,
    spot_diameter: float | None = None,
    cmap: Any = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    alpha: float = 0.85,
    title: str | None = None,
) -> ScalarMappable:
    """Draw the section image and one circle per spot coloured by ``values``.

    Parameters
    ----------
    ax
        A matplotlib ``Axes`` to draw on.
    image
        ``(h, w, 3)`` RGB (or ``(h, w)`` grey) section image, usually a thumbnail; ``None``
        draws the spots alone.
    xy
        ``(N, 2)`` spot centres ``(x, y)`` in full-resolution pixels.
    values
        ``(N,)`` value per spot; NaN spots are drawn grey (:data:`NAN_COLOUR`).
    scale
        Full-resolution pixels per ``image`` pixel.
    spot_diameter
        Circle diameter in full-resolution pixels; default
        :func:`estimate_spot_diameter` (0.8 x the median nearest-neighbour distance).
    cmap, vmin, vmax, alpha
        Colour map (name or object), its range (default: the finite values' min and max)
        and the circles' opacity.
    title
        Axes title.

    Returns
    -------
    matplotlib.cm.ScalarMappable
        The spots' collection, for ``fig.colorbar(...)``.

    Examples
    --------
    >>> from histoexpr.plot import new_figure
    >>> ax = new_figure((3, 3)).add_subplot()
    >>> m = spot_scatter(ax, np.zeros((10, 10, 3), np.uint8), [[20, 20], [60, 60]],
    ...                  [0.0, np.nan], scale=10.0)
    >>> m.get_clim(), len(ax.collections)   # one value: the range is widened around it
    ((-0.5, 0.5), 1)
    """
    import matplotlib as mpl
    from matplotlib.collections import EllipseCollection
    from matplotlib.colors import Normalize

    xy = _as_xy(xy)
    vals = np.asarray(values, dtype=np.float64).ravel()
    if len(vals) != len(xy):
        raise InputError(f"got {len(vals)} values for {len(xy)} spots; give one per spot")
    if not scale > 0:
        raise InputError(f"scale must be positive (full-res pixels per image pixel), got {scale}")
    d = float(spot_diameter) if spot_diameter is not None else _default_diameter(xy, image, scale)
    if not d > 0:
        raise InputError(f"spot_diameter must be positive, got {spot_diameter}")
    _show_section(ax, image, xy, d, scale)

    finite = vals[np.isfinite(vals)]
    lo = vmin if vmin is not None else (float(finite.min()) if len(finite) else 0.0)
    hi = vmax if vmax is not None else (float(finite.max()) if len(finite) else 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, lo + 0.5
    colours = mpl.colormaps.get_cmap(cmap).with_extremes(bad=NAN_COLOUR)
    spots = EllipseCollection(
        widths=np.full(len(xy), d),
        heights=np.full(len(xy), d),
        angles=np.zeros(len(xy)),
        units="xy",
        offsets=xy,
        offset_transform=ax.transData,
        cmap=colours,
        norm=Normalize(lo, hi),
        alpha=alpha,
        edgecolors="none",
    )
    spots.set_array(np.ma.masked_invalid(vals))
    ax.add_collection(spots, autolim=False)
    if title is not None:
        ax.set_title(title)
    return spots


def _r_text(r: Mapping[str, float] | None, gene: str) -> str:
    if r is None or gene not in r:
        return ""
    v = r[gene]
    return f"r = {v:.2f}" if v is not None and math.isfinite(v) else "r = n/a"


def expression_maps(
    image: np.ndarray | None,
    xy: np.ndarray,
    genes: str | Sequence[str],
    *,
    measured: Any = None,
    predicted: Any = None,
    gene_names: Sequence[str] | None = None,
    scale: float = 1.0,
    spot_diameter: float | None = None,
    r: Mapping[str, float] | None = None,
    ncols_label: bool = True,
) -> Figure:
    """Maps of measured and predicted expression over the section, one row per gene.

    Columns: the H&E (titled with the gene), measured (if given), predicted (if given) —
    the layout of BrST-Net's Fig. 4. Each map is cropped to the spots' bounding box plus a
    margin, with equal aspect and no axes.

    Parameters
    ----------
    image
        The section image (thumbnail), ``(h, w, 3)``; ``None`` leaves out the H&E column.
    xy
        ``(N, 2)`` spot centres in full-resolution pixels.
    genes
        Gene name(s) to plot, one row each.
    measured, predicted
        ``(N, G)`` expression, columns named by ``gene_names`` (a DataFrame's columns are
        used when ``gene_names`` is not given). At least one is required.
    gene_names
        ``G`` names shared by the columns of ``measured`` and ``predicted``.
    scale
        Full-resolution pixels per ``image`` pixel (see :func:`section_image`).
    spot_diameter
        In full-resolution pixels; default 0.8 x the median spot spacing.
    r
        Gene → Pearson r, shown in the predicted panel's title.
    ncols_label
        Title the measured and predicted panels with their column (``measured``,
        ``predicted``); ``False`` keeps only the r.

    Returns
    -------
    matplotlib.figure.Figure
        On an Agg canvas; write it with :func:`save_figure`.

    Raises
    ------
    InputError
        An unknown gene (the message lists some available ones), mismatched shapes, or
        neither ``measured`` nor ``predicted``.

    Notes
    -----
    Measured and predicted maps of one gene each get their own colour range (their 1st–99th
    percentiles) and colour bar: regression predictions are usually shrunk toward the mean,
    so on the measured scale they would look flat even when their spatial pattern is right.
    Compare patterns between the two maps, not colours; the r in the title says how well
    they agree.
    """
    xy = _as_xy(xy)
    if not scale > 0:
        raise InputError(f"scale must be positive (full-res pixels per image pixel), got {scale}")
    data, names = _resolve_genes(
        {"measured": measured, "predicted": predicted}, gene_names, len(xy)
    )
    cols = _gene_index(genes, names)
    d = float(spot_diameter) if spot_diameter is not None else _default_diameter(xy, image, scale)
    x0, x1, y0, y1 = _crop(xy, d, None)
    aspect = (y1 - y0) / max(x1 - x0, 1e-9)
    pw, ph = (
        (PANEL_INCHES, PANEL_INCHES * aspect)
        if aspect <= 1
        else (PANEL_INCHES / aspect, PANEL_INCHES)
    )
    kinds = (["he"] if image is not None else []) + list(data)
    ncols = len(kinds)
    fig = new_figure((ncols * pw + 0.9 * len(data), len(cols) * (ph + 0.45)), layout="constrained")
    axes = fig.subplots(len(cols), ncols, squeeze=False)
    for row, j in enumerate(cols):
        gene = names[j]
        for ax, kind in zip(axes[row], kinds):
            if kind == "he":
                _show_section(ax, image, xy, d, scale)
                ax.set_title(gene, fontweight="bold")
                continue
            v = data[kind][:, j]
            lo, hi = _colour_range(v)
            label = kind if ncols_label else ""
            if kind == "predicted" and (rt := _r_text(r, gene)):
                label = f"{label}, {rt}" if label else rt
            m = spot_scatter(
                ax, image, xy, v, scale=scale, spot_diameter=d, vmin=lo, vmax=hi, title=label
            )
            fig.colorbar(m, ax=ax, shrink=0.8, pad=0.02, aspect=25)
    return fig


def _pearson(x: np.ndarray, y: np.ndarray) -> tuple[float, str]:
    """Pearson r of finite pairs and a note (``constant``, too few spots) when undefined."""
    from scipy import stats

    if len(x) < 3:
        return math.nan, f"n = {len(x)}"
    if (x == x[0]).all() or (y == y[0]).all():
        which = "measured" if (x == x[0]).all() else "predicted"
        return math.nan, f"constant {which}"
    return float(stats.pearsonr(x, y).statistic), ""


def prediction_scatter(
    measured: Any,
    predicted: Any,
    gene_names: Sequence[str] | None,
    genes: str | Sequence[str],
    *,
    ncols: int = 4,
) -> Figure:
    """Predicted against measured expression, one panel per gene.

    Each panel shows the spots, the least-squares line and Pearson r in the title. A gene
    whose measured or predicted values are constant has no r: its title says
    ``constant measured`` / ``constant predicted`` and no line is drawn (no warning).
    Spots with a NaN in either value are left out.

    Parameters
    ----------
    measured, predicted
        ``(N, G)`` expression of the same spots and genes.
    gene_names
        ``G`` column names (``None`` takes a DataFrame's columns).
    genes
        Gene(s) to show.
    ncols
        Panels per row.

    Examples
    --------
    >>> y = np.c_[np.arange(10.0), np.ones(10)]
    >>> fig = prediction_scatter(y, y * 0.5, ["a", "b"], ["a", "b"])
    >>> [ax.get_title() for ax in fig.axes]
    ['a  r = 1.00', 'b  constant measured']
    """
    if not isinstance(ncols, (int, np.integer)) or ncols < 1:
        raise InputError(f"ncols must be a positive integer, got {ncols!r}")
    data, names = _resolve_genes({"measured": measured, "predicted": predicted}, gene_names, None)
    if len(data) < 2:
        raise InputError("prediction_scatter needs both measured and predicted")
    y, yhat = data["measured"], data["predicted"]
    if y.shape != yhat.shape:
        raise InputError(f"measured {y.shape} and predicted {yhat.shape} must have one shape")
    cols = _gene_index(genes, names)
    nc = min(ncols, len(cols))
    nr = math.ceil(len(cols) / nc)
    fig = new_figure((nc * 2.8, nr * 2.6), layout="constrained")
    axes = fig.subplots(nr, nc, squeeze=False).ravel()
    for ax, j in zip(axes, cols):
        ok = np.isfinite(y[:, j]) & np.isfinite(yhat[:, j])
        x, v = y[ok, j], yhat[ok, j]
        ax.scatter(x, v, s=8, alpha=0.6, edgecolors="none")
        r, note = _pearson(x, v)
        if note:
            ax.set_title(f"{names[j]}  {note}")
        else:
            ax.set_title(f"{names[j]}  r = {r:.2f}")
            xm = x - x.mean()
            slope = float(xm @ (v - v.mean()) / (xm @ xm))
            ends = np.array([x.min(), x.max()])
            ax.plot(ends, v.mean() + slope * (ends - x.mean()), color="C3", lw=1.2)
        ax.set_xlabel("measured")
        ax.set_ylabel("predicted")
    for ax in axes[len(cols) :]:
        ax.remove()
    return fig


# --------------------------------------------------------------------------- files


def save_figure(fig: Figure, path: str | Path, *, dpi: float = 120) -> Path:
    """Write ``fig`` as PNG atomically (temporary file in the same folder, then rename).

    Parent folders are created; the figure stays open (nothing global is touched). A
    ``.pdf`` or ``.svg`` suffix writes that format instead.

    Examples
    --------
    >>> import tempfile
    >>> fig = prediction_scatter([[1.0], [2.0], [3.0]], [[1.0], [3.0], [2.0]], ["g"], "g")
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     save_figure(fig, Path(tmp) / "out" / "g.png", dpi=50).stat().st_size > 0
    True
    """
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".") or "png"
    if fmt not in ("png", "pdf", "svg"):
        raise InputError(f"{path}: cannot write {fmt!r} figures; use .png, .pdf or .svg")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp.{fmt}", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format=fmt, dpi=dpi)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a figure is not
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def section_image(image_path: str | Path, *, max_size: int = 2000) -> tuple[np.ndarray, float]:
    """The section's H&E, downscaled so its longer side is at most ``max_size`` pixels.

    Works for plain images of any size (a 9,300 x 9,900 px her2st JPEG) and for whole-slide
    files, through :func:`histoexpr.slide.open_slide`.

    Returns
    -------
    image : numpy.ndarray
        ``(h, w, 3)`` uint8.
    scale : float
        Full-resolution pixels per returned pixel (1.0 when the image was not reduced), as
        :func:`spot_scatter` and :func:`expression_maps` take it.

    Examples
    --------
    >>> img, scale = section_image("her2st/images/C2.jpg")  # doctest: +SKIP
    >>> img.shape, round(scale, 2)  # doctest: +SKIP
    ((2000, 1872, 3), 4.96)
    """
    from ..slide import image_dimensions, read_thumbnail

    if not isinstance(max_size, (int, np.integer)) or max_size < 1:
        raise InputError(f"max_size must be a positive integer, got {max_size!r}")
    # reduced decoding (JPEG draft mode, pyramid levels): a her2st section is never decoded
    # whole to draw a map
    w0, h0 = image_dimensions(image_path)
    thumb = read_thumbnail(image_path, int(max_size))
    scale = max(w0, h0) / max(thumb.shape[:2])
    return thumb, float(scale)
