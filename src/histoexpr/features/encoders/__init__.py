"""Encoders: cards, offline weight resolution, building a network and its preprocessing,
task-tuned encoders.

- :mod:`.cards` — :class:`EncoderCard` and the registry :data:`ENCODERS` (the built-in cards
  register when it is imported);
- :mod:`.weights` — where a card's weights come from, offline first;
- :mod:`.build` — :func:`build_encoder` / :func:`build_network` and the tile preprocessing
  derived from the card;
- :mod:`.effnet_lite` — the packaged EfficientNet-Lite0 ImageNet weights as a timm model;
- :mod:`.tuned` — the folder ``histoexpr finetune`` writes, used as an encoder;
- :mod:`.finetune` — :func:`~.finetune.finetune_encoder` (seed 002), which writes it;
- :mod:`.tuning` — the torch network and augmentation of end-to-end encoder training.

Heavy imports (torch, timm) happen inside the functions that build models, not here.

Examples
--------
>>> from histoexpr.features.encoders import ENCODERS, get_card
>>> get_card("toy") is ENCODERS.get("toy")
True
"""

from __future__ import annotations

from .build import Encoder, build_encoder, build_network, get_card, normalise_unit, preprocess_tiles
from .cards import ENCODERS, IMAGENET_MEAN, IMAGENET_STD, EncoderCard, register_card
from .tuned import find_tuned_encoder, register_tuned_encoder, tuned_name
from .weights import WEIGHTS_ENV, ResolvedWeights, WeightsError, load_state_dict, resolve_weights

__all__ = [
    "ENCODERS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "WEIGHTS_ENV",
    "Encoder",
    "EncoderCard",
    "ResolvedWeights",
    "WeightsError",
    "build_encoder",
    "build_network",
    "find_tuned_encoder",
    "get_card",
    "load_state_dict",
    "normalise_unit",
    "preprocess_tiles",
    "register_card",
    "register_tuned_encoder",
    "resolve_weights",
    "tuned_name",
]
