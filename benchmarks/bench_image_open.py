"""Benchmark opening a large plain-image section (her2st JPEG, ~9,300 x 9,900 px).

``ImageSlide`` decodes the whole image once on open. Compares, in one process, the
library's path (imagecodecs / libjpeg-turbo straight into a NumPy array) against the naive
PIL path (``Image.open().convert("RGB")`` then ``np.asarray``), and checks both give the same
pixels. Reads ``../shared/data/her2st/images``; prints a note and exits 0 when absent.

Usage::

    .venv/bin/python benchmarks/bench_image_open.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO.parent / "shared" / "data" / "her2st" / "images"
REPS = 3


def naive_open(path: Path) -> np.ndarray:
    from PIL import Image

    from histoexpr.slide.array import no_pixel_limit

    with no_pixel_limit(), Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def library_open(path: Path) -> np.ndarray:
    from histoexpr.slide import ImageSlide

    return ImageSlide(path, mpp=0.69).levels[0]


def best_of(fn, path: Path) -> tuple[float, np.ndarray]:
    best, out = float("inf"), np.empty(0)
    for _ in range(REPS):
        t0 = time.perf_counter()
        out = fn(path)
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> int:
    paths = sorted(IMAGES.glob("*.jpg"))[:3]
    if not paths:
        print(f"note: no her2st images at {IMAGES}; nothing to measure")
        return 0
    library_open(paths[0])  # warm-up: imports
    naive_open(paths[0])
    print(f"best of {REPS}; s = seconds to a decoded (H, W, 3) uint8 array")
    print("| image | size | library s | naive PIL s | speed-up | identical |")
    print("|---|---|---|---|---|---|")
    for p in paths:
        t_lib, a = best_of(library_open, p)
        t_pil, b = best_of(naive_open, p)
        print(f"| {p.name} | {a.shape[1]} x {a.shape[0]} | {t_lib:.2f} | {t_pil:.2f} | "
              f"{t_pil / t_lib:.1f}x | {np.array_equal(a, b)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
