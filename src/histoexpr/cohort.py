"""Evaluation splits that keep a patient (or a section) on one side only.

Spots of one section, and sections of one patient, are far more alike than spots of
different patients, so a split that puts one patient on both sides reports numbers no new
patient will see. :func:`grouped_splits` groups by patient by default (``by="section"`` when
the cohort has one patient, e.g. the her2st sections here), takes an optional held-out group
out first, and returns the folds as plain index arrays that a run folder can save.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .barcodes import Barcode, try_parse_barcode
from .errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["JOIN_RULES", "SPLITS", "JoinResult", "Split", "grouped_splits", "join_slides"]

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
    min_test: int = 1,
    row_name: str = "row",
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
    min_test, row_name
        The fewest test rows a fold is scored on, and what a row is (``"spot"``), for the
        error when no fold would reach it.

    Raises
    ------
    InputError
        Unknown ``by``; fewer than two groups left for the folds (with one patient the
        message suggests ``--split section``); held-out groups that do not exist; no fold
        with ``min_test`` test rows.

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
    folds, fold_groups = [], []
    for tr, te in GroupKFold(n_splits=min(k, len(names))).split(rows, groups=groups[rows]):
        folds.append((rows[tr], rows[te]))
        fold_groups.append(sorted({str(g) for g in groups[rows[te]]}))
    if max(len(te) for _, te in folds) < min_test:
        sizes = pd.Series(groups[rows]).value_counts().sort_index()
        listed = ", ".join(f"{g} {n}" for g, n in sizes.head(5).items()) + \
            (", ..." if len(sizes) > 5 else "")
        raise InputError(f"--folds {k}: no fold would hold the {min_test} test "
                         f"{row_name}s a fold is scored on ({row_name}s per {by}"
                         f"{' left after the hold-out' if holdout else ''}: {listed}); add "
                         f"{by}s with more {row_name}s")
    if len(names) < k:
        where = "left after the hold-out" if holdout else "in the data"
        logger.warning("--folds %d, but %d %ss %s: %d folds, leave-one-%s-out", k, len(names),
                       by, where, len(names), by)
    return Split(by, folds, held, fold_groups, sorted(set(holdout)))


# --------------------------------------------------------------------------------------------
# Joining slides to expression rows
# --------------------------------------------------------------------------------------------
#: what ``join_slides(rule=...)`` may name
JOIN_RULES = ("first_dx", "all")

_MANIFEST_COLUMNS = ("slide", "patient")


@dataclass
class JoinResult:
    """Slides paired with expression rows by patient, and everything that was left out.

    Attributes
    ----------
    pairs
        One row per kept slide: ``patient``, ``slide``, ``expression_id`` (with
        ``rule="all"`` a patient may have several rows; pool them per patient).
    slides_without_expression, expression_without_slides
        Kept items whose patient has nothing on the other side (not an error).
    dropped
        ``item``, ``kind`` (``slide`` / ``expression``) and ``reason`` of every item left out
        before pairing (wrong sample type, frozen section beside a DX slide, extra slide of a
        patient, duplicate expression row, unknown patient).
    """

    pairs: pd.DataFrame
    slides_without_expression: list[str]
    expression_without_slides: list[str]
    dropped: pd.DataFrame
    rule: str = "first_dx"
    sample_types: tuple[str, ...] | None = ("01",)

    def counts(self) -> dict[str, int]:
        """Numbers of pairs, patients, orphans and drops."""
        kinds = self.dropped["kind"] if len(self.dropped) else pd.Series([], dtype=str)
        return {
            "pairs": len(self.pairs),
            "patients": int(self.pairs["patient"].nunique()),
            "slides_without_expression": len(self.slides_without_expression),
            "expression_without_slides": len(self.expression_without_slides),
            "slides_dropped": int((kinds == "slide").sum()),
            "expression_dropped": int((kinds == "expression").sum()),
        }

    def report(self) -> str:
        """A short multi-line summary of the join, for logs and the run report.

        Examples
        --------
        >>> r = join_slides(["TCGA-A2-A04R-01Z-00-DX1"], ["TCGA-A2-A04R", "TCGA-3C-AAAU"])
        >>> print(r.report())
        slide-expression join (rule first_dx, sample types 01)
          1 pairs over 1 patients
          0 slides without expression
          1 expression rows without slides
          0 slides dropped, 0 expression rows dropped
        """
        c = self.counts()
        types = ", ".join(self.sample_types) if self.sample_types else "any"
        lines = [
            f"slide-expression join (rule {self.rule}, sample types {types})",
            f"  {c['pairs']} pairs over {c['patients']} patients",
            f"  {c['slides_without_expression']} slides without expression",
            f"  {c['expression_without_slides']} expression rows without slides",
            f"  {c['slides_dropped']} slides dropped, {c['expression_dropped']} expression "
            "rows dropped",
        ]
        if len(self.dropped):
            for reason, n in self.dropped["reason"].map(_reason_kind).value_counts().items():
                lines.append(f"    {n} x {reason}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record of the join (pairs, orphans, drops, counts) for a run folder."""
        return {
            "rule": self.rule,
            "sample_types": list(self.sample_types) if self.sample_types else None,
            "counts": self.counts(),
            "pairs": self.pairs.to_dict(orient="records"),
            "slides_without_expression": list(self.slides_without_expression),
            "expression_without_slides": list(self.expression_without_slides),
            "dropped": self.dropped.to_dict(orient="records"),
        }


def _reason_kind(reason: str) -> str:
    """The part of a drop reason before ':' (groups drops in the report)."""
    return reason.split(":", 1)[0]


def _norm_sample_types(sample_types: Any) -> tuple[str, ...] | None:
    if sample_types is None:
        return None
    if isinstance(sample_types, (str, int)):
        sample_types = (sample_types,)
    out = []
    for t in sample_types:
        text = str(t).strip()
        if not text.isdigit() or not 0 < int(text) < 100:
            raise InputError(f"sample type {t!r} is not a TCGA sample type code (01-99), "
                             "e.g. sample_types=('01',) for primary tumour")
        out.append(f"{int(text):02d}")
    return tuple(out)


def _slide_keys(name: str) -> list[str]:
    """Forms of a slide name a manifest may use: as given, file name, file name sans suffix."""
    base = Path(name).name
    keys = [name, base, Path(base).stem, base.split(".", 1)[0]]
    return list(dict.fromkeys(k for k in keys if k))


def _read_manifest(manifest: Any) -> tuple[dict[str, str], dict[str, str], set[str]]:
    """slide -> patient, sample -> patient, and the set of patients of a manifest."""
    where = "the manifest DataFrame"
    if isinstance(manifest, (str, Path)):
        where = str(manifest)
        try:
            manifest = pd.read_csv(manifest, dtype=str)
        except FileNotFoundError as e:
            raise InputError(f"manifest {where} not found; give a CSV with columns "
                             "slide, patient (and optionally sample)") from e
    if not isinstance(manifest, pd.DataFrame):
        raise InputError(f"manifest must be a DataFrame or a CSV path, not {type(manifest)}")
    missing = [c for c in _MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise InputError(f"manifest {where} lacks column(s) {', '.join(missing)}; it needs "
                         f"slide, patient (and optionally sample); has: "
                         f"{', '.join(map(str, manifest.columns))}")
    df = manifest.dropna(subset=["slide", "patient"]).astype(str)
    slide_to_patient: dict[str, str] = {}
    for slide, patient in zip(df["slide"].str.strip(), df["patient"].str.strip()):
        for key in _slide_keys(slide):
            old = slide_to_patient.setdefault(key, patient)
            if old != patient:
                raise InputError(f"manifest {where} maps slide {slide!r} to two patients "
                                 f"({old}, {patient}); fix the manifest")
    sample_to_patient: dict[str, str] = {}
    if "sample" in manifest.columns:
        sub = manifest.dropna(subset=["sample", "patient"]).astype(str)
        sample_to_patient = dict(zip(sub["sample"].str.strip(), sub["patient"].str.strip()))
    return slide_to_patient, sample_to_patient, set(df["patient"].str.strip())


def _slide_order(item: tuple[str, Barcode | None]) -> tuple[int, float, str]:
    """Sort key for a patient's slides: DX slides by DX number first, then by name."""
    s, b = item
    n = b.dx_number if b is not None else None
    return (0 if n is not None else 1, n if n is not None else np.inf, s)


def _examples(items: Sequence[str], n: int = 3) -> str:
    if not len(items):
        return "(none given)"
    shown = ", ".join(repr(str(x)) for x in list(items)[:n])
    return shown + (", ..." if len(items) > n else "")


def join_slides(
    slides: Sequence[Any],
    expression_ids: Sequence[Any],
    *,
    rule: str = "first_dx",
    sample_types: Sequence[str | int] | None = ("01",),
    manifest: pd.DataFrame | str | Path | None = None,
) -> JoinResult:
    """Pair slides with expression rows of the same patient.

    Each slide and each expression id is reduced to a patient: through ``manifest`` when it
    names the item, else by its TCGA barcode. Then, in order:

    1. Items of a known sample type outside ``sample_types`` are dropped (slides and
       expression rows alike, so a tumour slide is never paired with normal tissue).
    2. Slides: if a patient has a diagnostic (DX) slide, its frozen sections (TS/BS/MS) are
       dropped. With ``rule="first_dx"`` one slide per patient is kept: lowest DX number, then
       name order; ``rule="all"`` keeps every remaining slide.
    3. Expression: of several rows of one patient (01A and 01B, tumour and normal), a tumour
       row is kept, then the first in the given order.

    Every drop is logged and listed in :attr:`JoinResult.dropped` with its reason. Orphans on
    either side are listed, not fatal.

    Parameters
    ----------
    slides
        Slide names or paths (file stems or file names; a UUID suffix or tile box is fine).
    expression_ids
        The expression table index: patient, sample or aliquot barcodes (or manifest ids).
    rule
        ``"first_dx"`` (default) or ``"all"``.
    sample_types
        Two-digit TCGA sample type codes to keep, default ``("01",)`` (primary tumour);
        ``None`` keeps every type. Items whose type is unknown (patient-level ids, non-TCGA
        names) are kept.
    manifest
        For non-TCGA cohorts: a DataFrame or CSV path with columns ``slide``, ``patient`` and
        optionally ``sample`` (expression ids given as samples). Slides are matched by name,
        file name or stem; expression ids by ``sample`` or ``patient``.

    Returns
    -------
    JoinResult

    Raises
    ------
    InputError
        Unknown ``rule`` or sample type; manifest missing or lacking columns; no slide matched
        any expression row (the message shows what each side looks like).

    Examples
    --------
    >>> r = join_slides(
    ...     ["TCGA-A2-A04R-01Z-00-DX2.svs", "TCGA-A2-A04R-01Z-00-DX1.svs",
    ...      "TCGA-A2-A04R-01A-01-TS1.svs"],
    ...     ["TCGA-A2-A04R-01A-11R-A41B-07", "TCGA-A2-A04R-11A-11R-A41B-07"])
    >>> r.pairs.to_dict(orient="records")  # doctest: +NORMALIZE_WHITESPACE
    [{'patient': 'TCGA-A2-A04R', 'slide': 'TCGA-A2-A04R-01Z-00-DX1.svs',
      'expression_id': 'TCGA-A2-A04R-01A-11R-A41B-07'}]
    >>> len(r.dropped)
    3
    """
    if rule not in JOIN_RULES:
        raise InputError(f"unknown join rule {rule!r}; choose one of: {', '.join(JOIN_RULES)}")
    types = _norm_sample_types(sample_types)
    slides = [str(s) for s in slides]
    expression_ids = [str(e) for e in expression_ids]
    slide_map: dict[str, str] = {}
    sample_map: dict[str, str] = {}
    manifest_patients: set[str] = set()
    if manifest is not None:
        slide_map, sample_map, manifest_patients = _read_manifest(manifest)

    dropped: list[tuple[str, str, str]] = []

    def drop(item: str, kind: str, reason: str) -> None:
        logger.info("join: dropped %s %s (%s)", kind, item, reason)
        dropped.append((item, kind, reason))

    def type_ok(item: str, kind: str, b: Barcode | None) -> bool:
        if types is None or b is None or b.sample_type is None:
            return True
        code = f"{b.sample_type:02d}"
        if code in types:
            return True
        what = "tumour" if b.is_tumour else "normal" if b.is_normal else "control/other"
        drop(item, kind, f"sample type: {code} ({what}) not in sample_types "
                         f"{', '.join(types)}")
        return False

    def assign(item: str, kind: str, patient: str | None, b: Barcode | None,
               into: dict[str, list[tuple[str, Barcode | None]]], columns: str) -> None:
        """File ``item`` under its patient, or drop it when it has none or is of another
        sample type; ``columns`` are the manifest columns that would name its patient."""
        if patient is None:
            drop(item, kind, "unknown patient: not a TCGA barcode"
                 + (" and not in the manifest" if manifest is not None else
                    f"; give a manifest (columns {columns})"))
        elif type_ok(item, kind, b):
            into.setdefault(patient, []).append((item, b))

    # ---- slides -> patient
    by_patient: dict[str, list[tuple[str, Barcode | None]]] = {}
    seen: set[str] = set()
    for s in slides:
        if s in seen:
            drop(s, "slide", "duplicate: slide listed twice")
            continue
        seen.add(s)
        b = try_parse_barcode(s)
        patient = next((slide_map[k] for k in _slide_keys(s) if k in slide_map), None)
        if patient is None and b is not None:
            patient = b.patient
        assign(s, "slide", patient, b, by_patient, "slide, patient")

    kept_slides: dict[str, list[str]] = {}
    for patient, items in by_patient.items():
        if any(b is not None and b.is_diagnostic_slide for _, b in items):
            for s, b in items:
                if b is None or not b.is_diagnostic_slide:
                    section = b.slide if b is not None and b.slide else "not DX"
                    drop(s, "slide", f"not diagnostic: {section} section; the patient has a "
                                     "DX slide")
            items = [(s, b) for s, b in items if b is not None and b.is_diagnostic_slide]
        items = sorted(items, key=_slide_order)
        if rule == "first_dx" and len(items) > 1:
            for s, _ in items[1:]:
                drop(s, "slide", f"extra slide: rule first_dx keeps {items[0][0]} for "
                                 f"{patient}")
            items = items[:1]
        kept_slides[patient] = [s for s, _ in items]

    # ---- expression ids -> patient
    expr_by_patient: dict[str, list[tuple[str, Barcode | None]]] = {}
    for e in expression_ids:
        b = try_parse_barcode(e)
        if e in sample_map:
            patient = sample_map[e]
        elif e in manifest_patients:
            patient = e
        else:
            patient = None if b is None else b.patient
        assign(e, "expression", patient, b, expr_by_patient, "slide, patient, sample")
    kept_expr: dict[str, str] = {}
    for patient, items in expr_by_patient.items():
        best = min(range(len(items)),
                   key=lambda i: (0 if items[i][1] is not None and items[i][1].is_tumour
                                  else 1, i))
        kept_expr[patient] = items[best][0]
        for i, (e, _) in enumerate(items):
            if i != best:
                drop(e, "expression", f"duplicate: {patient} has several expression rows; "
                                      f"kept {items[best][0]}")

    # ---- pair
    pairs = [(p, s, kept_expr[p]) for p in sorted(kept_slides) if p in kept_expr
             for s in kept_slides[p]]
    if not pairs:
        raise InputError(
            f"no slide matched an expression row: slides look like {_examples(slides)}, "
            f"expression ids like {_examples(expression_ids)}. Both must carry TCGA barcodes "
            "of the same patients, or give a manifest (columns slide, patient[, sample])."
        )
    result = JoinResult(
        pairs=pd.DataFrame(pairs, columns=["patient", "slide", "expression_id"]),
        slides_without_expression=[s for p in sorted(kept_slides) if p not in kept_expr
                                   for s in kept_slides[p]],
        expression_without_slides=[e for p, e in kept_expr.items() if p not in kept_slides],
        dropped=pd.DataFrame(dropped, columns=["item", "kind", "reason"]),
        rule=rule,
        sample_types=types,
    )
    logger.info("%s", result.report())
    return result
