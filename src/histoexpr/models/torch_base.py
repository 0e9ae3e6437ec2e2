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
  prediction on batches of patches preprocessed for the card; for the models that take
  them, the options that make fine-tuning cheap: frozen early stages
  (:func:`encoder_stages`, :func:`freeze_stages`), stain augmentation of the training
  patches (:func:`stain_jitter`) and mixed precision with channels-last on CUDA (``amp``).
- :func:`check_choice`, :func:`check_dropout`: parameter checks several models share.

Torch is imported only when a model is fitted or used.
"""

from __future__ import annotations

import logging
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

logger = logging.getLogger(__name__)

__all__ = ["FREEZE_NAMES", "PatchEncoderModel", "TorchEstimator", "check_choice",
           "check_dropout", "encoder_stages", "freeze_stages", "stain_jitter"]

#: parameters that may change between the fits of one checkpoint folder (execution
#: settings: ``amp`` is one, like the device it needs)
_NOT_IN_META = frozenset({"device", "num_workers", "checkpoint_dir", "max_epochs", "amp"})

#: the named values of ``freeze_stages`` besides a number of stages
FREEZE_NAMES = ("none", "stem", "all")


def check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    """Raise :class:`InputError` unless parameter ``name`` is one of ``choices``."""
    if value not in choices:
        raise InputError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


def check_dropout(dropout: Any) -> None:
    """Raise :class:`InputError` unless ``dropout`` is a probability in [0, 1)."""
    if not 0.0 <= float(dropout) < 1.0:
        raise InputError(f"dropout must be in [0, 1), got {dropout!r}")


def _stage_label(names: list[str]) -> str:
    """``blocks.3`` for the parameters of one stage (``+`` joins several modules)."""
    tops: list[str] = []
    for n in names:
        parts = n.split(".")
        top = ".".join(parts[:2]) if len(parts) > 2 and parts[1].isdigit() else parts[0]
        if top not in tops:
            tops.append(top)
    return "+".join(tops)


def encoder_stages(net: Any) -> list[tuple[str, list[str]]]:
    """The encoder's parameter names in stages, input side first; the first is the stem.

    timm models: timm's coarse layer groups (``group_matcher(coarse=True)``): the stem, then
    one group per stage (EfficientNet and ``efficientnet_lite0``: ``blocks.0`` ...
    ``blocks.6``, the last with the head convolution; ResNet: ``layer1`` ... ``layer4``;
    ViT: each block). A wrapper without parameters of its own around one module (an
    intermediate-layer encoder ``NAME@LAYER``) is looked through. Any other network: one
    stage per top-level child holding parameters, in registration order.

    Returns
    -------
    list of (label, parameter names)
        The first label is ``"stem"``; the others name their modules (``"blocks.3"``).

    Examples
    --------
    >>> from histoexpr.features.encoders import build_network, get_card
    >>> net, _ = build_network(get_card("toy"), pretrained=False)
    >>> encoder_stages(net)
    [('stem', ['0.weight', '0.bias']), ('2', ['2.weight', '2.bias'])]
    """
    prefix, inner = "", net
    while not callable(getattr(inner, "group_matcher", None)):
        kids = [(n, m) for n, m in inner.named_children() if any(True for _ in m.parameters())]
        if len(kids) != 1 or any(True for _ in inner.parameters(recurse=False)):
            break
        prefix, inner = prefix + kids[0][0] + ".", kids[0][1]
    groups: list[list[str]] = []
    matcher = getattr(inner, "group_matcher", None)
    if callable(matcher):
        try:
            from timm.models import group_parameters

            groups = [list(v) for v in group_parameters(inner, matcher(coarse=True)).values()
                      if v]
        except (NotImplementedError, TypeError, AttributeError, ImportError) as e:
            logger.debug("group_matcher failed (%s); one stage per child module instead", e)
            groups = []
    if not groups:
        tops: list[str] = []
        for name, _ in inner.named_parameters():
            top = name.split(".")[0]
            if not tops or tops[-1] != top:
                tops.append(top)
                groups.append([])
            groups[-1].append(name)
    return [("stem" if i == 0 else _stage_label(g), [prefix + n for n in g])
            for i, g in enumerate(groups)]


def _n_frozen(spec: Any, n_groups: int) -> int:
    """How many leading stages (stem first) ``freeze_stages=spec`` freezes."""
    if isinstance(spec, str) and spec.strip().isdigit():
        spec = int(spec)
    if spec is None or spec == "none":
        return 0
    if spec == "stem":
        return 1
    if spec == "all":
        return n_groups
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool) \
            and 0 <= spec <= n_groups - 1:
        return 0 if spec == 0 else int(spec) + 1
    raise InputError(f"unknown freeze_stages {spec!r}: give the number of stages after the "
                     f"stem to freeze with it (0 to {n_groups - 1} for this encoder; 0 "
                     f"freezes nothing) or one of {', '.join(FREEZE_NAMES)}")


def freeze_stages(net: Any, spec: int | str | None) -> list[str]:
    """Freeze the early stages of an encoder (:func:`encoder_stages`); return their labels.

    Parameters
    ----------
    net
        The encoder network; its other parameters are left as they are.
    spec
        ``0``, ``None`` or ``"none"``: nothing; ``N >= 1``: the stem and the first ``N``
        stages after it; ``"stem"``: the stem only; ``"all"``: every parameter of the
        encoder (only the new heads train).

    Raises
    ------
    InputError
        ``spec`` is none of these, or more stages than the encoder has.

    Examples
    --------
    >>> from histoexpr.features.encoders import build_network, get_card
    >>> net, _ = build_network(get_card("toy"), pretrained=False)
    >>> freeze_stages(net, "stem"), [p.requires_grad for p in net.parameters()]
    (['stem'], [False, False, True, True])
    """
    stages = encoder_stages(net)
    k = _n_frozen(spec, len(stages))
    frozen = {n for _, names in stages[:k] for n in names}
    for name, p in net.named_parameters():
        if name in frozen:
            p.requires_grad_(False)
    return [label for label, _ in stages[:k]]


def stain_jitter(patches: np.ndarray, strength: str) -> np.ndarray:
    """uint8 ``(N, H, W, 3)`` patches under a random stain perturbation
    (:class:`~histoexpr.stain.augment.StainAugmenter` ``"light"`` or ``"strong"``).

    The augmenter's seed is drawn from torch's global generator, one per call (per batch):
    in the main process a seeded fit repeats its draws; in a ``DataLoader`` worker the
    worker's generator, which torch seeds from the main process's, so it repeats too for a
    given ``num_workers``. Within a batch each patch's draw also depends on its pixels.

    Examples
    --------
    >>> import torch
    >>> rng = np.random.default_rng(0)
    >>> x = rng.integers(60, 230, (2, 8, 8, 3), dtype=np.uint8)
    >>> _ = torch.manual_seed(0); a = stain_jitter(x, "light")
    >>> _ = torch.manual_seed(0); b = stain_jitter(x, "light")
    >>> bool((a == b).all()), bool((a != x).any())
    (True, True)
    """
    import torch

    from ..stain.augment import StainAugmenter

    seed = int(torch.randint(0, 2**31 - 1, ()).item())
    return StainAugmenter.named(strength, seed=seed).transform(patches)


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

    and may take the options of cheap fine-tuning (used through the helpers below):

    freeze_stages
        Early encoder stages whose weights stay as they are (:func:`freeze_stages`): no
        gradients, batch norms in eval mode (the network is a
        :class:`~histoexpr.features.encoders.tuning.FreezableModuleDict` or keeps them so
        itself); backpropagation stops at the first trained stage.
    stain_augment
        ``"light"`` or ``"strong"``: each training batch is stain-perturbed
        (:func:`stain_jitter`) before it is normalised, in the ``DataLoader`` workers (the
        main process with ``num_workers=0``); a fresh draw every epoch.
    amp
        On CUDA: autocast to bfloat16 (float16 with a gradient scaler on GPUs without
        bfloat16) and channels-last memory for training and prediction. Ignored on the CPU
        (logged), where a fit is the same as without it.

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

    def _check_stain_augment(self) -> str | None:
        """The ``stain_augment`` strength (``None``: off); unknown ones raise InputError."""
        from ..stain.augment import AUGMENT_STRENGTHS

        strength = getattr(self, "stain_augment", None)
        if strength is not None:
            check_choice("stain_augment", strength, tuple(AUGMENT_STRENGTHS))
        return strength

    def _freeze_encoder(self, backbone: Any) -> list[str]:
        """Freeze the stages ``freeze_stages`` names (:func:`freeze_stages`); keeps
        ``frozen_stages_`` (their labels) and ``n_stages_`` (stages of the encoder)."""
        spec = getattr(self, "freeze_stages", 0)
        self.n_stages_ = len(encoder_stages(backbone))
        self.frozen_stages_ = freeze_stages(backbone, spec)
        if self.frozen_stages_:
            logger.info("%s: %d of %d stages frozen (%s)", self.card_.name,
                        len(self.frozen_stages_), self.n_stages_,
                        ", ".join(self.frozen_stages_))
            if not self.pretrained:
                logger.warning("freeze_stages=%r with pretrained=False: the frozen stages "
                               "keep their random weights", spec)
        return self.frozen_stages_

    def _amp_dtype(self, device: Any) -> Any:
        """The autocast dtype of ``amp`` on ``device``: bfloat16 (float16 on GPUs without
        it) on CUDA; ``None`` when ``amp`` is off or the device is not CUDA."""
        if not getattr(self, "amp", False) or device.type != "cuda":
            return None
        import torch

        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def _start_amp(self, model: Any, device: Any) -> tuple[Any, Any]:
        """``(autocast dtype or None, GradScaler or None)`` for a fit on ``device``; puts
        ``model`` in channels-last memory when autocast is on; logs ``amp`` on a CPU."""
        dtype = self._amp_dtype(device)
        if getattr(self, "amp", False) and dtype is None:
            logger.info("amp=True is ignored on %s: mixed precision and channels-last are "
                        "used on CUDA only", device)
        if dtype is None:
            return None, None
        import torch

        model.to(memory_format=torch.channels_last)
        scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
        return dtype, scaler

    @staticmethod
    @contextmanager
    def _autocast(device: Any, dtype: Any) -> Iterator[None]:
        """``torch.autocast`` to ``dtype`` on ``device``; nothing when ``dtype`` is None."""
        if dtype is None:
            yield
            return
        import torch

        with torch.autocast(device_type=device.type, dtype=dtype):
            yield

    @staticmethod
    def _amp_input(x: Any, dtype: Any) -> Any:
        """A batch in channels-last memory when autocast is on (``dtype`` not None)."""
        if dtype is None:
            return x
        import torch

        return x.contiguous(memory_format=torch.channels_last)

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
            dtype = self._amp_dtype(device)
            if dtype is None:
                return [[fn(net, self._prepare(s[i:i + step]).to(device))
                         for i in range(0, len(s), step)] for s in stacks]
            import torch

            net.to(memory_format=torch.channels_last)
            try:
                with self._autocast(device, dtype):
                    return [[fn(net, self._amp_input(self._prepare(s[i:i + step]).to(device),
                                                     dtype))
                             for i in range(0, len(s), step)] for s in stacks]
            finally:
                net.to(memory_format=torch.contiguous_format)
