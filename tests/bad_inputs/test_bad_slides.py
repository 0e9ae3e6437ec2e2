"""Bad slides and images given to `info`, `tile` and `embed`: a file cut short (at any point,
whichever reader meets it), an empty file, a broken or looping link, a file one reader
refuses and another opens, and tile folders with unreadable tiles. Each case checks the exit
status, the one line (naming the file and the fix, no library noise) and what is left on
disk."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from matrix import assert_clear_error, files_under
from PIL import Image

from histoexpr.datasets.synthetic import write_pyramidal_tiff

INCOMPLETE = ["the file is incomplete (truncated: ", "copy or download it again"]
LIBRARIES = ("tifffile", "tiffslide", "openslide", "PIL")


@pytest.fixture(autouse=True)
def _wide_log_lines(monkeypatch):
    """Rich wraps log records at the console width; one record per line makes them countable."""
    monkeypatch.setenv("COLUMNS", "1000")


@pytest.fixture(scope="module")
def pyramid(tmp_path_factory, synthetic):
    """A small tiled pyramidal TIFF (2 levels) with the pixel size in its tags."""
    path = tmp_path_factory.mktemp("pyr") / "pyr.tif"
    return write_pyramidal_tiff(path, synthetic.rgb[:512, :768], mpp=0.5, downsamples=(1, 4),
                                tile=128, compression="jpeg")


def _cut(src, dst, at):
    data = src.read_bytes()
    n = at if isinstance(at, int) else int(len(data) * at)
    dst.write_bytes(data[:n])
    return dst


def _command(cmd, slide, out):
    if cmd == "info":
        return ["info", slide, "--mpp", "0.5"]
    return ["tile", slide, "--out", out, "--slide-mpp", "0.5", "--tile-size", "64"]


def _no_library_noise(caplog, res):
    assert not [r for r in caplog.records if r.name.split(".")[0] in LIBRARIES]
    assert "invalid page offset" not in res.err and "EXIF" not in res.err


# -- files cut short ------------------------------------------------------------------------


@pytest.mark.parametrize("cmd", ["info", "tile"])
@pytest.mark.parametrize("at", [0.9, 0.5, 0.1, 16], ids=["90%", "50%", "10%", "header"])
def test_truncated_pyramidal_tiff(cli, caplog, tmp_path, pyramid, cmd, at):
    slide = _cut(pyramid, tmp_path / "cut.tif", at)
    res = cli(*_command(cmd, slide, tmp_path / "out"))
    assert_clear_error(res, str(slide), *INCOMPLETE)
    _no_library_noise(caplog, res)
    assert files_under(tmp_path / "out") == set()


@pytest.mark.data
@pytest.mark.parametrize("cmd", ["info", "tile"])
@pytest.mark.parametrize("at", [0.99, 0.9, 0.75, 0.5, 0.1, 16],
                         ids=["99%", "90%", "75%", "50%", "10%", "header"])
def test_truncated_aperio_svs(cli, caplog, tmp_path, shared_data, cmd, at):
    """Cut at 75-99 %, OpenSlide refused the file and tiffslide opened it without a word;
    shorter, the error leaked `index 0 out of range(0)` after library log lines."""
    src = shared_data / "wsi" / "CMU-1-Small-Region.svs"
    slide = _cut(src, tmp_path / "CMU-1-Small-Region.svs", at)
    res = cli(*_command(cmd, slide, tmp_path / "out"))
    line = assert_clear_error(res, str(slide), *INCOMPLETE)
    assert "out of range" not in line and "tiffslide" not in line
    _no_library_noise(caplog, res)
    assert files_under(tmp_path / "out") == set()


@pytest.mark.parametrize("cmd", ["info", "tile"])
def test_truncated_jpeg(cli, tmp_path, synthetic, cmd):
    """Decoders fill a cut JPEG with grey and carry on; the check refuses it."""
    whole = tmp_path / "section.jpg"
    Image.fromarray(synthetic.rgb[:512, :512]).save(whole)
    slide = _cut(whole, tmp_path / "cut.jpg", 0.6)
    res = cli(*_command(cmd, slide, tmp_path / "out"))
    assert_clear_error(res, str(slide), *INCOMPLETE, "no JPEG end-of-image marker")
    assert files_under(tmp_path / "out") == set()


@pytest.mark.parametrize("cmd", ["info", "tile"])
def test_corrupt_but_complete_jpeg(cli, tmp_path, synthetic, cmd):
    """Garbage inside the scan: libjpeg-turbo (imagecodecs) returned a 0 x 0 array and the
    command died on a ZeroDivisionError; now PIL's reason is the message."""
    slide = tmp_path / "section.jpg"
    Image.fromarray(synthetic.rgb[:512, :512]).save(slide)
    data = bytearray(slide.read_bytes())
    data[1000:4000] = np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    slide.write_bytes(bytes(data))
    res = cli(*_command(cmd, slide, tmp_path / "out"))
    assert_clear_error(res, str(slide), "cannot decode the image", "re-export or copy it again")
    assert files_under(tmp_path / "out") == set()


@pytest.mark.parametrize("cmd", ["info", "tile"])
def test_empty_slide_file(cli, tmp_path, cmd):
    slide = tmp_path / "empty.svs"
    slide.write_bytes(b"")
    res = cli(*_command(cmd, slide, tmp_path / "out"))
    assert_clear_error(res, str(slide), "the file is empty (0 bytes)", "copy or download")
    assert files_under(tmp_path / "out") == set()


# -- links ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cmd", ["info", "tile"])
def test_symlink_to_a_missing_file(cli, tmp_path, cmd):
    slide = tmp_path / "slide.svs"
    slide.symlink_to(tmp_path / "moved" / "slide.svs")
    res = cli(*_command(cmd, slide, tmp_path / "out"))
    assert_clear_error(res, str(slide), "a broken symbolic link", str(tmp_path / "moved"),
                       "does not exist", "fix the link")
    assert files_under(tmp_path / "out") == set()


def test_symlink_loop(cli, tmp_path):
    a, b = tmp_path / "a.svs", tmp_path / "b.svs"
    a.symlink_to(b)
    b.symlink_to(a)
    assert_clear_error(cli("info", a), str(a), "loops back on itself")


# -- one reader refuses, another opens ------------------------------------------------------


def test_file_openslide_refuses_opens_with_tiffslide_and_one_warning(cli, caplog, tmp_path,
                                                                     synthetic):
    slide = tmp_path / "webp.tif"
    try:
        write_pyramidal_tiff(slide, synthetic.rgb[:256, :256], mpp=0.5, downsamples=(1,),
                             compression="webp")
    except Exception as e:  # imagecodecs built without WebP
        pytest.skip(f"cannot write a WebP TIFF here: {e}")
    res = cli("info", slide, "--json")
    assert res.rc == 0 and '"reader": "tiffslide"' in res.out
    assert len(res.err_lines) == 1 and res.err.count("WARNING") == 1, res.err
    assert str(slide) in res.err and "openslide refused it" in res.err
    _no_library_noise(caplog, res)


# -- tile folders ---------------------------------------------------------------------------


def _tile_folder(folder, synthetic, slide_id="S1"):
    """16 tiles of 128 px cut from a tissue-rich corner of the synthetic slide."""
    rgb = synthetic.rgb[384:896, 640:1152]
    folder.mkdir(parents=True)
    for r in range(0, 512, 128):
        for c in range(0, 512, 128):
            Image.fromarray(rgb[r:r + 128, c:c + 128]).save(
                folder / f"{slide_id} [x={c},y={r},w=128,h=128].png")
    return folder


def test_tile_folder_with_one_corrupt_png_is_tiled_and_embedded_around_it(cli, tmp_path,
                                                                          synthetic):
    """The unreadable tile is named in one warning by each command; `tile` places no tile
    over it (it reads as background) and `embed` embeds the others."""
    pytest.importorskip("torch")
    folder = _tile_folder(tmp_path / "S1", synthetic)
    bad = folder / "S1 [x=256,y=256,w=128,h=128].png"
    bad.write_bytes(bad.read_bytes()[:2000])
    res = cli("tile", folder, "--out", tmp_path / "tiles", "--slide-mpp", "0.5",
              "--tile-size", "64", "-q")
    assert res.rc == 0, res.err
    assert res.err.count("WARNING") == 1 and bad.name in res.err and "skipping 1 of 16" in res.err
    assert files_under(tmp_path / "tiles") >= {"64px_0.5mpp/S1.h5", "run.json"}
    from histoexpr.tiling import load_coords

    coords, _ = load_coords(tmp_path / "tiles" / "64px_0.5mpp" / "S1.h5")
    over = (coords[:, 0] + 64 > 256) & (coords[:, 0] < 384) & (coords[:, 1] + 64 > 256) \
        & (coords[:, 1] < 384)
    assert len(coords) > 20 and not over.any()

    res = cli("embed", folder, "--coords", tmp_path / "tiles" / "64px_0.5mpp", "--encoder",
              "toy", "--slide-mpp", "0.5", "--out", tmp_path / "feats", "-q")
    assert res.rc == 0, res.err
    assert res.err.count("WARNING") == 1 and bad.name in res.err
    from histoexpr.features import load_features

    c2, f, _ = load_features(tmp_path / "feats" / "S1.h5")
    np.testing.assert_array_equal(c2, coords)
    assert np.isfinite(f).all()


@pytest.mark.parametrize("cmd", ["info", "tile"])
def test_tile_folder_with_no_readable_tile(cli, caplog, tmp_path, synthetic, cmd):
    folder = _tile_folder(tmp_path / "S1", synthetic)
    for f in folder.iterdir():
        f.write_bytes(f.read_bytes()[:50])
    res = cli(*_command(cmd, folder, tmp_path / "out"))
    assert_clear_error(res, str(folder), "none of its 16 tiles can be read", "incomplete",
                       "copy the tiles again")
    assert files_under(tmp_path / "out") == set()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
