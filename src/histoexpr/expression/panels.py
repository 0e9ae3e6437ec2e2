"""Gene panels: built-in lists of gene symbols and a check of which are in a table.

Built-in panels live as package data in ``expression/panels/<name>.txt`` (one symbol per
line, a ``#`` header naming the source):

- ``gastric4``: CDX1, GZMB, SFRP4, WARS (chemotherapy response in gastric cancer; seed 000);
- ``hist2rna138``: the 138 genes of hist2RNA (TCGA-BRCA);
- ``pam50``: the PAM50 intrinsic-subtype genes.

:func:`panel_genes` matches a panel to the columns of an expression table. A symbol that is
missing is retried through :data:`PANEL_ALIASES` (both directions): ``WARS`` was renamed
``WARS1`` by HGNC in 2019, so newer tables (GENCODE v36 STAR counts of the GDC) name it
``WARS1`` while older ones (legacy GDC, cBioPortal) keep ``WARS``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError, UnknownNameError

logger = logging.getLogger(__name__)

__all__ = ["PANELS", "PANEL_ALIASES", "list_panels", "load_panel", "panel_genes"]

_PANEL_DIR = Path(__file__).resolve().parent / "panels"

#: built-in panels: name → one-line description (the genes are in ``panels/<name>.txt``)
PANELS: dict[str, str] = {
    "gastric4": "CDX1, GZMB, SFRP4, WARS: chemotherapy response in gastric cancer (seed 000)",
    "hist2rna138": "the 138 genes of hist2RNA (TCGA-BRCA)",
    "pam50": "the PAM50 breast-cancer intrinsic-subtype genes",
}

#: old symbol → current HGNC symbol, tried (either way round) when a panel gene is missing
PANEL_ALIASES: dict[str, str] = {"WARS": "WARS1"}

_GENE_HEADERS = {"gene", "genes", "symbol", "gene_symbol", "hugo_symbol", "gene_name", "name"}


def list_panels() -> list[str]:
    """Names of the built-in panels, alphabetical.

    Examples
    --------
    >>> list_panels()
    ['gastric4', 'hist2rna138', 'pam50']
    """
    return sorted(PANELS)


def _read_lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8-sig")
    lines = (ln.strip() for ln in text.splitlines())
    return [ln for ln in lines if ln and not ln.startswith("#")]


def _looks_like_header(line: str) -> bool:
    """``gene_combined``, ``pam_50_gene``: lower-case words naming a gene column."""
    return line == line.lower() and "gene" in line.lower()


def load_panel(name_or_path: str | Path) -> list[str]:
    """The genes of a built-in panel or of a user file, in file order, without duplicates.

    Parameters
    ----------
    name_or_path
        A built-in name (:func:`list_panels`) or a file: one gene per line (a lower-case
        first line containing "gene", like ``pam_50_gene``, is taken as a header), or a
        CSV/TSV with a header, whose gene column is ``gene``/``symbol``/``Hugo_Symbol``/...
        or else the first. Blank lines and lines starting with ``#`` are ignored.

    Examples
    --------
    >>> load_panel("gastric4")
    ['CDX1', 'GZMB', 'SFRP4', 'WARS']
    >>> len(load_panel("pam50")), len(load_panel("hist2rna138"))
    (50, 138)
    """
    key = str(name_or_path)
    if key.lower() in PANELS and not Path(key).is_file():
        path = _PANEL_DIR / f"{key.lower()}.txt"
    else:
        path = Path(key)
        if not path.is_file():
            raise UnknownNameError(
                f"unknown gene panel {key!r}: not a built-in panel nor a file; choose one of: "
                f"{', '.join(list_panels())}, or give a file with one gene per line"
            )
    lines = _read_lines(path)
    if not lines:
        raise InputError(f"{path}: no genes in the panel file; give one gene per line")
    first = lines[0]
    if "," in first or "\t" in first:
        sep = "," if "," in first else "\t"
        header = [h.strip().strip('"') for h in first.split(sep)]
        col = next((i for i, h in enumerate(header) if h.lower() in _GENE_HEADERS), 0)
        genes = [row.split(sep)[col].strip().strip('"') for row in lines[1:]
                 if len(row.split(sep)) > col]
        logger.debug("%s: genes from column %r of a table", path, header[col])
    elif _looks_like_header(first):
        logger.info("%s: first line %r taken as a header and dropped", path, first)
        genes = lines[1:]
    else:
        genes = lines
    genes = list(dict.fromkeys(g for g in genes if g))
    if not genes:
        raise InputError(f"{path}: no genes in the panel file; give one gene per line")
    return genes


def _aliases(gene: str, aliases: Mapping[str, str]) -> list[str]:
    out = [aliases[gene]] if gene in aliases else []
    return out + [old for old, new in aliases.items() if new == gene]


def panel_genes(
    table: Any,
    panel: str | Path | Sequence[str],
    *,
    min_present: int = 1,
    aliases: Mapping[str, str] | None = None,
) -> tuple[list[str], list[str]]:
    """Columns of ``table`` that hold the panel's genes, and the panel genes not found.

    Parameters
    ----------
    table
        A samples x genes :class:`pandas.DataFrame`, or any iterable of column names.
    panel
        A built-in panel name, a panel file (see :func:`load_panel`), or a list of genes.
    min_present
        Raise :class:`InputError` when fewer panel genes than this are found.
    aliases
        Old → new symbols tried (either way round) for a gene that is missing; defaults to
        :data:`PANEL_ALIASES` (``WARS`` → ``WARS1``).

    Returns
    -------
    present : list of str
        The matching column names, in panel order (an alias's column, e.g. ``WARS1``, stands
        in for the panel's ``WARS``).
    missing : list of str
        The panel genes with no column, also logged.

    Examples
    --------
    >>> panel_genes(["CDX1", "GZMB", "WARS1", "ACTB"], "gastric4")
    (['CDX1', 'GZMB', 'WARS1'], ['SFRP4'])
    """
    genes = load_panel(panel) if isinstance(panel, (str, Path)) else list(dict.fromkeys(panel))
    columns: Iterable[Any] = table.columns if hasattr(table, "columns") else table
    have = {str(c) for c in columns}
    aliases = PANEL_ALIASES if aliases is None else aliases
    present: list[str] = []
    missing: list[str] = []
    for g in genes:
        hit = g if g in have else next((a for a in _aliases(g, aliases) if a in have), None)
        if hit is None:
            missing.append(g)
        elif hit not in present:
            if hit != g:
                logger.info("panel gene %s found under its alias %s", g, hit)
            present.append(hit)
    name = panel if isinstance(panel, (str, Path)) else "the panel"
    if missing:
        logger.warning("%d of %d genes of %s missing from the table: %s",
                       len(missing), len(genes), name, ", ".join(missing))
    if len(present) < min_present:
        raise InputError(
            f"only {len(present)} of {len(genes)} genes of {name} are in the table (need at "
            f"least {min_present}); missing: {', '.join(missing[:20])}"
            f"{' ...' if len(missing) > 20 else ''}. Are the columns gene symbols (not Ensembl "
            "ids)? Read with symbols, or map the ids to symbols first"
        )
    return present, missing
