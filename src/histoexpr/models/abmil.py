"""Gated attention MIL (Ilse, Tomczak and Welling, ICML 2018) for bulk expression.

Each tile's features are embedded, ``h = ReLU(W x)`` (then dropout); a gated attention
network scores every tile, ``w^T (tanh(V h) * sigmoid(U h))``; a softmax over the slide's
real tiles (padding gets ``-inf``) turns the scores into weights ``a``; the slide embedding
``sum_i a_i h_i`` goes through a linear layer to one value per gene. The attention weights
say which tiles the prediction rests on (:meth:`ABMIL.tile_scores`).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .bags import TorchBagRegressor
from .contract import MODELS
from .torch_base import check_dropout

__all__ = ["ABMIL"]


class ABMIL(TorchBagRegressor):
    """Gated attention-based multiple-instance regression of expression from tile bags.

    Parameters
    ----------
    hidden
        Size of the tile embedding ``h`` (and of the slide embedding).
    attention_dim
        Width of the gated attention network (``V`` and ``U``).
    dropout
        Dropout on the tile embedding.
    lr, weight_decay, batch_size, max_epochs, patience, val_fraction, max_tiles,
    random_state, device
        Training settings of :class:`~histoexpr.models.bags.TorchBagRegressor` (which
        lists the fitted attributes); ``random_state`` also seeds the tile draws.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> bags = [rng.normal(size=(10, 4)) for _ in range(32)]
    >>> for i, b in enumerate(bags):
    ...     b[0, 0] = 4.0 * (i % 2)  # one tile per bag carries the target
    >>> y = np.array([[i % 2] for i in range(32)], float)
    >>> model = ABMIL(hidden=16, attention_dim=8, lr=1e-2, max_epochs=40, device="cpu")
    >>> model = model.fit(bags, y)
    >>> model.predict(bags).shape
    (32, 1)
    >>> a = model.tile_scores(bags[:2])
    >>> [w.shape for w in a], bool(np.allclose([w.sum() for w in a], 1.0))
    ([(10,), (10,)], True)
    """

    def __init__(self, *, hidden: int = 128, attention_dim: int = 64, dropout: float = 0.25,
                 lr: float = 5e-4, weight_decay: float = 1e-4, batch_size: int = 16,
                 max_epochs: int = 200, patience: int = 10, val_fraction: float = 0.1,
                 max_tiles: int | None = 512, random_state: int | None = 0,
                 device: str | None = None) -> None:
        self._init_params(locals())

    def _check_params(self) -> None:
        if int(self.hidden) < 1 or int(self.attention_dim) < 1:
            raise InputError(f"hidden and attention_dim must be >= 1, got {self.hidden} and "
                             f"{self.attention_dim}")
        check_dropout(self.dropout)
        if self.max_tiles is not None and int(self.max_tiles) < 1:
            raise InputError(f"max_tiles must be >= 1 or None, got {self.max_tiles}")

    def _build(self, n_in: int, n_out: int):
        from . import nets

        return nets.ABMILNet(n_in, n_out, int(self.hidden), int(self.attention_dim),
                             float(self.dropout))

    def tile_scores(self, X) -> list[np.ndarray]:
        """Each bag's attention weights ``(n_tiles,)`` float32, in the bag's tile order.

        The weights of a bag sum to 1; a tile with a high weight is one the prediction
        rests on (for all genes at once: the attention is shared).
        """
        parts = self._forward_all(X, lambda net, x, m: [
            a[: int(n)].float().cpu().numpy() for a, n in zip(net.attention(x, m), m.sum(1))])
        return [a for batch in parts for a in batch]


MODELS.register("abmil", ABMIL, priority=4)
