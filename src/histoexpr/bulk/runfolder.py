"""The run folder of a bulk workflow.

::

    RUN/
      config.json        the resolved BulkConfig
      run.json           version, status, time per stage, host
      data.json          slides, patients, genes (and panel genes missing from the table),
                         tiles per slide, skipped slides, the slide-expression join report,
                         SHA-256 of the expression table and manifest
      splits.json        protocol, held-out / validation / test patients, folds
      slides.csv         slide, patient, tiles in the bag
      measured.csv       slides x genes: the measured expression, transformed
      entries.json       the model and its baselines, and whether their features exist
      features/<kind>/   baseline tile features (colour histograms, random-init encoder)
      folds/<unit>/<entry>.npz|.json   predictions and the cost record of one fit
      cost.json          wall / CPU / GPU time and energy per entry, summed over its fits
      metrics.csv        across genes, tidy: model, features, role, fold, gene, metric, value
      patients.csv       across patients: model, features, role, patient, spearman/pearson r, p, q
      summary.csv        one row per entry and role (and fold)
      predictions.csv    out-of-fold / held-out predictions of every entry (long format)
      final/model.joblib, final/model.json   the model `bulk predict` uses
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..st.runfolder import RunFolder

__all__ = ["BulkRunFolder"]


class BulkRunFolder(RunFolder):
    """Paths of a bulk run folder (see the module docstring)."""

    command = "bulk"

    slides_csv = property(lambda self: self.path / "slides.csv")
    measured_csv = property(lambda self: self.path / "measured.csv")
    entries_json = property(lambda self: self.path / "entries.json")
    cost_json = property(lambda self: self.path / "cost.json")
    patients_csv = property(lambda self: self.path / "patients.csv")
    predictions_csv = property(lambda self: self.path / "predictions.csv")
    final_model = property(lambda self: self.path / "final" / "model.joblib")

    def fit_records(self) -> list[dict[str, Any]]:
        """The JSON record of every finished fit (``folds/*/*.json``)."""
        import json

        out = []
        for p in sorted((self.path / "folds").glob("*/*.json")):
            out.append(json.loads(p.read_text()))
        return out

    def cost_summary(self) -> dict[str, Any]:
        """Cost per entry (summed over its fits) and in total."""
        from ..cost import sum_costs

        by: dict[str, list[dict[str, Any]]] = {}
        for r in self.fit_records():
            by.setdefault(r["entry"]["key"], []).append(r["cost"])
        per = {k: sum_costs(v) | {"n_fits": len(v)} for k, v in by.items()}
        return {"entries": per, "total": sum_costs([c for v in by.values() for c in v])}

    def unit_dirs(self) -> list[Path]:
        return sorted(p for p in (self.path / "folds").glob("*") if p.is_dir())
