"""SpatialData in and out (issue 22, item 1): stores this package writes open with
``spatialdata.read_zarr`` with shapes on the image; stores in spatialdata-io's Visium layout
are read back as sections, and ``st fit`` runs on one."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

sd = pytest.importorskip("spatialdata", reason="SpatialData needs `pip install histoexpr[spatial]`")

from histoexpr import _keys as K  # noqa: E402
from histoexpr.cli import main  # noqa: E402
from histoexpr.errors import InputError, SlideError  # noqa: E402
from histoexpr.expression import read_cohort, read_sections  # noqa: E402
from histoexpr.slide import open_slide  # noqa: E402
from histoexpr.st.sdata_out import (  # noqa: E402
    require_spatialdata,
    write_spatialdata,
    write_spots_store,
)

require_spatialdata()  # imports its readers once, without their dependencies' notices


@pytest.fixture(scope="module")
def sections(tmp_path_factory):
    from histoexpr.datasets.synthetic_st import synthetic_st

    out = tmp_path_factory.mktemp("sd_sections")
    s = synthetic_st(out, n_sections=2, n_patients=2, grid=(5, 5), n_genes=8, n_signal=3,
                     seed=4)
    return read_sections(s.specs), s


def _level0(img):
    """Level 0 of an image element: a multiscale one's ``scale0``, or the image itself
    (images under 1,024 px are written as one level)."""
    return img["scale0"]["image"] if hasattr(img, "children") else img


def _ident(element, cs="global"):
    from spatialdata.transformations import get_transformation

    t = get_transformation(element, to_coordinate_system=cs)
    return np.asarray(t.to_affine_matrix(input_axes=("x", "y"), output_axes=("x", "y")))


def test_spot_store_opens_with_read_zarr_and_lines_up(sections, tmp_path):
    adata, _ = sections
    one = adata[adata.obs[K.SLIDE_ID] == adata.obs[K.SLIDE_ID].iloc[0]].copy()
    sec = str(one.obs[K.SLIDE_ID].iloc[0])
    one.layers["measured"] = np.asarray(one.X.toarray()) * 2
    path = write_spots_store(tmp_path / "s.zarr", one, uns={"model": "ridge"})
    got = sd.read_zarr(path)
    img = got.images[f"{sec}_he"]
    level0 = _level0(img)
    info = one.uns["sections"][sec]
    with open_slide(info["image_path"], mpp=info["mpp"]) as s:
        w, h = s.dimensions
        want = s.read_region(0, 0, w, h)
    assert level0.shape == (3, h, w)
    np.testing.assert_array_equal(np.moveaxis(level0.values, 0, -1), want)  # the pixels
    circles = got.shapes[f"{sec}_spots"]
    table = got.tables["table"]
    assert len(circles) == one.n_obs == table.n_obs
    # legacy ST: 100 µm spots at the section's µm/px
    np.testing.assert_allclose(circles["radius"], 50.0 / info["mpp"])
    xy = np.c_[circles.geometry.x, circles.geometry.y]
    np.testing.assert_allclose(xy, one.obs[[K.X, K.Y]].to_numpy(float))
    np.testing.assert_allclose(table.obsm["spatial"], xy)
    assert (xy >= 0).all() and (xy[:, 0] < w).all() and (xy[:, 1] < h).all()
    np.testing.assert_allclose(_ident(circles), np.eye(3))
    np.testing.assert_allclose(_ident(img), np.eye(3))
    attrs = table.uns["spatialdata_attrs"]
    assert attrs["region"] == f"{sec}_spots" and attrs["instance_key"] == "instance_id"
    np.testing.assert_array_equal(table.obs["instance_id"], circles.index)
    np.testing.assert_allclose(table.layers["measured"], one.layers["measured"])
    np.testing.assert_allclose(table.X, one.X.toarray())
    assert table.uns["histoexpr"]["model"] == "ridge"


def test_multiscale_image_and_coarser_level(synthetic_tiff, tmp_path):
    import anndata as ad
    from spatialdata.transformations import get_transformation

    with open_slide(synthetic_tiff) as s:
        w, h, mpp = *s.dimensions, s.mpp
        ds2 = s.level_downsamples[1]
    xy = np.array([[100.0, 120.0], [300.0, 310.0]])
    t = ad.AnnData(X=np.ones((2, 3), np.float32),
                   obs=pd.DataFrame({K.X: xy[:, 0], K.Y: xy[:, 1],
                                     K.SLIDE_ID: ["slide", "slide"]}, index=["a", "b"]))
    p = write_spatialdata(tmp_path / "t.zarr", t, images={"slide": (synthetic_tiff, None)},
                          shape="square", size_px={"slide": 64.0})
    got = sd.read_zarr(p)
    tree = got.images["slide_he"]
    shapes = [tree[k]["image"].shape for k in sorted(tree.keys())]
    assert shapes[0] == (3, h, w) and len(shapes) >= 2  # halved until under 512 px
    assert shapes[1][1] == h // 2
    sq = got.shapes["slide_tiles"].geometry
    np.testing.assert_allclose(sq.bounds.maxx - sq.bounds.minx, 64.0)
    np.testing.assert_allclose(np.c_[sq.centroid.x, sq.centroid.y], xy)
    # a coarser pyramid level of the slide, placed by a scale transformation
    p2 = write_spatialdata(tmp_path / "c.zarr", t, images={"slide": (synthetic_tiff, None)},
                           shape="square", size_px={"slide": 64.0}, image_mpp=mpp * ds2)
    img = sd.read_zarr(p2).images["slide_he"]
    assert _level0(img).shape[1] == round(h / ds2)
    m = get_transformation(img, to_coordinate_system="global").to_affine_matrix(
        input_axes=("x", "y"), output_axes=("x", "y"))
    np.testing.assert_allclose(np.diag(m)[:2], [ds2, ds2], rtol=1e-6)


def test_store_reads_back_as_sections(sections, tmp_path):
    adata, _ = sections
    path = write_spots_store(tmp_path / "two.zarr", adata)  # two sections, two systems
    got = sd.read_zarr(path)
    assert set(got.coordinate_systems) == set(adata.obs[K.SLIDE_ID].astype(str))
    # the table holds predictions here; read back as "counts" it must give the same numbers
    back = read_cohort([str(path)])
    assert back.n_obs == adata.n_obs
    for sec in adata.obs[K.SLIDE_ID].astype(str).unique():
        a = adata[adata.obs[K.SLIDE_ID] == sec]
        b = back[back.obs[K.SLIDE_ID] == sec]  # the section's own name, kept in the store
        np.testing.assert_allclose(b.obs[[K.X, K.Y]].to_numpy(), a.obs[[K.X, K.Y]].to_numpy(),
                                   atol=1e-6)
        np.testing.assert_allclose(b.X.toarray(), a.X.toarray())
        info = back.uns["sections"][sec]
        # NGFF keeps no µm/px: this package writes it beside the table, and reads it back
        assert info["mpp"] == pytest.approx(adata.uns["sections"][sec]["mpp"])
        assert info["mpp_source"] == "histoexpr's table metadata"
        assert info["image_path"].endswith(f"images/{sec}_he")


def _write(sdata, path):
    """Write a hand-made store as a user would, anndata's sharding default said out loud."""
    from histoexpr.st.sdata_out import _no_autoshard

    with _no_autoshard():
        sdata.write(path)


def one_names(n: int) -> list[str]:
    return [f"spot{i}" for i in range(n)]


def _visium_like(tmp_path, adata, *, hires_only: bool):
    """A store in spatialdata-io's Visium layout: circles in full-resolution pixels
    ("global"), a hires image (scale 0.25) in "downscaled_hires", a full image in "global"
    unless ``hires_only``; the table annotates the circles."""
    import anndata as ad
    from spatialdata.models import Image2DModel, ShapesModel, TableModel
    from spatialdata.transformations import Identity, Scale

    sec = str(adata.obs[K.SLIDE_ID].iloc[0])
    info = adata.uns["sections"][sec]
    with open_slide(info["image_path"], mpp=info["mpp"]) as s:
        full = s.read_region(0, 0, *s.dimensions)
    xy = adata.obs[[K.X, K.Y]].to_numpy(float)
    d_full = 55.0 / info["mpp"]  # pretend the spots are Visium's 55 µm
    sf = 0.25
    shapes = ShapesModel.parse(xy, geometry=0, radius=np.full(len(xy), d_full / 2),
                               index=pd.RangeIndex(len(xy)),
                               transformations={"global": Identity(),
                                                "downscaled_hires": Scale([sf, sf],
                                                                          axes=("y", "x"))})
    from PIL import Image

    hires = np.asarray(Image.fromarray(full).reduce(4))
    images = {"V1_hires_image": Image2DModel.parse(
        np.moveaxis(hires, -1, 0), dims=("c", "y", "x"),
        transformations={"downscaled_hires": Identity()})}
    if not hires_only:
        images["V1_full_image"] = Image2DModel.parse(
            np.moveaxis(full, -1, 0), dims=("c", "y", "x"), scale_factors=[2],
            transformations={"global": Identity()})
    t = ad.AnnData(X=adata.layers["counts"].copy(), var=adata.var[[]].copy(),
                   obs=pd.DataFrame({"region": pd.Categorical(["V1"] * len(xy)),
                                     "spot_id": np.arange(len(xy)),
                                     "array_row": adata.obs[K.ARRAY_ROW].to_numpy(),
                                     "array_col": adata.obs[K.ARRAY_COL].to_numpy(),
                                     "in_tissue": 1}, index=one_names(len(xy))))
    table = TableModel.parse(t, region="V1", region_key="region", instance_key="spot_id")
    path = tmp_path / ("hires.zarr" if hires_only else "visium.zarr")
    _write(sd.SpatialData(images=images, shapes={"V1": shapes}, tables={"table": table}), path)
    return path, xy, info["mpp"]


def test_visium_layout_store_is_read_with_its_transformations(sections, tmp_path):
    adata, _ = sections
    one = adata[adata.obs[K.SLIDE_ID] == adata.obs[K.SLIDE_ID].iloc[0]].copy()
    path, xy, mpp = _visium_like(tmp_path, one, hires_only=False)
    got = read_cohort([f"{path}?patient=P9"])
    info = got.uns["sections"]["V1"]
    assert info["image_path"].endswith("images/V1_full_image")  # the finest image
    assert info["mpp"] == pytest.approx(mpp)  # from Visium's 55 µm and the circles
    assert info["coordinate_system"] == "global"
    np.testing.assert_allclose(got.obs[[K.X, K.Y]].to_numpy(), xy, atol=1e-6)
    assert (got.obs[K.PATIENT_ID] == "P9").all()
    np.testing.assert_array_equal(got.obs[K.ARRAY_ROW], one.obs[K.ARRAY_ROW])
    np.testing.assert_allclose(got.layers["counts"].toarray(), one.layers["counts"].toarray())
    with open_slide(info["image_path"], mpp=info["mpp"]) as s:  # the NGFF reader
        assert s.reader == "ngff" and s.level_count == 2
        x0, y0 = (xy[0] - 8).astype(int)
        with open_slide(one.uns["sections"][one.obs[K.SLIDE_ID].iloc[0]]["image_path"],
                        mpp=mpp) as src:
            np.testing.assert_array_equal(s.read_region(x0, y0, 16, 16),
                                          src.read_region(x0, y0, 16, 16))
    # without the full-resolution image: the hires one, spots scaled into its pixels
    path2, _, _ = _visium_like(tmp_path, one, hires_only=True)
    got2 = read_cohort([str(path2)])
    info2 = got2.uns["sections"]["V1"]
    assert info2["coordinate_system"] == "downscaled_hires"
    assert info2["mpp"] == pytest.approx(mpp * 4)
    np.testing.assert_allclose(got2.obs[[K.X, K.Y]].to_numpy(), xy * 0.25, atol=1e-6)


def test_st_fit_on_a_store_writes_heldout_store(sections, tmp_path):
    adata, _ = sections
    path = write_spots_store(tmp_path / "in.zarr", adata)
    run = tmp_path / "run"
    rc = main(["-q", "st", "fit", "--data", f"{path}?mpp=2.0", "--encoder", "toy",
               "--genes", "top5", "--patch-px", "32", "--patch-um", "64", "--folds", "2",
               "--split", "section", "--context", "0", "--scales", "none", "--baselines",
               "none", "--model", "ridge", "--no-maps", "--spatialdata", "--out", str(run)])
    assert rc == 0
    store = sd.read_zarr(run / "predictions.zarr")
    table = store.tables["table"]
    assert "measured" in table.layers and table.n_obs > 0
    assert len(store.images) == 2 and len(store.shapes) == 2
    for name, shapes in store.shapes.items():
        rows = table.obs["region"] == name
        assert rows.sum() == len(shapes)


def test_bad_stores_get_one_clear_error(tmp_path):
    import anndata as ad
    from spatialdata.models import ShapesModel, TableModel
    from spatialdata.transformations import Identity

    xy = np.array([[10.0, 10.0], [20.0, 20.0]])
    shapes = ShapesModel.parse(xy, geometry=0, radius=np.ones(2), index=pd.RangeIndex(2),
                               transformations={"global": Identity()})
    t = ad.AnnData(X=np.ones((2, 2), np.float32),
                   obs=pd.DataFrame({"region": pd.Categorical(["spots"] * 2),
                                     "iid": [0, 1]}, index=["a", "b"]))
    table = TableModel.parse(t, region="spots", region_key="region", instance_key="iid")
    no_image = tmp_path / "noimg.zarr"
    _write(sd.SpatialData(shapes={"spots": shapes}, tables={"table": table}), no_image)
    with pytest.raises(InputError, match="lacks the H&E"):
        read_cohort([str(no_image)])
    with pytest.raises(InputError, match="no table 'expr'; the store has table"):
        read_cohort([f"{no_image}?table=expr"])
    with pytest.raises(InputError, match="not in coordinate system 'aligned'"):
        read_cohort([f"{no_image}?coordinate_system=aligned"])
    with pytest.raises(InputError, match="unknown option 'organ'"):
        read_cohort([f"{no_image}?organ=breast"])
    # an image without a pixel size and spots of unknown physical size
    from spatialdata.models import Image2DModel

    img = Image2DModel.parse(np.full((3, 64, 64), 200, np.uint8), dims=("c", "y", "x"),
                             transformations={"global": Identity()})
    no_mpp = tmp_path / "nompp.zarr"
    _write(sd.SpatialData(images={"he": img}, shapes={"spots": shapes},
                   tables={"table": table}), no_mpp)
    with pytest.raises(InputError, match=r"pixel size of image 'he' is unknown.*\?mpp="):
        read_cohort([str(no_mpp)])
    assert read_cohort([f"{no_mpp}?mpp=0.5"]).uns["sections"]["spots"]["mpp"] == 0.5
    # a finer fluorescence image (Xenium's morphology) is passed over for the H&E; alone,
    # it is named in the error
    dapi = Image2DModel.parse(np.zeros((2, 128, 128), np.uint16), dims=("c", "y", "x"),
                              transformations={"global": Identity()})
    both = tmp_path / "both.zarr"
    _write(sd.SpatialData(images={"he": img, "morphology": dapi}, shapes={"spots": shapes},
                          tables={"table": table}), both)
    got = read_cohort([f"{both}?mpp=0.5"]).uns["sections"]["spots"]
    assert got["image_path"].endswith("images/he")
    only = tmp_path / "only.zarr"
    _write(sd.SpatialData(images={"morphology": dapi}, shapes={"spots": shapes},
                          tables={"table": table}), only)
    with pytest.raises(InputError, match=r"only morphology \(2-channel uint16\)"):
        read_cohort([f"{only}?mpp=0.5"])
    # the writer without the package's sections: a clear error, not a KeyError
    bare = ad.AnnData(X=np.ones((2, 2), np.float32), obs=pd.DataFrame(index=["a", "b"]))
    with pytest.raises(InputError, match="lack obs"):
        write_spatialdata(tmp_path / "b.zarr", bare, images={}, shape="circle", size_px={})


def test_ngff_reader_refuses_non_rgb_images(tmp_path):
    from spatialdata.models import Image2DModel

    img = Image2DModel.parse(np.zeros((2, 64, 64), np.uint16), dims=("c", "y", "x"))
    p = tmp_path / "fl.zarr"
    _write(sd.SpatialData(images={"dapi": img}), p)
    with pytest.raises(SlideError, match="2-channel uint16 image; an H&E slide is 8-bit RGB"):
        open_slide(p / "images" / "dapi", mpp=0.5)


def test_predict_commands_write_stores(tiny_st_run, synthetic_tiff, tmp_path):
    run, s = tiny_st_run
    spec = s.specs[0]
    assert main(["-q", "st", "predict", str(run.path), "--image", spec["image"], "--spots",
                 spec["spots"], "--out", str(tmp_path / "p"), "--spatialdata"]) == 0
    sec = json.loads(next((tmp_path / "p").glob("*_predict.json")).read_text())["spatialdata"]
    got = sd.read_zarr(tmp_path / "p" / sec)
    assert next(iter(got.tables.values())).n_obs == 25
    assert main(["-q", "predict-slide", str(synthetic_tiff), "--model", str(run.path),
                 "--n-maps", "1", "--map-mpp", "0", "--spatialdata", "--out",
                 str(tmp_path / "s")]) == 0
    got = sd.read_zarr(tmp_path / "s" / "synthetic.zarr")
    tiles = got.shapes["synthetic_tiles"].geometry.bounds
    h, w = _level0(got.images["synthetic_he"]).shape[1:]
    assert (tiles.minx >= 0).all() and (tiles.maxx <= w).all() and (tiles.maxy <= h).all()
    assert got.tables["table"].n_obs == len(tiles)


@pytest.mark.data
@pytest.mark.slow
def test_real_sections_round_trip_through_a_store(shared_data, tmp_path):
    """her2st C2 (a 9,274 x 9,911 px JPEG) as a store: spots back where they were, counts
    unchanged, the image pixels the section's; the Visium mouse embryo (Space Ranger, no
    H&E) as spots and table only."""
    from histoexpr.expression import read_legacy_st, read_visium

    c2 = read_legacy_st(shared_data / "her2st/counts/C2.tsv.gz",
                        shared_data / "her2st/spots/C2_selection.tsv",
                        image=shared_data / "her2st/images/C2.jpg", patient="C")
    vis = read_visium(shared_data / "visium_mouse_embryo", section="embryo")
    # Visium here has only a 600 px low-res picture, no H&E: spots and table, no image
    got = sd.read_zarr(write_spots_store(tmp_path / "embryo.zarr", vis))
    circles = got.shapes["embryo_spots"]
    assert not got.images and len(circles) == vis.n_obs
    np.testing.assert_allclose(circles["radius"], 27.5 / vis.uns["sections"]["embryo"]["mpp"])
    np.testing.assert_allclose(np.c_[circles.geometry.x, circles.geometry.y],
                               vis.obs[[K.X, K.Y]].to_numpy(float))
    with pytest.raises(InputError, match="lacks the H&E"):
        read_cohort([str(tmp_path / "embryo.zarr")])
    for a in (c2,):
        sec = str(a.obs[K.SLIDE_ID].iloc[0])
        path = write_spots_store(tmp_path / f"{sec}.zarr", a)
        back = read_cohort([str(path)])
        np.testing.assert_allclose(back.obs[[K.X, K.Y]].to_numpy(),
                                   a.obs[[K.X, K.Y]].to_numpy(), atol=1e-6)
        assert (back.X != a.X).nnz == 0
        info, src = back.uns["sections"][sec], a.uns["sections"][sec]
        assert info["mpp"] == pytest.approx(src["mpp"])
        x, y = a.obs[[K.X, K.Y]].to_numpy(int)[0]
        with open_slide(info["image_path"], mpp=info["mpp"]) as s, \
                open_slide(src["image_path"], mpp=src["mpp"]) as t:
            np.testing.assert_array_equal(s.read_region(x - 8, y - 8, 16, 16),
                                          t.read_region(x - 8, y - 8, 16, 16))


def _as_10x_h5(mtx_folder, dest):
    """A 10x matrix folder (MatrixMarket) as the 10x HDF5 file spatialdata-io reads."""
    import h5py
    import scipy.io
    import scipy.sparse as sps

    m = sps.csc_matrix(scipy.io.mmread(str(mtx_folder / "matrix.mtx.gz")))  # genes x spots
    barcodes = pd.read_csv(mtx_folder / "barcodes.tsv.gz", header=None)[0].astype(str)
    feats = pd.read_csv(mtx_folder / "features.tsv.gz", header=None, sep="\t")
    with h5py.File(dest, "w") as f:
        g = f.create_group("matrix")
        g["barcodes"] = barcodes.to_numpy().astype("S")
        g["data"], g["indices"], g["indptr"] = m.data.astype(np.int32), m.indices, m.indptr
        g["shape"] = np.array(m.shape, np.int32)
        fg = g.create_group("features")
        fg["id"], fg["name"] = feats[0].to_numpy().astype("S"), feats[1].to_numpy().astype("S")
        fg["feature_type"] = feats[2].to_numpy().astype("S")
        fg["genome"] = np.array([b"mm10"] * len(feats))
        fg["_all_tag_keys"] = np.array([b"genome"])


@pytest.mark.data
def test_a_store_spatialdata_io_made_from_real_visium(shared_data, tmp_path):
    """spatialdata-io's own reader on the real Visium embryo (its counts as the 10x .h5 it
    wants): st fit's reader finds the table, the circles and the low-res image they share a
    coordinate system with, and places the spots as our Space Ranger reader does."""
    sio = pytest.importorskip("spatialdata_io")
    from histoexpr.expression import read_visium

    src = shared_data / "visium_mouse_embryo"
    folder = tmp_path / "outs"
    folder.mkdir()
    (folder / "spatial").symlink_to(src / "spatial")
    _as_10x_h5(src / "filtered_feature_bc_matrix", folder / "filtered_feature_bc_matrix.h5")
    store = tmp_path / "embryo.zarr"
    import warnings

    with warnings.catch_warnings():  # scanpy's notice on duplicate names it then fixes
        warnings.simplefilter("ignore", UserWarning)
        made = sio.visium(folder, dataset_id="embryo")
    _write(made, store)
    ours = read_visium(src, section="embryo")
    got = read_cohort([str(store)])
    info, mine = got.uns["sections"]["embryo"], ours.uns["sections"]["embryo"]
    scale = json.loads((src / "spatial" / "scalefactors_json.json").read_text())[
        "tissue_lowres_scalef"]
    assert info["image_path"].endswith("images/embryo_lowres_image")  # its only image
    assert info["mpp"] == pytest.approx(mine["mpp"] / scale, rel=1e-6)
    assert got.n_obs == ours.n_obs
    # spatialdata-io's spots are numbered; join on the barcodes its table keeps as obs names
    table = sd.read_zarr(store).tables["table"]
    barcode = dict(zip(table.obs["spot_id"].astype(str), table.obs_names.astype(str)))
    mine_xy = ours.obs.set_index(ours.obs["spot_id"].astype(str))[[K.X, K.Y]]
    theirs_xy = got.obs[[K.X, K.Y]].set_axis(
        [barcode[s] for s in got.obs["spot_id"].astype(str)])
    np.testing.assert_allclose(theirs_xy.to_numpy(), mine_xy.loc[theirs_xy.index].to_numpy()
                               * scale, rtol=1e-6, atol=1e-6)
    a = got[:, ours.var_names[:50]].X.toarray()
    b = ours[[f"embryo:{barcode[s]}" for s in got.obs["spot_id"].astype(str)],
             ours.var_names[:50]].X.toarray()
    np.testing.assert_array_equal(a, b)
