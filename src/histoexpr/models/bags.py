"""Bulk models over bags of tile features: the registry, pooled heads, and the torch base.

Every bulk model is a scikit-learn estimator whose ``fit(X, y, groups=None)`` takes ``X`` as
a list of :class:`~histoexpr.features.bags.Bag` (or ``(N, D)`` arrays), one per slide, and
``y`` as ``(n_slides, n_genes)``; ``predict(X)`` returns ``(n_slides, n_genes)`` float32.
``groups`` (the patient of each slide) keeps inner validation splits patient-disjoint.
They are registered in the one model registry,
:data:`~histoexpr.models.contract.MODELS`, beside the spot models.

- :class:`PooledModel`: pool each bag (mean / max / median) and fit any feature-level head
  (``ridge``, ``mlp``, ``mean`` — the slide-mean baselines); :func:`~histoexpr.models.contract.
  create_model` wraps a features model in it for a slide-level run.
- :class:`TorchBagRegressor`: the shared fit/predict of the torch bag models (target and
  feature standardisation, a patient-grouped inner split for early stopping, padded
  mini-batches with a tile mask, :func:`histoexpr.training.fit_loop`). Subclasses give the
  network (:meth:`~TorchBagRegressor._build`) and, when they need to, the per-bag inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted

from ..errors import InputError
from ..features.bags import POOLINGS, Bag, as_bags, pool
from ..resident import ResidentBatches, adam
from ..training import seed_everything, standardise
from .tags import ModelTags, fit_model, tags_of
from .torch_base import TorchEstimator

__all__ = ["PooledModel", "TorchBagRegressor", "check_targets", "pooled"]

def check_targets(y: Any, n: int) -> np.ndarray:
    """``y`` as finite float64 ``(n, genes)``; raises :class:`InputError` otherwise."""
    a = np.asarray(y, np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or len(a) != n:
        raise InputError(f"y must be (n_bags, n_genes) with n_bags = {n}, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise InputError("y contains NaN or infinity")
    return a


def pooled(bags: list[Bag], how: str) -> np.ndarray:
    """``(n_bags, D)`` matrix of pooled bag features."""
    return np.stack([pool(b.features, how) for b in bags])


class PooledModel(RegressorMixin, BaseEstimator):
    """Pool every bag to one vector, then fit ``head`` on the pooled matrix.

    Parameters
    ----------
    head
        A scikit-learn regressor on ``(n_slides, D)`` features (cloned on fit).
    pooling
        ``"mean"`` (hist2RNA's aggregation), ``"max"`` or ``"median"``.

    Examples
    --------
    >>> from histoexpr.models.probe import RidgeProbe
    >>> rng = np.random.default_rng(0)
    >>> bags = [rng.normal(size=(int(rng.integers(5, 9)), 4)) + i % 3 for i in range(30)]
    >>> y = np.array([[i % 3] for i in range(30)], float)
    >>> m = PooledModel(RidgeProbe()).fit(bags, y)
    >>> float(np.corrcoef(m.predict(bags)[:, 0], y[:, 0])[0, 1]) > 0.9
    True
    """

    def __init__(self, head: Any = None, *, pooling: str = "mean") -> None:
        self.head = head
        self.pooling = pooling

    @property
    def model_tags(self) -> ModelTags:
        """Bags in; torch and groups as the head's."""
        head = tags_of(self.head) if self.head is not None else ModelTags()
        return ModelTags(input="bags", torch=head.torch, groups=head.groups)

    def fit(self, X, y, groups=None):
        if self.pooling not in POOLINGS:
            raise InputError(f"unknown pooling {self.pooling!r}; choose one of {POOLINGS}")
        bags = as_bags(X)
        y = check_targets(y, len(bags))
        if self.head is None:
            raise InputError("PooledModel needs a head estimator")
        self.head_ = clone(self.head)
        Z = pooled(bags, self.pooling)
        fit_model(self.head_, Z, y, groups=groups)
        self.n_features_in_, self.n_outputs_ = Z.shape[1], y.shape[1]
        return self

    def predict(self, X):
        check_is_fitted(self, "head_")
        Z = pooled(as_bags(X), self.pooling)
        if Z.shape[1] != self.n_features_in_:
            raise InputError(f"bags have {Z.shape[1]} features; the model was fitted on "
                             f"{self.n_features_in_} (another encoder?)")
        return np.asarray(self.head_.predict(Z), np.float32).reshape(len(Z), -1)


class _BagRows:
    """Dataset of (instances, target) rows; bags longer than ``cap`` are subsampled per draw."""

    def __init__(self, inputs: list[np.ndarray], y: np.ndarray | None, cap: int | None) -> None:
        self.inputs, self.y, self.cap = inputs, y, cap

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int):
        import torch

        x = torch.from_numpy(self.inputs[i])
        if self.cap is not None and len(x) > self.cap:
            x = x[torch.randperm(len(x))[: self.cap]]
        return x, (None if self.y is None else torch.from_numpy(self.y[i]))


def _collate(rows):
    import torch

    n = max(len(x) for x, _ in rows)
    d = rows[0][0].shape[1]
    x = torch.zeros(len(rows), n, d)
    mask = torch.zeros(len(rows), n, dtype=torch.bool)
    for i, (xi, _) in enumerate(rows):
        x[i, : len(xi)] = xi
        mask[i, : len(xi)] = True
    if rows[0][1] is None:
        return x, mask
    return x, mask, torch.stack([t for _, t in rows])


def _resident(xs: list[np.ndarray], ys: np.ndarray, cap: int | None) -> bool:
    """Whether the bags can train from tensors held on the device: all of one length (no
    padding, e.g. one slide-mean row each), not subsampled per draw, and small enough."""
    from .. import resident

    n = len(xs[0])
    return (all(len(x) == n for x in xs) and (cap is None or n <= cap)
            and sum(x.nbytes for x in xs) + ys.nbytes <= resident.RESIDENT_MAX_BYTES)


class TorchBagRegressor(TorchEstimator, RegressorMixin, BaseEstimator):
    """Shared fit/predict of the torch bag models (see the module docstring).

    Subclasses declare their parameters in ``__init__`` (scikit-learn reads them from the
    signature) and store them with ``self._init_params(locals())``. They implement
    :meth:`_build` and may override :meth:`_check_params`, :meth:`_inputs` (what each bag
    becomes before feature scaling) and :meth:`_loss`.

    The training parameters every subclass declares:

    lr, weight_decay
        Adam learning rate and L2 penalty.
    batch_size
        Slides per optimiser step.
    max_epochs, patience
        Epoch cap and early-stopping patience on the validation loss.
    val_fraction
        Share of the training slides (or patients, with ``groups``) held out for early
        stopping.
    max_tiles
        Instances per slide in training, drawn at random afresh each epoch (all are used
        for validation and prediction); ``None`` keeps all.
    random_state
        Seeds the split, the initial weights, the shuffling and dropout.
    device
        ``"cuda"``, ``"cpu"``...; ``None`` picks CUDA when available.

    Fitted attributes: ``network_`` (on CPU after ``fit`` and in pickles),
    ``x_mean_``/``x_scale_`` (instance feature standardisation), ``y_mean_``/``y_scale_``,
    ``history_``, ``n_epochs_``, ``best_epoch_``, ``n_features_in_``, ``n_outputs_``.
    """

    model_tags = ModelTags(input="bags", torch=True, groups=True, validation=True)

    # -- hooks ----------------------------------------------------------------------------
    def _check_params(self) -> None:
        """Validate the subclass's own parameters (and fix what ``_inputs`` reads from them)
        before anything is fitted; the default checks nothing."""

    def _build(self, n_in: int, n_out: int):
        """The network: ``forward(x (B, N, D), mask (B, N) bool) -> (B, n_out)``; every
        subclass defines it."""
        raise TypeError(f"{type(self).__name__} defines no network (_build)")

    def _inputs(self, bags: list[Bag]) -> list[np.ndarray]:
        """Per-bag instance matrices the network reads (default: the tile features)."""
        return [b.features for b in bags]

    def _loss(self, net, batch):
        import torch.nn.functional as F

        x, mask, y = batch
        return F.mse_loss(net(x, mask), y)

    def _val_loss(self, net, batch):
        return TorchBagRegressor._loss(self, net, batch)

    # -- estimator API --------------------------------------------------------------------
    def _scaled(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return [((x - self.x_mean_) / self.x_scale_).astype(np.float32) for x in inputs]

    def fit(self, X, y, groups=None, eval_set=None):
        """Fit on bags ``X`` and targets ``y`` ``(n_bags, n_genes)``; ``groups`` = patients.
        ``eval_set=(X_val, y_val)``: stop early on these bags (all of ``X`` is trained on)
        instead of an inner split of ``X``."""
        import torch
        from torch.utils.data import DataLoader

        self._check_params()
        bags = as_bags(X)
        y2 = check_targets(y, len(bags))
        if len(bags) < (2 if eval_set is not None else 3):
            raise InputError(f"{type(self).__name__} needs at least 3 training bags (2 to "
                             f"train, 1 to stop early), got {len(bags)}")
        seed_everything(self.random_state)
        inputs = self._inputs(bags)
        n_train = len(bags)
        if eval_set is not None:
            val_bags = as_bags(eval_set[0])
            yv = check_targets(eval_set[1], len(val_bags))
            inputs_val = self._inputs(val_bags)
        allx = np.concatenate(inputs).astype(np.float64)
        self.x_mean_ = allx.mean(axis=0).astype(np.float32)
        sd = allx.std(axis=0)
        self.x_scale_ = np.where(sd > 1e-8, sd, 1.0).astype(np.float32)
        self.n_features_in_, self.n_outputs_ = bags[0].dim, y2.shape[1]
        ys = self._scale_targets(y2)
        xs = self._scaled(inputs)
        tr, va, device = self._start_fit(len(bags), groups)
        if eval_set is not None:  # the given validation bags, after the training ones
            xs = xs + self._scaled(inputs_val)
            ys = np.concatenate([ys, standardise(yv, self.y_mean_, self.y_scale_)])
            tr, va = np.arange(n_train), np.arange(n_train, len(xs))
        net = self._build(xs[0].shape[1], y2.shape[1]).to(device)
        bs = int(self.batch_size)
        cap = None if self.max_tiles is None else int(self.max_tiles)
        if _resident(xs, ys, cap):  # equal bags (slide means): on the device, sliced
            x_all = torch.from_numpy(np.stack(xs))
            mask = torch.ones(x_all.shape[:2], dtype=torch.bool)
            y_all = torch.from_numpy(np.asarray(ys, np.float32))
            train: Any = ResidentBatches(x_all[tr], mask[tr], y_all[tr], batch_size=bs,
                                         shuffle=True, device=device)
            val: Any = ResidentBatches(x_all[va], mask[va], y_all[va], batch_size=bs,
                                       device=device)
        else:
            train = DataLoader(_BagRows([xs[i] for i in tr], ys[tr], cap), batch_size=bs,
                               shuffle=True, collate_fn=_collate)
            val = DataLoader(_BagRows([xs[i] for i in va], ys[va], None), batch_size=bs,
                             collate_fn=_collate)
        opt = adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        return self._fit_network(net, train, val, optimizer=opt, loss_fn=self._loss,
                                 val_loss_fn=self._val_loss, device=device)

    def _check_bags(self, X) -> list[Bag]:
        check_is_fitted(self, "network_")
        bags = as_bags(X)
        if bags[0].dim != self.n_features_in_:
            raise InputError(f"bags have {bags[0].dim} features; the model was fitted on "
                             f"{self.n_features_in_} (another encoder?)")
        return bags

    def _forward_inputs(self, inputs: list[np.ndarray], fn) -> list[Any]:
        """Run ``fn(net, x, mask)`` in inference mode over padded batches of ``inputs``.

        ``inputs`` are per-bag instance matrices as :meth:`_inputs` makes them (unscaled);
        returns the per-batch outputs of ``fn``, in order. The network is back on CPU
        afterwards, also when ``fn`` raises.
        """
        import torch

        xs = self._scaled(inputs)
        out = []
        bs = max(int(self.batch_size), 16)
        with self._inference() as (net, device):
            for i in range(0, len(xs), bs):
                x, mask = _collate([(torch.from_numpy(a), None) for a in xs[i:i + bs]])
                out.append(fn(net, x.to(device), mask.to(device)))
        return out

    def _forward_all(self, X, fn) -> list[Any]:
        """:meth:`_forward_inputs` on the :meth:`_inputs` of the checked bags ``X``."""
        return self._forward_inputs(self._inputs(self._check_bags(X)), fn)

    def predict(self, X):
        """Predicted expression ``(n_bags, n_genes)`` float32, in the units of ``y``."""
        parts = self._forward_all(X, lambda net, x, m: net(x, m).float().cpu().numpy())
        return self._in_units(np.concatenate(parts))
