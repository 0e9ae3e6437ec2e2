"""Gene-set enrichment of the genes an image feature explains (seed 002, Plan Q3 step 3).

Seed 002 asks which biology the genes associated with an image feature share (its Table 1:
the genes feature 501 explains in lung are enriched for *lamellar body* and surfactant
metabolism terms). Two tests answer it:

- :func:`hypergeometric_enrichment`, over-representation of a gene *list* (e.g. the genes
  significantly associated with a feature after BH-FDR) among gene sets, against a
  *universe* (the genes that were tested): one-sided hypergeometric test, i.e. Fisher's
  exact test of the 2 x 2 table "in list / in set", BH q-values over the sets tested;
- :func:`prerank_enrichment`, GSEA on a *ranked* gene list (e.g. genes sorted by the
  variance a feature explains), through ``gseapy.prerank`` when gseapy is installed
  (optional: ``pip install gseapy``).

Gene sets come as a ``{name: [genes]}`` mapping or a GMT file (:func:`read_gmt`, as MSigDB
and Enrichr distribute them). Gene identifiers are compared exactly (after stripping
whitespace): gene sets in symbols need expression in symbols.

Examples
--------
>>> sets = {"A": ["G1", "G2", "G3"], "B": ["G4", "G5", "G6"]}
>>> universe = [f"G{i}" for i in range(1, 21)]
>>> res = hypergeometric_enrichment(["G1", "G2", "G3"], sets, universe=universe, min_size=2)
>>> res[["gene_set", "overlap", "genes"]].values.tolist()
[['A', 3, 'G1,G2,G3'], ['B', 0, '']]
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError

__all__ = [
    "ENRICHMENT_COLUMNS",
    "PRERANK_COLUMNS",
    "hypergeometric_enrichment",
    "prerank_enrichment",
    "read_gmt",
    "write_gmt",
]

logger = logging.getLogger(__name__)

#: columns of :func:`hypergeometric_enrichment`'s table
ENRICHMENT_COLUMNS = ("gene_set", "size", "overlap", "expected", "fold", "p", "q", "genes")
#: columns of :func:`prerank_enrichment`'s table
PRERANK_COLUMNS = ("gene_set", "size", "es", "nes", "p", "q", "fwer", "lead_genes")


# -- GMT files ----------------------------------------------------------------------------
def _open_text(path: Path):
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def read_gmt(path: str | Path) -> dict[str, list[str]]:
    """Gene sets from a GMT file: ``{name: [genes]}`` in file order.

    Each line is ``name<TAB>description<TAB>gene1<TAB>gene2...`` (MSigDB, Enrichr). Names and
    genes are stripped of surrounding whitespace but keep their case (symbols are compared
    exactly; upper-case both sides yourself for mouse/human mixes). Repeated genes within a
    set are kept once, empty gene fields are skipped, blank lines are skipped. A gzip
    compressed file (``.gmt.gz``) is read as is.

    Raises
    ------
    InputError
        A missing file, a line without tabs or with fewer than three fields, an empty or
        repeated set name, a set with no genes, or a file with no set; the message names the
        file and the line number.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "sets.gmt"
    >>> _ = p.write_text("HALLMARK_X\\tdesc\\tESR1\\tPGR \\t\\nHALLMARK_Y\\t\\tMKI67\\n")
    >>> read_gmt(p)
    {'HALLMARK_X': ['ESR1', 'PGR'], 'HALLMARK_Y': ['MKI67']}
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such gene-set file; give a GMT file (name, description, "
                         "genes, tab-separated), e.g. from MSigDB")
    sets: dict[str, list[str]] = {}
    first_line: dict[str, int] = {}
    try:
        with _open_text(p) as f:
            for i, raw in enumerate(f, 1):
                line = raw.rstrip("\r\n")
                if not line.strip():
                    continue
                fields = line.split("\t")
                if len(fields) < 3:
                    raise InputError(
                        f"{p}, line {i}: expected name<TAB>description<TAB>genes..., got "
                        f"{len(fields)} tab-separated field(s); is the file space-separated "
                        "or not a GMT file?")
                name = fields[0].strip()
                if not name:
                    raise InputError(f"{p}, line {i}: empty gene-set name")
                if name in sets:
                    raise InputError(f"{p}, line {i}: gene set {name!r} is repeated (first "
                                     f"on line {first_line[name]}); give each set once")
                genes = list(dict.fromkeys(g.strip() for g in fields[2:] if g.strip()))
                if not genes:
                    raise InputError(f"{p}, line {i}: gene set {name!r} lists no genes")
                sets[name] = genes
                first_line[name] = i
    except UnicodeDecodeError as e:
        raise InputError(f"{p}: not a text GMT file ({e})") from e
    except (OSError, EOFError) as e:
        raise InputError(f"{p}: cannot read the gene-set file ({e})") from e
    if not sets:
        raise InputError(f"{p}: the GMT file holds no gene set")
    logger.info("%s: %d gene sets", p, len(sets))
    return sets


def write_gmt(path: str | Path, gene_sets: Mapping[str, Iterable[str]], *,
              descriptions: Mapping[str, str] | None = None) -> Path:
    """Write gene sets as a GMT file (gzip-compressed when ``path`` ends in ``.gz``).

    Examples
    --------
    >>> import tempfile
    >>> p = write_gmt(Path(tempfile.mkdtemp()) / "s.gmt", {"S": ["A", "B"]})
    >>> p.read_text()
    'S\\t\\tA\\tB\\n'
    """
    p = Path(path)
    lines = []
    for name, genes in gene_sets.items():
        genes = [str(g) for g in genes]
        bad = [x for x in [str(name), *genes] if "\t" in x or "\n" in x]
        if not str(name).strip() or not genes or bad:
            raise InputError(f"gene set {name!r}: needs a name, at least one gene, and no tab "
                             "or newline inside names")
        desc = (descriptions or {}).get(name, "")
        lines.append("\t".join([str(name), desc, *genes]) + "\n")
    p.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(lines)
    if p.suffix == ".gz":
        with gzip.open(p, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


def _gene_sets(gene_sets: Mapping[str, Iterable[str]] | str | Path) -> dict[str, list[str]]:
    """A mapping of gene sets (genes stripped, deduplicated), or the sets of a GMT file."""
    if isinstance(gene_sets, str | Path):
        return read_gmt(gene_sets)
    if not isinstance(gene_sets, Mapping) or not gene_sets:
        raise InputError("gene_sets must be a non-empty {name: [genes]} mapping or a GMT file")
    out = {}
    for name, genes in gene_sets.items():
        if isinstance(genes, str):
            raise InputError(f"gene set {name!r}: give a list of genes, not one string")
        out[str(name)] = list(dict.fromkeys(str(g).strip() for g in genes if str(g).strip()))
    return out


def _unique_genes(genes: Iterable[Any], what: str) -> list[str]:
    if isinstance(genes, str):
        raise InputError(f"{what}: give a list of genes, not one string")
    return list(dict.fromkeys(str(g).strip() for g in genes if str(g).strip()))


def _size_filter(sizes: dict[str, int], min_size: int, max_size: int) -> tuple[list[str],
                                                                               int, int]:
    if min_size < 1 or max_size < min_size:
        raise InputError(f"gene-set sizes: need 1 <= min_size <= max_size, got {min_size} "
                         f"and {max_size}")
    small = [s for s, k in sizes.items() if k < min_size]
    large = [s for s, k in sizes.items() if k > max_size]
    keep = [s for s, k in sizes.items() if min_size <= k <= max_size]
    if small or large:
        logger.info("gene sets: %d of %d kept; %d smaller than %d and %d larger than %d genes "
                    "(after restriction to the universe) were not tested", len(keep),
                    len(sizes), len(small), min_size, len(large), max_size)
    return keep, len(small), len(large)


# -- over-representation --------------------------------------------------------------------
def hypergeometric_enrichment(
    genes: Iterable[str],
    gene_sets: Mapping[str, Iterable[str]] | str | Path,
    *,
    universe: Iterable[str],
    min_size: int = 5,
    max_size: int = 500,
) -> pd.DataFrame:
    """One-sided over-representation test of a gene list in each gene set.

    With ``N`` universe genes, a set of ``K`` of them and ``n`` listed genes of which ``k`` are
    in the set, ``p = P(X >= k)`` for ``X ~ Hypergeometric(N, K, n)``
    (``scipy.stats.hypergeom.sf(k - 1, N, K, n)``), the one-sided (greater) Fisher's exact test
    of the 2 x 2 table. Sets are first restricted to the universe; their sizes are filtered
    *after* that restriction; BH-FDR (``statsmodels`` ``multipletests``, ``fdr_bh``) runs over
    the sets tested.

    Parameters
    ----------
    genes
        The gene list (e.g. genes significantly associated with an image feature). Genes
        outside the universe are logged and dropped.
    gene_sets
        ``{name: [genes]}`` or a GMT file (:func:`read_gmt`).
    universe
        Every gene that could have been listed (the genes tested), the background.
    min_size, max_size
        Sets with fewer / more universe genes are not tested (counted in ``attrs``).

    Returns
    -------
    DataFrame
        One row per tested set, sorted by ``p`` (then name): ``gene_set``, ``size`` (``K``),
        ``overlap`` (``k``), ``expected`` (``n K / N``), ``fold`` (``k / expected``), ``p``,
        ``q``, ``genes`` (the overlapping genes, comma-joined, in the order of ``genes``).
        ``attrs`` holds the counts: ``n_sets``, ``n_tested``, ``n_too_small``,
        ``n_too_large``, ``n_universe``, ``n_genes`` (listed genes in the universe) and
        ``n_genes_dropped`` (listed genes outside it).

    Raises
    ------
    InputError
        An empty gene list or universe, no listed gene in the universe, or no gene of any set
        in the universe (the identifiers are probably of different kinds).

    Examples
    --------
    >>> sets = {"up": [f"G{i}" for i in range(10)], "other": [f"G{i}" for i in range(50, 60)]}
    >>> res = hypergeometric_enrichment([f"G{i}" for i in range(8)], sets,
    ...                                 universe=[f"G{i}" for i in range(100)])
    >>> res[["gene_set", "size", "overlap", "expected"]].values.tolist()
    [['up', 10, 8, 0.8], ['other', 10, 0, 0.8]]
    >>> bool(res["p"].iloc[0] < 1e-6), res.attrs["n_tested"]
    (True, 2)
    """
    from scipy.stats import hypergeom
    from statsmodels.stats.multitest import multipletests

    listed = _unique_genes(genes, "gene list")
    if not listed:
        raise InputError("the gene list is empty: no gene passed the selection (e.g. no gene "
                         "significantly associated at this FDR), so there is nothing to test")
    univ = _unique_genes(universe, "universe")
    if not univ:
        raise InputError("the gene universe is empty; give the genes that were tested")
    in_univ = set(univ)
    kept = [g for g in listed if g in in_univ]
    dropped = len(listed) - len(kept)
    if dropped:
        logger.warning("%d of %d listed genes are not in the universe of %d genes and were "
                       "dropped (e.g. %s)", dropped, len(listed), len(univ),
                       ", ".join([g for g in listed if g not in in_univ][:3]))
    if not kept:
        raise InputError(f"none of the {len(listed)} listed genes (e.g. "
                         f"{', '.join(listed[:3])}) is in the universe (e.g. "
                         f"{', '.join(univ[:3])}); are they the same kind of identifier?")
    sets = _gene_sets(gene_sets)
    restricted = {s: [g for g in gs if g in in_univ] for s, gs in sets.items()}
    if not any(restricted.values()):
        example = next(iter(sets.values()))[:3]
        raise InputError(f"no gene of the {len(sets)} gene sets (e.g. {', '.join(example)}) is "
                         f"in the universe (e.g. {', '.join(univ[:3])}); gene sets and "
                         "expression must use the same identifiers (symbols vs Ensembl ids)")
    names, n_small, n_large = _size_filter({s: len(g) for s, g in restricted.items()},
                                           int(min_size), int(max_size))
    n_univ, n_list = len(univ), len(kept)
    order = {g: i for i, g in enumerate(kept)}
    size = np.array([len(restricted[s]) for s in names], np.int64)
    hits = [sorted((g for g in restricted[s] if g in order), key=order.__getitem__)
            for s in names]
    overlap = np.array([len(h) for h in hits], np.int64)
    expected = n_list * size / n_univ
    p = hypergeom.sf(overlap - 1, n_univ, size, n_list) if names else np.zeros(0)
    p = np.clip(p, 0.0, 1.0)
    q = multipletests(p, method="fdr_bh")[1] if names else np.zeros(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        fold = np.where(expected > 0, overlap / expected, np.nan)
    res = pd.DataFrame({
        "gene_set": names, "size": size, "overlap": overlap, "expected": expected,
        "fold": fold, "p": p, "q": q, "genes": [",".join(h) for h in hits],
    }, columns=list(ENRICHMENT_COLUMNS))
    res = res.sort_values(["p", "gene_set"], kind="stable").reset_index(drop=True)
    res.attrs.update({
        "n_sets": len(sets), "n_tested": len(names), "n_too_small": n_small,
        "n_too_large": n_large, "n_universe": n_univ, "n_genes": n_list,
        "n_genes_dropped": dropped, "min_size": int(min_size), "max_size": int(max_size),
    })
    if not names:
        logger.warning("no gene set has between %d and %d universe genes; nothing was tested",
                       min_size, max_size)
    return res


# -- pre-ranked GSEA ------------------------------------------------------------------------
def _first(df: pd.DataFrame, *names: str) -> pd.Series | None:
    for n in names:
        if n in df.columns:
            return df[n]
    return None


def _normalise_gseapy(res2d: pd.DataFrame, sizes: Mapping[str, int]) -> pd.DataFrame:
    """gseapy's ``res2d`` (1.x: Term, ES, NES, NOM p-val, FDR q-val, FWER p-val, Lead_genes;
    0.x: index Term, es, nes, pval, fdr, ledge_genes) as :data:`PRERANK_COLUMNS`."""
    df = res2d.copy()
    if "Term" not in df.columns and "term" not in df.columns:
        df = df.rename_axis("Term").reset_index()
    term = _first(df, "Term", "term")
    num = {}
    for key, names in {"es": ("ES", "es"), "nes": ("NES", "nes"),
                       "p": ("NOM p-val", "pval"), "q": ("FDR q-val", "fdr"),
                       "fwer": ("FWER p-val", "fwerp")}.items():
        col = _first(df, *names)
        num[key] = (pd.to_numeric(col, errors="coerce").to_numpy(np.float64)
                    if col is not None else np.full(len(df), np.nan))
    lead = _first(df, "Lead_genes", "ledge_genes", "lead_genes")
    lead_s = ([str(x).replace(";", ",") if isinstance(x, str) else "" for x in lead]
              if lead is not None else [""] * len(df))
    names = [str(t) for t in term]
    out = pd.DataFrame({"gene_set": names, "size": [int(sizes.get(t, 0)) for t in names],
                        **num, "lead_genes": lead_s}, columns=list(PRERANK_COLUMNS))
    out["_abs_nes"] = -np.abs(out["nes"])
    out = out.sort_values(["p", "_abs_nes", "gene_set"], kind="stable")
    return out.drop(columns="_abs_nes").reset_index(drop=True)


def prerank_enrichment(
    ranking: pd.Series,
    gene_sets: Mapping[str, Iterable[str]] | str | Path,
    *,
    permutations: int = 1000,
    seed: int = 0,
    min_size: int = 15,
    max_size: int = 500,
    outdir: str | Path | None = None,
    threads: int = 1,
) -> pd.DataFrame:
    """Pre-ranked GSEA (``gseapy.prerank``) of a gene ranking against gene sets.

    Seed 002 (Q3 step 3) sorts genes by the variance an image feature explains and runs
    GSEA on that ranking. This wraps gseapy, an optional dependency: without it this raises
    :class:`InputError` saying ``pip install gseapy``.

    Parameters
    ----------
    ranking
        One score per gene, indexed by gene (e.g. r² or signed -log10 p); higher ranks first.
        NaN scores are logged and dropped; repeated genes raise.
    gene_sets
        ``{name: [genes]}`` or a GMT file.
    permutations, seed
        Gene-set permutations of gseapy and their seed (p-values resolve to ~1/permutations).
    min_size, max_size
        Sets with fewer / more ranked genes are not tested (gseapy's filter; the counts are in
        ``attrs``).
    outdir
        gseapy's report folder; ``None`` writes nothing.
    threads
        gseapy worker threads.

    Returns
    -------
    DataFrame
        :data:`PRERANK_COLUMNS`: ``gene_set``, ``size`` (set genes in the ranking), ``es``,
        ``nes``, ``p`` (nominal), ``q`` (gseapy's FDR), ``fwer``, ``lead_genes``
        (leading-edge genes, comma-joined), sorted by ``p`` then ``|nes|`` descending.

    Examples
    --------
    >>> r = pd.Series([3.0, 2.0, 1.0], index=["A", "B", "C"])
    >>> try:
    ...     res = prerank_enrichment(r, {"S": ["A", "B"]}, min_size=1, permutations=10)
    ... except InputError as e:  # gseapy is not installed
    ...     res = str(e)
    >>> isinstance(res, pd.DataFrame) or "pip install gseapy" in res
    True
    """
    if not isinstance(ranking, pd.Series):
        raise InputError("ranking must be a pandas Series of scores indexed by gene")
    r = pd.to_numeric(ranking, errors="coerce").astype(np.float64)
    r.index = [str(g).strip() for g in r.index]
    bad = ~np.isfinite(r.to_numpy())
    if bad.any():
        logger.warning("ranking: %d of %d genes have no finite score and were dropped",
                       int(bad.sum()), len(r))
        r = r[~bad]
    if r.empty:
        raise InputError("the gene ranking is empty (no gene with a finite score)")
    dup = r.index[r.index.duplicated()].unique()
    if len(dup):
        raise InputError(f"ranking: {len(dup)} gene(s) appear more than once (e.g. "
                         f"{', '.join(map(str, dup[:3]))}); give one score per gene")
    if int(permutations) < 1:
        raise InputError(f"permutations must be >= 1, got {permutations}")
    sets = _gene_sets(gene_sets)
    ranked = set(r.index)
    sizes = {s: sum(g in ranked for g in gs) for s, gs in sets.items()}
    if not any(sizes.values()):
        raise InputError(f"no gene of the {len(sets)} gene sets is in the ranking (e.g. "
                         f"{', '.join(r.index[:3])}); gene sets and expression must use the "
                         "same identifiers")
    names, n_small, n_large = _size_filter(sizes, int(min_size), int(max_size))
    if not names:
        raise InputError(f"no gene set has between {min_size} and {max_size} ranked genes; "
                         "lower min_size or use a larger ranking")
    try:
        import gseapy
    except ImportError as e:
        raise InputError("pre-ranked GSEA needs the optional package gseapy: "
                         "pip install gseapy (or use hypergeometric_enrichment)") from e
    rnk = r.sort_values(ascending=False, kind="stable")
    pre = gseapy.prerank(
        rnk=rnk, gene_sets={s: sets[s] for s in names}, permutation_num=int(permutations),
        min_size=int(min_size), max_size=int(max_size), seed=int(seed), threads=int(threads),
        outdir=None if outdir is None else str(outdir), no_plot=outdir is None, verbose=False)
    out = _normalise_gseapy(pre.res2d, sizes)
    out.attrs.update({"n_sets": len(sets), "n_tested": len(out), "n_too_small": n_small,
                      "n_too_large": n_large, "n_ranked": len(r),
                      "n_dropped_nan": int(bad.sum()), "permutations": int(permutations)})
    return out
