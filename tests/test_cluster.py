"""Feature extraction on Dask: a LocalCluster over three synthetic slides with two workers,
a running cluster through ``--scheduler``, and a worker killed in the middle of a slide."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("distributed")

from histoexpr.cli import main
from histoexpr.datasets.synthetic import synthetic_he, write_pyramidal_tiff
from histoexpr.features import load_features
from histoexpr.features.jobs import EncoderSpec, embed_on_dask, read_manifest
from histoexpr.slide import open_slide, slide_checksum
from histoexpr.tiling import TileSpec, save_coords, tile_slide


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """Three slides with coordinates and a manifest; ``c`` has many tiles so it runs long."""
    root = tmp_path_factory.mktemp("batch")
    for i, name in enumerate("abc"):
        s = synthetic_he(768, 512, mpp=0.5, seed=10 + i)
        path = write_pyramidal_tiff(root / f"{name}.tif", s.rgb, mpp=0.5, compression="zlib")
        with open_slide(path) as slide:
            res = tile_slide(slide, TileSpec(32, 0.5))
            coords = res.coords
            if name == "c":  # every 8 px: thousands of tiles, a second of work in small batches
                yy, xx = np.mgrid[0:480:8, 0:736:8]
                coords = np.c_[xx.ravel(), yy.ravel()]
            attrs = res.attrs(slide, checksum=slide_checksum(slide))
            save_coords(root / "coords" / f"{name}.h5", coords, attrs)
    (root / "slides.csv").write_text("slide,coords\na.tif,coords/a.h5\nb.tif,coords/b.h5\n"
                                     "c.tif,coords/c.h5\n")
    return root


def test_manifest_on_a_running_cluster_then_rerun_skips(batch, tmp_path, capsys):
    from distributed import LocalCluster

    out = tmp_path / "feats"
    args = ["embed", "--manifest", str(batch / "slides.csv"), "--encoder", "toy", "--out",
            str(out), "--batch-size", "256"]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        assert main([*args, "--scheduler", cluster.scheduler_address]) == 0
        assert "done 3 · skipped 0 · failed 0" in capsys.readouterr().out
        assert main([*args, "--scheduler", cluster.scheduler_address]) == 0
        assert "done 0 · skipped 3 · failed 0" in capsys.readouterr().out
    for name in "abc":
        coords, feats, attrs = load_features(out / f"{name}.h5")
        assert feats.shape == (len(coords), 16) and attrs["encoder"]["name"] == "toy"


def _kill_when_locked(lock, killed: dict, timeout=120.0, times: int = 1):
    """SIGKILL the worker holding ``lock``, ``times`` different workers in turn."""
    t_end = time.monotonic() + timeout
    killed.setdefault("pids", [])
    while time.monotonic() < t_end and len(killed["pids"]) < times:
        try:
            owner = lock.read_text().strip()
        except OSError:
            owner = ""
        pid = owner.rpartition(":")[2]
        if pid.isdigit() and int(pid) not in killed["pids"]:
            killed["pid"] = int(pid)
            killed["pids"].append(int(pid))
            try:
                os.kill(killed["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.005)


def test_a_worker_dying_mid_slide_is_retried_once_on_another_worker(batch, tmp_path):
    out = tmp_path / "feats"
    jobs = read_manifest(batch / "slides.csv", out)
    killed: dict = {}
    killer = threading.Thread(target=_kill_when_locked, args=(out / "c.h5.lock", killed))
    killer.start()
    results = {r.name: r for r in embed_on_dask(jobs, EncoderSpec("toy"), workers=2,
                                                batch_size=4)}
    killer.join()
    assert killed["pids"], "the slide never started"
    assert {r.status for r in results.values()} == {"done"}
    assert str(killed["pid"]) not in results["c"].where  # the retry ran elsewhere
    coords, feats, _ = load_features(out / "c.h5")
    assert feats.shape == (len(coords), 16) and np.isfinite(feats).all()


def test_a_worker_dying_twice_fails_that_slide_and_a_rerun_finishes_it(batch, tmp_path):
    out = tmp_path / "feats"
    jobs = read_manifest(batch / "slides.csv", out)
    killed: dict = {}
    killer = threading.Thread(target=_kill_when_locked, args=(out / "c.h5.lock", killed),
                              kwargs={"times": 2})
    killer.start()
    results = embed_on_dask(jobs, EncoderSpec("toy"), workers=2, batch_size=4)
    killer.join()
    by = {r.name: r for r in results}
    assert killed, "the slide never started"
    assert len(killed["pids"]) == 2
    assert by["c"].status == "failed" and "again on its retry" in by["c"].message
    assert by["a"].status == by["b"].status == "done"
    assert not (out / "c.h5").exists() and not list(out.glob(".*tmp"))
    # the dead worker's lock is taken over; finished slides are not redone
    again = {r.name: r.status for r in embed_on_dask(jobs, EncoderSpec("toy"), workers=2,
                                                     batch_size=256)}
    assert again == {"a": "done before", "b": "done before", "c": "done"}
    coords, feats, _ = load_features(out / "c.h5")
    assert feats.shape == (len(coords), 16) and np.isfinite(feats).all()


def test_bad_slide_in_a_manifest_fails_alone(batch, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"slide,coords\n{batch / 'a.tif'},{batch / 'coords/a.h5'}\n"
                        f"{batch / 'b.tif'},{batch / 'coords/a.h5'}\n")
    res = {r.name: r for r in embed_on_dask(read_manifest(manifest, tmp_path / "f"),
                                            EncoderSpec("toy"), workers=1)}
    assert res["a"].status == "done"
    assert res["b"].status == "failed" and "checksum differs" in res["b"].message


def test_manifest_paths_defaults_and_errors(tmp_path):
    from histoexpr.errors import InputError

    m = tmp_path / "m.csv"
    m.write_text("Slide,slide_mpp\nsub/x.svs,\ny.jpg,0.25\n")
    jobs = read_manifest(m, tmp_path / "out", coords_dir=tmp_path / "tiles", slide_mpp=0.5)
    assert [j.slide for j in jobs] == [tmp_path / "sub/x.svs", tmp_path / "y.jpg"]
    assert [j.coords for j in jobs] == [tmp_path / "tiles/x.h5", tmp_path / "tiles/y.h5"]
    assert [j.slide_mpp for j in jobs] == [0.5, 0.25] and jobs[0].out == tmp_path / "out/x.h5"
    for text, msg in [("path\na.svs\n", "needs a `slide` column"),
                      ("slide,slide_mpp\na.svs,abc\n", "line 2: slide_mpp 'abc'"),
                      ("slide\na/s.svs\nb/s.svs\n", "would both write s.h5"),
                      ("slide\n", "lists no slides")]:
        m.write_text(text)
        with pytest.raises(InputError, match=msg):
            read_manifest(m, tmp_path, coords_dir=tmp_path)
    m.write_text("slide\na.svs\n")
    with pytest.raises(InputError, match="pass --coords DIR"):
        read_manifest(m, tmp_path)


@pytest.mark.parametrize("argv, msg", [
    (["embed", "--out", "o"], "no slides"),
    (["embed", "s.svs", "--out", "o", "--workers", "2"], "need --manifest"),
])
def test_embed_cli_argument_errors(capsys, argv, msg):
    assert main(argv) == 2
    assert msg in capsys.readouterr().err


def test_tile_from_a_manifest_on_two_local_workers_matches_tiling_in_process(batch, tmp_path,
                                                                            capsys):
    """tile --manifest: one Dask task per slide (the K-means filter fitted on the first
    slide first), the same coordinates as an in-process run, the worker in run.json; a
    missing slide fails alone and a rerun skips the slides done."""
    import json

    from histoexpr.tiling import load_coords

    man = tmp_path / "slides.csv"
    man.write_text(f"slide\n{batch / 'a.tif'}\n{batch / 'b.tif'}\n{batch / 'gone.tif'}\n")
    common = ["--tile-size", "32", "--mpp", "0.5", "--filter", "white,kmeans"]
    assert main(["-q", "tile", str(batch / "a.tif"), str(batch / "b.tif"), "--out",
                 str(tmp_path / "here"), *common]) == 0
    rc = main(["-q", "tile", "--manifest", str(man), "--workers", "2", "--out",
               str(tmp_path / "dask"), *common])
    assert rc == 2  # one of three slides failed
    rec = json.loads((tmp_path / "dask" / "run.json").read_text())
    status = {o["slide"]: o["status"] for o in rec["slides"]}
    assert status == {"a": "done", "b": "done", "gone": "failed"}
    assert any(o["where"].startswith("worker") for o in rec["slides"] if o["slide"] == "b")
    for name in "ab":
        here, _ = load_coords(tmp_path / "here" / "32px_0.5mpp" / f"{name}.h5")
        there, _ = load_coords(tmp_path / "dask" / "32px_0.5mpp" / f"{name}.h5")
        assert len(here) > 0 and np.array_equal(here, there)
    man.write_text(f"slide\n{batch / 'a.tif'}\n{batch / 'b.tif'}\n")
    assert main(["-q", "tile", "--manifest", str(man), "--workers", "2", "--out",
                 str(tmp_path / "dask"), *common]) == 0
    rec = json.loads((tmp_path / "dask" / "run.json").read_text())
    assert {o["status"] for o in rec["slides"]} == {"done before"}
    capsys.readouterr()
    assert main(["-q", "tile", str(batch / "a.tif"), "--workers", "2", "--out",
                 str(tmp_path / "x")]) == 2
    assert "need --manifest" in capsys.readouterr().err


def _square(item, *, fail_on):
    from histoexpr.runner import ItemResult

    if item == fail_on:
        return ItemResult(str(item), "failed", message="bad input")
    return ItemResult(str(item), "done" if item % 2 else "done before", n=item * item)


@pytest.mark.parametrize("on_dask", [False, True])
def test_run_cohort_keeps_input_order_and_records_every_item(tmp_path, on_dask):
    import json

    from histoexpr.runner import run_cohort

    items = [5, 2, 7, 4]
    out = tmp_path / "out"
    res = run_cohort(items, _square, names=[str(i) for i in items], out=out, command="sq",
                     on_dask=on_dask, workers=2 if on_dask else None, record={"k": 1},
                     fail_on=7)
    assert [r.name for r in res] == ["5", "2", "7", "4"]
    assert [r.status for r in res] == ["done", "done before", "failed", "done before"]
    rec = json.loads((out / "run.json").read_text())
    assert rec["counts"] == {"done": 1, "done before": 2, "failed": 1} and rec["k"] == 1
    assert rec["on_dask"] is on_dask and [i["n"] for i in rec["items"]] == [25, 4, 0, 16]
    assert all(i["where"].startswith("worker") == on_dask for i in rec["items"])
