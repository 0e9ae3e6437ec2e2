"""Seed 000's feature-based gastric models: a few patches per slide, aggregated, then a CNN.

The seed predicts four genes of gastric adenocarcinoma from ResNet-50 features of tumour
patches. Its models, all built by :class:`GastricCNN`:

- *baseline* (M2): one patch per slide (``n_patches=1``);
- *patch-based* (M3/M4): ``N`` patches aggregated feature-wise by mean or max;
- *multi-task*: the same, with one separate fully connected head per gene instead of one
  shared output layer.

Table 1 of the seed: with ``N = 10`` patches, max aggregation beats mean (r 0.3119 vs
0.3043) and max + multi-task scores best of all (0.3122); with ``N = 1`` multi-task gives
0.2751 against 0.2635. The seed itself calls the differences small.

Which patches a slide contributes is decided when the bags are read:
``load_bags(..., select="top", n=10, heatmaps=...)`` keeps the ten most tumorous tiles,
best first, as the seed does; the model then reads the first ``n_patches`` of each bag.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..features.bags import Bag
from .bags import TorchBagRegressor
from .contract import MODELS
from .torch_base import check_choice, check_dropout

__all__ = ["AGGREGATES", "GastricCNN"]

#: how :class:`GastricCNN` may aggregate the patch features of a slide
AGGREGATES = ("mean", "max")


class GastricCNN(TorchBagRegressor):
    """Seed 000's patch-based CNN: first ``n_patches`` tiles → mean/max → 1-D CNN → genes.

    Architecture (the seed names only "a multi-layer CNN" over the ``1 x D`` feature vector,
    so this is our choice): the aggregated, standardised feature vector is read as a
    one-channel sequence of length ``D``; each entry of ``channels`` adds a block
    ``Conv1d(kernel_size, padding to keep the length) → ReLU → MaxPool1d(2)`` (so the length
    halves per block: ``D / 4`` after the default two blocks of 16 and 32 channels); the
    result is flattened into ``Linear(·, hidden) → ReLU → Dropout``. The output is one
    shared ``Linear(hidden, n_genes)`` or, with ``multitask=True``, one separate head
    ``Linear(hidden, task_hidden) → ReLU → Linear(task_hidden, 1)`` per gene (seed 000's
    multi-task model; a per-gene *linear* layer alone would equal the shared one).
    The seed writes the model input as ``(# patches, 1, # features)``; read channels-last,
    as in Keras, that could also mean the features are the *channels* of a length-1
    sequence (then the "CNN" is in effect an MLP, which is what hist2RNA's released code
    does, see :mod:`histoexpr.models.hist2rna`). We convolve along the feature axis instead.

    Parameters
    ----------
    n_patches
        Tiles read per slide: the first ``n_patches`` of each bag (with ``load_bags(...,
        select="top")`` the most tumorous first); bags with fewer use all theirs. ``1`` is
        the seed's baseline model; ``None`` reads every tile in the bag.
    aggregate
        ``"max"`` or ``"mean"`` over the patches of a slide, feature by feature (padding
        is masked out).
    multitask
        One fully connected head per gene instead of one shared output layer.
    channels, kernel_size
        Channels of the convolutional blocks, and their kernel size (odd).
    hidden
        Width of the fully connected layer after the convolutions.
    task_hidden
        Width of each per-gene head (``multitask=True`` only).
    dropout
        Dropout after the fully connected layer.
    lr, weight_decay, batch_size, max_epochs, patience, val_fraction, max_tiles,
    random_state, device
        Adam and early-stopping settings (MSE loss on per-gene standardised targets) of
        :class:`~histoexpr.models.bags.TorchBagRegressor`; ``max_tiles`` applies after
        ``n_patches``.

    Attributes
    ----------
    n_patches_, aggregate_
        The fitted ``n_patches`` and ``aggregate`` (``predict`` and :meth:`tile_scores` use
        these, not parameters set after ``fit``); the other fitted attributes are those of
        :class:`~histoexpr.models.bags.TorchBagRegressor`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> bags = [rng.normal(size=(6, 8)) + i % 3 for i in range(40)]
    >>> y = np.array([[i % 3, 0.0] for i in range(40)]) + rng.normal(0, 0.1, (40, 2))
    >>> m = GastricCNN(n_patches=4, aggregate="max", multitask=True, max_epochs=30,
    ...                device="cpu").fit(bags, y)
    >>> m.predict(bags[:3]).shape
    (3, 2)
    >>> float(np.corrcoef(m.predict(bags)[:, 0], y[:, 0])[0, 1]) > 0.9
    True
    >>> [s.shape for s in m.tile_scores(bags[:2])]  # 4 tiles read, 2 not: those score 0
    [(6,), (6,)]
    """

    def __init__(self, *, n_patches: int | None = None, aggregate: str = "max",
                 multitask: bool = False, channels: tuple[int, ...] = (16, 32),
                 kernel_size: int = 5, hidden: int = 128, task_hidden: int = 16,
                 dropout: float = 0.1, lr: float = 1e-3, weight_decay: float = 0.0,
                 batch_size: int = 16, max_epochs: int = 100, patience: int = 10,
                 val_fraction: float = 0.2, max_tiles: int | None = None,
                 random_state: int | None = 0, device: str | None = None) -> None:
        self._init_params(locals())

    # -- checks and hooks -------------------------------------------------------------------
    def _check_params(self) -> None:
        check_choice("aggregate", self.aggregate, AGGREGATES)
        if self.n_patches is not None and (isinstance(self.n_patches, bool)
                                           or int(self.n_patches) != self.n_patches
                                           or self.n_patches < 1):
            raise InputError(f"n_patches must be a whole number >= 1 or None, got "
                             f"{self.n_patches!r}")
        if int(self.kernel_size) < 1 or int(self.kernel_size) % 2 == 0:
            raise InputError(f"kernel_size must be odd and >= 1, got {self.kernel_size!r}")
        widths = {"channels": min(self.channels, default=1), "hidden": self.hidden,
                  "task_hidden": self.task_hidden}
        bad = {k: v for k, v in widths.items() if int(v) < 1}
        if bad:
            raise InputError(f"layer widths must be >= 1, got {bad}")
        check_dropout(self.dropout)
        # what _inputs and tile_scores read, fixed at fit time
        self.n_patches_ = None if self.n_patches is None else int(self.n_patches)
        self.aggregate_ = self.aggregate

    def _read(self, bag: Bag) -> np.ndarray:
        n = getattr(self, "n_patches_", self.n_patches)  # the fitted value once fitted
        return bag.features if n is None else bag.features[: int(n)]

    def _inputs(self, bags: list[Bag]) -> list[np.ndarray]:
        """The first ``n_patches`` tiles of each bag (all with ``n_patches=None``)."""
        return [self._read(b) for b in bags]

    def _build(self, n_in: int, n_out: int):
        from . import nets

        return nets.GastricNet(n_in, n_out, aggregate=self.aggregate,
                               channels=tuple(int(c) for c in self.channels),
                               kernel_size=int(self.kernel_size), hidden=int(self.hidden),
                               multitask=bool(self.multitask),
                               task_hidden=int(self.task_hidden), dropout=float(self.dropout))

    # -- interpretation ---------------------------------------------------------------------
    def tile_scores(self, X) -> list[np.ndarray]:
        """How much the fitted model reads each tile, one array per bag (length = its tiles).

        With ``aggregate="max"`` a tile reaches the network only through the feature
        dimensions in which it holds the bag's maximum; its score is the fraction of the
        ``D`` dimensions it holds (ties count for every tied tile, so a bag's scores sum to
        1, or a little more with ties). With ``aggregate="mean"`` every tile read counts the
        same: uniform weights ``1 / n_read``. Tiles beyond ``n_patches`` are not read and
        score 0.

        The scores say which tiles *reach* the network, not how much it relies on each
        feature: the network's weights do not enter. At most ``D`` tiles of a bag score
        above 0, so they separate tiles best when bags are short relative to ``D`` (the
        seed's ten patches of 2048 ResNet-50 features) and the features are sparse and
        non-negative. On dense features whose signal tiles differ by a small shift in many
        dimensions, background tiles hold most maxima and the scores barely separate the
        two (AUROC about 0.52 on :func:`~histoexpr.datasets.synthetic_bulk.synthetic_bulk`).

        Raises :class:`InputError` on bags of another feature size than the fitted one.
        """
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "network_")
        bags = self._check_bags(X)
        out = []
        for b in bags:
            x = self._scaled([self._read(b)])[0]
            s = np.zeros(len(b), np.float64)
            if self.aggregate_ == "max":
                s[: len(x)] = (x == x.max(axis=0)).mean(axis=1)
            else:
                s[: len(x)] = 1.0 / len(x)
            out.append(s)
        return out


def _factory(name: str, doc: str, **fixed: Any):
    def make(**params: Any) -> GastricCNN:
        return GastricCNN(**{**fixed, **params})

    make.__name__ = f"gastric_{name}"
    make.__doc__ = doc
    return make


MODELS.register("gastric_baseline", _factory(
    "baseline", "Seed 000's baseline (M2): the first tile of each bag, then the CNN.",
    n_patches=1))
MODELS.register("gastric_mean", _factory(
    "mean", "Seed 000's patch-based model with average aggregation (M3).", aggregate="mean"))
MODELS.register("gastric_max", _factory(
    "max", "Seed 000's patch-based model with max aggregation (M4).", aggregate="max"))
MODELS.register("multitask", _factory(
    "multitask", "Seed 000's best model in Table 1: max aggregation + one head per gene "
    "(M4 + multi-task, r = 0.3122 with 10 patches).", aggregate="max", multitask=True))
