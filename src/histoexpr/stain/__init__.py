"""Stain normalisation for H&E tiles: Macenko, Vahadane, Reinhard, luminosity standardisation.

All normalisers share one interface (:class:`StainNormalizer`: ``fit(target)`` on one
``(H, W, 3)`` uint8 reference image, ``transform(batch)`` on ``(N, H, W, 3)`` or
``(H, W, 3)`` uint8, ``params()`` to save with results) and are registered in
:data:`STAIN_NORMALISERS` as ``"macenko"``, ``"vahadane"``, ``"reinhard"``, ``"luminosity"``
and ``"none"``; ``"a+b"`` chains them (:class:`StainChain`, e.g. BrST-Net's
``"luminosity+vahadane"``).

Examples
--------
>>> import numpy as np
>>> from histoexpr.stain import get_normalizer
>>> rng = np.random.default_rng(0)
>>> target = rng.integers(60, 230, (64, 64, 3), dtype=np.uint8)
>>> tiles = rng.integers(60, 230, (8, 64, 64, 3), dtype=np.uint8)
>>> norm = get_normalizer("macenko").fit(target)
>>> norm.transform(tiles).shape
(8, 64, 64, 3)
>>> sorted(norm.params())
['backend', 'method', 'reference', 'settings']
"""

from __future__ import annotations

from .base import (
    STAIN_NORMALISERS,
    IdentityNormalizer,
    StainChain,
    StainNormalizer,
    get_normalizer,
    luminosity,
    od_to_rgb,
    rgb_to_od,
)
from .luminosity_standardizer import LuminosityStandardizer
from .macenko import MacenkoNormalizer
from .reinhard import ReinhardNormalizer, lab_to_rgb, rgb_to_lab
from .vahadane import VahadaneNormalizer, fit_stain_matrix, positive_lasso_2stain

__all__ = [
    "STAIN_NORMALISERS",
    "IdentityNormalizer",
    "LuminosityStandardizer",
    "MacenkoNormalizer",
    "ReinhardNormalizer",
    "StainChain",
    "StainNormalizer",
    "VahadaneNormalizer",
    "fit_stain_matrix",
    "get_normalizer",
    "lab_to_rgb",
    "luminosity",
    "od_to_rgb",
    "positive_lasso_2stain",
    "rgb_to_lab",
    "rgb_to_od",
]
