"""The fast path of the heads on pooled features (issue 21, item 5): training data held on
the training device and sliced per batch, and Adam with its fused kernel.

A ``DataLoader`` over per-slide rows collates every batch in Python and copies it to the
device at each step; for a head on slide means (hist2rna, the MLP) that costs more than
the step itself on a GPU. :class:`ResidentBatches` moves the tensors once and slices them.
:func:`adam` picks the fused Adam kernel where torch has one (CPU and CUDA): the same
update in one pass over the parameters.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RESIDENT_MAX_BYTES", "ResidentBatches", "adam"]

#: training data up to this size is held on the training device and sliced per batch
#: (:class:`ResidentBatches`) instead of collated row by row by a ``DataLoader``
RESIDENT_MAX_BYTES = 2 * 2**30


def adam(params: Any, *, decoupled: bool = False, **kwargs: Any) -> Any:
    """``torch.optim.Adam`` (``AdamW`` when ``decoupled``) with the fused kernel where this
    torch has one for the parameters' device (the same update; on the CPU a step of the
    hist2rna head took 10 ms instead of 38 ms), else the default implementation."""
    import torch

    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    params = list(params)
    try:
        return cls(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device/dtype
        return cls(params, **kwargs)


class ResidentBatches:
    """Batches sliced from tensors already on the training device: no per-row collation
    and no host-to-device copy per step (the loader of the heads on pooled features).

    Shuffled as ``DataLoader(shuffle=True)`` shuffles (the same draws from the global CPU
    generator, which :func:`~histoexpr.training.seed_everything` seeds and
    :func:`~histoexpr.training.fit_loop` checkpoints): the same batches in the same order,
    so a seeded fit repeats, a resumed one continues its draws, and on the CPU the weights
    equal a ``DataLoader`` fit's.

    >>> import torch
    >>> b = ResidentBatches(torch.arange(5), torch.arange(5) * 2, batch_size=2)
    >>> [x.tolist() for x, _ in b], len(b)
    ([[0, 1], [2, 3], [4]], 3)
    """

    def __init__(self, *tensors: Any, batch_size: int, shuffle: bool = False,
                 drop_last: bool = False, device: Any = None) -> None:
        self.tensors = tuple(t.to(device) if device is not None else t for t in tensors)
        self.n, self.batch_size = len(tensors[0]), max(1, int(batch_size))
        self.shuffle, self.drop_last = shuffle, drop_last

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self):
        import torch

        # the draws of a DataLoader(shuffle=True) from the global generator, in its order
        # (its base seed, then its sampler's seed): the same batches, so a fit gives the
        # same weights as through a DataLoader
        torch.empty((), dtype=torch.int64).random_()
        order = None
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
            order = torch.randperm(self.n, generator=g)
        for k in range(len(self)):
            if order is None:
                sel: Any = slice(k * self.batch_size, (k + 1) * self.batch_size)
            else:
                sel = order[k * self.batch_size:(k + 1) * self.batch_size].to(
                    self.tensors[0].device)
            yield tuple(t[sel] for t in self.tensors)
