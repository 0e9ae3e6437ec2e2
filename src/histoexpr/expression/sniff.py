"""Which bulk format a file is, and one entry point that reads any of them.

:func:`read_expression` sniffs the format (:func:`sniff_format`) and calls the reader
registered under that name in :data:`~histoexpr.expression.bulk.BULK_READERS`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from ..errors import InputError
from .bulk import BULK_READERS, FPKM_UQ_GLOB, STAR_GLOB, _head
from .genenames import ENSEMBL_RE

logger = logging.getLogger(__name__)

__all__ = ["read_expression", "sniff_format"]


def sniff_format(path: str | Path) -> str:
    """The :data:`BULK_READERS` name of a file or GDC folder (see :func:`read_expression`).

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "x.txt"
    >>> _ = p.write_text("Hugo_Symbol\\tS1\\nTP53\\t1\\n")
    >>> sniff_format(p)
    'cbioportal'
    """
    path = Path(path)
    if path.is_dir():
        if next(path.rglob(STAR_GLOB), None) is not None or next(path.glob("*.tsv"), None):
            return "star"
        if next(path.rglob(FPKM_UQ_GLOB), None) is not None:
            return "fpkm_uq"
        raise InputError(f"{path}: folder without GDC STAR ({STAR_GLOB}) or FPKM-UQ "
                         f"({FPKM_UQ_GLOB}) files; give a file or the GDC download folder")
    head = _head(path, 3)
    if not head:
        raise InputError(f"{path}: empty file")
    if head[0].startswith("#1."):
        return "gct"
    body = [ln for ln in head if not ln.startswith("#")]
    fields = body[0].split("\t") if body else []
    if fields and fields[0] == "Hugo_Symbol":
        return "cbioportal"
    if "gene_id" in fields and "gene_name" in fields and "unstranded" in fields:
        return "star"
    if len(fields) == 2 and ENSEMBL_RE.match(fields[0]):
        return "fpkm_uq"
    return "table"


def read_expression(path: str | Path, *, format: str | None = None,
                    sample_sheet: str | Path | None = None, **kw) -> pd.DataFrame:
    """Read any supported bulk file (or GDC download folder) into samples x genes.

    Parameters
    ----------
    path
        A file, or a folder of per-sample GDC files: ``*.rna_seq.augmented_star_gene_counts.tsv``
        searched recursively (GDC nests one file per UUID folder), else the ``*.tsv`` directly
        in it; or, failing both, ``*.FPKM-UQ.txt(.gz)`` recursively.
    format
        A :data:`BULK_READERS` name; ``None`` sniffs it: a ``#1.x`` first line → ``gct``; a
        first field ``Hugo_Symbol`` → ``cbioportal``; a header with ``gene_id``,
        ``gene_name`` and ``unstranded`` → ``star``; two tab fields starting with an
        Ensembl id and no header → ``fpkm_uq``; anything else → ``table``.
    sample_sheet
        A GDC sample sheet naming the sample of each file of a folder (files named by UUID);
        default: the file name is the sample id.
    **kw
        Passed to the reader (``value=``, ``gtf=``, ``allow_nan=``, ...).

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "e.csv"
    >>> _ = p.write_text("PATIENT_ID,ESR1\\nTCGA-A1-A0SB,5\\n")
    >>> read_expression(p).shape
    (1, 1)
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: not found; check the path")
    fmt = sniff_format(path) if format is None else format
    reader = BULK_READERS.get(fmt)
    if path.is_dir():
        if fmt == "star":
            files = sorted(path.rglob(STAR_GLOB)) or sorted(path.glob("*.tsv"))
        elif fmt == "fpkm_uq":
            files = sorted(path.rglob(FPKM_UQ_GLOB))
        else:
            raise InputError(f"{path}: a folder can only be read as 'star' or 'fpkm_uq', "
                             f"not {fmt!r}")
        if not files:
            raise InputError(f"{path}: no {fmt} files found in the folder")
        logger.info("%s: reading %d %s file(s)", path, len(files), fmt)
        if sample_sheet is not None:
            from .bulk import read_sample_sheet

            sheet = read_sample_sheet(sample_sheet)
            unknown = [f.name for f in files if f.name not in sheet]
            if unknown:
                raise InputError(f"{sample_sheet}: {len(unknown)} of {len(files)} file(s) "
                                 f"under {path} are not in the sample sheet (e.g. "
                                 f"{', '.join(unknown[:3])}); download the sheet with the "
                                 "same cart")
            kw["sample_ids"] = [sheet[f.name] for f in files]
        return reader(files, **kw)
    logger.debug("%s: read as %s", path, fmt)
    return reader(path, **kw)
