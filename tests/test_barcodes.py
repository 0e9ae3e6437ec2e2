from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from histoexpr.barcodes import Barcode, parse_barcode, patient_id, try_parse_barcode
from histoexpr.cohort import join_slides
from histoexpr.errors import InputError

UUID = "BE3661A3-A2A0-4248-B7D5-D8986E529B6C"


# ------------------------------------------------------------------------------ parsing
@pytest.mark.parametrize(
    ("name", "patient", "sample", "slide", "text"),
    [
        ("TCGA-A2-A04R-01Z-00-DX1", "TCGA-A2-A04R", "TCGA-A2-A04R-01Z", "DX1",
         "TCGA-A2-A04R-01Z-00-DX1"),
        (f"TCGA-A2-A04R-01Z-00-DX1.{UUID}.svs", "TCGA-A2-A04R", "TCGA-A2-A04R-01Z", "DX1",
         "TCGA-A2-A04R-01Z-00-DX1"),
        (f"/data/slides/TCGA-A2-A04R-01Z-00-DX1.{UUID}.svs", "TCGA-A2-A04R",
         "TCGA-A2-A04R-01Z", "DX1", "TCGA-A2-A04R-01Z-00-DX1"),
        (f"TCGA-A2-A04R-01Z-00-DX1.{UUID} [x=15680,y=39200,w=224,h=224].png", "TCGA-A2-A04R",
         "TCGA-A2-A04R-01Z", "DX1", "TCGA-A2-A04R-01Z-00-DX1"),
        ("TCGA-E2-A15K-01Z-00-DX1.9F424BE2-9BFE-4DFF-8CC9-10D2DADBBEA7 "
         "[x=16800,y=20160,w=224,h=224].png", "TCGA-E2-A15K", "TCGA-E2-A15K-01Z", "DX1",
         "TCGA-E2-A15K-01Z-00-DX1"),
        ("TCGA-3C-AAAU", "TCGA-3C-AAAU", None, None, "TCGA-3C-AAAU"),
        ("TCGA-3C-AAAU-01A-11R-A41B-07", "TCGA-3C-AAAU", "TCGA-3C-AAAU-01A", None,
         "TCGA-3C-AAAU-01A-11R-A41B-07"),
        ("TCGA-3C-AAAU-01A", "TCGA-3C-AAAU", "TCGA-3C-AAAU-01A", None, "TCGA-3C-AAAU-01A"),
        ("tcga-a2-a04r-01a-01-ts1", "TCGA-A2-A04R", "TCGA-A2-A04R-01A", "TS1",
         "TCGA-A2-A04R-01A-01-TS1"),
    ],
)
def test_parse_every_form(name, patient, sample, slide, text):
    b = parse_barcode(name)
    assert (b.patient, b.sample, b.slide, str(b)) == (patient, sample, slide, text)
    assert patient_id(name) == patient
    assert parse_barcode(Path(name)) == b


def test_fields_of_an_aliquot_barcode():
    b = parse_barcode("TCGA-3C-AAAU-01A-11R-A41B-07")
    assert b == Barcode("TCGA", "3C", "AAAU", 1, "A", "11", "R", "A41B", "07", None)
    with pytest.raises(AttributeError):
        b.tss = "XX"  # frozen


@pytest.mark.parametrize(
    ("name", "tumour", "normal"),
    [("TCGA-3C-AAAU-01A", True, False), ("TCGA-3C-AAAU-06A", True, False),
     ("TCGA-3C-AAAU-11A", False, True), ("TCGA-3C-AAAU-10A", False, True),
     ("TCGA-3C-AAAU-20A", False, False), ("TCGA-3C-AAAU", False, False)],
)
def test_tumour_vs_normal(name, tumour, normal):
    b = parse_barcode(name)
    assert (b.is_tumour, b.is_normal) == (tumour, normal)


@pytest.mark.parametrize(
    ("name", "dx", "number"),
    [("TCGA-A2-A04R-01Z-00-DX1", True, 1), ("TCGA-A2-A04R-01Z-00-DX12", True, 12),
     ("TCGA-A2-A04R-01A-01-TS1", False, None), ("TCGA-A2-A04R-01A-01-BSA", False, None),
     ("TCGA-A2-A04R-01A-02-MS1", False, None), ("TCGA-A2-A04R-01A-11R-A41B-07", False, None)],
)
def test_diagnostic_vs_frozen_sections(name, dx, number):
    b = parse_barcode(name)
    assert b.is_diagnostic_slide is dx and b.dx_number == number


@pytest.mark.parametrize(
    "name",
    ["slide_0001.svs", "GTEX-1117F-0126", "TCGA-A2", "TCGA-A2-A04R-01Z-00-DX1-junk",
     "xTCGA-A2-A04R", "", "TCGA-A2-A04RX"],
)
def test_non_tcga_names(name):
    assert try_parse_barcode(name) is None
    with pytest.raises(InputError, match="TCGA barcode looks like TCGA-A2-A04R"):
        parse_barcode(name)


# ------------------------------------------------------------------------------ join
SLIDES = [
    "TCGA-AA-0001-01Z-00-DX2.svs",  # two DX slides: DX1 kept
    "TCGA-AA-0001-01Z-00-DX1.svs",
    "TCGA-AA-0001-01A-01-TS1.svs",  # frozen beside a DX slide: dropped
    "TCGA-AA-0002-11A-01-TS1.svs",  # normal tissue slide: dropped by sample type
    "TCGA-AA-0002-01A-01-TS1.svs",  # only a frozen section: kept
    "TCGA-AA-0003-01Z-00-DX1.svs",  # no expression
]
EXPRESSION = [
    "TCGA-AA-0001-11A-11R-A41B-07",  # normal row listed first
    "TCGA-AA-0001-01A-11R-A41B-07",
    "TCGA-AA-0002-01A-11R-A41B-07",
    "TCGA-AA-0002-01B-11R-A41B-07",  # second tumour vial: first kept
    "TCGA-AA-0004-01A-11R-A41B-07",  # no slide
]


def test_join_with_duplicates_and_orphans():
    r = join_slides(SLIDES, EXPRESSION)
    assert r.pairs.to_dict(orient="records") == [
        {"patient": "TCGA-AA-0001", "slide": "TCGA-AA-0001-01Z-00-DX1.svs",
         "expression_id": "TCGA-AA-0001-01A-11R-A41B-07"},
        {"patient": "TCGA-AA-0002", "slide": "TCGA-AA-0002-01A-01-TS1.svs",
         "expression_id": "TCGA-AA-0002-01A-11R-A41B-07"},
    ]
    assert r.slides_without_expression == ["TCGA-AA-0003-01Z-00-DX1.svs"]
    assert r.expression_without_slides == ["TCGA-AA-0004-01A-11R-A41B-07"]
    reasons = dict(zip(r.dropped["item"], r.dropped["reason"]))
    assert set(reasons) == {
        "TCGA-AA-0001-01Z-00-DX2.svs", "TCGA-AA-0001-01A-01-TS1.svs",
        "TCGA-AA-0002-11A-01-TS1.svs", "TCGA-AA-0001-11A-11R-A41B-07",
        "TCGA-AA-0002-01B-11R-A41B-07",
    }
    assert reasons["TCGA-AA-0001-01Z-00-DX2.svs"].startswith("extra slide")
    assert reasons["TCGA-AA-0001-01A-01-TS1.svs"].startswith("not diagnostic: TS1")
    assert reasons["TCGA-AA-0002-11A-01-TS1.svs"].startswith("sample type: 11 (normal)")
    assert reasons["TCGA-AA-0001-11A-11R-A41B-07"].startswith("sample type: 11 (normal)")
    assert reasons["TCGA-AA-0002-01B-11R-A41B-07"].startswith("duplicate")
    assert r.counts() == {"pairs": 2, "patients": 2, "slides_without_expression": 1,
                          "expression_without_slides": 1, "slides_dropped": 3,
                          "expression_dropped": 2}
    text = r.report()
    assert "2 pairs over 2 patients" in text and "1 expression rows without slides" in text
    assert json.loads(json.dumps(r.to_dict()))["counts"]["pairs"] == 2


def test_join_rule_all_and_any_sample_type_keeps_tumour_row():
    r = join_slides(SLIDES, EXPRESSION, rule="all", sample_types=None)
    assert r.pairs["slide"].tolist() == [
        "TCGA-AA-0001-01Z-00-DX1.svs", "TCGA-AA-0001-01Z-00-DX2.svs",
        "TCGA-AA-0002-01A-01-TS1.svs", "TCGA-AA-0002-11A-01-TS1.svs",
    ]
    # with every sample type allowed, the tumour row wins over the earlier normal one
    assert r.pairs["expression_id"].iloc[0] == "TCGA-AA-0001-01A-11R-A41B-07"
    assert "TCGA-AA-0001-11A-11R-A41B-07" in r.dropped["item"].tolist()
    assert r.report().startswith("slide-expression join (rule all, sample types any)")


def test_join_patient_level_expression_and_bad_arguments():
    r = join_slides(["tcga-aa-0001-01z-00-dx1.svs"], ["TCGA-AA-0001", "not-a-barcode"])
    assert r.pairs["patient"].tolist() == ["TCGA-AA-0001"]
    assert r.dropped["reason"].iloc[0].startswith("unknown patient")
    with pytest.raises(InputError, match="unknown join rule 'best'"):
        join_slides(SLIDES, EXPRESSION, rule="best")
    with pytest.raises(InputError, match="not a TCGA sample type"):
        join_slides(SLIDES, EXPRESSION, sample_types=("tumour",))


def test_zero_matches_is_an_error_naming_both_sides():
    with pytest.raises(InputError, match=r"no slide matched an expression row: slides look "
                                         r"like 'TCGA-AA-0003.*expression ids like 'TCGA-BB"):
        join_slides(["TCGA-AA-0003-01Z-00-DX1.svs"], ["TCGA-BB-0001", "TCGA-BB-0002"])
    with pytest.raises(InputError, match="give a manifest"):
        join_slides(["slide_1.svs"], ["S1"])


def test_manifest_join_for_non_tcga_names(tmp_path):
    manifest = pd.DataFrame({"slide": ["s1.svs", "s2", "s3"], "patient": ["P1", "P1", "P2"],
                             "sample": ["P1-T", "P1-T", "P2-T"]})
    path = tmp_path / "manifest.csv"
    manifest.to_csv(path, index=False)
    for m in (manifest, path, str(path)):
        r = join_slides(["/x/s1.svs", "/x/s2.tif", "s3.svs", "s9.svs"],
                        ["P1-T", "P2", "P3"], manifest=m)
        assert r.pairs.to_dict(orient="records") == [
            {"patient": "P1", "slide": "/x/s1.svs", "expression_id": "P1-T"},
            {"patient": "P2", "slide": "s3.svs", "expression_id": "P2"},
        ]
        reasons = dict(zip(r.dropped["item"], r.dropped["reason"]))
        assert reasons["/x/s2.tif"].startswith("extra slide")
        assert "not in the manifest" in reasons["s9.svs"]
        assert "not in the manifest" in reasons["P3"]


def test_manifest_missing_column_or_file(tmp_path):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"slide_id": ["s1"], "case": ["P1"]}).to_csv(bad, index=False)
    with pytest.raises(InputError, match=r"bad\.csv lacks column\(s\) slide, patient"):
        join_slides(["s1"], ["P1"], manifest=bad)
    with pytest.raises(InputError, match=r"lacks column.*patient"):
        join_slides(["s1"], ["P1"], manifest=pd.DataFrame({"slide": ["s1"]}))
    with pytest.raises(InputError, match="not found"):
        join_slides(["s1"], ["P1"], manifest=tmp_path / "nope.csv")


@pytest.mark.data
def test_real_tcga_brca_tiles_join_pam50(shared_data):
    root = shared_data / "tcga_brca"
    slides = []
    for folder in sorted(p for p in (root / "tiles").iterdir() if p.is_dir()):
        names = {t.name.split(" [", 1)[0] for t in folder.glob("*.png")}
        assert len(names) == 1  # one slide per patient folder
        slides.append(names.pop())
        assert patient_id(slides[-1]) == folder.name
    expr = pd.read_csv(root / "pam50_gene_expression.csv", index_col=0)
    assert len(expr) == 1093
    r = join_slides(slides, expr.index)
    assert len(r.pairs) == 4 and sorted(r.pairs["slide"]) == sorted(slides)
    assert r.pairs["patient"].tolist() == sorted(p.name for p in (root / "tiles").iterdir()
                                                 if p.is_dir())
    assert len(r.expression_without_slides) == 1089
    assert r.slides_without_expression == [] and r.dropped.empty
