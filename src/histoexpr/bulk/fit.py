"""``histoexpr bulk fit``: cross-validate a bulk model beside its baselines, resumably.

Each fit of the protocol (:mod:`.protocol`) and each entry (the model, then the baselines)
writes ``folds/<unit>/<entry>.npz`` (predicted rows) and ``<entry>.json`` (cost: wall, CPU
and GPU time, energy estimate; epochs) as soon as it finishes, so rerunning the same command
skips what is done. The final unit's main model is saved in ``final/``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import atomic_path, write_csv, write_json
from ..config import BulkConfig
from ..runs import BulkRunFolder
from ..runs.folds import Entry, FoldTargets, Unit, run_folds

__all__ = ["Entry", "bulk_entries", "fit_run"]

logger = logging.getLogger(__name__)


def _input_kind(model: str) -> str:
    from ..models import level_input

    return level_input(model, "slide")


def bulk_entries(cfg: BulkConfig) -> list[Entry]:
    """The main model then its baselines. Baselines on colour / random-init features use the
    same model when it reads feature bags, and ridge when the model reads image patches."""
    out = [Entry(cfg.model, cfg.model, "main", "model")]
    head = cfg.model if _input_kind(cfg.model) == "bags" else "ridge"
    for b in cfg.baselines:
        if b == "mean":
            if cfg.model != "mean":
                out.append(Entry("mean", "mean", "main", "baseline"))
        else:
            out.append(Entry(f"{head}@{b}", head, b, "baseline"))
    return out


def build_model(name: str, params: dict[str, Any], *, seed: int, device: str | None) -> Any:
    """A slide-level registry model with ``params``; ``random_state`` / ``device`` set."""
    from ..models import build_model as build

    return build(name, "slide", params, seed=seed, device=device)


def _inputs(est: Any, bags: list, cfg: BulkConfig) -> list:
    from ..models import tags_of

    if tags_of(est).input == "patch_bags":
        from ..features.bags import read_bag_patches

        return [read_bag_patches(b, slides_dir=cfg.slides_dir) for b in bags]
    return bags


def fit_run(cfg: BulkConfig, out: str | Path, *, overwrite: bool = False,
            evaluate: bool = True, expression: pd.DataFrame | None = None,
            bags: Any = None) -> BulkRunFolder:
    """Run (or resume) a bulk run into ``out``; returns its :class:`BulkRunFolder`.

    ``expression`` (a samples x genes ``DataFrame``) and ``bags`` (slide name → ``Bag`` or
    ``(N, D)`` tile features) are in-memory inputs used instead of ``cfg.expression`` /
    ``cfg.features``; their checksums are recorded, so a resume with other data is refused.

    Examples
    --------
    >>> import tempfile
    >>> from histoexpr.datasets.synthetic_bulk import synthetic_bulk
    >>> d = tempfile.mkdtemp()
    >>> syn = synthetic_bulk(d, n_slides=30, n_genes=6, n_signal=2)
    >>> cfg = BulkConfig.resolve(features=str(syn.features_dir),
    ...                          expression=str(syn.expression_path), genes="all", k=3,
    ...                          baselines=["mean"])
    >>> run = fit_run(cfg, d + "/run")
    >>> sorted(pd.read_csv(run.summary)["model"].unique())
    ['mean', 'ridge']
    """
    from ..runs import arrays_sha256, frame_sha256, sha256_files
    from .data import load_bulk_data
    from .protocol import make_units, read_strata

    rf = BulkRunFolder(out)
    t0 = time.perf_counter()
    # the inputs are read and checked (table, panel, join, >= 3 slides) before the run
    # folder is touched: a bad input leaves nothing that would block the corrected command
    data = load_bulk_data(cfg, expression=expression, bags=bags)
    strata = read_strata(cfg.strata, data.patients) if cfg.strata else None
    units, split_rec = make_units(data.patients, protocol=cfg.protocol, k=cfg.k,
                                  holdout=cfg.holdout_fraction,
                                  fractions=cfg.split_fractions, seed=cfg.seed, refit=cfg.refit,
                                  strata=strata)
    gene_record = choose_genes(cfg, data, units)
    build_model(cfg.model, dict(cfg.model_params), seed=cfg.seed, device=cfg.device)
    files = ([cfg.expression] if expression is None else []) + (
        [cfg.manifest] if cfg.manifest else [])
    sums = sha256_files(files + [f for f in (cfg.strata, cfg.gtf, cfg.sample_sheet) if f])
    if expression is not None:
        sums["<in-memory expression>"] = frame_sha256(data.y)
    if bags is not None:
        sums["<in-memory bags>"] = arrays_sha256([b.features for b in data.bags])
    resuming = rf.start(cfg.identity(), overwrite=overwrite, inputs=sums,
                        execution=cfg.execution())
    if resuming:
        logger.info("resuming the run in %s", rf.path)
    with rf.recording():
        _run_stages(rf, cfg, data, units, split_rec, gene_record, sums, t0, evaluate=evaluate)
    from ..plot.report import write_report_after_fit

    write_report_after_fit(rf.path)
    return rf


def choose_genes(cfg: BulkConfig, data: Any, units: list) -> dict[str, Any] | None:
    """For ``--genes topN`` / ``hvgN``: choose the genes on the training patients of the
    protocol (every patient but the held-out set; ``split``: the training patients), so
    the held-out and test scores never saw their targets; restricts ``data.y`` to them and
    returns what the run records. ``None`` for a named panel or list."""
    from ..expression import GeneSelector
    from ..expression.genespec import GeneRequest

    request = GeneRequest.parse(cfg.genes)
    if not request.data_driven:
        return None
    rows = np.unique(np.concatenate([u.train for u in units]))
    sel = GeneSelector(method=request.kind, n=request.n).fit(
        data.y.to_numpy(np.float64)[rows], list(data.y.columns))
    data.y = data.y[sel.genes_]
    n_pat = len(set(data.patients[rows]))
    logger.info("%d genes chosen (%s) on the %d training patients", len(sel.genes_),
                cfg.genes, n_pat)
    return {**sel.to_dict(), "chosen_on": f"the {n_pat} training patients (all but the "
            "held-out or validation/test patients); the CV folds share this choice"}


def _run_stages(rf: BulkRunFolder, cfg: BulkConfig, data: Any, units: list,
                split_rec: dict[str, Any], gene_record: dict[str, Any] | None,
                sums: dict[str, str], t0: float, *, evaluate: bool) -> None:
    """The stages of :func:`fit_run` after the folder is started."""
    from .baselines import baseline_bags

    record = data.record()
    record["checksums"] = sums
    record["gene_selection"] = gene_record
    write_json(rf.data_json, record)
    split_rec["units"] = [u.to_dict(data.patients) for u in units]
    write_json(rf.splits, split_rec)
    write_csv(rf.slides_csv, pd.DataFrame({"slide": data.slides, "patient": data.patients,
                                           "n_tiles": [len(b) for b in data.bags]}),
              index=False)
    write_csv(rf.measured_csv, data.y)
    rf.stage("data", time.perf_counter() - t0, n_slides=len(data.bags))

    entries = bulk_entries(cfg)
    feature_sets: dict[str, list | None] = {"main": data.bags}
    for source in {e.features for e in entries} - {"main"}:
        with rf.timed(f"features:{source}") as rec:
            feature_sets[source] = baseline_bags(data, source, cfg, rf.features)
            rec["available"] = feature_sets[source] is not None
    write_json(rf.entries_json, [e.to_dict() | {
        "available": feature_sets[e.features] is not None} for e in entries])
    run_folds(rf, entries, units, _SlideFolds(rf, cfg, data, feature_sets))
    rf.stage("fit", time.perf_counter() - t0)
    write_json(rf.cost_json, rf.cost_summary())
    if evaluate:
        from .evaluate import evaluate_run

        evaluate_run(rf.path)


class _SlideFolds:
    """The bulk workflow as an adapter of the one fold loop (:mod:`histoexpr.runs.folds`):
    rows are slides, groups patients, the targets the joined (transformed) expression, the
    inputs a bag (or the image patches of a bag) per slide."""

    def __init__(self, rf: BulkRunFolder, cfg: BulkConfig, data: Any,
                 feature_sets: dict[str, list | None]) -> None:
        self.rf, self.cfg, self.data, self.sets = rf, cfg, data, feature_sets
        self.y = data.y.to_numpy(np.float64)
        self.ids = np.asarray(data.slides, str)
        self.groups = np.asarray(data.patients, str)
        self.device = cfg.device

    def targets(self, unit: Unit) -> FoldTargets:
        return FoldTargets(list(self.data.genes), self.y[unit.train], self.y[unit.rows])

    def inputs(self, entry: Entry, est: Any, rows: np.ndarray) -> Any:
        bags = self.sets[entry.features]
        return _inputs(est, [bags[i] for i in rows], self.cfg)

    def estimator(self, entry: Entry, unit: Unit) -> Any:
        params = dict(self.cfg.model_params) if entry.kind == "model" else {}
        return build_model(entry.model, params, seed=self.cfg.seed, device=self.cfg.device)

    def available(self, entry: Entry) -> bool:
        return self.sets.get(entry.features) is not None

    def augmented(self, entry: Entry, est: Any, rows: np.ndarray) -> list[Any]:
        return []  # slides are not augmented

    def save_final(self, est: Any, entry: Entry, unit: Unit, targets: FoldTargets) -> None:
        _save_final(self.rf, est, self.cfg, self.data, entry)


def _save_final(rf: BulkRunFolder, est: Any, cfg: BulkConfig, data: Any, e: Entry) -> None:
    import joblib

    from ..models import tags_of

    with atomic_path(rf.final_model) as tmp:
        joblib.dump(est, tmp)
    write_json(rf.final_info, {
        "model": e.model, "encoder": data.encoder, "genes": data.genes,
        "n_features": int(data.bags[0].dim), "transform": cfg.transform,
        "select": cfg.select, "n_tiles": cfg.n_tiles, "genes_spec": cfg.genes,
        "input_kind": tags_of(est).input, "n_train_slides": len(data.bags),
        "params": json.loads(json.dumps(dict(cfg.model_params), default=str)),
    })
