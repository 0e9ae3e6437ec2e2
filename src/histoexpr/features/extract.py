"""Tile → feature extraction into the per-slide feature store.

:func:`embed` turns a slide and its tile coordinates into an ``(N, D)`` float32 array: by
default a background thread reads and preprocesses the next batches while the model runs
(``prefetch``); with ``num_workers > 0`` a ``DataLoader`` does so in worker processes (each
opens the slide itself); ``inference_mode``, optional ``channels_last``, AMP and
pinned memory on GPU, optional ``torch.compile``, an optional stain normaliser in the
loader; the order of rows is the order of ``coords``.

:func:`embed_to_h5` writes one HDF5 per slide (``coords``, ``features`` and attributes:
encoder card, tile spec, histoexpr version) with :func:`~histoexpr.features.store.save_features`
(atomic: a full disk leaves no partial file), skips slides already done, and takes a lock
file so several workers can share one output folder.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

import numpy as np

from .. import _keys as K
from ..atomic import output_error
from ..errors import HistoexprError, InputError, SlideError
from ..slide import open_slide
from .encoders import Encoder, preprocess_tiles
from .forward import is_oom
from .store import save_features

logger = logging.getLogger(__name__)

__all__ = ["MAX_UNREADABLE", "SlideLocked", "drop_unreadable", "embed", "embed_to_h5",
           "keep_faster"]


class SlideLocked(HistoexprError):
    """Another worker holds this slide's lock."""


class _TileDataset:
    """Reads tile ``i`` at the spec's mpp, optionally stain-normalises it, preprocesses it
    for the encoder. Opens the slide lazily so each DataLoader worker has its own handle.

    Items are ``(tile, unreadable)``. With ``skip_unreadable`` a tile whose read fails (a
    damaged JPEG tile inside the file) comes back white and flagged; otherwise the
    :class:`~histoexpr.errors.SlideError` is raised."""

    def __init__(self, slide_path, slide_mpp, coords, size_px, mpp, card, stain, slide=None,
                 skip_unreadable=False):
        self.slide_path, self.slide_mpp = slide_path, slide_mpp
        self.coords, self.size_px, self.mpp = np.asarray(coords, np.int64), size_px, mpp
        self.card, self.stain = card, stain  # the card, not the network: workers only read
        self.skip_unreadable = skip_unreadable
        self._slide = slide

    def __len__(self) -> int:
        return len(self.coords)

    def _open(self) -> Any:
        if self._slide is None:
            self._slide = open_slide(self.slide_path, mpp=self.slide_mpp)
        return self._slide

    def _read_one(self, i: int) -> tuple[np.ndarray, bool]:
        x, y = self.coords[i]
        try:
            return self._open().read_at_mpp(int(x), int(y), self.size_px, self.mpp), False
        except SlideError as e:
            if not self.skip_unreadable:
                raise
            logger.warning("skipping an unreadable tile: %s", e)
            return np.full((self.size_px, self.size_px, 3), 255, np.uint8), True

    def __getitem__(self, i: int):
        tile, bad = self._read_one(i)
        if self.stain is not None:
            tile = self.stain.transform(tile)
        return preprocess_tiles(self.card, tile[None])[0], bad

    def batch(self, start: int, stop: int, *, read_workers: int = 1):
        """Tiles ``start:stop`` as one preprocessed tensor and their unreadable flags (the
        prefetch thread's unit); after a failed read the batch is read tile by tile."""
        bad = np.zeros(stop - start, bool)
        try:
            tiles = self._open().read_at_mpp_batch(self.coords[start:stop], self.size_px,
                                                   self.mpp, workers=read_workers)
        except SlideError:
            if not self.skip_unreadable:
                raise
            tiles = np.empty((stop - start, self.size_px, self.size_px, 3), np.uint8)
            for k in range(stop - start):
                tiles[k], bad[k] = self._read_one(start + k)
        if self.stain is not None:
            tiles = self.stain.transform(tiles)
        return preprocess_tiles(self.card, tiles), bad

    def __getstate__(self) -> dict[str, Any]:  # worker processes reopen the slide
        return {**self.__dict__, "_slide": None}


def _prefetched(ds: _TileDataset, batch_size: int, depth: int):
    """The batches of ``ds`` in order, read by one background thread ``depth`` batches ahead
    of the consumer: tile decoding, resizing and stain maths release the GIL, so reading
    batch k+1 overlaps the network's work on batch k without worker processes (which
    would each reopen the slide and copy every batch between processes)."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    starts = iter(range(0, len(ds), batch_size))
    with ThreadPoolExecutor(1, thread_name_prefix="histoexpr-prefetch") as pool:
        queue: deque = deque()

        def submit() -> None:
            start = next(starts, None)
            if start is not None:
                queue.append(pool.submit(ds.batch, start, min(len(ds), start + batch_size)))

        for _ in range(max(1, depth)):
            submit()
        while queue:
            batch = queue.popleft().result()
            submit()
            yield batch


def _init_loader_worker(_: int) -> None:
    """One BLAS thread per DataLoader worker (torch already takes one): the stain maths
    otherwise starts a thread per core in every worker, fighting the model for the CPU."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def embed(
    slide: Any,
    coords: np.ndarray,
    encoder: Encoder,
    *,
    size_px: int,
    mpp: float,
    batch_size: int | str = 64,
    num_workers: int = 0,
    stain: Any = None,
    device: str | None = None,
    channels_last: bool = True,
    amp: bool | None = None,
    compile: bool | str = False,
    tta: bool = False,
    prefetch: int = 2,
    skip_unreadable: bool = False,
) -> np.ndarray:
    """Features of every tile, ``(N, D)`` float32, rows in the order of ``coords``.

    Parameters
    ----------
    slide
        An open :class:`~histoexpr.slide.Slide`. With ``num_workers > 0`` each worker
        reopens it from its path (in-memory slides need ``num_workers=0``).
    coords
        ``(N, 2)`` level-0 top-left corners (e.g. from :func:`histoexpr.load_coords`).
    encoder
        From :func:`histoexpr.features.build_encoder`.
    size_px, mpp
        Tile size and pixel size to read; tiles are then resized to the encoder's input.
    batch_size
        Tiles per batch, or ``"auto"`` (1,024 on a GPU, 64 on the CPU). A batch that runs
        out of device memory is halved and retried, and the smaller size kept
        (:class:`~histoexpr.features.forward.Forward`).
    stain
        A fitted :class:`histoexpr.stain.StainNormalizer` applied to each tile.
    device
        ``"cuda"`` when available, else ``"cpu"`` by default.
    channels_last, amp, compile
        Speed options: NHWC memory layout; bfloat16 autocast (default: on GPU);
        ``torch.compile`` the network (if compiling fails, e.g. no compiler on the
        machine, the run goes on eagerly with a warning); ``compile="auto"`` times the
        compiled and the eager network on the first batch and keeps the faster
        (:func:`keep_faster`).
    tta
        Test-time augmentation: each tile's features are the mean over its 8 flips and 90°
        rotations (8x the network time; features that do not depend on the tile's
        orientation on the glass).
    prefetch
        With ``num_workers=0``: a background thread reads this many batches ahead of the
        network, so reading overlaps compute by default (0: read each batch in turn).
        The features are the same either way, bit for bit.
    skip_unreadable
        A tile that cannot be read (a damaged JPEG tile inside the slide file) gets a row
        of NaN, with a warning, instead of ending the run with a
        :class:`~histoexpr.errors.SlideError` that names the tile.

    Examples
    --------
    >>> from histoexpr.slide import ArraySlide
    >>> from histoexpr.features import build_encoder
    >>> s = ArraySlide(np.full((256, 256, 3), 200, np.uint8), mpp=0.5)
    >>> embed(s, np.array([[0, 0], [128, 128]]), build_encoder("toy"), size_px=64,
    ...       mpp=1.0).shape
    (2, 16)
    """
    import torch
    from torch.utils.data import DataLoader

    c = np.asarray(coords, np.int64).reshape(-1, 2)
    d = encoder.card.embed_dim
    if len(c) == 0:
        return np.zeros((0, d), np.float32)
    from .forward import Forward, resolve_batch_size

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    on_gpu = device.startswith("cuda")
    batch_size = resolve_batch_size(batch_size, device)
    amp = on_gpu if amp is None else amp
    if num_workers > 0 and not Path(slide.path).exists():
        raise InputError(f"{slide.path}: in-memory slides need num_workers=0")
    ds = _TileDataset(slide.path, slide.mpp, c, size_px, mpp, encoder.card, stain,
                      slide=slide if num_workers == 0 else None,
                      skip_unreadable=skip_unreadable)
    if num_workers == 0 and prefetch > 0:
        loader: Any = _prefetched(ds, batch_size, prefetch)
    else:
        loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                            pin_memory=on_gpu, persistent_workers=False,
                            worker_init_fn=_init_loader_worker if num_workers else None)
    net = encoder.network.to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    runs = [torch.compile(net), net] if compile else [net]

    def call(x: Any) -> Any:
        while True:
            try:
                return (_dihedral_mean(runs[0], x) if tta else runs[0](x)).float()
            except Exception as e:
                if len(runs) == 1 or is_oom(e):
                    raise
                logger.warning("torch.compile failed (%s: %s); running eagerly",
                               type(e).__name__, str(e).splitlines()[0][:200])
                runs.pop(0)

    forward = Forward(call, size=batch_size)
    out = np.empty((len(c), d), np.float32)
    i = 0
    decide = compile == "auto"
    with torch.inference_mode(), torch.autocast(
        device.split(":")[0], dtype=torch.bfloat16, enabled=amp
    ):
        for batch, bad in loader:
            if on_gpu and not batch.is_pinned():
                batch = batch.pin_memory()
            batch = batch.to(device, non_blocking=on_gpu)
            if channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            if decide:  # compile="auto": the faster of compiled and eager on this batch
                decide = False
                runs[:] = keep_faster(runs, batch[:forward.size], device)
            f = forward(batch).cpu().numpy()
            f[np.asarray(bad, bool)] = np.nan
            out[i : i + len(f)] = f
            i += len(f)
    return out


def keep_faster(runs: list[Any], x: Any, device: str) -> list[Any]:
    """``[compiled, eager]`` → the one that runs ``x`` faster (each warmed up on ``x``
    first, which is when ``torch.compile`` compiles), logged; a compile that fails (not
    out of memory) leaves ``[eager]`` with a warning."""
    import time

    import torch

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)

    if len(runs) < 2:
        return runs
    times = []
    for run in runs:
        try:
            run(x)
            sync()
            t0 = time.perf_counter()
            run(x)
            sync()
            times.append(time.perf_counter() - t0)
        except Exception as e:
            if run is runs[-1] or is_oom(e):
                raise
            logger.warning("torch.compile failed (%s: %s); running eagerly",
                           type(e).__name__, str(e).splitlines()[0][:200])
            return runs[-1:]
    best = int(np.argmin(times))
    logger.info("torch.compile: %.1f ms a batch of %d, eager %.1f ms: keeping the %s network",
                1e3 * times[0], len(x), 1e3 * times[-1], "compiled" if best == 0 else "eager")
    return [runs[best]]


def _dihedral_mean(run: Any, batch: Any) -> Any:
    """The network's output averaged over the 8 symmetries of the square (4 rotations, each
    also mirrored)."""
    import torch

    total = None
    for k in range(4):
        rot = torch.rot90(batch, k, dims=(2, 3))
        for x in (rot, rot.flip(3)):
            f = run(x).float()
            total = f if total is None else total + f
    return total / 8


def _take_lock(lock: Path) -> None:
    """Create ``lock`` exclusively; a lock left by a dead process on this host is taken over."""
    me = f"{socket.gethostname()}:{os.getpid()}"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            owner = lock.read_text().strip() if lock.exists() else ""
            host, _, pid = owner.partition(":")
            if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
                logger.warning("%s: removing the stale lock of dead process %s", lock, pid)
                lock.unlink(missing_ok=True)
                continue
            raise SlideLocked(f"{lock}: held by {owner or 'another worker'}") from None
        with os.fdopen(fd, "w") as f:
            f.write(me)
        return
    raise SlideLocked(f"{lock}: could not be taken")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


#: more unreadable tiles than this share of a slide fail the slide instead of being skipped
MAX_UNREADABLE = 0.05


def drop_unreadable(coords: np.ndarray, feats: np.ndarray, *, source: Any
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(coords, feats, lost)`` without the rows :func:`embed` could not read (NaN rows
    under ``skip_unreadable``); ``lost`` holds their coordinates. More than
    :data:`MAX_UNREADABLE` of the tiles lost raises :class:`~histoexpr.errors.SlideError`:
    such a file is damaged beyond a few tiles."""
    coords = np.asarray(coords, np.int64).reshape(-1, 2)
    bad = np.isnan(feats).any(axis=1) if feats.size else np.zeros(len(coords), bool)
    if not bad.any():
        return coords, feats, np.zeros((0, 2), np.int64)
    n, k = len(coords), int(bad.sum())
    first = coords[bad][0]
    if k > MAX_UNREADABLE * n:
        raise SlideError(f"{source}: {k} of {n} tiles could not be read (the first at level-0 "
                         f"({first[0]}, {first[1]})); the file is damaged: re-download or "
                         "re-export it")
    logger.warning("%s: %d of %d tiles could not be read and are left out (the first at "
                   "level-0 (%d, %d)); the file may be damaged", source, k, n, *first)
    return coords[~bad], feats[~bad], coords[bad]


def embed_to_h5(
    out: str | Path,
    slide: Any,
    coords: np.ndarray,
    encoder: Encoder,
    *,
    size_px: int,
    mpp: float,
    overwrite: bool = False,
    extra_attrs: dict[str, Any] | None = None,
    **embed_kwargs: Any,
) -> tuple[Path, str]:
    """Embed one slide into ``out`` (HDF5); returns ``(path, status)`` with status
    ``"done"``, ``"done before"`` or ``"locked"`` (another worker is on it).

    Tiles that cannot be read (damaged JPEG tiles inside the file) are left out with a
    warning and listed in the ``unreadable_tiles`` attribute; more than
    :data:`MAX_UNREADABLE` of them fail the slide (:func:`drop_unreadable`)."""
    from .. import __version__

    out = Path(out)
    if out.exists() and not overwrite:
        return out, "done before"
    lock = out.with_name(out.name + ".lock")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _take_lock(lock)
    except SlideLocked as e:
        logger.info("%s", e)
        return out, "locked"
    except OSError as e:  # a read-only or full file system: say so, in one line
        raise (output_error(out, e) or e) from e
    try:
        feats = embed(slide, coords, encoder, size_px=size_px, mpp=mpp,
                      **{"skip_unreadable": True, **embed_kwargs})
        coords, feats, lost = drop_unreadable(coords, feats, source=slide.path)
        attrs = {
            "encoder": encoder.card.to_dict(),
            "encoder_weights": encoder.weights.source,
            "tile_spec": {"size_px": size_px, "mpp": mpp},
            "histoexpr_version": __version__,
            K.ATTR_SLIDE_PATH: str(Path(slide.path).resolve()),
            K.ATTR_LEVEL0_MPP: float(slide.mpp),
            "slide_dimensions": [int(v) for v in slide.dimensions],
            **({"unreadable_tiles": lost.tolist()} if len(lost) else {}),
            **(extra_attrs or {}),
        }
        save_features(out, coords, feats, attrs)
    finally:
        lock.unlink(missing_ok=True)
    return out, "done"
