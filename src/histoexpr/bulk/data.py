"""Read a bulk cohort: tile-feature bags per slide joined to one expression row per patient.

:func:`load_bulk_data` does, in order (each step reports what it left out):

1. list the feature files (``<slide>.h5``) of the feature folder;
2. read the expression table (any format :func:`~histoexpr.expression.read_expression`
   sniffs), check it is numeric, and log-transform it (``transform``);
3. keep the requested genes (``--genes``: a panel's missing ones are listed, fewer than
   half left is an error; a data-driven ``topN`` / ``hvgN`` keeps every gene here);
4. join slides to expression rows by TCGA barcode or a manifest (one slide per patient by
   the stated rule; orphans on both sides reported, not fatal);
5. read the bags of the joined slides (tile choice: all / top-N by heatmap / random N),
   skipping unreadable files with a logged reason.

The table and the bags may also be given in memory (a samples x genes ``DataFrame``; a
mapping of slide name to :class:`~histoexpr.features.bags.Bag` or ``(N, D)`` array), for
a notebook or a pipeline that already holds them; they are checked as the files are.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..config import BulkConfig
from ..errors import InputError

__all__ = ["BulkData", "load_bulk_data", "read_targets"]

logger = logging.getLogger(__name__)


@dataclass
class BulkData:
    """A joined cohort: ``bags[i]`` is slide ``slides[i]`` of patient ``patients[i]`` with
    measured (transformed) expression ``y.iloc[i]``."""

    bags: list[Any]
    y: pd.DataFrame  # slides x genes, transformed
    patients: np.ndarray
    encoder: str | None
    missing_genes: list[str] = field(default_factory=list)
    gene_choice: Any = None
    skipped: dict[str, str] = field(default_factory=dict)
    join: Any = None

    @property
    def slides(self) -> list[str]:
        return list(self.y.index)

    @property
    def genes(self) -> list[str]:
        return list(self.y.columns)

    def record(self) -> dict[str, Any]:
        """JSON-ready description for ``data.json``."""
        return {
            "n_slides": len(self.bags), "n_patients": len(set(self.patients)),
            "n_genes": self.y.shape[1], "genes": self.genes,
            "missing_panel_genes": self.missing_genes, "encoder": self.encoder,
            "genes_requested": None if self.gene_choice is None else self.gene_choice.to_dict(),
            "tiles_per_slide": {b.slide: len(b) for b in self.bags},
            "skipped_slides": self.skipped,
            "join": None if self.join is None else self.join.to_dict(),
        }


def read_targets(cfg: BulkConfig, expression: pd.DataFrame | None = None
                 ) -> tuple[pd.DataFrame, Any]:
    """The expression table restricted to the requested genes and transformed; plus the
    :class:`~histoexpr.expression.genespec.GeneChoice` (genes missing from the table). A
    data-driven request (``top250``, ``hvg50``) keeps every gene here: the choice is made
    on the training patients (see :func:`histoexpr.bulk.fit.fit_run`). ``expression``:
    an in-memory table used instead of ``cfg.expression``.

    Raises
    ------
    InputError
        Non-numeric, missing or negative values (the readers check the whole table); a
        listed gene missing, or fewer than half of a panel's genes present.
    """
    from ..expression.bulk import log_transform
    from ..expression.genespec import GeneRequest
    from ..expression.sniff import read_expression

    request = GeneRequest.parse(cfg.genes)  # a bad token fails before the table is read
    if expression is not None:
        from ..expression.bulk import check_expression_table

        expr = check_expression_table(expression)
    elif not cfg.expression:
        raise InputError("a bulk run needs --expression FILE (or an in-memory table)")
    else:
        kw: dict[str, Any] = {} if cfg.expression_value is None else {
            "value": cfg.expression_value}
        if cfg.gtf:
            kw["gtf"] = cfg.gtf
        expr = read_expression(cfg.expression, format=cfg.expression_format,
                               sample_sheet=cfg.sample_sheet, **kw)
    choice = request.resolve([str(c) for c in expr.columns], strict=cfg.strict_genes)
    sub = expr[choice.genes]
    values = sub.to_numpy(dtype=np.float64)  # the readers refused non-numeric values
    sub = pd.DataFrame(values, index=sub.index.astype(str), columns=choice.genes)
    return log_transform(sub, log=cfg.transform), choice


def _memory_bags(bags: Mapping[str, Any], cfg: BulkConfig) -> Any:
    """In-memory bags as a :class:`~histoexpr.features.bags.BagSet`, tiles chosen as
    ``cfg.select`` says (``top`` needs heatmap files, so it is refused here)."""
    from ..features.bags import Bag, BagSet, as_bags, select_tiles

    if not isinstance(bags, Mapping) or not bags:
        raise InputError("in-memory bags must be a non-empty mapping of slide name to a Bag "
                         "or an (N, D) array of tile features")
    if cfg.select == "top":
        raise InputError("--select top reads tumour heatmap files; with in-memory bags "
                         "choose the tiles first, or use select all / random")
    out = []
    for name, b in bags.items():
        bag = as_bags([b])[0]
        idx = select_tiles(len(bag), cfg.select, n=cfg.n_tiles, seed=cfg.seed, key=str(name))
        out.append(Bag(str(name), bag.features[idx], bag.coords[idx], encoder=bag.encoder))
    as_bags(out)  # one feature size
    encoders = {b.encoder for b in out}
    return BagSet(out, encoders.pop() if len(encoders) == 1 else None, {})


def load_bulk_data(cfg: BulkConfig, *, expression: pd.DataFrame | None = None,
                   bags: Mapping[str, Any] | None = None) -> BulkData:
    """Join bags and expression as the module docstring describes (``expression`` /
    ``bags``: in-memory inputs used instead of ``cfg.expression`` / ``cfg.features``).

    Raises
    ------
    InputError
        No feature files; no slide matches an expression row; fewer than 3 slides left.
    """
    from ..cohort import join_slides
    from ..features.bags import load_bags
    from ..features.store import feature_files

    if bags is None and not cfg.features:
        raise InputError("a bulk run needs --features DIR (or in-memory bags)")
    slides = list(bags) if bags is not None else list(feature_files(cfg.features))
    y_all, choice = read_targets(cfg, expression)
    join = join_slides([str(s) for s in slides], list(y_all.index), rule=cfg.join_rule,
                       sample_types=cfg.sample_types or None, manifest=cfg.manifest)
    logger.info("%s", join.report())
    pairs = join.pairs
    if bags is not None:
        wanted = set(pairs["slide"].astype(str))
        bagset = _memory_bags({str(k): v for k, v in bags.items() if str(k) in wanted}
                              or bags, cfg)
    else:
        bagset = load_bags(cfg.features, list(pairs["slide"]), select=cfg.select,
                           n=cfg.n_tiles, heatmaps=cfg.heatmaps, seed=cfg.seed)
    kept = pairs[pairs["slide"].isin([b.slide for b in bagset.bags])]
    if len(kept) < 3:
        raise InputError(f"only {len(kept)} slide(s) joined to expression with readable "
                         "features; a bulk run needs at least 3 (see the join report above)")
    by_slide = bagset.by_slide()
    y = y_all.loc[kept["expression_id"].astype(str)].copy()
    y.index = pd.Index(kept["slide"].astype(str), name="slide")
    return BulkData(
        bags=[by_slide[s] for s in kept["slide"]], y=y,
        patients=kept["patient"].astype(str).to_numpy(), encoder=bagset.encoder,
        missing_genes=choice.missing, gene_choice=choice, skipped=bagset.skipped, join=join,
    )
