"""Gene names: Ensembl ids without versions, and Ensembl id → symbol tables (a GENCODE /
Ensembl GTF, or a two-column table) applied to bulk tables and spatial sections that are
keyed by Ensembl id (legacy GDC FPKM-UQ files; the ST-Net / BrST-Net breast data).

Examples
--------
>>> import tempfile
>>> p = Path(tempfile.mkdtemp()) / "names.csv"
>>> _ = p.write_text("gene_id,gene_name\\nENSG00000141510.18,TP53\\n")
>>> read_gene_names(p)
{'ENSG00000141510': 'TP53'}
"""

from __future__ import annotations

import gzip
import io
import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import InputError

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["ENSEMBL_RE", "open_text", "read_gene_names", "rename_genes",
           "strip_ensembl_version"]

logger = logging.getLogger(__name__)

#: an Ensembl id with its version (and an optional suffix such as ``_PAR_Y``)
ENSEMBL_RE = re.compile(r"^(ENS[A-Z]*[GTP]\d+)\.\d+(.*)$")


def strip_ensembl_version(ids: Iterable[str]) -> list[str]:
    """Ensembl ids without their ``.version``; a suffix after it (``_PAR_Y``) is kept.

    Non-Ensembl names pass through unchanged.

    Examples
    --------
    >>> strip_ensembl_version(["ENSG00000000003.15", "ENSG00000002586.20_PAR_Y", "TP53"])
    ['ENSG00000000003', 'ENSG00000002586_PAR_Y', 'TP53']
    """
    return [ENSEMBL_RE.sub(r"\1\2", str(i)) for i in ids]


def open_text(path: Path) -> io.TextIOBase:
    """A text file, gzip or not; a missing file is an :class:`InputError`."""
    if not path.is_file():
        raise InputError(f"{path}: file not found; check the path")
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def _read_gtf(path: Path) -> dict[str, str]:
    id_re, name_re = re.compile(r'gene_id "([^"]+)"'), re.compile(r'gene_name "([^"]+)"')
    out: dict[str, str] = {}
    with open_text(path) as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            f = line.split("\t")
            if len(f) < 9 or f[2] != "gene":
                continue
            gid, gname = id_re.search(f[8]), name_re.search(f[8])
            if gid and gname:
                out[strip_ensembl_version([gid.group(1)])[0]] = gname.group(1)
    if not out:
        raise InputError(f"{path}: no 'gene' lines with gene_id and gene_name attributes; is "
                         "this a GENCODE/Ensembl GTF?")
    return out


def read_gene_names(path: str | Path) -> dict[str, str]:
    """Ensembl gene id (no version) → symbol, from a GTF (``.gtf``, ``.gtf.gz``: its
    ``gene`` lines) or a table whose first two columns are the id and the symbol (CSV or
    TSV, with a header)."""
    path = Path(path)
    name = path.name.removesuffix(".gz")
    if name.endswith(".gtf") or name.endswith(".gff"):
        return _read_gtf(path)
    with open_text(path) as fh:
        tab = pd.read_csv(fh, sep=None, engine="python", dtype=str)
    if tab.shape[1] < 2:
        raise InputError(f"{path}: a gene-name table needs two columns, the Ensembl id and "
                         "the symbol (or give a GTF)")
    tab = tab.dropna(subset=list(tab.columns[:2]))
    return dict(zip(strip_ensembl_version(tab.iloc[:, 0].str.strip()),
                    tab.iloc[:, 1].str.strip()))


def rename_genes(adata: AnnData, names: Mapping[str, str], *, source: str = "") -> AnnData:
    """Sections keyed by Ensembl id, renamed to symbols: ids without a symbol keep the id,
    and the counts of ids sharing a symbol are summed (``layers["counts"]`` and ``X``).

    Examples
    --------
    >>> import anndata as ad
    >>> a = ad.AnnData(np.array([[1.0, 2.0, 3.0]]),
    ...                var=pd.DataFrame(index=["ENSG1.2", "ENSG2", "ENSG3"]))
    >>> a.layers["counts"] = a.X.copy()
    >>> b = rename_genes(a, {"ENSG1": "A", "ENSG2": "A"})
    >>> list(b.var_names), b.layers["counts"].tolist()
    (['A', 'ENSG3'], [[3.0, 3.0]])
    """
    import anndata as ad
    import scipy.sparse as sparse

    ids = strip_ensembl_version(adata.var_names)
    symbols = [names.get(i, i) for i in ids]
    n_mapped = sum(i in names for i in ids)
    if n_mapped == 0:
        raise InputError(f"{source or 'the sections'}: none of the {len(ids)} gene ids (e.g. "
                         f"{', '.join(ids[:3])}) is in the gene-name table; is it for this "
                         "species and id type?")
    order = list(dict.fromkeys(symbols))
    col = pd.Index(order).get_indexer(symbols)
    agg = sparse.csr_matrix((np.ones(len(ids)), (np.arange(len(ids)), col)),
                            shape=(len(ids), len(order)))
    logger.info("%s: %d of %d gene ids named; %d symbol(s) shared by several ids summed",
                source or "sections", n_mapped, len(ids), len(ids) - len(order))

    def merge(m):
        out = m @ agg
        return out if sparse.issparse(m) else np.asarray(out)

    layers = {k: merge(v) for k, v in adata.layers.items()}
    out = ad.AnnData(X=merge(adata.X), obs=adata.obs.copy(),
                     var=pd.DataFrame(index=pd.Index(order)), layers=layers,
                     obsm=dict(adata.obsm), uns=dict(adata.uns))
    out.var["gene_ids"] = [",".join(i for i, s in zip(ids, symbols) if s == g)
                           for g in order] if len(order) < 100_000 else ""
    return out
