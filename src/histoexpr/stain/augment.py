"""Stain and scanner augmentation of H&E patches (issue 20, item 2), and re-staining.

Three perturbations of uint8 RGB patches, each drawn per patch:

- **HED jitter** (Tellez et al., Med Image Anal 2019, "HED-light" / "HED-strong"): the
  optical density is unmixed into haematoxylin, eosin and DAB with Ruifrok & Johnston's
  matrix (scikit-image's ``hed_from_rgb``); each channel ``c`` becomes
  ``alpha_c * c + beta_c`` with ``alpha ~ U(1 - s, 1 + s)`` and ``beta ~ U(-s, s)``, then
  it is mixed back. ``s = 0.05`` is the paper's light setting and ``0.2`` its strong one.
- **Brightness and contrast**: ``(I - mean) * c + mean + b`` with ``c ~ U(1 - s, 1 + s)``
  and ``b ~ U(-s, s) * 255``.
- **Stain-vector perturbation**: the patch's concentrations under the reference H and E
  vectors are mixed back with each vector rotated by a random small angle in OD space
  (up to ``s`` radians), the way another lab's stains differ in hue.

:class:`StainAugmenter` applies them with the interface of a stain normaliser (``transform``
on a batch, ``params``), so it chains after a normaliser and plugs into feature extraction.
Its draws depend on ``seed`` and on each patch's own pixels only, not on batching, worker
processes or order, so features of augmented patches are reproducible and cacheable.

:func:`restain` maps patches onto another slide's stain vectors (a fitted Macenko
normaliser whose reference is that slide), the re-staining of the stain-shift test.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> tiles = rng.integers(60, 230, (4, 16, 16, 3), dtype=np.uint8)
>>> aug = StainAugmenter(hed=0.05, seed=1)
>>> out = aug.transform(tiles)
>>> out.shape, out.dtype.name, bool((out != tiles).any())
((4, 16, 16, 3), 'uint8', True)
>>> bool((aug.transform(tiles[1:2]) == out[1:2]).all())   # the same patch, the same draw
True
"""

from __future__ import annotations

import functools
import zlib
from typing import Any

import numpy as np

from ..errors import InputError
from .base import StainNormalizer, check_batch

__all__ = ["AUGMENT_STRENGTHS", "StainAugmenter", "hed_jitter", "restain"]

#: named strengths of ``--stain-augment``: Tellez et al. 2019's HED-light and HED-strong,
#: with brightness/contrast and stain-vector perturbations of the same order
AUGMENT_STRENGTHS: dict[str, dict[str, float]] = {
    "light": {"hed": 0.05, "brightness": 0.05, "vectors": 0.05},
    "strong": {"hed": 0.2, "brightness": 0.15, "vectors": 0.15},
}


@functools.lru_cache(maxsize=1)
def _hed_matrices() -> tuple[np.ndarray, np.ndarray]:
    """Ruifrok & Johnston's unmixing matrices, built once (they are read for every patch)."""
    from skimage.color import hed_from_rgb, rgb_from_hed

    return np.asarray(hed_from_rgb, np.float32), np.asarray(rgb_from_hed, np.float32)


def _od(patch: np.ndarray) -> np.ndarray:
    return -np.log(np.maximum(patch.astype(np.float32), 1.0) / 255.0)


def _rgb(od: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(255.0 * np.exp(-od)), 0, 255).astype(np.uint8)


def hed_jitter(patch: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """One ``(H, W, 3)`` uint8 patch with its H, E and D channels scaled and shifted by
    ``U(1 - strength, 1 + strength)`` and ``U(-strength, strength)`` (Tellez et al. 2019).

    Examples
    --------
    >>> p = np.full((4, 4, 3), 180, np.uint8)
    >>> bool((hed_jitter(p, 0.0, np.random.default_rng(0)) == p).all())
    True
    """
    to_hed, to_rgb = _hed_matrices()
    alpha = rng.uniform(1 - strength, 1 + strength, 3).astype(np.float32)
    beta = rng.uniform(-strength, strength, 3).astype(np.float32)
    if strength == 0:
        return patch.copy()
    hed = _od(patch) @ to_hed
    # beta is on the scale of a typical stained pixel's concentration, not absolute OD
    scale = np.maximum(np.percentile(np.abs(hed).reshape(-1, 3), 99, axis=0), 1e-3)
    hed = hed * alpha + beta * scale
    return _rgb(hed @ to_rgb)


def _brightness(patch: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    c = rng.uniform(1 - strength, 1 + strength)
    b = rng.uniform(-strength, strength) * 255.0
    x = patch.astype(np.float32)
    mean = x.mean()
    return np.clip(np.rint((x - mean) * c + mean + b), 0, 255).astype(np.uint8)


def _rotate(v: np.ndarray, angle: float, rng: np.random.Generator) -> np.ndarray:
    """``v`` (unit, in OD space) turned by ``angle`` radians towards a random direction."""
    d = rng.normal(size=3)
    d -= d.dot(v) * v
    d /= max(np.linalg.norm(d), 1e-9)
    out = np.cos(angle) * v + np.sin(angle) * d
    return np.abs(out) / np.linalg.norm(out)  # stains absorb: OD stays non-negative


def _vectors(patch: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    _, to_rgb = _hed_matrices()
    ref = to_rgb[:2] / np.linalg.norm(to_rgb[:2], axis=1, keepdims=True)  # H and E rows
    new = np.stack([_rotate(v, rng.uniform(0, strength), rng) for v in ref])
    od = _od(patch).reshape(-1, 3)
    conc = od @ np.linalg.pinv(ref)  # (P, 2) concentrations under the reference vectors
    resid = od - conc @ ref  # what the two stains do not explain is kept as it is
    return _rgb((conc @ new + resid).reshape(patch.shape))


class StainAugmenter(StainNormalizer):
    """Random stain and scanner perturbations of each patch (see the module docstring).

    Parameters
    ----------
    hed, brightness, vectors
        Strengths of the HED jitter, brightness/contrast and stain-vector perturbation
        (0 turns one off).
    seed
        With each patch's pixels, fixes its draws: the same patch gives the same
        perturbation whatever batch it comes in. Different seeds give different copies.
    """

    name = "augment"
    requires_fit = False

    def __init__(self, hed: float = 0.05, brightness: float = 0.05, vectors: float = 0.05,
                 seed: int = 0) -> None:
        for what, v in (("hed", hed), ("brightness", brightness), ("vectors", vectors)):
            if not (isinstance(v, (int, float)) and 0 <= v < 1):
                raise InputError(f"stain augmentation {what} strength must be in [0, 1), "
                                 f"got {v!r}")
        self.hed, self.brightness, self.vectors = float(hed), float(brightness), float(vectors)
        self.seed = int(seed)

    @classmethod
    def named(cls, strength: str, seed: int = 0) -> StainAugmenter:
        """``"light"`` or ``"strong"`` (:data:`AUGMENT_STRENGTHS`)."""
        if strength not in AUGMENT_STRENGTHS:
            raise InputError(f"stain augmentation strength {strength!r} is not one of "
                             f"{', '.join(AUGMENT_STRENGTHS)}")
        return cls(**AUGMENT_STRENGTHS[strength], seed=seed)

    def _fit(self, target: np.ndarray) -> None:  # pragma: no cover - requires_fit is False
        pass

    def _one(self, patch: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng([self.seed, zlib.crc32(np.ascontiguousarray(patch))])
        out = patch
        if self.vectors:
            out = _vectors(out, self.vectors, rng)
        if self.hed:
            out = hed_jitter(out, self.hed, rng)
        if self.brightness:
            out = _brightness(out, self.brightness, rng)
        return out

    def _transform(self, batch: np.ndarray) -> np.ndarray:
        return np.stack([self._one(p) for p in batch])


def restain(batch: np.ndarray, target: Any) -> np.ndarray:
    """``batch`` (``(N, H, W, 3)`` or ``(H, W, 3)`` uint8) re-stained with the stain vectors
    and concentration range of ``target``: an RGB image of the other slide (a Macenko
    normaliser is fitted on it) or a fitted normaliser.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> other = rng.integers(60, 230, (32, 32, 3), dtype=np.uint8)
    >>> restain(rng.integers(60, 230, (2, 16, 16, 3), dtype=np.uint8), other).shape
    (2, 16, 16, 3)
    """
    from .macenko import MacenkoNormalizer

    norm = target if isinstance(target, StainNormalizer) else MacenkoNormalizer().fit(target)
    arr, single = check_batch(batch)
    out = norm.transform(arr)
    return out[0] if single else out
