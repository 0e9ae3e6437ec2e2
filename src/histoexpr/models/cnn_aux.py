"""BrST-Net: an encoder trained end to end on spot patches, with an auxiliary head.

The main head (one linear layer on the pooled encoder output) predicts the selected genes;
an auxiliary head (one fully connected layer, as in BrST-Net) on the globally pooled
activation of an *earlier* layer predicts the remaining genes. The loss is
``MSE(main) + aux_weight * MSE(aux)`` on per-gene standardised targets (BrST-Net used
λ = 40); the auxiliary task regularises the shared layers. Training follows the paper: SGD
with momentum and weight decay, batch 32, learning rate 1e-3, ``ReduceLROnPlateau``, early
stopping on the validation loss of the main genes, random flips and 90° rotations of the
training patches, no pretrained weights by default.

Which earlier layer (:func:`find_aux_layer`): a module name given as ``aux_layer``; otherwise,
for timm models, the second-to-last entry of ``net.feature_info`` (the second-to-last stage,
e.g. ``blocks.4`` of EfficientNet-B0, ``layer3`` of ResNet, ``blocks.10`` of a ViT); for any
other network, the last leaf module (in forward order) whose output is a 4-D map with more
than one spatial position, i.e. the last layer before the final global pooling (transformers
outside timm have no such layer: name one with ``aux_layer``).

Cheap fine-tuning (departures from seed 003, all off by default): start from ImageNet
weights (``pretrained=True``, e.g. ``encoder="efficientnet_lite0"``, whose weights install
offline), freeze the stem and early stages (``freeze_stages``: no backward pass through
them, so a CPU epoch costs much less), stain-augment the training patches
(``stain_augment``) and, on a GPU, mixed precision with channels-last memory (``amp``).
``benchmarks/bench_finetune.py`` measures their time per epoch and correlation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from ..errors import InputError
from ..training import drop_lone_batch, standardise, target_scaling
from .probe import MODELS
from .tags import ModelTags
from .torch_base import PatchEncoderModel, check_choice, stain_jitter

#: the losses of :class:`CNNAux`: squared error on standardised targets (the default, a
#: regression loss), or BrST-Net's literal "cross-entropy" (seed 003, Eq. 5): binary
#: cross-entropy on targets min-max scaled to [0, 1] over the training spots
LOSSES = ("mse", "bce")


def _unit_interval(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(y - min) / range`` per column (a constant column: range 1), with min and range."""
    lo = y.min(axis=0) if len(y) else np.zeros(y.shape[1])
    rng = (y.max(axis=0) - lo) if len(y) else np.ones(y.shape[1])
    rng = np.where(rng > 0, rng, 1.0)
    return ((y - lo) / rng).astype(np.float32), lo, rng

logger = logging.getLogger(__name__)

__all__ = ["AuxLayer", "CNNAux", "find_aux_layer", "forward_with_aux"]

#: how a hooked activation is pooled to (N, C): channels-first maps, channels-last maps,
#: token sequences (N, T, C), already pooled (N, C)
_POOL_DIMS = {"nchw": (2, 3), "nhwc": (1, 2), "nlc": (1,), "nc": ()}


@dataclass(frozen=True)
class AuxLayer:
    """Where the auxiliary head reads: module name, channels after pooling, layout."""

    name: str
    channels: int
    layout: str


def _first_tensor(out: Any) -> Any:
    while isinstance(out, (tuple, list)):
        out = out[0]
    return out


def _module_names(net: Any, limit: int = 40) -> str:
    names = [n for n, _ in net.named_modules() if n and n.count(".") <= 1]
    more = f" ... ({len(names)} in all; list them with net.named_modules())" \
        if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _dry_run(net: Any, input_size: int, names: list[str]) -> dict[str, Any]:
    """Outputs (last call) of the named modules on a zero image, in eval mode."""
    import torch

    modules = dict(net.named_modules())
    outputs: dict[str, Any] = {}
    handles = [modules[n].register_forward_hook(
        lambda m, i, o, n=n: outputs.__setitem__(n, _first_tensor(o))) for n in names]
    was_training = net.training
    try:
        net.eval()
        with torch.no_grad():
            net(torch.zeros(1, 3, input_size, input_size))
    finally:
        for h in handles:
            h.remove()
        net.train(was_training)
    return outputs


def _layout(out: Any, hint: int | None = None) -> tuple[str, int] | None:
    import torch

    if not isinstance(out, torch.Tensor):
        return None
    if out.ndim == 4:
        if hint is not None and out.shape[1] != hint and out.shape[-1] == hint:
            return "nhwc", int(out.shape[-1])
        return "nchw", int(out.shape[1])
    if out.ndim == 3:
        return "nlc", int(out.shape[-1])
    if out.ndim == 2:
        return "nc", int(out.shape[1])
    return None


def find_aux_layer(net: Any, *, input_size: int, aux_layer: str | None = None,
                   encoder: str = "this encoder") -> AuxLayer:
    """Choose (or check) the layer the auxiliary head reads, with a dry forward pass.

    Parameters
    ----------
    net
        The backbone (``torch.nn.Module``), normalised ``(N, 3, S, S)`` in.
    input_size
        Side of the zero image used for the dry run.
    aux_layer
        A module name (as in ``net.named_modules()``); ``None`` chooses automatically (see
        the module docstring).
    encoder
        Name used in error messages.

    Raises
    ------
    InputError
        ``aux_layer`` is not a module of ``net``, its output is not a 2-, 3- or 4-D tensor,
        or no suitable layer is found automatically; the message lists module names.

    Examples
    --------
    >>> from histoexpr.features.encoders import build_network, get_card
    >>> net, _ = build_network(get_card("toy"), pretrained=False)
    >>> find_aux_layer(net, input_size=32)
    AuxLayer(name='3', channels=16, layout='nchw')
    """
    modules = dict(net.named_modules())
    if aux_layer is not None:
        if aux_layer not in modules:
            raise InputError(f"{encoder} has no module {aux_layer!r}; pass aux_layer= one of: "
                             f"{_module_names(net)}")
        found = _layout(_dry_run(net, input_size, [aux_layer]).get(aux_layer))
        if found is None:
            raise InputError(f"module {aux_layer!r} of {encoder} does not output a 2-, 3- or "
                             f"4-D tensor; pass aux_layer= another of: {_module_names(net)}")
        return AuxLayer(aux_layer, found[1], found[0])
    info = getattr(net, "feature_info", None)
    info = getattr(info, "info", info)  # timm's FeatureInfo wraps the list
    if isinstance(info, (list, tuple)) and len(info) >= 2 and isinstance(info[-2], dict) \
            and info[-2].get("module") in modules:
        name = info[-2]["module"]
        found = _layout(_dry_run(net, input_size, [name]).get(name), info[-2].get("num_chs"))
        if found is not None:
            return AuxLayer(name, found[1], found[0])
    leaves = [n for n, m in modules.items() if n and not any(True for _ in m.children())]
    outputs = _dry_run(net, input_size, leaves)  # dict insertion order = call order
    maps = [n for n, o in outputs.items()
            if getattr(o, "ndim", 0) == 4 and o.shape[-1] * o.shape[-2] > 1]
    later = list(outputs)[list(outputs).index(maps[-1]) + 1:] if maps else []
    if not maps or any(getattr(outputs[n], "ndim", 0) == 3 for n in later):
        # no feature map, or one followed by token sequences (a transformer's patch
        # embedding): there is no "last map before the pooling" to pick
        raise InputError(f"cannot choose an auxiliary layer for {encoder} automatically; pass "
                         f"aux_layer= one of: {_module_names(net)}")
    return AuxLayer(maps[-1], int(outputs[maps[-1]].shape[1]), "nchw")


def forward_with_aux(backbone: Any, x: Any, aux: AuxLayer | None) -> tuple[Any, Any]:
    """``backbone(x)`` and, when ``aux`` is given, its pooled ``(N, C)`` activation there.

    Examples
    --------
    >>> import torch
    >>> from histoexpr.features.encoders import build_network, get_card
    >>> net, _ = build_network(get_card("toy"), pretrained=False)
    >>> feats, a = forward_with_aux(net, torch.zeros(2, 3, 32, 32), AuxLayer("1", 8, "nchw"))
    >>> tuple(feats.shape), tuple(a.shape)
    ((2, 16), (2, 8))
    """
    if aux is None:
        return backbone(x), None
    grabbed: list[Any] = []
    handle = backbone.get_submodule(aux.name).register_forward_hook(
        lambda m, i, o: grabbed.append(_first_tensor(o)))
    try:
        feats = backbone(x)
    finally:
        handle.remove()
    act = grabbed[-1]
    dims = _POOL_DIMS[aux.layout]
    return feats, act.mean(dim=dims) if dims else act


def _check_patches(X: Any) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 4 or X.shape[-1] != 3 or X.dtype != np.uint8:
        raise InputError(f"expected uint8 patches (N, H, W, 3), got {X.shape} {X.dtype}")
    return X


def _check_targets(y: Any, n: int, name: str) -> np.ndarray:
    y = np.asarray(y, np.float64)
    if y.ndim not in (1, 2) or len(y) != n:
        raise InputError(f"{name} must be (n,) or (n, genes) with n = {n} patches, "
                         f"got shape {y.shape}")
    if not np.isfinite(y).all():
        raise InputError(f"{name} holds NaN or infinite values")
    return y.reshape(n, -1)


class _Rows:
    """A map-style dataset of row numbers; :class:`_Collate` turns a batch into tensors."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> int:
        return int(self.rows[i])


class _Collate:
    """Rows → (normalised patches, main targets, aux targets), preprocessed by the card;
    with ``stain`` (a strength) the uint8 patches are stain-perturbed first
    (:func:`~histoexpr.models.torch_base.stain_jitter`, in the worker that collates)."""

    def __init__(self, card: Any, X: np.ndarray, y: Any, y_aux: Any,
                 stain: str | None = None) -> None:
        self.card, self.X, self.y, self.y_aux, self.stain = card, X, y, y_aux, stain

    def __call__(self, rows: list[int]) -> tuple[Any, Any, Any]:
        from ..features.encoders import preprocess_tiles

        idx = np.asarray(rows)
        patches = self.X[idx]
        if self.stain is not None:
            patches = stain_jitter(patches, self.stain)
        return preprocess_tiles(self.card, patches), self.y[idx], self.y_aux[idx]


class CNNAux(PatchEncoderModel, RegressorMixin, BaseEstimator):
    """BrST-Net: encoder + main head (selected genes) + auxiliary head (remaining genes).

    Parameters
    ----------
    encoder, pretrained
        Encoder name and whether to start from its pretrained weights (BrST-Net trained
        from scratch); see :class:`~histoexpr.models.torch_base.PatchEncoderModel`.
    aux_weight
        λ in ``L(main) + λ·L(aux)``; 0 (or no ``y_aux``) trains without the aux head.
    loss
        ``"mse"``: squared error on per-gene standardised targets (the default; BrST-Net's
        "cross-entropy" is not defined for continuous expression); ``"bce"``: the literal
        reading, binary cross-entropy with logits on targets min-max scaled to [0, 1] on the
        training spots (predictions are mapped back; they stay within the training range).
    aux_layer
        Module name the auxiliary head reads; ``None`` chooses it (:func:`find_aux_layer`).
    lr, momentum, weight_decay
        SGD settings.
    batch_size, max_epochs, patience
        Patches per step, epoch cap, early-stopping patience (validation loss of the main
        genes).
    lr_patience
        ``ReduceLROnPlateau`` patience (factor 0.1).
    val_fraction
        Share of patches (or of groups) held out for early stopping.
    augment, num_workers, checkpoint_dir
        As in :class:`~histoexpr.models.torch_base.PatchEncoderModel`.
    device
        ``None`` picks CUDA when available.
    random_state
        Seeds the split, the initial weights, the shuffling and the augmentation.
    freeze_stages
        Encoder stages kept as they are (departure from seed 003, which trained every
        layer): ``0`` (default) none; ``N`` the stem and the first ``N`` stages
        (:func:`~histoexpr.models.torch_base.encoder_stages`; ``efficientnet_lite0`` and
        ``efficientnet_b0`` have 7 after the stem); ``"stem"``; ``"all"`` (only the heads
        train). Their parameters get no gradient and their batch norms stay in eval mode.
        Meant with ``pretrained=True``.
    stain_augment
        ``None`` (default, seed 003 augments by flips and rotations only), ``"light"`` or
        ``"strong"``: training patches get a fresh random stain perturbation each epoch
        (:class:`~histoexpr.stain.augment.StainAugmenter`, HED jitter after Tellez et al.
        2019), before normalisation; validation and prediction see none (departure).
    amp
        Mixed precision (bfloat16, or float16 with loss scaling) and channels-last memory
        on CUDA, for training and prediction (departure: an execution setting, not part of
        a checkpoint's identity); ignored on the CPU.

    Attributes
    ----------
    network_ : histoexpr.features.encoders.tuning.FreezableModuleDict
        ``backbone``, ``head`` and (when used) ``aux``; on CPU in pickles.
    frozen_stages_ : list of str
        Labels of the frozen encoder stages (``[]``: none); ``n_stages_`` counts them all.
    aux_layer_ : AuxLayer or None
        The layer the auxiliary head reads.
    history_ : list of dict
        Per-epoch ``train_loss`` (main + λ·aux), ``val_loss`` (main), ``lr``, ``seconds``.
    n_epochs_, best_epoch_ : int
    y_mean_, y_scale_, aux_mean_, aux_scale_ : ndarray
        Target standardisation of the main and auxiliary genes.
    n_outputs_, n_aux_outputs_ : int

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    >>> y = x.mean(axis=(1, 2, 3))[:, None]
    >>> model = CNNAux(encoder="toy", max_epochs=2, batch_size=8, device="cpu")
    >>> model.fit(x, y, y_aux=np.c_[y, -y]).predict(x).shape, model.predict_aux(x).shape
    ((16, 1), (16, 2))
    """

    #: uint8 image patches (N, H, W, 3) in; the rest of the genes as auxiliary targets
    model_tags = ModelTags(input="patches", torch=True, groups=True, aux_targets=True)

    def __init__(self, *, encoder: str = "efficientnet_b0", pretrained: bool = False,
                 aux_weight: float = 40.0, aux_layer: str | None = None, lr: float = 1e-3,
                 momentum: float = 0.9, weight_decay: float = 1e-4, batch_size: int = 32,
                 max_epochs: int = 200, patience: int = 10, lr_patience: int = 3,
                 val_fraction: float = 0.1, augment: bool = True, num_workers: int = 0,
                 device: str | None = None, checkpoint_dir: str | None = None,
                 random_state: int | None = 0, loss: str = "mse",
                 freeze_stages: int | str = 0, stain_augment: str | None = None,
                 amp: bool = False) -> None:
        self._init_params(locals())

    def _loaders(self, X: np.ndarray, ys: Any, yas: Any, tr: np.ndarray, va: np.ndarray, *,
                 card: Any, stain: str | None, device: Any) -> tuple[Any, Any, Any]:
        """``(train, val, prep)``: the batches and what turns a batch's patches into the
        network's input. Without stain augmentation and when the patches fit
        :data:`~histoexpr.resident.RESIDENT_MAX_BYTES`, the uint8 patches are held on the
        training device and resized/normalised there (``prep``); otherwise a
        ``DataLoader`` (``num_workers``) collates and preprocesses them on the CPU."""
        import torch
        from torch.utils.data import DataLoader

        from .. import resident
        from ..features.encoders.build import normalise_unit

        bs = int(self.batch_size)
        drop = drop_lone_batch(len(tr), bs)
        if stain is None and X.nbytes <= resident.RESIDENT_MAX_BYTES:
            xt = torch.from_numpy(np.ascontiguousarray(X))
            train = resident.ResidentBatches(xt[tr], ys[tr], yas[tr], batch_size=bs,
                                             shuffle=True, drop_last=drop, device=device)
            val = resident.ResidentBatches(xt[va], ys[va], yas[va], batch_size=bs,
                                           device=device)
            return train, val, lambda x: normalise_unit(card, x.permute(0, 3, 1, 2)
                                                        .float().div_(255))
        opts = self._loader_options(device)
        train = DataLoader(_Rows(tr), shuffle=True, drop_last=drop, batch_size=bs,
                           collate_fn=_Collate(card, X, ys, yas, stain), **opts)
        val = DataLoader(_Rows(va), shuffle=False, batch_size=bs,
                         collate_fn=_Collate(card, X, ys, yas), **opts)
        return train, val, lambda x: x

    def fit(self, X, y, y_aux=None, groups=None):
        """Train on uint8 patches ``X`` (N, H, W, 3), main targets ``y`` (N,) or (N, G) and
        optional auxiliary targets ``y_aux`` (N, R); ``groups`` groups the inner split."""
        import torch
        from torch import nn

        X = _check_patches(X)
        n = len(X)
        self.y_ndim_ = np.ndim(y)
        y2 = _check_targets(y, n, "y")
        use_aux = y_aux is not None and float(self.aux_weight) > 0
        if y_aux is not None and not use_aux:
            logger.info("aux_weight=0: y_aux is ignored and no auxiliary head is trained")
        ya2 = _check_targets(y_aux, n, "y_aux") if use_aux else np.zeros((n, 0))
        use_aux = use_aux and ya2.shape[1] > 0
        check_choice("loss", self.loss, LOSSES)
        stain = self._check_stain_augment()
        ys = torch.from_numpy(self._scale_targets(y2))
        self.aux_mean_, self.aux_scale_ = target_scaling(ya2)
        yas = torch.from_numpy(standardise(ya2, self.aux_mean_, self.aux_scale_))
        if self.loss == "bce":
            t, self.y_lo_, self.y_range_ = _unit_interval(y2)
            ta, self.aux_lo_, self.aux_range_ = _unit_interval(ya2)
            ys, yas = torch.from_numpy(t), torch.from_numpy(ta)
        crit = (nn.functional.mse_loss if self.loss == "mse"
                else nn.functional.binary_cross_entropy_with_logits)
        self.n_outputs_, self.n_aux_outputs_ = y2.shape[1], (ya2.shape[1] if use_aux else 0)

        from ..features.encoders.tuning import FreezableModuleDict

        card, backbone, tr, va, device = self._start_encoder(n, groups)
        self._freeze_encoder(backbone)
        aux = find_aux_layer(backbone, input_size=card.input_size, aux_layer=self.aux_layer,
                             encoder=card.name) if use_aux else None
        parts = {"backbone": backbone, "head": nn.Linear(card.embed_dim, self.n_outputs_)}
        if aux is not None:
            parts["aux"] = nn.Linear(aux.channels, self.n_aux_outputs_)
            logger.info("%s: auxiliary head on %r (%d channels) for %d genes", card.name,
                        aux.name, aux.channels, self.n_aux_outputs_)
        model = FreezableModuleDict(parts).to(device)
        self.aux_layer_ = aux
        dtype, scaler = self._start_amp(model, device)

        train, val, prep = self._loaders(X, ys, yas, tr, va, card=card, stain=stain,
                                         device=device)
        weight = float(self.aux_weight)

        def train_loss(net, batch):
            x, yb, yab = batch
            with self._autocast(device, dtype):
                x = self._amp_input(self._augmented(prep(x)), dtype)
                feats, act = forward_with_aux(net["backbone"], x, aux)
                loss = crit(net["head"](feats).float(), yb)
                if act is not None:
                    loss = loss + weight * crit(net["aux"](act).float(), yab)
            return loss

        def val_loss(net, batch):
            with self._autocast(device, dtype):
                out = net["head"](net["backbone"](self._amp_input(prep(batch[0]), dtype)))
                return crit(out.float(), batch[1])

        trainable = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.SGD(trainable, lr=self.lr, momentum=self.momentum,
                              weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=int(self.lr_patience))
        meta = self._checkpoint_meta(n=n, patch=list(X.shape[1:3]), n_genes=self.n_outputs_,
                                     n_aux_genes=self.n_aux_outputs_)
        self._fit_network(model, train, val, optimizer=opt, loss_fn=train_loss,
                          val_loss_fn=val_loss, scheduler=sched, device=device,
                          checkpoint_dir=self.checkpoint_dir, meta=meta, grad_scaler=scaler)
        if dtype is not None:
            self.network_.to(memory_format=torch.contiguous_format)
        return self

    def _predict_both(self, X, want_aux: bool) -> tuple[np.ndarray, np.ndarray | None]:
        check_is_fitted(self, "network_")
        X = _check_patches(X)
        if want_aux and self.aux_layer_ is None:
            raise InputError("this CNNAux was fitted without an auxiliary head (no y_aux, or "
                             "aux_weight=0); there is nothing for predict_aux to return")

        def heads(net, x):
            feats, act = forward_with_aux(net["backbone"], x,
                                          self.aux_layer_ if want_aux else None)
            return (net["head"](feats).float().cpu().numpy(),
                    net["aux"](act).float().cpu().numpy() if want_aux else None)

        parts = self._patch_outputs([X], heads)[0]
        main, aux = [m for m, _ in parts], [a for _, a in parts]
        pred = np.concatenate(main) if main else np.zeros((0, self.n_outputs_))
        bce = getattr(self, "loss", "mse") == "bce"
        pred = (_sigmoid(pred) * self.y_range_ + self.y_lo_).astype(np.float32) if bce \
            else self._in_units(pred)
        if self.y_ndim_ == 1:
            pred = pred[:, 0]
        if not want_aux:
            return pred, None
        pa = np.concatenate(aux) if aux else np.zeros((0, self.n_aux_outputs_))
        if bce:
            return pred, (_sigmoid(pa) * self.aux_range_ + self.aux_lo_).astype(np.float32)
        return pred, (pa * self.aux_scale_ + self.aux_mean_).astype(np.float32)

    def predict(self, X):
        """Main-gene predictions for uint8 patches (N, H, W, 3): float32 (N, G) (or (N,))."""
        return self._predict_both(X, want_aux=False)[0]

    def predict_aux(self, X):
        """Auxiliary-gene predictions: float32 (N, R)."""
        return self._predict_both(X, want_aux=True)[1]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


MODELS.register("cnn_aux", CNNAux, priority=7)
