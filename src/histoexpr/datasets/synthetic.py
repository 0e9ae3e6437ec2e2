"""Synthetic H&E-like slides for tests, the demo and benchmarks.

The image is made the way brightfield H&E forms: optical density is a sum of stain vectors
weighted by concentrations (Beer–Lambert), then ``I = 255 exp(-OD)``. Tissue is a few smooth
blobs (eosin everywhere in them, haematoxylin in nuclei-like spots); outside is near-white
glass. The true tissue mask is returned so tissue detection can be checked against it.

:class:`StainStyle` is how one lab stained and one scanner digitised a patient's slides: its
own haematoxylin and eosin vectors, stain amounts, glass white balance and scanner response
(brightness, gamma, optical blur). Real cohorts differ in all of these from patient to
patient (site to site), so a colour that predicts expression within one patient need not
predict it in the next, while tissue morphology does. :func:`patient_stain_styles` draws one
style per patient; the generators render with one (:func:`beer_lambert_rgb`) and the
reference style reproduces the images drawn before styles existed, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["StainStyle", "SyntheticSlide", "beer_lambert_rgb", "draw_stain_style",
           "patient_stain_styles", "synthetic_he", "write_pyramidal_tiff"]

#: unit optical-density vectors (RGB) of haematoxylin and eosin (Ruifrok & Johnston)
H_VECTOR = np.array([0.650, 0.704, 0.286], np.float32)
E_VECTOR = np.array([0.072, 0.990, 0.105], np.float32)
#: transmitted intensity of bare glass (per channel) under the reference illumination
WHITE = 250.0

#: spread of each style parameter at ``strength=1`` (see :func:`draw_stain_style`)
STYLE_SPREAD = {
    "angle_rad": 0.10,  # each stain vector turned by ~6° (sd) off the reference direction
    "log_scale": 0.20,  # stain amount (concentration), log sd: ±20 % per stain
    "tint": 0.025,  # glass white balance per channel, relative sd
    "log_brightness": 0.05,  # scanner exposure, log sd
    "log_gamma": 0.10,  # scanner tone curve, log sd of the gamma
    "blur_px": 0.6,  # scanner optics: Gaussian blur sigma uniform in [0, blur_px] pixels
}


def _vec(v: np.ndarray) -> tuple[float, float, float]:
    return (float(v[0]), float(v[1]), float(v[2]))


@dataclass(frozen=True)
class StainStyle:
    """How one patient's slides were stained and scanned.

    Stained tissue absorbs ``od = h_scale c_H h_vector + e_scale c_E e_vector`` (plus the
    glass's own faint absorbance); the scanner records ``white · exp(-od)`` times
    ``brightness``, blurred by a Gaussian of ``blur_px`` pixels (optics), then raised to
    ``gamma`` on the 0–255 scale. The defaults are the reference (Ruifrok–Johnston
    vectors, unit amounts, neutral 250-grey glass, ideal scanner); images drawn with it are
    exactly those drawn without a style. The concentrations ``c_H``, ``c_E`` (and so the
    morphology) are the generator's; a style changes only how they look.

    Examples
    --------
    >>> StainStyle().is_reference, StainStyle(gamma=1.1).is_reference
    (True, False)
    """

    h_vector: tuple[float, float, float] = _vec(H_VECTOR)
    e_vector: tuple[float, float, float] = _vec(E_VECTOR)
    h_scale: float = 1.0
    e_scale: float = 1.0
    white: tuple[float, float, float] = (WHITE, WHITE, WHITE)
    brightness: float = 1.0
    gamma: float = 1.0
    blur_px: float = 0.0

    @property
    def is_reference(self) -> bool:
        """Whether this is the reference style (no stain or scanner shift)."""
        return self == StainStyle()


def _turn(v: np.ndarray, angle: float, rng: np.random.Generator) -> np.ndarray:
    """``v`` (unit) turned by ``angle`` radians towards a random orthogonal direction, kept
    non-negative (an absorbance) and unit."""
    d = rng.normal(size=3)
    d -= d.dot(v) * v
    out = np.cos(angle) * v + np.sin(angle) * d / np.linalg.norm(d)
    out = np.clip(out, 0.01, None)
    return out / np.linalg.norm(out)


def draw_stain_style(rng: np.random.Generator, strength: float = 1.0) -> StainStyle:
    """A random stain and scanner style; ``strength`` scales every shift (0: the reference).

    The spreads at ``strength=1`` are :data:`STYLE_SPREAD`: of the order seen between
    labs and scanners (stain vectors a few degrees apart, ±20 % stain amounts, a faint
    glass tint, exposure and tone-curve differences and slight optical blur). The same
    number of draws is made at every strength, so strengths differ only in size, not in
    direction.

    Examples
    --------
    >>> s = draw_stain_style(np.random.default_rng(0))
    >>> s.is_reference, draw_stain_style(np.random.default_rng(0), 0.0).is_reference
    (False, True)
    """
    if strength < 0:
        raise ValueError(f"strength must be >= 0, got {strength}")
    sp = STYLE_SPREAD
    ang = rng.normal(0, sp["angle_rad"], 2) * strength
    h_vec = _turn(H_VECTOR.astype(float) / np.linalg.norm(H_VECTOR), ang[0], rng)
    e_vec = _turn(E_VECTOR.astype(float) / np.linalg.norm(E_VECTOR), ang[1], rng)
    scale = np.exp(rng.normal(0, sp["log_scale"], 2) * strength)
    tint = 1 + rng.normal(0, sp["tint"], 3) * strength
    bright = np.exp(rng.normal(0, sp["log_brightness"]) * strength)
    gamma = np.exp(rng.normal(0, sp["log_gamma"]) * strength)
    blur = rng.uniform(0, sp["blur_px"]) * strength
    if strength == 0:
        return StainStyle()
    return StainStyle(h_vector=_vec(h_vec), e_vector=_vec(e_vec), h_scale=float(scale[0]),
                      e_scale=float(scale[1]), white=_vec(np.clip(WHITE * tint, 200, 255)),
                      brightness=float(bright), gamma=float(gamma), blur_px=float(blur))


def patient_stain_styles(n_patients: int, *, strength: float = 1.0,
                         seed: int = 0) -> list[StainStyle]:
    """One :class:`StainStyle` per patient, patient ``p`` from its own random stream
    ``(seed, p)``: no other random draw of a generator (tissue, expression) depends on them,
    and a patient's style does not depend on how many patients there are.

    Examples
    --------
    >>> a, b = patient_stain_styles(2, seed=0)
    >>> a != b, patient_stain_styles(3, seed=0)[:2] == [a, b]
    (True, True)
    """
    return [draw_stain_style(np.random.default_rng([seed, 0x57A1, p]), strength)
            for p in range(n_patients)]


def beer_lambert_rgb(conc_h: np.ndarray, conc_e: np.ndarray, rng: np.random.Generator,
                     style: StainStyle | None = None) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB from per-pixel haematoxylin and eosin concentrations.

    Adds the glass's faint absorbance (|N(0.02, 0.01)| OD per pixel, drawn from ``rng``)
    and renders with ``style`` (``None``: the reference; see :class:`StainStyle`).

    Examples
    --------
    >>> c = np.full((4, 4), 0.5, np.float32)
    >>> beer_lambert_rgb(c, c, np.random.default_rng(0)).shape
    (4, 4, 3)
    """
    ref = style is None or style.is_reference
    h_vec = H_VECTOR if ref else np.asarray(style.h_vector, np.float32) * style.h_scale
    e_vec = E_VECTOR if ref else np.asarray(style.e_vector, np.float32) * style.e_scale
    od = conc_h[..., None] * h_vec + conc_e[..., None] * e_vec
    od += np.abs(rng.normal(0.02, 0.01, od.shape[:2]).astype(np.float32))[..., None]
    if ref:
        return np.clip(WHITE * np.exp(-od), 0, 255).astype(np.uint8)
    from scipy import ndimage

    light = np.asarray(style.white, np.float32) * style.brightness * np.exp(-od)
    if style.blur_px > 0:
        light = ndimage.gaussian_filter(light, (style.blur_px, style.blur_px, 0))
    light = 255.0 * (np.clip(light, 0, 255) / 255.0) ** style.gamma
    return np.clip(light, 0, 255).astype(np.uint8)

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
        rgb[y0:y1] = beer_lambert_rgb(conc_h, conc_e, rng)
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
