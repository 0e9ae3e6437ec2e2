"""Streamed OME-TIFF expression maps (issue 21): a 100,000 x 80,000 px slide's map is
written tile by tile in bounded memory, with a pyramid of halved levels, and each tile's
value lands on its level-0 footprint."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

tifffile = pytest.importorskip("tifffile")

from histoexpr.st.map_tiff import write_map_tiff  # noqa: E402


def test_giant_slide_map_is_streamed_with_a_pyramid(tmp_path):
    step = 448  # 224 px tiles at 0.5 µm/px on a 0.25 µm/px slide
    yy, xx = np.mgrid[20000:60000:step, 10000:90000:step]
    coords = np.c_[xx.ravel(), yy.ravel()]
    values = np.arange(len(coords), dtype=np.float32)
    tracemalloc.start()
    path = write_map_tiff(tmp_path / "g.ome.tif", coords, step, step, values,
                          dims=(100_000, 80_000), slide_mpp=0.25, map_mpp=8.0, gene="G")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    whole = 3125 * 2500 * 4  # the level-0 map as one float32 array: 31 MB
    assert peak < whole / 3, f"{peak / 1e6:.1f} MB traced"
    with tifffile.TiffFile(path) as tf:
        levels = tf.series[0].levels
        assert [lv.shape for lv in levels] == [(2500, 3125), (1250, 1563), (625, 782),
                                               (313, 391), (157, 196)]
        top = levels[0].asarray()
    px0 = 32  # level-0 pixels per map pixel
    centre = ((coords + step / 2) // px0).astype(int)
    np.testing.assert_array_equal(top[centre[:, 1], centre[:, 0]], values)
    assert np.isnan(top[0, 0]) and np.isnan(top[-1, -1])
    assert np.isfinite(top).sum() == pytest.approx(len(coords) * (step / px0) ** 2, rel=0.01)


def test_no_tiles_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no tiles"):
        write_map_tiff(tmp_path / "x.ome.tif", np.zeros((0, 2)), 10, 10, np.zeros(0),
                       dims=(100, 100), slide_mpp=0.5)
