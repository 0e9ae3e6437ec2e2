"""The one fold loop: entries x units -> fit / predict / save, resumable, for every workflow.

A workflow (spatial spots, bulk slides) is an *adapter* (:class:`FoldAdapter`) that supplies
the sample ids and groups, the targets of a unit (genes chosen on its training rows), the
model input of an entry for some rows, the estimator of an entry, and how to keep the final
model. :func:`run_folds` does the rest the same way for all of them:

- for each :class:`Unit` (a fit: training rows, predicted rows with their role ``cv`` /
  ``holdout`` / ``val`` / ``test``) and each :class:`Entry` (a model on one feature set,
  of kind ``model`` or ``baseline``: the baselines are entries like the model);

One vocabulary for every workflow's tables: ``entry, model, features, kind`` (model or
baseline), ``role`` (cv, holdout, val, test), ``fold`` (a cv unit, ``mean`` over the cv
units, or ``pooled``); metric columns ``pearson_*``, ``spearman_*``, ``n_genes``,
``n_scored``, ``n_constant``, ``r2_mean``, ``rmse_mean``, ``wall_s``, ``cpu_s``.
- skip what a previous run finished (``folds/<unit>/<entry>.npz`` + ``.json``);
- fit through :func:`histoexpr.models.fit_model` (the model's tags say which of groups and
  auxiliary targets it takes) under a :class:`~histoexpr.cost.CostMeter`;
- write the predicted rows (``ids``, ``rows``, ``roles``, ``genes``, ``y_true``,
  ``y_pred``) and the fit record (entry, unit, sizes, wall / CPU / GPU time and energy,
  epochs) atomically;
- keep the main model of the ``final`` unit.

A unit that predicts no rows (a refit on everything) fits only the main model.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from ..atomic import atomic_path, write_json
from .folder import RunFolder

logger = logging.getLogger(__name__)

__all__ = ["Entry", "FoldAdapter", "FoldTargets", "Unit", "average_errors", "run_folds",
           "units_from_split"]


@dataclass(frozen=True)
class Entry:
    """A model on one feature set: a row group of the results table."""

    key: str  # file-safe name, e.g. "ridge", "ridge-colour_hist", "ridge@random"
    model: str  # registry name
    features: str  # the adapter's feature-set key
    kind: str  # "model" or "baseline"
    source: str | None = None  # encoder name / "colour_hist"; None when not an encoder
    pretrained: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Unit:
    """One fit: ``train`` row indices, predicted ``rows`` with their ``roles``; the main
    model of the ``final`` unit is the one kept for prediction."""

    name: str
    train: np.ndarray
    rows: np.ndarray
    roles: np.ndarray
    final: bool = False

    def to_dict(self, groups: np.ndarray) -> dict[str, Any]:
        """For ``splits.json``: the groups (patients) predicted in each role."""
        return {"name": self.name, "final": self.final, "n_train": len(self.train),
                "predicted": {r: sorted({str(p) for p in groups[self.rows[self.roles == r]]})
                              for r in dict.fromkeys(self.roles.tolist())}}


@dataclass(frozen=True)
class FoldTargets:
    """What a unit fits and scores: ``genes`` chosen on its training rows, their values on
    the training and the predicted rows, and optional auxiliary targets (training rows)."""

    genes: list[str]
    y_train: np.ndarray
    y_rows: np.ndarray
    y_aux: np.ndarray | None = None


class FoldAdapter(Protocol):
    """What a workflow supplies to :func:`run_folds`."""

    ids: np.ndarray  # one id per row (spot or slide name)
    groups: np.ndarray  # one group per row (patient, or section), for inner splits
    device: str | None

    def targets(self, unit: Unit) -> FoldTargets: ...

    def inputs(self, entry: Entry, est: Any, rows: np.ndarray) -> Any: ...

    def estimator(self, entry: Entry, unit: Unit) -> Any: ...

    def available(self, entry: Entry) -> bool: ...

    def augmented(self, entry: Entry, est: Any, rows: np.ndarray) -> list[Any]:
        """Extra training inputs of ``rows`` (augmented copies, targets repeated); none."""
        return []

    def save_final(self, est: Any, entry: Entry, unit: Unit, targets: FoldTargets) -> None: ...


def units_from_split(split: Any, n: int, *, refit: bool = True) -> list[Unit]:
    """The units of a grouped k-fold split (:func:`histoexpr.cohort.grouped_splits`): one
    per fold (role ``cv``), then ``holdout`` trained on every other row predicting the
    held-out rows (the final model), or, without a hold-out and with ``refit``, ``final``
    trained on every row predicting nothing.

    Examples
    --------
    >>> from histoexpr.cohort import grouped_splits
    >>> g = np.repeat(["a", "b", "c", "d"], 2)
    >>> [u.name for u in units_from_split(grouped_splits(g, g, k=2), len(g))]
    ['0', '1', 'final']
    """
    units = [Unit(str(i), np.asarray(tr), np.asarray(te), np.full(len(te), "cv"))
             for i, (tr, te) in enumerate(split.folds)]
    held = np.asarray(split.holdout, int)
    if len(held):
        units.append(Unit("holdout", np.setdiff1d(np.arange(n), held), held,
                          np.full(len(held), "holdout"), final=refit))
    elif refit:
        units.append(Unit("final", np.arange(n), np.zeros(0, int), np.zeros(0, str),
                          final=True))
    return units


def average_errors(y_true: Any, y_pred: Any) -> dict[str, float]:
    """Mean absolute and root-mean-squared error per gene, averaged over genes: BrST-Net's
    aMAE and aRMSE (seed 003, Table 2).

    Examples
    --------
    >>> average_errors([[0.0, 0.0], [0.0, 0.0]], [[1.0, 2.0], [1.0, 2.0]])
    {'amae': 1.5, 'armse': 1.5}
    """
    t, p = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    if t.ndim == 1:
        t, p = t[:, None], p.reshape(len(p), -1)
    if t.size == 0:
        return {"amae": float("nan"), "armse": float("nan")}
    d = p - t
    return {"amae": float(np.abs(d).mean(axis=0).mean()),
            "armse": float(np.sqrt((d ** 2).mean(axis=0)).mean())}


def _with_augmented(adapter: FoldAdapter, entry: Entry, est: Any, unit: Unit, x_train: Any,
                    targets: FoldTargets) -> tuple[Any, Any, dict[str, Any]]:
    """``(X, y, {groups, y_aux, copies})`` of a fit: the training rows, and after them the
    extra (augmented) copies of the same rows an adapter may give, with their targets
    repeated (``copies`` counts the blocks, the original one included)."""
    groups = adapter.groups[unit.train]
    extra = adapter.augmented(entry, est, unit.train)
    if not extra:
        return x_train, targets.y_train, {"groups": groups, "y_aux": targets.y_aux}
    reps = 1 + len(extra)

    def tile(a: Any) -> Any:
        return None if a is None else np.concatenate([np.asarray(a)] * reps)

    return (np.concatenate([x_train, *extra]), tile(targets.y_train),
            {"groups": tile(groups), "y_aux": tile(targets.y_aux), "copies": reps})


def run_folds(run: RunFolder, entries: list[Entry], units: list[Unit],
              adapter: FoldAdapter) -> None:
    """Fit, predict and save every entry on every unit (see the module docstring)."""
    from ..cost import CostMeter
    from ..models import fit_model, tags_of

    for unit in units:
        targets = None
        for e in entries:
            if not len(unit.rows) and not (unit.final and e.kind == "model"):
                continue  # a refit on everything: only the main model is worth keeping
            if not adapter.available(e):
                continue
            npz, meta = run.fold(unit.name) / f"{e.key}.npz", run.fold(unit.name) / f"{e.key}.json"
            keep = unit.final and e.kind == "model"
            if npz.is_file() and meta.is_file() and (not keep or run.final_model.is_file()):
                logger.info("unit %s, %s: done earlier; skipped", unit.name, e.key)
                continue
            if targets is None:
                targets = adapter.targets(unit)
            est = adapter.estimator(e, unit)
            # a validation set of the protocol (train / validation / test) stops early
            # the models that take one (seed 000); the others ignore it
            is_val = np.asarray(unit.roles) == "val"
            eval_set = None
            if is_val.any() and tags_of(est).validation:
                eval_set = (adapter.inputs(e, est, unit.rows[is_val]),
                            np.asarray(targets.y_rows)[is_val])
            with CostMeter(device=adapter.device) as meter:
                x_train = adapter.inputs(e, est, unit.train)  # read once: fit, then scored
                x_fit, y_fit, kw = _with_augmented(adapter, e, est, unit, x_train, targets)
                fit_model(est, x_fit, y_fit, eval_set=eval_set, **kw)
                del x_fit
                pred = np.zeros((0, len(targets.genes)), np.float32)
                if len(unit.rows):
                    pred = np.asarray(est.predict(adapter.inputs(e, est, unit.rows)),
                                      np.float32)
            # the error on the training rows (BrST-Net's Table 2 reports it beside the test
            # error); outside the meter, so the cost stays the fit's
            fitted = np.asarray(est.predict(x_train), np.float32)
            del x_train
            train_error = average_errors(targets.y_train, fitted)
            if keep:
                adapter.save_final(est, e, unit, targets)
            with atomic_path(npz, suffix=".npz") as tmp:
                np.savez_compressed(
                    tmp, ids=np.asarray(adapter.ids)[unit.rows].astype(str), rows=unit.rows,
                    roles=unit.roles.astype(str), genes=np.asarray(targets.genes, str),
                    y_true=np.asarray(targets.y_rows, np.float32), y_pred=pred)
            cost = meter.record()
            write_json(meta, {"unit": unit.name, "entry": e.to_dict(),
                              "n_train": len(unit.train), "n_predicted": len(unit.rows),
                              "cost": cost, "train_error": train_error,
                              "n_epochs": getattr(est, "n_epochs_", None),
                              "best_epoch": getattr(est, "best_epoch_", None)})
            logger.info("unit %s, %s: %d training, %d predicted rows in %.1f s", unit.name,
                        e.key, len(unit.train), len(unit.rows), cost.get("wall_s", 0.0))
