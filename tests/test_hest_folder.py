"""A HEST-1k download folder (issue 22, item 2): `st fit --data ROOT?query` selects samples
by id or metadata (organ, technology, species), with each sample's WSI, patient and pixel
size from the metadata CSV; bad folders and queries get one clear error."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from histoexpr import _keys as K
from histoexpr.datasets.synthetic import synthetic_he, write_pyramidal_tiff
from histoexpr.errors import InputError
from histoexpr.expression.discover import read_sections, section_specs

SAMPLES = [("TENX1", "P1", "Breast", "Visium", "Homo sapiens"),
           ("TENX2", "P1", "Breast", "Visium", "Homo sapiens"),
           ("NCBI3", "P2", "Breast", "ST", "Homo sapiens"),
           ("MISC4", "M1", "Brain", "Visium", "Mus musculus")]


def _sample(root, sid, seed):
    rng = np.random.default_rng(seed)
    rgb = synthetic_he(512, 512, mpp=0.5, seed=seed).rgb
    ys, xs = np.nonzero((rgb < 200).any(-1))  # spots on the tissue, 24 px apart
    cy, cx = int(np.median(ys)), int(np.median(xs))
    n = 12
    obs = pd.DataFrame({"in_tissue": np.ones(n, int), "array_row": np.arange(n) % 4,
                        "array_col": np.arange(n) // 4,
                        "pxl_col_in_fullres": cx - 24.0 + 24 * (np.arange(n) // 4),
                        "pxl_row_in_fullres": cy - 36.0 + 24 * (np.arange(n) % 4)},
                       index=[f"BC{i}-1" for i in range(n)])
    a = ad.AnnData(rng.poisson(400, (n, 3)).astype(np.float32), obs=obs,
                   var=pd.DataFrame(index=["A", "B", "C"]))
    a.write_h5ad(root / "st" / f"{sid}.h5ad")
    write_pyramidal_tiff(root / "wsis" / f"{sid}.tif", rgb, mpp=0.5)


@pytest.fixture(scope="module")
def hest(tmp_path_factory):
    root = tmp_path_factory.mktemp("hest")
    for d in ("st", "wsis", "metadata", "patches", "spatial_plots"):
        (root / d).mkdir()
    for i, (sid, *_rest) in enumerate(SAMPLES):
        _sample(root, sid, i)
    pd.DataFrame([{"id": s, "patient": p, "organ": o, "st_technology": t, "species": sp,
                   "pixel_size_um_estimated": 0.5 + 0.01 * i}
                  for i, (s, p, o, t, sp) in enumerate(SAMPLES)]).to_csv(
        root / "HEST_v1_1_0.csv", index=False)
    return root


def test_whole_folder_and_queries(hest):
    assert [s["section"] for s in section_specs(hest)] == [s[0] for s in SAMPLES]
    breast_visium = section_specs(f"{hest}?organ=breast&st_technology=Visium")
    assert [s["section"] for s in breast_visium] == ["TENX1", "TENX2"]
    assert breast_visium[0]["patient"] == "P1" and breast_visium[1]["mpp"] == 0.51
    assert breast_visium[0]["image"].endswith("wsis/TENX1.tif")
    by_id = section_specs(f"{hest}?id=NCBI3,misc4")
    assert [s["section"] for s in by_id] == ["NCBI3", "MISC4"]
    mouse = section_specs(f"{hest}?species=Mus musculus")
    assert [s["section"] for s in mouse] == ["MISC4"]


def test_selected_samples_read_as_sections_with_patients(hest):
    a = read_sections(section_specs(f"{hest}?organ=Breast"))
    assert sorted(set(a.obs[K.SLIDE_ID])) == ["NCBI3", "TENX1", "TENX2"]
    assert dict(a.obs.groupby(K.SLIDE_ID, observed=True)[K.PATIENT_ID].first()) == {
        "NCBI3": "P2", "TENX1": "P1", "TENX2": "P1"}
    assert a.uns[K.UNS_SECTIONS]["NCBI3"]["mpp"] == 0.52


def test_bad_queries_and_folders(hest, tmp_path):
    with pytest.raises(InputError, match=r"no column 'tissue'.*columns: id"):
        section_specs(f"{hest}?tissue=breast")
    with pytest.raises(InputError, match=r"no HEST sample has organ in .'lung'.*Brain, Breast"):
        section_specs(f"{hest}?organ=Lung")
    with pytest.raises(InputError, match="not a HEST folder"):
        section_specs(f"{tmp_path}?organ=Breast")
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(hest, broken)
    (broken / "wsis" / "TENX2.tif").unlink()
    with pytest.raises(InputError, match=r"TENX2\.tif: HEST sample TENX2 is listed"):
        section_specs(f"{broken}?id=TENX2")


def test_st_fit_takes_a_hest_query(hest, tmp_path):
    from histoexpr.cli import main

    rc = main(["-q", "st", "fit", "--data", f"{hest}?organ=Breast", "--encoder", "toy",
               "--genes", "all", "--patch-px", "16", "--patch-um", "8", "--folds", "2",
               "--baselines", "none", "--context", "0", "--scales", "none", "--out",
               str(tmp_path / "run"), "--no-maps"])
    assert rc == 0
    spots = pd.read_csv(tmp_path / "run" / "spots.csv")
    assert set(spots["slide_id"]) == {"NCBI3", "TENX1", "TENX2"}
    assert set(spots["patient_id"]) == {"P1", "P2"}
