"""Expression models, all scikit-learn estimators (fit / predict), looked up by name in
:data:`MODELS`.

On frozen features (``input_kind = "features"``):

- ``ridge``: HEST-Benchmark's probe (StandardScaler → PCA → Ridge, alpha by inner CV on the
  training fold);
- ``mlp``: a small MLP, early-stopped on an inner (grouped) validation split;
- ``mean``: the mean-predictor baseline.

On uint8 image patches (``input_kind = "patches"``):

- ``cnn_aux``: BrST-Net, an encoder trained end to end with an auxiliary head on an earlier
  layer predicting the remaining genes.

Torch is imported only when a torch model is fitted or used.
"""

from __future__ import annotations

from .baselines import MeanPredictor
from .cnn_aux import AuxLayer, CNNAux, find_aux_layer
from .mlp import MLPHead
from .probe import ALPHAS, MODELS, RidgeProbe

__all__ = [
    "ALPHAS",
    "MODELS",
    "AuxLayer",
    "CNNAux",
    "MLPHead",
    "MeanPredictor",
    "RidgeProbe",
    "find_aux_layer",
]
