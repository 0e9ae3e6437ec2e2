"""The bases of the torch estimators: parameters, fit bookkeeping and inference, once.

- :class:`TorchEstimator`: every torch model (:class:`~histoexpr.models.mlp.MLPHead`, the
  bag models through :class:`~histoexpr.models.bags.TorchBagRegressor`, and the two below)
  stores its parameters, scales its targets, splits and seeds, fits through
  :func:`histoexpr.training.fit_loop` and runs its fitted network with it.
- :class:`PatchEncoderModel`: the models that train a registry encoder end to end on uint8
  patches, :class:`~histoexpr.models.cnn_aux.CNNAux` (BrST-Net) and
  :class:`~histoexpr.models.gastric_finetune.GastricFinetune` (seed 000's M1): the encoder
  card and network, checkpoint metadata (a fit started again with the same
  ``checkpoint_dir`` resumes), random flips and 90° rotations of the training patches, and
  prediction on batches of patches preprocessed for the card.
- :func:`check_choice`, :func:`check_dropout`: parameter checks several models share.

Torch is imported only when a model is fitted or used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..errors import InputError
from ..training import (
    CPUPickleMixin,
    fit_loop,
    inner_split,
    resolve_device,
    seed_everything,
    standardise,
    target_scaling,
)

__all__ = ["PatchEncoderModel", "TorchEstimator", "check_choice", "check_dropout"]

#: parameters that may change between the fits of one checkpoint folder
_NOT_IN_META = frozenset({"device", "num_workers", "checkpoint_dir", "max_epochs"})


def check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    """Raise :class:`InputError` unless parameter ``name`` is one of ``choices``."""
    if value not in choices:
        raise InputError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


def check_dropout(dropout: Any) -> None:
    """Raise :class:`InputError` unless ``dropout`` is a probability in [0, 1)."""
    if not 0.0 <= float(dropout) < 1.0:
        raise InputError(f"dropout must be in [0, 1), got {dropout!r}")


class TorchEstimator(CPUPickleMixin):
    """Mixin of the torch estimators of :mod:`histoexpr.models` (with scikit-learn's
    ``RegressorMixin, BaseEstimator``).

    Subclasses declare every parameter in ``__init__`` (scikit-learn reads the signature)
    and store them with ``self._init_params(locals())``. They have at least ``lr``,
    ``weight_decay``, ``batch_size``, ``max_epochs`` and ``patience`` (early stopping on the
    validation loss), ``val_fraction`` (share of the rows, or of the ``groups``, held out for
    it: :func:`~histoexpr.training.inner_split`), ``random_state`` and ``device`` (``None``
    picks CUDA when available).

    Fitted: ``network_`` (on the CPU after ``fit`` and in pickles), ``y_mean_``/``y_scale_``
    (target standardisation), ``history_`` (per epoch, from
    :func:`~histoexpr.training.fit_loop`), ``n_epochs_`` and ``best_epoch_`` (the epoch whose
    weights were kept).
    """

    def _init_params(self, params: Mapping[str, Any]) -> None:
        """Store ``__init__``'s arguments (its ``locals()``) unchanged, as scikit-learn wants."""
        for name, value in params.items():
            if name not in ("self", "__class__"):
                setattr(self, name, value)

    def _scale_targets(self, y: np.ndarray) -> np.ndarray:
        """Fit ``y_mean_``/``y_scale_`` (:func:`~histoexpr.training.target_scaling`) on the
        2-D ``y``; return ``y`` standardised (float32)."""
        self.y_mean_, self.y_scale_ = target_scaling(y)
        return standardise(y, self.y_mean_, self.y_scale_)

    def _in_units(self, pred: Any) -> np.ndarray:
        """Standardised predictions back in the units of ``y``, float32."""
        return (pred * self.y_scale_ + self.y_mean_).astype(np.float32)

    def _start_fit(self, n: int, groups: Any = None) -> tuple[np.ndarray, np.ndarray, Any]:
        """The inner split of ``n`` rows and the device, every generator seeded: call it
        right before the network is built."""
        tr, va = inner_split(n, self.val_fraction, self.random_state, groups)
        device = resolve_device(self.device)
        seed_everything(self.random_state)
        return tr, va, device

    def _fit_network(self, net: Any, train: Any, val: Any, **kw: Any) -> Any:
        """:func:`~histoexpr.training.fit_loop` with ``max_epochs`` and ``patience`` (``kw``:
        the rest); keeps the history and the best network, on the CPU; returns ``self``."""
        self.history_ = fit_loop(net, train, val, max_epochs=self.max_epochs,
                                 patience=self.patience, **kw)
        self.n_epochs_ = len(self.history_)
        self.best_epoch_ = int(min(self.history_, key=lambda h: h["val_loss"])["epoch"])
        self.network_ = net.cpu().eval()
        return self

    @contextmanager
    def _inference(self) -> Iterator[tuple[Any, Any]]:
        """``(network, device)``: the fitted network on the device in eval and inference
        mode; it is back on the CPU afterwards, also after an error."""
        import torch

        device = resolve_device(self.device)
        net = self.network_.to(device).eval()
        try:
            with torch.inference_mode():
                yield net, device
        finally:
            self.network_ = net.cpu()


class PatchEncoderModel(TorchEstimator):
    """Mixin of the torch estimators that train an encoder on patches (with scikit-learn's
    ``RegressorMixin, BaseEstimator``).

    Besides the parameters of :class:`TorchEstimator` (``device`` among them), subclasses take:

    encoder
        Name in the encoder registry (:data:`histoexpr.features.encoders.ENCODERS`).
    pretrained
        Start from the card's pretrained weights (resolved offline first).
    augment
        Random horizontal/vertical flips and 90° rotations of the training patches.
    num_workers
        ``DataLoader`` workers that cut and normalise batches.
    checkpoint_dir
        Folder for ``last.pt``/``best.pt``; a fit started again resumes from ``last.pt``.

    Fitted, besides the attributes of :class:`TorchEstimator`: ``card_`` (the encoder card)
    and ``weights_source_`` (where its pretrained weights came from).
    """

    def _start_encoder(self, n: int, groups: Any = None) -> tuple[Any, Any, Any, Any, Any]:
        """``(card, backbone, train rows, validation rows, device)``: the encoder's card and
        network, built after the inner split of ``n`` rows with every generator seeded."""
        from ..features.encoders import build_network, get_card

        card = self.card_ = get_card(self.encoder)
        tr, va, device = self._start_fit(n, groups)
        backbone, res = build_network(card, pretrained=self.pretrained)
        self.weights_source_ = res.source
        return card, backbone, tr, va, device

    def _loader_options(self, device: Any) -> dict[str, Any]:
        """``DataLoader`` worker settings for loaders that feed ``device``."""
        return {"num_workers": int(self.num_workers), "pin_memory": device.type == "cuda"}

    def _augmented(self, x: Any) -> Any:
        """A training batch, randomly flipped and rotated when ``augment`` is on."""
        from ..features.encoders.tuning import dihedral

        return dihedral(x) if self.augment else x

    def _checkpoint_meta(self, **data: Any) -> dict[str, Any]:
        """The checkpoints' ``meta``: the parameters that must not change between the fits
        of one checkpoint folder, and ``data`` (what describes the training data)."""
        meta = {k: v for k, v in self.get_params().items() if k not in _NOT_IN_META}
        meta.update(data)
        return meta

    def _prepare(self, patches: np.ndarray) -> Any:
        """uint8 ``(N, H, W, 3)`` patches as the network's normalised input."""
        from ..features.encoders import preprocess_tiles

        return preprocess_tiles(self.card_, patches)

    def _patch_outputs(self, stacks: list[np.ndarray], fn: Callable[[Any, Any], Any]
                       ) -> list[list[Any]]:
        """Per uint8 patch stack, ``fn(network, x)`` on each batch of its patches, prepared
        (:meth:`_prepare`) and on the device, in inference mode."""
        step = max(int(self.batch_size), 64)
        with self._inference() as (net, device):
            return [[fn(net, self._prepare(s[i:i + step]).to(device))
                     for i in range(0, len(s), step)] for s in stacks]
