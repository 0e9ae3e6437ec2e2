from __future__ import annotations

import numpy as np
import pytest

from histoexpr.cohort import grouped_splits
from histoexpr.errors import InputError


@pytest.fixture
def cohort():
    rng = np.random.default_rng(0)
    patients = np.repeat([f"P{i}" for i in range(7)], 2)  # 7 patients x 2 sections
    sections = np.array([f"{p}-{j}" for p in patients[::2] for j in range(2)])
    n_spots = rng.integers(20, 60, len(sections))
    return np.repeat(patients, n_spots), np.repeat(sections, n_spots)


@pytest.mark.parametrize("by", ["patient", "section"])
def test_no_group_on_both_sides_and_every_row_tested_once(cohort, by):
    patients, sections = cohort
    groups = patients if by == "patient" else sections
    split = grouped_splits(patients, sections, by=by, k=5)
    tested = np.concatenate([te for _, te in split.folds])
    assert len(split.folds) == 5 and sorted(tested.tolist()) == list(range(len(groups)))
    for tr, te in split.folds:
        assert not set(groups[tr]) & set(groups[te])
    if by == "section":  # sections of one patient may sit on both sides; patients do not
        assert any(set(patients[tr]) & set(patients[te]) for tr, te in split.folds)


def test_holdout_patient_is_out_of_every_fold(cohort):
    patients, sections = cohort
    split = grouped_splits(patients, sections, k=3, holdout=["P6"])
    assert set(patients[split.holdout]) == {"P6"}
    for tr, te in split.folds:
        assert "P6" not in set(patients[tr]) | set(patients[te])
    assert split.to_dict()["holdout_groups"] == ["P6"]
    with pytest.raises(InputError, match=r"held-out patient.*P9"):
        grouped_splits(patients, sections, holdout=["P9"])


def test_one_patient_suggests_section_split_and_few_groups_give_logo():
    patients = ["C"] * 10
    sections = np.repeat(["C2", "C3", "C4", "C5", "C6"], 2)
    with pytest.raises(InputError, match="use --split section"):
        grouped_splits(patients, sections)
    split = grouped_splits(patients, sections, by="section", k=10)
    assert sorted(split.fold_groups) == [[s] for s in sorted(set(sections))]  # one per fold
    with pytest.raises(InputError, match="unknown split"):
        grouped_splits(patients, sections, by="spot")
