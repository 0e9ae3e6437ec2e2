"""Bulk RNA-seq expression tables: one :class:`pandas.DataFrame` per cohort, samples x genes.

Every reader returns float64 values, an index of sample ids named ``"sample"`` and gene
columns (symbols, or Ensembl ids without their version) named ``"gene"``. Files that store
genes x samples are transposed on reading, and the log says so.

Readers (also by name in :data:`BULK_READERS`, and behind :func:`read_expression`):

- ``star``: :func:`read_gdc_star_counts`, GDC STAR-counts TSVs (one per sample);
- ``fpkm_uq``: :func:`read_gdc_fpkm_uq`, legacy GDC ``*.FPKM-UQ.txt(.gz)`` (one per sample);
- ``cbioportal``: :func:`read_cbioportal_rsem`, ``data_mrna_seq_v2_rsem.txt``;
- ``gct``: :func:`read_gct`, GTEx GCT files;
- ``table``: :func:`read_expression_table`, any samples x genes (or genes x samples) CSV/TSV.

Every table is checked the same way: non-numeric values, negative values (the data is
probably already log-transformed or centred), NaN (an error unless ``allow_nan=True``) and
duplicate sample ids raise :class:`~histoexpr.errors.InputError` naming the file.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..registry import Registry
from .genenames import ENSEMBL_RE, open_text, read_gene_names, strip_ensembl_version

logger = logging.getLogger(__name__)

__all__ = [
    "BULK_READERS",
    "LOG_TRANSFORMS",
    "STAR_VALUES",
    "check_expression_table",
    "log_transform",
    "read_cbioportal_rsem",
    "read_expression_table",
    "read_gct",
    "read_gdc_fpkm_uq",
    "read_gdc_star_counts",
    "read_sample_sheet",
    "strip_ensembl_version",
]

#: value columns of a GDC STAR-counts file (the first three are read counts)
STAR_VALUES = ("unstranded", "stranded_first", "stranded_second", "tpm_unstranded",
               "fpkm_unstranded", "fpkm_uq_unstranded")
#: ``log`` options of :func:`log_transform`, named as in :func:`~.transforms.normalise`
LOG_TRANSFORMS = ("log1p", "log2", "none")
#: file names of a GDC download searched for in a folder (recursively)
STAR_GLOB = "*.rna_seq.augmented_star_gene_counts.tsv"
FPKM_UQ_GLOB = "*.FPKM-UQ.txt*"

#: bulk readers by format name, used by :func:`read_expression`
BULK_READERS: Registry = Registry("bulk expression format")

_TCGA_RE = re.compile(r"^TCGA-[A-Z0-9]{2}-[A-Z0-9]{4}", re.IGNORECASE)
_GENE_HEADERS = {"hugo_symbol", "gene", "genes", "gene_name", "gene_id", "gene_symbol",
                 "symbol", "name", "ensembl_gene_id"}
_ANNOTATION_COLUMNS = {"entrez_gene_id", "description", "gene_type", "gene_biotype"}
_STEM_SUFFIXES = (".rna_seq.augmented_star_gene_counts", ".FPKM-UQ", ".FPKM", ".htseq.counts")


# ----------------------------------------------------------------------------- helpers


def log_transform(df: pd.DataFrame, *, log: str = "log1p") -> pd.DataFrame:
    """A log-transformed copy: ``"log1p"`` (natural ``log(1 + x)``), ``"log2"``
    (``log2(1 + x)``) or ``"none"``; the same names as :func:`~.transforms.normalise`.

    Examples
    --------
    >>> log_transform(pd.DataFrame({"A": [0.0, 1.0, 3.0]}), log="log2")["A"].tolist()
    [0.0, 1.0, 2.0]
    """
    if log not in LOG_TRANSFORMS:
        raise InputError(f"log must be one of {', '.join(map(repr, LOG_TRANSFORMS))}, "
                         f"got {log!r}")
    values = df.to_numpy(dtype=np.float64)
    if np.nanmin(values, initial=0.0) < 0:
        raise InputError("expression must be non-negative to log-transform; is this already "
                         "log-transformed or centred?")
    if log == "log1p":
        values = np.log1p(values)
    elif log == "log2":
        values = np.log2(1.0 + values)
    return pd.DataFrame(values, index=df.index.copy(), columns=df.columns.copy())


def _head(path: Path, n: int = 3) -> list[str]:
    """The first ``n`` non-empty lines (``\\n`` stripped)."""
    out: list[str] = []
    with open_text(path) as fh:
        for line in fh:
            if line.strip():
                out.append(line.rstrip("\r\n"))
            if len(out) >= n:
                break
    return out


def _sample_stem(path: Path) -> str:
    """``<uuid>.rna_seq.augmented_star_gene_counts.tsv`` → ``<uuid>``; ``x.FPKM-UQ.txt.gz``
    → ``x``; else the file name without its extension(s)."""
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    name = name.rsplit(".", 1)[0] if "." in name else name
    for suffix in _STEM_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _sample_ids(paths: Sequence[Path], sample_ids: Sequence[str] | None) -> list[str]:
    if sample_ids is None:
        return [_sample_stem(p) for p in paths]
    if len(sample_ids) != len(paths):
        raise InputError(f"{len(paths)} file(s) but {len(sample_ids)} sample id(s); give one "
                         "id per file")
    return [str(s) for s in sample_ids]


def read_sample_sheet(path: str | Path) -> dict[str, str]:
    """File name → sample id from a GDC sample sheet (the TSV the GDC cart downloads, columns
    ``File Name`` and ``Sample ID``), for downloads whose files are named by UUID.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "sheet.tsv"
    >>> _ = p.write_text("File ID,File Name,Sample ID|u1,a.FPKM-UQ.txt.gz,TCGA-BR-1-01A|"
    ...                  .replace(",", chr(9)).replace("|", chr(10)))
    >>> read_sample_sheet(p)
    {'a.FPKM-UQ.txt.gz': 'TCGA-BR-1-01A'}
    """
    try:
        sheet = pd.read_csv(path, sep="\t", dtype=str)
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot read the sample sheet ({e}); give the GDC sample "
                         "sheet TSV") from e
    need = [c for c in ("File Name", "Sample ID") if c not in sheet.columns]
    if need:
        raise InputError(f"{path}: a GDC sample sheet has the columns 'File Name' and 'Sample "
                         f"ID'; this one lacks {', '.join(need)} (it has "
                         f"{', '.join(map(str, sheet.columns[:6]))})")
    # a sample with several aliquots lists them comma-separated: the first is the sample
    ids = sheet["Sample ID"].str.split(",").str[0].str.strip()
    return dict(zip(sheet["File Name"].str.strip(), ids))


def _as_paths(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    out = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    if not out:
        raise InputError("no expression files given")
    return out


def _sum_duplicate_genes(s: pd.Series, source: Path) -> pd.Series:
    n_dup = int(s.index.duplicated().sum())
    if n_dup:
        logger.info("%s: %d duplicated gene name(s) summed", source, n_dup)
        s = s.groupby(level=0, sort=False).sum()
    return s


def _check_numeric(df: pd.DataFrame, source: str | Path) -> pd.DataFrame:
    """Columns converted to float64; the first non-numeric cell is named in the error."""
    df = df.copy()
    for col in df.columns[[not pd.api.types.is_numeric_dtype(t) for t in df.dtypes]]:
        conv = pd.to_numeric(df[col], errors="coerce")
        bad = conv.isna() & df[col].notna()
        if bad.any():
            row = bad.index[bad.to_numpy().argmax()]
            raise InputError(
                f"{source}: non-numeric value {df.at[row, col]!r} in column {col!r}, row "
                f"{row!r}; expression must be numbers; is this the right file or a header row?"
            )
        df[col] = conv
    return df.astype(np.float64)


def _finish(df: pd.DataFrame, source: str | Path, *, allow_nan: bool = False,
            allow_negative: bool = False) -> pd.DataFrame:
    """Shared validation and naming of a samples x genes table (see the module docstring)."""
    df = _check_numeric(df, source)
    df.index = pd.Index([str(i) for i in df.index], name="sample")
    df.columns = pd.Index([str(c) for c in df.columns], name="gene")
    dup = df.index[df.index.duplicated()].unique().tolist()
    if dup:
        raise InputError(f"{source}: duplicate sample id(s) {', '.join(dup[:10])}; give unique "
                         "sample_ids or merge the replicates first")
    values = df.to_numpy()
    if np.isinf(values).any():
        raise InputError(f"{source}: {int(np.isinf(values).sum())} infinite value(s); fix the "
                         "export")
    n_nan = int(np.isnan(values).sum())
    if n_nan and not allow_nan:
        raise InputError(f"{source}: {n_nan} missing (NaN) value(s); fill or drop them, or "
                         "pass allow_nan=True")
    if not allow_negative and np.nanmin(values, initial=0.0) < 0:
        raise InputError(f"{source}: {int((values < 0).sum())} negative value(s); expression "
                         "must be non-negative; is this already log-transformed or centred?")
    logger.debug("%s: %d samples x %d genes", source, *df.shape)
    return df


def check_expression_table(df: pd.DataFrame, source: str = "<in-memory table>"
                           ) -> pd.DataFrame:
    """An in-memory samples x genes table checked as the readers check a file: numbers
    (float64), unique sample ids and gene names, no NaN / infinity, nothing negative.

    Examples
    --------
    >>> check_expression_table(pd.DataFrame({"A": [1, 2]}, index=["s1", "s2"])).dtypes.iloc[0]
    dtype('float64')
    """
    if not isinstance(df, pd.DataFrame) or df.shape[0] == 0 or df.shape[1] == 0:
        raise InputError(f"{source}: expression must be a non-empty pandas DataFrame "
                         "(samples as rows, genes as columns)")
    dup = df.columns[df.columns.duplicated()].unique().tolist()
    if dup:
        raise InputError(f"{source}: duplicate gene column(s) {', '.join(map(str, dup[:10]))}; "
                         "sum or drop them first")
    return _finish(df, source)


def _cohort(series: list[pd.Series], paths: list[Path], ids: list[str]) -> pd.DataFrame:
    """Per-sample gene series → samples x genes; every file must hold the same genes."""
    genes = series[0].index
    for s, p in zip(series[1:], paths[1:]):
        if not s.index.equals(genes) and set(s.index) != set(genes):
            raise InputError(f"{p}: its genes differ from those of {paths[0]} "
                             f"({len(s)} vs {len(genes)}); are both from the same gene model?")
    values = np.vstack([s.reindex(genes).to_numpy(dtype=np.float64) for s in series])
    return pd.DataFrame(values, index=ids, columns=genes)


# ----------------------------------------------------------------------------- readers


@BULK_READERS.register("star")
def read_gdc_star_counts(
    paths: str | Path | Iterable[str | Path],
    *,
    value: str = "tpm_unstranded",
    sample_ids: Sequence[str] | None = None,
    symbols: str = "gene_name",
    allow_nan: bool = False,
) -> pd.DataFrame:
    """GDC STAR-counts files (``*.rna_seq.augmented_star_gene_counts.tsv``), one per sample.

    Parameters
    ----------
    paths
        One file or several; optionally gzipped.
    value
        Column to read, one of :data:`STAR_VALUES`: ``"unstranded"`` (read counts),
        ``"tpm_unstranded"``, ``"fpkm_unstranded"``, ``"fpkm_uq_unstranded"``, ...
    sample_ids
        One id per file; defaults to the file name without its GDC suffix.
    symbols
        ``"gene_name"``: columns are gene symbols; genes sharing a symbol (the ``_PAR_Y``
        copies, a few paralogues) are **summed**, as counts, TPM and FPKM of separate loci
        add up. ``"gene_id"``: Ensembl ids without version (``_PAR_Y`` kept, so unique).
    allow_nan
        Accept missing values.

    Returns
    -------
    pandas.DataFrame
        Samples x genes; the ``N_unmapped``/... summary rows are dropped. ``attrs["gene_ids"]``
        maps each symbol to its Ensembl id(s), ``;``-joined.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "s1.rna_seq.augmented_star_gene_counts.tsv"
    >>> _ = p.write_text("# gene-model: GENCODE v36\\n" + "\\t".join(
    ...     ["gene_id", "gene_name", "gene_type", *STAR_VALUES]) + "\\n"
    ...     "N_unmapped\\t\\t\\t5\\t5\\t5\\t\\t\\t\\n"
    ...     "ENSG00000141510.17\\tTP53\\tprotein_coding\\t10\\t5\\t5\\t2.5\\t1\\t1\\n")
    >>> read_gdc_star_counts(p, value="unstranded").to_dict()
    {'TP53': {'s1': 10.0}}
    """
    if value not in STAR_VALUES:
        raise InputError(f"unknown STAR value column {value!r}; choose one of: "
                         f"{', '.join(STAR_VALUES)}")
    if symbols not in ("gene_name", "gene_id"):
        raise InputError(f"symbols must be 'gene_name' or 'gene_id', got {symbols!r}")
    paths = _as_paths(paths)
    ids = _sample_ids(paths, sample_ids)
    series: list[pd.Series] = []
    gene_ids: dict[str, str] = {}
    for p in paths:
        with open_text(p) as fh:
            tab = pd.read_csv(fh, sep="\t", comment=None, dtype={"gene_id": str, "gene_name": str},
                              skiprows=sum(1 for ln in _head(p, 5) if ln.startswith("#")))
        missing = [c for c in ("gene_id", "gene_name", value) if c not in tab.columns]
        if missing:
            raise InputError(f"{p}: no column(s) {', '.join(missing)} (has: "
                             f"{', '.join(map(str, tab.columns))}); is this a GDC STAR-counts "
                             "file? Choose value= among the columns present")
        tab = tab[~tab["gene_id"].astype(str).str.startswith("N_")]
        ens = strip_ensembl_version(tab["gene_id"])
        if symbols == "gene_name":
            names = tab["gene_name"].fillna(pd.Series(ens, index=tab.index)).astype(str)
            if not gene_ids:
                gene_ids = pd.Series(ens).groupby(names.to_numpy(), sort=False).agg(";".join)
                gene_ids = gene_ids.to_dict()
        else:
            names = pd.Series(ens, index=tab.index)
        vals = _check_numeric(tab[[value]], p)[value]
        series.append(_sum_duplicate_genes(pd.Series(vals.to_numpy(), index=names.to_numpy()), p))
    df = _finish(_cohort(series, paths, ids), paths[0] if len(paths) == 1 else paths[0].parent,
                 allow_nan=allow_nan)
    if gene_ids:
        df.attrs["gene_ids"] = gene_ids
    return df


@BULK_READERS.register("fpkm_uq")
def read_gdc_fpkm_uq(
    paths: str | Path | Iterable[str | Path],
    *,
    sample_ids: Sequence[str] | None = None,
    gtf: str | Path | None = None,
    allow_nan: bool = False,
) -> pd.DataFrame:
    """Legacy GDC ``*.FPKM-UQ.txt(.gz)`` files: no header, ``ENSG...<TAB>value`` per line.

    Ensembl versions are stripped. With ``gtf`` (a GENCODE/Ensembl GTF, gz allowed) genes
    are renamed to their ``gene_name``; ids absent from the GTF keep their id (logged), and
    genes sharing a symbol are summed. Without ``gtf`` the columns are Ensembl ids.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "a.FPKM-UQ.txt"
    >>> _ = p.write_text("ENSG00000000003.13\\t12.5\\n")
    >>> read_gdc_fpkm_uq(p).columns.tolist(), read_gdc_fpkm_uq(p).index.tolist()
    (['ENSG00000000003'], ['a'])
    """
    paths = _as_paths(paths)
    ids = _sample_ids(paths, sample_ids)
    names = read_gene_names(Path(gtf)) if gtf is not None else None
    series = []
    for p in paths:
        with open_text(p) as fh:
            tab = pd.read_csv(fh, sep="\t", header=None, dtype={0: str})
        if tab.shape[1] != 2:
            raise InputError(f"{p}: {tab.shape[1]} columns; a FPKM-UQ file has two (Ensembl "
                             "id, value) and no header")
        genes = strip_ensembl_version(tab[0])
        if names is not None:
            n_unmapped = sum(g not in names for g in genes)
            if n_unmapped:
                logger.info("%s: %d gene id(s) not in %s kept as ids", p, n_unmapped, gtf)
            genes = [names.get(g, g) for g in genes]
        vals = _check_numeric(tab[[1]], p)[1]
        series.append(_sum_duplicate_genes(pd.Series(vals.to_numpy(), index=genes), p))
    return _finish(_cohort(series, paths, ids), paths[0] if len(paths) == 1 else paths[0].parent,
                   allow_nan=allow_nan)


@BULK_READERS.register("cbioportal")
def read_cbioportal_rsem(path: str | Path, *, allow_nan: bool = False) -> pd.DataFrame:
    """A cBioPortal ``data_mrna_seq_v2_rsem.txt`` (``Hugo_Symbol``, optional
    ``Entrez_Gene_Id``, one column per sample), returned samples x genes.

    Rows without a symbol are dropped and genes listed more than once are **averaged**
    (cBioPortal's own convention); both are logged.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "data_mrna_seq_v2_rsem.txt"
    >>> _ = p.write_text("Hugo_Symbol\\tEntrez_Gene_Id\\tTCGA-A1-A0SB-01\\nTP53\\t7157\\t3.5\\n")
    >>> read_cbioportal_rsem(p).shape
    (1, 1)
    """
    path = Path(path)
    with open_text(path) as fh:
        tab = pd.read_csv(fh, sep="\t", comment="#", dtype={"Hugo_Symbol": str})
    if "Hugo_Symbol" not in tab.columns:
        raise InputError(f"{path}: no Hugo_Symbol column; is this a cBioPortal expression file?")
    tab = tab.drop(columns=[c for c in tab.columns if c.lower() in _ANNOTATION_COLUMNS])
    empty = tab["Hugo_Symbol"].isna() | (tab["Hugo_Symbol"].str.strip() == "")
    if empty.any():
        logger.info("%s: %d row(s) without a Hugo_Symbol dropped", path, int(empty.sum()))
    tab = _check_numeric(tab.loc[~empty].set_index("Hugo_Symbol"), path)
    n_dup = int(tab.index.duplicated().sum())
    if n_dup:
        logger.info("%s: %d duplicated symbol row(s) averaged", path, n_dup)
        tab = tab.groupby(level=0, sort=False).mean()
    logger.info("%s: genes x samples file transposed to samples x genes", path)
    return _finish(tab.T, path, allow_nan=allow_nan)


@BULK_READERS.register("gct")
def read_gct(path: str | Path, *, symbols: bool = True, allow_nan: bool = False) -> pd.DataFrame:
    """A GTEx GCT file (``#1.2``, a dimensions line, then ``Name Description sample...``),
    returned samples x genes; gz allowed.

    ``symbols=True`` names genes by ``Description`` (genes sharing a symbol are summed);
    ``symbols=False`` by ``Name`` without the Ensembl version.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "x.gct"
    >>> _ = p.write_text("#1.2\\n1\\t2\\nName\\tDescription\\tS1\\tS2\\n"
    ...                  "ENSG00000141510.16\\tTP53\\t1\\t2\\n")
    >>> read_gct(p)["TP53"].tolist(), read_gct(p, symbols=False).columns.tolist()
    ([1.0, 2.0], ['ENSG00000141510'])
    """
    path = Path(path)
    head = _head(path, 2)
    if not head or not head[0].startswith("#1."):
        raise InputError(f"{path}: no '#1.2' first line; is this a GCT file?")
    with open_text(path) as fh:
        tab = pd.read_csv(fh, sep="\t", skiprows=2, dtype={"Name": str, "Description": str})
    if list(tab.columns[:2]) != ["Name", "Description"]:
        raise InputError(f"{path}: the header should start 'Name<TAB>Description', got "
                         f"{list(tab.columns[:2])}")
    try:
        n_genes, n_samples = (int(x) for x in head[1].split("\t")[:2])
    except ValueError:
        n_genes, n_samples = len(tab), tab.shape[1] - 2
    if (n_genes, n_samples) != (len(tab), tab.shape[1] - 2):
        raise InputError(f"{path}: header says {n_genes} genes x {n_samples} samples but the "
                         f"file holds {len(tab)} x {tab.shape[1] - 2}; is it truncated?")
    genes = tab["Description"] if symbols else pd.Series(strip_ensembl_version(tab["Name"]))
    values = _check_numeric(tab.iloc[:, 2:], path)
    values.index = genes.to_numpy()
    n_dup = int(values.index.duplicated().sum())
    if n_dup:
        logger.info("%s: %d duplicated gene name(s) summed", path, n_dup)
        values = values.groupby(level=0, sort=False).sum()
    logger.info("%s: genes x samples file transposed to samples x genes", path)
    return _finish(values.T, path, allow_nan=allow_nan)


def _looks_genes_by_samples(tab: pd.DataFrame) -> bool:
    index = [str(i) for i in tab.index[:200]]
    cols = [str(c) for c in tab.columns[:200]]

    def frac(xs: list[str], rx: re.Pattern) -> float:
        return float(np.mean([bool(rx.match(x)) for x in xs])) if xs else 0.0

    if frac(index, _TCGA_RE) > 0.5 or frac(cols, ENSEMBL_RE) > 0.5:
        return False
    ens = re.compile(r"^ENS[A-Z]*G\d+")
    return frac(cols, _TCGA_RE) > 0.5 or frac(index, ens) > 0.5


@BULK_READERS.register("table")
def read_expression_table(
    path: str | Path,
    *,
    index_col: int | str | None = None,
    transpose: bool | None = None,
    allow_nan: bool = False,
    allow_negative: bool = False,
) -> pd.DataFrame:
    """A plain expression CSV/TSV (gz allowed), samples x genes or genes x samples.

    Parameters
    ----------
    path
        ``.csv`` is read comma-separated, anything else tab-separated (a one-column result
        retries with the other separator).
    index_col
        The id column; default the first.
    transpose
        ``None`` detects a genes x samples file and transposes it (logged): the id column's
        header is a gene header (``Hugo_Symbol``, ``gene``, ``gene_name``, ``gene_id``, ...),
        or most column names are TCGA barcodes, or most row ids are Ensembl gene ids.
        ``True``/``False`` force it.
    allow_nan, allow_negative
        Accept missing values / negative values (tables that are already log-transformed,
        centred or predicted; the downstream analyses read those).

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "e.csv"
    >>> _ = p.write_text("gene,TCGA-A1-A0SB,TCGA-A1-A0SD\\nESR1,5,6\\nERBB2,1,2\\n")
    >>> float(read_expression_table(p).loc["TCGA-A1-A0SD", "ESR1"])
    6.0
    """
    path = Path(path)
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    seps = [",", "\t"] if name.endswith(".csv") else ["\t", ","]
    for sep in seps:
        with open_text(path) as fh:
            tab = pd.read_csv(fh, sep=sep, comment=None, index_col=False)
        if tab.shape[1] > 1:
            break
    with open_text(path) as fh:  # pandas renames a repeated header "A" to "A.1": undo it,
        header = next(csv.reader(fh, delimiter=sep), [])  # so duplicates are seen below
    if len(header) == tab.shape[1]:
        tab.columns = [h.strip() for h in header]
    if tab.shape[1] < 2:
        raise InputError(f"{path}: one column only; expected an id column and expression "
                         "columns, comma- or tab-separated")
    col = tab.columns[index_col] if isinstance(index_col, int) else (index_col or tab.columns[0])
    if col not in tab.columns:
        raise InputError(f"{path}: no column {col!r}; columns start {list(tab.columns[:5])}")
    gene_header = str(col).lower() in _GENE_HEADERS
    tab = tab.set_index(col)
    tab.index = tab.index.astype(str)
    if transpose is None:
        transpose = gene_header or _looks_genes_by_samples(tab)
    if transpose:
        tab = tab.drop(columns=[c for c in tab.columns if str(c).lower() in _ANNOTATION_COLUMNS])
        tab = _check_numeric(tab, path)
        if tab.index.duplicated().any():
            logger.info("%s: %d duplicated gene row(s) summed", path,
                        int(tab.index.duplicated().sum()))
            tab = tab.groupby(level=0, sort=False).sum()
        logger.info("%s: genes x samples file transposed to samples x genes", path)
        tab = tab.T
    elif tab.columns.duplicated().any():
        dup = tab.columns[tab.columns.duplicated()].unique().tolist()
        raise InputError(f"{path}: duplicate gene column(s) {', '.join(map(str, dup[:10]))}; "
                         "merge them first")
    return _finish(tab, path, allow_nan=allow_nan, allow_negative=allow_negative)
