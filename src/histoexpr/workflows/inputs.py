"""What the studies read, and how messages and ``analysis.json`` name it.

An **expression** input is a bulk run folder (``entry`` picks a baseline's predictions,
``source`` the predicted or measured expression, ``role`` the out-of-fold or held-out rows),
the ``predictions.csv`` of ``histoexpr bulk predict``, an expression table (GDC,
cBioPortal, GCT, CSV/TSV), or a samples x genes DataFrame; rows are averaged per TCGA
patient (:func:`expression_frame`). A **clinical** input is a table (a path, or a DataFrame
indexed by id) whose ``id_col`` names its id column (:func:`clinical_table`). A path is
recorded in ``analysis.json`` with its SHA-256; an in-memory table is not
(:func:`input_path`). Genes are chosen with the one grammar of
:mod:`histoexpr.expression.genespec` (:func:`named_genes`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError

if TYPE_CHECKING:
    import pandas as pd

    from ..expression.genespec import GeneRequest

__all__ = ["clinical_table", "expression_frame", "input_label", "input_path", "named_genes",
           "split_list"]


def _is_path(x: Any) -> bool:
    return isinstance(x, str | os.PathLike)


def input_label(x: Any, default: str) -> str:
    """How messages name an input: its path, or ``default`` for an in-memory table.

    >>> input_label("clinical.tsv", "clinical table"), input_label(None, "clinical table")
    ('clinical.tsv', 'clinical table')
    """
    return str(x) if _is_path(x) else default


def input_path(x: Any) -> str | Path | None:
    """The input as ``analysis.json`` records it: a path, or nothing for an in-memory
    table (DataFrame or Series)."""
    return x if _is_path(x) else None


def split_list(value: str | Sequence[str] | None) -> list[str]:
    """``"A, B"`` or ``["A", "B"]`` as ``["A", "B"]`` (blanks dropped).

    >>> split_list("A, B,,C"), split_list(["A", " B"]), split_list(None)
    (['A', 'B', 'C'], ['A', 'B'], [])
    """
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(v).strip() for v in items if str(v).strip()]


def named_genes(spec: str | Sequence[str] | None, *, use: str, instead: str,
                reason: str = "") -> GeneRequest | None:
    """``spec`` read with the one ``--genes`` grammar, for a study that works on named genes.

    A string is parsed by :meth:`~histoexpr.expression.genespec.GeneRequest.parse` (a
    built-in panel, a gene-list file, a comma list); a list names the genes. ``all`` and a
    data-driven choice (``topN``, ``hvgN``) are refused in one line: ``use`` says what the
    genes are for, ``reason`` why the data cannot choose them, ``instead`` what to do.

    Examples
    --------
    >>> named_genes("ESR1, PGR", use="x", instead="y").genes
    ('ESR1', 'PGR')
    >>> try:
    ...     named_genes("top50", use="comparing genes between groups", instead="name them")
    ... except InputError as e:
    ...     print(str(e)[:60])
    --genes top50: comparing genes between groups needs named ge
    """
    from ..expression.genespec import GeneRequest

    if spec is None:
        return None
    if not isinstance(spec, str):
        names = tuple(dict.fromkeys(split_list(spec)))
        return GeneRequest(",".join(names), "list", len(names), names) if names else None
    request = GeneRequest.parse(spec)
    if request.genes is None:
        what = "every gene of the data" if request.kind == "all" else \
            f"a data-driven choice{reason}"
        raise InputError(f"--genes {spec}: {use} needs named genes (a built-in panel such as "
                         f"pam50, a file or a comma list), not {what}; {instead}")
    return request


def expression_frame(expression: Any, *, entry: str | None = None,
                     source: str = "predicted", role: str | None = None) -> pd.DataFrame:
    """Samples x genes from an expression input (see the module docstring); rows averaged
    per TCGA patient either way."""
    from ..analysis.tables import read_expression_input, to_patients

    if hasattr(expression, "columns"):
        df = expression.copy()
        df.index = df.index.astype(str)
        try:
            df = df.astype(float)
        except (TypeError, ValueError) as e:
            raise InputError(f"expression: samples x genes of numbers only ({e})") from None
        return to_patients(df, list(df.index), "expression")
    return read_expression_input(expression, entry=entry, source=source, role=role)


def clinical_table(clinical: Any, *, id_col: str | None = None) -> pd.DataFrame:
    """A clinical table indexed by id: read from a path
    (:func:`~histoexpr.analysis.tables.read_clinical`), or an in-memory table (indexed by
    ``id_col`` when given, else by its index)."""
    from ..analysis.tables import read_clinical

    if not hasattr(clinical, "columns"):
        return read_clinical(clinical, id_col=id_col)
    tab = clinical.copy()
    if id_col is not None:
        if id_col not in tab.columns:
            raise InputError(f"clinical table: no id column {id_col!r}; columns are "
                             f"{list(tab.columns)}")
        tab = tab.set_index(id_col)
    tab.index = tab.index.astype(str)
    dup = tab.index[tab.index.duplicated()].unique().tolist()
    if dup:
        raise InputError(f"clinical table: id(s) {', '.join(dup[:5])} appear more than once; "
                         "keep one row per patient")
    return tab
