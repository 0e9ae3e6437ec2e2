"""What does an image feature show? Montages of the tiles it scores highest and lowest.

Seed 002 (Plan Q4, and its Figure 1) looks at what individual image features capture: a
lung feature that predicted ischaemic time turned out to track the colour of the tissue. The
direct way to see it is to look at the tiles at both ends of the feature's range, across the
whole cohort: :func:`montage_from_features` scans every slide's feature file (as
``histoexpr embed`` writes it: ``features/<slide>.h5`` with ``coords`` and ``features``) for
one feature column, picks the ``n`` tiles with the highest and the ``n`` with the lowest
value (:func:`extreme_tiles`, :func:`feature_extremes`), reads those tiles' pixels back from
the slides (:func:`histoexpr.features.bags.read_bag_patches`, the same reads the
encoder saw) and lays them out in two labelled rows (:func:`montage_figure`).
:func:`montage_from_arrays` does the same for patches already in memory.

Only one column of each feature file is read, so a cohort of thousands of slides is cheap;
only the ``2 n`` chosen tiles are read from the slides.

Examples
--------
>>> values = np.array([0.2, 0.9, 0.1, 0.5, 0.7])
>>> top, bottom = extreme_tiles(values, n=2)
>>> top.tolist(), bottom.tolist()
([1, 4], [2, 0])
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import _keys as K
from ..errors import InputError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "ROWS",
    "extreme_tiles",
    "feature_extremes",
    "montage_figure",
    "montage_from_arrays",
    "montage_from_features",
    "read_tile_patches",
]

logger = logging.getLogger(__name__)

#: the montage's two rows, as named in :func:`feature_extremes`' ``row`` column
ROWS = ("highest", "lowest")


# -- choosing tiles -------------------------------------------------------------------------
def extreme_tiles(values: Any, *, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``n`` highest and the ``n`` lowest values.

    ``top`` runs from the highest value down, ``bottom`` from the lowest up. Ties are broken
    by position (the earlier index first), in both rows. Non-finite values are ignored. The
    two rows never share a tile: with fewer than ``2 n`` finite values each row gets
    ``m // 2`` tiles (``m`` finite values), and when all values are equal the top row takes
    the first tiles and the bottom row the next ones.

    Raises
    ------
    InputError
        ``n < 1``, or fewer than two finite values.

    Examples
    --------
    >>> top, bottom = extreme_tiles([1.0, 3.0, 3.0, np.nan, 0.0, 1.0], n=2)
    >>> top.tolist(), bottom.tolist()
    ([1, 2], [4, 0])
    """
    if int(n) < 1:
        raise InputError(f"n must be at least 1 tile per row, got {n}")
    v = np.asarray(values, np.float64).ravel()
    finite = np.flatnonzero(np.isfinite(v))
    m = len(finite)
    if m < 2:
        raise InputError(f"need at least 2 tiles with a finite value for a montage, got {m} "
                         f"(of {len(v)})")
    k = min(int(n), m // 2)
    if k < int(n):
        logger.info("only %d tiles with a finite value: %d per row instead of %d", m, k, n)
    top = finite[np.lexsort((finite, -v[finite]))][:k]
    taken = set(top.tolist())
    ascending = finite[np.lexsort((finite, v[finite]))]
    bottom = np.array([i for i in ascending if i not in taken][:k], np.int64)
    return top.astype(np.int64), bottom


def _feature_files(features: str | Path) -> dict[str, Path]:
    from ..features.store import feature_files

    p = Path(features)
    if p.is_file() and p.suffix == ".h5":
        return {p.stem: p}
    return feature_files(p)


def _feature_column(path: Path, feature: int) -> tuple[np.ndarray, np.ndarray, int]:
    """``(coords (N, 2), values (N,), D)``: one feature column of a feature file."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            ds = f[K.H5_FEATURES]
            if ds.ndim != 2 or ds.shape[0] == 0:
                raise InputError(f"{path}: features must be (N, D) with N >= 1, got "
                                 f"{ds.shape}; re-embed the slide")
            dim = int(ds.shape[1])
            if not 0 <= feature < dim:
                raise InputError(f"{path}: image feature {feature} does not exist; the "
                                 f"features have {dim} dimensions (0 to {dim - 1})")
            values = np.asarray(ds[:, feature], np.float64)
            coords = np.asarray(f[K.H5_COORDS][:], np.int64).reshape(-1, 2)
    except (OSError, KeyError) as e:
        raise InputError(f"{path}: not a feature file ({e}); run `histoexpr embed`") from e
    if len(coords) != len(values):
        raise InputError(f"{path}: {len(coords)} coords for {len(values)} tiles; re-embed")
    return coords, values, dim


def feature_extremes(
    features_dir: str | Path,
    *,
    feature: int,
    n: int = 8,
    encoder: str | None = None,
) -> pd.DataFrame:
    """The ``n`` tiles with the highest and the ``n`` with the lowest value of one image
    feature, across every slide's feature file.

    Parameters
    ----------
    features_dir
        A folder of ``<slide>.h5`` feature files (``histoexpr embed``), or one such file.
    feature
        The feature's column index (0-based).
    n
        Tiles per row (see :func:`extreme_tiles` for ties and small cohorts).
    encoder
        The encoder the features must come from; ``None`` requires only that all files agree.

    Returns
    -------
    DataFrame
        ``2 n`` rows: ``row`` (``"highest"``/``"lowest"``), ``rank`` (0 = most extreme),
        ``slide``, ``x``, ``y`` (level-0 top-left corner), ``value``, ``source`` (feature
        file). ``attrs``: ``n_slides``, ``n_tiles``, ``n_nonfinite`` (tiles ignored),
        ``dim``, ``encoder``.

    Raises
    ------
    InputError
        No feature files, a feature index out of range, files from different encoders (or
        not from ``encoder``), different feature sizes, fewer than two finite values.

    Examples
    --------
    >>> import tempfile
    >>> from histoexpr.datasets.synthetic_bulk import synthetic_bulk
    >>> syn = synthetic_bulk(tempfile.mkdtemp(), n_slides=3, n_genes=3, n_signal=1)
    >>> t = feature_extremes(syn.features_dir, feature=0, n=2)
    >>> t["row"].tolist(), bool(t["value"].iloc[0] >= t["value"].iloc[1] > t["value"].iloc[3])
    (['highest', 'highest', 'lowest', 'lowest'], True)
    """
    from ..features.bags import bag_encoder
    from ..features.store import read_feature_attrs

    feature = int(feature)
    files = _feature_files(features_dir)
    slides, sources, coords, values, encoders, dims = [], [], [], [], {}, set()
    for name, path in files.items():
        enc = bag_encoder(read_feature_attrs(path))
        c, v, dim = _feature_column(path, feature)
        encoders.setdefault(enc, []).append(name)
        dims.add(dim)
        slides.append(np.full(len(v), name, dtype=object))
        sources.append(np.full(len(v), str(path), dtype=object))
        coords.append(c)
        values.append(v)
    if len(encoders) > 1:
        by = {e: s[:2] for e, s in encoders.items()}
        raise InputError(f"{features_dir}: feature files come from different encoders ({by}); "
                         "an image feature means something only within one encoder")
    found = next(iter(encoders))
    if encoder is not None and found is not None and found != encoder:
        raise InputError(f"{features_dir}: the features were made with encoder {found!r}, not "
                         f"{encoder!r}; point to the {encoder} feature folder")
    if len(dims) > 1:
        raise InputError(f"{features_dir}: feature files have different sizes {sorted(dims)}")
    v = np.concatenate(values)
    nonfinite = int((~np.isfinite(v)).sum())
    if nonfinite:
        logger.warning("%s: %d of %d tiles have a non-finite value of feature %d and were "
                       "ignored", features_dir, nonfinite, len(v), feature)
    top, bottom = extreme_tiles(v, n=n)
    idx = np.concatenate([top, bottom])
    xy = np.concatenate(coords)[idx]
    table = pd.DataFrame({
        "row": [ROWS[0]] * len(top) + [ROWS[1]] * len(bottom),
        "rank": np.r_[np.arange(len(top)), np.arange(len(bottom))],
        "slide": np.concatenate(slides)[idx].astype(str),
        "x": xy[:, 0], "y": xy[:, 1], "value": v[idx],
        "source": np.concatenate(sources)[idx].astype(str),
    })
    table.attrs.update({"feature": feature, "n_slides": len(files), "n_tiles": len(v),
                        "n_nonfinite": nonfinite, "dim": dims.pop(), "encoder": found})
    logger.info("feature %d: %d tiles from %d slides; highest %.4g, lowest %.4g", feature,
                len(v), len(files), table["value"].iloc[0], table["value"].iloc[len(top)])
    return table


# -- reading pixels -------------------------------------------------------------------------
def read_tile_patches(
    table: pd.DataFrame,
    *,
    slides_dir: str | Path | None = None,
    size_px: int | None = None,
    slide_mpp: float | None = None,
) -> list[np.ndarray]:
    """The uint8 pixels of the tiles listed in ``table`` (as :func:`feature_extremes`
    returns it: ``slide``, ``x``, ``y``, ``source``), in table order.

    Each slide is opened once; tiles are read at the tile spec recorded in their feature
    file (``size_px`` resamples the same tissue square), from the recorded slide path or,
    when the slides moved, from ``slides_dir`` (:func:`~histoexpr.features.bags.
    find_slide`).

    Raises
    ------
    InputError
        A feature file that records no slide, or a slide that is neither at its recorded
        path nor in ``slides_dir``: the message names the slide and says to pass
        ``--slides DIR``.
    """
    from ..features.bags import Bag, find_slide, read_bag_patches
    from ..features.store import read_feature_attrs

    missing = {"slide", "x", "y", "source"} - set(table.columns)
    if missing:
        raise InputError(f"tile table: missing column(s) {sorted(missing)}")
    out: list[np.ndarray | None] = [None] * len(table)
    positions = np.arange(len(table))
    for source, rows in table.groupby("source", sort=False).indices.items():
        sub = table.iloc[rows]
        slide = str(sub["slide"].iloc[0])
        recorded = read_feature_attrs(source).get(K.ATTR_SLIDE_PATH)
        if not recorded:
            raise InputError(f"{source}: the feature file records no slide path, so the pixels "
                             f"of slide {slide}'s tiles cannot be read; re-embed the slide "
                             "with `histoexpr embed`")
        if find_slide(str(recorded), slides_dir=slides_dir, slide=slide) is None:
            where = f" nor in {slides_dir}" if slides_dir is not None else ""
            raise InputError(f"slide {slide} not found: it is not at {recorded}{where}; the "
                             "montage reads the tiles' pixels from the slides, so pass "
                             "--slides DIR (slides_dir=) with the folder that holds them")
        coords = sub[["x", "y"]].to_numpy(np.int64)
        bag = Bag(slide, np.zeros((len(sub), 1), np.float32), coords, source=str(source))
        patches = read_bag_patches(bag, slides_dir=slides_dir, size_px=size_px,
                                   slide_mpp=slide_mpp)
        for j, pos in enumerate(positions[rows]):
            out[pos] = patches[j]
    return out  # type: ignore[return-value]


# -- the figure -----------------------------------------------------------------------------
def _as_image(patch: Any, what: str) -> np.ndarray:
    a = np.asarray(patch)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or a.size == 0:
        raise InputError(f"{what}: a patch must be (H, W), (H, W, 3) or (H, W, 4), got shape "
                         f"{a.shape}")
    if a.dtype == np.uint8:
        return a
    f = np.nan_to_num(a.astype(np.float64))
    if f.max() > 1.0:  # 0-255 values in a float array
        f = f / 255.0
    return np.clip(f, 0.0, 1.0)


def _labels(labels: Sequence[str] | None, n: int, what: str) -> list[str]:
    if labels is None:
        return [""] * n
    labels = [str(s) for s in labels]
    if len(labels) != n:
        raise InputError(f"{what}: {len(labels)} labels for {n} patches")
    return labels


def montage_figure(
    top_patches: Sequence[Any],
    bottom_patches: Sequence[Any],
    *,
    top_labels: Sequence[str] | None = None,
    bottom_labels: Sequence[str] | None = None,
    title: str | None = None,
    row_titles: tuple[str, str] = ROWS,
    tile_inches: float = 1.3,
) -> Figure:
    """Two labelled rows of image patches (highest above, lowest below).

    Parameters
    ----------
    top_patches, bottom_patches
        Patches ``(H, W, 3)`` uint8 (shown as is), float in ``[0, 1]`` (or ``[0, 255]``,
        rescaled) or ``(H, W)`` grey; the rows may differ in length.
    top_labels, bottom_labels
        One caption per patch (e.g. slide and value).
    title
        The figure's title.
    row_titles
        The rows' names, written beside their first patch.
    tile_inches
        Side of one patch in the figure.

    Returns
    -------
    Figure
        An Agg-backed figure with one image axes per patch, top row first; each axes'
        label (``ax.get_label()``) is ``"<row>-<rank>"``.
    """
    top = [_as_image(p, f"top patch {i}") for i, p in enumerate(top_patches)]
    bottom = [_as_image(p, f"bottom patch {i}") for i, p in enumerate(bottom_patches)]
    if not top and not bottom:
        raise InputError("no patches to show")
    rows = [(top, _labels(top_labels, len(top), "top row")),
            (bottom, _labels(bottom_labels, len(bottom), "bottom row"))]
    ncols = max(len(top), len(bottom))
    from ..plot.figures import new_figure

    fig = new_figure((max(ncols * tile_inches + 0.8, 3.0), 2 * tile_inches + 1.2),
                      layout="constrained")
    for r, (patches, labels) in enumerate(rows):
        for i, (img, label) in enumerate(zip(patches, labels, strict=True)):
            ax = fig.add_subplot(2, ncols, r * ncols + i + 1)
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None,
                      vmin=0 if img.ndim == 2 else None,
                      vmax=(255 if img.dtype == np.uint8 else 1) if img.ndim == 2 else None)
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            ax.set_label(f"{row_titles[r]}-{i}")
            if label:
                ax.set_title(label, fontsize=6)
            if i == 0:
                ax.set_ylabel(row_titles[r], fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _short(name: str, width: int = 20) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def montage_from_arrays(
    values: Any,
    patches: Sequence[Any],
    *,
    n: int = 8,
    labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Montage of the ``n`` patches with the highest and the ``n`` with the lowest value.

    ``values[i]`` is the feature value of ``patches[i]`` (an ``(N, H, W, 3)`` array or a list
    of patches); ``labels`` (e.g. tile names) are shown with the values.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> patches = rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    >>> fig = montage_from_arrays(np.arange(10.0), patches, n=3, title="feature 7")
    >>> [ax.get_label() for ax in fig.axes if ax.images][:4]
    ['highest-0', 'highest-1', 'highest-2', 'lowest-0']
    """
    v = np.asarray(values, np.float64).ravel()
    if len(v) != len(patches):
        raise InputError(f"{len(v)} values for {len(patches)} patches")
    names = _labels(labels, len(v), "montage") if labels is not None else None
    top, bottom = extreme_tiles(v, n=n)

    def caption(i: int) -> str:
        return f"{_short(names[i])}\n{v[i]:.3g}" if names else f"#{i}\n{v[i]:.3g}"

    return montage_figure([patches[i] for i in top], [patches[i] for i in bottom],
                          top_labels=[caption(i) for i in top],
                          bottom_labels=[caption(i) for i in bottom], title=title)


def montage_from_features(
    features_dir: str | Path,
    *,
    feature: int,
    n: int = 8,
    slides_dir: str | Path | None = None,
    encoder: str | None = None,
    size_px: int | None = None,
    slide_mpp: float | None = None,
) -> Figure:
    """Seed 002's Q4: the tiles one image feature scores highest and lowest, cohort-wide.

    Parameters
    ----------
    features_dir
        A folder of ``<slide>.h5`` feature files (``histoexpr embed``), or one file.
    feature
        The feature's column index (0-based).
    n
        Tiles per row.
    slides_dir
        Where the slides are when they are no longer at the path recorded at embedding
        time (see :func:`~histoexpr.features.bags.find_slide`).
    encoder
        The encoder the features must come from (checked against the files).
    size_px
        Side of the shown patches (default: the tile size the encoder saw).
    slide_mpp
        Level-0 µm/px of slides whose files record none (default: recorded at tiling).

    Returns
    -------
    Figure
        Two rows of ``n`` tiles (:func:`montage_figure`), each captioned with its slide and
        value; the tiles themselves are :func:`feature_extremes`.

    Raises
    ------
    InputError
        See :func:`feature_extremes` and :func:`read_tile_patches` (a slide that cannot be
        found: pass ``slides_dir``, ``--slides DIR`` on the command line).

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> from histoexpr.features import save_features
    >>> d = Path(tempfile.mkdtemp())
    >>> rgb = np.zeros((16, 256, 3), np.uint8)
    >>> rgb[:] = (np.arange(256) // 16 * 16)[None, :, None]  # 16 tiles, darker to lighter
    >>> Image.fromarray(rgb).save(d / "s1.png")
    >>> coords = np.c_[np.arange(0, 256, 16), np.zeros(16, int)]
    >>> _ = save_features(d / "features" / "s1.h5", coords, rgb[0, ::16, :1] / 255.0, {
    ...     "slide_path": str(d / "s1.png"), "tile_spec": {"size_px": 16, "mpp": 1.0},
    ...     "level0_mpp": 1.0})
    >>> fig = montage_from_features(d / "features", feature=0, n=2)
    >>> [int(ax.images[0].get_array()[0, 0, 0]) for ax in fig.axes]
    [240, 224, 0, 16]
    """
    table = feature_extremes(features_dir, feature=feature, n=n, encoder=encoder)
    patches = read_tile_patches(table, slides_dir=slides_dir, size_px=size_px,
                                slide_mpp=slide_mpp)
    captions = [f"{_short(s)}\n{v:.3g}" for s, v in zip(table["slide"], table["value"],
                                                         strict=True)]
    top = (table["row"] == ROWS[0]).to_numpy()
    a = table.attrs
    enc = f" ({a['encoder']})" if a.get("encoder") else ""
    title = (f"image feature {int(feature)}{enc}: highest and lowest of {a['n_tiles']} tiles "
             f"from {a['n_slides']} slide{'s' if a['n_slides'] != 1 else ''}")
    return montage_figure([p for p, t in zip(patches, top, strict=True) if t],
                          [p for p, t in zip(patches, top, strict=True) if not t],
                          top_labels=[c for c, t in zip(captions, top, strict=True) if t],
                          bottom_labels=[c for c, t in zip(captions, top, strict=True) if not t],
                          title=title)
