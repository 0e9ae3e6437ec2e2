from __future__ import annotations

import numpy as np
import pytest

from histoexpr.errors import InputError, TissueError
from histoexpr.slide import ArraySlide, open_slide
from histoexpr.tissue import (
    TISSUE_DETECTORS,
    TissueMask,
    box_fractions,
    detect_tissue,
    summed_area,
    tissue_mask,
)


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_tissue_found_where_the_blobs_are(synthetic_tiff, synthetic):
    from PIL import Image

    with open_slide(synthetic_tiff) as s:
        tm = detect_tissue(s)
    truth = np.asarray(
        Image.fromarray(synthetic.tissue.astype(np.uint8) * 255).resize(tm.mask.shape[::-1])
    ) > 127
    assert tm.scale == pytest.approx((2048 / tm.mask.shape[1], 1536 / tm.mask.shape[0]))
    assert _iou(tm.mask, truth) > 0.9
    assert abs(tm.fraction - synthetic.tissue.mean()) < 0.03


@pytest.mark.parametrize("name", TISSUE_DETECTORS.list())
def test_every_detector_separates_tissue_from_glass(name, synthetic):
    from PIL import Image

    thumb = np.asarray(Image.fromarray(synthetic.rgb).reduce(8))
    truth = np.asarray(Image.fromarray(synthetic.tissue.astype(np.uint8) * 255).reduce(8)) > 127
    mask = TISSUE_DETECTORS.create(name, thumb)
    assert mask.dtype == bool and mask.shape == truth.shape
    assert _iou(mask, truth) > 0.85


def test_blank_slide_has_no_tissue_and_detect_names_it():
    rng = np.random.default_rng(0)
    glass = np.clip(rng.normal(244, 2, (512, 512, 3)), 0, 255).astype(np.uint8)
    assert not tissue_mask(glass).any()
    with pytest.raises(TissueError, match=r"blank\.png: no tissue found"):
        detect_tissue(ArraySlide(glass, mpp=0.5, path="blank.png"))


def test_small_specks_removed_and_holes_filled():
    img = np.full((200, 200, 3), 245, np.uint8)
    img[50:150, 50:150] = (190, 110, 170)
    img[95:100, 95:100] = 245  # a small hole
    img[10:13, 10:13] = (190, 110, 170)  # a speck
    m = tissue_mask(img, sigma=0.5, min_object_px=30, max_hole_px=100)
    assert m[97, 97] and not m[11, 11] and m[60, 60] and not m[190, 190]


def test_bad_image_shape():
    with pytest.raises(InputError, match="RGB"):
        tissue_mask(np.zeros((10, 10)))


def test_box_fractions_match_direct_means(rng):
    a = rng.random((30, 40))
    boxes = np.array([[0, 0, 40, 30], [5, 7, 9, 20], [35, 25, 60, 60], [3, 3, 3, 9]])
    got = box_fractions(summed_area(a), boxes)
    assert got[0] == pytest.approx(a.mean())
    assert got[1] == pytest.approx(a[7:20, 5:9].mean())
    assert got[2] == pytest.approx(a[25:30, 35:40].mean())  # clipped
    assert got[3] == 0.0  # empty box


def test_tissue_mask_fractions_in_level0_units():
    m = np.zeros((10, 10), bool)
    m[:, :5] = True
    tm = TissueMask(m, scale=(10.0, 10.0))
    f = tm.fractions(np.array([[0, 0], [50, 0], [25, 0]]), 50)
    assert f.tolist() == pytest.approx([1.0, 0.0, 0.5])
