"""The bulk-expression workflow: slides (as tile-feature bags) joined to one expression
profile per patient, models cross-validated by patient beside baselines, scored across genes
and across patients, and a final model that predicts new slides.

- :func:`load_bulk_data` — read and join a cohort (:mod:`.data`);
- :func:`fit_run` — ``histoexpr bulk fit`` (:mod:`.fit`);
- :func:`evaluate_run` — ``histoexpr bulk evaluate`` (:mod:`.evaluate`);
- :func:`predict_bulk` — ``histoexpr bulk predict`` (:mod:`.predict`);
- :func:`predict_bulk_cohort` — ``bulk predict --manifest``, one task per slide
  (:mod:`.predict_cohort`);
- :func:`fit` / :func:`predict` — the commands from Python, returning tables (:mod:`.api`).
"""

from __future__ import annotations

from ..runs import BulkRunFolder
from . import api
from .data import BulkData, load_bulk_data
from .evaluate import evaluate_run
from .fit import fit_run
from .predict import predict_bulk
from .predict_cohort import predict_bulk_cohort

# the functions, bound after the imports that bind the submodules .fit / .predict
fit, predict = api.fit, api.predict

__all__ = ["BulkData", "BulkRunFolder", "evaluate_run", "fit", "fit_run", "load_bulk_data",
           "predict", "predict_bulk", "predict_bulk_cohort"]
