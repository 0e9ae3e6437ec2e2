"""The encoder's forward pass under memory pressure (issue 21): batches that no longer fit
the GPU are halved and retried instead of ending the run.

:class:`Forward` runs a network over a batch in chunks of its current size. When a chunk
raises an out-of-memory error it frees the allocator's cache, halves the size and runs the
chunk again; the smaller size is kept for the rest of the run (logged once per halving).
So ``--batch-size auto`` can start large on a GPU (:func:`resolve_batch_size`) and settle
at what fits, and a fixed size too large for a smaller card or a busier neighbour costs one
retry rather than the slide. Rows come out in order whatever the chunking.

Examples
--------
>>> import torch
>>> f = Forward(lambda x: x * 2, size=3)
>>> f(torch.arange(5.0)).tolist()
[0.0, 2.0, 4.0, 6.0, 8.0]
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..errors import HistoexprError

logger = logging.getLogger(__name__)

__all__ = ["AUTO_BATCH_GPU", "DEFAULT_BATCH", "Forward", "GPUMemoryError", "is_oom",
           "resolve_batch_size"]

#: tiles per batch on the CPU (and the CLI's default everywhere but ``auto``)
DEFAULT_BATCH = 64
#: where ``--batch-size auto`` starts on a GPU; out-of-memory halves it to what fits
AUTO_BATCH_GPU = 1024


class GPUMemoryError(HistoexprError):
    """Even one tile does not fit the device's free memory."""


def is_oom(e: BaseException) -> bool:
    """Whether ``e`` is a device out-of-memory error (CUDA's, or a backend's RuntimeError
    saying so)."""
    try:
        import torch

        if isinstance(e, torch.cuda.OutOfMemoryError):
            return True
    except ImportError:  # pragma: no cover - torch is a dependency of every caller
        pass
    return isinstance(e, RuntimeError) and "out of memory" in str(e).lower()


def resolve_batch_size(batch_size: int | str | None, device: str) -> int:
    """Tiles per batch: an int as given; ``"auto"`` / ``None``: :data:`AUTO_BATCH_GPU` on
    a GPU (halved on out-of-memory), :data:`DEFAULT_BATCH` on the CPU.

    >>> resolve_batch_size("auto", "cpu"), resolve_batch_size("auto", "cuda:0")
    (64, 1024)
    """
    if batch_size in (None, "auto"):
        return AUTO_BATCH_GPU if device.startswith("cuda") else DEFAULT_BATCH
    n = int(batch_size)
    if n < 1:
        raise ValueError(f"batch size {batch_size!r}: give a positive number or 'auto'")
    return n


def _free_cache() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


class Forward:
    """``fn`` over a batch in chunks of :attr:`size`, halving :attr:`size` on OOM."""

    def __init__(self, fn: Callable[[Any], Any], *, size: int) -> None:
        self.fn, self.size = fn, max(1, int(size))
        self.halvings = 0

    def __call__(self, batch: Any) -> Any:
        import torch

        parts, start = [], 0
        while start < len(batch):
            chunk = batch[start : start + self.size]
            try:
                parts.append(self.fn(chunk))
            except Exception as e:
                if not is_oom(e):
                    raise
                del e  # the traceback holds the failed chunk's activations
                _free_cache()
                if self.size == 1:
                    raise GPUMemoryError(
                        "out of device memory on a single tile: free the GPU (other "
                        "processes?), use a smaller encoder, or run with --device cpu"
                    ) from None
                self.size = max(1, min(self.size, len(chunk)) // 2)
                self.halvings += 1
                logger.warning("out of device memory; batch size halved to %d", self.size)
                continue
            start += len(chunk)
        return parts[0] if len(parts) == 1 else torch.cat(parts)
