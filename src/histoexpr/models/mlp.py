"""A small MLP head on frozen features, fitted with early stopping on an inner split.

Features are standardised and clipped to ±10
(:class:`~histoexpr.models.probe.ClippedScaler`), targets per gene (constant genes are
predicted as their constant); an inner validation split of the training data, by patient or
section when ``groups`` is given, drives early stopping; AdamW minimises the mean squared
error. The weights with the lowest validation loss are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y

from .baselines import _check_n_features
from .contract import ModelTags
from .probe import MODELS
from .torch_base import TorchEstimator

__all__ = ["MLPHead"]


def _mse(model, batch):
    import torch.nn.functional as F

    return F.mse_loss(model(batch[0]), batch[1])


class MLPHead(TorchEstimator, RegressorMixin, BaseEstimator):
    """Multi-layer perceptron from frozen image features to expression, early-stopped.

    Parameters
    ----------
    hidden
        Widths of the hidden layers (ReLU, then dropout, after each); ``()`` is a linear head.
    dropout
        Dropout probability after each hidden layer.
    lr, weight_decay
        AdamW learning rate and decoupled weight decay.
    batch_size
        Rows per optimiser step.
    max_epochs, patience
        Epoch cap and early-stopping patience on the validation loss.
    val_fraction
        Share of the training rows (or groups) held out for early stopping.
    random_state
        Seeds the split, the initial weights, the shuffling and dropout.
    device
        ``"cuda"``, ``"cpu"``...; ``None`` picks CUDA when available.

    Attributes
    ----------
    network_ : torch.nn.Sequential
        The fitted network (on CPU after ``fit`` and in pickles).
    x_scaler_ : histoexpr.models.probe.ClippedScaler
        Feature standardisation.
    y_mean_, y_scale_ : ndarray of shape (n_genes,)
        Target standardisation (scale 0 for constant genes: predicted as their constant).
    history_ : list of dict
        Per-epoch ``train_loss``, ``val_loss`` (standardised units), ``lr``, ``seconds``.
    n_epochs_, best_epoch_ : int
        Epochs run, and the epoch whose weights were kept.
    n_features_in_, n_outputs_ : int

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 8)); y = x[:, :2] @ [[1.0, 0.5], [0.0, 2.0]]
    >>> model = MLPHead(hidden=(32,), lr=3e-2, batch_size=200, max_epochs=40, device="cpu")
    >>> model = model.fit(x, y)  # one step per epoch: quick
    >>> model.predict(x[:3]).shape, model.predict(x).dtype
    ((3, 2), dtype('float32'))
    >>> float(np.corrcoef(model.predict(x)[:, 1], y[:, 1])[0, 1]) > 0.99
    True
    """

    #: a feature matrix in; the inner validation split is grouped by patient
    model_tags = ModelTags(input="features", torch=True, groups=True)

    def __init__(self, *, hidden: Sequence[int] = (256,), dropout: float = 0.1,
                 lr: float = 1e-3, weight_decay: float = 1e-4, batch_size: int = 64,
                 max_epochs: int = 200, patience: int = 10, val_fraction: float = 0.1,
                 random_state: int | None = 0, device: str | None = None) -> None:
        self._init_params(locals())

    def fit(self, X, y, groups=None):
        """Fit on features ``X`` (n, d) and targets ``y`` (n,) or (n, genes).

        ``groups`` (patient or section per row) makes the inner validation split grouped.
        """
        import torch
        from torch.utils.data import DataLoader, TensorDataset

        from .. import resident
        from .nets import mlp_layers
        from .probe import ClippedScaler

        X, y = check_X_y(X, y, multi_output=True, y_numeric=True, dtype=np.float64)
        self.y_ndim_ = y.ndim
        y2 = y.reshape(len(y), -1)
        self.n_features_in_, self.n_outputs_ = X.shape[1], y2.shape[1]
        self.x_scaler_ = ClippedScaler(10.0).fit(X)  # see probe.py: sparse CNN units
        xs = torch.as_tensor(self.x_scaler_.transform(X), dtype=torch.float32)
        ys = torch.from_numpy(self._scale_targets(y2))
        tr, va, device = self._start_fit(len(X), groups)
        net = mlp_layers(X.shape[1], self.hidden, y2.shape[1], float(self.dropout)).to(device)
        bs = int(self.batch_size)
        if xs.nbytes + ys.nbytes <= resident.RESIDENT_MAX_BYTES:  # on the device, sliced
            train: Any = resident.ResidentBatches(xs[tr], ys[tr], batch_size=bs,
                                                  shuffle=True, device=device)
            val: Any = resident.ResidentBatches(xs[va], ys[va], batch_size=max(bs, 1024),
                                                device=device)
        else:
            train = DataLoader(TensorDataset(xs[tr], ys[tr]), batch_size=bs, shuffle=True)
            val = DataLoader(TensorDataset(xs[va], ys[va]), batch_size=max(bs, 1024))
        opt = resident.adam(net.parameters(), decoupled=True, lr=self.lr,
                            weight_decay=self.weight_decay)
        return self._fit_network(net, train, val, optimizer=opt, loss_fn=_mse, device=device)

    def predict(self, X):
        """Predicted expression in the units of ``y``: float32, (n,) or (n, genes)."""
        import torch

        check_is_fitted(self, "network_")
        X = check_array(X, dtype=np.float64)
        _check_n_features(self, X)
        xs = torch.as_tensor(self.x_scaler_.transform(X), dtype=torch.float32)
        out = []
        with self._inference() as (net, device):
            for i in range(0, len(xs), 8192):
                out.append(net(xs[i:i + 8192].to(device)).float().cpu().numpy())
        pred = np.concatenate(out) if out else np.zeros((0, self.n_outputs_), np.float32)
        pred = self._in_units(pred)
        return pred[:, 0] if self.y_ndim_ == 1 else pred


MODELS.register("mlp", MLPHead, priority=9)
