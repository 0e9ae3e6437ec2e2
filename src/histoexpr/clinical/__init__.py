"""Clinical uses of (predicted) expression: subtype calling, survival analysis, the gastric
rules of Cheong et al., and associations with clinical variables. Submodules are imported on
use (lifelines and scikit-learn load only when an analysis runs)."""

from __future__ import annotations
