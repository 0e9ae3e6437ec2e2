"""The workflows called from Python, as a notebook would: typed arguments, in-memory tables,
result objects (the CLI tests cover the same jobs through ``histoexpr``)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from histoexpr.errors import InputError
from histoexpr.tiling import TileSpec, load_coords
from histoexpr.workflows import (
    EmbedCohortResult,
    StudyResult,
    SurvivalResult,
    TileCohortResult,
    cheong_study,
    clinical_study,
    embed_cohort,
    survival_study,
    tile_cohort,
)


def test_tile_cohort_tiles_resumes_and_summarises_a_bad_slide(synthetic_tiff, tmp_path):
    bad = tmp_path / "broken.svs"
    bad.write_text("not a slide")
    out = tmp_path / "tiles"
    res = tile_cohort([bad, synthetic_tiff], out=out, specs=[TileSpec(256, 0.5)],
                      filters="white", progress=False)
    assert isinstance(res, TileCohortResult) and res.n_slides == 2
    assert res.record == out / "run.json" and [s for s, _ in res.failed] == ["broken"]
    assert res.coords == [out / "256px_0.5mpp" / "synthetic.h5"]
    coords, attrs = load_coords(res.coords[0])
    tab = res.table.set_index("slide")
    assert tab.loc["synthetic", "n_tiles"] == len(coords) > 0 and attrs["patch_size"] == 256
    assert tab.loc["synthetic", "status"] == "done" and tab.loc["broken", "status"] == "failed"
    assert (out / "256px_0.5mpp" / "qc" / "synthetic.png").is_file()
    record = json.loads(res.record.read_text())
    assert record["status"] == "finished with failures"
    assert record["settings"]["filters"] == ["white"] and record["settings"]["qc"] is True
    # a rerun resumes: nothing is redone
    again = tile_cohort([synthetic_tiff], out=out, specs=TileSpec(256, 0.5), progress=False)
    assert [o.status for o in again.outcomes] == ["done before"] and not again.failed


def test_tile_cohort_checks_its_arguments_before_any_work(synthetic_tiff, tmp_path):
    out = tmp_path / "tiles"
    with pytest.raises(InputError, match="unknown --filter"):
        tile_cohort([synthetic_tiff], out=out, filters=["blur"])
    with pytest.raises(InputError, match="not both"):
        tile_cohort([synthetic_tiff], out=out, spots=tmp_path, heatmap=tmp_path)
    assert not out.exists()


def test_embed_cohort_embeds_resumes_and_summarises_a_bad_slide(synthetic_tiff, tmp_path):
    pytest.importorskip("torch")
    from histoexpr.features import load_features

    tiles = tile_cohort([synthetic_tiff], out=tmp_path / "tiles", specs=TileSpec(256, 0.5),
                        qc=False, progress=False)
    out = tmp_path / "feats"
    missing = tmp_path / "missing.tif"
    res = embed_cohort([synthetic_tiff, missing], coords=tiles.out / "256px_0.5mpp",
                       encoder="toy", batch_size=8, out=out)
    assert isinstance(res, EmbedCohortResult) and not res.on_dask and res.n_slides == 2
    assert res.counts == {"done": 1, "skipped": 0, "failed": 1}
    assert [s for s, _ in res.failed] == ["missing"] and "histoexpr tile" in res.failed[0][1]
    assert res.features == [out / "synthetic.h5"]
    coords, feats, attrs = load_features(res.features[0])
    assert feats.shape == (len(coords), 16) and attrs["encoder"]["name"] == "toy"
    tab = res.table.set_index("name")
    assert tab.loc["synthetic", "n_tiles"] == len(coords)
    # a rerun resumes: nothing is redone
    again = embed_cohort([synthetic_tiff], coords=tiles.out / "256px_0.5mpp", encoder="toy",
                         out=out)
    assert [r.status for r in again.results] == ["done before"] and not again.failed
    # settings are checked before any work
    one = [synthetic_tiff]
    for slides, kwargs, msg in ((one, {"weights": tmp_path / "w.pth", "random_init": True},
                                 "not both"),
                                ([], {}, "no slides"),
                                (one, {"workers": 2}, "need --manifest"),
                                (one, {"stain": "macenko"}, "--stain-target")):
        with pytest.raises(InputError, match=msg):
            embed_cohort(slides, coords=tiles.out / "256px_0.5mpp", out=tmp_path / "f2",
                         encoder="toy", **kwargs)
    assert not (tmp_path / "f2").exists()


@pytest.fixture(scope="module")
def cohort():
    """Patients x genes expression (in memory) and a clinical table linked to it."""
    from histoexpr.datasets.synthetic_clinical import synthetic_clinical

    rng = np.random.default_rng(3)
    e = pd.DataFrame(rng.lognormal(2, 1, (150, 4)), columns=["ESR1", "MKI67", "PGR", "SFRP4"],
                     index=[f"P{i:03d}" for i in range(150)])
    syn = synthetic_clinical(e, survival_gene="MKI67", er_gene="ESR1", ki67_gene="MKI67",
                             grade_gene="PGR", subtype_genes=("ESR1", "PGR"))
    return np.log1p(e), syn.table


def test_survival_study_from_dataframes(cohort, tmp_path):
    expr, clin = cohort
    res = survival_study(expr, clinical=clin, time="OS_MONTHS", event="OS_STATUS",
                         score="MKI67", covariates=["AGE:55", "STAGE"], out=tmp_path / "s")
    assert isinstance(res, SurvivalResult) and res.primary == "MKI67_group"
    assert {p.name for p in res.files} >= {"cox_univariate.csv", "table1.csv", "km.png"}
    assert all(p.is_file() for p in res.files)
    uni = res["cox_univariate"].set_index("term")
    assert uni.loc["MKI67", "comparison"] == "per SD" and uni.loc["MKI67", "p"] < 1e-3
    assert res.summary["logrank_p"]["MKI67_group"] < 1e-2
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "s" / "km_medians.csv"),
                                  res["km_medians"].reset_index(drop=True),
                                  check_dtype=False)
    rec = json.loads((tmp_path / "s" / "analysis.json").read_text())
    assert rec == json.loads(json.dumps(res.record))
    assert rec["inputs"] == {}  # in-memory tables: nothing to checksum
    with pytest.raises(KeyError, match="no table 'nope'"):
        res["nope"]


def test_clinical_and_cheong_studies_take_typed_options(cohort, tmp_path):
    expr, clin = cohort
    res = clinical_study(expr, clinical=clin, genes=["ESR1", "PGR"],
                         groups=["ER_STATUS", ("GRADE", ["1", "2", "3"])],
                         correlate=[("MKI67", "KI67_PERCENT")], out=tmp_path / "c")
    assert isinstance(res, StudyResult)
    er = res["groups_ER_STATUS"].set_index("gene")
    assert er.loc["ESR1", "q"] < 1e-3
    assert res["correlations"]["r"].iloc[0] > 0.5
    with pytest.raises(InputError, match="nothing to do"):
        clinical_study(expr, clinical=clin, out=tmp_path / "x")
    e = expr.rename(columns={"ESR1": "GZMB", "PGR": "WARS", "MKI67": "CDX1"})
    ch = cheong_study(e, clinical=clin, time="OS_MONTHS", event="OS_STATUS",
                      out=tmp_path / "ch")
    sizes = ch["cheong_group_sizes"].set_index("group")["n"]
    assert sizes.sum() == len(e) and abs(sizes["immune"] - 0.13 * len(e)) <= 1
    assert "cheong_group" in ch.summary["survival"]["logrank_p"]


def test_clinical_study_reads_genes_with_the_one_gene_grammar(cohort, tmp_path, capsys):
    from histoexpr.cli import main

    expr, clin = cohort
    panel = tmp_path / "panel.txt"
    panel.write_text("ESR1\nPGR\nFOXA1\n")
    res = clinical_study(expr, clinical=clin, genes=str(panel), groups=["ER_STATUS"],
                         out=tmp_path / "c")
    assert list(res["groups_ER_STATUS"]["gene"]) == ["ESR1", "PGR"]
    assert res.summary["genes_missing"] == ["FOXA1"] and res.record["params"]["genes"] == [
        "ESR1", "PGR"]
    assert any("FOXA1" in n for n in res.notes)
    for spec, needles in (("top50", ("data-driven", "fits no model", "--genes ESR1")),
                          ("hvg10", ("data-driven",)), ("all", ("every gene",)),
                          ("ESR1,NOPE", ("expression:", "NOPE")),
                          ("pam50", ("expression:", "at least half"))):
        with pytest.raises(InputError) as e:
            clinical_study(expr, clinical=clin, genes=spec, groups=["ER_STATUS"],
                           out=tmp_path / spec)
        assert all(n in str(e.value) for n in needles), str(e.value)
        assert not (tmp_path / spec).exists()
    # the command line: one line naming the form and the fix
    expr.rename_axis("patient").to_csv(tmp_path / "expr.csv")
    clin.rename_axis("patient_id").to_csv(tmp_path / "clin.csv")
    rc = main(["analyze", "clinical", "--expression", str(tmp_path / "expr.csv"), "--clinical",
               str(tmp_path / "clin.csv"), "--genes", "top10", "--group", "ER_STATUS",
               "--out", str(tmp_path / "cli")])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: --genes top10:"), err


def test_subtype_classifier_parameters_are_declared():
    from histoexpr.clinical.subtypes import make_voting_classifier
    from histoexpr.workflows.subtype import CLASSIFIER_PARAMS, classifier_params

    values = {"n_estimators": 5, "hidden_layer_sizes": (3,), "alpha": 1e-3,
              "learning_rate_init": 1e-2, "max_iter": 10, "C": 0.5, "weights": [1, 1, 1, 1]}
    assert set(values) == set(CLASSIFIER_PARAMS)
    make_voting_classifier(random_state=0, **values)  # every declared name is accepted
    assert classifier_params({"C": 2.0}) == {"C": 2.0}
    with pytest.raises(InputError, match=r"not a voting-classifier parameter.*--seed"):
        classifier_params({"random_state": 1})
