"""Features: encoders, tile → feature extraction into the feature store, bags and pooling,
colour features.

- :mod:`.encoders` — encoder cards and their registry, offline weight resolution, building a
  network with the preprocessing its card prescribes, task-tuned encoders;
- :mod:`.extract` — :func:`embed` (tiles of a slide → ``(N, D)``) and :func:`embed_to_h5`;
- :mod:`.store` — the per-slide HDF5 feature files (:func:`save_features`,
  :func:`load_features`);
- :mod:`.jobs` — one slide's embedding as a job, a manifest of jobs, a batch on Dask;
- :mod:`.bags` — a slide's tile features as a :class:`Bag`, tile selection, pooling, the
  patches behind a bag;
- :mod:`.colour` — colour-histogram features (the colour baseline);
- :mod:`.per_spot` — features of the spots of an AnnData from any source, cached per section.

Heavy imports (torch, timm, h5py, anndata) happen inside the functions that need them, not
here.
"""

from __future__ import annotations

from .bags import (
    Bag,
    BagSet,
    as_bags,
    load_bag,
    load_bags,
    pool,
    read_bag_patches,
    select_tiles,
    supertiles,
)
from .colour import COLOUR_FEATURES, colour_feature_dim, colour_feature_names, colour_histogram
from .encoders import (
    ENCODERS,
    WEIGHTS_ENV,
    Encoder,
    EncoderCard,
    ResolvedWeights,
    WeightsError,
    build_encoder,
    build_network,
    get_card,
    preprocess_tiles,
    register_card,
    resolve_weights,
)
from .extract import embed, embed_to_h5
from .per_spot import feature_key, obsm_key, spot_features
from .store import feature_files, load_features, read_feature_attrs, save_features

__all__ = [
    "COLOUR_FEATURES",
    "ENCODERS",
    "WEIGHTS_ENV",
    "Bag",
    "BagSet",
    "Encoder",
    "EncoderCard",
    "ResolvedWeights",
    "WeightsError",
    "as_bags",
    "build_encoder",
    "build_network",
    "colour_feature_dim",
    "colour_feature_names",
    "colour_histogram",
    "embed",
    "embed_to_h5",
    "feature_files",
    "feature_key",
    "get_card",
    "load_bag",
    "load_bags",
    "load_features",
    "obsm_key",
    "pool",
    "preprocess_tiles",
    "read_bag_patches",
    "read_feature_attrs",
    "register_card",
    "resolve_weights",
    "save_features",
    "select_tiles",
    "spot_features",
    "supertiles",
]
