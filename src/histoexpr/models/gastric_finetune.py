"""Seed 000's "Simplified Version Model" (M1): a pretrained encoder fine-tuned on patches.

The network stacks the encoder without its classifier, its pooled output (global average
pooling for CNNs such as ResNet-50; timm's own pooling otherwise) and new fully connected
layers (``hidden`` widths, ReLU, dropout) ending in one output per gene. The early layers of
the encoder stay frozen (:func:`freeze_early_blocks`), the rest is retrained with Adam on
per-gene standardised targets, with early stopping on the slide-level validation loss of a
patient-grouped inner split.

Data: ``X`` is one uint8 array ``(N_i, H, W, 3)`` of patches per slide (read with
:func:`histoexpr.features.bags.read_bag_patches`), ``y`` one expression row per slide.
Every training patch carries its slide's expression; each epoch draws ``n_patches`` patches
per training slide (fewer when the slide has fewer). A slide's prediction is the mean of
its patches' predictions (all patches at predict; the validation loss uses a fixed draw of
up to ``n_patches`` per validation slide). With ``minmax=True`` each patch is min-max
normalised (:func:`~histoexpr.features.bags.minmax_normalise`), then resized and
normalised with the encoder card's mean/std. Training patches are randomly flipped and
rotated by multiples of 90°.

Which layers are "early" (:func:`encoder_blocks`): the encoder's parameters are split into
blocks in forward order. For timm models these are timm's own fine-grained layer groups
(``group_matcher(coarse=False)``, the groups used for layer-wise learning-rate decay): the
stem, then each block (ResNet-50: stem + 16 bottlenecks = 17; EfficientNet-B0: 17; ViT-B:
embeddings + 12 blocks). For any other network, each module that directly holds parameters
is one block, in registration order. ``freeze`` is the fraction of blocks frozen from the
input side: ``floor(freeze * n_blocks)`` blocks get ``requires_grad = False`` and their
batch-norm layers stay in eval mode (running statistics kept, as Keras does for frozen
layers). ``freeze=0`` fine-tunes everything; ``freeze=1`` trains only the new head.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from ..errors import InputError
from ..training import drop_lone_batch
from .bags import check_targets
from .contract import MODELS
from .tags import ModelTags
from .torch_base import PatchEncoderModel, check_dropout

logger = logging.getLogger(__name__)

__all__ = ["GastricFinetune", "encoder_blocks", "freeze_early_blocks", "prepare_patches"]


# -- freezing -------------------------------------------------------------------------------
def encoder_blocks(net: Any) -> list[list[str]]:
    """The encoder's parameter names grouped into blocks, input side first.

    timm models: ``timm.models.group_parameters(net, net.group_matcher(coarse=False))``;
    other networks: one block per module that directly holds parameters (see the module
    docstring).

    Examples
    --------
    >>> from histoexpr.features.encoders import build_network, get_card
    >>> net, _ = build_network(get_card("toy"), pretrained=False)
    >>> encoder_blocks(net)
    [['0.weight', '0.bias'], ['2.weight', '2.bias']]
    """
    matcher = getattr(net, "group_matcher", None)
    if callable(matcher):
        try:
            from timm.models import group_parameters

            groups = group_parameters(net, matcher(coarse=False))
            blocks = [list(v) for v in groups.values() if v]
            if blocks:
                return blocks
        except (NotImplementedError, TypeError, AttributeError, ImportError) as e:
            logger.debug("group_matcher failed (%s); one block per module instead", e)
    blocks: list[list[str]] = []
    owner = None
    for name, _ in net.named_parameters():
        o = name.rpartition(".")[0]
        if o != owner or not blocks:
            blocks.append([])
            owner = o
        blocks[-1].append(name)
    return blocks


def freeze_early_blocks(net: Any, freeze: float) -> tuple[int, int]:
    """Freeze the first ``floor(freeze * n_blocks)`` blocks of :func:`encoder_blocks`.

    Sets ``requires_grad = False`` on their parameters (and ``True`` on every other one);
    returns ``(n_frozen, n_blocks)``.

    Examples
    --------
    >>> from histoexpr.features.encoders import build_network, get_card
    >>> net, _ = build_network(get_card("toy"), pretrained=False)
    >>> freeze_early_blocks(net, 0.5), [p.requires_grad for p in net.parameters()]
    ((1, 2), [False, False, True, True])
    """
    f = float(freeze)
    if not 0.0 <= f <= 1.0:
        raise InputError(f"freeze is the fraction of encoder blocks to freeze, in [0, 1]; "
                         f"got {freeze}")
    blocks = encoder_blocks(net)
    k = math.floor(f * len(blocks) + 1e-9)
    frozen = {n for b in blocks[:k] for n in b}
    for name, p in net.named_parameters():
        p.requires_grad_(name not in frozen)
    return k, len(blocks)


# -- data -----------------------------------------------------------------------------------
def prepare_patches(card: Any, patches: np.ndarray, *, minmax: bool):
    """uint8 ``(N, H, W, 3)`` → normalised float tensor ``(N, 3, S, S)`` for ``card``.

    Without ``minmax`` this is :func:`histoexpr.features.encoders.preprocess_tiles`; with
    it each patch is first min-max normalised to [0, 1], then resized and normalised with the
    card's mean/std exactly as ``preprocess_tiles`` does with ``x / 255``.
    """
    import torch

    from ..features.bags import minmax_normalise
    from ..features.encoders import normalise_unit, preprocess_tiles

    if not minmax:
        return preprocess_tiles(card, patches)
    return normalise_unit(card, torch.from_numpy(minmax_normalise(patches)).permute(0, 3, 1, 2))


def _check_patch_bags(X: Any) -> list[np.ndarray]:
    if isinstance(X, np.ndarray) and X.dtype != object:
        if X.ndim != 5:
            raise InputError(f"patch bags as one array must be (n_slides, N, H, W, 3), got "
                             f"shape {X.shape}")
        X = list(X)
    out = []
    for i, x in enumerate(X):
        if hasattr(x, "features") and hasattr(x, "coords"):
            raise InputError("GastricFinetune takes image patches per slide (input "
                             "'patch_bags'), not feature bags; read them with "
                             "histoexpr.features.bags.read_bag_patches")
        a = np.asarray(x)
        if a.ndim != 4 or a.shape[-1] != 3 or a.dtype != np.uint8 or len(a) == 0:
            raise InputError(f"slide {i}: expected uint8 patches (N, H, W, 3) with N >= 1, got "
                             f"{a.shape} {a.dtype}")
        out.append(a)
    if not out:
        raise InputError("no slides: X is empty")
    return out


class _Rows:
    """Map-style dataset of integers; the collate functions turn them into tensors."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return int(i)


class _PatchSampler:
    """Each epoch: up to ``k`` patches per slide (without replacement), shuffled together.

    Draws from torch's global generator, so a resumed :func:`fit_loop` repeats the draws.
    """

    def __init__(self, counts: list[int], k: int | None) -> None:
        self.counts, self.k = counts, k
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int).tolist()

    def __len__(self) -> int:
        return int(sum(n if self.k is None else min(self.k, n) for n in self.counts))

    def __iter__(self):
        import torch

        picks = [s + torch.randperm(n)[: (n if self.k is None else self.k)]
                 for s, n in zip(self.starts, self.counts)]
        flat = torch.cat(picks)
        return iter(flat[torch.randperm(len(flat))].tolist())


class _TrainCollate:
    """Flat patch ids → (patches, their slides' standardised targets)."""

    def __init__(self, card, X, slide_of, patch_of, y, minmax) -> None:
        self.card, self.X, self.slide_of, self.patch_of = card, X, slide_of, patch_of
        self.y, self.minmax = y, minmax

    def __call__(self, ids: list[int]):
        import torch

        ids = np.asarray(ids)
        s, j = self.slide_of[ids], self.patch_of[ids]
        x = np.stack([self.X[a][b] for a, b in zip(s, j)])
        return prepare_patches(self.card, x, minmax=self.minmax), torch.from_numpy(self.y[s])


class _ValCollate:
    """Slide ids → (targets (k, G), patches (M, 3, S, S), slide of each patch (M,)).

    Targets come first so that :func:`fit_loop` weights each batch by its slides.
    """

    def __init__(self, card, X, picks, y, minmax) -> None:
        self.card, self.X, self.picks, self.y, self.minmax = card, X, picks, y, minmax

    def __call__(self, ids: list[int]):
        import torch

        x = np.concatenate([self.X[i][self.picks[i]] for i in ids])
        seg = np.repeat(np.arange(len(ids)), [len(self.picks[i]) for i in ids])
        return (torch.from_numpy(self.y[ids]), prepare_patches(self.card, x, minmax=self.minmax),
                torch.from_numpy(seg))


def _slide_means(pred, seg, n: int):
    import torch

    sums = torch.zeros(n, pred.shape[1], dtype=pred.dtype, device=pred.device)
    sums.index_add_(0, seg, pred)
    counts = torch.bincount(seg, minlength=n).to(pred.dtype).clamp_min(1)
    return sums / counts[:, None]


# -- the estimator --------------------------------------------------------------------------
class GastricFinetune(PatchEncoderModel, RegressorMixin, BaseEstimator):
    """Seed 000's M1: pretrained encoder (early blocks frozen) + new FC layers, per patch.

    Parameters
    ----------
    encoder, pretrained
        The encoder (seed 000: ImageNet ResNet-50) and whether to start from its
        pretrained weights; see :class:`~histoexpr.models.torch_base.PatchEncoderModel`.
    freeze
        Fraction of the encoder's blocks frozen from the input side (module docstring).
    hidden
        Widths of the new hidden fully connected layers (each ReLU + dropout).
    dropout
        Dropout after each hidden layer.
    minmax
        Min-max normalise each patch (seed 000) before the card's mean/std normalisation.
    n_patches
        Patches drawn per training slide each epoch (and kept per validation slide);
        ``None`` uses all of them.
    lr, weight_decay
        Adam settings (over the trainable parameters only).
    batch_size, max_epochs, patience
        Patches per step, epoch cap, early-stopping patience (slide-level validation MSE).
    val_fraction
        Share of slides (of patients, with ``groups``) held out for early stopping.
    augment, num_workers, device, checkpoint_dir
        As in :class:`~histoexpr.models.torch_base.PatchEncoderModel`.
    random_state
        Seeds the split, the head's initial weights, the patch draws, dropout and the
        augmentation.

    Attributes
    ----------
    network_ : histoexpr.features.encoders.tuning.FinetuneNet
        ``backbone`` + ``head``; on CPU in pickles.
    n_blocks_, n_frozen_blocks_ : int
        Encoder blocks and how many of them were frozen.
    history_ : list of dict
        Per-epoch ``train_loss`` (patch MSE), ``val_loss`` (slide MSE), ``lr``, ``seconds``.
    n_epochs_, best_epoch_, n_outputs_ : int
    y_mean_, y_scale_ : ndarray
        Target standardisation.
    card_, weights_source_
        As in :class:`~histoexpr.models.torch_base.PatchEncoderModel`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = [rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8) for _ in range(6)]
    >>> y = rng.normal(size=(6, 2))
    >>> m = GastricFinetune(encoder="toy", pretrained=False, max_epochs=2, device="cpu")
    >>> m.fit(X, y).predict(X).shape, m.n_frozen_blocks_, m.n_blocks_
    ((6, 2), 1, 2)
    """

    #: per slide, uint8 image patches (N_i, H, W, 3) in
    model_tags = ModelTags(input="patch_bags", torch=True, groups=True)

    def __init__(self, *, encoder: str = "resnet50", pretrained: bool = True,
                 freeze: float = 0.75, hidden: tuple[int, ...] = (256,), dropout: float = 0.25,
                 minmax: bool = True, n_patches: int | None = 10, lr: float = 1e-4,
                 weight_decay: float = 0.0, batch_size: int = 32, max_epochs: int = 50,
                 patience: int = 5, val_fraction: float = 0.2, augment: bool = True,
                 num_workers: int = 0, device: str | None = None,
                 checkpoint_dir: str | None = None, random_state: int | None = 0) -> None:
        self._init_params(locals())

    def _check_params(self) -> tuple[tuple[int, ...], int | None]:
        hidden = tuple(int(h) for h in (self.hidden or ()))
        if any(h < 1 for h in hidden):
            raise InputError(f"hidden widths must be >= 1, got {self.hidden}")
        check_dropout(self.dropout)
        k = None if self.n_patches is None else int(self.n_patches)
        if k is not None and k < 1:
            raise InputError(f"n_patches must be >= 1 or None (all), got {self.n_patches}")
        if int(self.batch_size) < 1:
            raise InputError(f"batch_size must be >= 1, got {self.batch_size}")
        return hidden, k

    def fit(self, X, y, groups=None):
        """Train on per-slide uint8 patches ``X`` and slide targets ``y`` (n_slides, n_genes);
        ``groups`` (the patient of each slide) keeps the inner split patient-disjoint."""
        import torch
        from torch import nn
        from torch.utils.data import DataLoader

        from . import nets

        hidden, k = self._check_params()
        bags = _check_patch_bags(X)
        n = len(bags)
        y2 = check_targets(y, n)
        if n < 3:
            raise InputError(f"GastricFinetune needs at least 3 training slides (2 to train, 1 "
                             f"to stop early), got {n}")
        sizes = {b.shape[1:3] for b in bags}
        if len(sizes) > 1:
            raise InputError(f"patches differ in size between slides {sorted(sizes)}; read "
                             "every bag with one size_px")
        ys = self._scale_targets(y2)
        self.n_outputs_ = y2.shape[1]
        card, backbone, tr, va, device = self._start_encoder(n, groups)
        self.n_frozen_blocks_, self.n_blocks_ = freeze_early_blocks(backbone, self.freeze)
        model = nets.FinetuneNet(backbone, card.embed_dim, hidden, float(self.dropout),
                                 self.n_outputs_).to(device)
        trainable = [p for p in model.parameters() if p.requires_grad]
        logger.info("%s: %d of %d encoder blocks frozen; %d trainable parameters", card.name,
                    self.n_frozen_blocks_, self.n_blocks_, sum(p.numel() for p in trainable))

        counts = [len(bags[i]) for i in tr]
        slide_of = np.repeat(tr, counts)
        patch_of = np.concatenate([np.arange(c) for c in counts])
        rng = np.random.default_rng(self.random_state)
        picks = {int(i): (np.arange(len(bags[i])) if k is None or len(bags[i]) <= k
                          else np.sort(rng.choice(len(bags[i]), k, replace=False)))
                 for i in va}
        bs = int(self.batch_size)
        common = self._loader_options(device)
        sampler = _PatchSampler(counts, k)
        train = DataLoader(_Rows(len(slide_of)), batch_size=bs, sampler=sampler,
                           drop_last=drop_lone_batch(len(sampler), bs),
                           collate_fn=_TrainCollate(card, bags, slide_of, patch_of, ys,
                                                    bool(self.minmax)), **common)
        per_slide = max(len(p) for p in picks.values())
        val = DataLoader([int(i) for i in va], batch_size=max(1, bs // per_slide),
                         shuffle=False, collate_fn=_ValCollate(card, bags, picks, ys,
                                                               bool(self.minmax)), **common)

        def train_loss(net, batch):
            x, yb = batch
            return nn.functional.mse_loss(net(self._augmented(x)), yb)

        def val_loss(net, batch):
            yb, x, seg = batch
            return nn.functional.mse_loss(_slide_means(net(x), seg, len(yb)), yb)

        opt = torch.optim.Adam(trainable, lr=self.lr, weight_decay=self.weight_decay)
        meta = self._checkpoint_meta(
            hidden=list(hidden), n_slides=n, n_patches_total=int(sum(map(len, bags))),
            patch=list(bags[0].shape[1:3]), n_genes=self.n_outputs_)
        return self._fit_network(model, train, val, optimizer=opt, loss_fn=train_loss,
                                 val_loss_fn=val_loss, device=device,
                                 checkpoint_dir=self.checkpoint_dir, meta=meta)

    def _prepare(self, patches: np.ndarray) -> Any:
        return prepare_patches(self.card_, patches, minmax=bool(self.minmax))

    def predict_patches(self, X) -> list[np.ndarray]:
        """Per-patch predictions: one float32 ``(N_i, n_genes)`` array per slide."""
        check_is_fitted(self, "network_")
        parts = self._patch_outputs(_check_patch_bags(X),
                                    lambda net, x: net(x).float().cpu().numpy())
        return [self._in_units(np.concatenate(p)) for p in parts]

    def predict(self, X):
        """Slide predictions ``(n_slides, n_genes)`` float32: the mean over each slide's
        patches, in the units of ``y``."""
        return np.stack([p.mean(axis=0) for p in self.predict_patches(X)]).astype(np.float32)


MODELS.register("gastric_simplified", GastricFinetune)
