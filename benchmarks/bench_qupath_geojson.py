"""The QuPath GeoJSON of a large slide (issue 22, item 3): 50,000 tiles x 250 genes
written by :func:`histoexpr.st.qupath.write_tiles_geojson` (streamed, 4 decimals) against
``json.dump`` of the whole collection (the way before), same process: wall time, file
size, peak traced memory (tracemalloc).

    python benchmarks/bench_qupath_geojson.py [--tiles 50000] [--genes 250]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tiles", type=int, default=50_000)
    ap.add_argument("--genes", type=int, default=250)
    args = ap.parse_args(argv)
    from histoexpr.st.qupath import tiles_geojson, write_tiles_geojson

    rng = np.random.default_rng(0)
    coords = rng.integers(0, 100_000, (args.tiles, 2))
    values = rng.normal(2.0, 1.5, (args.tiles, args.genes)).astype(np.float32)
    # six-character names, about an HGNC symbol's length (ERBB2, CD74, COL1A1)
    genes = [f"G{i:05d}" for i in range(args.genes)]
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for how in ("json.dump whole", "streamed"):
            path = Path(d) / f"{how.split()[0]}.geojson"
            tracemalloc.start()
            t0 = time.perf_counter()
            if how == "streamed":
                write_tiles_geojson(path, coords, 448.0, values, genes)
            else:
                path.write_text(json.dumps(tiles_geojson(coords, 448.0, values, genes)))
            wall = time.perf_counter() - t0
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            rows.append((how, wall, path.stat().st_size / 2**20, peak / 2**20))
    print(f"{args.tiles:,} tiles x {args.genes} genes")
    print(f"{'writer':<18}{'wall s':>8}{'file MB':>9}{'peak MB':>9}")
    for how, wall, size, peak in rows:
        print(f"{how:<18}{wall:>8.1f}{size:>9.0f}{peak:>9.0f}")
    print(f"streamed / whole: {rows[1][1] / rows[0][1]:.2f}x time, "
          f"{rows[1][3] / rows[0][3]:.3f}x memory")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
