"""Task-tuned encoders: the folder ``histoexpr finetune`` writes, and using it as an encoder.

A fine-tuned encoder lives in one folder::

    OUT/
      weights.safetensors  the fine-tuned backbone only (no classification head)
      card.json            its EncoderCard (below)
      labels.json          the classes, their patch counts, the train/validation sizes
      history.csv          per-epoch train loss, validation loss and accuracy of both steps
      finetune.json        config, metrics (best epochs, validation accuracy per step,
                           confusion matrix), the base encoder's card(s), data fingerprint
      split.csv            every patch, its label and whether it trained or validated
      checkpoints/         resumable training state; safe to delete once finished

The card has the base encoder's input size, mean/std, interpolation, embedding size and
pixel size (preprocessing must not drift from what the weights were tuned with), its own
name (``<base>-tuned-<label>`` by default), ``builder="tuned"`` and ``model_id`` = the base
encoder's registry name: :func:`~histoexpr.features.encoders.build.build_network` builds the
base architecture *without* its pretrained weights and loads ``weights.safetensors`` into it.
``pretrained=False`` gives the base architecture with random weights (the random-init
baseline of a tuned encoder is the base's).

Where a tuned encoder is found:

* ``build_encoder(PATH)`` / ``histoexpr embed --encoder PATH``: a folder holding
  ``card.json`` is registered on the fly (:func:`register_tuned_encoder`);
* by name: once registered in this process, or when the folder is
  ``$HISTOEXPR_WEIGHTS/<name>/`` -- the user weights folder of :mod:`.weights` -- so
  ``histoexpr finetune --out $HISTOEXPR_WEIGHTS/NAME --name NAME`` makes ``--encoder NAME``
  work from then on.

Feature files record the tuned card (its name), so ``bulk predict`` refuses to mix tuned and
raw features.

Examples
--------
>>> from histoexpr.features.encoders import ENCODERS
>>> card = tuned_card(ENCODERS.get("toy"), name="toy-tuned-tissue", n_patches=40, n_classes=2)
>>> card.builder, card.model_id, card.embed_dim, card.weights
('tuned', 'toy', 16, 'fine-tuned from toy on 40 patches, 2 classes')
"""

from __future__ import annotations

import filecmp
import json
import logging
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from ...atomic import atomic_path, write_json
from ...errors import InputError
from .cards import ENCODERS, EncoderCard, register_card
from .weights import WEIGHTS_ENV, register_weights_file

logger = logging.getLogger(__name__)

__all__ = [
    "CARD_FILE",
    "INFO_FILE",
    "TUNED_BUILDER",
    "WEIGHTS_FILE",
    "clean_encoder_name",
    "find_tuned_encoder",
    "read_tuned_card",
    "register_tuned_encoder",
    "save_tuned_weights",
    "tuned_card",
    "tuned_name",
]

TUNED_BUILDER = "tuned"
WEIGHTS_FILE = "weights.safetensors"
CARD_FILE = "card.json"
INFO_FILE = "finetune.json"

#: tuned card name → the folder it was registered from (in this process)
_FOLDERS: dict[str, Path] = {}


def tuned_name(base: str, label: str) -> str:
    """``<base>-tuned-<label>``, lower case, characters outside ``[a-z0-9._-]`` → ``-``.

    Examples
    --------
    >>> tuned_name("resnet50", "Tissue types")
    'resnet50-tuned-tissue-types'
    """
    return clean_encoder_name(f"{base}-tuned-{label}")


def clean_encoder_name(name: str) -> str:
    """``name`` as an encoder name: lower case, runs of characters outside ``[a-z0-9._-]``
    turned into one ``-``, leading and trailing ``-``/``.`` removed.

    Raises
    ------
    InputError
        Nothing is left once cleaned.

    Examples
    --------
    >>> clean_encoder_name(" My Encoder (v2) ")
    'my-encoder-v2'
    """
    s = re.sub(r"[^a-z0-9._-]+", "-", str(name).strip().lower()).strip("-.")
    if not s:
        raise InputError(f"encoder name {name!r} is empty once cleaned; pass --name NAME")
    return s


def tuned_card(base: EncoderCard, *, name: str, n_patches: int, n_classes: int,
               dense: int | None = None) -> EncoderCard:
    """The card of ``base`` fine-tuned on ``n_patches`` patches of ``n_classes`` classes.

    Same input size, mean/std, interpolation, embedding size, pixel size and parameter count
    as ``base`` (with ``dense``: the embedding is that tuned layer's output); ``builder=
    "tuned"``, ``model_id=base.name``; not gated (the weights are a local file), licence: the
    base weights' terms apply to the derivative.
    """
    extra = f", dense {int(dense)}" if dense else ""
    return replace(
        base, name=clean_encoder_name(name), builder=TUNED_BUILDER, model_id=base.name,
        weights=f"fine-tuned from {base.name} on {int(n_patches)} patches, "
                f"{int(n_classes)} classes{extra}",
        licence=f"derived from {base.name} weights ({base.licence})", gated=False,
        embed_dim=int(dense) if dense else base.embed_dim,
    )


def save_tuned_weights(out: str | Path, state_dict: dict[str, Any], card: EncoderCard) -> Path:
    """Write ``weights.safetensors`` (the backbone's state dict) and ``card.json`` to ``out``,
    each atomically; returns the weights path."""
    from safetensors.torch import save_file

    out = Path(out)
    path = out / WEIGHTS_FILE
    with atomic_path(path) as tmp:  # safetensors wants contiguous tensors sharing no memory
        save_file({k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()},
                  str(tmp), metadata={"encoder": card.name, "base": card.model_id})
    write_json(out / CARD_FILE, card.to_dict())
    return path


def read_tuned_card(path: str | Path) -> EncoderCard:
    """The :class:`EncoderCard` in ``path/card.json`` (``path`` may be the file itself)."""
    p = Path(path)
    f = p / CARD_FILE if p.is_dir() else p
    try:
        d = json.loads(f.read_text())
        d["mean"], d["std"] = tuple(d["mean"]), tuple(d["std"])
        card = EncoderCard(**d)
    except FileNotFoundError:
        raise InputError(f"{p}: no {CARD_FILE}; pass a folder written by `histoexpr finetune`"
                         ) from None
    except (ValueError, TypeError, KeyError) as e:
        raise InputError(f"{f}: not an encoder card ({e}); rerun `histoexpr finetune`") from e
    if card.builder != TUNED_BUILDER:
        raise InputError(f"{f}: builder is {card.builder!r}, not a tuned encoder card")
    return card


def find_tuned_encoder(value: str | Path) -> Path | None:
    """The tuned-encoder folder that ``value`` names, or ``None``.

    ``value`` is a folder holding ``card.json``, or a name with a folder
    ``$HISTOEXPR_WEIGHTS/<name>/card.json``. A folder without ``card.json`` raises.
    """
    p = Path(value)
    if p.is_dir():
        if (p / CARD_FILE).is_file():
            return p
        raise InputError(f"{p}: this folder holds no {CARD_FILE}; pass a folder written by "
                         "`histoexpr finetune`, or an encoder name")
    folder = os.environ.get(WEIGHTS_ENV)
    if folder and "/" not in str(value) and os.sep not in str(value):
        hit = Path(folder) / str(value)
        if (hit / CARD_FILE).is_file():
            found = read_tuned_card(hit).name
            if found != str(value).lower():
                raise InputError(f"{hit}: this folder holds encoder {found!r}, not {value!r}; "
                                 f"rename the folder to {found}")
            return hit
    return None


def _register_bases(folder: Path, card: EncoderCard) -> None:
    """Register the base cards recorded in ``finetune.json`` that this process lacks, so the
    architecture can be built (a base that is itself a tuned encoder needs its own base)."""
    if card.model_id in ENCODERS:
        return
    info = folder / INFO_FILE
    try:
        bases = json.loads(info.read_text()).get("base_cards", [])
    except (OSError, ValueError):
        bases = []
    for d in bases:  # root first
        if d.get("name") in ENCODERS:
            continue
        d = {**d, "mean": tuple(d["mean"]), "std": tuple(d["std"])}
        register_card(EncoderCard(**d))
        logger.info("registered base encoder card %s from %s", d["name"], info)
    if card.model_id not in ENCODERS:
        raise InputError(f"{folder}: base encoder {card.model_id!r} is not in the registry and "
                         f"{INFO_FILE} does not describe it; register it first")


def register_tuned_encoder(path: str | Path) -> EncoderCard:
    """Register the tuned encoder in folder ``path`` so ``build_encoder(card.name)`` loads it.

    Registers the card in :data:`~histoexpr.features.encoders.cards.ENCODERS` and its
    ``weights.safetensors`` as the card's local weights (:mod:`.weights`). Registering the
    same folder again is a no-op; a folder re-tuned in this process replaces its own entry.

    Returns
    -------
    EncoderCard
        The tuned card.

    Raises
    ------
    InputError
        No ``card.json`` or ``weights.safetensors``; another encoder already has this name
        (rename it with ``histoexpr finetune --name``).

    Examples
    --------
    >>> import tempfile, torch
    >>> from histoexpr.features import build_encoder
    >>> from histoexpr.features.encoders import build_network
    >>> card = tuned_card(ENCODERS.get("toy"), name="toy-tuned-doc", n_patches=4, n_classes=2)
    >>> net, _ = build_network(ENCODERS.get("toy"), pretrained=False)
    >>> out = Path(tempfile.mkdtemp()) / "tuned"
    >>> _ = save_tuned_weights(out, net.state_dict(), card)
    >>> register_tuned_encoder(out).name, build_encoder("toy-tuned-doc").weights.source
    ('toy-tuned-doc', 'registered')
    """
    folder = Path(path)
    card = read_tuned_card(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise InputError(f"{folder}: no {WEIGHTS_FILE}; the fine-tune did not finish, rerun "
                         "`histoexpr finetune` with the same options to complete it")
    key = card.name.lower()
    if key in ENCODERS:
        old, mine = ENCODERS.get(key), _FOLDERS.get(key)
        if mine is None:  # built in, or a base card registered without weights
            same = old == card
        elif mine.resolve() == folder.resolve():  # again, or re-tuned in this process
            same = True
        else:  # a copy of the same tuned encoder is fine; different weights are not
            same = old == card and filecmp.cmp(mine / WEIGHTS_FILE, weights, shallow=False)
        if not same:
            where = f" from {mine}" if mine is not None else ""
            raise InputError(f"{folder}: an encoder called {card.name!r} is already registered"
                             f"{where}; give the tuned encoder another name with "
                             "`histoexpr finetune --name NAME`")
        if old != card:  # the same folder re-tuned in this process
            ENCODERS.register(key, card, priority=-10, replace=True)
    else:
        _register_bases(folder, card)
        register_card(card, priority=-10)
    _FOLDERS[key] = folder
    register_weights_file(card.name, weights)
    logger.info("tuned encoder %s (%s) registered from %s", card.name, card.weights, folder)
    return ENCODERS.get(key)
