"""Spatial-transcriptomics readers: legacy ST (her2st layout), Visium Space Ranger outputs,
h5ad (HEST and our own layout), and cohorts of sections. Synthetic files written to tmp_path;
``data``-marked tests read the real her2st and Visium sections in ../shared/data."""

from __future__ import annotations

import gzip
import json
import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from PIL import Image

from histoexpr import _keys as K
from histoexpr.errors import CoordinateError, InputError, UnknownNameError
from histoexpr.expression import (
    SPATIAL_READERS,
    concat_sections,
    read_h5ad,
    read_her2st,
    read_legacy_st,
    read_sections,
    read_visium,
)

STEP_PX = 29.0  # one 200 µm array step -> 200 / 29 µm/px
GENES = ["ERBB2", "GAPDH", "ACTB", "ERBB2", "KRT19"]  # a duplicate symbol on purpose


# ----------------------------------------------------------------------------- legacy ST files


def _grid():
    """Selection table: a 4 x 3 array, all selected but one, plus one spot off the tissue."""
    rows = []
    for x in range(2, 6):
        for y in range(2, 5):
            rows.append((x, y, 10 + x * STEP_PX, 12 + y * STEP_PX, 1))
    rows.append((9, 9, 10 + 9 * STEP_PX, 12 + 9 * STEP_PX, 0))
    df = pd.DataFrame(rows, columns=["x", "y", "pixel_x", "pixel_y", "selected"])
    df.insert(2, "new_x", df["x"] + 0.01)
    df.insert(3, "new_y", df["y"] - 0.01)
    return df


def _counts(ids, genes=GENES, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.poisson(5, (len(ids), len(genes))), index=ids, columns=genes)


def _write_counts(path, df):
    with gzip.open(path, "wt") as f:
        df.to_csv(f, sep="\t")  # header starts with an empty field, like her2st
    return path


def _legacy(tmp_path, *, name="S1", counts=None, image_size=(300, 300), seed=0):
    sel = _grid()
    sel_path = tmp_path / f"{name}_selection.tsv"
    sel.to_csv(sel_path, sep="\t", index=False)
    if counts is None:
        ids = [f"{x}x{y}" for x, y, s in zip(sel.x, sel.y, sel.selected) if s]
        counts = _counts(ids, seed=seed)
    c_path = _write_counts(tmp_path / f"{name}.tsv.gz", counts)
    img = tmp_path / f"{name}.jpg"
    Image.new("RGB", image_size, (230, 200, 220)).save(img, quality=80)
    return c_path, sel_path, img, counts


def test_legacy_st_round_trip(tmp_path, caplog):
    c_path, sel_path, img, counts = _legacy(tmp_path)
    with caplog.at_level(logging.INFO, logger="histoexpr"):
        a = read_legacy_st(c_path, sel_path, img, patient="P")
    assert a.shape == (12, 5)
    assert isinstance(a.X, sp.csr_matrix) and a.X.dtype == np.float32
    np.testing.assert_array_equal(a.X.toarray(), counts.to_numpy())
    np.testing.assert_array_equal(a.layers[K.LAYER_COUNTS].toarray(), counts.to_numpy())
    assert a.layers[K.LAYER_COUNTS] is not a.X
    assert list(a.var_names) == ["ERBB2", "GAPDH", "ACTB", "ERBB2-1", "KRT19"]
    assert "duplicate gene name" in caplog.text
    o = a.obs
    assert list(a.obs_names[:2]) == ["S1:2x2", "S1:2x3"] and o[K.SPOT_ID].iloc[0] == "2x2"
    assert set(o[K.SLIDE_ID]) == {"S1"} and set(o[K.PATIENT_ID]) == {"P"}
    np.testing.assert_array_equal(o[K.ARRAY_COL], [2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5])
    np.testing.assert_array_equal(o[K.ARRAY_ROW], [2, 3, 4] * 4)
    np.testing.assert_allclose(o[K.X], 10 + o[K.ARRAY_COL] * STEP_PX)
    np.testing.assert_allclose(o[K.Y], 12 + o[K.ARRAY_ROW] * STEP_PX)
    np.testing.assert_allclose(o[K.TOTAL_COUNTS], counts.sum(axis=1))
    assert o[K.IN_TISSUE].all()
    info = a.uns[K.UNS_SECTIONS]["S1"]
    assert info["platform"] == "legacy_st" and info["image_path"] == str(img)
    assert info["mpp"] == pytest.approx(200 / STEP_PX, rel=1e-3)
    assert info["image_size"] == [300, 300] and info["n_spots"] == 12


def test_legacy_st_mpp_given_and_no_image(tmp_path):
    c_path, sel_path, _, _ = _legacy(tmp_path)
    a = read_legacy_st(c_path, sel_path, section="other", mpp=0.5)
    info = a.uns[K.UNS_SECTIONS]["other"]
    assert info["mpp"] == 0.5 and info["mpp_source"] == "given" and info["image_path"] is None
    assert set(a.obs[K.PATIENT_ID]) == {"other"}  # patient defaults to the section


def test_legacy_st_partial_join_is_logged(tmp_path, caplog):
    ids = [f"{x}x{y}" for x in range(2, 6) for y in range(2, 5)]
    counts = _counts([*ids[:10], "9x9", "30x30"])  # 2 selected spots lack counts, 2 extra rows
    c_path, sel_path, img, _ = _legacy(tmp_path, counts=counts)
    with caplog.at_level(logging.INFO, logger="histoexpr"):
        a = read_legacy_st(c_path, sel_path, img)
    assert a.n_obs == 10
    assert "10 of 12 selected spots" in caplog.text
    assert "2 counts row(s) without a selected spot" in caplog.text


def test_legacy_st_no_join_names_both_files(tmp_path):
    counts = _counts([f"{x}x{y}" for x in range(50, 55) for y in range(3)])
    c_path, sel_path, img, _ = _legacy(tmp_path, counts=counts)
    with pytest.raises(InputError, match="0 of 12 selected spots") as e:
        read_legacy_st(c_path, sel_path, img)
    msg = str(e.value)
    assert str(c_path) in msg and str(sel_path) in msg and "'50x0'" in msg and "'2x2'" in msg


def test_legacy_st_mostly_unmatched_is_an_error(tmp_path):
    ids = [f"{x}x{y}" for x in range(2, 6) for y in range(2, 5)]
    c_path, sel_path, img, _ = _legacy(tmp_path, counts=_counts(ids[:5]))
    with pytest.raises(InputError, match="5 of 12"):
        read_legacy_st(c_path, sel_path, img)


def test_legacy_st_transposed_counts(tmp_path):
    ids = [f"{x}x{y}" for x in range(2, 6) for y in range(2, 5)]
    c_path, sel_path, img, _ = _legacy(tmp_path, counts=_counts(ids).T)
    with pytest.raises(InputError, match="genes x spots"):
        read_legacy_st(c_path, sel_path, img)


@pytest.mark.parametrize(("bad", "what"), [(np.nan, "1 NaN"), (-3, "1 negative")])
def test_legacy_st_bad_counts(tmp_path, bad, what):
    ids = [f"{x}x{y}" for x in range(2, 6) for y in range(2, 5)]
    counts = _counts(ids).astype(float)
    counts.iloc[3, 2] = bad
    c_path, sel_path, img, _ = _legacy(tmp_path, counts=counts)
    with pytest.raises(InputError, match=what) as e:
        read_legacy_st(c_path, sel_path, img)
    assert str(c_path) in str(e.value)


def test_legacy_st_text_in_counts(tmp_path):
    ids = [f"{x}x{y}" for x in range(2, 6) for y in range(2, 5)]
    counts = _counts(ids).astype(object)
    counts.iloc[0, 0] = "abc"
    c_path, sel_path, img, _ = _legacy(tmp_path, counts=counts)
    with pytest.raises(InputError, match="not a number"):
        read_legacy_st(c_path, sel_path, img)


def test_legacy_st_image_too_small(tmp_path):
    c_path, sel_path, img, _ = _legacy(tmp_path, image_size=(120, 300))
    with pytest.raises(CoordinateError, match=r"120 x 300 px but 6 of 12"):
        read_legacy_st(c_path, sel_path, img)


def test_legacy_st_missing_file(tmp_path):
    _, sel_path, _, _ = _legacy(tmp_path)
    with pytest.raises(InputError, match="not found"):
        read_legacy_st(tmp_path / "nope.tsv.gz", sel_path)


# ----------------------------------------------------------------------------- Visium

BARCODES = ["AAAC-1", "AAAG-1", "AACT-1", "ACGT-1", "AGGT-1"]
V_FEATURES = [  # id, name, type; one duplicate symbol and one antibody feature
    ("ENSG1", "Xkr4", "Gene Expression"),
    ("ENSG2", "Sox17", "Gene Expression"),
    ("ENSG3", "Sox17", "Gene Expression"),
    ("AB1", "CD3", "Antibody Capture"),
    ("ENSG4", "Actb", "Gene Expression"),
]


def _visium(tmp_path, *, kind="h5", old_positions=False):
    outs = tmp_path / "run7" / "outs"
    (outs / "spatial").mkdir(parents=True)
    rng = np.random.default_rng(1)
    m = rng.poisson(3, (len(BARCODES), len(V_FEATURES)))  # barcodes x features
    if kind == "h5":
        import h5py

        csr = sp.csr_matrix(m)  # == CSC of features x barcodes, the 10x layout
        with h5py.File(outs / "filtered_feature_bc_matrix.h5", "w") as f:
            g = f.create_group("matrix")
            g["data"], g["indices"], g["indptr"] = csr.data, csr.indices, csr.indptr
            g["shape"] = np.array([len(V_FEATURES), len(BARCODES)], dtype=np.int32)
            g["barcodes"] = np.array(BARCODES, dtype="S")
            fg = g.create_group("features")
            for i, key in enumerate(("id", "name", "feature_type")):
                fg[key] = np.array([f[i] for f in V_FEATURES], dtype="S")
    else:
        from scipy.io import mmwrite

        d = outs / "filtered_feature_bc_matrix"
        d.mkdir()
        with gzip.open(d / "matrix.mtx.gz", "wb") as f:
            mmwrite(f, sp.coo_matrix(m.T))
        with gzip.open(d / "barcodes.tsv.gz", "wt") as f:
            f.write("\n".join(BARCODES) + "\n")
        with gzip.open(d / "features.tsv.gz", "wt") as f:
            f.write("".join("\t".join(r) + "\n" for r in V_FEATURES))
    pos = pd.DataFrame({
        "barcode": [*BARCODES[::-1], "TTTT-1", "TTTG-1"],
        "in_tissue": [1, 1, 1, 1, 1, 0, 0],
        "array_row": [0, 1, 0, 1, 2, 3, 3],
        "array_col": [0, 1, 2, 3, 4, 5, 7],
    })
    pos["pxl_row_in_fullres"] = 100.0 + 40 * pos["array_row"]
    pos["pxl_col_in_fullres"] = 80.0 + 20 * pos["array_col"]
    if old_positions:
        pos.to_csv(outs / "spatial" / "tissue_positions_list.csv", header=False, index=False)
    else:
        pos.to_csv(outs / "spatial" / "tissue_positions.csv", index=False)
    sf = {"spot_diameter_fullres": 20.0, "tissue_hires_scalef": 0.5, "tissue_lowres_scalef": 0.1}
    (outs / "spatial" / "scalefactors_json.json").write_text(json.dumps(sf))
    Image.new("RGB", (30, 30)).save(outs / "spatial" / "tissue_lowres_image.png")
    return outs, m, pos.set_index("barcode")


@pytest.mark.parametrize(("kind", "old_positions"), [("h5", False), ("mtx", False), ("mtx", True)])
def test_visium_reads(tmp_path, kind, old_positions):
    outs, m, pos = _visium(tmp_path, kind=kind, old_positions=old_positions)
    a = read_visium(outs.parent, patient="P7")  # the run folder works as well as outs/
    assert a.shape == (5, 4)
    assert list(a.var_names) == ["Xkr4", "Sox17", "Sox17-1", "Actb"]
    assert list(a.var["gene_id"]) == ["ENSG1", "ENSG2", "ENSG3", "ENSG4"]
    np.testing.assert_array_equal(a.X.toarray(), m[:, [0, 1, 2, 4]])
    assert a.X.dtype == np.float32 and isinstance(a.layers[K.LAYER_COUNTS], sp.csr_matrix)
    o = a.obs
    assert list(o[K.SPOT_ID]) == BARCODES and a.obs_names[0] == "run7:AAAC-1"
    p = pos.loc[BARCODES]
    np.testing.assert_allclose(o[K.X], p["pxl_col_in_fullres"])
    np.testing.assert_allclose(o[K.Y], p["pxl_row_in_fullres"])
    np.testing.assert_array_equal(o[K.ARRAY_ROW], p["array_row"])
    np.testing.assert_array_equal(o[K.ARRAY_COL], p["array_col"])
    assert set(o[K.SLIDE_ID]) == {"run7"} and set(o[K.PATIENT_ID]) == {"P7"}
    info = a.uns[K.UNS_SECTIONS]["run7"]
    assert info["mpp"] == pytest.approx(55 / 20) and info["platform"] == "visium"
    assert info["image_path"] is None and info["lowres_image_path"].endswith("lowres_image.png")
    assert info["scalefactors"]["tissue_lowres_scalef"] == 0.1


def test_visium_full_resolution_image(tmp_path):
    outs, _, _ = _visium(tmp_path)
    big = tmp_path / "full.png"
    Image.new("RGB", (200, 300)).save(big)
    a = read_visium(outs, image=big, section="V1", mpp=0.25)
    info = a.uns[K.UNS_SECTIONS]["V1"]
    assert info["image_size"] == [200, 300] and info["mpp"] == 0.25
    small = tmp_path / "small.png"
    Image.new("RGB", (120, 300)).save(small)  # spots reach x = 160
    with pytest.raises(CoordinateError, match="outside"):
        read_visium(outs, image=small)


def test_visium_missing_matrix(tmp_path):
    (tmp_path / "outs" / "spatial").mkdir(parents=True)
    with pytest.raises(InputError, match="filtered_feature_bc_matrix"):
        read_visium(tmp_path / "outs")


# ----------------------------------------------------------------------------- h5ad


def test_h5ad_round_trip_own_layout(tmp_path):
    c_path, sel_path, img, _ = _legacy(tmp_path)
    a = read_legacy_st(c_path, sel_path, img, patient="P")
    a.write_h5ad(tmp_path / "a.h5ad")
    b = read_h5ad(tmp_path / "a.h5ad")
    np.testing.assert_array_equal(b.X.toarray(), a.X.toarray())
    pd.testing.assert_frame_equal(b.obs, a.obs)
    assert list(b.var_names) == list(a.var_names)
    assert b.uns[K.UNS_SECTIONS]["S1"]["mpp"] == a.uns[K.UNS_SECTIONS]["S1"]["mpp"]
    c = read_h5ad(tmp_path / "a.h5ad", section="S9", patient="Q")
    assert set(c.obs[K.SLIDE_ID]) == {"S9"} and set(c.obs[K.PATIENT_ID]) == {"Q"}
    assert c.obs_names[0] == "S9:2x2" and list(c.uns[K.UNS_SECTIONS]) == ["S9"]


def _hest(n=6, genes=("A", "B", "C")):
    rng = np.random.default_rng(2)
    obs = pd.DataFrame(
        {
            "in_tissue": np.ones(n, int),
            "array_row": np.arange(n) % 3,
            "array_col": np.arange(n) // 3,
            "pxl_col_in_fullres": 50.0 + 10 * np.arange(n),
            "pxl_row_in_fullres": 70.0 + 5 * np.arange(n),
        },
        index=[f"BC{i}-1" for i in range(n)],
    )
    var = pd.DataFrame({"gene_ids": [f"ENS{g}" for g in genes]}, index=list(genes))
    uns = {"spatial": {"lib": {"scalefactors": {"spot_diameter_fullres": 110.0}}}}
    return ad.AnnData(rng.poisson(4, (n, len(genes))).astype(np.float32), obs=obs, var=var,
                      uns=uns)


def test_h5ad_hest_layout(tmp_path):
    (tmp_path / "st").mkdir()
    (tmp_path / "metadata").mkdir()
    src = _hest()
    src.write_h5ad(tmp_path / "st" / "TENX1.h5ad")
    (tmp_path / "metadata" / "TENX1.json").write_text(
        json.dumps({"pixel_size_um_estimated": 0.27, "st_technology": "Visium"})
    )
    a = read_h5ad(tmp_path / "st" / "TENX1.h5ad", patient="P1")
    np.testing.assert_allclose(a.obs[K.X], src.obs["pxl_col_in_fullres"])
    np.testing.assert_allclose(a.obs[K.Y], src.obs["pxl_row_in_fullres"])
    np.testing.assert_array_equal(a.obs[K.ARRAY_ROW], src.obs["array_row"])
    np.testing.assert_array_equal(a.X.toarray(), src.X)
    assert list(a.var["gene_id"]) == ["ENSA", "ENSB", "ENSC"]
    assert a.obs_names[0] == "TENX1:BC0-1" and set(a.obs[K.PATIENT_ID]) == {"P1"}
    info = a.uns[K.UNS_SECTIONS]["TENX1"]
    assert info["mpp"] == 0.27 and info["platform"] == "Visium"
    assert info["scalefactors"]["spot_diameter_fullres"] == 110.0
    assert read_h5ad(tmp_path / "st" / "TENX1.h5ad", mpp=0.5).uns[K.UNS_SECTIONS]["TENX1"][
        "mpp"] == 0.5


def test_h5ad_missing_columns_named(tmp_path):
    src = _hest()
    src.obs = src.obs.drop(columns=["pxl_row_in_fullres"])
    src.write_h5ad(tmp_path / "x.h5ad")
    with pytest.raises(InputError, match="pxl_row_in_fullres"):
        read_h5ad(tmp_path / "x.h5ad")


def test_h5ad_negative_counts(tmp_path):
    src = _hest()
    src.X[1, 1] = -1
    src.write_h5ad(tmp_path / "x.h5ad")
    with pytest.raises(InputError, match="1 negative"):
        read_h5ad(tmp_path / "x.h5ad", mpp=1.0)


# ----------------------------------------------------------------------------- cohorts


def _two_sections(tmp_path, caplog=None):
    d1, d2 = tmp_path / "one", tmp_path / "two"
    d1.mkdir()
    d2.mkdir()
    ids = [f"{x}x{y}" for x in range(2, 6) for y in range(2, 5)]
    c2 = _counts(ids, genes=["ERBB2", "GAPDH", "MKI67"], seed=3)
    a = read_legacy_st(*_legacy(d1, name="A1")[:3], patient="A")
    b = read_legacy_st(*_legacy(d2, name="B1", counts=c2)[:3], patient="B")
    return a, b


def test_concat_keeps_sections_and_patients(tmp_path, caplog):
    a, b = _two_sections(tmp_path)
    with caplog.at_level(logging.INFO, logger="histoexpr"):
        c = concat_sections([a, b])
    assert c.n_obs == 24 and list(c.var_names) == ["ERBB2", "GAPDH"]
    assert "2 genes in all of them, 4 in only some (dropped)" in caplog.text
    assert c.obs[K.SLIDE_ID].value_counts().to_dict() == {"A1": 12, "B1": 12}
    assert set(zip(c.obs[K.SLIDE_ID], c.obs[K.PATIENT_ID])) == {("A1", "A"), ("B1", "B")}
    assert isinstance(c.obs[K.SLIDE_ID].dtype, pd.CategoricalDtype)
    assert set(c.uns[K.UNS_SECTIONS]) == {"A1", "B1"}
    assert c.obs_names.is_unique and c.obs_names[12] == "B1:2x2"
    np.testing.assert_array_equal(c.layers[K.LAYER_COUNTS].toarray(), c.X.toarray())
    outer = concat_sections([a, b], join="outer")
    assert outer.n_vars == 6 and not np.isnan(outer.X.toarray()).any()
    assert outer[:12, "MKI67"].X.sum() == 0
    with pytest.raises(InputError, match="appears twice"):
        concat_sections([a, a])


def test_concat_round_trips_through_h5ad(tmp_path):
    a, b = _two_sections(tmp_path)
    c = concat_sections([a, b])
    c.write_h5ad(tmp_path / "c.h5ad")
    d = read_h5ad(tmp_path / "c.h5ad")
    assert set(d.uns[K.UNS_SECTIONS]) == {"A1", "B1"} and d.n_obs == 24
    with pytest.raises(InputError, match="2 sections"):
        read_h5ad(tmp_path / "c.h5ad", section="X")


def test_read_sections_from_specs(tmp_path):
    c_path, sel_path, img, _ = _legacy(tmp_path)
    outs, _, _ = _visium(tmp_path)
    c = read_sections([
        {"platform": "legacy_st", "counts": c_path, "spots": sel_path, "image": img},
        {"platform": "visium", "folder": outs, "section": "V1", "patient": "P7"},
    ], join="outer")
    assert c.n_obs == 17 and set(c.uns[K.UNS_SECTIONS]) == {"S1", "V1"}
    assert {c.uns[K.UNS_SECTIONS][s]["platform"] for s in ("S1", "V1")} == {"legacy_st", "visium"}
    assert SPATIAL_READERS.list() == ["h5ad", "legacy_st", "spatialdata", "stnet", "visium"]
    with pytest.raises(UnknownNameError, match="legacy_st"):
        read_sections([{"platform": "slide-seq", "path": "x"}])
    with pytest.raises(InputError, match="no 'platform'"):
        read_sections([{"counts": c_path}])


def test_read_her2st_layout(tmp_path):
    for sub in ("counts", "spots", "images"):
        (tmp_path / sub).mkdir()
    for i, name in enumerate(["G1", "G2", "H1"]):
        _legacy(tmp_path, name=name, seed=i)
        (tmp_path / f"{name}.tsv.gz").rename(tmp_path / "counts" / f"{name}.tsv.gz")
        (tmp_path / f"{name}_selection.tsv").rename(tmp_path / "spots" / f"{name}_selection.tsv")
        (tmp_path / f"{name}.jpg").rename(tmp_path / "images" / f"{name}.jpg")
    c = read_her2st(tmp_path)
    assert c.obs[K.SLIDE_ID].value_counts().to_dict() == {"G1": 12, "G2": 12, "H1": 12}
    assert set(zip(c.obs[K.SLIDE_ID], c.obs[K.PATIENT_ID])) == {
        ("G1", "G"), ("G2", "G"), ("H1", "H")
    }
    assert all(v["image_size"] == [300, 300] for v in c.uns[K.UNS_SECTIONS].values())
    one = read_her2st(tmp_path, ["H1"], patient="X")
    assert set(one.obs[K.PATIENT_ID]) == {"X"}


# ----------------------------------------------------------------------------- real data

HER2ST_SELECTED = {"C2": 187, "C3": 182, "C4": 187, "C5": 183, "C6": 179}


@pytest.mark.data
def test_her2st_real_sections(shared_data):
    folder = shared_data / "her2st"
    c = read_her2st(folder)
    n = c.obs[K.SLIDE_ID].value_counts().to_dict()
    assert set(n) == set(HER2ST_SELECTED) and set(c.obs[K.PATIENT_ID]) == {"C"}
    for s, n_sel in HER2ST_SELECTED.items():
        assert n_sel - 4 <= n[s] <= n_sel  # a few selected spots have no counts row
    assert n["C3"] == 180
    med = c.obs.groupby(K.SLIDE_ID, observed=True)[K.TOTAL_COUNTS].median()
    assert med.between(8_400, 12_500).all()
    assert 13_000 <= c.n_vars <= 16_000 and c.var_names.is_unique
    for s, info in c.uns[K.UNS_SECTIONS].items():
        assert info["mpp"] == pytest.approx(0.69, abs=0.01), s
        assert info["image_size"][0] > 9000
    one = read_legacy_st(folder / "counts" / "C3.tsv.gz", folder / "spots" / "C3_selection.tsv")
    assert 15_000 <= one.n_vars <= 16_500


@pytest.mark.data
def test_visium_mouse_embryo(shared_data):
    a = read_visium(shared_data / "visium_mouse_embryo")
    assert a.shape == (2898, 19465) and a.var_names.is_unique
    assert a.obs[K.IN_TISSUE].all()
    info = a.uns[K.UNS_SECTIONS]["visium_mouse_embryo"]
    assert info["mpp"] == pytest.approx(55 / 14.964878633873417)
    with Image.open(info["lowres_image_path"]) as im:
        lowres = im.size
    f = info["scalefactors"]["tissue_lowres_scalef"]
    assert (a.obs[K.X] * f).max() < lowres[0] and (a.obs[K.Y] * f).max() < lowres[1]


def test_stnet_layout_with_ensembl_ids_tumour_labels_and_gene_names(tmp_path):
    """The ST-Net / BrST-Net breast layout: <subtype>/<patient>/<patient>_<section> files,
    genes by Ensembl id named through a table, subtype and tumour labels in obs."""
    import gzip
    import shutil

    from histoexpr.config import STConfig
    from histoexpr.datasets.synthetic_st import synthetic_st
    from histoexpr.expression import read_cohort
    from histoexpr.st.data import load_spot_data

    syn = synthetic_st(tmp_path / "syn", n_sections=2, n_patients=1, grid=(4, 4), n_genes=5,
                       n_signal=2)
    root = tmp_path / "stnet"
    ids = {g: f"ENSG{i:011d}.3" for i, g in enumerate(["SIG0", "SIG1", "NOISE0", "NOISE1",
                                                        "NOISE2"])}
    for k, spec in enumerate(syn.specs):
        d = root / "Luminal_A" / "BC23903"
        d.mkdir(parents=True, exist_ok=True)
        stem = f"BC23903_C{k + 1}"
        text = gzip.open(spec["counts"], "rt").read()
        head, rest = text.split("\n", 1)
        head = "\t".join(ids.get(g, g) for g in head.split("\t"))
        with gzip.open(d / f"{stem}.tsv.gz", "wt") as fh:
            fh.write(head + "\n" + rest)
        sel = pd.read_csv(spec["spots"], sep="\t")
        sel[["x", "y", "pixel_x", "pixel_y"]].to_csv(d / f"{stem}.spots.txt", sep="\t",
                                                     index=False)
        shutil.copy(spec["image"], d / f"{stem}.jpg")
        pd.DataFrame({"id": range(len(sel)), "x": sel["x"], "y": sel["y"], "n": 0,
                      "label": ["tumor" if i % 2 else "non" for i in range(len(sel))]}
                     ).to_csv(d / f"{stem}_Coords.tsv", sep="\t", index=False)
    names = tmp_path / "names.tsv"
    pd.DataFrame({"gene_id": [v.split(".")[0] for v in ids.values()],
                  "gene_name": list(ids)}).to_csv(names, sep="\t", index=False)

    cohort = read_cohort([root])
    assert cohort.var_names[0].startswith("ENSG")
    assert set(cohort.obs["subtype"]) == {"Luminal_A"} and set(cohort.obs["patient_id"]) == {
        "BC23903"}
    assert cohort.obs["tumor"].isin([0.0, 1.0]).all() and cohort.obs["tumor"].mean() > 0.3
    data = load_spot_data(STConfig.resolve(data=[str(root)], gene_names=str(names),
                                           min_counts=0, patch_px=16))
    assert {"SIG0", "SIG1"} <= set(data.adata.var_names)
