"""QuPath GeoJSON (issue 22, item 3): streamed, every gene a measurement, level-0 squares,
NaN as null, 4 decimals, and no more bytes than the names and numbers need (50,000 tiles
x 250 genes: benchmarks/bench_qupath_geojson.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from histoexpr.st.qupath import tiles_geojson, write_tiles_geojson


def test_streamed_file_equals_the_collection_and_stays_small(tmp_path):
    rng = np.random.default_rng(0)
    n, g = 2000, 250
    coords = rng.integers(0, 100_000, (n, 2))
    values = rng.normal(2.0, 1.5, (n, g)).astype(np.float32)
    values[0, 3] = np.nan
    genes = [f"GENE{i}" for i in range(g)]
    path = write_tiles_geojson(tmp_path / "s.geojson", coords, 448.0, values, genes)
    doc = json.loads(path.read_text())
    assert doc == tiles_geojson(coords, 448.0, values, genes, decimals=4)
    first = doc["features"][0]["properties"]["measurements"]
    assert first["GENE3"] is None and list(first) == genes
    # `"NAME":-1.2345,` per value: the name, its quotes and colon, at most 8 characters of
    # number and a comma; plus about 130 bytes of square and keys per tile
    name = np.mean([len(x) for x in genes])
    per_value = (path.stat().st_size - 130 * n) / (n * g)
    assert per_value <= name + 3 + 8 + 1, f"{per_value:.1f} bytes a value"


def test_wrong_shape_is_refused(tmp_path):
    with pytest.raises(ValueError, match="3 tiles x 2 genes"):
        write_tiles_geojson(tmp_path / "x.geojson", np.zeros((3, 2)), 1.0, np.zeros((3, 3)),
                            ["A", "B"])
    assert not (tmp_path / "x.geojson").exists()
