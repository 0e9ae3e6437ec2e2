"""``bulk predict --manifest``: one task per slide (in process and on a 2-worker Dask
LocalCluster), predictions equal to the folder mode's, a bad slide failing alone, resume,
and bad manifests."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from histoexpr.bulk import fit_run, predict_bulk, predict_bulk_cohort
from histoexpr.config import BulkConfig
from histoexpr.datasets.synthetic_bulk import synthetic_bulk
from histoexpr.errors import InputError


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    return synthetic_bulk(tmp_path_factory.mktemp("bulkc"), n_slides=30, n_genes=4,
                          n_signal=2, seed=3)


@pytest.fixture(scope="module")
def run(syn, tmp_path_factory):
    cfg = BulkConfig.resolve(features=str(syn.features_dir),
                             expression=str(syn.expression_path), genes="all",
                             baselines=[], k=3, select="random", n_tiles=6)
    return fit_run(cfg, tmp_path_factory.mktemp("runc") / "run")


def _manifest(path, slides, **cols):
    rows = [{"slide": f"slides/{s}.svs", **{k: v[i] for k, v in cols.items()}}
            for i, s in enumerate(slides)]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_manifest_predictions_equal_the_folder_mode_and_resume(syn, run, tmp_path):
    whole = predict_bulk(run.path, syn.features_dir, out=tmp_path / "whole.csv")
    names = list(whole.index[:5])[::-1]  # manifest order, not the folder's
    man = _manifest(tmp_path / "m.csv", names)
    df, results = predict_bulk_cohort(run.path, man, out=tmp_path / "out",
                                      features=syn.features_dir, in_process=True)
    assert list(df.index) == names and [r.status for r in results] == ["done"] * 5
    pd.testing.assert_frame_equal(df, whole.loc[names], check_dtype=False, atol=1e-6)
    written = pd.read_csv(tmp_path / "out" / "predictions.csv", index_col="slide")
    assert list(written.index) == names
    # a rerun skips every slide and writes the same table
    before = (tmp_path / "out" / "predictions.csv").read_bytes()
    _, again = predict_bulk_cohort(run.path, man, out=tmp_path / "out",
                                   features=syn.features_dir, in_process=True)
    assert [r.status for r in again] == ["done before"] * 5
    assert (tmp_path / "out" / "predictions.csv").read_bytes() == before


def test_two_dask_workers_a_bad_slide_fails_alone(syn, run, tmp_path):
    from histoexpr.cli import main

    names = list(predict_bulk(run.path, syn.features_dir, out=tmp_path / "w.csv").index[:3])
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    man = _manifest(tmp_path / "m.csv", [*names, "TCGA-SY-9999-01Z-00-DX1"],
                    features=[str(syn.features_dir / f"{n}.h5") for n in names] + [str(bad)],
                    patient=["P1", "", "", ""])
    rc = main(["-q", "bulk", "predict", str(run.path), "--manifest", str(man), "--out",
               str(tmp_path / "out"), "--workers", "2"])
    assert rc == 2  # some slides failed (report_failures)
    rec = json.loads((tmp_path / "out" / "run.json").read_text())
    assert [i["status"] for i in rec["items"]] == ["done", "done", "done", "failed"]
    assert all(i["where"].startswith("worker") for i in rec["items"])
    assert "bad.h5" in rec["items"][3]["message"]
    df = pd.read_csv(tmp_path / "out" / "predictions.csv", index_col="slide",
                     keep_default_na=False)
    assert list(df.index) == names and df["patient"].iloc[0] == "P1"
    assert df["patient"].iloc[1] == names[1][:12]  # the TCGA barcode's patient
    meta = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert list(meta["failed"]) == ["TCGA-SY-9999-01Z-00-DX1"]


def test_bad_manifests_are_named(syn, run, tmp_path):
    man = _manifest(tmp_path / "m.csv", ["TCGA-SY-0000-01Z-00-DX1"])
    with pytest.raises(InputError, match="line 2: no feature file"):
        predict_bulk_cohort(run.path, man, out=tmp_path / "o", in_process=True)
    other = tmp_path / "other.csv"
    other.write_text("image\nx.svs\n")
    with pytest.raises(InputError, match="needs a `slide` column"):
        predict_bulk_cohort(run.path, other, features=syn.features_dir, in_process=True)
    missing = _manifest(tmp_path / "n.csv", ["TCGA-SY-7777-01Z-00-DX1"])
    _, res = predict_bulk_cohort(run.path, missing, out=tmp_path / "o2",
                                 features=syn.features_dir, in_process=True)
    assert res[0].status == "failed" and "run `histoexpr embed`" in res[0].message
    assert not (tmp_path / "o2").exists()  # nothing produced, nothing left


def test_a_second_run_on_the_same_folder_is_refused(syn, run, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "out"
    code = ("import sys, time; from histoexpr.atomic import FolderLock; "
            "FolderLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)")
    p = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE,
                         text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        man = _manifest(tmp_path / "m.csv", ["TCGA-SY-0000-01Z-00-DX1"])
        with pytest.raises(InputError, match=f"pid {p.pid}.*is writing this folder now"):
            predict_bulk_cohort(run.path, man, out=out, features=syn.features_dir,
                                in_process=True)
        assert not (out / "slides").exists()
    finally:
        p.kill()
        p.wait()
        p.stdout.close()
