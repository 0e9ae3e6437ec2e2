from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from histoexpr.errors import InputError, MppMissingError, SlideError
from histoexpr.slide import (
    SLIDE_READERS,
    ArraySlide,
    TileFolderSlide,
    open_slide,
    resize_rgb,
    slide_checksum,
)


def test_pyramidal_tiff_geometry_and_mpp(synthetic_tiff):
    with open_slide(synthetic_tiff) as s:
        assert s.reader == "openslide"
        assert s.dimensions == (2048, 1536)
        assert s.level_count == 3
        assert s.level_downsamples == pytest.approx((1.0, 4.0, 16.0))
        assert s.mpp == pytest.approx(0.5)  # from the TIFF resolution tags
        assert s.info()["vendor"] == "generic-tiff"


@pytest.mark.parametrize("reader", ["openslide", "tiffslide"])
def test_readers_return_the_stored_pixels(synthetic_tiff, synthetic, reader):
    with open_slide(synthetic_tiff, reader=reader) as s:
        got = s.read_region(300, 700, 200, 100)
        np.testing.assert_array_equal(got, synthetic.rgb[700:800, 300:500])
        lvl1 = s.read_region(400, 800, 64, 32, level=1)
        expect = np.asarray(Image.fromarray(synthetic.rgb).reduce(4))[200:232, 100:164]
        np.testing.assert_array_equal(lvl1, expect)


@pytest.mark.parametrize("reader", ["openslide", "tiffslide"])
def test_outside_the_slide_reads_white(synthetic_tiff, reader):
    with open_slide(synthetic_tiff, reader=reader) as s:
        r = s.read_region(2000, 1500, 100, 100)
        assert (r[60:, :] == 255).all() and (r[:, 60:] == 255).all()
        np.testing.assert_array_equal(r[:36, :48], s.read_region(2000, 1500, 48, 36))


def test_read_at_mpp_uses_matching_level_without_resampling(synthetic_tiff):
    with open_slide(synthetic_tiff) as s:
        tile = s.read_at_mpp(512, 256, 128, 2.0)  # downsample 4 = level 1 exactly
        np.testing.assert_array_equal(tile, s.read_region(512, 256, 128, 128, level=1))


@pytest.mark.parametrize("mpp", [1.0, 1.5, 4.0, 8.0])
def test_read_at_mpp_matches_full_resolution_resize(synthetic_tiff, synthetic, mpp):
    size = 64
    span = round(size * mpp / 0.5)
    with open_slide(synthetic_tiff) as s:
        fast = s.read_at_mpp(256, 512, size, mpp)
    naive = resize_rgb(synthetic.rgb[512 : 512 + span, 256 : 256 + span], (size, size))
    diff = np.abs(fast.astype(int) - naive.astype(int))
    assert fast.shape == (size, size, 3)
    assert diff.mean() < 1.5 and np.percentile(diff, 99) <= 8


def test_best_level_and_thumbnail(synthetic_tiff):
    with open_slide(synthetic_tiff) as s:
        assert s.best_level_for_downsample(1.0) == 0
        assert s.best_level_for_downsample(3.99) == 0
        assert s.best_level_for_downsample(4.0) == 1
        assert s.best_level_for_downsample(100) == 2
        th = s.thumbnail(512)
        assert th.shape == (384, 512, 3)


def test_array_slide_and_bad_arguments():
    s = ArraySlide(np.zeros((100, 120, 3), np.uint8), mpp=0.25)
    assert s.dimensions == (120, 100) and s.level_count == 1
    with pytest.raises(InputError, match="uint8"):
        ArraySlide(np.zeros((10, 10), np.float32), mpp=0.5)
    with pytest.raises(InputError, match="level 3"):
        s.read_region(0, 0, 4, 4, level=3)
    with pytest.raises(InputError, match="positive"):
        s.read_region(0, 0, 0, 4)
    with pytest.raises(InputError, match="mpp must be a positive"):
        ArraySlide(np.zeros((4, 4, 3), np.uint8), mpp=-1)


def test_image_slide_needs_mpp_and_is_decoded_once(tmp_path, synthetic):
    p = tmp_path / "section.jpg"
    Image.fromarray(synthetic.rgb).save(p, quality=95)
    with pytest.raises(MppMissingError, match=r"section\.jpg.*--mpp"):
        open_slide(p)
    s = open_slide(p, mpp=0.69)
    assert s.reader == "image" and s.mpp == 0.69 and s.dimensions == (2048, 1536)
    assert s.level_count == 2  # a virtual level for thumbnails
    a = s.read_region(10, 10, 50, 50)
    assert np.abs(a.astype(int) - synthetic.rgb[10:60, 10:60]).mean() < 3


def test_plain_tiff_resolution_tags_give_mpp(tmp_path):
    import tifffile

    p = tmp_path / "plain.tif"
    tifffile.imwrite(p, np.full((64, 80, 3), 200, np.uint8), photometric="rgb",
                     resolution=(1e4 / 0.25, 1e4 / 0.25), resolutionunit="CENTIMETER")
    with open_slide(p) as s:
        assert s.mpp == pytest.approx(0.25)
        assert s.dimensions == (80, 64)


def test_file_mpp_wins_over_a_given_one_with_a_warning(synthetic_tiff, caplog):
    with caplog.at_level(logging.WARNING, logger="histoexpr"), open_slide(
        synthetic_tiff, mpp=0.25
    ) as s:
        assert s.mpp == 0.5
    assert "the file says 0.5000" in caplog.text


def _write_tiles(folder, rgb, slide_id="SLIDE-1", x0=1000, y0=2000, size=64):
    folder.mkdir(parents=True, exist_ok=True)
    for r in range(0, rgb.shape[0], size):
        for c in range(0, rgb.shape[1], size):
            Image.fromarray(rgb[r : r + size, c : c + size]).save(
                folder / f"{slide_id} [x={x0 + c},y={y0 + r},w={size},h={size}].png"
            )


def test_tile_folder_reads_as_one_slide(tmp_path, synthetic):
    block = synthetic.rgb[600:728, 500:692]  # 128 x 192 -> 2 x 3 tiles
    _write_tiles(tmp_path / "p1", block)
    s = open_slide(tmp_path / "p1", mpp=0.5)
    assert isinstance(s, TileFolderSlide) and s.name == "SLIDE-1" and s.n_tiles == 6
    assert s.dimensions == (1000 + 192, 2000 + 128)
    np.testing.assert_array_equal(s.read_region(1000, 2000, 192, 128), block)
    np.testing.assert_array_equal(s.read_region(1030, 2040, 100, 60), block[40:100, 30:130])
    assert (s.read_region(0, 0, 50, 50) == 255).all()  # no tile there
    assert len(slide_checksum(s)) == 64


def test_tile_folder_with_two_slides_is_refused(tmp_path, synthetic):
    _write_tiles(tmp_path / "mixed", synthetic.rgb[:64, :64], slide_id="A")
    _write_tiles(tmp_path / "mixed", synthetic.rgb[:64, :64], slide_id="B")
    with pytest.raises(SlideError, match="2 slides"):
        open_slide(tmp_path / "mixed", mpp=0.5)


def test_missing_path(tmp_path):
    with pytest.raises(SlideError, match=r"nope\.svs: no such file"):
        open_slide(tmp_path / "nope.svs")


def test_text_file_renamed_svs(tmp_path):
    p = tmp_path / "fake.svs"
    p.write_text("this is not a slide\n" * 10)
    with pytest.raises(SlideError, match=r"fake\.svs"):
        open_slide(p)


def test_truncated_slide(tmp_path, synthetic_tiff):
    data = synthetic_tiff.read_bytes()
    p = tmp_path / "truncated.tif"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(SlideError, match=r"truncated\.tif.*(truncated|damaged)"):
        open_slide(p)


def test_reader_registry_order_and_unknown_reader(synthetic_tiff):
    assert SLIDE_READERS.list() == ["tilefolder", "openslide", "tiffslide", "image"]
    with pytest.raises(Exception, match="choose one of: tilefolder, openslide"):
        open_slide(synthetic_tiff, reader="bioformats")


@pytest.mark.data
def test_cmu_svs_reports_its_mpp(shared_data):
    path = shared_data / "wsi" / "CMU-1-Small-Region.svs"
    with open_slide(path) as s, open_slide(path, reader="tiffslide") as t:
        assert s.reader == "openslide" and s.vendor == "aperio"
        assert s.mpp == pytest.approx(0.499, abs=1e-4)
        assert s.dimensions == (2220, 2967)
        assert t.mpp == pytest.approx(0.499, abs=1e-4)
        a, b = s.read_region(500, 500, 64, 64), t.read_region(500, 500, 64, 64)
        np.testing.assert_array_equal(a, b)


@pytest.mark.data
def test_tcga_tile_folder_opens_as_a_slide(shared_data):
    folder = shared_data / "tcga_brca" / "tiles" / "TCGA-A2-A04R"
    s = open_slide(folder, mpp=0.5)
    assert s.reader == "tilefolder" and s.name.startswith("TCGA-A2-A04R-01Z")
    x, y, w, h = s.tile_boxes[0]
    tile = s.read_region(int(x), int(y), int(w), int(h))
    assert tile.shape == (224, 224, 3) and tile.std() > 5  # real tissue, not blank
    assert s.thumbnail(256).shape[0] == 256


def test_threaded_batch_reads_equal_sequential_reads(synthetic_tiff, rng):
    coords = rng.integers(0, 1800, (24, 2))
    with open_slide(synthetic_tiff) as s:
        seq = s.read_at_mpp_batch(coords, 64, 1.0, workers=1)
        par = s.read_at_mpp_batch(coords, 64, 1.0, workers=3)
        one = s.read_at_mpp(int(coords[5, 0]), int(coords[5, 1]), 64, 1.0)
    np.testing.assert_array_equal(seq, par)
    np.testing.assert_array_equal(seq[5], one)
