"""Luminosity standardisation (StainTools ``LuminosityStandardizer``)."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .base import STAIN_NORMALISERS, StainNormalizer
from .reinhard import lab_to_rgb, rgb_to_lab

__all__ = ["LuminosityStandardizer"]


@STAIN_NORMALISERS.register("luminosity")
class LuminosityStandardizer(StainNormalizer):
    """Scale each image's CIELAB lightness so its ``percentile`` maps to white (L* = 100).

    Brightens tiles scanned darker than usual; often applied before Macenko or Vahadane.
    The method needs no reference: :meth:`fit` only checks its input and returns ``self``,
    and :meth:`transform` works without it. Computed in floating-point LAB (StainTools goes
    through OpenCV's uint8 LAB), vectorised over the batch; an all-black image is unchanged.

    Parameters
    ----------
    percentile
        Lightness percentile mapped to L* = 100 (StainTools: 95).

    Examples
    --------
    >>> import numpy as np
    >>> from histoexpr.stain import LuminosityStandardizer
    >>> dim = np.full((1, 8, 8, 3), 200, dtype=np.uint8)
    >>> LuminosityStandardizer().transform(dim)[0, 0, 0].tolist()
    [255, 255, 255]
    """

    name = "luminosity"
    requires_fit = False

    def __init__(self, *, percentile: float = 95.0) -> None:
        if not 0 < float(percentile) <= 100:
            raise InputError(f"percentile must be in (0, 100], got {percentile!r}")
        self.percentile = float(percentile)

    def _fit(self, target: np.ndarray) -> None:
        pass

    def _transform(self, batch: np.ndarray) -> np.ndarray:
        lab = rgb_to_lab(batch)
        p = np.percentile(lab[..., 0], self.percentile, axis=(1, 2))
        scale = np.where(p > 0, 100.0 / np.maximum(p, 1e-6), 1.0).astype(np.float32)
        lab[..., 0] = np.clip(lab[..., 0] * scale[:, None, None], 0.0, 100.0)
        return lab_to_rgb(lab)
