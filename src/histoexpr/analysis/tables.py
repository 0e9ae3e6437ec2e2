"""Inputs of every downstream analysis: expression from a run folder or a table, clinical
tables, and the join between them.

Each analysis of :mod:`histoexpr.clinical` and :mod:`histoexpr.analysis` takes plain
``pandas`` frames (samples x genes, samples x clinical columns). This module turns what a user
has on disk into those frames:

- a **bulk run folder** (``histoexpr bulk fit/evaluate``): its ``predictions.csv`` (out-of-fold
  and held-out predictions of each entry) or its measured expression, averaged per patient;
- the output of ``histoexpr bulk predict`` (``predictions.csv`` with a ``patient`` column);
- any expression file :func:`histoexpr.expression.read_expression` reads (GDC, cBioPortal,
  GCT, plain CSV/TSV, either orientation).

Ids are joined by TCGA patient barcode when both sides parse as TCGA barcodes (a sample or
slide barcode on one side meets a patient barcode on the other); otherwise by exact id.

Examples
--------
>>> import pandas as pd
>>> e = pd.DataFrame({"ESR1": [1.0, 2.0]}, index=["TCGA-A1-A0SB-01A", "TCGA-A1-A0SD-01A"])
>>> c = pd.DataFrame({"grade": [1, 3]}, index=["TCGA-A1-A0SD", "TCGA-XX-0000"])
>>> a, b = align_samples(e, c)
>>> list(a.index), list(b["grade"])
(['TCGA-A1-A0SD'], [1])
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..barcodes import try_parse_barcode
from ..errors import InputError
from ..runs import files

logger = logging.getLogger(__name__)

__all__ = [
    "align_samples",
    "is_bulk_run",
    "read_clinical",
    "read_expression_input",
    "run_entries",
    "select_genes",
    "to_patients",
]

_ID_HEADERS = ("patient_id", "patient", "sample_id", "sample", "case_id", "submitter_id",
               "bcr_patient_barcode", "id", "slide")


def is_bulk_run(path: str | Path) -> bool:
    """True when ``path`` is a bulk run folder (it holds ``config.json`` of command bulk)."""
    p = Path(path)
    return p.is_dir() and (p / files.CONFIG).is_file() and (p / files.SLIDES).is_file()


def run_entries(path: str | Path) -> list[str]:
    """The entries (model and baselines) a bulk run's ``predictions.csv`` holds."""
    pred = _predictions_csv(Path(path))
    entries = pd.read_csv(pred, usecols=["entry"])["entry"].astype(str)
    return [e for e in dict.fromkeys(entries) if e != "measured"]


def _predictions_csv(run: Path) -> Path:
    p = run / files.PREDICTIONS_CSV
    if not p.is_file():
        raise InputError(f"{run}: no predictions.csv; run `histoexpr bulk evaluate {run}` first")
    return p


def to_patients(df: pd.DataFrame, ids: Sequence[str], what: str) -> pd.DataFrame:
    """Average rows per TCGA patient (rows whose id is no TCGA barcode keep their id);
    ``ids`` are the rows' slide or sample ids, ``what`` names the source in the log."""
    pats = []
    for s in ids:
        bc = try_parse_barcode(s)
        pats.append(bc.patient if bc is not None else str(s))
    out = df.groupby(np.asarray(pats), sort=False).mean()
    out.index.name = "patient"
    if len(out) < len(df):
        logger.info("%s: %d rows averaged to %d patients", what, len(df), len(out))
    return out


def _from_run(run: Path, *, entry: str | None, source: str, role: str | None) -> pd.DataFrame:
    pred_path = _predictions_csv(run)
    tab = pd.read_csv(pred_path, dtype={"slide": str, "unit": str, "role": str})
    tags = ["entry", "model", "features", "kind", "unit", "role", "slide"]
    genes = [c for c in tab.columns if c not in tags]
    if source == "measured":
        rows = tab[tab["entry"] == "measured"]
        what = f"{run} (measured)"
    else:
        preds = tab[tab["entry"] != "measured"]
        if entry is None:
            models = preds.loc[preds["kind"] == "model", "entry"].unique().tolist()
            if not models:
                raise InputError(f"{pred_path}: no model entry; name one with --entry "
                                 f"(have {sorted(preds['entry'].unique())})")
            entry = str(models[0])
        rows = preds[preds["entry"] == entry]
        if rows.empty:
            raise InputError(f"{pred_path}: no entry {entry!r}; have "
                             f"{sorted(preds['entry'].unique())}")
        roles = list(dict.fromkeys(rows["role"].astype(str)))
        if role is None:
            # out-of-fold predictions cover every cross-validated patient; a held-out set
            # (split protocol) is the honest alternative; never mix the two.
            role = "cv" if "cv" in roles else "holdout" if "holdout" in roles else "test"
        if role not in roles:
            raise InputError(f"{pred_path}: entry {entry!r} has roles {roles}, not {role!r}")
        rows = rows[rows["role"] == role]
        what = f"{run} ({entry}, {role})"
    if rows.empty:
        raise InputError(f"{pred_path}: no rows for {what}")
    vals = rows[genes].astype(float)
    vals.index = rows["slide"].astype(str).to_numpy()
    return to_patients(vals, list(vals.index), what)


def _from_predict_csv(path: Path) -> pd.DataFrame:
    tab = pd.read_csv(path, index_col=0)
    tab.index = tab.index.astype(str)
    pat = tab.pop("patient").fillna("").astype(str)
    ids = [p if p else s for p, s in zip(pat, tab.index)]
    return to_patients(tab.astype(float), ids, str(path))


def read_expression_input(
    path: str | Path,
    *,
    entry: str | None = None,
    source: str = "predicted",
    role: str | None = None,
    patients: bool = True,
) -> pd.DataFrame:
    """Samples x genes from a bulk run folder, ``bulk predict`` output or an expression file.

    Parameters
    ----------
    path
        A bulk run folder, a ``predictions.csv`` written by ``histoexpr bulk predict`` (it has
        a ``patient`` column), or any file :func:`~histoexpr.expression.read_expression` reads
        (plain tables may hold negative values: predictions and log or centred values).
    entry
        Run folders only: which entry's predictions (default the model, not a baseline).
    source
        Run folders only: ``"predicted"`` or ``"measured"`` (the run's transformed measured
        expression).
    role
        Run folders only: ``"cv"`` (out-of-fold, default when present), ``"holdout"``,
        ``"test"`` or ``"val"``.
    patients
        Average slide or sample rows per TCGA patient (rows that are no TCGA barcode keep
        their id). Run folders always do.

    Returns
    -------
    DataFrame, index = sample or patient id, columns = genes, float values.
    """
    p = Path(path)
    if source not in ("predicted", "measured"):
        raise InputError(f"source must be 'predicted' or 'measured', not {source!r}")
    if not p.exists():
        raise InputError(f"{p}: not found; give a bulk run folder or an expression table")
    if p.is_dir() and is_bulk_run(p):
        return _from_run(p, entry=entry, source=source, role=role)
    if p.is_file() and p.suffix == ".csv":
        head = pd.read_csv(p, nrows=0).columns
        if "patient" in head and "entry" not in head:
            return _from_predict_csv(p)
        if "entry" in head and "role" in head:
            return _from_run(p.parent, entry=entry, source=source, role=role)
    from ..expression import read_expression
    from ..expression.sniff import sniff_format

    # predicted or already-transformed tables may hold negative values; raw-count formats
    # keep their check
    kw = {"allow_negative": True} if p.is_file() and sniff_format(p) == "table" else {}
    df = read_expression(p, **kw)
    return to_patients(df, list(df.index), str(p)) if patients else df


def read_clinical(path: str | Path, *, id_col: str | None = None) -> pd.DataFrame:
    """A clinical or covariate table (CSV, or TSV for other suffixes; cBioPortal's ``#``
    comment lines skipped), indexed by its id column.

    The id column is ``id_col``, else the first column whose header is a usual id header
    (``PATIENT_ID``, ``patient``, ``sample``, ``case_id``, ``submitter_id``, ...), else the
    first column. Duplicate ids are an error.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: clinical table not found")
    name = p.name[:-3] if p.name.endswith(".gz") else p.name
    sep = "," if name.endswith(".csv") else "\t"
    tab = pd.read_csv(p, sep=sep, comment="#")
    if tab.shape[1] < 2:
        tab = pd.read_csv(p, sep="\t" if sep == "," else ",", comment="#")
    if tab.shape[1] < 2:
        raise InputError(f"{p}: needs an id column and at least one more column")
    if id_col is None:
        lower = {str(c).lower(): c for c in tab.columns}
        id_col = next((lower[h] for h in _ID_HEADERS if h in lower), tab.columns[0])
    if id_col not in tab.columns:
        raise InputError(f"{p}: no id column {id_col!r}; columns are {list(tab.columns)}")
    tab[id_col] = tab[id_col].astype(str)
    dup = tab[id_col][tab[id_col].duplicated()].unique().tolist()
    if dup:
        raise InputError(f"{p}: id(s) {', '.join(dup[:5])} appear more than once in column "
                         f"{id_col!r}; keep one row per patient")
    return tab.set_index(id_col)


def _patient_keys(ids: pd.Index) -> list[str] | None:
    keys = []
    for s in ids:
        bc = try_parse_barcode(s)
        if bc is None:
            return None
        keys.append(bc.patient)
    return keys


def align_samples(
    a: pd.DataFrame, b: pd.DataFrame, *, what: tuple[str, str] = ("expression", "table"),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of ``a`` and ``b`` that name the same sample, in the same order.

    When every id on both sides is a TCGA barcode, rows are matched by patient (the index
    becomes the patient barcode; a side with several rows per patient is an error); else by
    exact id. How many rows each side lost is logged; no overlap is an error.
    """
    ka, kb = _patient_keys(a.index), _patient_keys(b.index)
    if ka is not None and kb is not None:
        a, b = a.set_axis(ka, axis=0), b.set_axis(kb, axis=0)
    for df, name in ((a, what[0]), (b, what[1])):
        if df.index.duplicated().any():
            d = df.index[df.index.duplicated()].unique().tolist()
            raise InputError(f"{name}: several rows for {', '.join(map(str, d[:5]))}; "
                             "average or choose one per patient first")
    common = a.index.intersection(b.index, sort=False)
    if len(common) == 0:
        raise InputError(f"no ids in common between the {what[0]} ({list(a.index[:3])}, ...) "
                         f"and the {what[1]} ({list(b.index[:3])}, ...)")
    for df, name in ((a, what[0]), (b, what[1])):
        if len(df) > len(common):
            logger.info("%s: %d of %d rows have no match and are left out", name,
                        len(df) - len(common), len(df))
    return a.loc[common], b.loc[common]


def select_genes(expr: pd.DataFrame, genes: Sequence[str], *, what: str = "expression",
                 required: bool = True) -> pd.DataFrame:
    """The columns ``genes`` of ``expr``; missing ones are an error naming them (or, with
    ``required=False``, logged and left out)."""
    missing = [g for g in genes if g not in expr.columns]
    if missing and (required or len(missing) == len(genes)):
        raise InputError(f"{what}: gene(s) {', '.join(missing)} absent; have "
                         f"{len(expr.columns)} genes ({', '.join(map(str, expr.columns[:5]))}, "
                         "...)")
    if missing:
        logger.warning("%s: gene(s) %s absent and left out", what, ", ".join(missing))
    return expr[[g for g in genes if g in expr.columns]]
