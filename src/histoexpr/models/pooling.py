"""Pooling of instance scores over bags, masked: padding instances never count.

Torch is imported inside the functions, so importing this module needs no torch.
"""

from __future__ import annotations

from typing import Any

from ..errors import InputError

__all__ = ["topk_mean"]


def topk_mean(scores: Any, mask: Any, k: int) -> Any:
    """Per bag and output, the mean of the ``k`` highest scores among the valid instances.

    Parameters
    ----------
    scores
        ``(B, N, G)`` tensor of instance scores.
    mask
        ``(B, N)`` bool tensor, ``True`` on real instances (each bag has at least one).
    k
        Instances to average; a bag with fewer valid instances averages all of them.

    Returns
    -------
    torch.Tensor
        ``(B, G)``.

    Examples
    --------
    >>> import torch
    >>> s = torch.tensor([[[1.0], [5.0], [3.0]], [[2.0], [9.0], [0.0]]])
    >>> m = torch.tensor([[True, True, True], [True, False, False]])
    >>> topk_mean(s, m, 2).ravel().tolist()  # (5 + 3) / 2; the second bag has one tile
    [4.0, 2.0]
    """
    import torch

    k = int(k)
    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    kk = min(k, scores.shape[1])
    masked = scores.masked_fill(~mask[:, :, None], float("-inf"))
    top = torch.topk(masked, kk, dim=1).values  # (B, kk, G), highest first
    count = mask.sum(dim=1).clamp(max=kk)  # (B,)
    keep = torch.arange(kk, device=scores.device)[None, :] < count[:, None]
    top = torch.where(keep[:, :, None], top, torch.zeros((), dtype=top.dtype,
                                                             device=top.device))
    return top.sum(dim=1) / count[:, None].to(top.dtype)
