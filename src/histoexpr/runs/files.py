"""The name of every file a run folder holds, in one place (readers and writers import these;
no other module spells a run file's name).

::

    RUN/
      config.json   run.json   data.json   splits.json   report.html
      metrics.csv   summary.csv   features/   folds/<unit>/   final/model.joblib, model.json
      spatial runs: spots.csv  models.json  predictions.h5ad (.zarr)  maps/
      bulk runs:    slides.csv  measured.csv  entries.json  cost.json  patients.csv
                    predictions.csv  evaluation.json
"""

from __future__ import annotations

# every run
CONFIG = "config.json"  # the resolved config: what defines the result
RUN = "run.json"  # provenance: versions, commit, host, status, stages, inputs' SHA-256
DATA = "data.json"  # what was read and kept, and why the rest was dropped
SPLITS = "splits.json"  # folds, held-out groups
METRICS = "metrics.csv"  # tidy per-gene metrics
SUMMARY = "summary.csv"  # one row per entry and fold
REPORT = "report.html"
FEATURES = "features"  # cached feature sets
FOLDS = "folds"  # folds/<unit>/<entry>.npz (+ .json): the resume unit
FINAL = "final"  # the model refitted on all training samples
FINAL_MODEL = "model.joblib"
FINAL_INFO = "model.json"
PREDICT = "predict"  # default output folder of `st predict` / `bulk predict`

# `st predict` outputs, per section, in PREDICT (or --out)
PREDICT_H5AD = "{section}_predictions.h5ad"  # predictions, lower / upper, measured
PREDICT_MAP = "{section}_map.png"  # (measured and) predicted expression
PREDICT_UNCERTAINTY_MAP = "{section}_uncertainty.png"  # interval width (and error) per spot
PREDICT_METRICS = "{section}_metrics.csv"  # with --counts: per-gene scores and coverage
PREDICT_SCORES = "{section}_metrics.json"  # with --counts: their summary, genes left out
PREDICT_RECORD = "{section}_predict.json"  # inputs, spots, genes, interval method
PREDICT_GEOJSON = "{section}_spots.geojson"  # spots' patches, every gene a QuPath measurement
PREDICT_ZARR = "{section}.zarr"  # SpatialData store: H&E, spots, predictions

# spatial runs
SPOTS = "spots.csv"
MODELS = "models.json"  # the entries (model x feature set) of a spatial run
PREDICTIONS_H5AD = "predictions.h5ad"
PREDICTIONS_ZARR = "predictions.zarr"  # with --spatialdata: the held-out predictions, SpatialData
MAPS = "maps"
SMOOTHING = "smoothing.json"  # the output-smoothing strength chosen on the cv folds
UNCERTAINTY = "uncertainty.json"  # conformal half-widths per gene and their held-out coverage

# bulk runs
SLIDES = "slides.csv"
MEASURED = "measured.csv"
ENTRIES = "entries.json"
COST = "cost.json"
PATIENTS = "patients.csv"
PREDICTIONS_CSV = "predictions.csv"
EVALUATION = "evaluation.json"
