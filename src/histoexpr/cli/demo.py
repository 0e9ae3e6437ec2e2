"""``histoexpr demo --out DIR``: the pipeline on a slide it generates itself.

Writes a synthetic pyramidal TIFF (H&E-like tissue blobs, 0.5 µm/px), a tumour heatmap and
a spot table for it, then runs ``info`` and ``tile`` three ways (grid with the white and
K-means filters, heatmap-guided, spot-centred), stain-normalises a few tiles, and says where
the QC images are.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from . import add_common


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the pipeline on a generated slide", description=__doc__)
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    p.add_argument("--size", type=int, nargs=2, default=(4096, 3072), metavar=("W", "H"),
                   help="generated slide size in pixels")
    p.add_argument("--seed", type=int, default=0)
    add_common(p)
    p.set_defaults(func=run)


def make_demo_inputs(out: Path, *, size: tuple[int, int], seed: int) -> dict[str, Path]:
    """Generate the demo slide, heatmap and spot table under ``out/inputs``."""
    import pandas as pd
    from PIL import Image
    from scipy import ndimage

    from ..datasets.synthetic import synthetic_he, write_pyramidal_tiff

    inputs = out / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    w, h = size
    syn = synthetic_he(w, h, mpp=0.5, seed=seed)
    slide = write_pyramidal_tiff(inputs / "synthetic_slide.tif", syn.rgb, mpp=0.5)
    # a "tumour" heatmap: smooth probability over part of the tissue, 1/32 of the slide size
    small = np.asarray(Image.fromarray(syn.tissue.astype(np.uint8) * 255).reduce(32)) / 255.0
    yy, xx = np.mgrid[0 : small.shape[0], 0 : small.shape[1]]
    ty, tx = np.argwhere(small > 0.5).mean(axis=0)
    hot = np.exp(-((yy - ty) ** 2 + (xx - tx) ** 2) / (2 * (0.15 * small.shape[1]) ** 2))
    heat = np.clip(ndimage.gaussian_filter(small, 1) * hot * 1.3, 0, 1)
    np.save(inputs / "synthetic_slide.npy", heat)
    # spots on a 200 µm square grid (legacy ST pitch) = 400 px at 0.5 µm/px
    gx, gy = np.meshgrid(np.arange(200, w - 200, 400), np.arange(200, h - 200, 400))
    pts = np.stack([gx.ravel(), gy.ravel()], 1)
    pd.DataFrame({
        "spot_id": [f"{x}x{y}" for x, y in pts // 400],
        "x": pts[:, 0], "y": pts[:, 1],
        "in_tissue": syn.tissue[pts[:, 1], pts[:, 0]].astype(int),
    }).to_csv(inputs / "synthetic_slide.csv", index=False)
    return {"slide": slide, "heatmap": inputs / "synthetic_slide.npy",
            "spots": inputs / "synthetic_slide.csv"}


def stain_montage(slide_path: Path, coords_path: Path, out: Path, *, n: int = 8) -> Path:
    """Normalise ``n`` tiles to a reference whose stain was shifted, save before/after."""
    from ..plot import save_png
    from ..slide import open_slide
    from ..stain import get_normalizer, od_to_rgb, rgb_to_od
    from ..tiling import load_coords

    coords, attrs = load_coords(coords_path)
    with open_slide(slide_path) as slide:
        tiles = slide.read_at_mpp_batch(coords[:n], 224, float(attrs["mpp"]))
    # a reference tile from "another lab": the same tissue with a bluer, paler stain
    reference = od_to_rgb(rgb_to_od(tiles[0]) * np.array([1.1, 0.8, 0.7]))
    after = get_normalizer("vahadane").fit(reference).transform(tiles)
    rows = [np.concatenate(list(b[:, ::2, ::2]), axis=1) for b in (tiles, after)]
    return save_png(out, np.concatenate(rows, axis=0))


def run(args: argparse.Namespace) -> int:
    from . import main

    out: Path = args.out
    print(f"[1/4] generating a {args.size[0]} x {args.size[1]} synthetic slide in {out}/inputs")
    inp = make_demo_inputs(out, size=tuple(args.size), seed=args.seed)
    flags = ["--debug"] if args.debug else []
    flags += ["--quiet"] if args.quiet else []
    print("[2/5] histoexpr info")
    rc = main([*flags, "info", str(inp["slide"])])
    print("[3/5] histoexpr tile: grid in tissue, white + K-means filters")
    rc |= main([*flags, "tile", str(inp["slide"]), "--out", str(out / "grid"),
                "--tile-size", "224", "512", "--mpp", "0.5", "--filter", "white,kmeans",
                "--overwrite"])
    print("[4/5] histoexpr tile: heatmap-guided (top 10) and spot-centred (112 µm)")
    rc |= main([*flags, "tile", str(inp["slide"]), "--out", str(out / "heatmap"),
                "--heatmap", str(inp["heatmap"]), "--n-tiles", "10", "--filter", "kmeans",
                "--overwrite"])
    rc |= main([*flags, "tile", str(inp["slide"]), "--out", str(out / "spots"),
                "--spots", str(inp["spots"]), "--filter", "white", "--overwrite"])
    print("[5/5] stain: Vahadane-normalise grid tiles to a re-stained reference tile")
    montage = stain_montage(inp["slide"], out / "grid" / "224px_0.5mpp" / "synthetic_slide.h5",
                            out / "stain_montage.png")
    print(f"  before (top) / after (bottom): {montage}")
    qcs = sorted(out.glob("*/*/qc/*.png"))
    print("QC images (thumbnail, tissue outline in green, tiles in blue):")
    for q in qcs:
        print(f"  {q}")
    return rc
