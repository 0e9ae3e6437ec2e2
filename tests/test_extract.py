from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("torch")

from histoexpr.features import build_encoder, embed, embed_to_h5, load_features
from histoexpr.slide import open_slide
from histoexpr.stain import get_normalizer
from histoexpr.tiling import TileSpec, tile_slide


@pytest.fixture(scope="module")
def toy():
    return build_encoder("toy")


@pytest.fixture(scope="module")
def coords(synthetic_tiff):
    with open_slide(synthetic_tiff) as s:
        return tile_slide(s, TileSpec(64, 1.0)).coords[:40]


def test_embed_matches_direct_encoding_in_order(synthetic_tiff, toy, coords):
    with open_slide(synthetic_tiff) as s:
        feats = embed(s, coords, toy, size_px=64, mpp=1.0, batch_size=16)
        direct = toy(s.read_at_mpp_batch(coords, 64, 1.0))
    assert feats.shape == (len(coords), 16) and feats.dtype == np.float32
    np.testing.assert_allclose(feats, direct, rtol=1e-5, atol=1e-6)


def test_worker_processes_give_the_same_features(synthetic_tiff, toy, coords):
    with open_slide(synthetic_tiff) as s:
        a = embed(s, coords, toy, size_px=64, mpp=1.0, batch_size=8)
        b = embed(s, coords, toy, size_px=64, mpp=1.0, batch_size=8, num_workers=2)
    np.testing.assert_array_equal(a, b)


def test_prefetched_batches_give_the_features_of_reading_in_turn(synthetic_tiff, toy, coords,
                                                                   monkeypatch):
    """The default path reads batches on a background thread ahead of the network: the
    same features, bit for bit, as reading each batch in turn (with a stain normaliser),
    and the reads really run on that thread."""
    import threading

    from histoexpr.features import extract

    with open_slide(synthetic_tiff) as s:
        norm = get_normalizer("macenko").fit(s.read_at_mpp_batch(coords[:4], 64, 1.0)
                                             .reshape(-1, 64, 3))
    threads = set()
    real = extract._TileDataset.batch

    def spy(self, start, stop, **kw):
        threads.add(threading.current_thread().name)
        return real(self, start, stop, **kw)

    monkeypatch.setattr(extract._TileDataset, "batch", spy)
    with open_slide(synthetic_tiff) as s:
        ahead = embed(s, coords, toy, size_px=64, mpp=1.0, batch_size=7, stain=norm)
        in_turn = embed(s, coords, toy, size_px=64, mpp=1.0, batch_size=7, stain=norm,
                        prefetch=0)
    np.testing.assert_array_equal(ahead, in_turn)
    assert threads and all(t.startswith("histoexpr-prefetch") for t in threads)


def test_stain_normaliser_runs_in_the_loader(synthetic_tiff, toy, coords):
    norm = get_normalizer("luminosity")
    with open_slide(synthetic_tiff) as s:
        feats = embed(s, coords[:8], toy, size_px=64, mpp=1.0, stain=norm)
        tiles = norm.transform(s.read_at_mpp_batch(coords[:8], 64, 1.0))
    np.testing.assert_allclose(feats, toy(tiles), rtol=1e-5, atol=1e-6)


def test_embed_to_h5_writes_resumes_and_respects_locks(synthetic_tiff, toy, coords, tmp_path):
    out = tmp_path / "feats" / "synthetic.h5"
    with open_slide(synthetic_tiff) as s:
        path, status = embed_to_h5(out, s, coords, toy, size_px=64, mpp=1.0)
        assert status == "done"
        c, f, attrs = load_features(path)
        np.testing.assert_array_equal(c, coords)
        assert f.shape == (len(coords), 16) and attrs["encoder"]["name"] == "toy"
        assert attrs["tile_spec"] == {"size_px": 64, "mpp": 1.0}
        assert embed_to_h5(out, s, coords, toy, size_px=64, mpp=1.0)[1] == "done before"
        # a live worker's lock is respected; a dead one's is taken over
        other = tmp_path / "feats" / "other.h5"
        lock = other.with_name("other.h5.lock")
        lock.write_text(f"{os.uname().nodename}:{os.getppid()}")
        assert embed_to_h5(other, s, coords, toy, size_px=64, mpp=1.0)[1] == "locked"
        lock.write_text(f"{os.uname().nodename}:999999999")
        assert embed_to_h5(other, s, coords, toy, size_px=64, mpp=1.0)[1] == "done"
    assert not lock.exists() and not list(out.parent.glob(".*tmp"))


def test_a_run_killed_mid_slide_leaves_nothing_that_looks_done(synthetic_tiff, coords, tmp_path,
                                                               monkeypatch):
    enc = build_encoder("toy")
    calls = {"n": 0}
    real = enc.network.forward

    def dying(x):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # as if the run were killed during the second batch
        return real(x)

    monkeypatch.setattr(enc.network, "forward", dying)
    out = tmp_path / "synthetic.h5"
    with open_slide(synthetic_tiff) as s, pytest.raises(KeyboardInterrupt):
        embed_to_h5(out, s, coords, enc, size_px=64, mpp=1.0, batch_size=8)
    assert not out.exists() and not list(tmp_path.glob("*.lock"))
    monkeypatch.undo()
    with open_slide(synthetic_tiff) as s:
        assert embed_to_h5(out, s, coords, build_encoder("toy"), size_px=64, mpp=1.0,
                           batch_size=8)[1] == "done"


def test_save_features_needs_no_attrs_and_writes_strict_json_attrs(tmp_path):
    from histoexpr.features import save_features
    from histoexpr.features.store import read_feature_attrs

    p = save_features(tmp_path / "a.h5", np.zeros((2, 2)), np.ones((2, 3)))
    c, f, attrs = load_features(p)
    assert c.shape == (2, 2) and f.shape == (2, 3) and attrs == {}
    save_features(p, np.zeros((1, 2)), np.ones((1, 3)), {"m": {"r": float("nan")}, "x": None})
    assert read_feature_attrs(p) == {"m": {"r": None}}
    assert not list(tmp_path.glob(".*"))
