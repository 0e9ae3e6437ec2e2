"""Bad inputs and faults of the fit workflows (`st fit`, `bulk fit`): every case ends in one
clear line with exit status 2, leaves nothing behind that would block the corrected command,
and a failed run is recorded as failed and rerun without --overwrite."""

from __future__ import annotations

import errno
import gzip
import json
import os
import shutil
import subprocess
import sys
import time

import pandas as pd
import pytest
from matrix import assert_clear_error, files_under

from histoexpr.datasets.synthetic_bulk import synthetic_bulk
from histoexpr.datasets.synthetic_st import synthetic_st

ST_FAST = ["--encoder", "toy", "--patch-px", "32", "--folds", "2", "--genes", "top6",
           "--baselines", "mean", "--no-maps", "-q"]


@pytest.fixture(scope="module")
def st_data(tmp_path_factory):
    """4 synthetic sections of 2 patients; ZERO has no counts anywhere, LOW counts only in
    the spots the count filter drops, HALF counts only in patient P0."""
    out = tmp_path_factory.mktemp("st")
    s = synthetic_st(out, n_sections=4, n_patients=2, grid=(5, 5), n_genes=10, n_signal=3,
                     seed=0)
    for spec in s.specs:
        path = spec["counts"]
        df = pd.read_csv(path, sep="\t", index_col=0)
        df["ZERO"] = 0
        df["LOW"] = 0
        df.loc[df.sum(axis=1) < 1000, "LOW"] = 1  # only spots below min_counts
        df["HALF"] = 50 if spec["patient"] == "P0" else 0  # constant in P1's sections
        with gzip.open(path, "wt") as f:
            df.to_csv(f, sep="\t")
    (out / "sections.json").write_text(json.dumps(s.specs))
    return out


def st_fit(cli, st_data, out, *extra):
    return cli("st", "fit", "--data", st_data / "sections.json", *ST_FAST, *extra, "--out", out)


@pytest.mark.parametrize("extra, needles", [
    (["--genes", "pam50x"], ["--genes pam50x", "not a gene in the data", "top250", "pam50"]),
    (["--genes", "topX"], ["--genes topX", "not a gene in the data", "hvg50"]),
    (["--genes", "sig0"], ["'sig0'", "did you mean SIG0?"]),
    (["--genes", "SIG0,FOO"], ["FOO", "not in the data", "check the symbols"]),
    (["--genes", "SIG0,ZERO"], ["ZERO", "in the counts but removed", "no counts in any spot"]),
    (["--genes", "SIG0,LOW"], ["LOW", "no counts in the", "min_counts 1000"]),
    (["--genes", "pam50"], ["--genes pam50", "50 not in the data"]),
    (["--genes", "genes/missing.txt"], ["no such gene list file"]),
    (["--param", "bogus=1"], ["bogus", "it takes"]),
    (["--holdout", "P9"], ["P9"]),
    (["--stain", "macenko", "--stain-target", "missing.png"], ["missing.png"]),
])
def test_st_fit_bad_argument_leaves_no_run_folder(cli, st_data, tmp_path, extra, needles):
    out = tmp_path / "run"
    res = st_fit(cli, st_data, out, *extra)
    assert_clear_error(res, *needles)
    assert files_under(out) == set()


def test_st_fit_missing_data_names_the_path(cli, tmp_path):
    res = cli("st", "fit", "--data", tmp_path / "nowhere", "--out", tmp_path / "run")
    assert_clear_error(res, "nowhere", "no such file or folder")
    assert files_under(tmp_path / "run") == set()


def test_a_panel_with_some_genes_missing_warns_and_goes_on(st_data):
    from histoexpr.errors import InputError
    from histoexpr.expression.genespec import GeneRequest

    r = GeneRequest.parse("gastric4")
    with pytest.raises(InputError, match="cannot be modelled"):
        r.check(["SIG0"])
    assert r.check(["CDX1", "GZMB", "WARS1"]) == ["CDX1", "GZMB", "WARS1"]


def test_failed_st_fit_is_recorded_and_the_corrected_command_runs(cli, st_data, tmp_path,
                                                                  monkeypatch):
    import histoexpr.st.evaluate as ev

    def crash(*a, **k):
        raise RuntimeError("simulated crash while scoring")

    out = tmp_path / "run"
    monkeypatch.setattr(ev, "evaluate_run", crash)
    res = st_fit(cli, st_data, out)
    assert res.rc == 1 and "simulated crash" in res.err
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "failed" and "simulated crash" in info["error"]
    assert not (out / "summary.csv").exists()
    monkeypatch.undo()
    # the corrected command, with other options, on the same --out: no --overwrite needed
    res = st_fit(cli, st_data, out, "--genes", "top5")
    assert res.rc == 0, res.err
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "done" and "error" not in info
    assert json.loads((out / "config.json").read_text())["genes"] == "top5"
    assert (out / "summary.csv").is_file()
    # a finished run with another config is still protected
    res = st_fit(cli, st_data, out, "--genes", "top4")
    assert_clear_error(res, "another config", "genes", "--overwrite")


def test_a_run_that_never_finished_its_first_stage_is_started_again(cli, st_data, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"genes": "top2"}))
    (out / "run.json").write_text(json.dumps({"status": "running", "format": 1,
                                              "stages": {}}))
    (out / "spots.csv").write_text("stale")
    res = st_fit(cli, st_data, out)
    assert res.rc == 0, res.err
    assert (out / "spots.csv").read_text() != "stale"


def test_json_records_are_strict(cli, st_data, tmp_path):
    """No bare NaN in any JSON a run writes (the mean predictor's r is NaN)."""
    out = tmp_path / "run"
    assert st_fit(cli, st_data, out).rc == 0
    def bare(c):
        raise AssertionError(f"bare {c} in a JSON file")

    for p in out.rglob("*.json"):
        json.loads(p.read_text(), parse_constant=bare)


def test_two_processes_on_one_run_folder(cli, st_data, tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from histoexpr.atomic import FolderLock; "
         f"FolderLock({str(out)!r}).acquire(); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        res = st_fit(cli, st_data, out)
        assert_clear_error(res, str(out), "is writing this folder now", "another --out")
        assert files_under(out) == set()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert st_fit(cli, st_data, out).rc == 0  # a killed holder never blocks a rerun


def read_only(monkeypatch, folder):
    """Make ``folder`` behave as on a read-only file system (root ignores chmod)."""
    real_open, real_mkdir = os.open, os.mkdir
    root = str(folder)

    def guard(fn):
        def inner(path, *a, **k):
            if str(path).startswith(root):
                raise OSError(errno.EROFS, "Read-only file system", str(path))
            return fn(path, *a, **k)
        return inner

    monkeypatch.setattr(os, "open", guard(real_open))
    monkeypatch.setattr(os, "mkdir", guard(real_mkdir))


def test_run_folder_on_a_read_only_path(cli, st_data, tmp_path, monkeypatch):
    out = tmp_path / "ro" / "run"
    read_only(monkeypatch, tmp_path / "ro")
    res = st_fit(cli, st_data, out)
    assert_clear_error(res, str(tmp_path / "ro"), "read-only", "--out folder you can write")


def test_duplicate_sections_name_both_folders_and_a_prefix_joins_them(cli, st_data, tmp_path):
    from histoexpr.expression.discover import read_cohort

    specs = json.loads((st_data / "sections.json").read_text())[:2]
    for name in ("a", "b"):
        for sub in ("counts", "spots", "images"):
            (tmp_path / name / sub).mkdir(parents=True)
        for s in specs:
            sec = s["section"]
            shutil.copy(s["counts"], tmp_path / name / "counts" / f"{sec}.tsv.gz")
            shutil.copy(s["spots"], tmp_path / name / "spots" / f"{sec}_selection.tsv")
            shutil.copy(s["image"], tmp_path / name / "images" / f"{sec}.jpg")
    res = cli("-q", "st", "fit", "--data", tmp_path / "a", tmp_path / "b", "--out",
              tmp_path / "r")
    assert_clear_error(res, "appears twice", str(tmp_path / "a" / "counts"),
                       str(tmp_path / "b" / "counts"), "--data NAME=PATH")
    cohort = read_cohort([tmp_path / "a", f"rep2={tmp_path / 'b'}"])
    assert cohort.obs["slide_id"].nunique() == 4
    assert {"rep2_S0", "S0"} <= set(cohort.obs["slide_id"].astype(str))


def test_negative_spot_coordinates(cli, st_data, tmp_path):
    specs = json.loads((st_data / "sections.json").read_text())
    spots = pd.read_csv(specs[0]["spots"], sep="\t")
    spots.loc[0, "pixel_x"] = -40
    bad = tmp_path / "S0_selection.tsv"
    spots.to_csv(bad, sep="\t", index=False)
    specs[0]["spots"] = str(bad)
    (tmp_path / "sections.json").write_text(json.dumps(specs))
    res = cli("st", "fit", "--data", tmp_path / "sections.json", "--out", tmp_path / "r")
    assert_clear_error(res, str(bad), "negative pixel coordinates", "x=-40")
    assert files_under(tmp_path / "r") == set()


@pytest.mark.data
def test_visium_positions_without_header_row(shared_data, tmp_path):
    from histoexpr.expression import read_visium

    folder = tmp_path / "visium"
    shutil.copytree(shared_data / "visium_mouse_embryo", folder)
    pos = folder / "spatial" / "tissue_positions.csv"
    with_header = read_visium(folder)
    pos.write_text("".join(pos.read_text().splitlines(keepends=True)[1:]))
    without = read_visium(folder)
    assert without.n_obs == with_header.n_obs
    assert (without.obs_names == with_header.obs_names).all()


# ----------------------------------------------------------------------------- bulk fit


@pytest.fixture(scope="module")
def bulk(tmp_path_factory):
    return synthetic_bulk(tmp_path_factory.mktemp("bulk"), n_slides=24, n_genes=5, n_signal=2,
                          seed=1)


def bulk_fit(cli, bulk, out, *, expression=None, genes="all", features=None):
    return cli("-q", "bulk", "fit", "--features", features or bulk.features_dir,
               "--expression", expression or bulk.expression_path, "--genes", genes,
               "--folds", "3", "--baselines", "mean", "--out", out)


def _table(bulk, tmp_path, change):
    df = pd.read_csv(bulk.expression_path, index_col=0)
    path = tmp_path / "expr.csv"
    change(df).to_csv(path)
    return path


BAD_TABLES = {
    "empty": (lambda df: df.iloc[:0, :0], ["expr.csv"]),
    "ids only": (lambda df: df.iloc[:, :0], ["expr.csv", "one column only"]),
    "duplicate samples": (lambda df: pd.concat([df, df.iloc[:2]]), ["expr.csv", "duplicate"]),
    "duplicate genes": (lambda df: pd.concat([df, df.iloc[:, :1]], axis=1),
                        ["expr.csv", "duplicate"]),
    "no slide joins": (lambda df: df.set_axis([f"X{i}" for i in range(len(df))]),
                       ["slide"]),
    "two slides": (lambda df: df.iloc[:2], ["at least 3"]),
}


@pytest.mark.parametrize("case", BAD_TABLES)
def test_bulk_fit_bad_table_leaves_nothing_and_the_fix_runs(cli, bulk, tmp_path, case):
    change, needles = BAD_TABLES[case]
    out = tmp_path / "run"
    res = bulk_fit(cli, bulk, out, expression=_table(bulk, tmp_path, change))
    assert_clear_error(res, *needles)
    assert files_under(out) == set()


def test_bulk_fit_unknown_panel_then_corrected(cli, bulk, tmp_path):
    out = tmp_path / "run"
    res = bulk_fit(cli, bulk, out, genes="pam5O")
    assert_clear_error(res, "pam5O")
    assert files_under(out) == set()
    t0 = time.perf_counter()
    assert bulk_fit(cli, bulk, out).rc == 0  # same --out, no --overwrite
    assert json.loads((out / "run.json").read_text())["status"] == "done"
    assert time.perf_counter() - t0 < 60


def test_a_gene_constant_in_the_test_spots_is_counted_and_said(cli, st_data, tmp_path):
    res = st_fit(cli, st_data, tmp_path / "run", "--genes", "SIG0,SIG1,HALF")
    assert res.rc == 0, res.err
    assert "Pearson r is undefined for 1 of 3 genes" in res.err and "HALF" in res.err
    assert "2/3" in res.out and "genes scored: k/n" in res.out
    summary = pd.read_csv(tmp_path / "run" / "summary.csv")
    ridge = summary[(summary["model"] == "ridge") & (summary["fold"] != "mean")]
    assert (ridge["n_scored"] == 2).all() and (ridge["n_genes"] == 3).all()
