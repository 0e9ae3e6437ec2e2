"""Bulk RNA-seq readers (GDC STAR / FPKM-UQ, cBioPortal, GCT, plain tables) and gene panels,
on tiny files written to tmp_path; one ``data`` test on the real TCGA-BRCA PAM50 table."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from histoexpr.errors import InputError, UnknownNameError
from histoexpr.expression import (
    list_panels,
    load_panel,
    log_transform,
    panel_genes,
    read_cbioportal_rsem,
    read_expression,
    read_expression_table,
    read_gct,
    read_gdc_fpkm_uq,
    read_gdc_star_counts,
    strip_ensembl_version,
)
from histoexpr.expression.sniff import sniff_format

STAR_HEADER = ("gene_id\tgene_name\tgene_type\tunstranded\tstranded_first\tstranded_second\t"
               "tpm_unstranded\tfpkm_unstranded\tfpkm_uq_unstranded\n")


def write_star(path: Path, tp53: float = 10, par: float = 0) -> Path:
    rows = [
        "N_unmapped\t\t\t100\t100\t100\t\t\t",
        "N_multimapping\t\t\t50\t50\t50\t\t\t",
        "N_noFeature\t\t\t20\t5\t15\t\t\t",
        "N_ambiguous\t\t\t7\t3\t4\t\t\t",
        f"ENSG00000141510.17\tTP53\tprotein_coding\t{tp53}\t5\t5\t2.5\t1.5\t3.0",
        "ENSG00000002586.20\tCD99\tprotein_coding\t30\t15\t15\t6.0\t4.0\t8.0",
        f"ENSG00000002586.20_PAR_Y\tCD99\tprotein_coding\t{par}\t0\t0\t1.0\t0\t0",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# gene-model: GENCODE v36\n" + STAR_HEADER + "\n".join(rows) + "\n")
    return path


def test_strip_version_and_log():
    assert strip_ensembl_version(["ENSG00000000003.13", "ENSG1_PAR_Y", "WARS1"]) == [
        "ENSG00000000003", "ENSG1_PAR_Y", "WARS1"]
    df = pd.DataFrame({"A": [0.0, np.e - 1]})
    np.testing.assert_allclose(log_transform(df)["A"], [0, 1])
    pd.testing.assert_frame_equal(log_transform(df, log="none"), df)
    with pytest.raises(InputError, match="log must be"):
        log_transform(df, log="ln")
    with pytest.raises(InputError, match="already log-transformed"):
        log_transform(-df - 1)


def test_star_counts_values_and_duplicates(tmp_path):
    a = write_star(tmp_path / "u1" / "aaa.rna_seq.augmented_star_gene_counts.tsv", tp53=10, par=2)
    b = write_star(tmp_path / "u2" / "bbb.rna_seq.augmented_star_gene_counts.tsv", tp53=4)
    df = read_gdc_star_counts([a, b], value="unstranded")
    assert df.index.tolist() == ["aaa", "bbb"] and df.index.name == "sample"
    assert df.columns.tolist() == ["TP53", "CD99"]          # N_ rows dropped
    assert df.dtypes.unique().tolist() == [np.float64]
    assert df.loc["aaa", "CD99"] == 32 and df.loc["bbb", "TP53"] == 4   # PAR_Y summed
    assert df.attrs["gene_ids"]["CD99"] == "ENSG00000002586;ENSG00000002586_PAR_Y"
    tpm = read_gdc_star_counts(a)                              # default tpm_unstranded
    assert tpm.loc["aaa", "CD99"] == 7.0
    ids = read_gdc_star_counts([a, b], symbols="gene_id", sample_ids=["P1", "P2"])
    assert ids.columns.tolist() == ["ENSG00000141510", "ENSG00000002586",
                                    "ENSG00000002586_PAR_Y"]
    assert ids.index.tolist() == ["P1", "P2"]
    # a GDC download folder: one file per UUID folder, found recursively
    folder = read_expression(tmp_path, value="unstranded")
    pd.testing.assert_frame_equal(folder, df)
    assert sniff_format(a) == "star"


def test_star_errors(tmp_path):
    a = write_star(tmp_path / "a.tsv")
    with pytest.raises(InputError, match="fpkm_uq_unstranded"):
        read_gdc_star_counts(a, value="tpm")
    bad = tmp_path / "old.tsv"
    bad.write_text("gene_id\tgene_name\tunstranded\nENSG1.1\tX\t3\n")
    with pytest.raises(InputError, match=r"old.tsv: no column\(s\) tpm_unstranded"):
        read_gdc_star_counts(bad)
    with pytest.raises(InputError, match="duplicate sample id"):
        read_gdc_star_counts([a, a])


def test_fpkm_uq_gz_with_gtf(tmp_path):
    p = tmp_path / "s1.FPKM-UQ.txt.gz"
    with gzip.open(p, "wt") as fh:
        fh.write("ENSG00000000003.13\t1500.5\nENSG00000000005.5\t0\nENSG00000999999.1\t7\n")
    gtf = tmp_path / "genes.gtf.gz"
    with gzip.open(gtf, "wt") as fh:
        fh.write('#!genome-build GRCh38\n'
                 'chrX\tHAVANA\tgene\t1\t9\t.\t-\t.\tgene_id "ENSG00000000003.15"; '
                 'gene_type "protein_coding"; gene_name "TSPAN6";\n'
                 'chrX\tHAVANA\ttranscript\t1\t9\t.\t-\t.\tgene_id "ENSG00000000005.6"; '
                 'gene_name "WRONG";\n'
                 'chrX\tHAVANA\tgene\t1\t9\t.\t+\t.\tgene_id "ENSG00000000005.6"; '
                 'gene_name "TNMD";\n')
    ids = read_gdc_fpkm_uq(p)
    assert ids.columns.tolist() == ["ENSG00000000003", "ENSG00000000005", "ENSG00000999999"]
    assert ids.index.tolist() == ["s1"]
    sym = read_gdc_fpkm_uq([p], gtf=gtf)
    assert sym.columns.tolist() == ["TSPAN6", "TNMD", "ENSG00000999999"]
    assert sym.loc["s1", "TSPAN6"] == 1500.5
    assert sniff_format(p) == "fpkm_uq"


def test_cbioportal_rsem(tmp_path, caplog):
    p = tmp_path / "data_mrna_seq_v2_rsem.txt"
    p.write_text("Hugo_Symbol\tEntrez_Gene_Id\tTCGA-A1-A0SB-01\tTCGA-A1-A0SD-01\n"
                 "\t100130426\t0\t1\n"
                 "TP53\t7157\t10\t20\n"
                 "ESR1\t2099\t1\t3\n"
                 "TP53\t7157\t30\t40\n")
    with caplog.at_level(logging.INFO, logger="histoexpr.expression.bulk"):
        df = read_cbioportal_rsem(p)
    assert df.shape == (2, 2) and df.index.tolist() == ["TCGA-A1-A0SB-01", "TCGA-A1-A0SD-01"]
    assert df.loc["TCGA-A1-A0SB-01", "TP53"] == 20 and df.loc["TCGA-A1-A0SD-01", "TP53"] == 30
    assert "1 row(s) without a Hugo_Symbol" in caplog.text and "averaged" in caplog.text
    assert sniff_format(p) == "cbioportal"
    pd.testing.assert_frame_equal(read_expression(p), df)


def test_gct(tmp_path):
    p = tmp_path / "gtex.gct.gz"
    with gzip.open(p, "wt") as fh:
        fh.write("#1.2\n3\t2\nName\tDescription\tGTEX-1\tGTEX-2\n"
                 "ENSG00000141510.16\tTP53\t1.5\t2\n"
                 "ENSG00000091831.21\tESR1\t0\t4\n"
                 "ENSG00000002586.19_PAR_Y\tESR1\t1\t1\n")
    df = read_gct(p)
    assert df.shape == (2, 2) and df.loc["GTEX-2", "ESR1"] == 5
    ids = read_gct(p, symbols=False)
    assert ids.columns[0] == "ENSG00000141510" and ids.shape == (2, 3)
    assert sniff_format(p) == "gct"
    bad = tmp_path / "trunc.gct"
    bad.write_text("#1.2\n5\t2\nName\tDescription\tA\tB\nENSG1.1\tX\t1\t2\n")
    with pytest.raises(InputError, match="truncated"):
        read_gct(bad)


def test_table_both_orientations(tmp_path, caplog):
    wide = tmp_path / "samples.csv"
    wide.write_text("PATIENT_ID,ESR1,ERBB2\nTCGA-A1-A0SB,5,1\nTCGA-A1-A0SD,6,2\n")
    df = read_expression_table(wide)
    assert df.index.tolist() == ["TCGA-A1-A0SB", "TCGA-A1-A0SD"]
    assert df.columns.tolist() == ["ESR1", "ERBB2"]
    long = tmp_path / "genes.tsv"
    long.write_text("gene_name\tTCGA-A1-A0SB\tTCGA-A1-A0SD\nESR1\t5\t6\nERBB2\t1\t2\n")
    with caplog.at_level(logging.INFO, logger="histoexpr.expression.bulk"):
        pd.testing.assert_frame_equal(read_expression_table(long), df)
    assert "transposed" in caplog.text
    # no gene header, but TCGA barcodes as columns
    anon = tmp_path / "anon.csv"
    anon.write_text("id,TCGA-A1-A0SB,TCGA-A1-A0SD\nESR1,5,6\nERBB2,1,2\n")
    pd.testing.assert_frame_equal(read_expression_table(anon), df)
    assert sniff_format(wide) == "table"
    pd.testing.assert_frame_equal(read_expression(long), df)


def test_table_errors(tmp_path):
    neg = tmp_path / "neg.csv"
    neg.write_text("PATIENT_ID,ESR1\nP1,-0.5\nP2,1\n")
    with pytest.raises(InputError, match=r"neg.csv.*already log-transformed or centred"):
        read_expression_table(neg)
    text = tmp_path / "text.csv"
    text.write_text("PATIENT_ID,ESR1,ERBB2\nP1,1,2\nP2,1,high\n")
    with pytest.raises(InputError, match=r"text.csv: non-numeric value 'high' in column 'ERBB2', "
                                         r"row 'P2'"):
        read_expression_table(text)
    dup = tmp_path / "dup.csv"
    dup.write_text("PATIENT_ID,ESR1\nP1,1\nP1,2\n")
    with pytest.raises(InputError, match=r"duplicate sample id.*P1"):
        read_expression_table(dup)
    nan = tmp_path / "nan.csv"
    nan.write_text("PATIENT_ID,ESR1\nP1,\nP2,2\n")
    with pytest.raises(InputError, match="1 missing"):
        read_expression_table(nan)
    assert np.isnan(read_expression_table(nan, allow_nan=True).loc["P1", "ESR1"])
    with pytest.raises(UnknownNameError, match="table"):
        read_expression(nan, format="xlsx")


def test_builtin_panels():
    assert list_panels() == ["gastric4", "hist2rna138", "pam50"]
    sizes = {name: len(load_panel(name)) for name in list_panels()}
    assert sizes == {"gastric4": 4, "hist2rna138": 138, "pam50": 50}
    assert load_panel("gastric4") == ["CDX1", "GZMB", "SFRP4", "WARS"]
    assert {"ESR1", "ERBB2", "MKI67"} <= set(load_panel("pam50"))
    with pytest.raises(UnknownNameError, match="gastric4, hist2rna138, pam50"):
        load_panel("pam51")


def test_user_panel_files(tmp_path):
    lines = tmp_path / "mine.txt"
    lines.write_text("# my genes\nESR1\n\nERBB2\nESR1\n")
    assert load_panel(lines) == ["ESR1", "ERBB2"]
    headed = tmp_path / "pam.txt"
    headed.write_text("pam_50_gene\nESR1\nPGR\n")
    assert load_panel(headed) == ["ESR1", "PGR"]
    csv = tmp_path / "panel.csv"
    csv.write_text("rank,symbol\n1,TP53\n2,MYC\n")
    assert load_panel(csv) == ["TP53", "MYC"]


def test_panel_genes(caplog):
    df = pd.DataFrame(np.ones((2, 4)), columns=["CDX1", "GZMB", "WARS1", "ACTB"])
    with caplog.at_level(logging.INFO, logger="histoexpr.expression.panels"):
        present, missing = panel_genes(df, "gastric4")
    assert present == ["CDX1", "GZMB", "WARS1"] and missing == ["SFRP4"]
    assert "SFRP4" in caplog.text and "alias WARS1" in caplog.text
    # the alias works the other way round too
    assert panel_genes(["WARS"], ["WARS1"]) == (["WARS"], [])
    with pytest.raises(InputError, match=r"only 3 of 4.*SFRP4"):
        panel_genes(df, "gastric4", min_present=4)
    with pytest.raises(InputError, match="only 0 of 50"):
        panel_genes(["ENSG00000141510"], "pam50")


@pytest.mark.data
def test_real_pam50_table(shared_data):
    path = shared_data / "tcga_brca" / "pam50_gene_expression.csv"
    df = read_expression(path)
    assert df.shape == (1093, 50)
    assert df.index.str.match(r"^TCGA-[A-Z0-9]{2}-[A-Z0-9]{4}$").all()
    present, missing = panel_genes(df, "pam50", min_present=50)
    assert missing == [] and len(present) == 50
    hist2rna = load_panel(shared_data / "tcga_brca" / "gene_combined_list.txt")
    assert hist2rna == load_panel("hist2rna138")


def test_uuid_named_fpkm_uq_folder_with_sample_sheet_and_gtf_in_a_bulk_config(tmp_path):
    """Seed 000's expression: legacy FPKM-UQ files named by UUID in per-file folders; the
    GDC sample sheet names their samples and a GTF their genes, so a symbol panel matches."""
    from histoexpr.bulk.data import read_targets
    from histoexpr.config import BulkConfig

    d = tmp_path / "gdc"
    for i, uuid in enumerate(["0a1b", "9f8e"]):
        (d / uuid).mkdir(parents=True)
        with gzip.open(d / uuid / f"{uuid}.FPKM-UQ.txt.gz", "wt") as fh:
            fh.write(f"ENSG00000000003.13\t{100 * (i + 1)}\nENSG00000000005.5\t{i}\n")
    gtf = tmp_path / "genes.gtf"
    gtf.write_text('chrX\tH\tgene\t1\t9\t.\t-\t.\tgene_id "ENSG00000000003.15"; '
                   'gene_name "TSPAN6";\nchrX\tH\tgene\t1\t9\t.\t+\t.\tgene_id '
                   '"ENSG00000000005.6"; gene_name "TNMD";\n')
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text("File ID\tFile Name\tSample ID\n"
                     "x\t0a1b.FPKM-UQ.txt.gz\tTCGA-BR-0001-01A\n"
                     "y\t9f8e.FPKM-UQ.txt.gz\tTCGA-BR-0002-01A, TCGA-BR-0002-01B\n")
    cfg = BulkConfig.resolve(features="f", expression=str(d), gtf=str(gtf),
                             sample_sheet=str(sheet), genes="TSPAN6,TNMD", transform="none")
    y, choice = read_targets(cfg)
    assert y.index.tolist() == ["TCGA-BR-0001-01A", "TCGA-BR-0002-01A"]
    assert y.loc["TCGA-BR-0002-01A", "TSPAN6"] == 200 and choice.genes == ["TSPAN6", "TNMD"]
    sheet.write_text("File ID\tFile Name\tSample ID\nx\t0a1b.FPKM-UQ.txt.gz\tTCGA-BR-0001-01A\n")
    with pytest.raises(InputError, match=r"1 of 2 file.*not in the sample sheet.*9f8e"):
        read_targets(cfg)
