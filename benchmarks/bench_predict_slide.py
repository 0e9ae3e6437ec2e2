"""Benchmark ``histoexpr predict-slide``: seconds per stage on a real slide, against the
embedding stage alone in the same process.

A small spatial run is fitted on synthetic sections (two sections of 4 x 4 spots, ridge,
``efficientnet_lite0`` with its real ImageNet weights, 112 µm / 224 px patches, i.e. the
model works at 0.5 µm/px), then :func:`histoexpr.st.predict_slide.predict_slide` maps
``../shared/data/wsi/CMU-1-Small-Region.svs`` (a 20x crop). Printed: seconds per stage
(tissue, tiles, embed, predict, write), tiles/s, and the baseline — :func:`histoexpr.features.
extract.embed` alone (what ``histoexpr embed`` runs per slide) on the same tiles — with the
ratio total / baseline (the overhead of everything but the embedding). Exits 0 with a note
when the slide is absent.

Usage::

    .venv/bin/python benchmarks/bench_predict_slide.py [--device cpu|cuda] [--stride 224]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HISTOEXPR_SHARED_DATA", REPO.parent / "shared" / "data"))
CMU_SMALL = SHARED_DATA / "wsi" / "CMU-1-Small-Region.svs"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--stride", type=int, default=None, help="grid step in model pixels")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--slide", type=Path, default=CMU_SMALL)
    args = ap.parse_args(argv)
    if not args.slide.is_file():
        print(f"skipped: {args.slide} not found")
        return 0
    import torch

    from histoexpr.config import STConfig
    from histoexpr.datasets.synthetic_st import synthetic_st
    from histoexpr.features import build_encoder
    from histoexpr.features.extract import embed
    from histoexpr.slide import open_slide
    from histoexpr.st import fit_run
    from histoexpr.st.predict_slide import predict_slide

    tmp = Path(tempfile.mkdtemp(prefix="bench_ps_"))
    s = synthetic_st(tmp / "syn", n_sections=2, n_patients=2, grid=(4, 4), n_genes=20,
                     n_signal=5, seed=0)
    (tmp / "sections.json").write_text(json.dumps(s.specs))
    cfg = STConfig.resolve(context=0, scales=(),  # the probe alone
                           data=[str(tmp / "sections.json")], encoder="efficientnet_lite0",
                           genes="top10", k=2, split="section", baselines=(), model="ridge",
                           device=args.device)
    t = time.perf_counter()
    run = fit_run(cfg, tmp / "run", maps=False)
    print(f"fitted the run in {time.perf_counter() - t:.1f} s")

    cpu0 = time.process_time()
    res = predict_slide(args.slide, run.path, out=tmp / "pred", device=args.device,
                        batch_size=args.batch_size, stride=args.stride, quiet=True)
    cpu = time.process_time() - cpu0
    n = res.n_tiles
    total = sum(res.stages.values())

    coords = res.adata.obs[["x", "y"]].to_numpy()
    enc = build_encoder("efficientnet_lite0")
    with open_slide(args.slide) as sl:
        t = time.perf_counter()
        embed(sl, coords, enc, size_px=224, mpp=0.5, batch_size=args.batch_size,
              device=args.device)
        base = time.perf_counter() - t

    dev = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor()
    print(f"\nslide {args.slide.name}: {n} tiles of 224 px at 0.5 µm/px, device {args.device} "
          f"({dev or platform.machine()}), torch threads {torch.get_num_threads()}, "
          f"{os.cpu_count()} cores")
    print(f"{'stage':<10}{'seconds':>10}{'share':>8}")
    for k, v in res.stages.items():
        print(f"{k:<10}{v:>10.2f}{v / total:>8.0%}")
    print(f"{'total':<10}{total:>10.2f}   {n / total:.1f} tiles/s, CPU time {cpu:.1f} s")
    print(f"{'baseline':<10}{base:>10.2f}   embed() alone on the same tiles, "
          f"{n / base:.1f} tiles/s")
    print(f"ratio total / baseline: {total / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
