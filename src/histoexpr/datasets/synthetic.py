"""Synthetic H&E-like slides for tests, the demo and benchmarks.

The image is made the way brightfield H&E forms: optical density is a sum of stain vectors
weighted by concentrations (Beer–Lambert), then ``I = 255 exp(-OD)``. Tissue is a few smooth
blobs (eosin everywhere in them, haematoxylin in nuclei-like spots); outside is near-white
glass. The true tissue mask is returned so tissue detection can be checked against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["SyntheticSlide", "synthetic_he", "write_pyramidal_tiff"]

#: unit optical-density vectors (RGB) of haematoxylin and eosin (Ruifrok & Johnston)
H_VECTOR = np.array([0.650, 0.704, 0.286], np.float32)
E_VECTOR = np.array([0.072, 0.990, 0.105], np.float32)

_LOWRES = 16  # tissue shapes are drawn on a grid this many times coarser, then upsampled


@dataclass(frozen=True)
class SyntheticSlide:
    """A generated slide: level-0 pixels and the tissue mask used to draw them."""

    rgb: np.ndarray  # (H, W, 3) uint8
    tissue: np.ndarray  # (H, W) bool, true tissue
    mpp: float


def _blob_field(h: int, w: int, rng: np.random.Generator, n_blobs: int) -> np.ndarray:
    """A smooth low-resolution field whose high values are the tissue blobs."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    field = np.zeros((h, w), np.float32)
    for _ in range(n_blobs):
        cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
        ry, rx = rng.uniform(0.10, 0.22) * h, rng.uniform(0.10, 0.22) * w
        theta = rng.uniform(0, np.pi)
        dy, dx = yy - cy, xx - cx
        u = (dx * np.cos(theta) + dy * np.sin(theta)) / rx
        v = (-dx * np.sin(theta) + dy * np.cos(theta)) / ry
        field = np.maximum(field, np.exp(-(u**2 + v**2)))
    return field


def _upsample(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(a.astype(np.float32), mode="F").resize(size, Image.BILINEAR))


def synthetic_he(
    width: int = 2048,
    height: int = 1536,
    *,
    mpp: float = 0.5,
    seed: int = 0,
    n_blobs: int = 3,
    nuclei_per_mm2: float = 3000.0,
    strip: int = 1024,
) -> SyntheticSlide:
    """Generate an H&E-like RGB image with tissue blobs and nuclei-like texture.

    Parameters
    ----------
    width, height
        Level-0 size in pixels.
    mpp
        Pixel size the texture is drawn for (nuclei are ~7 µm across at any mpp).
    seed
        Everything is reproducible from it.
    n_blobs
        Number of tissue pieces.
    nuclei_per_mm2
        Nuclear density inside tissue.
    strip
        Rows generated at a time (bounds memory for very large slides).

    Examples
    --------
    >>> s = synthetic_he(256, 192, seed=1)
    >>> s.rgb.shape, s.rgb.dtype, bool(0 < s.tissue.mean() < 1)
    ((192, 256, 3), dtype('uint8'), True)
    """
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    lh, lw = max(2, -(-height // _LOWRES)), max(2, -(-width // _LOWRES))
    field = _blob_field(lh, lw, rng, n_blobs)
    # irregular edges: perturb the field with smoothed noise before thresholding
    field += 0.25 * ndimage.gaussian_filter(rng.standard_normal((lh, lw)).astype(np.float32), 2)
    eosin_lr = 0.30 + 0.25 * ndimage.gaussian_filter(rng.random((lh, lw), np.float32), 3)
    field_full = _upsample(field, (width, height))
    eosin_full = _upsample(eosin_lr, (width, height))

    rgb = np.empty((height, width, 3), np.uint8)
    tissue = field_full > 0.5
    radius_px = 3.5 / mpp  # ~7 µm nuclei
    density_px = nuclei_per_mm2 * (mpp * 1e-3) ** 2
    pad = int(4 * radius_px) + 1
    # nuclei centres for the whole slide first, so strips join without seams
    n = rng.poisson(density_px * width * height)
    ny, nx = rng.integers(0, height, n), rng.integers(0, width, n)
    keep = tissue[ny, nx]
    ny, nx = ny[keep], nx[keep]
    sigma = radius_px / 1.5
    for y0 in range(0, height, strip):
        y1 = min(height, y0 + strip)
        ya, yb = max(0, y0 - pad), min(height, y1 + pad)  # nuclei may cross strip edges
        sel = (ny >= ya) & (ny < yb)
        imp = np.zeros((yb - ya, width), np.float32)
        np.add.at(imp, (ny[sel] - ya, nx[sel]), 1.0)
        nuc = ndimage.gaussian_filter(imp, sigma) * (2 * np.pi * sigma**2)
        nuc = np.clip(nuc * 1.2, 0, 1.0)[y0 - ya : y1 - ya]
        tt = tissue[y0:y1]
        conc_h = (0.08 + 0.9 * nuc) * tt
        conc_e = eosin_full[y0:y1] * tt * (1 - 0.5 * nuc)
        od = conc_h[..., None] * H_VECTOR + conc_e[..., None] * E_VECTOR
        od += np.abs(rng.normal(0.02, 0.01, od.shape[:2]).astype(np.float32))[..., None]
        rgb[y0:y1] = np.clip(250.0 * np.exp(-od), 0, 255).astype(np.uint8)
    return SyntheticSlide(rgb=rgb, tissue=tissue, mpp=mpp)


def write_pyramidal_tiff(
    path: str | Path,
    rgb: np.ndarray,
    *,
    mpp: float,
    downsamples: tuple[int, ...] = (1, 4, 16),
    tile: int = 256,
    compression: str = "jpeg",
) -> Path:
    """Write a tiled pyramidal TIFF that OpenSlide ("generic-tiff") and tiffslide read.

    Levels are successive full IFDs (reduced ones flagged with SubfileType 1), tiled, with
    the pixel size in the resolution tags (pixels per centimetre).

    Examples
    --------
    >>> import tempfile, os
    >>> p = write_pyramidal_tiff(os.path.join(tempfile.mkdtemp(), "s.tif"),
    ...                          synthetic_he(512, 512).rgb, mpp=0.5)
    >>> p.suffix
    '.tif'
    """
    import tifffile
    from PIL import Image

    path = Path(path)
    res = 1e4 / mpp  # pixels per cm
    with tifffile.TiffWriter(path, bigtiff=rgb.nbytes > 2**31) as tw:
        img = Image.fromarray(rgb)
        prev_ds = 1
        level = rgb
        for i, ds in enumerate(downsamples):
            if ds != prev_ds:
                img = img.reduce(ds // prev_ds)
                level = np.asarray(img)
                prev_ds = ds
            tw.write(
                level,
                photometric="rgb",
                tile=(tile, tile),
                compression=compression,
                subfiletype=0 if i == 0 else 1,
                resolution=(res / ds, res / ds),
                resolutionunit="CENTIMETER",
                metadata=None,
            )
    return path
