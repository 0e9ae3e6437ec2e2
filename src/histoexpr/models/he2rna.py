"""HE2RNA (Schmauch et al., Nat Commun 2020): per-supertile predictions, top-K pooled.

Each slide's tiles are grouped into *supertiles* (k-means on the tile coordinates into
``n_supertiles`` clusters, mean feature per cluster, :func:`~histoexpr.features.bags.
supertiles`; a slide with fewer tiles keeps its tiles). A small MLP, shared by all
supertiles (HE2RNA's 1x1 convolutions), scores every supertile for every gene; the slide's
prediction for a gene is the mean of its ``K`` highest supertile scores
(:func:`~histoexpr.models.pooling.topk_mean`: padding never counts, ``K`` is capped at the
slide's number of supertiles). In training ``K`` is drawn at random per batch from ``ks``; at
prediction the outputs for every ``K`` in ``ks`` are averaged, as in HE2RNA. Because every
slide prediction is a mean of supertile predictions, those predictions map back onto the
tiles (:meth:`HE2RNA.tile_scores`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InputError
from ..features.bags import Bag, supertiles
from .bags import TorchBagRegressor
from .contract import MODELS
from .torch_base import check_dropout

__all__ = ["HE2RNA"]

#: HE2RNA's numbers of top-scoring supertiles averaged per gene
KS = (1, 2, 5, 10, 20, 50, 100)
#: supertiles are a fixed function of a bag: k-means always uses this seed
_KMEANS_SEED = 0


class HE2RNA(TorchBagRegressor):
    """HE2RNA: an MLP scores each supertile for each gene; the top-``K`` mean is the slide's.

    Parameters
    ----------
    n_supertiles
        k-means clusters of tile coordinates per slide (HE2RNA: 100); slides with fewer
        tiles keep their tiles.
    hidden
        Widths of the hidden layers of the per-supertile MLP (ReLU, then dropout, after
        each); ``()`` makes it linear.
    dropout
        Dropout after each hidden layer.
    ks
        The numbers of top-scoring supertiles averaged per gene: one drawn at random per
        training batch (from torch's global generator, so a resumed fit repeats the
        draws); prediction averages the outputs over all of them.
    lr, weight_decay, batch_size, max_epochs, patience, val_fraction, max_tiles,
    random_state, device
        Training settings of :class:`~histoexpr.models.bags.TorchBagRegressor` (which
        lists the fitted attributes), with HE2RNA's Adam learning rate 3e-4 and batches of
        16 slides. ``max_tiles`` caps the *supertiles* per slide in training;
        ``random_state`` also seeds the ``K`` draws (the supertile k-means always uses seed
        0, so supertiles depend only on the slide).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> bags = [rng.normal(size=(12, 4)) + [2 * (i % 2), 0, 0, 0] for i in range(24)]
    >>> y = np.array([[i % 2] for i in range(24)], float)
    >>> model = HE2RNA(n_supertiles=6, hidden=(16,), lr=1e-2, max_epochs=30, device="cpu")
    >>> model = model.fit(bags, y)
    >>> model.predict(bags).shape, [s.shape for s in model.tile_scores(bags[:2])]
    ((24, 1), [(12,), (12,)])
    >>> float(np.corrcoef(model.predict(bags)[:, 0], y[:, 0])[0, 1]) > 0.9
    True
    """

    def __init__(self, *, n_supertiles: int = 100, hidden: Sequence[int] = (256,),
                 dropout: float = 0.25, ks: Sequence[int] = KS, lr: float = 3e-4,
                 weight_decay: float = 0.0, batch_size: int = 16, max_epochs: int = 200,
                 patience: int = 20, val_fraction: float = 0.1, max_tiles: int | None = None,
                 random_state: int | None = 0, device: str | None = None) -> None:
        self._init_params(locals())

    # -- checks ---------------------------------------------------------------------------
    def _ks(self) -> tuple[int, ...]:
        ks = np.atleast_1d(np.asarray(self.ks))
        if ks.size == 0 or ks.dtype.kind not in "iu" or (ks < 1).any():
            raise InputError(f"ks must be a non-empty list of integers >= 1, got {self.ks!r}")
        return tuple(int(k) for k in ks)

    def _widths(self) -> tuple[int, ...]:
        w = np.atleast_1d(np.asarray(self.hidden))
        if w.size == 0:
            return ()
        if w.dtype.kind not in "iu" or (w < 1).any():
            raise InputError(f"hidden must be a list of layer widths >= 1, got {self.hidden!r}")
        return tuple(int(x) for x in w)

    def _check_params(self) -> None:
        self._ks()
        if int(self.n_supertiles) < 1:
            raise InputError(f"n_supertiles must be >= 1, got {self.n_supertiles}")
        self._widths()
        check_dropout(self.dropout)

    # -- hooks ----------------------------------------------------------------------------
    def _supertiles(self, bags: list[Bag]) -> list[tuple[np.ndarray, np.ndarray]]:
        n = int(self.n_supertiles)
        return [supertiles(b.coords, b.features, n_clusters=n, random_state=_KMEANS_SEED)
                for b in bags]

    def _inputs(self, bags: list[Bag]) -> list[np.ndarray]:
        return [f for f, _ in self._supertiles(bags)]

    def _build(self, n_in: int, n_out: int):
        from . import nets

        return nets.HE2RNANet(n_in, n_out, self._widths(), float(self.dropout), self._ks())

    def _loss(self, net, batch):
        import torch
        import torch.nn.functional as F

        x, mask, y = batch
        ks = net.ks
        k = ks[int(torch.randint(len(ks), (1,)))]  # the global generator: resumable
        return F.mse_loss(net(x, mask, k), y)

    # -- estimator API --------------------------------------------------------------------
    def _supertile_scores(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Network scores ``(n_i, G)`` (standardised units) of per-bag supertile matrices."""
        parts = self._forward_inputs(inputs, lambda net, x, m: [
            s[: int(n)] for s, n in zip(net.scores(x).float().cpu().numpy(), m.sum(1))])
        return [s for batch in parts for s in batch]

    def supertile_predictions(self, X) -> list[np.ndarray]:
        """Each bag's per-supertile predictions ``(n_supertiles, n_genes)``, units of ``y``.

        With a single ``K`` in ``ks``, a slide's prediction is, per gene, the mean of the
        ``K`` highest values in its column (all of them when the slide has fewer).
        """
        scores = self._supertile_scores(self._inputs(self._check_bags(X)))
        return [self._in_units(s) for s in scores]

    def tile_scores(self, X, *, genes: Sequence[int] | None = None) -> list[np.ndarray]:
        """Per bag, each tile's score: its supertile's prediction averaged over genes.

        Predictions are averaged in standardised units (each gene's training mean 0 and
        standard deviation 1; constant genes 0), so every gene weighs the same; ``genes``
        (column indices) restricts the average. Returns one ``(n_tiles,)`` float32 array per
        bag, in the bag's tile order (each tile gets its supertile's score), ready for a
        spatial map.
        """
        bags = self._check_bags(X)
        cols = np.arange(self.n_outputs_) if genes is None else np.asarray(genes, np.int64)
        if cols.size == 0 or cols.min() < 0 or cols.max() >= self.n_outputs_:
            raise InputError(f"genes must be column indices in [0, {self.n_outputs_}), "
                             f"got {genes!r}")
        st = self._supertiles(bags)
        varies = (self.y_scale_ > 0)[cols]  # a constant gene is predicted as its constant
        return [(s[:, cols] * varies).mean(axis=1)[labels].astype(np.float32)
                for s, (_, labels) in zip(self._supertile_scores([f for f, _ in st]), st)]


MODELS.register("he2rna", HE2RNA, priority=5)
