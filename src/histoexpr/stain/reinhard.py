"""Reinhard colour transfer (Reinhard et al. 2001) in CIELAB, fitted with ``torchstain``.

The target's per-channel LAB means and standard deviations are fitted by torchstain's numpy
``ReinhardNormalizer``. The transform is vectorised over the batch: per-image statistics are
axis reductions, and torchstain's colour conversion is re-implemented for uint8 batches
(same formulas and constants, ~5x faster). Unlike torchstain, which truncates, the output is
rounded to the nearest grey level.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import STAIN_NORMALISERS, StainNormalizer
from .macenko import _torchstain_version

__all__ = ["ReinhardNormalizer", "lab_to_rgb", "rgb_to_lab"]

# the constants of torchstain's (and scikit-image's) sRGB <-> CIELAB conversion, D65 white
_RGB2XYZ = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_WHITE = np.array([0.95047, 1.0, 1.08883])
_TO_XYZN = (_RGB2XYZ / _WHITE[:, None]).T.astype(np.float32)  # linear RGB -> XYZ / white
_FROM_XYZN = np.linalg.inv(_RGB2XYZ / _WHITE[:, None]).T.astype(np.float32)
_LINEAR = np.where(
    np.arange(256) / 255 > 0.04045,
    ((np.arange(256) / 255 + 0.055) / 1.055) ** 2.4,
    np.arange(256) / 255 / 12.92,
).astype(np.float32)

#: a channel with a smaller standard deviation is treated as constant
_MIN_STD = 1e-6


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB ``(..., 3)`` to float32 CIELAB (L* in [0, 100], a*, b* centred on 0).

    torchstain's ``rgb2lab`` formulas and constants (it returns OpenCV-scaled LAB; this
    returns plain L*a*b*, like its ``lab_split``), with a lookup table for the sRGB decoding
    and no boolean-mask copies, so it is several times faster on batches.

    Examples
    --------
    >>> import numpy as np
    >>> (rgb_to_lab(np.array([255, 255, 255], dtype=np.uint8)).round(1) + 0.0).tolist()
    [100.0, 0.0, 0.0]
    """
    xyz = _LINEAR[rgb] @ _TO_XYZN
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + np.float32(16.0 / 116.0))
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return np.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_lab` (torchstain's ``lab2rgb``), rounded and clipped to uint8.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(0, 256, 5, dtype=np.uint8)[:, None].repeat(3, axis=1)
    >>> bool((lab_to_rgb(rgb_to_lab(x)) == x).all())
    True
    """
    lab = np.asarray(lab, dtype=np.float32)
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([lab[..., 1] / 500.0 + fy, fy, fy - lab[..., 2] / 200.0], axis=-1)
    xyz = np.where(f > 0.2068966, f * f * f, (f - np.float32(16.0 / 116.0)) / 7.787)
    lin = xyz @ _FROM_XYZN
    rgb = np.where(
        lin > 0.0031308, 1.055 * np.power(np.maximum(lin, 0.0031308), 1 / 2.4) - 0.055, 12.92 * lin
    )
    return np.rint(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


@STAIN_NORMALISERS.register("reinhard")
class ReinhardNormalizer(StainNormalizer):
    """Match each image's per-channel LAB mean and standard deviation to the target's.

    A channel that is constant in an image (standard deviation ~0, e.g. a blank tile) is
    set to the target mean, as the method prescribes.

    Attributes
    ----------
    lab_means_, lab_stds_ : ndarray of shape (3,)
        Target L*, a*, b* means and standard deviations (torchstain's fit).

    Examples
    --------
    >>> import numpy as np
    >>> from histoexpr.stain import ReinhardNormalizer
    >>> rng = np.random.default_rng(0)
    >>> target = rng.integers(60, 230, (32, 32, 3), dtype=np.uint8)
    >>> norm = ReinhardNormalizer().fit(target)
    >>> out = norm.transform(rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8))
    >>> out.shape, out.dtype
    ((4, 32, 32, 3), dtype('uint8'))
    """

    name = "reinhard"
    _fitted_attrs = ("lab_means_", "lab_stds_")

    def _fit(self, target: np.ndarray) -> None:
        import torchstain

        ts = torchstain.normalizers.ReinhardNormalizer(backend="numpy")
        ts.fit(target)
        self.lab_means_ = np.asarray(ts.target_means, dtype=float)
        self.lab_stds_ = np.asarray(ts.target_stds, dtype=float)

    def _transform(self, batch: np.ndarray) -> np.ndarray:
        lab = rgb_to_lab(batch)
        mu = lab.mean(axis=(1, 2), keepdims=True, dtype=np.float64)
        sd = lab.std(axis=(1, 2), keepdims=True, dtype=np.float64)
        z = (lab - mu) / np.maximum(sd, _MIN_STD)
        return lab_to_rgb((z * self.lab_stds_ + self.lab_means_).astype(np.float32))

    def _extra_params(self) -> dict[str, Any]:
        return {"backend": f"torchstain {_torchstain_version()} (numpy)"}
