"""Library functions, one per job, that the command line calls: each takes typed keyword
arguments (paths or in-memory tables), writes what the command writes and returns a small
result object, so a notebook runs the same job as ``histoexpr``.

- :func:`tile_cohort` — ``histoexpr tile``: tissue, tile coordinates and QC images for many
  slides, resumable, per-slide failures summarised (:class:`TileCohortResult`);
- :func:`embed_cohort` — ``histoexpr embed``: tile features of many slides, in this process
  or one Dask task per slide, resumable (:class:`EmbedCohortResult`);
- :func:`survival_study`, :func:`cheong_study`, :func:`subtype_study`,
  :func:`clinical_study`, :func:`variance_study` — ``histoexpr analyze ...``: read the inputs,
  run the analysis, write tables, figures and ``analysis.json`` (:class:`StudyResult`).

Examples
--------
>>> from histoexpr.workflows import survival_study
>>> res = survival_study("runs/bulk", clinical="clinical.tsv", time="OS_MONTHS",
...                      event="OS_STATUS", score="MKI67", out="out/survival")  # doctest: +SKIP
>>> res["cox_univariate"]  # doctest: +SKIP
"""

from __future__ import annotations

from .cheong import cheong_study
from .clinical import clinical_study
from .embed import EmbedCohortResult, embed_cohort
from .study import StudyResult
from .subtype import subtype_study
from .survival import SurvivalResult, survival_study
from .tile import SlideOutcome, TileCohortResult, tile_cohort
from .variance import variance_study

__all__ = ["EmbedCohortResult", "SlideOutcome", "StudyResult", "SurvivalResult",
           "TileCohortResult", "cheong_study", "clinical_study", "embed_cohort",
           "subtype_study", "survival_study", "tile_cohort", "variance_study"]
