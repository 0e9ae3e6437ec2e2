"""A damaged JPEG tile inside a slide (a read error mid-slide, issue 21): ``embed`` leaves
the tiles it cannot read out with a warning and lists them, the other tiles' features are
those of the intact file, and a slide damaged beyond :data:`MAX_UNREADABLE` fails alone
with an error that names it."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("tifffile")

import tifffile

from histoexpr.datasets.synthetic import synthetic_he, write_pyramidal_tiff
from histoexpr.features import build_encoder, embed, load_features
from histoexpr.features.store import read_feature_attrs
from histoexpr.slide import open_slide, slide_checksum
from histoexpr.tiling import TileSpec, save_coords, tile_slide

TILE = 256  # the TIFF's tile size: a damaged TIFF tile spoils exactly one of our tiles


def _damage(src, dst, tiles):
    """Copy ``src`` to ``dst`` with the JPEG header of these level-0 TIFF tiles zeroed."""
    with tifffile.TiffFile(src) as tf:
        page = tf.pages[0]
        assert page.tilewidth == TILE
        spans = [(page.dataoffsets[k], page.databytecounts[k]) for k in tiles]
    data = bytearray(src.read_bytes())
    for off, _ in spans:
        data[off:off + 64] = bytes(64)
    dst.write_bytes(bytes(data))
    return dst


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    root = tmp_path_factory.mktemp("damaged")
    he = synthetic_he(2048, 2048, mpp=0.5, seed=5)
    good = write_pyramidal_tiff(root / "good.tif", he.rgb, mpp=0.5, compression="jpeg",
                                downsamples=(1, 2, 8))  # the thumbnail reads level 1
    one = _damage(good, root / "one.tif", [9])  # row 1, column 1 of the 8 x 8 tile grid
    many = _damage(good, root / "many.tif", list(range(0, 64, 5)))
    yy, xx = np.mgrid[0:2048:TILE, 0:2048:TILE]
    grid = np.c_[xx.ravel(), yy.ravel()]
    for path in (good, one, many):
        with open_slide(path) as s:
            res = tile_slide(s, TileSpec(TILE, 0.5))
            save_coords(root / "coords" / f"{path.stem}.h5", grid,
                        res.attrs(s, checksum=slide_checksum(s)))
    return root, grid


def test_a_damaged_tile_raises_by_default_naming_where(slides):
    root, grid = slides
    from histoexpr.errors import SlideError

    where = r"one\.tif: reading \(256, 256\)"
    with open_slide(root / "one.tif") as s, pytest.raises(SlideError, match=where):
        embed(s, grid, build_encoder("toy"), size_px=TILE, mpp=0.5)


def test_embed_leaves_unreadable_tiles_out_and_fails_a_ruined_slide(slides, tmp_path):
    from histoexpr.cli import main

    root, grid = slides
    rc = main(["-q", "embed", *(str(root / f"{n}.tif") for n in ("good", "one", "many")),
               "--coords", str(root / "coords"), "--encoder", "toy", "--out",
               str(tmp_path / "f")])
    assert rc == 2  # one slide of three failed
    assert not (tmp_path / "f" / "many.h5").exists()
    c_good, f_good, _ = load_features(tmp_path / "f" / "good.h5")
    c_one, f_one, _ = load_features(tmp_path / "f" / "one.h5")
    lost = read_feature_attrs(tmp_path / "f" / "one.h5")["unreadable_tiles"]
    assert lost == [[TILE, TILE]] and len(c_one) == len(grid) - 1
    keep = ~((c_good[:, 0] == TILE) & (c_good[:, 1] == TILE))
    np.testing.assert_array_equal(c_one, c_good[keep])
    np.testing.assert_allclose(f_one, f_good[keep], rtol=1e-5, atol=1e-6)
    record = json.loads((tmp_path / "f" / "run.json").read_text())
    assert [i["status"] for i in record["items"]] == ["done", "done", "failed"]
    assert record["items"][1]["n_tiles"] == len(grid) - 1
    assert "13 of 64 tiles could not be read" in record["items"][2]["message"]
