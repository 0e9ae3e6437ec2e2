"""Downstream analyses of image features and expression (seed 002's variance studies):
shared variance, confounder regression, feature x gene association tests, gene-set
enrichment, what an image feature shows; plus the input/output layer every analysis of
:mod:`histoexpr.clinical` and this package uses (:mod:`.tables`, :mod:`.output`).

Submodules are imported on use, so ``import histoexpr.analysis`` stays light.
"""

from __future__ import annotations

from .output import AnalysisOutput
from .tables import align_samples, read_clinical, read_expression_input, select_genes

__all__ = ["AnalysisOutput", "align_samples", "read_clinical", "read_expression_input",
           "select_genes"]
