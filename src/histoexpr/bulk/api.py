"""The bulk workflow from Python, read like the command line (issue 22, item 6)::

    import histoexpr.bulk as hb
    summary = hb.fit("feats/", "expression.csv", out="runs/bulk", model="hist2rna")
    preds = hb.predict("runs/bulk", features="new_feats/")       # or manifest="slides.csv"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["fit", "predict"]


def fit(features: str | Path, expression: str | Path, *, out: str | Path,
        overwrite: bool = False, **options: Any) -> Any:
    """``histoexpr bulk fit``: returns the summary table (one row per entry, role and
    fold: Spearman and Pearson across genes, per-patient scores, cost), with
    ``attrs["run"]`` the run folder. ``options``: the command's config names (``model``,
    ``genes``, ``k``, ``protocol``, ``baselines``, ``select``, ``n_tiles``, ...)."""
    import pandas as pd

    from ..config import BulkConfig
    from .fit import fit_run

    cfg = BulkConfig.resolve(features=str(features), expression=str(expression), **options)
    run = fit_run(cfg, out, overwrite=overwrite)
    summary = pd.read_csv(run.summary)
    summary.attrs["run"] = str(run.path.resolve())
    return summary


def predict(model: str | Path, *, features: str | Path | None = None,
            manifest: str | Path | None = None, **options: Any) -> Any:
    """``histoexpr bulk predict``: slides x genes (with ``patient``) from a run folder or
    model file, for a feature folder or (one task per slide) a manifest."""
    if manifest is not None:
        from .predict_cohort import predict_bulk_cohort

        options.setdefault("in_process", not (options.get("workers") or
                                              options.get("scheduler")))
        return predict_bulk_cohort(model, manifest, features=features, **options)[0]
    if features is None:
        from ..errors import InputError

        raise InputError("bulk predict needs features= (a feature folder) or manifest=")
    from .predict import predict_bulk

    return predict_bulk(model, features, **options)
