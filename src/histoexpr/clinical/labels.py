"""Clinical labels as text: one notion of "missing" for every analysis (subtype labels,
clinical groups, survival times and events).

Examples
--------
>>> is_missing("[Not Available]"), is_missing(" NA "), is_missing("Positive")
(True, True, False)
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

__all__ = ["MISSING_LABELS", "clean_labels", "drop_missing_labels", "is_missing", "label_text"]

#: cell values read as "no label" (compared case-insensitively after stripping whitespace);
#: any value in square brackets (TCGA's ``[Not Available]``, ``[Unknown]``, ...) is too.
#: ("None" is not among them: it is a real answer in columns such as relapse or invasion.)
MISSING_LABELS = frozenset({
    "", "na", "n/a", "#n/a", "nan", "null", "unknown", "not available",
    "not reported", "not applicable", "not evaluated", "--", "'--", "-", ".", "?",
})

_BRACKETED = re.compile(r"^\[.*\]$")


def label_text(v: Any) -> str | None:
    """One label as text; None when missing."""
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))  # grade 1.0 (a column with NaN is float) reads as "1"
    s = str(v).strip()
    if s.lower() in MISSING_LABELS or _BRACKETED.match(s):
        return None
    return s


def is_missing(v: Any) -> bool:
    """True for NaN/None and for the placeholders of :data:`MISSING_LABELS` (or ``[...]``)."""
    return label_text(v) is None


def clean_labels(labels: pd.Series) -> tuple[pd.Series, dict[str, int]]:
    """Labels as stripped strings, missing ones (empty, placeholders) as NaN.

    Returns
    -------
    labels
        Same index, object dtype, NaN where missing.
    missing
        How many cells of each missing spelling were found (``"<empty>"`` for NaN / blank).

    Examples
    --------
    >>> import pandas as pd
    >>> lab, miss = clean_labels(pd.Series([" Positive", "[Not Available]", None, 2.0]))
    >>> lab.tolist()[0], lab.tolist()[3], miss
    ('Positive', '2', {'[Not Available]': 1, '<empty>': 1})
    """
    out: list[Any] = []
    missing: dict[str, int] = {}
    for v in labels.tolist():
        s = label_text(v)
        if s is None:
            raw = "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v).strip()
            key = raw if raw else "<empty>"
            missing[key] = missing.get(key, 0) + 1
            out.append(np.nan)
        else:
            out.append(s)
    return pd.Series(out, index=labels.index, name=labels.name, dtype=object), missing


def drop_missing_labels(labels: pd.Series, what: str) -> tuple[pd.Series, int]:
    """Labels as strings (index as strings) without the missing ones; how many were dropped,
    logged with their spellings."""
    s, spellings = clean_labels(pd.Series(labels))
    s.index = s.index.astype(str)
    n = sum(spellings.values())
    if n:
        logger.warning("%s: %d of %d samples have no label and are left out (%s)", what, n,
                       len(s), ", ".join(f"{k}: {v}" for k, v in spellings.items()))
    return s.dropna().astype(str).astype(object), n
