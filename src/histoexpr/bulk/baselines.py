"""Baseline tile features for a bulk run, on exactly the tiles of the main bags.

- ``colour``: RGB+HSV colour histograms of each tile
  (:func:`~histoexpr.features.colour.colour_histogram`);
- ``random``: the main encoder's architecture with random weights.

Both re-read the tiles from the slides the feature files name (``--slides DIR`` finds moved
slides). They are cached per slide in ``RUN/features/<kind>/<slide>.h5`` (reused when the
tile coordinates match), so a resumed run does not recompute them. When the slides cannot be
read (a feature folder without its slides, a synthetic cohort) or the encoder is not in the
registry, the baseline is reported as unavailable and the run goes on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import HistoexprError, InputError

__all__ = ["baseline_bags", "baseline_features"]

logger = logging.getLogger(__name__)

_CHUNK = 256  # tiles read and embedded at a time (bounded memory on whole slides)


def baseline_features(bag: Any, kind: str, *, encoder: Any = None,
                      slides_dir: str | Path | None = None) -> np.ndarray:
    """``(len(bag), F)`` baseline features of one bag's tiles (``kind`` colour or random)."""
    from ..features.bags import read_bag_patches
    from ..features.colour import colour_histogram

    parts = []
    for start in range(0, len(bag), _CHUNK):
        sub = bag.take(np.arange(start, min(start + _CHUNK, len(bag))))
        patches = read_bag_patches(sub, slides_dir=slides_dir)
        parts.append(colour_histogram(patches) if kind == "colour" else encoder(patches))
    return np.concatenate(parts).astype(np.float32)


def baseline_bags(data: Any, kind: str, cfg: Any, cache_dir: str | Path) -> list | None:
    """The ``kind`` baseline bags matching ``data.bags``, or ``None`` when unavailable."""
    from ..features.bags import Bag
    from ..features.store import load_features, save_features

    if kind not in ("colour", "random"):
        raise InputError(f"unknown baseline features {kind!r}; choose colour or random")
    encoder = None
    if kind == "random":
        from ..features.encoders import build_encoder, get_card

        try:  # a tuned encoder's random init is its base architecture's
            card = get_card(data.encoder)
        except HistoexprError:
            logger.warning("random-init baseline unavailable: the features' encoder %r is not "
                           "in the encoder registry (nor a tuned encoder in "
                           "$HISTOEXPR_WEIGHTS)", data.encoder)
            return None
        encoder = build_encoder(card, pretrained=False)
    folder = Path(cache_dir) / kind
    out = []
    for bag in data.bags:
        path = folder / f"{bag.slide}.h5"
        feats = None
        if path.is_file():
            coords, f, _ = load_features(path)
            if np.array_equal(coords, bag.coords):
                feats = f
        if feats is None:
            try:
                feats = baseline_features(bag, kind, encoder=encoder, slides_dir=cfg.slides_dir)
            except (HistoexprError, OSError) as e:
                logger.warning("%s baseline unavailable: %s", kind, e)
                return None
            save_features(path, bag.coords, feats, {"baseline": kind, "slide": bag.slide,
                                                    "encoder": f"{kind}:{data.encoder}"})
        out.append(Bag(bag.slide, feats, bag.coords, str(path), f"{kind}:{data.encoder}"))
    logger.info("%s baseline features for %d slides", kind, len(out))
    return out
