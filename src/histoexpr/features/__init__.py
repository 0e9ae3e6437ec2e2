"""Encoders and features: cards, offline weight resolution, tile → feature extraction.

Heavy imports (torch, timm) happen inside the functions that build models, not here.
"""

from __future__ import annotations

from .cards import ENCODERS, EncoderCard, register_card
from .encoders import Encoder, build_encoder, get_card
from .extract import embed, embed_to_h5, load_features, save_features
from .weights import WEIGHTS_ENV, ResolvedWeights, WeightsError, resolve_weights

__all__ = [
    "ENCODERS",
    "WEIGHTS_ENV",
    "Encoder",
    "EncoderCard",
    "ResolvedWeights",
    "WeightsError",
    "build_encoder",
    "embed",
    "embed_to_h5",
    "get_card",
    "load_features",
    "register_card",
    "resolve_weights",
    "save_features",
]
