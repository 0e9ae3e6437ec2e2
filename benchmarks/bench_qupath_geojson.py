"""The QuPath GeoJSON of a large slide (issue 22, item 3): 50,000 tiles x 250 genes
written by :func:`histoexpr.st.qupath.write_tiles_geojson` (streamed, 4 decimals, one
%-format per tile) against ``json.dumps`` of the whole collection (the way before). Each
writer runs in its own process (the same data, seeded): wall time of the write, file size,
and the process's peak RSS (``os.wait4``) beside its RSS before writing.

    python benchmarks/bench_qupath_geojson.py [--tiles 50000] [--genes 250]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WRITERS = ("json.dumps whole", "streamed")


def _data(tiles: int, genes: int):
    rng = np.random.default_rng(0)
    coords = rng.integers(0, 100_000, (tiles, 2))
    values = rng.normal(2.0, 1.5, (tiles, genes)).astype(np.float32)
    names = [f"G{i:05d}" for i in range(genes)]  # six characters, like ERBB2 or COL1A1
    return coords, values, names


def _one(writer: str, tiles: int, genes: int, path: Path) -> None:
    import resource

    from histoexpr.st.qupath import tiles_geojson, write_tiles_geojson

    coords, values, names = _data(tiles, genes)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    if writer == "streamed":
        write_tiles_geojson(path, coords, 448.0, values, names)
    else:
        path.write_text(json.dumps(tiles_geojson(coords, 448.0, values, names)))
    print(json.dumps({"wall": time.perf_counter() - t0, "before": before}))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tiles", type=int, default=50_000)
    ap.add_argument("--genes", type=int, default=250)
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--path", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        _one(args.one, args.tiles, args.genes, args.path)
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for writer in WRITERS:
            path = Path(d) / "slide.geojson"
            p = subprocess.Popen([sys.executable, __file__, "--one", writer, "--tiles",
                                  str(args.tiles), "--genes", str(args.genes), "--path",
                                  str(path)], stdout=subprocess.PIPE, text=True)
            out = p.stdout.read()
            _, status, usage = os.wait4(p.pid, 0)
            p.stdout.close()
            if status:
                raise RuntimeError(f"{writer} failed")
            rec = json.loads(out.strip().splitlines()[-1])
            rows.append((writer, rec["wall"], path.stat().st_size / 2**20,
                         rec["before"], usage.ru_maxrss / 1024))
    print(f"{args.tiles:,} tiles x {args.genes} genes")
    print(f"{'writer':<18}{'wall s':>8}{'file MB':>9}{'RSS before MB':>15}{'peak RSS MB':>13}")
    for writer, wall, size, before, peak in rows:
        print(f"{writer:<18}{wall:>8.1f}{size:>9.0f}{before:>15.0f}{peak:>13.0f}")
    w, s = rows
    print(f"streamed / whole: {s[1] / w[1]:.2f}x time, "
          f"{(s[4] - s[3]) / (w[4] - w[3]):.3f}x memory added")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
