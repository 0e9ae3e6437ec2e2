"""GTEx (seed 002): how much variation image features and expression share, how much of it
technical confounders explain, and which genes go with which features, per patch size and
aggregation.

:data:`GTEX` holds the paper's protocol as :class:`GTExConfig` values, each with the section
it comes from; :func:`reproduce_gtex` runs :func:`~histoexpr.workflows.variance_study` once
per aggregation (mean and median) over every patch-size feature set, on log RPKM
expression, and writes the shared-variance table (total and after the confounders), Fig. 4
(the technical factors' share of variation in features and expression), the total vs
technical shared-variance scatter (Q2.3), the association counts (Q3) and, with a GMT, the
ranked enrichment.

Upstream, as the paper did it: ``histoexpr tile`` with the Gaussian-blur + Otsu tissue mask
at each patch size (128 ... 4096 px, resized to 299) and ``histoexpr embed --encoder
inception_v3`` (raw ImageNet weights; the fine-tuned tissue classifier's Dense(1024) layer
through ``histoexpr finetune --dense 1024``, then ``histoexpr embed --encoder`` the tuned
folder). Not reproduced: Q5 (genotypes) and Q6 (causal direction), which need data and
methods beyond the paper's own results.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import write_json
from ..errors import InputError
from ..options import ConfigBase, opt
from .preset import Departure, Headline, PaperValue, Preset

__all__ = ["GTEX", "GTExConfig", "reproduce_gtex"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GTExConfig(ConfigBase):
    """The settings of the GTEx variance study (``histoexpr reproduce gtex``)."""

    features: tuple[str, ...] = opt((), "feature sets, one per patch size: NAME=PATH (a "
                                    "feature folder or a samples x features table)",
                                    form="nargs", metavar="NAME=PATH")
    expression: str = opt("", "expression (GTEx GCT or a samples x genes table)",
                          metavar="FILE")
    covariates: str | None = opt(None, "technical covariates per sample (GTEx sample "
                                 "attributes: SMTSISCH, SMRIN, ...)", metavar="FILE")
    covariate_id: str | None = opt(None, "the covariates' sample id column", metavar="COL")
    covariate_columns: tuple[str, ...] = opt((), "covariates to use (default: the numeric "
                                             "columns)", form="comma", metavar="LIST")
    log: str = opt("log2", "expression transform: log2 (log2(1 + RPKM)), log1p or none",
                   choices=("log2", "log1p", "none"))
    pools: tuple[str, ...] = opt(("mean", "median"), "aggregations of the tile features",
                                 form="comma", metavar="LIST")
    variance_cutoff: float = opt(0.95, "principal components kept up to this share")
    top_features: int = opt(500, "most variable features tested (Q3)")
    top_genes: int = opt(2000, "most variable genes tested (Q3)")
    min_mean: float = opt(1.0, "genes tested have a mean above this (log scale)")
    permutations: int = opt(200, "sample-pairing permutations of the null")
    gmt: str | None = opt(None, "gene sets (GMT) for the ranked enrichment (Q3.3)",
                          metavar="FILE")
    seed: int = opt(0, "random seed of the permutations")

    def validate(self) -> None:
        if not 0 < self.variance_cutoff <= 1:
            raise InputError(f"variance_cutoff must be in (0, 1], got {self.variance_cutoff}")
        bad = sorted(set(self.pools) - {"mean", "median", "max"})
        if bad:
            raise InputError(f"unknown pool(s) {', '.join(bad)}; mean, median or max")


_E = "6.3.2 Association tests"
#: the preset: the paper's values (seed 002) and where it states each
GTEX = Preset(
    "gtex", "002", "GTEx: shared variation of image features and expression (Lung)",
    GTExConfig,
    values=[
        PaperValue("log", "log2", "6.3.1: expression in log RPKM"),
        PaperValue("pools", ("mean", "median"), "6.1: mean and median aggregation"),
        PaperValue("variance_cutoff", 0.95, f"{_E}: PCs describing 95 % of the variation"),
        PaperValue("top_features", 500, f"{_E}: the top 500 varying features"),
        PaperValue("top_genes", 2000, f"{_E}: the top 2000 varying transcripts"),
        PaperValue("min_mean", 1.0, f"{_E}: mean expression greater than 1"),
    ],
    departures=[
        Departure("log", "log RPKM (base not given)", "log2", "log2(1 + RPKM), GTEx's usual "
                  "scale; the paper does not name the base"),
    ],
    headlines=[
        Headline("technical factors' share of feature variation", "40.6 %", "Fig. 4",
                 "GTEx v6 Lung, InceptionV3 features"),
        Headline("technical factors' share of expression variation", "51.1 %", "Fig. 4",
                 "idem"),
        Headline("largest share of one transcript explained by one feature after "
                 "confounders", "66 %", "Results", "GTEx Liver, mean aggregation"),
    ],
)


def reproduce_gtex(out: str | Path, given: dict[str, Any], *, file: Any = None) -> Path:
    """Run the GTEx variance protocol into ``out``; returns the report.

    ``out`` holds ``variance_<pool>/`` (one :func:`variance_study` per aggregation),
    ``tables/``, ``figures/``, ``preset.json`` and ``report.html``.
    """
    from ..expression import log_transform, read_expression
    from ..workflows import variance_study
    from .gtex_outputs import write_outputs

    out = Path(out)
    cfg, prov = GTEX.resolve(given, file)
    if not cfg.features or not cfg.expression:
        raise InputError("the GTEx study needs --features NAME=PATH (one per patch size) and "
                         "--expression FILE")
    expr = log_transform(read_expression(cfg.expression), log=cfg.log)
    out.mkdir(parents=True, exist_ok=True)
    record = {**prov.to_dict(), "config": cfg.to_dict()}
    write_json(out / "preset.json", record)
    studies = {}
    for pool in cfg.pools:
        studies[pool] = variance_study(
            list(cfg.features), expression=expr, out=out / f"variance_{pool}", pool=pool,
            covariates=cfg.covariates, covariate_id=cfg.covariate_id,
            covariate_columns=list(cfg.covariate_columns) or None,
            variance_cutoff=cfg.variance_cutoff, permutations=cfg.permutations,
            seed=cfg.seed, top_features=cfg.top_features, top_genes=cfg.top_genes,
            min_mean=cfg.min_mean, gmt=cfg.gmt)
    return write_outputs(out, studies, record, GTEX)
