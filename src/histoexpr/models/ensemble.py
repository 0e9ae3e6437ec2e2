"""``ensemble``: several registered models on the same features, their predictions averaged.

With ``blocks`` the features are several encoders' side by side (``st fit
--ensemble-encoders``): every member is fitted on each encoder's block alone, and the
average runs over members and encoders (issue 20, item 4).

BrST-Net's discussion suggests it ("combining two or more models can be beneficial", seed
003, Discussion). Each member is a registry model that reads frozen features (``ridge``,
``mlp``, another ensemble...); its parameters come from ``member_params`` (name → dict);
every member gets the ensemble's ``random_state`` and ``device`` unless its parameters set
them. At slide level the ensemble sees slide-pooled features like any features model.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(60, 5)); y = x[:, :2] + 0.1 * rng.normal(size=(60, 2))
>>> m = EnsembleModel(members=("ridge", "mean")).fit(x, y)
>>> p = m.predict(x)
>>> bool(np.allclose(p, (m.members_[0].predict(x) + m.members_[1].predict(x)) / 2))
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from ..errors import InputError
from .contract import MODELS, build_model
from .tags import ModelTags, fit_model, tags_of

__all__ = ["EnsembleModel"]


class EnsembleModel(RegressorMixin, BaseEstimator):
    """The mean prediction of ``members`` (registry names), each fitted on the same data.

    Parameters
    ----------
    members
        Two or more registered models on frozen features.
    member_params
        Parameters per member name, e.g. ``{"mlp": {"max_epochs": 50}}``.
    weights
        Weight of each member in the average (default: equal).
    blocks
        Widths of the feature blocks (one per encoder, in column order); each member is
        fitted on each block, so one member suffices. ``None``: one block, all columns.
    random_state, device
        Passed to every member that has them (unless its parameters set them).

    Attributes
    ----------
    members_ : list
        The fitted members, in order (block by block with ``blocks``).
    """

    #: frozen features in; groups are passed to the members that use them
    model_tags = ModelTags(input="features", groups=True, copies=True)

    def __init__(self, members: Sequence[str] = ("ridge", "mlp"),
                 member_params: Mapping[str, Mapping[str, Any]] | None = None,
                 weights: Sequence[float] | None = None,
                 blocks: Sequence[int] | None = None, random_state: int | None = 0,
                 device: str | None = None) -> None:
        self.members = members
        self.member_params = member_params
        self.weights = weights
        self.blocks = blocks
        self.random_state = random_state
        self.device = device

    def _check(self) -> list[str]:
        names = [str(m) for m in self.members]
        n_blocks = len(self.blocks) if self.blocks is not None else 1
        if len(names) * n_blocks < 2 or not names:
            raise InputError(f"an ensemble needs at least two members, or one member and "
                             f"two feature blocks, got members {names} and {n_blocks} block(s)")
        for n in names:
            if tags_of(MODELS.get(n)).input != "features":
                raise InputError(f"ensemble member {n!r} reads {tags_of(MODELS.get(n)).input}; "
                                 "members must read frozen features (e.g. ridge, mlp, mean)")
        unknown = sorted(set(self.member_params or {}) - set(names))
        if unknown:
            raise InputError(f"member_params for {', '.join(unknown)}, which are not members "
                             f"({', '.join(names)})")
        if self.weights is not None and (len(self.weights) != len(names)
                                         or min(self.weights) < 0 or sum(self.weights) <= 0):
            raise InputError(f"weights must be {len(names)} non-negative numbers with a "
                             f"positive sum, got {list(self.weights)}")
        return names

    def _slices(self, n_columns: int) -> list[slice]:
        if self.blocks is None:
            return [slice(0, n_columns)]
        widths = [int(b) for b in self.blocks]
        if min(widths) < 1 or sum(widths) != n_columns:
            raise InputError(f"ensemble blocks {widths} do not add up to the {n_columns} "
                             "feature columns")
        ends = np.cumsum(widths)
        return [slice(int(e - w), int(e)) for w, e in zip(widths, ends)]

    def fit(self, X, y, groups=None, copies=1):
        """Fit every member on ``X`` (n, D) (each block of it) and ``y`` (n,) or (n, genes)."""
        names = self._check()
        params = dict(self.member_params or {})
        X = np.asarray(X)
        self.slices_ = self._slices(X.shape[1])
        self.members_ = []
        for cols in self.slices_:
            for n in names:
                est = build_model(n, "spot", dict(params.get(n, {})), seed=self.random_state,
                                  device=self.device)
                self.members_.append(fit_model(est, X[:, cols], y, groups=groups,
                                                copies=copies))
        w = np.ones(len(names)) if self.weights is None else np.asarray(self.weights, float)
        w = np.tile(w, len(self.slices_))
        self.weights_ = w / w.sum()
        return self

    def predict(self, X):
        """The weighted mean of the members' predictions, float32."""
        check_is_fitted(self, "members_")
        X = np.asarray(X)
        slices = getattr(self, "slices_", [slice(None)])  # fitted before blocks existed
        k = len(self.members_) // len(slices)
        preds = [np.asarray(m.predict(X[:, slices[i // k]]), np.float64)
                 for i, m in enumerate(self.members_)]
        return np.tensordot(self.weights_, np.stack(preds), axes=1).astype(np.float32)


MODELS.register("ensemble", EnsembleModel, priority=6)
