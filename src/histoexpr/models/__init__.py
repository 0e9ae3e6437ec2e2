"""Expression models on image features, all scikit-learn estimators (fit / predict).

``ridge``: HEST-Benchmark's probe (StandardScaler → PCA → Ridge, alpha by inner CV on the
training fold). Look models up by name in :data:`MODELS`.
"""

from __future__ import annotations

from .probe import ALPHAS, MODELS, RidgeProbe

__all__ = ["ALPHAS", "MODELS", "RidgeProbe"]
