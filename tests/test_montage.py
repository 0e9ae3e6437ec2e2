"""What an image feature shows: extreme tiles picked right (ties, NaN, small cohorts), and a
montage read from real feature files and slides whose tile colour encodes the feature."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from histoexpr.analysis.montage import (
    extreme_tiles,
    feature_extremes,
    montage_figure,
    montage_from_arrays,
    montage_from_features,
    read_tile_patches,
)
from histoexpr.errors import InputError
from histoexpr.features import save_features

TILE = 16  # level-0 pixels per tile (slides at 1 µm/px, tiles of 16 px at 1 µm/px)


# -- choosing tiles -------------------------------------------------------------------------
def test_extreme_tiles_orders_and_breaks_ties_by_position():
    v = [5.0, 1.0, 9.0, 5.0, 9.0, 0.0, 1.0]
    top, bottom = extreme_tiles(v, n=3)
    assert top.tolist() == [2, 4, 0]  # 9, 9 (earlier first), then the first 5
    assert bottom.tolist() == [5, 1, 6]  # 0, then the 1s in order
    top, bottom = extreme_tiles(np.array([np.nan, 2.0, np.inf, -1.0, 3.0]), n=1)
    assert (top.tolist(), bottom.tolist()) == ([4], [3])  # NaN and inf ignored


def test_extreme_tiles_rows_never_share_a_tile():
    top, bottom = extreme_tiles([1.0, 1.0, 1.0, 1.0, 1.0], n=4)  # 5 values, n = 4
    assert (top.tolist(), bottom.tolist()) == ([0, 1], [2, 3])
    top, bottom = extreme_tiles([3.0, 1.0, 2.0], n=8)
    assert (top.tolist(), bottom.tolist()) == ([0], [1])
    with pytest.raises(InputError, match="at least 2 tiles"):
        extreme_tiles([1.0, np.nan], n=1)
    with pytest.raises(InputError, match="at least 1 tile"):
        extreme_tiles([1.0, 2.0], n=0)


# -- synthetic slides whose tile colour is the feature --------------------------------------
def _tile_image(levels: np.ndarray, cols: int) -> np.ndarray:
    """One uniform tile per level, ``cols`` tiles per row; colour (v, 255 - v, 128)."""
    rows = int(np.ceil(len(levels) / cols))
    rgb = np.full((rows * TILE, cols * TILE, 3), 255, np.uint8)
    for i, v in enumerate(levels):
        y, x = divmod(i, cols)
        rgb[y * TILE:(y + 1) * TILE, x * TILE:(x + 1) * TILE] = (v, 255 - v, 128)
    return rgb


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Two slides (a pyramidal TIFF and a PNG) of 12 tiles each; feature 1 of each tile is
    its red level / 255, features 0 and 2 are noise. Feature files carry the attributes
    ``histoexpr embed`` writes."""
    from PIL import Image

    from histoexpr.datasets.synthetic import write_pyramidal_tiff

    d = tmp_path_factory.mktemp("montage")
    rng = np.random.default_rng(0)
    levels = rng.permutation(np.arange(10, 250, 10)).astype(np.uint8)  # 24 distinct levels
    (d / "slides").mkdir()
    slides = {}
    for k, name in enumerate(["s1", "s2"]):
        lv = levels[k * 12:(k + 1) * 12]
        rgb = _tile_image(lv, cols=4)
        if name == "s1":
            path = write_pyramidal_tiff(d / "slides" / "s1.tif", rgb, mpp=1.0,
                                        downsamples=(1,), tile=64, compression="zlib")
        else:
            path = d / "slides" / "s2.png"
            Image.fromarray(rgb).save(path)
        coords = np.array([[(i % 4) * TILE, (i // 4) * TILE] for i in range(12)])
        feats = rng.normal(size=(12, 3)).astype(np.float32)
        feats[:, 1] = lv / 255.0
        save_features(d / "features" / f"{name}.h5", coords, feats, {
            "encoder": {"name": "toy"}, "tile_spec": {"size_px": TILE, "mpp": 1.0},
            "slide_path": str(path.resolve()), "level0_mpp": 1.0,
            "slide_dimensions": [rgb.shape[1], rgb.shape[0]]})
        slides[name] = (path, lv)
    return d, slides, levels


def _shown(fig, row: str) -> list[np.ndarray]:
    axes = [ax for ax in fig.axes if ax.images and ax.get_label().startswith(row)]
    return [np.asarray(ax.images[0].get_array()) for ax in axes]


def test_feature_extremes_table(cohort):
    d, slides, levels = cohort
    t = feature_extremes(d / "features", feature=1, n=3)
    expect_top = np.sort(levels)[::-1][:3] / 255.0
    expect_bottom = np.sort(levels)[:3] / 255.0
    np.testing.assert_allclose(t["value"].to_numpy(), np.r_[expect_top, expect_bottom],
                               rtol=1e-6)
    assert t["row"].tolist() == ["highest"] * 3 + ["lowest"] * 3
    assert t["rank"].tolist() == [0, 1, 2, 0, 1, 2]
    for _, r in t.iterrows():  # each tile's coords point at its level in its slide
        lv = slides[r["slide"]][1]
        i = (r["y"] // TILE) * 4 + r["x"] // TILE
        assert lv[i] / 255.0 == pytest.approx(r["value"], rel=1e-6)
    assert (t.attrs["n_slides"], t.attrs["n_tiles"], t.attrs["dim"]) == (2, 24, 3)
    assert t.attrs["encoder"] == "toy"


def test_montage_shows_the_highest_and_lowest_tiles(cohort):
    d, _, levels = cohort
    n = 4
    fig = montage_from_features(d / "features", feature=1, n=n)
    assert len([ax for ax in fig.axes if ax.images]) == 2 * n
    top, bottom = _shown(fig, "highest"), _shown(fig, "lowest")
    assert [p.shape for p in top + bottom] == [(TILE, TILE, 3)] * (2 * n)
    for p in top + bottom:  # uniform tiles of the encoded colour, nothing else
        assert (p == p[0, 0]).all() and p[0, 0, 1] == 255 - p[0, 0, 0]
    assert [int(p[0, 0, 0]) for p in top] == sorted(levels.tolist(), reverse=True)[:n]
    assert [int(p[0, 0, 0]) for p in bottom] == sorted(levels.tolist())[:n]
    titles = [ax.get_title() for ax in fig.axes]
    assert all(t.split("\n")[0] in ("s1", "s2") for t in titles)
    assert titles[0].split("\n")[1] == f"{levels.max() / 255:.3g}"
    assert "image feature 1 (toy)" in fig.get_suptitle()
    assert "24 tiles from 2 slides" in fig.get_suptitle()
    fig.canvas.draw()  # renders on the Agg canvas


def test_montage_resamples_to_size_px(cohort):
    d, _, _ = cohort
    fig = montage_from_features(d / "features" / "s2.h5", feature=1, n=2, size_px=8)
    assert [p.shape for p in _shown(fig, "highest")] == [(8, 8, 3)] * 2


def test_a_missing_slide_says_to_pass_slides_dir_and_a_moved_one_is_found(cohort, tmp_path):
    d, slides, _ = cohort
    feats = tmp_path / "features"
    shutil.copytree(d / "features", feats)
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.copy(slides["s1"][0], moved / "s1.tif")
    shutil.copy(slides["s2"][0], moved / "s2.png")
    import h5py

    for name, ext in (("s1", "tif"), ("s2", "png")):  # point the files at a vanished folder
        with h5py.File(feats / f"{name}.h5", "r+") as f:
            f.attrs["slide_path"] = str(tmp_path / "gone" / f"{name}.{ext}")
    with pytest.raises(InputError, match=r"slide s\d not found.*--slides DIR"):
        montage_from_features(feats, feature=1, n=2)
    with pytest.raises(InputError, match=r"nor in .*--slides DIR"):
        montage_from_features(feats, feature=1, n=2, slides_dir=tmp_path)
    fig = montage_from_features(feats, feature=1, n=2, slides_dir=moved)
    ref = montage_from_features(d / "features", feature=1, n=2)
    for a, b in zip(_shown(fig, ""), _shown(ref, ""), strict=True):
        np.testing.assert_array_equal(a, b)


def test_feature_file_errors(cohort, tmp_path):
    d, _, _ = cohort
    with pytest.raises(InputError, match=r"feature 3 does not exist.*3 dimensions"):
        feature_extremes(d / "features", feature=3)
    with pytest.raises(InputError, match="made with encoder 'toy', not 'uni'"):
        feature_extremes(d / "features", feature=0, encoder="uni")
    with pytest.raises(InputError, match=r"no \.h5 feature files"):
        feature_extremes(tmp_path, feature=0)
    mixed = tmp_path / "mixed"
    shutil.copytree(d / "features", mixed)
    save_features(mixed / "s3.h5", np.zeros((2, 2)), np.zeros((2, 3)),
                  {"encoder": {"name": "other"}})
    with pytest.raises(InputError, match="different encoders"):
        feature_extremes(mixed, feature=0)
    no_path = save_features(tmp_path / "np" / "x.h5", np.zeros((2, 2)), np.ones((2, 3)) *
                            np.array([[0.0], [1.0]]), {"tile_spec": {"size_px": 16, "mpp": 1}})
    t = feature_extremes(no_path, feature=0, n=1)
    with pytest.raises(InputError, match=r"x\.h5: the feature file records no slide path"):
        read_tile_patches(t)


def test_non_finite_feature_values_are_ignored_and_counted(tmp_path, caplog):
    feats = np.array([[0.5], [np.nan], [0.9], [0.1]], np.float32)
    p = save_features(tmp_path / "a.h5", np.zeros((4, 2)), feats, {})
    t = feature_extremes(p, feature=0, n=2)
    assert t.attrs["n_nonfinite"] == 1 and "1 of 4 tiles" in caplog.text
    np.testing.assert_allclose(t["value"], [0.9, 0.1], rtol=1e-6)  # 3 finite: 1 per row
    assert t["row"].tolist() == ["highest", "lowest"]


# -- the figure from arrays -----------------------------------------------------------------
def test_montage_from_arrays_picks_by_value_and_validates():
    rng = np.random.default_rng(1)
    values = rng.permutation(20).astype(float)
    patches = np.stack([np.full((6, 6, 3), 10 * v, np.uint8) for v in values])
    fig = montage_from_arrays(values, patches, n=3, labels=[f"t{i}" for i in range(20)])
    assert len(fig.axes) == 6
    assert [int(p[0, 0, 0]) for p in _shown(fig, "highest")] == [190, 180, 170]
    assert [int(p[0, 0, 0]) for p in _shown(fig, "lowest")] == [0, 10, 20]
    i_max = int(np.argmax(values))
    assert fig.axes[0].get_title() == f"t{i_max}\n19"
    assert fig.axes[0].get_ylabel() == "highest" and fig.axes[3].get_ylabel() == "lowest"
    with pytest.raises(InputError, match="5 values for 20 patches"):
        montage_from_arrays(values[:5], patches)
    with pytest.raises(InputError, match="a patch must be"):
        montage_figure([np.zeros((4, 4, 5))], [])
    with pytest.raises(InputError, match="2 labels for 1 patches"):
        montage_figure([np.zeros((4, 4))], [], top_labels=["a", "b"])
    grey = montage_figure([np.linspace(0, 255, 16).reshape(4, 4)], [np.zeros((4, 4, 3))])
    assert np.asarray(grey.axes[0].images[0].get_array()).max() == pytest.approx(1.0)
