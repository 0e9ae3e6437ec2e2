from __future__ import annotations

import numpy as np
import pytest

from histoexpr import _keys as K
from histoexpr.errors import CoordinateError, InputError, TissueError
from histoexpr.slide import ArraySlide, open_slide
from histoexpr.tiling import (
    SAMPLERS,
    KMeansPatchFilter,
    TileSpec,
    grid_coords,
    heatmap_coords,
    load_coords,
    patch_colour_stats,
    save_coords,
    spot_coords,
    tile_slide,
    white_fraction,
)
from histoexpr.tissue import TissueMask


def test_tile_spec_geometry_and_validation():
    spec = TileSpec(224, 0.5, stride_px=112)
    assert spec.size_um == 112 and spec.size_level0(0.25) == 448
    assert spec.stride_level0(0.25) == 224 and spec.name == "224px_0.5mpp_stride112"
    assert TileSpec.from_um(112, size_px=224) == TileSpec(224, 0.5)
    for bad in [dict(size_px=0, mpp=0.5), dict(size_px=224, mpp=0), dict(size_px=2.5, mpp=1)]:
        with pytest.raises(InputError):
            TileSpec(**bad)


def test_grid_inside_tissue_with_min_fraction():
    m = np.zeros((100, 100), bool)
    m[:50, :50] = True  # top-left quarter of a 1000 x 1000 slide
    tm = TissueMask(m, scale=(10.0, 10.0))
    c = grid_coords(tm, TileSpec(100, 1.0), slide_mpp=1.0, dimensions=(1000, 1000))
    assert c.dtype == np.int64 and len(c) == 25
    assert c[:, 0].max() == 400 and c[:, 1].max() == 400
    # a tile half on tissue passes at 0.5 but not at 0.6
    c2 = grid_coords(tm, TileSpec(100, 1.0, 50), slide_mpp=1.0, dimensions=(1000, 1000))
    c3 = grid_coords(tm, TileSpec(100, 1.0, 50), slide_mpp=1.0, dimensions=(1000, 1000),
                     min_tissue=0.6)
    assert len(c2) == 10 * 10 - 1 and len(c3) == 9 * 9  # the corner tile is 1/4 tissue


def test_grid_tiles_scale_with_slide_mpp():
    tm = TissueMask(np.ones((10, 10), bool), scale=(100.0, 100.0))
    fine = grid_coords(tm, TileSpec(250, 1.0), slide_mpp=0.25, dimensions=(1000, 1000))
    assert len(fine) == 1  # 250 px at 1 µm/px = 1000 level-0 px at 0.25 µm/px


def test_grid_on_synthetic_slide_lands_in_tissue(synthetic_tiff, synthetic):
    with open_slide(synthetic_tiff) as s:
        r = tile_slide(s, TileSpec(128, 0.5))
    assert len(r.coords) > 20
    fracs = [synthetic.tissue[y : y + 128, x : x + 128].mean() for x, y in r.coords]
    assert min(fracs) > 0.4 and np.mean(fracs) > 0.85


def test_several_sizes_give_fewer_larger_tiles(synthetic_tiff):
    with open_slide(synthetic_tiff) as s:
        small = tile_slide(s, TileSpec(128, 0.5))
        big = tile_slide(s, TileSpec(256, 0.5), tissue=small.tissue)
        coarse = tile_slide(s, TileSpec(128, 2.0), tissue=small.tissue)
    assert len(small.coords) > len(big.coords) > 0
    assert len(coarse.coords) == pytest.approx(len(big.coords) / 4, rel=0.6)
    # tissue detection and tile choice are timed apart; a reused mask costs no tissue time
    assert small.tissue_seconds > 0 and small.tiles_seconds > 0
    assert big.tissue_seconds == 0 and big.tiles_seconds > 0


def test_spot_coords_centre_and_bounds():
    spec = TileSpec(224, 0.5)
    c = spot_coords(np.array([[1000.0, 500.0]]), spec, slide_mpp=0.25, dimensions=(2000, 2000))
    assert c.tolist() == [[776, 276]]  # 448 level-0 px square centred on the spot
    with pytest.raises(CoordinateError, match=r"my_spots\.tsv: 1 of 2 .*spot 7x9"):
        spot_coords(np.array([[10.0, 10.0], [5000.0, 10.0]]), spec, slide_mpp=0.25,
                    dimensions=(2000, 2000), source="my_spots.tsv", ids=np.array(["a", "7x9"]))


def test_heatmap_ranking_takes_the_hot_region():
    hm = np.zeros((20, 20))
    hm[2:6, 12:18] = 0.95
    hm[10:12, 2:4] = 0.6
    c, p = heatmap_coords(hm, TileSpec(100, 1.0), slide_mpp=1.0, dimensions=(2000, 2000))
    assert (np.diff(p) <= 0).all() and p[0] == pytest.approx(0.95)
    assert 1200 <= c[0, 0] < 1800 and 200 <= c[0, 1] < 600
    assert set(np.round(p, 2)) == {0.95, 0.6}
    with pytest.raises(InputError, match="probabilities"):
        heatmap_coords(hm * 255, TileSpec(100, 1.0), slide_mpp=1.0, dimensions=(2000, 2000))


def test_heatmap_pipeline_takes_top_n_passing_filters(synthetic_tiff, synthetic):
    from PIL import Image

    hm = np.asarray(Image.fromarray(synthetic.tissue.astype(np.uint8) * 255).reduce(16)) / 255.0
    hm[:, : hm.shape[1] // 2] *= 0.6  # the right half is "more tumour"
    with open_slide(synthetic_tiff) as s:
        r = tile_slide(s, TileSpec(128, 0.5), heatmap=hm, n_tiles=5, filters=("white",),
                       min_prob=0.3)
    assert r.sampler == "heatmap" and len(r.coords) == 5
    assert (np.diff(r.scores) <= 1e-12).all()
    assert (r.coords[:, 0] >= 1024 - 128).all()


def test_white_fraction_and_filter():
    t = np.full((3, 10, 10, 3), 250, np.uint8)
    t[1, :6] = (180, 100, 160)
    t[2] = (180, 100, 160)
    assert white_fraction(t).tolist() == pytest.approx([1.0, 0.4, 0.0])
    with pytest.raises(InputError, match=r"\(N, H, W, 3\)"):
        white_fraction(np.zeros((4, 4)))


def _cluster_tiles(rng, n=30):
    def jitter(col):
        return np.clip(rng.normal(col, 6, (n, 16, 16, 3)), 0, 255).astype(np.uint8)

    return jitter((242, 242, 242)), jitter((190, 105, 175)), jitter((40, 110, 60))


def test_kmeans_filter_keeps_tissue_and_drops_background_and_pen(rng, tmp_path):
    glass, tissue, pen = _cluster_tiles(rng)
    f = KMeansPatchFilter(random_state=0).fit(np.concatenate([glass, tissue, pen]))
    assert f.predict(tissue).all() and not f.predict(glass).any() and not f.predict(pen).any()
    g = KMeansPatchFilter.load(f.save(tmp_path / "km.json"))  # fitted once, reused
    assert not list(tmp_path.glob(".*"))  # written atomically, no temporary file left
    np.testing.assert_array_equal(g.predict(tissue), f.predict(tissue))
    assert g.to_dict() == f.to_dict()


def test_kmeans_filter_on_tissue_only_cohort_keeps_all_tissue(rng):
    light = np.clip(rng.normal((205, 140, 195), 5, (30, 16, 16, 3)), 0, 255).astype(np.uint8)
    mid = np.clip(rng.normal((185, 110, 170), 5, (30, 16, 16, 3)), 0, 255).astype(np.uint8)
    dark = np.clip(rng.normal((150, 80, 150), 5, (30, 16, 16, 3)), 0, 255).astype(np.uint8)
    tiles = np.concatenate([light, mid, dark])
    assert KMeansPatchFilter(random_state=0).fit(tiles).predict(tiles).all()


def test_kmeans_filter_errors(tmp_path):
    with pytest.raises(Exception, match="not fitted"):
        KMeansPatchFilter().predict(np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(InputError, match="at least 3 tiles"):
        KMeansPatchFilter().fit(np.zeros((2, 4, 4, 3), np.uint8))
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(InputError, match=r"bad\.json: not a saved K-means"):
        KMeansPatchFilter.load(bad)
    assert patch_colour_stats(np.zeros((2, 4, 4, 3), np.uint8)).shape == (2, 9)


def test_pipeline_filters_drop_white_and_artefact_tiles(rng):
    """Grid over tissue with a pen stroke: white and K-means filters remove what they should."""
    img = np.full((1024, 1024, 3), 242, np.uint8)
    img[:512, :] = np.clip(rng.normal((190, 105, 175), 6, (512, 1024, 3)), 0, 255)
    img[:512, 768:] = np.clip(rng.normal((40, 110, 60), 6, (512, 256, 3)), 0, 255)  # ink
    img[512:640, :] = np.clip(rng.normal((190, 105, 175), 6, (128, 1024, 3)), 0, 255)
    img[560:640, :] = 242  # a row of tiles 62% white
    s = ArraySlide(img, mpp=0.5)
    r = tile_slide(s, TileSpec(128, 0.5), filters=("white", "kmeans"), min_tissue=0.01)
    xs, ys = r.coords[:, 0], r.coords[:, 1]
    assert not ((xs >= 768) & (ys < 512)).any()  # ink removed by k-means
    assert r.removed == {"white": 8, "kmeans": 8}
    assert (ys < 512).all() and len(r.coords) == 6 * 4


def test_grid_without_tissue_is_an_error_naming_the_slide():
    img = np.full((512, 512, 3), 242, np.uint8)
    img[:200, :200] = (180, 100, 160)
    s = ArraySlide(img, mpp=0.5, path="tiny.tif")
    with pytest.raises(TissueError, match=r"tiny\.tif: no 512px tile"):
        tile_slide(s, TileSpec(512, 0.5))


def test_coords_roundtrip_hdf5_with_attributes(tmp_path, synthetic_tiff):
    with open_slide(synthetic_tiff) as s:
        r = tile_slide(s, TileSpec(128, 0.5))
        attrs = r.attrs(s, checksum="abc")
    p = save_coords(tmp_path / "out" / "synthetic.h5", r.coords, attrs)
    coords, got = load_coords(p)
    np.testing.assert_array_equal(coords, r.coords)
    assert coords.dtype == np.int64 and coords.shape[1] == 2
    assert got[K.ATTR_PATCH_SIZE] == 128 and got[K.ATTR_MPP] == 0.5
    assert got[K.ATTR_PATCH_LEVEL] == 0 and got[K.ATTR_SLIDE_SHA256] == "abc"
    assert got[K.ATTR_SLIDE_PATH].endswith("synthetic.tif")
    assert not list(p.parent.glob(".*tmp"))  # atomic write leaves no temp file


def test_sampler_registry():
    assert set(SAMPLERS.list()) == {"grid", "spots", "heatmap"}


@pytest.mark.data
def test_cmu_tiles_land_inside_tissue(shared_data):
    with open_slide(shared_data / "wsi" / "CMU-1-Small-Region.svs") as s:
        r = tile_slide(s, TileSpec(224, 0.5), filters=("white",))
        assert len(r.coords) > 20
        tiles = s.read_at_mpp_batch(r.coords, 224, 0.5)
    assert (white_fraction(tiles) <= 0.5).all()
    assert np.median(white_fraction(tiles)) < 0.2


@pytest.mark.data
def test_her2st_spot_patches_contain_tissue(shared_data):
    from histoexpr.expression import estimate_mpp_from_spots, read_spots

    spots = read_spots(shared_data / "her2st" / "spots" / "C2_selection.tsv")
    mpp = estimate_mpp_from_spots(spots)
    assert mpp == pytest.approx(0.69, abs=0.02)
    with open_slide(shared_data / "her2st" / "images" / "C2.jpg", mpp=mpp) as s:
        spec = TileSpec.from_um(112, size_px=224)
        coords = spot_coords(spots[["x", "y"]].to_numpy(), spec, slide_mpp=s.mpp,
                             dimensions=s.dimensions)
        tiles = s.read_at_mpp_batch(coords, 224, spec.mpp)
    frac_ok = (white_fraction(tiles) <= 0.5).mean()
    assert frac_ok > 0.95, frac_ok


def test_filters_read_their_tiles_a_chunk_at_a_time_with_the_same_result(monkeypatch):
    from histoexpr.slide import ArraySlide
    from histoexpr.tiling import TileSpec, pipeline, tile_slide

    rng = np.random.default_rng(3)
    img = np.full((512, 768, 3), 240, np.uint8)
    img[64:448, 64:640] = (rng.random((384, 576, 3)) * 120 + 80).astype(np.uint8)
    img[100:200, 100:300] = 255  # a hole of glass
    s = ArraySlide(img, mpp=0.5)
    spec = TileSpec(32, 0.5)
    one = tile_slide(s, spec, filters=("white", "kmeans"))
    monkeypatch.setattr(pipeline, "FILTER_CHUNK", 7)
    sizes = []
    real = pipeline.read_filter_tiles
    monkeypatch.setattr(pipeline, "read_filter_tiles",
                        lambda sl, c, sp, **k: sizes.append(len(c)) or real(sl, c, sp, **k))
    chunked = tile_slide(s, spec, filters=("white", "kmeans"))
    assert max(sizes) == 7 and sum(sizes) == one.n_candidates
    assert np.array_equal(one.coords, chunked.coords) and one.removed == chunked.removed


def test_colour_stats_in_chunks_equal_one_pass(monkeypatch):
    """The statistics pass runs STATS_CHUNK tiles at a time (bounded memory on giant
    slides) and gives what one pass over every tile gives."""
    from histoexpr.tiling import filters

    tiles = np.random.default_rng(3).integers(0, 256, (37, 8, 8, 3), dtype=np.uint8)
    whole = patch_colour_stats(tiles)
    monkeypatch.setattr(filters, "STATS_CHUNK", 5)
    np.testing.assert_array_equal(patch_colour_stats(tiles), whole)
