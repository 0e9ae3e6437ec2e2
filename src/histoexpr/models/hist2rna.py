"""hist2RNA (seed 001): three 1-D convolutions over the slide-mean tile feature vector.

Each slide becomes the mean of its tile features (the seed's equation 1), standardised per
feature. Three convolutional blocks follow, as in the seed's Figure 2 — C1: 256 kernels of
size 5 + ReLU; C2 and C3: 512 kernels of size 1 + ReLU — then global average pooling over
the sequence and a linear output layer with one unit per gene. The seed's training settings
are the defaults: Adam, learning rate 1e-3, mean squared error, mini-batches of 12 slides,
early stopping with patience 4, at most 150 epochs, the weights with the lowest validation
loss kept. Targets are standardised per gene for the optimiser and predicted back in the
units of ``y`` (the seed trains on ``log2(1 + x)``).

How the ``D`` features enter the convolutions (``layout``):

- ``"channels"`` (default): as the authors' released code does it
  (``raktim-mondol/hist2RNA``, ``step_2_model_training.py``: ``Conv1d(in_channels=F, 256,
  kernel_size=5, padding=2)`` on the input permuted to ``(batch, F, 1)``; the paper's
  ``1 x 1 x F`` tensor in channels-last order), the features are the ``D`` input channels
  of a length-1 sequence. Only the centre tap of C1 meets data, so the network is in effect
  the MLP ``D → 256 → 512 → 512 → genes`` with ReLUs (the other taps stay at their initial
  values: they only ever see the zero padding).
- ``"sequence"``: the features are read as a one-channel sequence of length ``D``
  (``Conv1d(1, 256, 5, padding "same")``); the global average pooling then averages over
  the ``D`` feature positions, so the network cannot weight features one by one — on the
  synthetic cohort of the tests it reaches about half the correlation of ``"channels"``.
"""

from __future__ import annotations

import numpy as np

from ..features.bags import Bag
from .bags import TorchBagRegressor
from .contract import MODELS
from .torch_base import check_choice

__all__ = ["LAYOUTS", "Hist2RNA"]

#: how :class:`Hist2RNA` feeds the feature vector to its convolutions
LAYOUTS = ("channels", "sequence")


class Hist2RNA(TorchBagRegressor):
    """hist2RNA: slide-mean features → three 1-D convolutions → global pooling → genes.

    Parameters
    ----------
    layout
        ``"channels"`` (the authors' code: features as input channels) or ``"sequence"``
        (features as a one-channel sequence); see the module docstring.
    lr, weight_decay
        Adam learning rate and L2 weight decay (seed: 1e-3 and none).
    batch_size
        Slides per optimiser step (seed: 12).
    max_epochs, patience
        Epoch cap and early-stopping patience on the validation loss (seed: 150 and 4).
    val_fraction
        Share of the training slides (of the patients, when ``groups`` is given) held out
        for early stopping (the authors' code: 0.1).
    max_tiles
        Unused (each slide is one mean vector); kept for the shared bag-model interface.
    random_state
        Seeds the inner split, the initial weights and the shuffling.
    device
        As in :class:`~histoexpr.models.bags.TorchBagRegressor` (which lists the fitted
        attributes).

    Notes
    -----
    With ``layout="sequence"`` the convolutions slide along the feature axis, whose order is
    arbitrary for a pretrained encoder, and cost ``512 * 512 * D`` multiply-adds per slide
    (about 0.5 G for ``D = 2048``); ``"channels"`` costs ``256 * D + 0.4 M`` plus the
    output layer (about 1 M for ``D = 2048``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> bags = [rng.normal(size=(int(rng.integers(5, 9)), 8)) + i % 3 for i in range(40)]
    >>> y = np.array([[i % 3, 0.0] for i in range(40)]) + rng.normal(0, 0.1, (40, 2))
    >>> m = Hist2RNA(max_epochs=20, device="cpu").fit(bags, y)
    >>> m.predict(bags[:3]).shape
    (3, 2)
    >>> float(np.corrcoef(m.predict(bags)[:, 0], y[:, 0])[0, 1]) > 0.9
    True
    """

    def __init__(self, *, layout: str = "channels", lr: float = 1e-3,
                 weight_decay: float = 0.0, batch_size: int = 12, max_epochs: int = 150,
                 patience: int = 4, val_fraction: float = 0.1, max_tiles: int | None = None,
                 random_state: int | None = 0, device: str | None = None) -> None:
        self._init_params(locals())

    def _check_params(self) -> None:
        check_choice("layout", self.layout, LAYOUTS)

    def _inputs(self, bags: list[Bag]) -> list[np.ndarray]:
        """One row per bag: the mean tile feature vector (seed 001, equation 1)."""
        return [b.features.mean(0, keepdims=True) for b in bags]

    def _build(self, n_in: int, n_out: int):
        from . import nets

        return nets.Hist2RNANet(n_in, n_out, self.layout)


MODELS.register("hist2rna", Hist2RNA)
