"""What one Dask task costs beyond its work (issue 21, item 7): 1,000 tiny tasks through
:func:`histoexpr.runner.map_on_dask` (the path every cohort stage takes: one task per
slide, results in order, a callback per result) on a LocalCluster, against the same calls
in a plain loop in this process; and an estimate for a cohort from per-slide figures.

The estimate: ``slides x (per-slide seconds + overhead) / workers``, beside the storage
bound (``slides x GB per slide / read GB/s``), whichever is larger. Per-slide seconds are
``--tiles-per-slide / --tiles-per-s``: by default 15,000 tiles (a TCGA diagnostic slide at
0.5 µm/px) at 6.05 tiles/s, the efficientnet_lite0 embedding rate ``bench_giant_slide.py``
measured on this 2-core CPU; give the rate a GPU reaches (``gpu_check``) to size a GPU
cluster. The arithmetic is printed, not hidden.

    python benchmarks/bench_dask_overhead.py [--tasks 1000] [--workers 2]
        [--slides 10000] [--tiles-per-slide 15000] [--tiles-per-s 6.05]
        [--gpus 1,8,32] [--gb-per-slide 1.5] [--read-gbps 1.0]
"""

from __future__ import annotations

import argparse
import sys
import time


def tiny(i: int) -> int:
    """The task: no work, so what is measured is the scheduling."""
    return i


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--slides", type=int, default=10_000)
    ap.add_argument("--tiles-per-slide", type=float, default=15_000)
    ap.add_argument("--tiles-per-s", type=float, default=6.05,
                    help="end-to-end embedding rate of one worker")
    ap.add_argument("--gpus", default="1,8,32")
    ap.add_argument("--gb-per-slide", type=float, default=1.5)
    ap.add_argument("--read-gbps", type=float, default=1.0,
                    help="aggregate read rate of the shared storage")
    args = ap.parse_args(argv)
    from histoexpr.runner import map_on_dask

    items = list(range(args.tasks))
    t0 = time.perf_counter()
    loop = [tiny(i) for i in items]
    t_loop = time.perf_counter() - t0
    done = []
    t0 = time.perf_counter()
    out = map_on_dask(tiny, items, names=[f"t{i}" for i in items], workers=args.workers,
                      on_result=lambda i, v, k, n: done.append(k))
    t_dask = time.perf_counter() - t0
    assert out == loop and len(done) == args.tasks
    per_task = t_dask / args.tasks
    args.slide_s = args.tiles_per_slide / args.tiles_per_s
    print(f"{args.tasks} tiny tasks: plain loop {t_loop * 1e3:.2f} ms; map_on_dask on a "
          f"{args.workers}-worker LocalCluster {t_dask:.1f} s (cluster start included), "
          f"{per_task * 1e3:.1f} ms per task")
    print(f"\nestimate for {args.slides:,} slides of {args.tiles_per_slide:,.0f} tiles at "
          f"{args.tiles_per_s:g} tiles/s per worker ({args.slide_s:.0f} s each), "
          f"{args.gb_per_slide} GB each, storage {args.read_gbps} GB/s:")
    print(f"{'workers':>8} {'compute h':>10} {'storage h':>10} {'scheduler h':>12} "
          f"{'wall h':>8}  bottleneck")
    for n in (int(v) for v in args.gpus.split(",")):
        compute = args.slides * args.slide_s / n / 3600
        storage = args.slides * args.gb_per_slide / args.read_gbps / 3600
        sched = args.slides * per_task / 3600  # the scheduler hands out tasks one by one
        wall = max(compute, storage) + sched
        neck = "compute" if compute >= storage else "storage reads"
        print(f"{n:>8} {compute:>10.1f} {storage:>10.1f} {sched:>12.3f} {wall:>8.1f}  {neck}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
