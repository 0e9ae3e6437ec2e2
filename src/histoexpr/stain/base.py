"""The stain-normaliser interface, input checks, colour helpers and the registry.

Every normaliser follows the scikit-learn estimator contract: ``__init__`` stores keyword-only
settings, :meth:`StainNormalizer.fit` learns the reference from one ``(H, W, 3)`` uint8 target
image and returns ``self``, fitted attributes end in ``_``, and
:meth:`StainNormalizer.transform` maps a ``(N, H, W, 3)`` or ``(H, W, 3)`` uint8 batch to a
uint8 array of the same shape.

Optical density (OD) convention used by :mod:`histoexpr.stain.vahadane`:
``OD = -log((I + 1) / 256)`` and its exact inverse ``I = 256 * exp(-OD) - 1``, so white
(255) has OD 0 and black (0) has OD ``log(256)`` with no special-casing of zeros. (StainTools
uses ``-log(I / 255)`` with 0 mapped to 1; the two differ by less than one grey level
above ~25.) Macenko keeps torchstain's ``Io = 240`` convention.
"""

from __future__ import annotations

import inspect
import logging
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..errors import HistoexprError, InputError
from ..registry import Registry

if TYPE_CHECKING:
    from typing_extensions import Self

logger = logging.getLogger(__name__)

__all__ = [
    "STAIN_NORMALISERS",
    "IdentityNormalizer",
    "StainChain",
    "StainNormalizer",
    "get_normalizer",
    "luminosity",
    "od_to_rgb",
    "rgb_to_od",
]

#: every stain normaliser, by name; see :func:`get_normalizer`
STAIN_NORMALISERS: Registry[type[StainNormalizer]] = Registry("stain normaliser")

# per-channel lookup tables: sRGB uint8 -> contribution to CIE Y (relative luminance)
_LINEAR = np.where(
    np.arange(256) / 255 > 0.04045,
    ((np.arange(256) / 255 + 0.055) / 1.055) ** 2.4,
    np.arange(256) / 255 / 12.92,
)
_Y_LUT = (_LINEAR[:, None] * np.array([0.212671, 0.715160, 0.072169])).T.astype(np.float32)
_OD = np.log(256.0 / (np.arange(256) + 1.0)).astype(np.float32)


def rgb_to_od(rgb: np.ndarray) -> np.ndarray:
    """Optical density ``-log((I + 1) / 256)`` of uint8 RGB, as float32 of the same shape.

    Examples
    --------
    >>> import numpy as np
    >>> rgb_to_od(np.array([255, 0], dtype=np.uint8)).astype(float).round(3).tolist()
    [0.0, 5.545]
    """
    return _OD[rgb]


def od_to_rgb(od: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_od`: ``256 * exp(-OD) - 1``, rounded and clipped to uint8.

    Examples
    --------
    >>> import numpy as np
    >>> od_to_rgb(rgb_to_od(np.arange(256, dtype=np.uint8))).tolist() == list(range(256))
    True
    """
    out = 256.0 * np.exp(-od) - 1.0
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def luminosity(rgb: np.ndarray) -> np.ndarray:
    """CIELAB lightness ``L* / 100`` (in ``[0, 1]``) of uint8 RGB ``(..., 3)``.

    The same quantity StainTools thresholds (OpenCV's ``L / 255``) to find tissue.

    Examples
    --------
    >>> import numpy as np
    >>> luminosity(np.array([[255, 255, 255], [0, 0, 0]], dtype=np.uint8)).round(3).tolist()
    [1.0, 0.0]
    """
    rgb = np.asarray(rgb)
    y = _Y_LUT[0][rgb[..., 0]] + _Y_LUT[1][rgb[..., 1]] + _Y_LUT[2][rgb[..., 2]]
    f = np.where(y > 0.008856, np.cbrt(y), 7.787 * y + np.float32(16.0 / 116.0))
    return np.clip((116.0 * f - 16.0) / 100.0, 0.0, 1.0)


def check_image(image: Any, *, what: str = "target_rgb") -> np.ndarray:
    """Return ``image`` as an ``(H, W, 3)`` uint8 array or raise :class:`InputError`."""
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[-1] != 3 or arr.dtype != np.uint8 or 0 in arr.shape:
        raise InputError(
            f"{what} must be an (H, W, 3) uint8 RGB image; got a {arr.dtype} array of shape "
            f"{arr.shape}" + _hint(arr)
        )
    return arr


def check_batch(batch: Any) -> tuple[np.ndarray, bool]:
    """Return ``(batch as (N, H, W, 3) uint8, was_single_image)`` or raise InputError."""
    arr = np.asarray(batch)
    if arr.ndim not in (3, 4) or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise InputError(
            "batch must be an (N, H, W, 3) or (H, W, 3) uint8 RGB array; got a "
            f"{arr.dtype} array of shape {arr.shape}" + _hint(arr)
        )
    return (arr[None], True) if arr.ndim == 3 else (arr, False)


def _hint(arr: np.ndarray) -> str:
    if arr.shape and arr.shape[-1] == 4:
        return " (drop the alpha channel: rgba[..., :3])"
    if arr.dtype != np.uint8 and np.issubdtype(arr.dtype, np.floating):
        return " (convert with (img * 255).round().astype(np.uint8) if it is in [0, 1])"
    return ""


def log_passed_through(method: str, n_passed: int, n_total: int, reason: str) -> None:
    """Log, once per batch, how many tiles were returned unchanged."""
    if n_passed:
        logger.warning(
            "%s: %d of %d tiles passed through unchanged (%s)", method, n_passed, n_total, reason
        )


class StainNormalizer(ABC):
    """Base class: map the colours of H&E images onto those of a reference (target) image.

    Subclasses set ``name``, list their fitted attributes in ``_fitted_attrs`` and implement
    :meth:`_fit` and :meth:`_transform` (which always receives a non-empty 4-D batch).

    Examples
    --------
    >>> import numpy as np
    >>> from histoexpr.stain import get_normalizer
    >>> rng = np.random.default_rng(0)
    >>> target = rng.integers(80, 255, (32, 32, 3), dtype=np.uint8)
    >>> norm = get_normalizer("reinhard").fit(target)
    >>> norm.transform(target[None]).shape
    (1, 32, 32, 3)
    """

    #: registry name
    name: ClassVar[str] = ""
    #: fitted attributes (set by fit, saved by params)
    _fitted_attrs: ClassVar[tuple[str, ...]] = ()
    #: whether transform needs fit first (False for stateless methods)
    requires_fit: ClassVar[bool] = True

    def __init__(self) -> None:  # noqa: B027 - subclasses without settings inherit it
        pass

    def fit(self, target_rgb: np.ndarray) -> Self:
        """Learn the reference stain appearance from one ``(H, W, 3)`` uint8 image.

        Returns ``self``. Raises :class:`InputError` for a bad shape or dtype.
        """
        self._fit(check_image(target_rgb))
        return self

    def transform(self, batch: np.ndarray) -> np.ndarray:
        """Normalise ``(N, H, W, 3)`` or ``(H, W, 3)`` uint8 images; same shape, uint8."""
        if not self.is_fitted():
            raise HistoexprError(
                f"{type(self).__name__} is not fitted yet: call fit(target) first"
            )
        arr, single = check_batch(batch)
        if arr.shape[0] == 0 or 0 in arr.shape[1:3]:
            return arr[0].copy() if single else arr.copy()
        out = self._transform(arr)
        return out[0] if single else out

    def fit_transform(self, target_rgb: np.ndarray, batch: np.ndarray | None = None) -> np.ndarray:
        """Fit on ``target_rgb``, then transform ``batch`` (the target itself when None)."""
        self.fit(target_rgb)
        return self.transform(target_rgb if batch is None else batch)

    def is_fitted(self) -> bool:
        """True when transform can be called."""
        return not self.requires_fit or all(hasattr(self, a) for a in self._fitted_attrs)

    def get_settings(self) -> dict[str, Any]:
        """The ``__init__`` keyword arguments, read back from the attributes of the same name."""
        names = inspect.signature(type(self).__init__).parameters
        return {k: getattr(self, k) for k in names if k != "self"}

    def params(self) -> dict[str, Any]:
        """JSON-serialisable settings and fitted reference, to save with results.

        ``reference`` is None before fit. :meth:`from_params` rebuilds the fitted normaliser.
        """
        ref = None
        if self.requires_fit and self.is_fitted():
            ref = {a: np.asarray(getattr(self, a)).tolist() for a in self._fitted_attrs}
        return {
            "method": self.name,
            "settings": self.get_settings(),
            "reference": ref,
            **self._extra_params(),
        }

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> StainNormalizer:
        """Rebuild a normaliser (fitted if ``params["reference"]`` is set) from :meth:`params`."""
        if "steps" in params:  # a chain (StainChain.params)
            return StainChain([StainNormalizer.from_params(p) for p in params["steps"]])
        norm = get_normalizer(params["method"], **params.get("settings", {}))
        for attr, value in (params.get("reference") or {}).items():
            if attr not in norm._fitted_attrs:
                raise InputError(f"unknown fitted attribute {attr!r} for {params['method']}")
            setattr(norm, attr, np.asarray(value, dtype=float))
        return norm

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_settings().items())
        return f"{type(self).__name__}({args})"

    def _extra_params(self) -> dict[str, Any]:
        return {}

    @abstractmethod
    def _fit(self, target: np.ndarray) -> None: ...

    @abstractmethod
    def _transform(self, batch: np.ndarray) -> np.ndarray: ...


@STAIN_NORMALISERS.register("none", priority=-1)
class IdentityNormalizer(StainNormalizer):
    """No normalisation: returns a copy of its input (a baseline, and a pipeline default).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    >>> bool((IdentityNormalizer().transform(x) == x).all())
    True
    """

    name = "none"
    requires_fit = False

    def _fit(self, target: np.ndarray) -> None:
        pass

    def _transform(self, batch: np.ndarray) -> np.ndarray:
        return batch.copy()


class StainChain(StainNormalizer):
    """Normalisers applied one after the other, as ``get_normalizer("luminosity+vahadane")``
    makes it: BrST-Net standardised brightness with StainTools' LuminosityStandardizer and
    normalised the stain with Vahadane's method (seed 003, Stain normalization). Each step is
    fitted to the target as the steps before it left it, and applied in the same order.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> target = rng.integers(60, 230, (32, 32, 3), dtype=np.uint8)
    >>> chain = get_normalizer("luminosity+reinhard").fit(target)
    >>> chain.name, chain.transform(target[None]).shape
    ('luminosity+reinhard', (1, 32, 32, 3))
    >>> again = StainNormalizer.from_params(chain.params())
    >>> bool((again.transform(target) == chain.transform(target)).all())
    True
    """

    def __init__(self, steps: list[StainNormalizer]) -> None:
        if len(steps) < 2:
            raise InputError("a stain chain needs at least two normalisers")
        self.steps = list(steps)

    @property
    def name(self) -> str:  # type: ignore[override]
        return "+".join(s.name for s in self.steps)

    def is_fitted(self) -> bool:
        return all(s.is_fitted() for s in self.steps)

    def get_settings(self) -> dict[str, Any]:
        return {"steps": [s.name for s in self.steps]}

    def params(self) -> dict[str, Any]:
        return {"method": self.name, "steps": [s.params() for s in self.steps]}

    def _fit(self, target: np.ndarray) -> None:
        for step in self.steps:
            step.fit(target)
            target = step.transform(target)

    def _transform(self, batch: np.ndarray) -> np.ndarray:
        for step in self.steps:
            batch = step.transform(batch)
        return batch


def get_normalizer(name: str, **kwargs: Any) -> StainNormalizer:
    """Create the stain normaliser registered as ``name`` with keyword-only settings;
    ``"a+b"`` chains registered normalisers (:class:`StainChain`, default settings each).

    Unknown names raise :class:`~histoexpr.errors.UnknownNameError` listing the valid ones;
    unknown settings raise :class:`InputError` listing the accepted ones.

    Examples
    --------
    >>> from histoexpr.stain import get_normalizer
    >>> get_normalizer("vahadane", fit_source="batch")  # doctest: +ELLIPSIS
    VahadaneNormalizer(fit_source='batch', ...)
    """
    if "+" in str(name):
        if kwargs:
            raise InputError(f"stain chain {name!r} takes no options; build a StainChain of "
                             "configured normalisers instead")
        return StainChain([get_normalizer(part.strip()) for part in str(name).split("+")])
    cls = STAIN_NORMALISERS.get(name)
    accepted = [k for k in inspect.signature(cls.__init__).parameters if k != "self"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise InputError(
            f"stain normaliser {name!r} got unknown option(s) {unknown}; "
            f"accepted: {accepted or 'none'}"
        )
    return cls(**kwargs)


def positive_float(value: Any, what: str, *, allow_zero: bool = False) -> float:
    """Validate a (non-negative when ``allow_zero``) finite float setting."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number, got {value!r}") from None
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise InputError(f"{what} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return v
