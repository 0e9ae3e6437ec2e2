"""The spatial-transcriptomics workflow: sections → spots → patches → features → grouped
cross-validation of a model beside its baselines → metrics, maps → predictions for new
sections or whole slides. :func:`fit_run`, :func:`evaluate_run`, :func:`predict_section` and
:func:`predict_slide` are what ``histoexpr st fit|evaluate|predict`` and
``histoexpr predict-slide`` call; :func:`fit` and :func:`predict` (:mod:`.api`) are the same
commands from Python, returning AnnData."""

from __future__ import annotations

from ..runs import RunFolder
from . import api
from .data import SpotData, load_spot_data, patch_spec
from .evaluate import evaluate_run, load_predictions
from .fit import entries, fit_run
from .predict import predict_section
from .predict_slide import predict_slide

# the functions, bound after the imports that bind the submodules .fit / .predict
fit, predict = api.fit, api.predict

__all__ = ["RunFolder", "SpotData", "entries", "evaluate_run", "fit", "fit_run",
           "load_predictions", "load_spot_data", "patch_spec", "predict", "predict_section",
           "predict_slide"]
