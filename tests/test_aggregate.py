from __future__ import annotations

import numpy as np
import pytest

from histoexpr.errors import InputError
from histoexpr.features.bags import pool, supertiles


def test_poolings(rng):
    f = rng.normal(size=(50, 7)).astype(np.float32)
    np.testing.assert_allclose(pool(f, "mean"), f.mean(0), rtol=1e-6)
    np.testing.assert_array_equal(pool(f, "max"), f.max(0))
    np.testing.assert_allclose(pool(f, "median"), np.median(f, 0))
    with pytest.raises(InputError, match="mean, max, median"):
        pool(f, "sum")
    with pytest.raises(InputError, match="N >= 1"):
        pool(np.zeros((0, 3)), "mean")


def test_supertiles_group_by_position(rng):
    centres = np.array([[0, 0], [5000, 0], [0, 5000]])
    coords = np.concatenate([c + rng.integers(0, 200, (30, 2)) for c in centres])
    feats = np.repeat(np.eye(3, dtype=np.float32), 30, axis=0)
    st, labels = supertiles(coords, feats, n_clusters=3)
    np.testing.assert_allclose(st, np.eye(3), atol=1e-6)  # ordered by first tile
    assert labels.tolist() == [0] * 30 + [1] * 30 + [2] * 30


def test_supertiles_with_fewer_tiles_than_clusters(rng):
    f = rng.normal(size=(5, 4)).astype(np.float32)
    st, labels = supertiles(rng.integers(0, 100, (5, 2)), f, n_clusters=100)
    np.testing.assert_array_equal(st, f)
    assert labels.tolist() == list(range(5))
    with pytest.raises(InputError, match="must match"):
        supertiles(np.zeros((3, 2)), f)
