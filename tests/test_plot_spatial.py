"""Spatial expression maps and prediction scatter plots (matplotlib, Agg, no pyplot)."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

from histoexpr.errors import InputError
from histoexpr.plot import (
    estimate_spot_diameter,
    expression_maps,
    prediction_scatter,
    save_figure,
    section_image,
    spot_scatter,
)

SCALE = 2.0  # full-res pixels per image pixel


@pytest.fixture(scope="module")
def section():
    """A 512 x 384 synthetic H&E 'thumbnail', a hex-ish spot grid in full-res pixels, and
    two genes: ``gx`` rises left to right, ``noise`` is random."""
    from histoexpr.datasets.synthetic import synthetic_he

    img = synthetic_he(512, 384, seed=1).rgb
    pts = [(100 + 80 * i + (40 if j % 2 else 0), 100 + 70 * j) for j in range(9) for i in range(10)]
    xy = np.array(pts, np.float64)
    rng = np.random.default_rng(0)
    y = np.c_[xy[:, 0], rng.normal(size=len(xy))]
    return img, xy, y


def _pixel(fig, ax, png: np.ndarray, xy, dpi: float) -> np.ndarray:
    """The PNG pixel under full-res point ``xy`` of ``ax`` (figure drawn at ``dpi``)."""
    disp = ax.transData.transform(np.asarray(xy, float)) * dpi / fig.dpi
    col, row = round(float(disp[0])), round(float(png.shape[0] - disp[1]))
    return png[row, col].astype(int)


def test_import_does_not_load_matplotlib():
    code = "import sys, histoexpr.plot; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_spot_diameter_estimate():
    xy = np.array([[0, 0], [100, 0], [200, 0], [0, 100]])
    assert estimate_spot_diameter(xy) == pytest.approx(80.0)
    assert estimate_spot_diameter(xy, fill=1.0) == pytest.approx(100.0)
    assert estimate_spot_diameter(np.array([[5.0, 5.0]])) is None
    assert estimate_spot_diameter(np.array([[5.0, 5.0], [5.0, 5.0]])) is None


def test_maps_render_with_spot_colours(section, tmp_path):
    from PIL import Image

    img, xy, y = section
    fig = expression_maps(
        img,
        xy,
        ["gx", "noise"],
        measured=y,
        predicted=0.3 * y + 5,
        gene_names=["gx", "noise"],
        scale=SCALE,
        r={"gx": 0.81234},
    )
    assert len(fig.axes) == 6 + 4  # 2 x 3 panels and a colour bar per map
    titles = [ax.get_title() for ax in fig.axes[:6]]
    assert titles == ["gx", "measured", "predicted, r = 0.81", "noise", "measured", "predicted"]
    dpi = 100
    path = save_figure(fig, tmp_path / "maps" / "gx.png", dpi=dpi)
    assert path.is_file() and not list(path.parent.glob(".*tmp*"))
    with Image.open(path) as im:
        png = np.asarray(im.convert("RGB"))
        w, h = im.size
    np.testing.assert_allclose((w, h), fig.get_size_inches() * dpi, atol=1)

    lo, hi = int(np.argmin(y[:, 0])), int(np.argmax(y[:, 0]))
    for ax in (fig.axes[1], fig.axes[2]):  # measured and predicted of gx: same pattern
        low, high = _pixel(fig, ax, png, xy[lo], dpi), _pixel(fig, ax, png, xy[hi], dpi)
        # viridis: the low end is dark purple, the high end yellow (alpha 0.85 over H&E)
        assert high[0] > 200 and high[1] > 180 and high[2] < 130, high
        assert low[1] < 90 and low[2] > low[1], low
    he_high = _pixel(fig, fig.axes[0], png, xy[hi], dpi)
    assert np.abs(he_high - _pixel(fig, fig.axes[1], png, xy[hi], dpi)).sum() > 60


def test_each_map_has_its_own_percentile_range(section):
    img, xy, y = section
    fig = expression_maps(
        img, xy, "gx", measured=y, predicted=0.1 * y, gene_names=["gx", "noise"], scale=SCALE
    )
    meas, pred = fig.axes[1].collections[0], fig.axes[2].collections[0]
    np.testing.assert_allclose(meas.get_clim(), np.percentile(y[:, 0], [1, 99]))
    np.testing.assert_allclose(pred.get_clim(), np.percentile(0.1 * y[:, 0], [1, 99]))


def test_predicted_only_has_two_columns(section):
    img, xy, y = section
    fig = expression_maps(
        img,
        xy,
        ["noise", "gx"],
        predicted=y,
        gene_names=["gx", "noise"],
        scale=SCALE,
        ncols_label=False,
        r={"noise": float("nan")},
    )
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(panels) == 4
    assert [ax.get_title() for ax in panels] == ["noise", "r = n/a", "gx", ""]


def test_crop_is_spots_plus_margin(section):
    img, xy, y = section
    d = 50.0
    fig = expression_maps(
        img, xy, "gx", measured=y, gene_names=["gx", "noise"], scale=SCALE, spot_diameter=d
    )
    x0, x1 = fig.axes[1].get_xlim()
    y1, y0 = fig.axes[1].get_ylim()
    assert y0 < y1  # image rows grow downwards
    assert xy[:, 0].min() - 1.5 * d <= x0 < xy[:, 0].min() - d / 2
    assert xy[:, 0].max() + d / 2 < x1 <= xy[:, 0].max() + 1.5 * d
    assert fig.axes[1].collections[0].get_widths()[0] == pytest.approx(d)


def test_nan_spots_are_grey(tmp_path):
    from PIL import Image

    from histoexpr.plot import new_figure
    from histoexpr.plot.spatial import NAN_COLOUR

    fig = new_figure((3, 3))
    ax = fig.add_subplot()
    xy = np.array([[20.0, 20.0], [60.0, 60.0], [20.0, 60.0]])
    spot_scatter(ax, None, xy, [0.0, np.nan, 1.0], alpha=1.0)
    with Image.open(save_figure(fig, tmp_path / "nan.png", dpi=100)) as im:
        png = np.asarray(im.convert("RGB"))
    grey = np.array([int(NAN_COLOUR[i : i + 2], 16) for i in (1, 3, 5)])
    np.testing.assert_allclose(_pixel(fig, ax, png, xy[1], 100), grey, atol=2)


def test_unknown_gene_lists_available(section):
    img, xy, y = section
    with pytest.raises(InputError, match=r"GX.*did you mean.*available: gx, noise"):
        expression_maps(img, xy, ["GX"], measured=y, gene_names=["gx", "noise"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "measured and/or predicted"),
        ({"measured": np.zeros((3, 2)), "gene_names": ["gx", "noise"]}, "3 rows"),
        ({"measured": np.zeros((90, 3)), "gene_names": ["gx", "noise"]}, "3 columns"),
        ({"measured": np.zeros((90, 2))}, "gene_names"),
    ],
)
def test_bad_expression_input(section, kwargs, match):
    img, xy, _ = section
    with pytest.raises(InputError, match=match):
        expression_maps(img, xy, "gx", **kwargs)


def test_dataframe_columns_name_genes(section):
    import pandas as pd

    _, xy, y = section
    df = pd.DataFrame(y, columns=["gx", "noise"])
    fig = expression_maps(None, xy, "noise", measured=df, predicted=df)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["measured", "predicted"]


def test_prediction_scatter_constant_gene_no_warnings(tmp_path, rng):
    y = np.c_[rng.normal(size=50), np.full(50, 3.0), rng.normal(size=50)]
    yhat = np.c_[
        y[:, 0] * 0.5 + rng.normal(scale=0.1, size=50), rng.normal(size=50), np.full(50, 1.0)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = prediction_scatter(y, yhat, ["a", "flat", "b"], ["a", "flat", "b"], ncols=2)
        save_figure(fig, tmp_path / "scatter.png", dpi=60)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 3  # the fourth grid cell is removed
    assert titles[0].startswith("a  r = 0.9")
    assert titles[1:] == ["flat  constant measured", "b  constant predicted"]
    assert len(fig.axes[0].lines) == 1 and not fig.axes[1].lines


def test_prediction_scatter_ignores_nan_spots(rng):
    from scipy import stats

    y = rng.normal(size=(40, 1))
    yhat = y + rng.normal(scale=0.5, size=(40, 1))
    y[3] = np.nan
    fig = prediction_scatter(y, yhat, ["g"], "g")
    r = stats.pearsonr(np.delete(y[:, 0], 3), np.delete(yhat[:, 0], 3)).statistic
    assert fig.axes[0].get_title() == f"g  r = {r:.2f}"


def test_save_figure_rejects_unknown_format(tmp_path):
    fig = prediction_scatter([[1.0], [2.0], [3.0]], [[1.0], [3.0], [2.0]], ["g"], "g")
    with pytest.raises(InputError, match="png"):
        save_figure(fig, tmp_path / "fig.jpg")
    assert not list(tmp_path.iterdir())


def test_section_image_scale(tmp_path):
    from PIL import Image

    rgb = np.random.default_rng(1).integers(0, 256, (300, 500, 3), dtype=np.uint8)
    path = tmp_path / "section.png"
    Image.fromarray(rgb).save(path)
    img, scale = section_image(path, max_size=100)
    assert img.shape == (60, 100, 3) and img.dtype == np.uint8
    assert scale == pytest.approx(5.0)
    full, one = section_image(path, max_size=1000)
    assert one == 1.0
    np.testing.assert_array_equal(full, rgb)


@pytest.mark.data
def test_section_image_her2st(shared_data):
    path = shared_data / "her2st" / "images" / "C2.jpg"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    img, scale = section_image(path, max_size=1000)
    assert max(img.shape[:2]) == 1000
    assert 8 < scale < 11  # about 9,900 px on the longer side
