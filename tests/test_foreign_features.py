"""TRIDENT and CLAM feature files (``coords`` + ``features`` with the geometry on the coords
dataset) read as this package's own: tile µm/px from the magnification, the encoder from
TRIDENT's ``features_<encoder>/`` folder, bags for the slide-level models."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from histoexpr.errors import InputError
from histoexpr.features.bags import load_bags
from histoexpr.features.bags.patches import tile_spec
from histoexpr.features.store import load_features, read_feature_attrs


def _trident(path, n=5, d=8, *, mag=20.0, batch_axis=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(n, d)).astype(np.float32)
    coords = (np.arange(n * 2).reshape(n, 2) * 512).astype(np.int32)
    with h5py.File(path, "w") as f:
        f.create_dataset("features", data=feats[None] if batch_axis else feats)
        c = f.create_dataset("coords", data=coords)
        c.attrs.update({"patch_size": 256, "patch_size_level0": 512, "overlap": 0,
                        "target_magnification": mag, "level0_magnification": 40.0,
                        "name": path.stem})
    return feats, coords


def test_trident_attributes_become_ours(tmp_path):
    p = tmp_path / "20x_256px_0px_overlap" / "features_uni_v1" / "S1.h5"
    feats, coords = _trident(p, batch_axis=True)
    c, f, attrs = load_features(p)
    np.testing.assert_array_equal(f, feats)  # the batch axis of 1 dropped
    np.testing.assert_array_equal(c, coords)
    assert c.dtype == np.int64
    assert attrs["format"] == "trident"
    assert attrs["encoder"] == {"name": "uni", "recorded_as": "uni_v1"}
    assert tile_spec(attrs) == (256, 0.5)  # 20x: 0.5 µm/px
    assert read_feature_attrs(p)["patch_size_level0"] == 512


def test_a_trident_folder_is_a_bag_folder(tmp_path):
    d = tmp_path / "features_conch_v1"
    for s in ("A", "B"):
        _trident(d / f"{s}.h5", n=4, d=6)
    bags = load_bags(d)
    assert bags.encoder == "conch" and [b.slide for b in bags.bags] == ["A", "B"]
    assert bags.bags[0].features.shape == (4, 6)


def test_clam_file_reads_without_a_scale_and_bad_shapes_are_named(tmp_path):
    p = tmp_path / "h5_files" / "S.h5"
    p.parent.mkdir()
    with h5py.File(p, "w") as f:
        f.create_dataset("features", data=np.zeros((3, 4), np.float32))
        c = f.create_dataset("coords", data=np.zeros((3, 2), np.int64))
        c.attrs.update({"patch_size": 256, "patch_level": 0, "downsample": [1.0, 1.0]})
    attrs = load_features(p)[2]
    assert attrs["format"] == "clam" and "tile_spec" not in attrs and "encoder" not in attrs
    with pytest.raises(InputError, match="no tile spec"):
        tile_spec(attrs, source=str(p))
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f.create_dataset("features", data=np.zeros((3, 4), np.float32))
        f.create_dataset("coords", data=np.zeros((2, 2), np.int64))
    with pytest.raises(InputError, match=r"features \(3, 4\) and coords \(2, 2\) do not pair"):
        load_features(bad)
