"""H&E-like tissue whose *texture* varies while its colour statistics do not.

:func:`render_nuclei` draws hard-edged elliptical nuclei on stroma. Two per-pixel fields set
what each nucleus looks like where it lands: its **size** (equivalent radius) and its
**elongation** (axis ratio at constant area, random orientation). Centres follow a Poisson
process whose rate is scaled by the inverse nuclear area, so the expected fraction of tissue
covered by nuclei, and with it every pixel-colour statistic of a patch, is the same whatever
the size. A colour histogram therefore cannot tell big nuclei from small ones or round from
long; an image encoder that sees shape can. This is the image-to-expression signal of the
``texture`` mode of :func:`histoexpr.datasets.synthetic_st.synthetic_st` and of
:func:`signal_slide`, the demo's whole slide.

Coverage by a Poisson boolean model is ``1 - exp(-λ a)`` for rate ``λ`` and nuclear area
``a``; holding ``λ a`` fixed holds coverage fixed.

Both take a :class:`~histoexpr.datasets.synthetic.StainStyle`: the same nuclei stained and
scanned elsewhere (other stain vectors and amounts, glass tint, scanner response). The
style changes only the colours, never where the nuclei are or what shape they have.

Examples
--------
>>> import numpy as np
>>> size = np.zeros((96, 128), np.float32); size[:, 64:] = 1.5
>>> img = render_nuclei(size, np.zeros_like(size), np.full_like(size, 0.4), mpp=1.0, seed=0)
>>> img.shape, img.dtype
((96, 128, 3), dtype('uint8'))
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .synthetic import StainStyle, _blob_field, _upsample, beer_lambert_rgb

__all__ = ["SignalSlide", "latent_to_shape", "render_nuclei", "signal_slide"]

#: mean nuclear radius (µm) at size latent 0, and the log-scale per latent unit
RADIUS_UM, RADIUS_LOG_SD = 3.5, 0.25
#: log axis ratio at elongation latent 0, and its change per latent unit
ELONG_LOG_MEAN, ELONG_LOG_SD = 0.45, 0.15
#: expected fraction of tissue covered by nuclei, whatever their size
COVERAGE = 0.35


def latent_to_shape(size: np.ndarray, elong: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Equivalent radius (µm) and axis ratio (>= 1) for standardised latents (clipped to ±3)."""
    radius = RADIUS_UM * np.exp(RADIUS_LOG_SD * np.clip(size, -3, 3))
    ratio = np.exp(ELONG_LOG_MEAN + ELONG_LOG_SD * np.clip(elong, -3, 3))
    return radius, ratio


@functools.lru_cache(maxsize=20_000)
def _stamp(r_q: int, e_q: int, t_q: int) -> np.ndarray:
    """Boolean ellipse for quantised radius (0.25 px), log-ratio (0.05) and angle (15°)."""
    r, ratio, theta = r_q * 0.25, np.exp(e_q * 0.05), np.deg2rad(t_q * 15)
    a, b = r * np.sqrt(ratio), r / np.sqrt(ratio)
    half = int(np.ceil(a)) + 1
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    u = xx * np.cos(theta) + yy * np.sin(theta)
    v = -xx * np.sin(theta) + yy * np.cos(theta)
    return (u / a) ** 2 + (v / b) ** 2 <= 1.0


def render_nuclei(
    size: np.ndarray,
    elong: np.ndarray,
    eosin: np.ndarray,
    *,
    mpp: float,
    tissue: np.ndarray | None = None,
    coverage: float = COVERAGE,
    seed: int | np.random.Generator = 0,
    style: StainStyle | None = None,
) -> np.ndarray:
    """Render tissue whose nuclei follow the ``size`` and ``elong`` latent fields.

    Parameters
    ----------
    size, elong
        ``(H, W)`` standardised latents at each pixel (see :func:`latent_to_shape`).
    eosin
        ``(H, W)`` eosin concentration of the stroma (0 outside tissue is fine).
    mpp
        µm per pixel.
    tissue
        ``(H, W)`` bool; outside it the glass is left near white. Default: ``eosin > 0``.
    coverage
        Expected fraction of tissue covered by nuclei (the same for every size).
    seed
        Seed or generator.
    style
        How the tissue is stained and scanned (``None``: the reference style). It draws
        nothing from ``seed``, so the nuclei are the same in every style.

    Returns
    -------
    ``(H, W, 3)`` uint8 RGB.
    """
    rng = np.random.default_rng(seed)
    h, w = size.shape
    tissue = eosin > 0 if tissue is None else tissue
    radius_px, ratio = latent_to_shape(size, elong)
    radius_px = radius_px / mpp
    # Poisson centres by thinning: rate ∝ 1 / area, so λ·area (and coverage) is constant.
    # The area is that of the pixel stamp actually drawn, so small and thin nuclei are not
    # over- or under-drawn by rounding.
    lam0 = -np.log1p(-coverage)
    min_area = max(float(np.pi * radius_px.min() ** 2) * 0.5, 1.0)
    n = rng.poisson(lam0 / min_area * h * w)
    cy, cx = rng.integers(0, h, n), rng.integers(0, w, n)
    inside = tissue[cy, cx]
    cy, cx = cy[inside], cx[inside]
    r_q = np.maximum(np.rint(radius_px[cy, cx] / 0.25), 2).astype(int)
    e_q = np.rint(np.log(ratio[cy, cx]) / 0.05).astype(int)
    t_q = rng.integers(0, 12, len(cy))
    keys = r_q * 1_000_000 + (e_q + 500) * 100 + t_q  # one stamp per (radius, ratio, angle)
    uniq, inv = np.unique(keys, return_inverse=True)
    area = np.array([_stamp(k // 1_000_000, (k // 100) % 10_000 - 500, k % 100).sum()
                     for k in uniq.tolist()], float)[inv]
    keep = rng.random(len(cy)) < min_area / np.maximum(area, min_area)
    cy, cx, r_q, e_q, t_q = cy[keep], cx[keep], r_q[keep], e_q[keep], t_q[keep]
    nuc = np.zeros((h, w), bool)
    for y, x, rq, eq, tq in zip(cy.tolist(), cx.tolist(), r_q.tolist(), e_q.tolist(),
                                t_q.tolist()):
        s = _stamp(rq, eq, tq)
        k = s.shape[0] // 2
        y0, x0, y1, x1 = y - k, x - k, y + k + 1, x + k + 1
        sy0, sx0 = max(0, -y0), max(0, -x0)
        sy1, sx1 = s.shape[0] - max(0, y1 - h), s.shape[1] - max(0, x1 - w)
        nuc[max(0, y0):min(h, y1), max(0, x0):min(w, x1)] |= s[sy0:sy1, sx0:sx1]
    nuc &= tissue
    # concentrations with per-pixel jitter so each stain forms a broad colour mode
    jit = rng.normal(1.0, 0.12, (h, w)).astype(np.float32)
    conc_h = np.where(nuc, 0.85, 0.08).astype(np.float32) * jit * tissue
    conc_e = (eosin * np.where(nuc, 0.5, 1.0)).astype(np.float32) * tissue
    return beer_lambert_rgb(conc_h, conc_e, rng, style)


@dataclass(frozen=True)
class SignalSlide:
    """A generated whole slide whose nuclei follow smooth latent fields.

    ``size`` and ``elong`` are the standardised latents per pixel (what
    :func:`histoexpr.datasets.synthetic_st.synthetic_st` ``(signal="texture")`` ties gene
    expression to); ``tissue`` is the true mask.
    """

    rgb: np.ndarray
    tissue: np.ndarray
    size: np.ndarray
    elong: np.ndarray
    mpp: float


def _smooth_field(h: int, w: int, scale_px: float, rng: np.random.Generator) -> np.ndarray:
    """Standardised smooth random field with correlation length about ``scale_px``."""
    from scipy import ndimage

    step = max(1, int(scale_px // 4))
    lh, lw = -(-h // step) + 1, -(-w // step) + 1
    f = ndimage.gaussian_filter(rng.standard_normal((lh, lw)).astype(np.float32), 4)
    f = _upsample(f, (lw * step, lh * step))[:h, :w]
    return (f - f.mean()) / f.std()


def signal_slide(width: int = 3072, height: int = 2304, *, mpp: float = 1.0, seed: int = 0,
                 n_blobs: int = 3, scale_um: float = 600.0,
                 style: StainStyle | None = None) -> SignalSlide:
    """A slide with tissue blobs whose nuclear size and elongation vary smoothly.

    Parameters
    ----------
    width, height
        Level-0 size in pixels.
    mpp
        µm per pixel.
    seed
        Everything is reproducible from it.
    n_blobs
        Tissue pieces.
    scale_um
        Correlation length of the latent fields, in µm (a few spots across).
    style
        How the slide is stained and scanned (``None``: the reference style); the latent
        fields and the nuclei do not depend on it.

    Examples
    --------
    >>> s = signal_slide(256, 192, mpp=2.0, seed=1)
    >>> s.rgb.shape, bool(0 < s.tissue.mean() < 1), round(float(s.size.std()), 1)
    ((192, 256, 3), True, 1.0)
    """
    from scipy import ndimage

    from .synthetic import _LOWRES

    rng = np.random.default_rng(seed)
    lh, lw = max(2, -(-height // _LOWRES)), max(2, -(-width // _LOWRES))
    field = _blob_field(lh, lw, rng, n_blobs)
    field += 0.25 * ndimage.gaussian_filter(rng.standard_normal((lh, lw)).astype(np.float32), 2)
    tissue = _upsample(field, (width, height)) > 0.5
    size = _smooth_field(height, width, scale_um / mpp, rng)
    elong = _smooth_field(height, width, scale_um / mpp, rng)
    eosin = (0.40 + 0.05 * _smooth_field(height, width, 2 * scale_um / mpp, rng)) * tissue
    rgb = render_nuclei(size, elong, eosin, mpp=mpp, tissue=tissue, seed=rng, style=style)
    return SignalSlide(rgb=rgb, tissue=tissue, size=size, elong=elong, mpp=mpp)


def write_signal_slide(path: str | Path, slide: SignalSlide) -> Path:
    """Write :func:`signal_slide`'s image as a pyramidal TIFF (see ``write_pyramidal_tiff``)."""
    from .synthetic import write_pyramidal_tiff

    return write_pyramidal_tiff(path, slide.rgb, mpp=slide.mpp, downsamples=(1, 4))
