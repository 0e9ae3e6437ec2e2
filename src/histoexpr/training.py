"""Generic torch fit machinery: inner validation splits, early stopping, a resumable fit loop.

Every torch head in :mod:`histoexpr.models` fits through :func:`fit_loop`: epochs over a
training loader, the validation loss after each, an optional scheduler step, early stopping on
the validation loss, and the best weights restored at the end. With a ``checkpoint_dir`` the
loop writes ``last.pt`` (model, optimiser, scheduler, epoch, history, early-stopping and random
generator state) atomically after every epoch and ``best.pt`` whenever the validation loss
improves, so an interrupted run started again with ``resume=True`` continues where it stopped
and, on CPU, ends with the same weights as an uninterrupted run. Checkpoints hold only tensors
and plain containers and are read with ``torch.load(..., weights_only=True)``.

The validation split is made *inside* the training fold (:func:`inner_split`), by patient or
section when groups are given, so early stopping never looks at the evaluation fold.

Examples
--------
>>> train_idx, val_idx = inner_split(10, 0.2, random_state=0)
>>> len(train_idx), len(val_idx), set(train_idx) & set(val_idx)
(8, 2, set())
>>> stop = EarlyStopping(patience=2)
>>> [stop.step(v) for v in (1.0, 0.5, 0.6, 0.7)], stop.should_stop, stop.best
([True, True, False, False], True, 0.5)
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path
from .errors import HistoexprError, InputError

logger = logging.getLogger(__name__)

__all__ = ["CPUPickleMixin", "EarlyStopping", "drop_lone_batch", "fit_loop", "inner_split",
           "resolve_device", "seed_everything", "standardise", "target_scaling"]

#: checkpoint file names inside ``checkpoint_dir``
LAST, BEST = "last.pt", "best.pt"


class EarlyStopping:
    """Track the best validation loss and say when it has stopped improving.

    Parameters
    ----------
    patience
        Epochs without improvement after which :attr:`should_stop` turns true; ``None``
        never stops (the best loss is still tracked).
    min_delta
        An epoch improves only when its loss is below ``best - min_delta``.

    Attributes
    ----------
    best : float
        Lowest loss seen (``inf`` before the first step).
    best_epoch : int
        1-based epoch of :attr:`best` (0 before the first improvement).
    bad_epochs : int
        Epochs since the last improvement.

    Examples
    --------
    >>> stop = EarlyStopping(patience=1, min_delta=0.1)
    >>> stop.step(1.0), stop.step(0.95), stop.should_stop, stop.best_epoch
    (True, False, True, 1)
    """

    def __init__(self, patience: int | None, min_delta: float = 0.0) -> None:
        if patience is not None and patience < 1:
            raise InputError(f"patience must be >= 1 or None, got {patience}")
        if min_delta < 0:
            raise InputError(f"min_delta must be >= 0, got {min_delta}")
        self.patience = patience
        self.min_delta = float(min_delta)
        self.best = math.inf
        self.best_epoch = 0
        self.bad_epochs = 0
        self.n_steps = 0

    def step(self, loss: float, epoch: int | None = None) -> bool:
        """Record one epoch's validation loss; return whether it is the new best."""
        self.n_steps += 1
        epoch = self.n_steps if epoch is None else int(epoch)
        loss = float(loss)
        if loss < self.best - self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = loss, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        """True once ``patience`` epochs in a row have not improved."""
        return self.patience is not None and self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, float | int | None]:
        """Plain-number state, saved in checkpoints."""
        return {"patience": self.patience, "min_delta": self.min_delta, "best": self.best,
                "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
                "n_steps": self.n_steps}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (patience and min_delta are kept)."""
        self.best = float(state["best"])
        self.best_epoch = int(state["best_epoch"])
        self.bad_epochs = int(state["bad_epochs"])
        self.n_steps = int(state.get("n_steps", self.best_epoch + self.bad_epochs))

    def __repr__(self) -> str:
        return (f"EarlyStopping(patience={self.patience}, best={self.best:.4g} "
                f"@ epoch {self.best_epoch}, bad_epochs={self.bad_epochs})")


def seed_everything(random_state: int | None = None) -> int:
    """Seed Python's, NumPy's global and torch's (CPU and CUDA) random generators.

    Parameters
    ----------
    random_state
        The seed; ``None`` draws a fresh one from the operating system.

    Returns
    -------
    int
        The seed used (log it to reproduce a ``None`` run).

    Examples
    --------
    >>> import torch
    >>> _ = seed_everything(3); a = torch.rand(2)
    >>> _ = seed_everything(3); bool((a == torch.rand(2)).all())
    True
    """
    import random

    import torch

    seed = int(np.random.SeedSequence().entropy % 2**32) if random_state is None \
        else int(random_state) % 2**32
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - seeding the legacy global generator is the point
    torch.manual_seed(seed)  # also seeds every CUDA device
    return seed


def resolve_device(device: Any = None) -> Any:
    """``torch.device(device)``; ``None`` means ``"cuda"`` when available, else ``"cpu"``.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def target_scaling(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and standard deviation of a 2-D target, 0 for constant columns.

    Heads learn :func:`standardise` ``(y, mean, scale)`` and report ``pred * scale + mean``,
    so a constant gene is predicted as exactly its constant.

    Examples
    --------
    >>> mean, scale = target_scaling(np.array([[1.0, 5.0], [5.0, 5.0]]))
    >>> mean.tolist(), scale.tolist()
    ([3.0, 5.0], [2.0, 0.0])
    """
    y = np.asarray(y, np.float64)
    mean = y.mean(axis=0)
    scale = y.std(axis=0)
    scale[~(scale > 1e-12 * np.maximum(1.0, np.abs(mean)))] = 0.0
    return mean, scale


def standardise(y: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``(y - mean) / scale`` as float32, with constant columns (``scale == 0``) set to 0.

    Examples
    --------
    >>> standardise(np.array([[1.0, 5.0]]), np.array([3.0, 5.0]), np.array([2.0, 0.0]))
    array([[-1.,  0.]], dtype=float32)
    """
    return ((np.asarray(y, np.float64) - mean) / np.where(scale > 0, scale, 1.0)).astype(
        np.float32)


def inner_split(n: int, val_fraction: float, random_state: int | None = 0,
                groups: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Split ``n`` rows into training and validation indices (for early stopping).

    Parameters
    ----------
    n
        Number of rows.
    val_fraction
        Share of rows (or of groups, when ``groups`` is given) held out; in (0, 1).
    random_state
        Seed of the shuffle.
    groups
        One label per row (patient or section ids). When given, whole groups go to one side
        (scikit-learn's ``GroupShuffleSplit``); with a single group this falls back to a
        plain random split and logs a warning, since rows of one group are not independent.

    Returns
    -------
    train_idx, val_idx : ndarray of int
        Sorted, disjoint, both non-empty.

    Raises
    ------
    InputError
        Fewer than two rows, ``val_fraction`` outside (0, 1), or ``groups`` of the wrong
        length.

    Examples
    --------
    >>> tr, va = inner_split(6, 0.5, random_state=0, groups=["a", "a", "b", "b", "c", "c"])
    >>> sorted({"aabbcc"[i] for i in tr} & {"aabbcc"[i] for i in va})
    []
    """
    n = int(n)
    if n < 2:
        raise InputError(f"need at least 2 rows to hold out a validation set, got {n}")
    if not 0.0 < float(val_fraction) < 1.0:
        raise InputError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (n,):
            raise InputError(f"groups has shape {groups.shape}; expected ({n},)")
        names = np.unique(groups)
        if len(names) >= 2:
            from sklearn.model_selection import GroupShuffleSplit

            n_val = min(len(names) - 1, max(1, math.ceil(val_fraction * len(names))))
            gss = GroupShuffleSplit(n_splits=1, test_size=n_val, random_state=random_state)
            tr, va = next(gss.split(np.zeros(n), groups=groups))
            return np.sort(tr), np.sort(va)
        logger.warning("one group (%s) only: validation split by rows, not by group; early "
                       "stopping will be optimistic", names[0])
    rng = np.random.default_rng(random_state)
    n_val = min(n - 1, max(1, round(val_fraction * n)))
    perm = rng.permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def drop_lone_batch(n: int, batch_size: int) -> bool:
    """Whether a loader over ``n`` training rows should drop its last batch: a batch of one
    row would break batch norm in training mode."""
    return n > batch_size and n % batch_size == 1


def _to_device(batch: Any, device: Any) -> Any:
    import torch

    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


def _batch_len(batch: Any) -> int:
    if isinstance(batch, (list, tuple)):
        return _batch_len(batch[0])
    if isinstance(batch, Mapping):
        return _batch_len(next(iter(batch.values())))
    return len(batch)


def _cpu_state(model: Any) -> dict[str, Any]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _rng_state(loaders: Iterable[Any]) -> dict[str, Any]:
    import torch

    state: dict[str, Any] = {"torch": torch.get_rng_state(), "cuda": None, "loaders": []}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    for loader in loaders:
        g = getattr(loader, "generator", None)
        state["loaders"].append(None if g is None else g.get_state())
    return state


def _set_rng_state(state: Mapping[str, Any], loaders: Iterable[Any]) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for loader, s in zip(loaders, state.get("loaders", [])):
        g = getattr(loader, "generator", None)
        if g is not None and s is not None:
            g.set_state(s)


def _atomic_save(obj: Any, path: Path) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _run_epoch(model, loader, loss_fn, device, optimizer=None, max_grad_norm=None,
               scaler=None) -> float:
    """Mean loss over ``loader`` (weighted by batch size); trains when given an optimiser
    (through ``scaler``, a ``GradScaler``, when given)."""
    import torch

    train = optimizer is not None
    model.train(train)
    total, count = 0.0, 0
    with torch.set_grad_enabled(train):
        for batch in loader:
            batch = _to_device(batch, device)
            loss = loss_fn(model, batch)
            if train:
                optimizer.zero_grad(set_to_none=True)
                if scaler is None:
                    loss.backward()
                else:
                    scaler.scale(loss).backward()
                    if max_grad_norm is not None:
                        scaler.unscale_(optimizer)
                if max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
                if scaler is None:
                    optimizer.step()
                else:
                    scaler.step(optimizer)  # skipped when the gradients overflowed
                    scaler.update()
            k = _batch_len(batch)
            total += float(loss.detach()) * k
            count += k
    if count == 0:
        raise InputError("a data loader yielded no batches (empty training or validation set)")
    return total / count


def fit_loop(
    model: Any,
    train_loader: Iterable[Any],
    val_loader: Iterable[Any],
    *,
    optimizer: Any,
    loss_fn: Callable[[Any, Any], Any],
    max_epochs: int,
    val_loss_fn: Callable[[Any, Any], Any] | None = None,
    scheduler: Any = None,
    patience: int | None = None,
    min_delta: float = 0.0,
    device: Any = None,
    max_grad_norm: float | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = True,
    meta: Mapping[str, Any] | None = None,
    grad_scaler: Any = None,
) -> list[dict[str, float]]:
    """Train ``model`` with early stopping on a validation loss; restore the best weights.

    Parameters
    ----------
    model
        A ``torch.nn.Module``, already on ``device``.
    train_loader, val_loader
        Iterables of batches (``DataLoader``); a batch is a tensor or a tuple/list/dict of
        tensors, moved to ``device`` before ``loss_fn`` sees it.
    optimizer
        A ``torch.optim`` optimiser over ``model``'s parameters.
    loss_fn
        ``loss_fn(model, batch) -> scalar tensor``, the training objective. Anything random
        inside (augmentation) should draw from torch's global generator so that a resumed
        run repeats it.
    max_epochs
        Total epochs, counting those done before a resume.
    val_loss_fn
        Loss on validation batches (computed in eval mode without gradients); defaults to
        ``loss_fn``.
    scheduler
        Optional learning-rate scheduler, stepped once per epoch; a ``ReduceLROnPlateau``
        is stepped with the validation loss.
    patience, min_delta
        Early stopping (see :class:`EarlyStopping`); ``patience=None`` runs every epoch but
        still keeps the best weights.
    device
        Where batches go; defaults to the device of the model's first parameter.
    max_grad_norm
        Clip the gradient norm to this value when given.
    checkpoint_dir
        Folder for ``last.pt`` (each epoch, atomically) and ``best.pt`` (each improvement);
        created if missing.
    resume
        Continue from ``checkpoint_dir/last.pt`` when it exists (model, optimiser,
        scheduler, history, early stopping and random generator states); ``False`` starts
        afresh and overwrites it.
    meta
        Plain values describing the run (hyper-parameters, data shapes), saved in the
        checkpoints; resuming from a checkpoint whose ``meta`` differs raises.
    grad_scaler
        A ``torch.amp.GradScaler`` when ``loss_fn`` runs under float16 autocast: the loss is
        scaled before ``backward`` and the step skipped when gradients overflow; its state
        is saved in (and restored from) ``last.pt``.

    Returns
    -------
    list of dict
        One entry per epoch: ``epoch``, ``train_loss``, ``val_loss``, ``lr`` (at the start of
        the epoch), ``seconds``.

    Raises
    ------
    InputError
        ``max_epochs < 1``, an empty loader, or a checkpoint from a different run.
    HistoexprError
        The training loss became NaN or infinite (lower the learning rate).

    Examples
    --------
    >>> import torch
    >>> _ = seed_everything(0)
    >>> x = torch.randn(64, 3); y = x @ torch.tensor([1.0, -2.0, 0.5])
    >>> data = torch.utils.data.TensorDataset(x, y)
    >>> loader = torch.utils.data.DataLoader(data, batch_size=16)
    >>> net = torch.nn.Linear(3, 1)
    >>> mse = lambda m, b: torch.nn.functional.mse_loss(m(b[0]).squeeze(1), b[1])
    >>> hist = fit_loop(net, loader, loader, optimizer=torch.optim.SGD(net.parameters(), 0.1),
    ...                 loss_fn=mse, max_epochs=30, patience=3)
    >>> hist[-1]["val_loss"] < 0.01 < hist[0]["train_loss"]
    True
    """
    import torch

    if int(max_epochs) < 1:
        raise InputError(f"max_epochs must be >= 1, got {max_epochs}")
    max_epochs = int(max_epochs)
    val_loss_fn = loss_fn if val_loss_fn is None else val_loss_fn
    if device is None:
        first = next(iter(model.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
    plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    stopper = EarlyStopping(patience, min_delta)
    history: list[dict[str, float]] = []
    best_state: dict[str, Any] | None = None
    start, stopped = 0, False
    meta = dict(meta or {})
    ckpt = None if checkpoint_dir is None else Path(checkpoint_dir)
    if ckpt is not None:
        ckpt.mkdir(parents=True, exist_ok=True)
        if resume and (ckpt / LAST).is_file():
            state = torch.load(ckpt / LAST, map_location="cpu", weights_only=True)
            if dict(state.get("meta", {})) != meta:
                raise InputError(
                    f"{ckpt / LAST} was written by a different run (meta {state.get('meta')} "
                    f"!= {meta}); use another checkpoint_dir or pass resume=False"
                )
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None and state.get("scheduler") is not None:
                scheduler.load_state_dict(state["scheduler"])
            stopper.load_state_dict(state["early_stopping"])
            if grad_scaler is not None and state.get("grad_scaler") is not None:
                grad_scaler.load_state_dict(state["grad_scaler"])
            history = [dict(h) for h in state["history"]]
            start, stopped = int(state["epoch"]), bool(state["stopped"])
            best_state = state.get("best_state")
            if best_state is None and stopper.best_epoch == start:
                best_state = _cpu_state(model)
            _set_rng_state(state["rng"], (train_loader, val_loader))
            logger.info("resuming from %s at epoch %d (best val %.4g at epoch %d)",
                        ckpt / LAST, start, stopper.best, stopper.best_epoch)
    for epoch in range(start + 1, max_epochs + 1):
        if stopped:
            break
        t0 = time.perf_counter()
        lr = float(optimizer.param_groups[0]["lr"])
        train_loss = _run_epoch(model, train_loader, loss_fn, device, optimizer, max_grad_norm,
                                grad_scaler)
        if not math.isfinite(train_loss):
            raise HistoexprError(f"training loss is {train_loss} at epoch {epoch}; lower the "
                                 "learning rate or check the inputs for NaN")
        val_loss = _run_epoch(model, val_loader, val_loss_fn, device)
        if plateau:
            scheduler.step(val_loss)
        elif scheduler is not None:
            scheduler.step()
        improved = stopper.step(val_loss, epoch)
        if improved:
            best_state = _cpu_state(model)
        stopped = stopper.should_stop
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                        "lr": lr, "seconds": time.perf_counter() - t0})
        logger.info("epoch %d/%d: train %.4g, val %.4g%s, lr %.3g, %.1fs", epoch, max_epochs,
                    train_loss, val_loss, " (best)" if improved else "", lr,
                    history[-1]["seconds"])
        if ckpt is not None:
            if improved:
                _atomic_save({"epoch": epoch, "val_loss": val_loss, "model": best_state,
                              "meta": meta}, ckpt / BEST)
            _atomic_save({
                "epoch": epoch, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": None if scheduler is None else scheduler.state_dict(),
                "early_stopping": stopper.state_dict(), "history": history,
                "stopped": stopped, "meta": meta, "rng": _rng_state((train_loader, val_loader)),
                # the best weights, unless they are the current ones (saved just above)
                "best_state": None if improved else best_state,
                "grad_scaler": None if grad_scaler is None else grad_scaler.state_dict(),
            }, ckpt / LAST)
        if stopped:
            logger.info("early stopping at epoch %d: no improvement for %d epochs (best %.4g "
                        "at epoch %d)", epoch, stopper.bad_epochs, stopper.best,
                        stopper.best_epoch)
    if best_state is not None:
        model.load_state_dict(best_state)
    return history


class CPUPickleMixin:
    """For estimators holding a torch module in ``network_``: pickles with the network on
    the CPU, so a model fitted on a GPU loads on any machine."""

    def __getstate__(self):
        state = super().__getstate__()
        if "network_" in state:
            state["network_"] = state["network_"].cpu()
        return state
