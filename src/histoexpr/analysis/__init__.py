"""Downstream analyses of image features and expression (seed 002's variance studies) and the
input/output layer every analysis shares.

- :mod:`.tables` — expression from run folders, ``bulk predict`` CSVs or tables; clinical
  tables; the join by TCGA patient; :mod:`.output` — the analysis output folder;
- :mod:`.features_table` — image features per sample (feature folders or tables);
- :mod:`.variance` — PCA of each side, component cross-correlations, shared variance (Q1);
- :mod:`.confounders` — regressing covariates out of features and expression (Q2);
- :mod:`.association` — feature x gene tests with BH-FDR (Q3); :mod:`.enrichment` — gene sets
  from a local GMT (hypergeometric; gseapy prerank when installed);
- :mod:`.montage` — the tiles scoring highest and lowest on an image feature (Q4).

``histoexpr analyze variance`` runs them all. Submodules other than the input/output layer
are imported on use, so ``import histoexpr.analysis`` stays light.
"""

from __future__ import annotations

from .output import AnalysisOutput
from .tables import align_samples, read_clinical, read_expression_input, select_genes

__all__ = ["AnalysisOutput", "align_samples", "read_clinical", "read_expression_input",
           "select_genes"]
