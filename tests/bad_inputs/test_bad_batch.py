"""The bad-input and fault matrix of the batch commands (``tile``, ``embed``, ``finetune``'s
flags, encoder weights): each case asserts the exit status, the one-line message naming the
file and the fix, and what is left on disk (nothing half-written that looks finished)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from matrix import assert_clear_error, files_under

from histoexpr.atomic import FolderLock
from histoexpr.cli import main

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def slides(tmp_path_factory, synthetic_tiff) -> Path:
    """``synthetic.tif`` and ``other.tif`` (same pixels) and their 128 px coordinates in
    ``tiles/128px_0.5mpp``."""
    root = tmp_path_factory.mktemp("batch")
    shutil.copy(synthetic_tiff, root / "synthetic.tif")
    shutil.copy(synthetic_tiff, root / "other.tif")
    assert main(["-q", "tile", str(root / "synthetic.tif"), str(root / "other.tif"),
                 "--out", str(root / "tiles"), "--tile-size", "128"]) == 0
    return root


def _strict_json(path: Path):
    """Parse as every other language's parser would: bare NaN / Infinity refused."""
    def refuse(token):
        raise AssertionError(f"{path}: bare {token} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def _embed(slides: Path, out: Path, *names: str) -> list[str]:
    return ["embed", *(slides / n for n in names), "--coords", slides / "tiles/128px_0.5mpp",
            "--encoder", "toy", "--out", out]


# -- tile: failed slides, the run record, the folder a failed run leaves -------------------
def test_tile_run_where_every_slide_fails_leaves_no_folder(cli, tmp_path):
    bad = [tmp_path / "broken.svs", tmp_path / "empty.tif"]
    bad[0].write_text("not a slide")
    bad[1].write_bytes(b"")
    out = tmp_path / "tiles"
    res = cli("tile", *bad, "--out", out)
    assert res.rc == 2 and "Traceback" not in res.err
    assert "2 of 2 slides failed" in res.err and "broken:" in res.err
    assert not out.exists()  # no empty folder, no run.json that looks finished
    # one failing slide: one clear line, and still no folder
    assert_clear_error(cli("tile", bad[0], "--out", out), "broken.svs")
    assert not out.exists()


def test_tile_run_where_every_slide_fails_leaves_a_folder_as_it_was(cli, tmp_path):
    out = tmp_path / "tiles"
    out.mkdir()
    (out / "keep.txt").write_text("earlier work")
    bad = tmp_path / "broken.svs"
    bad.write_text("not a slide")
    res = cli("tile", bad, bad.with_name("missing.svs"), "--out", out)
    assert res.rc == 2 and "2 of 2 slides failed" in res.err
    assert files_under(out) == {"keep.txt"} and not (out / FolderLock.NAME).exists()


def test_tile_record_is_strict_json_with_one_slide_name_rule_and_both_timings(cli, tmp_path,
                                                                             slides):
    bad = tmp_path / "broken.svs"
    bad.write_text("not a slide")
    out = tmp_path / "tiles"
    res = cli("tile", bad, slides / "synthetic.tif", "--out", out, "--tile-size", "256")
    assert res.rc == 2 and "1 of 2 slides failed" in res.err and "broken: " in res.err
    assert "tissue s" in res.out and "tiles s" in res.out  # the table shows both
    assert "NaN" not in (out / "run.json").read_text()
    record = _strict_json(out / "run.json")
    assert record["status"] == "finished with failures" and record["n_failed"] == 1
    by = {s["slide"]: s for s in record["slides"]}
    assert set(by) == {"broken", "synthetic"}  # extensions dropped for both
    assert by["broken"]["status"] == "failed" and by["broken"]["tissue_pct"] is None
    done = by["synthetic"]
    assert done["status"] == "done" and done["tissue_seconds"] > 0
    assert done["tiles_seconds"] > 0 and done["seconds"] >= done["tissue_seconds"]
    assert files_under(out) == {"run.json", "256px_0.5mpp/synthetic.h5",
                                "256px_0.5mpp/qc/synthetic.png"}


@pytest.mark.parametrize("command", ["tile", "embed"])
def test_two_slides_with_one_name_are_refused_before_any_work(cli, tmp_path, slides, command):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        shutil.copy(slides / "synthetic.tif", tmp_path / sub / "synthetic.tif")
    out = tmp_path / "out"
    a, b = tmp_path / "a/synthetic.tif", tmp_path / "b/synthetic.tif"
    argv = (["tile", a, b, "--out", out] if command == "tile" else
            ["embed", a, b, "--coords", slides / "tiles/128px_0.5mpp", "--encoder", "toy",
             "--out", out])
    assert_clear_error(cli(*argv), str(a), str(b), "'synthetic'", "rename one")
    assert not out.exists()


@pytest.mark.parametrize("command", ["tile", "embed"])
def test_out_that_is_a_file(cli, tmp_path, slides, command):
    out = tmp_path / "out.txt"
    out.write_text("x")
    argv = (["tile", slides / "synthetic.tif", "--out", out] if command == "tile"
            else _embed(slides, out, "synthetic.tif"))
    assert_clear_error(cli(*argv), "out.txt", "not a folder", "--out")
    assert out.read_text() == "x"


# -- the output folder: read-only, or written by another process ---------------------------
def _read_only(folder: Path, monkeypatch) -> None:
    """Make ``folder`` unwritable: chmod 0o555, and as root (whom chmod does not stop) an
    ``os.open`` that answers EROFS for writes below it."""
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() != 0:
        return
    real = os.open

    def read_only_open(path, flags, *args, **kwargs):
        if str(path).startswith(str(folder)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only_open)


@pytest.mark.parametrize("command", ["tile", "embed"])
def test_read_only_out_is_one_line_before_any_work(cli, tmp_path, slides, monkeypatch, command):
    out = tmp_path / "ro"
    _read_only(out, monkeypatch)
    argv = (["tile", slides / "synthetic.tif", "--out", out] if command == "tile"
            else _embed(slides, out, "synthetic.tif"))
    try:
        assert_clear_error(cli(*argv), str(out), "cannot write", "choose an --out folder")
        assert files_under(out) == set() and not (out / FolderLock.NAME).exists()
    finally:
        out.chmod(0o755)


@pytest.fixture
def hold_folder():
    """``hold_folder(path)``: another process takes the output-folder lock and keeps it."""
    procs = []
    code = ("import sys, time; from histoexpr.atomic import FolderLock; "
            "FolderLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(120)")

    def hold(folder: Path) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE,
                             text=True)
        procs.append(p)
        assert p.stdout.readline().strip() == "held"
        return p

    yield hold
    for p in procs:
        p.kill()
        p.wait()
        p.stdout.close()


@pytest.mark.parametrize("command", ["tile", "embed"])
def test_second_process_on_one_out_folder_is_refused(cli, tmp_path, slides, hold_folder,
                                                     command):
    out = tmp_path / "out"
    holder = hold_folder(out)
    argv = (["tile", slides / "synthetic.tif", "--out", out] if command == "tile"
            else _embed(slides, out, "synthetic.tif"))
    assert_clear_error(cli(*argv), str(out), f"pid {holder.pid}", "is writing this folder now",
                       "another --out")
    assert files_under(out) == set()
    holder.kill()
    holder.wait()
    assert cli(*argv).rc == 0  # the lock dies with its process: a rerun is not blocked


# -- embed: manifests, a disk that fills, weights ------------------------------------------
@pytest.mark.parametrize("rows, needles", [
    ("synthetic.tif\nother.tif\nsynthetic.tif\n",
     ("lines 2 and 4 both list slide synthetic.tif", "delete one of the two rows")),
    ("synthetic.tif\nsub/synthetic.tif\n",
     ("lines 2 (synthetic.tif) and 3 (sub/synthetic.tif) would both write synthetic.h5",
      "rename one")),
])
def test_manifest_with_a_duplicated_slide(cli, tmp_path, slides, rows, needles):
    manifest = slides / f"m{len(rows)}.csv"
    manifest.write_text("slide\n" + rows)
    out = tmp_path / "feats"
    res = cli("embed", "--manifest", manifest, "--coords", slides / "tiles/128px_0.5mpp",
              "--encoder", "toy", "--out", out)
    assert_clear_error(res, str(manifest), *needles)
    assert not out.exists()


def test_disk_full_during_embed_keeps_finished_slides_and_a_rerun_finishes(cli, tmp_path,
                                                                          slides, monkeypatch):
    from histoexpr.features import load_features, store

    real, calls = store._write_h5, []

    def fills_up(path, *args):
        calls.append(path)
        if len(calls) == 2:  # the disk fills while the second slide is written
            Path(path).write_bytes(b"\x89HDF half a file")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, *args)

    monkeypatch.setattr(store, "_write_h5", fills_up)
    out = tmp_path / "feats"
    argv = _embed(slides, out, "synthetic.tif", "other.tif")
    assert_clear_error(cli("-q", *argv), str(out / "other.h5"), "the disk is full",
                       "free some space and rerun the same command")
    assert files_under(out) == {"synthetic.h5"}  # no temp file, no lock, no half other.h5
    assert not list(out.glob(".*")), list(out.glob(".*"))
    mtime = (out / "synthetic.h5").stat().st_mtime_ns
    monkeypatch.undo()
    res = cli(*argv)
    assert res.rc == 0 and "done 1 · skipped 1 · failed 0" in res.out
    assert (out / "synthetic.h5").stat().st_mtime_ns == mtime
    coords, feats, _ = load_features(out / "other.h5")
    assert feats.shape == (len(coords), 16)


def test_embed_run_where_every_slide_fails_leaves_no_folder(cli, tmp_path, slides):
    out = tmp_path / "feats"
    res = cli("embed", slides / "synthetic.tif", tmp_path / "missing.tif", "--coords",
              tmp_path / "nowhere", "--encoder", "toy", "--out", out)
    assert res.rc == 2 and "2 of 2 slides failed" in res.err and "run `histoexpr tile`" in res.err
    assert not out.exists()


@pytest.mark.parametrize("how", ["hub unreachable", "HF_HUB_OFFLINE"])
def test_offline_encoder_without_weights_is_one_line_naming_every_way(cli, tmp_path, slides,
                                                                      monkeypatch, how):
    from histoexpr.features.encoders import weights

    monkeypatch.delenv("HISTOEXPR_WEIGHTS", raising=False)
    monkeypatch.setattr(weights, "_hf_cache", lambda card: None)
    if how == "HF_HUB_OFFLINE":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setattr(weights, "hub_reachable", lambda: False)
    out = tmp_path / "feats"
    argv = _embed(slides, out, "synthetic.tif")
    argv[argv.index("toy")] = "resnet50"
    line = assert_clear_error(cli(*argv), "resnet50", "--weights PATH", "$HISTOEXPR_WEIGHTS",
                              "timm/resnet50.tv_in1k", "Hugging Face cache", "--random-init")
    assert ("cannot be reached" in line) == (how == "hub unreachable")
    assert not out.exists()  # refused before any work


def test_embed_random_init(cli, tmp_path, slides):
    from histoexpr.features import load_features
    from histoexpr.tiling import load_coords, save_coords

    coords, attrs = load_coords(slides / "tiles/128px_0.5mpp/synthetic.h5")
    save_coords(tmp_path / "few" / "synthetic.h5", coords[:3], attrs)  # a quick forward pass
    out = tmp_path / "feats"
    argv = ["embed", slides / "synthetic.tif", "--coords", tmp_path / "few", "--encoder",
            "efficientnet_b0", "--out", out]
    assert cli("-q", *argv, "--random-init").rc == 0
    _, feats, attrs = load_features(out / "synthetic.h5")
    assert feats.shape == (3, 1280) and attrs["encoder_weights"] == "none"
    assert_clear_error(cli(*argv, "--random-init", "--weights", tmp_path / "w.pth"),
                       "--weights or --random-init")


def test_a_rerun_sweeps_the_temporaries_a_killed_run_left(tmp_path):
    """Half-written files of a killed writer (atomic_path's hidden temporaries) are removed
    once the next batch run holds the folder; other files, hidden or not, are kept."""
    from histoexpr.atomic import atomic_path
    from histoexpr.runner import BatchOutput

    out = tmp_path / "out"
    (out / "s1").mkdir(parents=True)
    left = []
    for where, suffix in ((out, ".h5ad"), (out / "s1", "")):
        ctx = atomic_path(where / "x.h5ad", suffix=suffix)
        left.append(ctx.__enter__())  # a writer killed before its exit: the file stays
        left[-1].write_bytes(b"half")
    keep = [out / ".notes.tmp", out / "done.h5ad", out / "s1" / "a.tmp"]
    for p in keep:
        p.write_bytes(b"mine")
    with BatchOutput(out) as run:
        run.produced = True
    assert not any(p.exists() for p in left)
    assert all(p.exists() for p in keep)
