"""Benchmark the first pipeline stage: tissue detection + grid tiling + reading every tile.

Compares, in one process and on the same coordinates:

- **optimised** — :func:`histoexpr.tiling.tile_slide` (tissue on a thumbnail + grid), then
  ``slide.read_at_mpp_batch(coords, 224, mpp, workers=1)``, which reads from the coarsest
  pyramid level that is at least as fine as the target and area-resizes (single thread, so
  the ratio to naive is the pyramid's alone);
- **optimised + threads** — the same with the default thread pool (one per core, <= 4), the
  library's default;
- **naive** — what many scripts do: for every tile, ``read_region`` the tile's full level-0
  extent at level 0 and ``resize_rgb`` it to 224 px. The tissue + grid step is shared with
  the optimised path (a naive full-resolution tissue pass over a 20,000 x 15,000 slide would
  only make the baseline slower); it is timed once and added to both.

Cases: the real ``CMU-1-Small-Region.svs`` (0.499 µm/px, one level: an honest ~1x row) from
``../shared/data/wsi`` when present, and a generated 0.25 µm/px (40x) pyramidal TIFF with
levels at 1x, 4x and 16x, tiled at 0.5, 1.0 and 2.0 µm/px. The generated slide is cached
under ``--workdir`` and reused.

Reading all grid tiles with the naive path can be slow, so at most ``--n-tiles`` tiles per
case are read (a seeded random subset of the grid, the same for both methods); whole-stage
tiles/s is then extrapolated to the full grid: ``N_grid / (t_tissue_grid + N_grid / read
rate)``.

Usage::

    .venv/bin/python benchmarks/bench_tiling.py            # full run (a few minutes)
    .venv/bin/python benchmarks/bench_tiling.py --quick    # 6000 x 4500 synthetic slide
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from histoexpr.errors import TissueError
from histoexpr.slide import Slide, open_slide, resize_rgb
from histoexpr.tiling import TileSpec, tile_slide

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
CMU_SMALL = SHARED_DATA / "wsi" / "CMU-1-Small-Region.svs"

TILE_PX = 224
READER = "openslide"
SYNTH_MPP = 0.25  # 40x: tiles at 0.5 µm/px are a 2x downsample of level 0
SYNTH_DOWNSAMPLES = (1, 4, 16)
SYNTH_TILE_MPPS = (0.5, 1.0, 2.0)
WARMUP_TILES = 3
MAX_REPS = 20


@dataclass
class Row:
    case: str
    tile_mpp: float
    level: int
    level_ds: float
    n_grid: int
    n_read: int
    reps: int
    t_tissue_grid: float
    t_opt: float
    t_naive: float
    t_threads: float
    mean_abs_diff: float

    @property
    def opt_read_rate(self) -> float:
        return self.n_read * self.reps / self.t_opt

    @property
    def threads_read_rate(self) -> float:
        return self.n_read * self.reps / self.t_threads

    @property
    def naive_read_rate(self) -> float:
        return self.n_read * self.reps / self.t_naive

    def stage_rate(self, read_rate: float) -> float:
        """Whole-stage tiles/s over the full grid (tissue + grid once, then every tile)."""
        return self.n_grid / (self.t_tissue_grid + self.n_grid / read_rate)


def naive_read(slide: Slide, coords: np.ndarray, spec: TileSpec) -> np.ndarray:
    """Level-0 read of each tile's full extent, then an area resize to ``spec.size_px``."""
    size0 = spec.size_level0(slide.mpp)
    n0 = max(1, round(size0))
    if abs(n0 - size0) > 1e-6 * size0:
        n0 = math.ceil(size0)  # same whole-pixel extent read_at_mpp uses on level 0
    out = np.empty((len(coords), spec.size_px, spec.size_px, 3), np.uint8)
    for i, (x, y) in enumerate(coords):
        region = slide.read_region(int(x), int(y), n0, n0, level=0)
        out[i] = resize_rgb(region, (spec.size_px, spec.size_px))
    return out


def optimised_read(slide: Slide, coords: np.ndarray, spec: TileSpec) -> np.ndarray:
    return slide.read_at_mpp_batch(coords, spec.size_px, spec.mpp, workers=1)


def threaded_read(slide: Slide, coords: np.ndarray, spec: TileSpec) -> np.ndarray:
    return slide.read_at_mpp_batch(coords, spec.size_px, spec.mpp)


def _timed_passes(
    path: Path, read: Callable[[Slide, np.ndarray, TileSpec], np.ndarray],
    coords: np.ndarray, spec: TileSpec, reps: int,
) -> tuple[float, np.ndarray]:
    """Seconds for ``reps`` passes over ``coords``, each on a freshly opened slide (so no
    pass profits from OpenSlide's tile cache filled by an earlier one); last pass's tiles."""
    total, tiles = 0.0, np.empty(0)
    for _ in range(reps):
        with open_slide(path, reader=READER) as slide:
            t0 = time.perf_counter()
            tiles = read(slide, coords, spec)
            total += time.perf_counter() - t0
    return total, tiles


def bench_case(case: str, path: Path, tile_mpp: float, n_tiles: int, min_reads: int) -> Row:
    spec = TileSpec(TILE_PX, tile_mpp)
    with open_slide(path, reader=READER) as slide:
        # tissue + grid (shared by both methods): warm up once, then time
        tile_slide(slide, spec)
        t0 = time.perf_counter()
        result = tile_slide(slide, spec)
        t_tg = time.perf_counter() - t0
        level = slide.best_level_for_downsample(tile_mpp / slide.mpp)
        level_ds = slide.level_downsamples[level]
        coords = result.coords
        n_grid = len(coords)
        # warm-up (imports, first-call costs) on this handle, which the timed passes don't use
        optimised_read(slide, coords[:WARMUP_TILES], spec)
        naive_read(slide, coords[:WARMUP_TILES], spec)

    if n_grid > n_tiles:
        idx = np.sort(np.random.default_rng(0).choice(n_grid, n_tiles, replace=False))
        timed = coords[idx]
    else:
        timed = coords
    # small grids: repeat the pass so the timing is not a few milliseconds of noise
    reps = max(1, min(MAX_REPS, math.ceil(min_reads / len(timed))))
    t_opt, opt = _timed_passes(path, optimised_read, timed, spec, reps)
    t_naive, naive = _timed_passes(path, naive_read, timed, spec, reps)
    t_threads, threaded = _timed_passes(path, threaded_read, timed, spec, reps)
    assert np.array_equal(threaded, opt), "threaded reads must equal sequential reads"

    diff = float(np.abs(opt.astype(np.int16) - naive.astype(np.int16)).mean())
    return Row(
        case, tile_mpp, level, level_ds, n_grid, len(timed), reps, t_tg, t_opt, t_naive,
        t_threads, diff,
    )


def synthetic_slide_path(workdir: Path, width: int, height: int) -> Path:
    """The cached generated pyramidal TIFF, made on first use."""
    from histoexpr.datasets.synthetic import synthetic_he, write_pyramidal_tiff

    ds = "-".join(map(str, SYNTH_DOWNSAMPLES))
    path = workdir / f"synthetic_{width}x{height}_{SYNTH_MPP:g}mpp_ds{ds}_seed0.tif"
    if path.exists():
        print(f"reusing {path}")
        return path
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"generating {width} x {height} synthetic H&E at {SYNTH_MPP} µm/px -> {path} ...",
          flush=True)
    t0 = time.perf_counter()
    rgb = synthetic_he(width, height, mpp=SYNTH_MPP, seed=0).rgb
    tmp = path.with_name(path.name + ".tmp.tif")
    write_pyramidal_tiff(tmp, rgb, mpp=SYNTH_MPP, downsamples=SYNTH_DOWNSAMPLES, tile=256,
                         compression="jpeg")
    del rgb
    tmp.replace(path)
    print(f"  done in {time.perf_counter() - t0:.1f} s (not part of the timings)")
    return path


def format_table(rows: list[Row]) -> str:
    head = [
        "case", "tile µm/px", "level (ds)", "grid tiles", "tiles read",
        "tissue+grid s", "opt read t/s", "naive read t/s", "read ×",
        "opt stage t/s", "naive stage t/s", "stage ×", "threads read t/s", "threads ×",
        "mean |diff|",
    ]
    body = []
    for r in rows:
        opt_s, naive_s = r.stage_rate(r.opt_read_rate), r.stage_rate(r.naive_read_rate)
        body.append([
            r.case, f"{r.tile_mpp:g}", f"{r.level} ({r.level_ds:g}x)", str(r.n_grid),
            (f"{r.n_read} random" if r.n_read < r.n_grid else f"all {r.n_read}")
            + (f" x{r.reps}" if r.reps > 1 else ""),
            f"{r.t_tissue_grid:.3f}",
            f"{r.opt_read_rate:.1f}", f"{r.naive_read_rate:.1f}",
            f"{r.opt_read_rate / r.naive_read_rate:.2f}",
            f"{opt_s:.1f}", f"{naive_s:.1f}", f"{opt_s / naive_s:.2f}",
            f"{r.threads_read_rate:.1f}", f"{r.threads_read_rate / r.naive_read_rate:.2f}",
            f"{r.mean_abs_diff:.2f}",
        ])
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), sep, *(line(b) for b in body)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="6000 x 4500 synthetic slide and 100 tiles per case (fast check)")
    ap.add_argument("--workdir", type=Path, default=REPO / "bench_out",
                    help="where the generated slide is cached (default: bench_out/)")
    ap.add_argument("--n-tiles", type=int, default=None,
                    help="max tiles read per case by each method (default 300; 100 with --quick)")
    args = ap.parse_args(argv)
    n_tiles = args.n_tiles or (100 if args.quick else 300)
    min_reads = 30 if args.quick else 100
    width, height = (6000, 4500) if args.quick else (20000, 15000)

    import openslide

    print(f"machine: {platform.machine()} {platform.system()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}")
    print(f"reader: '{READER}' (openslide-python {openslide.__version__}, OpenSlide "
          f"{openslide.__library_version__}); 'opt'/'naive' read sequentially, 'threads' "
          "uses the library's default thread pool")
    t_start = time.perf_counter()

    cases: list[tuple[str, Path, tuple[float, ...]]] = []
    if CMU_SMALL.exists():
        cases.append(("CMU-1-Small-Region.svs", CMU_SMALL, (0.5,)))
    else:
        print(f"note: {CMU_SMALL} is absent; skipping the real-slide row")
    synth = synthetic_slide_path(args.workdir, width, height)
    cases.append((f"synthetic {width}x{height}", synth, SYNTH_TILE_MPPS))

    rows: list[Row] = []
    for name, path, mpps in cases:
        with open_slide(path, reader=READER) as slide:
            print(f"{name}: {slide.dimensions[0]} x {slide.dimensions[1]} px, "
                  f"{slide.mpp:.4g} µm/px, levels {[round(d, 2) for d in slide.level_downsamples]}",
                  flush=True)
        for mpp in mpps:
            try:
                rows.append(bench_case(name, path, mpp, n_tiles, min_reads))
            except TissueError as e:
                print(f"  {mpp:g} µm/px skipped: {e}", flush=True)
                continue
            print(f"  {mpp:g} µm/px done", flush=True)

    print()
    print(f"{TILE_PX} px tiles; 'read' = reading the timed tiles only; 'stage' = tissue+grid "
          "(timed once, shared) + reading all grid tiles, extrapolated from the read rate; "
          "× = optimised / naive (threads × = threaded optimised / naive); "
          "mean |diff| in grey levels (0-255) between the two methods' "
          "tiles of the last pass. xN = N passes over the same tiles, each on a freshly opened "
          "slide. t/s = tiles per second.")
    print(format_table(rows))
    print(f"\ntotal runtime {time.perf_counter() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
