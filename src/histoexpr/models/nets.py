"""The torch networks of the bulk expression models.

The estimators (:mod:`~histoexpr.models.abmil`, :mod:`~histoexpr.models.he2rna`,
:mod:`~histoexpr.models.hist2rna`, :mod:`~histoexpr.models.gastric`,
:mod:`~histoexpr.models.gastric_finetune`, :mod:`~histoexpr.models.mlp`) import this module
only when they build a network, so importing them needs no torch. A fitted estimator's
pickle references these classes by name (``histoexpr.models.nets.ABMILNet`` ...): renaming
or moving one breaks the pickles already written.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..features.encoders.tuning import FinetuneNet
from .pooling import topk_mean

__all__ = ["ABMILNet", "FinetuneNet", "GastricNet", "HE2RNANet", "Hist2RNANet",
           "PerGeneHeads", "mlp_layers"]


def mlp_layers(n_in: int, hidden: Sequence[int], n_out: int, dropout: float) -> nn.Sequential:
    """``Linear → ReLU → Dropout`` for each width in ``hidden``, then ``Linear(·, n_out)``."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(n_in, int(width)), nn.ReLU(), nn.Dropout(dropout)]
        n_in = int(width)
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


class ABMILNet(nn.Module):
    """Gated attention MIL network of :class:`~histoexpr.models.abmil.ABMIL`.

    ``forward(x (B, N, D), mask (B, N)) -> (B, n_out)``; :meth:`attention` gives the
    attention weights ``(B, N)`` (0 on padding).
    """

    def __init__(self, n_in: int, n_out: int, hidden: int, attention_dim: int,
                 dropout: float) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.att_v = nn.Linear(hidden, attention_dim)
        self.att_u = nn.Linear(hidden, attention_dim)
        self.att_w = nn.Linear(attention_dim, 1)
        self.head = nn.Linear(hidden, n_out)

    def _embed_attend(self, x, mask):
        h = self.embed(x)  # (B, N, H)
        logits = self.att_w(torch.tanh(self.att_v(h)) * torch.sigmoid(self.att_u(h)))
        logits = logits.squeeze(-1).masked_fill(~mask, float("-inf"))
        return h, torch.softmax(logits, dim=1)  # (B, N, H), (B, N)

    def attention(self, x, mask):
        """Attention weights ``(B, N)``; each bag's weights sum to 1."""
        return self._embed_attend(x, mask)[1]

    def forward(self, x, mask):
        h, a = self._embed_attend(x, mask)
        return self.head(torch.einsum("bn,bnh->bh", a, h))


class HE2RNANet(nn.Module):
    """Per-instance MLP of :class:`~histoexpr.models.he2rna.HE2RNA`, top-``K`` pooled.

    :meth:`scores` maps ``(B, N, D) -> (B, N, n_out)``; ``forward(x, mask, k)`` pools them
    with :func:`~histoexpr.models.pooling.topk_mean` (``k=None``: the mean over ``ks``).
    """

    def __init__(self, n_in: int, n_out: int, hidden: Sequence[int], dropout: float,
                 ks: Sequence[int]) -> None:
        super().__init__()
        self.mlp = mlp_layers(n_in, hidden, n_out, dropout)
        self.ks = tuple(int(k) for k in ks)

    def scores(self, x):
        """Instance scores ``(B, N, n_out)``."""
        return self.mlp(x)

    def forward(self, x, mask, k: int | None = None):
        s = self.mlp(x)
        if k is not None:
            return topk_mean(s, mask, k)
        return sum(topk_mean(s, mask, kk) for kk in self.ks) / len(self.ks)


class Hist2RNANet(nn.Module):
    """Three 1-D convolutions of :class:`~histoexpr.models.hist2rna.Hist2RNA`.

    ``forward(x (B, N, D), mask (B, N)) -> (B, n_out)``: the ``N`` instances (1 there: the
    slide mean) are averaged over the mask first.
    """

    def __init__(self, n_in: int, n_out: int, layout: str) -> None:
        super().__init__()
        self.layout = layout
        c1 = (nn.Conv1d(n_in, 256, kernel_size=5, padding=2) if layout == "channels"
              else nn.Conv1d(1, 256, kernel_size=5, padding="same"))
        self.convs = nn.Sequential(
            c1, nn.ReLU(),
            nn.Conv1d(256, 512, kernel_size=1), nn.ReLU(),
            nn.Conv1d(512, 512, kernel_size=1), nn.ReLU(),
        )
        self.out = nn.Linear(512, n_out)

    def forward(self, x, mask):
        m = mask.unsqueeze(-1).to(x.dtype)
        z = (x * m).sum(1) / m.sum(1).clamp_min(1.0)  # (B, D)
        if self.layout == "channels":
            # a length-1 sequence: the padded 5-tap convolution sees only its centre tap and
            # the 1-tap ones are matrix products, so compute exactly that (the same weights
            # and outputs, a fraction of the convolutions' time)
            c1, c2, c3 = self.convs[0], self.convs[2], self.convs[4]
            h = torch.relu(F.linear(z, c1.weight[:, :, c1.padding[0]], c1.bias))
            h = torch.relu(F.linear(h, c2.weight[:, :, 0], c2.bias))
            h = torch.relu(F.linear(h, c3.weight[:, :, 0], c3.bias))
            return self.out(h)
        h = self.convs(z.unsqueeze(1))  # (B, 512, D)
        return self.out(torch.mean(h, dim=2))  # global average pooling


class PerGeneHeads(nn.Module):
    """``n_out`` separate heads ``Linear(n_in, width) → ReLU → Linear(width, 1)``.

    Evaluated together (one batched product instead of a loop over genes):
    ``forward(f (B, n_in)) -> (B, n_out)``.
    """

    def __init__(self, n_in: int, n_out: int, width: int) -> None:
        super().__init__()
        lin1 = [nn.Linear(n_in, width) for _ in range(n_out)]  # default init, per gene
        lin2 = [nn.Linear(width, 1) for _ in range(n_out)]
        with torch.no_grad():
            self.w1 = nn.Parameter(torch.stack([m.weight.T for m in lin1]))  # (G, n, w)
            self.b1 = nn.Parameter(torch.stack([m.bias for m in lin1]))  # (G, w)
            self.w2 = nn.Parameter(torch.stack([m.weight[0] for m in lin2]))  # (G, w)
            self.b2 = nn.Parameter(torch.cat([m.bias for m in lin2]))  # (G,)

    def forward(self, f):
        h = torch.relu(torch.einsum("bn,gnw->bgw", f, self.w1) + self.b1)
        return (h * self.w2).sum(-1) + self.b2


class GastricNet(nn.Module):
    """1-D CNN over aggregated patch features of :class:`~histoexpr.models.gastric.GastricCNN`.

    ``forward(x (B, N, D), mask (B, N)) -> (B, n_out)``: :meth:`pool`, then :meth:`head`
    on the aggregated ``(B, D)`` vector.
    """

    def __init__(self, n_in: int, n_out: int, *, aggregate: str, channels: tuple[int, ...],
                 kernel_size: int, hidden: int, multitask: bool, task_hidden: int,
                 dropout: float) -> None:
        super().__init__()
        self.aggregate = aggregate
        blocks: list[nn.Module] = []
        c_in, length = 1, n_in
        for c in channels:
            blocks += [nn.Conv1d(c_in, c, kernel_size, padding=kernel_size // 2),
                       nn.ReLU(), nn.MaxPool1d(2, ceil_mode=True)]
            c_in, length = c, -(-length // 2)
        self.convs = nn.Sequential(*blocks)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c_in * length, hidden), nn.ReLU(),
                                nn.Dropout(dropout))
        self.out = (PerGeneHeads(hidden, n_out, task_hidden) if multitask
                    else nn.Linear(hidden, n_out))

    def pool(self, x, mask):
        """Feature-wise mean or max over each bag's real instances: ``(B, D)``."""
        if self.aggregate == "max":
            return x.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)
        m = mask.unsqueeze(-1).to(x.dtype)
        return (x * m).sum(1) / m.sum(1).clamp_min(1.0)

    def head(self, a):
        """The CNN and output layer(s) on aggregated vectors ``(B, D) -> (B, n_out)``."""
        return self.out(self.fc(self.convs(a.unsqueeze(1))))

    def forward(self, x, mask):
        return self.head(self.pool(x, mask))
