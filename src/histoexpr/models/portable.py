"""Fitted models as plain data (issue 22, item 4): a JSON tree of classes, parameters and
fitted attributes, and the arrays (numpy arrays and torch weights) beside it, which
:mod:`histoexpr.runs.portable` writes as one safetensors file.

Loading never unpickles: a class is looked up by name in :data:`CLASSES`, an allow-list
(the expression models of the registry, their heads and the scikit-learn pieces they are
made of); an object is made with ``cls.__new__`` and given its recorded attributes; a torch
network is rebuilt by its estimator (:meth:`rebuild_network` hooks) and given its weights.
Anything else in a model (a callable, an unknown class) is refused when exporting, so a
file that loads is a file that was written from known parts.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["CLASSES", "PortableError", "from_tree", "to_tree"]


class PortableError(InputError):
    """A model that cannot be written as plain data, or a file that is not one."""


def _classes() -> dict[str, type]:
    from sklearn.decomposition import PCA
    from sklearn.linear_model import Ridge, RidgeCV
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from .bags import PooledModel
    from .baselines import MeanPredictor
    from .ensemble import EnsembleModel
    from .he2rna import HE2RNA
    from .hist2rna import Hist2RNA
    from .mlp import MLPHead
    from .probe import ClippedScaler, RidgeProbe

    out: dict[str, type] = {c.__name__: c for c in (
        PCA, Ridge, RidgeCV, Pipeline, StandardScaler, MeanPredictor, PooledModel,
        EnsembleModel, HE2RNA, Hist2RNA, MLPHead, ClippedScaler, RidgeProbe)}
    from ..features.encoders.cards import EncoderCard
    from .abmil import ABMIL
    from .cnn_aux import AuxLayer, CNNAux
    from .gastric import GastricCNN

    out.update({c.__name__: c for c in (ABMIL, GastricCNN, CNNAux, AuxLayer, EncoderCard)})
    return out


#: the classes a model file may name (filled on first use)
CLASSES: dict[str, type] = {}


def _allowed() -> dict[str, type]:
    if not CLASSES:
        CLASSES.update(_classes())
    return CLASSES


def to_tree(obj: Any, tensors: dict[str, np.ndarray], path: str = "model") -> Any:
    """``obj`` as JSON-able data; its arrays go into ``tensors`` under dotted names."""
    import torch

    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, float | np.floating):
        v = float(obj)
        return v if math.isfinite(v) else {"__float__": repr(v)}
    if isinstance(obj, np.integer | np.bool_):
        return obj.item()
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise PortableError(f"{path}: an object array cannot be exported")
        tensors[path] = np.ascontiguousarray(obj)
        return {"__array__": path}
    if isinstance(obj, tuple):
        return {"__tuple__": [to_tree(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [to_tree(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise PortableError(f"{path}: a mapping with non-string keys cannot be exported")
        return {"__map__": {k: to_tree(v, tensors, f"{path}.{k}") for k, v in obj.items()}}
    if isinstance(obj, torch.nn.Module):
        for k, v in obj.state_dict().items():
            tensors[f"{path}.{k}"] = v.detach().cpu().numpy().copy()
        return {"__network__": path}
    name = type(obj).__name__
    if _allowed().get(name) is not type(obj):
        raise PortableError(f"{path}: a {type(obj).__module__}.{name} cannot be exported "
                            "(only histoexpr's models: ridge, mean, mlp, cnn_aux, hist2rna, "
                            "he2rna, abmil, gastric, pooled and ensemble ones)")
    state = {k: to_tree(v, tensors, f"{path}.{k}") for k, v in vars(obj).items()}
    return {"__object__": name, "state": state}


def from_tree(node: Any, tensors: dict[str, np.ndarray]) -> Any:
    """The object :func:`to_tree` described (networks rebuilt by their estimators)."""
    if isinstance(node, list):
        return [from_tree(v, tensors) for v in node]
    if not isinstance(node, dict):
        return node
    if "__float__" in node:
        return float(node["__float__"])
    if "__array__" in node:
        return tensors[node["__array__"]]
    if "__tuple__" in node:
        return tuple(from_tree(v, tensors) for v in node["__tuple__"])
    if "__map__" in node:
        return {k: from_tree(v, tensors) for k, v in node["__map__"].items()}
    if "__network__" in node:
        return _Weights(node["__network__"], tensors)
    if "__object__" in node:
        cls = _allowed().get(node["__object__"])
        if cls is None:
            raise PortableError(f"the model file names class {node['__object__']!r}, which "
                                "is not one histoexpr loads; was it written by a newer "
                                "histoexpr? (pip install -U histoexpr)")
        obj = cls.__new__(cls)
        obj.__dict__.update({k: from_tree(v, tensors) for k, v in node["state"].items()})
        for k, v in list(obj.__dict__.items()):
            if isinstance(v, _Weights):
                net = rebuild_network(obj)
                net.load_state_dict(v.state_dict(), strict=True)
                setattr(obj, k, net.eval())
        return obj
    raise PortableError(f"unknown node in the model file: {sorted(node)[:3]}")


class _Weights:
    """A network's weights waiting for its estimator to rebuild the module."""

    def __init__(self, prefix: str, tensors: dict[str, np.ndarray]) -> None:
        self.prefix, self.tensors = prefix, tensors

    def state_dict(self) -> dict[str, Any]:
        import torch

        p = self.prefix + "."
        return {k[len(p):]: torch.from_numpy(np.array(v)) for k, v in self.tensors.items()
                if k.startswith(p)}


def rebuild_network(est: Any) -> Any:
    """The untrained network of a fitted torch estimator, shaped as at fit time."""
    from .bags import TorchBagRegressor
    from .cnn_aux import CNNAux
    from .mlp import MLPHead

    if isinstance(est, CNNAux):  # as CNNAux.fit builds it, without pretrained weights
        from torch import nn

        from ..features.encoders import build_network
        from ..features.encoders.tuning import FreezableModuleDict

        card = est.card_
        parts = {"backbone": build_network(card, pretrained=False)[0],
                 "head": nn.Linear(card.embed_dim, est.n_outputs_)}
        if est.aux_layer_ is not None:
            parts["aux"] = nn.Linear(est.aux_layer_.channels, est.n_aux_outputs_)
        return FreezableModuleDict(parts)
    if isinstance(est, TorchBagRegressor):
        return est._build(len(est.x_mean_), est.n_outputs_)
    if isinstance(est, MLPHead):
        from .nets import mlp_layers

        return mlp_layers(est.n_features_in_, est.hidden, est.n_outputs_, float(est.dropout))
    raise PortableError(f"{type(est).__name__}: no way to rebuild its network")
