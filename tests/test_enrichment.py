"""Gene-set enrichment: GMT files, the hypergeometric test against scipy/Fisher/statsmodels,
a planted set found and a random one not, size filters counted, gseapy's prerank wrapped."""

from __future__ import annotations

import gzip
import logging
import sys
import types

import numpy as np
import pandas as pd
import pytest
from scipy.stats import fisher_exact, hypergeom
from statsmodels.stats.multitest import multipletests

from histoexpr.analysis.enrichment import (
    ENRICHMENT_COLUMNS,
    PRERANK_COLUMNS,
    hypergeometric_enrichment,
    prerank_enrichment,
    read_gmt,
    write_gmt,
)
from histoexpr.errors import InputError

UNIVERSE = [f"GENE{i:04d}" for i in range(2000)]


@pytest.fixture(scope="module")
def planted():
    """A 40-gene set of which the list holds 30, 30 random 40-gene sets, and a list of 50
    genes (the 30 planted + 20 random others) in a 2,000-gene universe."""
    rng = np.random.default_rng(0)
    perm = rng.permutation(UNIVERSE)
    sets = {"PLANTED": list(perm[:40])}
    for i in range(30):
        sets[f"RANDOM_{i:02d}"] = list(rng.choice(UNIVERSE, 40, replace=False))
    genes = list(perm[:30]) + list(perm[40:60])
    return genes, sets, hypergeometric_enrichment(genes, sets, universe=UNIVERSE)


# -- GMT ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sets.gmt", "sets.gmt.gz"])
def test_gmt_round_trip(tmp_path, name):
    sets = {"HALLMARK_A": ["ESR1", "PGR", "Gata3"], "B set": ["MKI67"]}
    p = write_gmt(tmp_path / name, sets, descriptions={"B set": "proliferation"})
    assert read_gmt(p) == sets
    opener = gzip.open if name.endswith(".gz") else open
    with opener(p, "rt") as f:
        assert f.read().splitlines()[1] == "B set\tproliferation\tMKI67"


def test_gmt_strips_keeps_case_dedupes_and_skips_blank_lines(tmp_path):
    p = tmp_path / "x.gmt"
    p.write_text(" S1 \turl\t esr1\tESR1\t\tesr1\r\n\n\nS2\t\tA\tB\t\n")
    assert read_gmt(p) == {"S1": ["esr1", "ESR1"], "S2": ["A", "B"]}


@pytest.mark.parametrize(("text", "match"), [
    ("S1 desc A B C\n", r"line 1: expected name<TAB>description<TAB>genes"),
    ("S1\tdesc\tA\n\tdesc\tB\n", r"line 2: empty gene-set name"),
    ("S1\tdesc\tA\nS2\t\tB\nS1\tagain\tC\n", r"line 3: gene set 'S1' is repeated .*line 1"),
    ("S1\tdesc\tA\nS2\tdesc\t \t\n", r"line 2: gene set 'S2' lists no genes"),
    ("S1\tdesc\n", r"line 1: expected"),
    ("\n\n", r"holds no gene set"),
])
def test_gmt_malformed_lines_name_file_and_line(tmp_path, text, match):
    p = tmp_path / "bad.gmt"
    p.write_text(text)
    with pytest.raises(InputError, match=r"bad\.gmt.*" + match if "line" in match else match):
        read_gmt(p)


def test_gmt_missing_or_binary_file(tmp_path):
    with pytest.raises(InputError, match="no such gene-set file"):
        read_gmt(tmp_path / "nope.gmt")
    p = tmp_path / "bin.gmt"
    p.write_bytes(b"\xff\xfe\x00\x81\tx\ty\n")
    with pytest.raises(InputError, match="not a text GMT"):
        read_gmt(p)
    with pytest.raises(InputError, match="at least one gene"):
        write_gmt(tmp_path / "w.gmt", {"S": []})


# -- over-representation --------------------------------------------------------------------
def test_planted_set_is_found_and_random_sets_are_not(planted):
    _, _, res = planted
    assert list(res.columns) == list(ENRICHMENT_COLUMNS)
    top = res.iloc[0]
    assert top["gene_set"] == "PLANTED"
    assert (top["size"], top["overlap"]) == (40, 30)
    assert top["expected"] == pytest.approx(50 * 40 / 2000)
    assert top["fold"] == pytest.approx(30 / 1.0)
    assert top["p"] < 1e-40 and top["q"] < 1e-38
    rand = res[res["gene_set"] != "PLANTED"]
    assert len(rand) == 30 and rand["q"].median() > 0.5
    assert (rand["q"] < 0.05).sum() <= 1  # chance overlaps only (BH controls the FDR)
    assert res.set_index("gene_set").loc["RANDOM_00", "q"] > 0.5
    assert res["p"].is_monotonic_increasing
    assert res.attrs["n_tested"] == 31 and res.attrs["n_genes"] == 50


def test_p_equals_scipy_hypergeom_and_one_sided_fisher(planted):
    genes, sets, res = planted
    n_univ, listed = len(UNIVERSE), set(genes)
    for _, row in res.head(6).iterrows():
        s = set(sets[row["gene_set"]])
        k, size, n = len(s & listed), len(s), len(listed)
        assert row["overlap"] == k
        assert row["p"] == pytest.approx(hypergeom.sf(k - 1, n_univ, size, n), rel=1e-12)
        table = [[k, n - k], [size - k, n_univ - n - size + k]]
        assert row["p"] == pytest.approx(fisher_exact(table, alternative="greater")[1],
                                         rel=1e-9)
        assert row["genes"].split(",") == [g for g in genes if g in s]  # list order


def test_q_equals_statsmodels_bh(planted):
    _, _, res = planted
    np.testing.assert_allclose(res["q"], multipletests(res["p"], method="fdr_bh")[1])


def test_size_filters_apply_after_restriction_to_the_universe_and_are_counted(caplog):
    universe = [f"G{i}" for i in range(100)]
    sets = {
        "ok": universe[:10],
        "shrinks": universe[:3] + [f"OUT{i}" for i in range(20)],  # 23 genes, 3 in universe
        "small": universe[10:14],
        "large": universe[:60],
        "edge_min": universe[20:25],
        "edge_max": universe[30:50],
    }
    with caplog.at_level(logging.INFO, logger="histoexpr.analysis.enrichment"):
        res = hypergeometric_enrichment(universe[:5], sets, universe=universe, min_size=5,
                                        max_size=20)
    assert set(res["gene_set"]) == {"ok", "edge_min", "edge_max"}
    assert (res.attrs["n_too_small"], res.attrs["n_too_large"]) == (2, 1)
    assert res.attrs["n_sets"] == 6 and res.attrs["n_tested"] == 3
    assert "2 smaller than 5 and 1 larger than 20" in caplog.text
    empty = hypergeometric_enrichment(universe[:5], {"small": universe[:3]}, universe=universe)
    assert empty.empty and list(empty.columns) == list(ENRICHMENT_COLUMNS)


def test_genes_outside_the_universe_are_dropped_and_counted(caplog):
    universe = [f"G{i}" for i in range(50)]
    with caplog.at_level(logging.WARNING, logger="histoexpr.analysis.enrichment"):
        res = hypergeometric_enrichment(["G1", "G2", "X1", "X2", "G1"], {"S": universe[:5]},
                                        universe=universe, min_size=1)
    assert res.attrs["n_genes"] == 2 and res.attrs["n_genes_dropped"] == 2
    assert "2 of 4 listed genes are not in the universe" in caplog.text
    assert res.loc[0, "expected"] == pytest.approx(2 * 5 / 50)


def test_bad_inputs_raise_clear_errors():
    universe = [f"G{i}" for i in range(50)]
    sets = {"S": universe[:10]}
    with pytest.raises(InputError, match="gene list is empty"):
        hypergeometric_enrichment([], sets, universe=universe)
    with pytest.raises(InputError, match="universe is empty"):
        hypergeometric_enrichment(["G1"], sets, universe=[])
    with pytest.raises(InputError, match="none of the 2 listed genes"):
        hypergeometric_enrichment(["ENSG1", "ENSG2"], sets, universe=universe)
    with pytest.raises(InputError, match="same identifiers"):
        hypergeometric_enrichment(["G1"], {"S": ["ENSG1", "ENSG2"]}, universe=universe)
    with pytest.raises(InputError, match="not one string"):
        hypergeometric_enrichment("G1", sets, universe=universe)
    with pytest.raises(InputError, match="min_size <= max_size"):
        hypergeometric_enrichment(["G1"], sets, universe=universe, min_size=10, max_size=5)


def test_gene_sets_may_come_from_a_gmt_file(tmp_path, planted):
    genes, sets, res = planted
    p = write_gmt(tmp_path / "s.gmt", sets)
    pd.testing.assert_frame_equal(hypergeometric_enrichment(genes, p, universe=UNIVERSE), res)


# -- pre-ranked GSEA ------------------------------------------------------------------------
def _ranking() -> tuple[pd.Series, dict[str, list[str]]]:
    rng = np.random.default_rng(1)
    genes = [f"G{i}" for i in range(300)]
    score = pd.Series(rng.normal(size=300), index=genes)
    score.iloc[:20] += 4.0  # the planted set ranks on top
    sets = {"TOP": genes[:20], "RANDOM": list(rng.choice(genes[20:], 20, replace=False))}
    return score, sets


def test_prerank_without_gseapy_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "gseapy", None)  # import gseapy -> ImportError
    score, sets = _ranking()
    with pytest.raises(InputError, match="pip install gseapy"):
        prerank_enrichment(score, sets)


def test_prerank_calls_gseapy_and_normalises_its_table(monkeypatch):
    calls = {}

    def fake_prerank(**kw):
        calls.update(kw)
        res2d = pd.DataFrame({
            "Name": ["prerank"] * 2, "Term": ["RANDOM", "TOP"], "ES": [0.2, 0.9],
            "NES": [0.8, 3.1], "NOM p-val": [0.4, 0.0], "FDR q-val": [0.4, 0.0],
            "FWER p-val": [0.6, 0.0], "Tag %": ["5/20", "18/20"], "Gene %": ["1%", "6%"],
            "Lead_genes": ["G40;G41", "G0;G1;G2"]})
        return types.SimpleNamespace(res2d=res2d)

    monkeypatch.setitem(sys.modules, "gseapy", types.SimpleNamespace(prerank=fake_prerank))
    score, sets = _ranking()
    score = pd.concat([score, pd.Series([np.nan], index=["GNAN"])])
    res = prerank_enrichment(score, sets, permutations=50, seed=3, min_size=10)
    assert list(res.columns) == list(PRERANK_COLUMNS)
    assert res["gene_set"].tolist() == ["TOP", "RANDOM"]
    assert res.loc[0, "lead_genes"] == "G0,G1,G2" and res.loc[0, "size"] == 20
    assert res.loc[0, "nes"] == pytest.approx(3.1)
    assert res.attrs["n_dropped_nan"] == 1 and res.attrs["n_ranked"] == 300
    rnk = calls["rnk"]
    assert rnk.is_monotonic_decreasing and "GNAN" not in rnk.index
    assert (calls["permutation_num"], calls["seed"], calls["min_size"]) == (50, 3, 10)
    assert calls["outdir"] is None


def test_prerank_bad_inputs():
    score, sets = _ranking()
    with pytest.raises(InputError, match="pandas Series"):
        prerank_enrichment(score.to_numpy(), sets)
    dup = pd.Series([1.0, 2.0], index=["A", "A"])
    with pytest.raises(InputError, match="more than once"):
        prerank_enrichment(dup, {"S": ["A"]})
    with pytest.raises(InputError, match="between 15 and 500"):
        prerank_enrichment(score, {"S": list(score.index[:5])})


def test_prerank_with_gseapy_finds_the_planted_set():
    pytest.importorskip("gseapy")
    score, sets = _ranking()
    res = prerank_enrichment(score, sets, permutations=100, seed=0, min_size=10)
    top = res.set_index("gene_set").loc["TOP"]
    assert top["nes"] > 1.5 and top["p"] < 0.05 and top["size"] == 20
