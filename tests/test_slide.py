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
    assert SLIDE_READERS.list() == ["ngff", "tilefolder", "openslide", "tiffslide", "image"]
    with pytest.raises(Exception, match="choose one of: ngff, tilefolder, openslide"):
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


# -- incomplete files, broken links, library noise (issue 17) ---------------------------------


@pytest.fixture(scope="module")
def small_tiff(tmp_path_factory, synthetic):
    """A small tiled pyramidal TIFF (2 levels) whose every byte position can be cut."""
    from histoexpr.datasets.synthetic import write_pyramidal_tiff

    path = tmp_path_factory.mktemp("small") / "small.tif"
    return write_pyramidal_tiff(path, synthetic.rgb[:512, :768], mpp=0.5, downsamples=(1, 4),
                                tile=128, compression="zlib")


def _cut_points(path):
    """Byte positions worth cutting at: a coarse grid plus each directory's edges and the
    end of each level's last tile."""
    import tifffile

    n = path.stat().st_size
    pts = set(range(2, n, max(1, n // 25))) | {3, 4, 8, 9, 16, n - 1}
    with tifffile.TiffFile(path) as tf:
        for page in tf.pages:
            pts |= {page.offset, page.offset + 1, page.offset + 3}
            pts.add(page.dataoffsets[-1] + page.databytecounts[-1] - 1)
    return sorted(p for p in pts if 0 < p < n)


def test_every_cut_of_a_pyramidal_tiff_is_reported_as_incomplete(tmp_path, small_tiff, caplog):
    data = small_tiff.read_bytes()
    p = tmp_path / "cut.tif"
    for at in _cut_points(small_tiff):
        p.write_bytes(data[:at])
        with pytest.raises(SlideError) as e:
            open_slide(p, mpp=0.5)
        assert str(e.value).startswith(f"{p}: the file is incomplete (truncated: "), (at, e.value)
        assert str(e.value).endswith(f"the file ends at byte {at:,}); copy or download it again")
    libs = ("tifffile", "tiffslide", "openslide", "PIL")
    assert not [r for r in caplog.records if r.name.split(".")[0] in libs]  # no library noise


@pytest.mark.parametrize("frac", [0.9, 0.5, 0.1])
def test_each_reader_gives_the_same_incomplete_message(tmp_path, small_tiff, frac):
    data = small_tiff.read_bytes()
    p = tmp_path / "cut.tif"
    p.write_bytes(data[: int(len(data) * frac)])
    msgs = set()
    for reader in ("openslide", "tiffslide", "image", None):
        with pytest.raises(SlideError) as e:
            open_slide(p, mpp=0.5, reader=reader)
        msgs.add(str(e.value))
    assert len(msgs) == 1 and "the file is incomplete" in msgs.pop()


def test_cut_jpeg_png_and_empty_files(tmp_path, synthetic):
    rgb = synthetic.rgb[:256, :256]
    for ext, what in ((".jpg", "no JPEG end-of-image marker"), (".png", "no PNG end chunk")):
        whole = tmp_path / f"whole{ext}"
        Image.fromarray(rgb).save(whole)
        cut = tmp_path / f"cut{ext}"
        cut.write_bytes(whole.read_bytes()[:-200])
        with pytest.raises(SlideError, match=rf"cut\{ext}: the file is incomplete \(truncated: "
                                             rf"{what}"):
            open_slide(cut, mpp=0.5)
        assert open_slide(whole, mpp=0.5).dimensions == (256, 256)
    empty = tmp_path / "empty.svs"
    empty.write_bytes(b"")
    with pytest.raises(SlideError, match=r"empty\.svs: the file is empty \(0 bytes\)"):
        open_slide(empty)


def test_a_reader_that_refuses_is_named_in_one_warning(tmp_path, synthetic, caplog):
    from histoexpr.datasets.synthetic import write_pyramidal_tiff

    p = tmp_path / "webp.tif"  # OpenSlide takes tiled TIFFs but not WebP tiles; tiffslide does
    try:
        write_pyramidal_tiff(p, synthetic.rgb[:256, :256], mpp=0.5, downsamples=(1,),
                             compression="webp")
    except Exception as e:  # imagecodecs built without WebP
        pytest.skip(f"cannot write a WebP TIFF here: {e}")
    with caplog.at_level(logging.DEBUG), open_slide(p) as s:
        assert s.reader == "tiffslide"
    warns = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warns) == 1, [r.getMessage() for r in warns]
    msg = warns[0].getMessage()
    assert "opened with the tiffslide reader; openslide refused it" in msg and "50001" in msg


def test_broken_link_and_link_loop(tmp_path):
    link = tmp_path / "slide.svs"
    link.symlink_to(tmp_path / "elsewhere" / "gone.svs")
    with pytest.raises(SlideError, match=r"slide\.svs: a broken symbolic link: its target "
                                         r".*elsewhere/gone\.svs does not exist"):
        open_slide(link)
    a, b = tmp_path / "a.svs", tmp_path / "b.svs"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(SlideError, match=r"a\.svs: a symbolic link that loops"):
        open_slide(a)


def test_tile_folder_skips_an_unreadable_tile_with_one_warning(tmp_path, synthetic, caplog):
    block = synthetic.rgb[600:728, 500:692]
    _write_tiles(tmp_path / "p", block)
    bad = tmp_path / "p" / "SLIDE-1 [x=1064,y=2000,w=64,h=64].png"
    bad.write_bytes(bad.read_bytes()[:100])  # cut short
    with caplog.at_level(logging.WARNING):
        s = open_slide(tmp_path / "p", mpp=0.5)
    assert s.n_tiles == 5 and s.dimensions == (1000 + 192, 2000 + 128)  # extent kept
    (w,) = [r.getMessage() for r in caplog.records]
    assert "skipping 1 of 6 tiles" in w and bad.name in w and "incomplete" in w
    region = s.read_region(1000, 2000, 192, 128)
    assert (region[:64, 64:128] == 255).all()  # the skipped tile reads as background
    np.testing.assert_array_equal(region[:64, :64], block[:64, :64])


def test_tile_that_fails_to_decode_reads_as_background_warned_once(tmp_path, synthetic, caplog):
    block = synthetic.rgb[600:728, 500:692]
    _write_tiles(tmp_path / "p", block)
    bad = tmp_path / "p" / "SLIDE-1 [x=1064,y=2000,w=64,h=64].png"
    raw = bytearray(bad.read_bytes())
    i = raw.index(b"IDAT") + 8
    raw[i : i + 40] = bytes(40)  # complete file, header fine, pixel data garbage
    bad.write_bytes(bytes(raw))
    s = open_slide(tmp_path / "p", mpp=0.5)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            region = s.read_region(1000, 2000, 192, 128)
    assert (region[:64, 64:128] == 255).all()
    assert len(caplog.records) == 1 and bad.name in caplog.records[0].getMessage()
    assert bad.name in s.skipped


def test_tile_folder_with_no_readable_tile_is_refused(tmp_path, synthetic):
    _write_tiles(tmp_path / "p", synthetic.rgb[:128, :128])
    for f in (tmp_path / "p").iterdir():
        f.write_bytes(b"")
    with pytest.raises(SlideError, match=r"p: none of its 4 tiles can be read \(e\.g\. "
                                         r"SLIDE-1 .*: the file is empty"):
        open_slide(tmp_path / "p", mpp=0.5)


# -- thumbnails and whole images through the slide layer --------------------------------------


def _spy_decoded_sizes(monkeypatch) -> list:
    """Record the size of every image PIL resizes (the decoded size, for a thumbnail)."""
    seen = []
    real = Image.Image.resize
    monkeypatch.setattr(Image.Image, "resize",
                        lambda self, *a, **k: seen.append(self.size) or real(self, *a, **k))
    return seen


def test_thumbnail_of_a_jpeg_decodes_at_reduced_scale(tmp_path, monkeypatch):
    from histoexpr.slide import image_dimensions, read_thumbnail

    p = tmp_path / "section.jpg"
    Image.fromarray(np.full((1200, 1600, 3), 180, np.uint8)).save(p)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)  # 19x over: PIL alone refuses it
    seen = _spy_decoded_sizes(monkeypatch)
    thumb = read_thumbnail(p, 240)  # a DecompressionBombWarning would fail the test
    assert thumb.shape == (180, 240, 3) and abs(int(thumb.mean()) - 180) <= 2
    assert seen == [(800, 600)]  # libjpeg DCT scaling: 1/2, not the full 1600 x 1200
    assert image_dimensions(p) == (1600, 1200)
    assert Image.MAX_IMAGE_PIXELS == 100_000  # the guard is put back


def test_thumbnail_of_a_pyramid_and_a_tile_folder(tmp_path, synthetic_tiff, synthetic):
    from histoexpr.slide import image_dimensions, read_thumbnail

    t = read_thumbnail(synthetic_tiff, 256)
    with open_slide(synthetic_tiff) as s:
        ref = s.thumbnail(256)
    assert t.shape == ref.shape == (192, 256, 3)
    assert image_dimensions(synthetic_tiff) == (2048, 1536)
    assert np.abs(t.astype(int) - ref).mean() < 3
    _write_tiles(tmp_path / "p", synthetic.rgb[:128, :128], x0=0, y0=0)
    assert read_thumbnail(tmp_path / "p", 64).shape == (64, 64, 3)
    assert image_dimensions(tmp_path / "p") == (128, 128)
    with pytest.raises(SlideError, match="no such file"):
        read_thumbnail(tmp_path / "nope.jpg")


def test_read_image_modes_and_errors(tmp_path, monkeypatch):
    from histoexpr.slide import read_image

    grey16 = tmp_path / "h.png"
    Image.fromarray(np.full((30, 40), 40000, np.uint16)).save(grey16)
    assert read_image(grey16, mode=None).dtype == np.uint16
    assert read_image(grey16).shape == (30, 40, 3)
    rgba = tmp_path / "a.png"
    Image.fromarray(np.zeros((10, 10, 4), np.uint8)).save(rgba)  # fully transparent
    assert (read_image(rgba) == 255).all() and read_image(rgba, mode="L").shape == (10, 10)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)
    assert read_image(rgba).shape == (10, 10, 3)  # no DecompressionBombWarning
    text = tmp_path / "t.png"
    text.write_text("not an image")
    with pytest.raises(SlideError, match=r"t\.png: cannot decode the image"):
        read_image(text)


def test_a_large_level_is_thumbnailed_in_strips_exactly_and_read_once(monkeypatch):
    """A slide without a pyramid is streamed in strips, with the same pixels as one read;
    a smaller thumbnail after a larger one is shrunk from it, not read again."""
    from histoexpr.slide import ArraySlide, base

    rng = np.random.default_rng(0)
    img = (rng.random((900, 1200, 3)) * 255).astype(np.uint8)
    img[:451] //= 2  # an edge that a seam between strips would blur
    whole = ArraySlide(img, mpp=0.5).thumbnail(170)
    monkeypatch.setattr(base, "THUMBNAIL_STRIP_PIXELS", 1200 * 11)
    s = ArraySlide(img, mpp=0.5)
    heights = []
    real = s.read_region

    def counted(x, y, w, h, level=0):
        heights.append(h)
        return real(x, y, w, h, level)

    monkeypatch.setattr(s, "read_region", counted)
    strips = s.thumbnail(170)
    assert strips.shape == whole.shape == (128, 170, 3)
    assert np.array_equal(strips, whole)
    lw = s.level_dimensions[s.best_level_for_downsample(1200 / 170)][0]
    assert len(heights) > 5 and max(heights) * lw <= 1200 * 11 + 2 * lw  # the strip budget
    n = len(heights)
    assert s.thumbnail(85).shape == (64, 85, 3) and len(heights) == n
