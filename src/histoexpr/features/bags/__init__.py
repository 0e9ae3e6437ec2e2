"""Bags and pooling: a slide's tile features as one input of the bulk-expression models.

- :mod:`.bag` — :class:`Bag` (features + coordinates of one slide), read from the feature
  store (:func:`load_bag`, :func:`load_bags`);
- :mod:`.select` — which tiles go in a bag: all, the top N by a tumour heatmap, N at random;
- :mod:`.aggregate` — slide vectors from tile features (:func:`pool`, HE2RNA
  :func:`supertiles`);
- :mod:`.patches` — the image patches behind a bag, read back from its slide.

Examples
--------
>>> import numpy as np
>>> from histoexpr.features.bags import as_bags, pool
>>> [pool(b.features).tolist() for b in as_bags([np.ones((3, 2)), np.zeros((1, 2))])]
[[1.0, 1.0], [0.0, 0.0]]
"""

from __future__ import annotations

from .aggregate import POOLINGS, pool, supertiles
from .bag import Bag, BagSet, as_bags, bag_encoder, load_bag, load_bags, stack_padded
from .patches import find_slide, minmax_normalise, read_bag_patches, tile_spec
from .select import SELECTIONS, select_tiles, tile_scores

__all__ = [
    "POOLINGS",
    "SELECTIONS",
    "Bag",
    "BagSet",
    "as_bags",
    "bag_encoder",
    "find_slide",
    "load_bag",
    "load_bags",
    "minmax_normalise",
    "pool",
    "read_bag_patches",
    "select_tiles",
    "stack_padded",
    "supertiles",
    "tile_scores",
    "tile_spec",
]
