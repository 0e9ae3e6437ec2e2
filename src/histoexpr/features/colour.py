"""Colour-histogram features: the baseline every evaluation reports beside deep features.

A tile is summarised by the normalised histogram of each colour channel (RGB and/or HSV)
plus each channel's mean and standard deviation. The features see colour only — no shape,
no texture — so a deep encoder that does not beat them has learnt little beyond stain.

Layout of one row (``C`` channels, ``B`` bins)::

    [hist ch0 (B) | hist ch1 (B) | ... | hist ch(C-1) (B) | mean ch0..ch(C-1) | std ch0..ch(C-1)]

so ``D = C * (B + 2)``: 3 channels for ``"rgb"`` or ``"hsv"``, 6 for ``"rgb+hsv"`` (RGB first).
Channels are scaled to 0–1 (RGB divided by 255; HSV as :func:`skimage.color.rgb2hsv`), bins
split 0–1 into ``B`` equal parts with the last one closed, as ``np.histogram(x, B, (0, 1))``.
Hue is summarised linearly (its mean is not a circular mean).

Examples
--------
>>> import numpy as np
>>> tiles = np.zeros((2, 8, 8, 3), np.uint8)
>>> tiles[0, ..., 0] = 255                     # one red tile, one black tile
>>> f = colour_histogram(tiles, bins=4)
>>> f.shape, f.dtype, colour_feature_dim(4, "rgb+hsv")
((2, 36), dtype('float32'), 36)
>>> f[0, :4].tolist()                          # red channel of the red tile: all in the top bin
[0.0, 0.0, 0.0, 1.0]
"""

from __future__ import annotations

import functools

import numpy as np

from ..errors import InputError

__all__ = [
    "COLOUR_FEATURES",
    "COLOUR_SPACES",
    "colour_feature_dim",
    "colour_feature_names",
    "colour_histogram",
    "rgb_to_hsv",
]

#: feature-set name under which colour-histogram features are stored (``obsm["X_colour_hist"]``)
COLOUR_FEATURES = "colour_hist"

#: valid ``space`` values and the channels each one yields, in feature order
COLOUR_SPACES: dict[str, tuple[str, ...]] = {
    "rgb": ("r", "g", "b"),
    "hsv": ("h", "s", "v"),
    "rgb+hsv": ("r", "g", "b", "h", "s", "v"),
}

#: tiles processed at a time (temporaries of about 1 MB stay in cache)
CHUNK_PIXELS = 1 << 18


def _check_space(space: str) -> tuple[str, ...]:
    try:
        return COLOUR_SPACES[space]
    except (KeyError, TypeError):
        raise InputError(
            f"unknown colour space {space!r}; valid: {', '.join(map(repr, COLOUR_SPACES))}"
        ) from None


def _check_bins(bins: int) -> int:
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or not 2 <= bins <= 256:
        raise InputError(f"bins must be an integer from 2 to 256, got {bins!r}")
    return int(bins)


def colour_feature_dim(bins: int = 16, space: str = "rgb+hsv") -> int:
    """Length ``D = C * (bins + 2)`` of a colour-histogram feature row.

    ``C`` is 3 for ``"rgb"`` and ``"hsv"`` and 6 for ``"rgb+hsv"``: ``bins`` histogram
    values plus a mean and a std per channel.

    Examples
    --------
    >>> colour_feature_dim(16, "rgb+hsv"), colour_feature_dim(8, "rgb")
    (108, 30)
    """
    return len(_check_space(space)) * (_check_bins(bins) + 2)


def colour_feature_names(bins: int = 16, space: str = "rgb+hsv") -> list[str]:
    """Column names matching :func:`colour_histogram`'s layout.

    Examples
    --------
    >>> names = colour_feature_names(4, "hsv")
    >>> names[:2], names[-2:], len(names)
    (['h_bin0', 'h_bin1'], ['s_std', 'v_std'], 18)
    """
    chans = _check_space(space)
    bins = _check_bins(bins)
    return (
        [f"{c}_bin{i}" for c in chans for i in range(bins)]
        + [f"{c}_mean" for c in chans]
        + [f"{c}_std" for c in chans]
    )


def _hue_float(r: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hue in 0–1 from float channels, the :func:`skimage.color.rgb2hsv` way."""
    v = np.maximum(np.maximum(r, g), b)
    delta = v - np.minimum(np.minimum(r, g), b)
    safe = np.where(delta == 0, 1.0, delta)
    # skimage assigns red, then green, then blue: the last channel equal to the max wins
    h = np.where(b == v, 4 + (r - g) / safe, np.where(g == v, 2 + (b - r) / safe, (g - b) / safe))
    h = (h / 6) % 1
    h[(delta == 0) | (h >= 1)] = 0  # (-tiny) % 1 rounds to 1.0 in float
    return h


@functools.lru_cache(maxsize=1)
def _hue_table() -> np.ndarray:
    """Hue of every ``(r - g, g - b)`` pair (hue is unchanged by adding a constant to all
    three channels), as a flat float32 table indexed by :func:`_hue_key`."""
    d = np.arange(-255, 256, dtype=np.float64)
    rg, gb = np.meshgrid(d, d, indexing="ij")
    r, g, b = rg + gb, gb, np.zeros_like(gb)
    return _hue_float(r, g, b).astype(np.float32).ravel()


def _hue_key(r: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Index into :func:`_hue_table`: ``(r - g + 255) * 511 + (g - b + 255)``."""
    return r.astype(np.int32) * 511 - g.astype(np.int32) * 510 - b + (255 * 511 + 255)


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """Vectorised RGB → HSV, float32 in 0–1; same values as :func:`skimage.color.rgb2hsv`.

    Hue comes from a 261,121-entry look-up table of channel differences, several times
    faster than computing it per pixel.

    Parameters
    ----------
    rgb
        ``(..., 3)`` uint8 array.

    Examples
    --------
    >>> rgb_to_hsv(np.array([[255, 0, 0], [0, 0, 255], [128, 128, 128]], np.uint8)).round(3)
    array([[0.   , 1.   , 1.   ],
           [0.667, 1.   , 1.   ],
           [0.   , 0.   , 0.502]], dtype=float32)
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim < 1 or rgb.shape[-1] != 3:
        raise InputError(f"expected a (..., 3) uint8 RGB array, got {rgb.shape} {rgb.dtype}")
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx = np.maximum(np.maximum(r, g), b)
    delta = (mx - np.minimum(np.minimum(r, g), b)).astype(np.float32)
    out = np.empty((*rgb.shape[:-1], 3), np.float32)
    out[..., 0] = _hue_table().take(_hue_key(r, g, b))
    np.divide(delta, mx, out=out[..., 1], where=mx > 0)
    out[..., 1][mx == 0] = 0
    out[..., 2] = mx / np.float32(255)
    return out


def _hist_unit(x: np.ndarray, bins: int) -> np.ndarray:
    """Per-row histograms of ``(n, P)`` floats in 0–1 (last bin closed) as ``(n, bins)``."""
    n = x.shape[0]
    idx = np.minimum((x * bins).astype(np.int32), bins - 1)
    idx += (np.arange(n, dtype=np.int32) * bins)[:, None]
    return np.bincount(idx.ravel(), minlength=n * bins).reshape(n, bins)


def _level_stats(u8: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Histogram counts, mean and std (0–1 scale) per row of ``(n, P)`` uint8, exact, from
    one 256-level count per row."""
    n, p = u8.shape
    levels = np.arange(256, dtype=np.float64) / 255
    onehot = np.eye(bins)[np.minimum((levels * bins).astype(np.int64), bins - 1)]
    offs = (np.arange(n, dtype=np.int32) * 256)[:, None]
    counts = np.bincount((u8 + offs).ravel(), minlength=n * 256).reshape(n, 256)
    counts = counts.astype(np.float64)
    mean = counts @ levels / p
    var = np.maximum(counts @ levels**2 / p - mean**2, 0)
    return counts @ onehot, mean, np.sqrt(var)


def _float_stats(x: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Histogram counts, mean and std per row of ``(n, P)`` float32 in 0–1."""
    p = x.shape[1]
    mean = x.sum(axis=1, dtype=np.float64) / p
    sq = np.einsum("ij,ij->i", x, x, dtype=np.float64) / p
    return _hist_unit(x, bins), mean, np.sqrt(np.maximum(sq - mean**2, 0))


def _features_chunk(tiles: np.ndarray, chans: tuple[str, ...], bins: int) -> np.ndarray:
    n = tiles.shape[0]
    px = tiles.reshape(n, -1, 3)
    r, g, b = px[..., 0], px[..., 1], px[..., 2]
    stats = []
    if "r" in chans:
        stats += [_level_stats(c, bins) for c in (r, g, b)]
    if "h" in chans:
        mx = np.maximum(np.maximum(r, g), b)
        delta = (mx - np.minimum(np.minimum(r, g), b)).astype(np.float32)
        hue = _hue_table().take(_hue_key(r, g, b))
        sat = np.zeros_like(delta)
        np.divide(delta, mx, out=sat, where=mx > 0)
        stats += [_float_stats(hue, bins), _float_stats(sat, bins), _level_stats(mx, bins)]
    hist = np.concatenate([s[0] for s in stats], axis=1) / px.shape[1]
    mean = np.stack([s[1] for s in stats], axis=1)
    std = np.stack([s[2] for s in stats], axis=1)
    return np.concatenate([hist, mean, std], axis=1).astype(np.float32)


def colour_histogram(tiles: np.ndarray, *, bins: int = 16, space: str = "rgb+hsv") -> np.ndarray:
    """Colour-histogram features of a batch of RGB tiles.

    Parameters
    ----------
    tiles
        ``(N, H, W, 3)`` uint8 RGB tiles (for one tile pass ``tile[None]``).
    bins
        Histogram bins per channel, 2–256; the 0–1 range is split evenly.
    space
        ``"rgb"``, ``"hsv"`` or ``"rgb+hsv"`` (RGB channels first).

    Returns
    -------
    numpy.ndarray
        ``(N, D)`` float32 with ``D = C * (bins + 2)`` (:func:`colour_feature_dim`): ``C``
        per-channel histograms that each sum to 1, then ``C`` means, then ``C`` stds, on
        channels scaled to 0–1. Column names: :func:`colour_feature_names`.

    Raises
    ------
    InputError
        ``tiles`` is not ``(N, H, W, 3)`` uint8, ``bins`` is out of range, or ``space`` is
        unknown (the message lists the valid ones).

    Notes
    -----
    Runs in chunks, so memory stays bounded; 1,000 tiles of 224 x 224 px take about 1.5 s on one
    CPU core. The features depend on the pixels' colours only, not on where they are.

    Examples
    --------
    >>> blue = np.zeros((1, 4, 4, 3), np.uint8); blue[..., 2] = 255
    >>> f = colour_histogram(blue, bins=2, space="hsv")
    >>> f[0].astype(float).round(3).tolist()  # h, s, v histograms; means; stds
    [0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.667, 1.0, 1.0, 0.0, 0.0, 0.0]
    """
    chans = _check_space(space)
    bins = _check_bins(bins)
    tiles = np.asarray(tiles)
    if tiles.ndim != 4 or tiles.shape[-1] != 3:
        hint = " (for one tile pass tile[None])" if tiles.ndim == 3 else ""
        raise InputError(f"tiles must be an (N, H, W, 3) RGB array, got shape {tiles.shape}{hint}")
    if tiles.dtype != np.uint8:
        raise InputError(
            f"tiles must be uint8 (0–255), got {tiles.dtype}; convert with "
            "np.clip(x, 0, 255).astype(np.uint8), or x * 255 first if it is in 0–1"
        )
    n, h, w = tiles.shape[:3]
    d = len(chans) * (bins + 2)
    if n == 0:
        return np.zeros((0, d), np.float32)
    if h * w == 0:
        raise InputError(f"tiles have no pixels: shape {tiles.shape}")
    step = max(1, CHUNK_PIXELS // (h * w))
    out = np.empty((n, d), np.float32)
    for i in range(0, n, step):
        out[i : i + step] = _features_chunk(tiles[i : i + step], chans, bins)
    return out
