"""Resume after any kill (issue 21, item 2): the driver of a cohort run is SIGKILLed in the
middle, and rerunning the same command finishes only what is missing, with outputs
identical to an uninterrupted run (features to the last bit on CPU)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from histoexpr.datasets.synthetic import synthetic_he, write_pyramidal_tiff
from histoexpr.features import load_features
from histoexpr.slide import open_slide, slide_checksum
from histoexpr.tiling import TileSpec, load_coords, save_coords, tile_slide

CLI = [sys.executable, "-m", "histoexpr"]
NAMES = "abcd"


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Four slides, each with dense coordinates (every 8 px: a second or so of embedding)."""
    root = tmp_path_factory.mktemp("kill")
    for i, name in enumerate(NAMES):
        s = synthetic_he(768, 512, mpp=0.5, seed=20 + i)
        path = write_pyramidal_tiff(root / f"{name}.tif", s.rgb, mpp=0.5, compression="zlib")
        with open_slide(path) as slide:
            res = tile_slide(slide, TileSpec(32, 0.5))
            yy, xx = np.mgrid[0:480:8, 0:736:8]
            save_coords(root / "coords" / f"{name}.h5", np.c_[xx.ravel(), yy.ravel()],
                        res.attrs(slide, checksum=slide_checksum(slide)))
    return root


def _kill_when(cmd: list[str], first: Path, timeout: float = 120) -> None:
    """Start ``cmd``; SIGKILL it as soon as ``first`` exists (one slide done)."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    while not first.exists():
        if p.poll() is not None:
            raise AssertionError(f"{' '.join(cmd)} ended (rc {p.returncode}) before the kill")
        if time.monotonic() - t0 > timeout:
            p.kill()
            raise AssertionError(f"{first} never appeared")
        time.sleep(0.02)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()


def test_embed_killed_mid_cohort_resumes_to_identical_features(cohort, tmp_path):
    slides = [str(cohort / f"{n}.tif") for n in NAMES]
    args = ["-q", "embed", *slides, "--coords", str(cohort / "coords"), "--encoder", "toy",
            "--batch-size", "16"]
    assert subprocess.run([*CLI, *args, "--out", str(tmp_path / "whole")]).returncode == 0
    out = tmp_path / "killed"
    _kill_when([*CLI, *args, "--out", str(out)], out / "a.h5")
    missing = [n for n in NAMES if not (out / f"{n}.h5").exists()]
    assert missing, "the run finished before the kill: the test proves nothing"
    for n in set(NAMES) - set(missing):  # what exists is whole
        assert load_features(out / f"{n}.h5")[1].shape[0] > 0
    stamps = {n: (out / f"{n}.h5").stat().st_mtime_ns for n in NAMES if n not in missing}
    assert subprocess.run([*CLI, *args, "--out", str(out)]).returncode == 0
    for n in NAMES:
        _, whole, _ = load_features(tmp_path / "whole" / f"{n}.h5")
        _, again, _ = load_features(out / f"{n}.h5")
        assert np.array_equal(whole, again), n
    assert all((out / f"{n}.h5").stat().st_mtime_ns == t for n, t in stamps.items())
    # nothing left over: no slide lock, no temporary file (the folder's lock file is the
    # uninterrupted run's too)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        p.name for p in (tmp_path / "whole").iterdir())


def test_tile_killed_mid_cohort_resumes_to_identical_coordinates(cohort, tmp_path):
    slides = [str(cohort / f"{n}.tif") for n in NAMES]
    args = ["-q", "tile", *slides, "--tile-size", "16", "--mpp", "0.5", "--filter",
            "white,kmeans"]
    assert subprocess.run([*CLI, *args, "--out", str(tmp_path / "whole")]).returncode == 0
    out = tmp_path / "killed"
    spec = "16px_0.5mpp"
    _kill_when([*CLI, *args, "--out", str(out)], out / spec / "a.h5")
    assert not (out / spec / "d.h5").exists(), "finished before the kill: proves nothing"
    assert subprocess.run([*CLI, *args, "--out", str(out)]).returncode == 0
    for n in NAMES:
        whole, _ = load_coords(tmp_path / "whole" / spec / f"{n}.h5")
        again, _ = load_coords(out / spec / f"{n}.h5")
        assert np.array_equal(whole, again), n
    assert (out / "run.json").is_file()


@pytest.mark.slow
def test_st_predict_killed_mid_cohort_resumes_to_identical_predictions(tiny_st_run, tmp_path):
    """st predict --manifest: the driver SIGKILLed after its first section; the rerun does
    the rest, leaves the first untouched, and every section equals an uninterrupted run."""
    import anndata as ad

    run, s = tiny_st_run
    spec = s.specs[0]
    names = [f"sec{i}" for i in range(3)]  # one section under three names: each a few maps
    man = tmp_path / "sections.csv"
    man.write_text("image,spots,section\n" + "".join(
        f"{spec['image']},{spec['spots']},{n}\n" for n in names))
    cmd = [*CLI, "-q", "st", "predict", str(run.path), "--manifest", str(man)]
    assert subprocess.run([*cmd, "--out", str(tmp_path / "whole")]).returncode == 0
    out = tmp_path / "killed"
    _kill_when([*cmd, "--out", str(out)], out / "sec0_predict.json")
    assert not (out / "sec2_predict.json").exists(), "finished before the kill"
    stamp = (out / "sec0_predictions.h5ad").stat().st_mtime_ns
    assert subprocess.run([*cmd, "--out", str(out)]).returncode == 0
    assert (out / "sec0_predictions.h5ad").stat().st_mtime_ns == stamp
    for n in names:
        want = ad.read_h5ad(tmp_path / "whole" / f"{n}_predictions.h5ad")
        got = ad.read_h5ad(out / f"{n}_predictions.h5ad")
        np.testing.assert_array_equal(got.X, want.X)
    assert not list(out.rglob("*.tmp*"))

