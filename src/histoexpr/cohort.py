"""Evaluation splits that keep a patient (or a section) on one side only.

Spots of one section, and sections of one patient, are far more alike than spots of
different patients, so a split that puts one patient on both sides reports numbers no new
patient will see. :func:`grouped_splits` groups by patient by default (``by="section"`` when
the cohort has one patient, e.g. the her2st sections here), takes an optional held-out group
out first, and returns the folds as plain index arrays that a run folder can save.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["SPLITS", "Split", "grouped_splits"]

#: what ``--split`` may name
SPLITS = ("patient", "section")


@dataclass(frozen=True)
class Split:
    """Folds of a grouped cross-validation plus an optional held-out set (row indices)."""

    by: str
    folds: list[tuple[np.ndarray, np.ndarray]]
    holdout: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    fold_groups: list[list[str]] = field(default_factory=list)  # test groups of each fold
    holdout_groups: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: groups per fold and the held-out groups (indices are re-derivable)."""
        return {"by": self.by, "fold_test_groups": self.fold_groups,
                "holdout_groups": self.holdout_groups,
                "fold_sizes": [[len(a), len(b)] for a, b in self.folds]}


def grouped_splits(
    patients: Any,
    sections: Any,
    *,
    by: str = "patient",
    k: int = 5,
    holdout: list[str] | None = None,
) -> Split:
    """Grouped k-fold over rows (spots or slides) labelled with patient and section ids.

    Parameters
    ----------
    patients, sections
        One label per row.
    by
        ``"patient"`` (default) or ``"section"``: the unit that is never split.
    k
        Number of folds; fewer groups than ``k`` gives leave-one-group-out (logged).
    holdout
        Groups (of the ``by`` kind) set aside before the folds, e.g. a final test patient.

    Raises
    ------
    InputError
        Unknown ``by``; fewer than two groups left for the folds (with one patient the
        message suggests ``--split section``); held-out groups that do not exist.

    Examples
    --------
    >>> s = grouped_splits(["p1", "p1", "p2", "p2", "p3"], ["a", "b", "c", "d", "e"], k=3)
    >>> sorted(s.fold_groups)
    [['p1'], ['p2'], ['p3']]
    """
    from sklearn.model_selection import GroupKFold

    if by not in SPLITS:
        raise InputError(f"unknown split {by!r}; choose one of: {', '.join(SPLITS)}")
    patients = np.asarray(patients).astype(str)
    sections = np.asarray(sections).astype(str)
    if len(patients) != len(sections):
        raise InputError(f"{len(patients)} patient labels but {len(sections)} section labels")
    groups = patients if by == "patient" else sections
    rows = np.arange(len(groups))
    held = np.zeros(0, int)
    holdout = [str(g) for g in (holdout or [])]
    if holdout:
        missing = sorted(set(holdout) - set(groups))
        if missing:
            raise InputError(f"held-out {by}(s) {', '.join(missing)} not in the data "
                             f"(have: {', '.join(sorted(set(groups))[:10])})")
        is_held = np.isin(groups, holdout)
        held, rows = rows[is_held], rows[~is_held]
    names = np.unique(groups[rows])
    if len(names) < 2:
        hint = (" With one patient, use --split section (leave-one-section-out), and say so "
                "when reporting: it says nothing about new patients.") if by == "patient" else ""
        raise InputError(f"{len(names)} {by}(s) left for cross-validation; need at least 2.{hint}")
    if len(names) < k:
        logger.info("%d %ss for %d folds: leave-one-%s-out", len(names), by, k, by)
        k = len(names)
    folds, fold_groups = [], []
    for tr, te in GroupKFold(n_splits=k).split(rows, groups=groups[rows]):
        folds.append((rows[tr], rows[te]))
        fold_groups.append(sorted({str(g) for g in groups[rows[te]]}))
    return Split(by, folds, held, fold_groups, sorted(set(holdout)))
