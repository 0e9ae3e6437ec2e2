"""The input layer of the downstream analyses: run folders, predict CSVs, tables, joins."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from histoexpr.analysis import AnalysisOutput
from histoexpr.analysis.tables import (
    align_samples,
    read_clinical,
    read_expression_input,
    run_entries,
    select_genes,
)
from histoexpr.errors import InputError

S1 = "TCGA-A1-A0SB-01Z-00-DX1"
S2 = "TCGA-A1-A0SD-01Z-00-DX1"
S3 = "TCGA-A1-A0SD-01Z-00-DX2"  # a second slide of the same patient


def _run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    pd.DataFrame({"slide": [S1, S2, S3], "patient": ["TCGA-A1-A0SB", "TCGA-A1-A0SD"] * 1
                  + ["TCGA-A1-A0SD"]}).to_csv(run / "slides.csv", index=False)
    rows = []
    for entry, kind, role, base in (("measured", "measured", "", 0.0), ("ridge", "model", "cv", 10),
                                    ("ridge", "model", "holdout", 20),
                                    ("mean", "baseline", "cv", 30)):
        for i, s in enumerate((S1, S2, S3)):
            rows.append({"entry": entry, "model": entry, "features": "", "kind": kind,
                         "unit": "0", "role": role, "slide": s, "ESR1": base + i, "ERBB2": -i})
    pd.DataFrame(rows).to_csv(run / "predictions.csv", index=False)
    return run


def test_run_folder_model_measured_and_roles(tmp_path):
    run = _run(tmp_path)
    assert run_entries(run) == ["ridge", "mean"]
    pred = read_expression_input(run)
    # the model's out-of-fold rows, averaged per patient (two slides of A0SD: 11 and 12)
    assert pred.loc["TCGA-A1-A0SB", "ESR1"] == 10
    assert pred.loc["TCGA-A1-A0SD", "ESR1"] == pytest.approx(11.5)
    assert read_expression_input(run, role="holdout").loc["TCGA-A1-A0SB", "ESR1"] == 20
    assert read_expression_input(run, entry="mean").loc["TCGA-A1-A0SB", "ESR1"] == 30
    meas = read_expression_input(run, source="measured")
    assert list(meas.columns) == ["ESR1", "ERBB2"] and meas.loc["TCGA-A1-A0SB", "ESR1"] == 0
    # the predictions.csv path itself works too
    assert read_expression_input(run / "predictions.csv").equals(pred)


def test_run_folder_errors_name_what_exists(tmp_path):
    run = _run(tmp_path)
    with pytest.raises(InputError, match=r"no entry .abmil.*mean"):
        read_expression_input(run, entry="abmil")
    with pytest.raises(InputError, match="roles"):
        read_expression_input(run, entry="mean", role="holdout")
    (run / "predictions.csv").unlink()
    with pytest.raises(InputError, match="bulk evaluate"):
        read_expression_input(run)


def test_predict_csv_and_plain_table(tmp_path):
    p = tmp_path / "predictions.csv"
    pd.DataFrame({"slide": [S1, S2, S3], "patient": ["TCGA-A1-A0SB", "TCGA-A1-A0SD",
                                                    "TCGA-A1-A0SD"],
                  "MKI67": [1.0, 2.0, 4.0]}).to_csv(p, index=False)
    got = read_expression_input(p)
    assert got.loc["TCGA-A1-A0SD", "MKI67"] == 3.0 and len(got) == 2
    t = tmp_path / "expr.tsv"
    t.write_text("Hugo_Symbol\tEntrez_Gene_Id\tTCGA-A1-A0SB-01\tTCGA-A1-A0SD-01\n"
                 "ESR1\t2099\t5\t6\n")
    got = read_expression_input(t)
    assert got.loc["TCGA-A1-A0SD", "ESR1"] == 6


def test_clinical_table_id_column_and_duplicates(tmp_path):
    p = tmp_path / "clin.tsv"
    p.write_text("#cBioPortal header line\nOTHER\tPATIENT_ID\tOS_MONTHS\nx\tP1\t3\ny\tP2\t4\n")
    c = read_clinical(p)
    assert c.index.name == "PATIENT_ID" and c.loc["P2", "OS_MONTHS"] == 4
    p.write_text("PATIENT_ID\tOS_MONTHS\nP1\t3\nP1\t4\n")
    with pytest.raises(InputError, match=r"P1.*more than once"):
        read_clinical(p)
    with pytest.raises(InputError, match="not found"):
        read_clinical(tmp_path / "nope.csv")


def test_align_by_patient_barcode_or_exact_id():
    e = pd.DataFrame({"g": [1.0, 2.0, 3.0]}, index=["TCGA-A1-A0SB-01A", "TCGA-A1-A0SD-01A",
                                                     "TCGA-ZZ-ZZZZ-01A"])
    c = pd.DataFrame({"v": [9, 8]}, index=["TCGA-A1-A0SD", "TCGA-A1-A0SB"])
    a, b = align_samples(e, c)
    assert list(a.index) == list(b.index) == ["TCGA-A1-A0SB", "TCGA-A1-A0SD"]
    assert list(b["v"]) == [8, 9]
    g = pd.DataFrame({"g": [1.0]}, index=["GTEX-1117F-0126"])
    with pytest.raises(InputError, match="no ids in common"):
        align_samples(g, pd.DataFrame({"v": [1]}, index=["GTEX-X"]))
    dup = pd.DataFrame({"g": [1.0, 2.0]}, index=["TCGA-A1-A0SB-01A", "TCGA-A1-A0SB-11A"])
    with pytest.raises(InputError, match="several rows"):
        align_samples(dup, c)


def test_select_genes_names_the_missing(caplog):
    e = pd.DataFrame(np.zeros((2, 2)), columns=["A", "B"])
    assert list(select_genes(e, ["B"]).columns) == ["B"]
    with pytest.raises(InputError, match="C absent"):
        select_genes(e, ["A", "C"])
    assert list(select_genes(e, ["A", "C"], required=False).columns) == ["A"]
    with pytest.raises(InputError):
        select_genes(e, ["C"], required=False)


def test_analysis_output_records_files_notes_and_hashes(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("a\n1\n")
    out = AnalysisOutput(tmp_path / "out", "x")
    out.table("t", pd.DataFrame({"a": [1]}))
    from histoexpr.plot import new_figure

    fig = new_figure((2, 2))
    fig.add_subplot().plot([0, 1])
    out.figure("f", fig)
    out.note("thresholds are cohort quantiles")
    rec = out.finish(params={"k": 2}, inputs={"table": src, "none": None})
    saved = json.loads((tmp_path / "out" / "analysis.json").read_text())
    assert saved == json.loads(json.dumps(rec))
    assert saved["files"] == ["t.csv", "f.png"] and saved["notes"]
    assert next(iter(saved["sha256"].values())) and "none" not in saved["inputs"]
    assert not list((tmp_path / "out").glob(".*tmp*"))


def test_plain_table_of_log_values_may_be_negative(tmp_path):
    t = tmp_path / "pred.csv"
    t.write_text("PATIENT_ID,ESR1\nTCGA-A1-A0SB,-0.5\nTCGA-A1-A0SD,1.5\n")
    assert read_expression_input(t).loc["TCGA-A1-A0SB", "ESR1"] == -0.5
