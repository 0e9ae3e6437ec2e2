"""Colour-histogram baseline features."""

from __future__ import annotations

import numpy as np
import pytest

from histoexpr.errors import InputError
from histoexpr.features.colour import (
    COLOUR_FEATURES,
    COLOUR_SPACES,
    colour_feature_dim,
    colour_feature_names,
    colour_histogram,
    rgb_to_hsv,
)


def _solid(rgb: tuple[int, int, int], size: int = 16) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (size, size, 3)).copy()


@pytest.mark.parametrize("space", list(COLOUR_SPACES))
@pytest.mark.parametrize("bins", [2, 8, 16])
def test_shape_dtype_and_names(space, bins, rng):
    tiles = rng.integers(0, 256, (5, 24, 20, 3), dtype=np.uint8)
    f = colour_histogram(tiles, bins=bins, space=space)
    d = colour_feature_dim(bins, space)
    assert f.shape == (5, d) and f.dtype == np.float32
    assert d == len(COLOUR_SPACES[space]) * (bins + 2)
    assert len(colour_feature_names(bins, space)) == d
    assert np.isfinite(f).all() and (f >= 0).all() and (f <= 1).all()
    assert COLOUR_FEATURES == "colour_hist"


def test_histograms_sum_to_one_per_channel(rng):
    tiles = rng.integers(0, 256, (7, 33, 31, 3), dtype=np.uint8)
    bins = 16
    f = colour_histogram(tiles, bins=bins)
    hists = f[:, : 6 * bins].reshape(7, 6, bins)
    np.testing.assert_allclose(hists.sum(axis=2), 1.0, atol=1e-5)


def test_matches_numpy_and_skimage(rng):
    from skimage.color import rgb2hsv

    tiles = rng.integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    bins = 8
    f = colour_histogram(tiles, bins=bins)
    for i, t in enumerate(tiles):
        chans = [t[..., c] / 255 for c in range(3)]
        hsv = rgb2hsv(t).astype(np.float32)
        chans += [hsv[..., c] for c in range(3)]
        hist = [np.histogram(c, bins, (0, 1))[0] / c.size for c in chans]
        ref = np.concatenate([*hist, [c.mean() for c in chans], [c.std() for c in chans]])
        np.testing.assert_allclose(f[i], ref, atol=1e-5)


def test_rgb_to_hsv_matches_skimage(rng):
    from skimage.color import rgb2hsv

    px = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    px[0, :8] = [[0, 0, 0], [255, 255, 255], [255, 0, 255], [10, 10, 200],
                 [200, 10, 10], [10, 200, 200], [1, 0, 0], [0, 0, 1]]  # fmt: skip
    np.testing.assert_allclose(rgb_to_hsv(px), rgb2hsv(px), atol=1e-6)


def test_red_and_blue_tiles_fill_the_right_bins():
    bins = 4
    tiles = np.stack([_solid((255, 0, 0)), _solid((0, 0, 255))])
    f = colour_histogram(tiles, bins=bins)
    hist = f[:, : 6 * bins].reshape(2, 6, bins)
    r, b, h = 0, 2, 3
    assert hist[0, r].tolist() == [0, 0, 0, 1] and hist[0, b].tolist() == [1, 0, 0, 0]
    assert hist[1, r].tolist() == [1, 0, 0, 0] and hist[1, b].tolist() == [0, 0, 0, 1]
    # hue: red is 0 (first bin), blue is 2/3 (third of four bins)
    assert hist[0, h].tolist() == [1, 0, 0, 0] and hist[1, h].tolist() == [0, 0, 1, 0]
    means, stds = f[:, 6 * bins : 6 * bins + 6], f[:, 6 * bins + 6 :]
    np.testing.assert_allclose(means[0], [1, 0, 0, 0, 1, 1], atol=1e-6)
    np.testing.assert_allclose(means[1], [0, 0, 1, 2 / 3, 1, 1], atol=1e-6)
    np.testing.assert_allclose(stds, 0, atol=1e-6)


def test_invariant_to_pixel_shuffling(rng):
    tile = rng.integers(0, 256, (1, 30, 30, 3), dtype=np.uint8)
    flat = tile.reshape(-1, 3)
    shuffled = flat[rng.permutation(len(flat))].reshape(tile.shape)
    np.testing.assert_allclose(colour_histogram(tile), colour_histogram(shuffled), atol=1e-6)


def test_chunking_does_not_change_results(rng, monkeypatch):
    import histoexpr.features.colour as colour

    tiles = rng.integers(0, 256, (9, 16, 16, 3), dtype=np.uint8)
    whole = colour_histogram(tiles)
    monkeypatch.setattr(colour, "CHUNK_PIXELS", 2 * 16 * 16)
    np.testing.assert_array_equal(colour_histogram(tiles), whole)


def test_empty_batch():
    f = colour_histogram(np.zeros((0, 8, 8, 3), np.uint8), bins=4, space="rgb")
    assert f.shape == (0, 18) and f.dtype == np.float32


@pytest.mark.parametrize(
    ("tiles", "match"),
    [
        (np.zeros((8, 8, 3), np.uint8), r"tile\[None\]"),
        (np.zeros((2, 8, 8, 4), np.uint8), "RGB"),
        (np.zeros((2, 8, 8, 3), np.float32), "uint8"),
        (np.full((2, 8, 8, 3), 200.0), "uint8"),
        (np.zeros((2, 0, 8, 3), np.uint8), "no pixels"),
    ],
)
def test_bad_tiles(tiles, match):
    with pytest.raises(InputError, match=match):
        colour_histogram(tiles)


def test_bad_space_lists_valid_ones():
    with pytest.raises(InputError, match=r"'rgb'.*'hsv'.*'rgb\+hsv'"):
        colour_histogram(np.zeros((1, 4, 4, 3), np.uint8), space="lab")
    with pytest.raises(InputError, match="valid"):
        colour_feature_dim(16, "RGB")


@pytest.mark.parametrize("bins", [1, 0, 257, 2.5, True])
def test_bad_bins(bins):
    with pytest.raises(InputError, match="bins"):
        colour_histogram(np.zeros((1, 4, 4, 3), np.uint8), bins=bins)
