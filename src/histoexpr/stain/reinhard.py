"""Reinhard colour transfer (Reinhard et al. 2001) in CIELAB, through ``torchstain``.

The target's per-channel LAB means and standard deviations are fitted by torchstain's numpy
``ReinhardNormalizer``; the transform is vectorised over the batch with torchstain's colour
conversions (per-image statistics are axis reductions). Unlike torchstain, which truncates,
the output is rounded to the nearest grey level.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import STAIN_NORMALISERS, StainNormalizer
from .macenko import _torchstain_version

__all__ = ["ReinhardNormalizer", "lab_to_rgb", "rgb_to_lab"]

# torchstain's LAB uses OpenCV scaling (L * 2.55, a + 128, b + 128); we work in plain
# L* in [0, 100] and centred a*, b* like torchstain's lab_split
_SCALE = np.array([2.55, 1.0, 1.0], dtype=np.float32)
_OFFSET = np.array([0.0, 128.0, 128.0], dtype=np.float32)

#: a channel with a smaller standard deviation is treated as constant
_MIN_STD = 1e-6


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB ``(..., 3)`` to float32 CIELAB (L* in [0, 100], a*, b* centred on 0).

    Examples
    --------
    >>> import numpy as np
    >>> (rgb_to_lab(np.array([255, 255, 255], dtype=np.uint8)).round(1) + 0.0).tolist()
    [100.0, 0.0, 0.0]
    """
    from torchstain.numpy.utils.rgb2lab import rgb2lab

    return (rgb2lab(rgb.astype(np.float32) / 255.0) - _OFFSET) / _SCALE


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_lab`, rounded and clipped to uint8.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(0, 256, 5, dtype=np.uint8)[:, None].repeat(3, axis=1)
    >>> bool((lab_to_rgb(rgb_to_lab(x)) == x).all())
    True
    """
    from torchstain.numpy.utils.lab2rgb import lab2rgb

    rgb = lab2rgb(lab * _SCALE + _OFFSET)  # lab2rgb clips to [0, 1]
    return np.rint(rgb * 255.0).astype(np.uint8)


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
