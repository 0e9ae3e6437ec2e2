"""Torch pieces for training an encoder end to end: its network with a new head, and the
augmentation of its input patches.

Used by :func:`~histoexpr.features.encoders.finetune.finetune_encoder` (seed 002) and by the
models that train an encoder (:mod:`histoexpr.models.gastric_finetune`,
:mod:`histoexpr.models.cnn_aux`). This module imports torch at load: import it where a
network is built, not at the top of a module that should load without torch.

Examples
--------
>>> import torch
>>> from histoexpr.features.encoders import build_network, get_card
>>> backbone, _ = build_network(get_card("toy"), pretrained=False)
>>> net = FinetuneNet(backbone, 16, (8,), 0.0, 3)
>>> net(dihedral(torch.zeros(2, 3, 32, 32))).shape
torch.Size([2, 3])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["FinetuneNet", "FreezableModuleDict", "LayerPooled", "ProjectedEncoder", "dihedral",
           "frozen_batchnorm_eval"]


def frozen_batchnorm_eval(module: Any) -> None:
    """Put every batch-norm layer of ``module`` whose weight is frozen (``requires_grad``
    false) in eval mode: it normalises with its running statistics and keeps them, as
    Keras does for frozen layers."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and \
                m.weight is not None and not m.weight.requires_grad:
            m.eval()


class FreezableModuleDict(nn.ModuleDict):
    """A ``ModuleDict`` (e.g. ``backbone``, ``head``, ``aux`` of
    :class:`~histoexpr.models.cnn_aux.CNNAux`) whose ``train()`` keeps the batch norms of
    frozen parameters in eval mode (:func:`frozen_batchnorm_eval`); with nothing frozen it
    is an ordinary ``ModuleDict``."""

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:
            frozen_batchnorm_eval(self)
        return self


class FinetuneNet(nn.Module):
    """Encoder → new fully connected layers: ``forward(x (B, 3, S, S)) -> (B, n_out)``.

    The network of :class:`~histoexpr.models.gastric_finetune.GastricFinetune` and of
    :func:`~histoexpr.features.encoders.finetune.finetune_encoder` (``hidden=()``: one linear
    layer). In training mode the batch-norm layers of the encoder whose weights are frozen
    stay in eval mode (running statistics kept).

    Parameters
    ----------
    backbone
        The encoder network, ``(B, 3, S, S) -> (B, n_in)``.
    n_in
        Its embedding size.
    hidden
        Widths of the hidden layers (each Linear → ReLU → Dropout).
    dropout
        Dropout after each hidden layer.
    n_out
        Outputs of the last linear layer.
    """

    def __init__(self, backbone: Any, n_in: int, hidden: tuple[int, ...], dropout: float,
                 n_out: int) -> None:
        super().__init__()
        self.backbone = backbone
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [nn.Linear(n_in, int(width)), nn.ReLU(), nn.Dropout(dropout)]
            n_in = int(width)
        self.head = nn.Sequential(*layers, nn.Linear(n_in, n_out))

    def forward(self, x):
        return self.head(self.backbone(x))

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:
            frozen_batchnorm_eval(self.backbone)
        return self


class ProjectedEncoder(nn.Module):
    """An encoder followed by one fully connected layer and a ReLU: seed 002's fine-tuned
    Inception-v3 with a Dense(1024) layer before its softmax, whose output are the features
    (``histoexpr finetune --dense 1024``). State dict: ``backbone.*`` and ``proj.*``."""

    def __init__(self, backbone: Any, n_in: int, n_out: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.proj = nn.Linear(n_in, n_out)

    def forward(self, x):
        return torch.relu(self.proj(self.backbone(x)))


class LayerPooled(nn.Module):
    """The globally average-pooled output of an intermediate module of ``net`` as features
    (``--encoder NAME@LAYER``; seed 002 compared features of intermediate layers): a map
    ``(B, C, H, W)`` is averaged over its positions, tokens ``(B, T, C)`` over the tokens.
    The network runs to its end; the hooked output is what is returned."""

    def __init__(self, net: Any, layer: str) -> None:
        super().__init__()
        self.net, self.layer = net, layer
        names = [n for n, _ in net.named_modules() if n]
        if layer not in names:
            from ...errors import InputError

            raise InputError(f"no layer {layer!r} in the network; its modules include "
                             f"{', '.join(names[-12:])}")
        self._out: list[Any] = []
        net.get_submodule(layer).register_forward_hook(
            lambda _m, _i, o: self._out.append(o[0] if isinstance(o, tuple) else o))

    def forward(self, x):
        self._out.clear()
        self.net(x)
        a = self._out[-1]
        if a.ndim == 4:
            return a.mean(dim=(2, 3))
        if a.ndim == 3:
            return a.mean(dim=1)
        return a.flatten(1)


def dihedral(x: Any) -> Any:
    """Each square image of ``x`` ``(N, C, S, S)`` under a random flip/90° rotation.

    One of the 8 symmetries of the square per image, drawn from torch's global CPU
    generator (the same draws on every device, so a seeded run repeats); the result is on
    ``x``'s device.

    Examples
    --------
    >>> x = torch.arange(4.0).view(1, 1, 2, 2)
    >>> sorted(dihedral(x).flatten().tolist())
    [0.0, 1.0, 2.0, 3.0]
    """
    code = torch.randint(0, 8, (x.shape[0],))  # CPU global generator: same on every device
    out = torch.empty_like(x)
    for c in code.unique().tolist():
        idx = (code == c).nonzero().flatten().to(x.device)
        t = x[idx].flip(-1) if c >= 4 else x[idx]
        out[idx] = torch.rot90(t, c % 4, dims=(-2, -1))
    return out
