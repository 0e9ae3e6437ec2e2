"""Baselines that sit in the same results table as the real models.

``mean``: :class:`MeanPredictor` predicts each gene's training mean for every sample, the
floor any image model has to beat (its correlation with the truth is undefined, its error is
the spread of the gene).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from ..errors import InputError
from .contract import ModelTags
from .probe import MODELS

__all__ = ["MeanPredictor"]


def _as_2d(X: Any, name: str = "X") -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise InputError(f"{name} must be 2-D (samples, features), got shape {X.shape}")
    return X


def _check_n_features(est: Any, X: np.ndarray) -> None:
    if X.shape[1] != est.n_features_in_:
        raise InputError(f"X has {X.shape[1]} features, but {type(est).__name__} was fitted "
                         f"with {est.n_features_in_}")


class MeanPredictor(RegressorMixin, BaseEstimator):
    """Predict the training mean of each gene, whatever the features say.

    ``X`` is only checked for its number of rows and columns, so it may hold NaN or any
    dtype.

    Attributes
    ----------
    mean_ : ndarray of shape (n_genes,)
        Training mean per gene.
    n_features_in_, n_outputs_ : int

    Examples
    --------
    >>> y = np.array([[1.0, 10.0], [3.0, 30.0]])
    >>> MeanPredictor().fit(np.zeros((2, 5)), y).predict(np.ones((3, 5)))
    array([[ 2., 20.],
           [ 2., 20.],
           [ 2., 20.]], dtype=float32)
    """

    #: a feature matrix in (ignored but checked)
    model_tags = ModelTags(input="features")

    def fit(self, X, y, groups=None):
        """Store the per-gene mean of ``y`` (n,) or (n, genes); ``groups`` is ignored."""
        X = _as_2d(X)
        y = np.asarray(y, np.float64)
        if y.ndim not in (1, 2) or len(y) != len(X) or len(y) == 0:
            raise InputError(f"y must be (n,) or (n, genes) with n = {len(X)} rows of X "
                             f"(n > 0), got shape {y.shape}")
        self.y_ndim_ = y.ndim
        self.mean_ = y.reshape(len(y), -1).mean(axis=0)
        self.n_features_in_, self.n_outputs_ = X.shape[1], self.mean_.size
        return self

    def predict(self, X):
        """The training means, float32, (n,) or (n, genes) like ``y``."""
        check_is_fitted(self, "mean_")
        X = _as_2d(X)
        _check_n_features(self, X)
        pred = np.tile(self.mean_.astype(np.float32), (len(X), 1))
        return pred[:, 0] if self.y_ndim_ == 1 else pred


MODELS.register("mean", MeanPredictor, priority=8)
