"""Giant slides in bounded memory (issue 21, item 3): wall time and peak RSS of ``info``,
``tile``, ``embed`` and ``predict-slide`` on generated JPEG TIFFs of growing size, with and
without a pyramid.

Each slide is generated once under ``--workdir`` by streaming 512 px tiles into tifffile
(generation itself never holds the image): white glass with a few elliptical tissue
regions (about 16 % of the area) of H&E-coloured texture, 0.25 µm/px (40x), JPEG
quality 85, levels at 1, 4, 16 and 64x (``pyramid``) or level 0 only (``single``, as some
scanner exports and TIFF conversions are). Every command runs in its own process, and its
peak resident memory is that process's ``ru_maxrss`` (``os.wait4``):

- ``info``: open the slide and print its levels;
- ``tile``: tissue mask, 224 px tiles at 0.5 µm/px, white and K-means filters, QC image;
- ``embed``: ``efficientnet_lite0`` features of the first ``--embed-tiles`` tiles (a
  subset: the model's time, not the slide's, dominates a full pass);
- ``predict-slide --features``: a spatial run (efficientnet_lite0 + ridge, fitted once on
  the generated demo sections) applied to those features, maps drawn over the thumbnail.

``MB / 10k tiles`` is the tile stage's peak RSS over its tile count: a bounded stage holds
the coordinates and per-tile statistics, not the slide.

    python benchmarks/bench_giant_slide.py [--sizes 20000x16000,50000x40000]
        [--kinds pyramid,single] [--embed-tiles 512] [--workdir bench_out/giant]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TILE = 512
MPP = 0.25
DOWNSAMPLES = (1, 4, 16, 64)
#: tissue ellipses (centre x, centre y, half-width, half-height) as fractions of the slide
ELLIPSES = ((0.30, 0.35, 0.16, 0.20), (0.68, 0.55, 0.14, 0.22), (0.45, 0.80, 0.10, 0.08))


def _tile_rgb(tx: int, ty: int, ds: int, w0: int, h0: int, white: np.ndarray) -> np.ndarray:
    """Tile ``(tx, ty)`` of the level ``ds`` times coarser than a ``w0 x h0`` level 0."""
    x0, y0 = tx * TILE * ds, ty * TILE * ds
    span = TILE * ds
    boxes = [(cx * w0 - rx * w0, cy * h0 - ry * h0, cx * w0 + rx * w0, cy * h0 + ry * h0)
             for cx, cy, rx, ry in ELLIPSES]
    if not any(x0 < bx1 and x0 + span > bx0 and y0 < by1 and y0 + span > by0
               for bx0, by0, bx1, by1 in boxes):
        return white
    xs = (x0 + (np.arange(TILE) + 0.5) * ds) / w0
    ys = (y0 + (np.arange(TILE) + 0.5) * ds) / h0
    gx, gy = np.meshgrid(xs, ys)
    inside = np.zeros(gx.shape, bool)
    for cx, cy, rx, ry in ELLIPSES:
        inside |= ((gx - cx) / rx) ** 2 + ((gy - cy) / ry) ** 2 <= 1
    if not inside.any():
        return white
    rng = np.random.default_rng(tx * 7919 + ty * 104729 + ds)
    base = np.array([214, 150, 190], np.float32)  # eosin pink
    tex = base + rng.normal(0, 12, (TILE, TILE, 3)).astype(np.float32)
    nuclei = rng.random((TILE // 8, TILE // 8)) < 0.25  # haematoxylin dots, 8 px cells
    nuc = np.kron(nuclei, np.ones((8, 8), bool))
    tex[nuc] = [95, 70, 150]
    out = np.where(inside[..., None], tex, 240).clip(0, 255).astype(np.uint8)
    return out


def make_slide(path: Path, w0: int, h0: int, *, pyramid: bool) -> Path:
    """Stream a JPEG TIFF of ``w0 x h0`` px at :data:`MPP` to ``path`` (kept if present)."""
    import tifffile

    if path.is_file():
        return path
    tmp = path.with_suffix(".part.tif")
    white = np.full((TILE, TILE, 3), 240, np.uint8)
    res = 1e4 / MPP
    with tifffile.TiffWriter(tmp, bigtiff=True) as tw:
        for i, ds in enumerate(DOWNSAMPLES if pyramid else (1,)):
            w, h = -(-w0 // ds), -(-h0 // ds)
            nx, ny = -(-w // TILE), -(-h // TILE)
            tiles = (_tile_rgb(tx, ty, ds, w0, h0, white) for ty in range(ny)
                     for tx in range(nx))
            tw.write(tiles, shape=(h, w, 3), dtype=np.uint8, tile=(TILE, TILE),
                     photometric="rgb", compression="jpeg", compressionargs={"level": 85},
                     resolution=(res / ds, res / ds), resolutionunit="CENTIMETER",
                     subfiletype=1 if i else 0, metadata=None)
    tmp.rename(path)
    return path


def measure(cmd: list[str]) -> tuple[float, float, str]:
    """``(wall s, peak RSS MB, stdout)`` of one command in its own process."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = p.stdout.read() if p.stdout else ""
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if p.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{out[-3000:]}")
    return wall, usage.ru_maxrss / 1024, out


def spatial_run(workdir: Path, cli: list[str]) -> Path:
    """A spatial run (efficientnet_lite0 + ridge) on generated demo sections, made once."""
    run = workdir / "st_run"
    if (run / "final").is_dir():
        return run
    data = workdir / "st_data"
    code = ("from histoexpr.datasets.synthetic_st import synthetic_st; import json, sys; "
            "s = synthetic_st(sys.argv[1], n_sections=2, n_patients=2, grid=(8, 8), seed=0); "
            "open(sys.argv[1] + '/sections.json', 'w').write(json.dumps(s.specs))")
    subprocess.run([sys.executable, "-c", code, str(data)], check=True)
    subprocess.run([*cli, "-q", "st", "fit", "--data", str(data / "sections.json"),
                    "--split", "section", "--folds", "2", "--baselines", "none",
                    "--genes", "top20", "--scales", "none", "--out", str(run)], check=True)
    # one patch size (no --scales): predict-slide then reads the embed file's features
    return run


def subset_coords(src: Path, dst: Path, n: int) -> int:
    """The first ``n`` tiles of a coordinates file, with its attributes."""
    import h5py

    dst.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        c = f["coords"][:n]
        d = g.create_dataset("coords", data=c)
        for k, v in f["coords"].attrs.items():
            d.attrs[k] = v
        for k, v in f.attrs.items():
            g.attrs[k] = v
    return len(c)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="20000x16000,50000x40000",
                    help="comma list of WIDTHxHEIGHT at 0.25 µm/px")
    ap.add_argument("--kinds", default="pyramid,single")
    ap.add_argument("--embed-tiles", type=int, default=512)
    ap.add_argument("--workdir", type=Path, default=Path("bench_out/giant"))
    args = ap.parse_args(argv)
    args.workdir = args.workdir.resolve()  # the sections list names files by full path
    args.workdir.mkdir(parents=True, exist_ok=True)
    cli = [str(Path(sys.executable).with_name("histoexpr"))]
    run = spatial_run(args.workdir, cli)
    rows = []
    for size in args.sizes.split(","):
        w0, h0 = (int(v) for v in size.lower().split("x"))
        for kind in args.kinds.split(","):
            name = f"{kind}_{w0}x{h0}"
            t0 = time.perf_counter()
            slide = make_slide(args.workdir / f"{name}.tif", w0, h0, pyramid=kind == "pyramid")
            made = time.perf_counter() - t0
            out = args.workdir / name
            shutil.rmtree(out, ignore_errors=True)
            stats = {}
            stats["info"] = measure([*cli, "info", str(slide)])
            stats["tile"] = measure([*cli, "-q", "tile", str(slide), "--out", str(out / "t"),
                                     "--tile-size", "224", "--mpp", "0.5",
                                     "--filter", "white,kmeans"])
            coords = out / "t" / "224px_0.5mpp" / f"{name}.h5"
            import h5py

            with h5py.File(coords, "r") as f:
                n_tiles = len(f["coords"])
            n_emb = subset_coords(coords, out / "sub" / f"{name}.h5", args.embed_tiles)
            stats["embed"] = measure([*cli, "-q", "embed", str(slide), "--coords",
                                      str(out / "sub"), "--encoder", "efficientnet_lite0",
                                      "--out", str(out / "e")])
            stats["predict-slide"] = measure([*cli, "-q", "predict-slide", str(slide),
                                              "--model", str(run), "--features",
                                              str(out / "e" / f"{name}.h5"), "--out",
                                              str(out / "p"), "--n-maps", "2"])
            for stage, (wall, rss, _) in stats.items():
                n = {"tile": n_tiles, "embed": n_emb, "predict-slide": n_emb}.get(stage)
                rows.append({"slide": name, "MB on disk": slide.stat().st_size / 2**20,
                             "made s": made, "stage": stage, "tiles": n or "",
                             "wall s": wall, "peak RSS MB": rss,
                             "tiles/s": n / wall if n else "",
                             "MB / 10k tiles": rss / n * 1e4 if stage == "tile" else ""})
                print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v)
                                  for k, v in rows[-1].items()}), flush=True)
    import pandas as pd

    table = pd.DataFrame(rows)
    print(f"\n{os.cpu_count()}-core machine; 224 px tiles at 0.5 µm/px; embed and "
          f"predict-slide on the first {args.embed_tiles} tiles")
    print(table.round(1).to_string(index=False))
    table.to_csv(args.workdir / "table.csv", index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
