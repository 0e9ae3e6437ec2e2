"""SpatialData stores of whole slides (issue 22, item 1): wall time and peak RSS of writing a
store with ``histoexpr.st.sdata_out.write_spatialdata`` (the slide read chunk by chunk into
a dask graph, written as it is read) against the plain way (the slide read whole into
memory, then ``Image2DModel.parse`` and ``SpatialData.write``), on generated JPEG TIFFs of
growing size (``bench_giant_slide.make_slide``: 0.25 µm/px, pyramidal), 1,000 tiles x 50
genes as the table. Each way runs in its own process; peak RSS is its ``ru_maxrss``.

    python benchmarks/bench_spatialdata.py [--sizes 8000x6000,16000x12000]
        [--workdir bench_out/spatialdata] [--image-mpp 0]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_giant_slide import make_slide, measure

CHILD = r"""
import sys, time, warnings
import numpy as np, pandas as pd, anndata as ad
warnings.simplefilter("ignore")
from histoexpr.st.sdata_out import require_spatialdata, write_spatialdata, _no_autoshard
sd = require_spatialdata()
how, slide, out, image_mpp = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]) or None
from histoexpr.slide import open_slide
with open_slide(slide) as s:
    w, h = s.dimensions
rng = np.random.default_rng(0)
xy = np.c_[rng.uniform(0, w, 1000), rng.uniform(0, h, 1000)]
t = ad.AnnData(X=rng.normal(size=(1000, 50)).astype(np.float32),
               obs=pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "slide_id": "s"},
                                index=[f"t{i}" for i in range(1000)]))
t0 = time.perf_counter()
if how == "streamed":
    write_spatialdata(out, t, images={"s": (slide, None)}, shape="square", size_px={"s": 448},
                      image_mpp=image_mpp)
else:  # the plain way: the whole level in memory, then the library's own parse and write
    from spatialdata.models import Image2DModel
    with open_slide(slide) as s:
        level = 0 if not image_mpp else s.best_level_for_downsample(image_mpp / s.mpp)
        lw, lh = s.level_dimensions[level]
        rgb = s.read_region(0, 0, lw, lh, level)
    from histoexpr.st.sdata_out import _scale_factors
    img = Image2DModel.parse(np.moveaxis(rgb, -1, 0), dims=("c", "y", "x"),
                             scale_factors=_scale_factors(lh, lw) or None, chunks=(3, 1024, 1024))
    with _no_autoshard():
        sd.SpatialData(images={"s_he": img}).write(out)
print(f"seconds {time.perf_counter() - t0:.2f}")
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="8000x6000,16000x12000")
    ap.add_argument("--workdir", type=Path, default=Path("bench_out/spatialdata"))
    ap.add_argument("--image-mpp", type=float, default=0.0,
                    help="store a pyramid level at this µm/px (0: level 0)")
    args = ap.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in args.sizes.split(","):
        w0, h0 = (int(v) for v in size.lower().split("x"))
        slide = make_slide(args.workdir / f"slide_{w0}x{h0}.tif", w0, h0, pyramid=True)
        got = {}
        for how in ("streamed", "whole"):
            out = args.workdir / f"{how}_{w0}x{h0}.zarr"
            shutil.rmtree(out, ignore_errors=True)
            wall, rss, _ = measure([sys.executable, "-c", CHILD, how, str(slide), str(out),
                                      str(args.image_mpp)])
            mb = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6
            got[how] = (wall, rss, mb)
            shutil.rmtree(out, ignore_errors=True)
        (ws, rs, ms), (ww, rw, _) = got["streamed"], got["whole"]
        rows.append((f"{w0} x {h0}", ws, rs, ww, rw, rw / rs, ms))
    print("| slide (px) | streamed s | streamed peak MB | whole s | whole peak MB | "
          "memory whole/streamed | store MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r[0]} | {r[1]:.1f} | {r[2]:.0f} | {r[3]:.1f} | {r[4]:.0f} | {r[5]:.2f} | "
              f"{r[6]:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
