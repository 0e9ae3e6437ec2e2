"""Clinical uses of (predicted) expression.

- :mod:`.subtypes` — subtype calling: a soft-voting classifier (random forest, MLP, LDA,
  logistic regression; seed 001) trained on measured expression and applied to predicted
  expression, with accuracy, macro-F1, per-class AUROC and a confusion matrix;
- :mod:`.clusters` — the Spearman nearest-centroid caller and unsupervised clustering;
- :mod:`.survival` — Cox models, Kaplan–Meier with log-rank, risk groups, seed 001's Table 1;
  :mod:`.scores` — risk scores from genes, signatures or a cross-validated Cox model;
- :mod:`.cheong` — the four-gene gastric rules of Cheong et al. (seed 000, next steps);
- :mod:`.associations` — predicted genes between clinical groups (t-test, ANOVA) and against
  a measured percentage.

Each is one command away: ``histoexpr analyze subtype|survival|cheong|clinical``.
Submodules are imported on use (lifelines and scikit-learn load only when an analysis runs).
"""

from __future__ import annotations
