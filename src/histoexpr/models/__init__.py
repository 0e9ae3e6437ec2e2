"""Expression models, all scikit-learn estimators (fit / predict), looked up by name in
one registry, :data:`MODELS`, for both workflows (:func:`model_names` gives those a spot or
slide run can use; :func:`build_model` makes one).

Every model declares its :class:`~histoexpr.models.contract.ModelTags` (input, torch,
whether it uses groups or auxiliary targets); callers read them with :func:`tags_of` and
fit with :func:`fit_model`, never inspecting signatures.

On frozen features (``input = "features"``):

- ``ridge``: HEST-Benchmark's probe (StandardScaler → PCA → Ridge, alpha by inner CV on the
  training fold);
- ``mlp``: a small MLP, early-stopped on an inner (grouped) validation split;
- ``mean``: the mean-predictor baseline;
- ``ensemble``: the mean prediction of several of these (``--param members=[...]``).

On uint8 image patches (``input = "patches"``):

- ``cnn_aux``: BrST-Net, an encoder trained end to end with an auxiliary head on an earlier
  layer predicting the remaining genes.

Slide-level models read a list of per-slide bags of tile features
(``input = "bags"``) or of image patches (``"patch_bags"``), one expression row per slide:

- ``ridge``, ``mlp``, ``mean``: the same entries as above, on slide-mean features
  (wrapped in :class:`PooledModel`);
- ``hist2rna``: hist2RNA's 1D-conv head on the slide-mean features (seed 001);
- ``gastric_baseline`` / ``gastric_mean`` / ``gastric_max`` / ``multitask``: seed 000's
  patch-based CNN with one patch, mean or max aggregation, and per-gene heads;
- ``gastric_simplified``: seed 000's ResNet-50 fine-tuned end to end on patches;
- ``he2rna``: HE2RNA's supertile MLP with a top-K mean;
- ``abmil``: gated attention multiple-instance learning.

Torch is imported only when a torch model is fitted or used.
"""

from __future__ import annotations

from . import abmil, ensemble, gastric, gastric_finetune, he2rna, hist2rna  # noqa: F401
from .abmil import ABMIL
from .bags import PooledModel, TorchBagRegressor
from .baselines import MeanPredictor
from .cnn_aux import AuxLayer, CNNAux, find_aux_layer
from .contract import (
    INPUTS,
    LEVELS,
    MODELS,
    ModelTags,
    build_model,
    create_model,
    fit_model,
    level_input,
    model_names,
    tags_of,
)
from .ensemble import EnsembleModel
from .gastric import GastricCNN
from .gastric_finetune import GastricFinetune
from .he2rna import HE2RNA
from .hist2rna import Hist2RNA
from .mlp import MLPHead
from .probe import ALPHAS, RidgeProbe

__all__ = [
    "ABMIL",
    "ALPHAS",
    "HE2RNA",
    "INPUTS",
    "LEVELS",
    "MODELS",
    "AuxLayer",
    "CNNAux",
    "EnsembleModel",
    "GastricCNN",
    "GastricFinetune",
    "Hist2RNA",
    "MLPHead",
    "MeanPredictor",
    "ModelTags",
    "PooledModel",
    "RidgeProbe",
    "TorchBagRegressor",
    "build_model",
    "create_model",
    "find_aux_layer",
    "fit_model",
    "level_input",
    "model_names",
    "tags_of",
]
