"""Evaluation protocols of a bulk run: patient-level k-fold CV plus a held-out set, or a
train/validation/test split. Patients never straddle a boundary.

A protocol is a list of :class:`Unit` — one model fit each: the rows it trains on and the
rows it predicts, each predicted row tagged with its *role* (``cv`` for out-of-fold,
``holdout``, ``val``, ``test``). The unit whose model is kept for ``bulk predict`` is
marked ``final``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..runs.folds import Unit, units_from_split

__all__ = ["Unit", "make_units", "pick_patients", "read_strata"]


def pick_patients(patients: np.ndarray, fractions: tuple[float, ...], seed: int,
                  strata: dict[str, str] | None = None) -> list[list[str]]:
    """Shuffle the unique patients with ``seed`` and cut them by ``fractions`` (in order).

    Every part with a positive fraction gets at least one patient when there are enough.
    With ``strata`` (patient → label), each label's patients are cut on their own (largest
    remainders), so every part keeps the labels' proportions (hist2RNA's subtype-stratified
    split, seed 001); patients without a label form one more stratum.

    Examples
    --------
    >>> parts = pick_patients(np.array([f"p{i}" for i in range(10)]), (0.6, 0.2, 0.2), 0)
    >>> [len(p) for p in parts]
    [6, 2, 2]
    >>> pts = np.array([f"p{i}" for i in range(12)])
    >>> lab = {p: "A" if i < 9 else "B" for i, p in enumerate(pts)}
    >>> train, test = pick_patients(pts, (2 / 3, 1 / 3), 0, strata=lab)
    >>> sorted(lab[p] for p in test)
    ['A', 'A', 'A', 'B']
    """
    names = np.array(sorted({str(p) for p in patients}))
    if strata is not None:
        groups: dict[str, list[str]] = {}
        for n in names:
            groups.setdefault(str(strata.get(n, "<no label>")), []).append(n)
        parts: list[list[str]] = [[] for _ in fractions]
        for i, label in enumerate(sorted(groups)):
            for j, cut in enumerate(_cut(np.array(groups[label]), fractions, seed + i)):
                parts[j] += cut
        if not parts[0]:
            raise InputError(f"{len(names)} patients cannot be split {fractions}")
        return [sorted(p) for p in parts]
    order = np.random.default_rng(seed).permutation(len(names))
    names = names[order]
    sizes = [round(f * len(names)) for f in fractions]
    for i, f in enumerate(fractions):
        if f > 0 and sizes[i] == 0 and len(names) > len(fractions):
            sizes[i] = 1
    sizes[0] = len(names) - sum(sizes[1:])
    if sizes[0] < 1:
        raise InputError(f"{len(names)} patients cannot be split {fractions}")
    out, start = [], 0
    for s in sizes:
        out.append(sorted(names[start:start + s].tolist()))
        start += s
    return out


def _cut(names: np.ndarray, fractions: tuple[float, ...], seed: int) -> list[list[str]]:
    """One stratum cut by ``fractions`` with largest-remainder sizes."""
    names = names[np.random.default_rng(seed).permutation(len(names))]
    exact = np.asarray(fractions, float) * len(names)
    sizes = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - sizes), kind="stable")[: len(names) - int(sizes.sum())]:
        sizes[i] += 1
    out, start = [], 0
    for n in sizes:
        out.append(names[start:start + n].tolist())
        start += n
    return out


def read_strata(path: str, patients: Any) -> dict[str, str]:
    """Patient → label from a CSV (the first column the patient, the second the label);
    the file's patients outside ``patients`` are ignored, and patients it lacks logged."""
    import logging

    import pandas as pd

    try:
        tab = pd.read_csv(path, dtype=str)
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot read the strata table ({e}); give a CSV of "
                         "patient,label") from e
    if tab.shape[1] < 2:
        raise InputError(f"{path}: the strata table needs two columns, patient and label")
    labels = dict(zip(tab.iloc[:, 0].str.strip(), tab.iloc[:, 1].fillna("").str.strip()))
    wanted = sorted({str(p) for p in patients})
    missing = [p for p in wanted if not labels.get(p)]
    if len(missing) == len(wanted):
        raise InputError(f"{path}: none of the {len(wanted)} patients has a label (its first "
                         f"column holds e.g. {', '.join(list(labels)[:3])}; the patients look "
                         f"like {', '.join(wanted[:3])})")
    if missing:
        logging.getLogger(__name__).warning(
            "%s: %d patient(s) without a label form their own stratum (e.g. %s)", path,
            len(missing), ", ".join(missing[:3]))
    return {p: labels[p] for p in wanted if labels.get(p)}


def make_units(patients: Any, *, protocol: str = "kfold", k: int = 5, holdout: float = 0.2,
               fractions: tuple[float, float, float] = (0.6, 0.2, 0.2), seed: int = 0,
               refit: bool = True, strata: dict[str, str] | None = None
               ) -> tuple[list[Unit], dict[str, Any]]:
    """The fits of a protocol over rows labelled by ``patients``; plus a JSON record.

    ``kfold``: ``holdout`` of the patients set aside, ``k`` grouped folds over the rest
    (units ``"0".."k-1"``, role ``cv``), then unit ``"holdout"`` trained on all non-held-out
    rows predicting the held-out ones (role ``holdout``; the final model). With
    ``holdout=0`` and ``refit``, unit ``"final"`` trains on everything and predicts nothing.
    ``split``: unit ``"train"`` predicts validation (``val``) and test (``test``) rows.
    ``strata`` (patient → label) draws the held-out / validation / test patients in
    proportion to each label.

    Examples
    --------
    >>> pts = np.repeat([f"p{i}" for i in range(10)], 2)
    >>> units, rec = make_units(pts, k=4, holdout=0.2)
    >>> [u.name for u in units], rec["holdout_patients"].__len__()
    (['0', '1', '2', '3', 'holdout'], 2)
    """
    from ..cohort import grouped_splits

    patients = np.asarray(patients).astype(str)
    rows = np.arange(len(patients))
    if protocol == "split":
        train_p, val_p, test_p = pick_patients(patients, fractions, seed, strata)
        tr = rows[np.isin(patients, train_p)]
        pred = rows[~np.isin(patients, train_p)]
        roles = np.where(np.isin(patients[pred], val_p), "val", "test")
        units = [Unit("train", tr, pred, roles, final=True)]
        rec = {"protocol": "split", "fractions": list(fractions), "train_patients": train_p,
               "val_patients": val_p, "test_patients": test_p,
               "stratified": strata is not None}
        return units, rec
    if protocol != "kfold":
        raise InputError(f"unknown protocol {protocol!r}; choose kfold or split")
    held: list[str] = []
    if holdout > 0:
        held = pick_patients(patients, (1 - holdout, holdout), seed, strata)[1]
    split = grouped_splits(patients, patients, by="patient", k=k, holdout=held)
    units = units_from_split(split, len(patients), refit=refit)
    rec = {"protocol": "kfold", "k": len(split.folds), "holdout_fraction": holdout,
           "holdout_patients": held, "fold_test_patients": split.fold_groups,
           "stratified": strata is not None}
    return units, rec
