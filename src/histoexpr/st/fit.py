"""``histoexpr st fit``: grouped cross-validation of a spot-level model and its baselines.

For every fold the genes are chosen on the training spots only (top-N by mean or HVG, or a
given panel), the model is fitted on the training spots and predicts the test spots. The
same folds and gene panels serve the baselines, so they sit in the same table:

- ``mean``: the training-fold mean of each gene (no image at all);
- ``colour``: the model's head on colour histograms of the same patches;
- ``random``: the model's head on features of the same encoder with random weights.

(For ``cnn_aux``, which trains its own encoder, the baselines use the ``ridge`` head.)
Each fold x model result is written as soon as it exists, so a rerun of the same command
resumes where it stopped. After the folds the main model is refitted on all training spots
(``final/``) for ``histoexpr st predict``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import _keys as K
from ..atomic import atomic_path, write_csv
from ..config import STConfig, parse_genes
from ..runs import RunFolder, sha256_files, write_json
from ..runs.folds import Entry, FoldTargets, Unit, run_folds, units_from_split
from .data import SpotData, fit_stain, load_spot_data

logger = logging.getLogger(__name__)

__all__ = ["Entry", "entries", "fit_run", "make_selector", "scale_specs", "spot_context"]

PATCHES = "patches"


def _input_kind(model: str) -> str:
    from ..models import level_input

    return level_input(model, "spot")


def entries(cfg: STConfig) -> list[Entry]:
    """The main model and the baselines a config asks for, main model first."""
    from ..features.colour import COLOUR_FEATURES
    from ..features.per_spot import feature_key

    on_patches = _input_kind(cfg.model) == PATCHES
    sources = (cfg.encoder, *cfg.ensemble_encoders)
    fitted = "ensemble" if len(sources) > 1 else cfg.model  # one head per encoder, averaged

    def key_of(pretrained: bool) -> str:
        return "+".join(feature_key(s, pretrained=pretrained) for s in sources)

    feats = PATCHES if on_patches else key_of(cfg.pretrained)
    main = Entry(cfg.model, fitted, feats, "model", "+".join(sources), cfg.pretrained)
    head = "ridge" if on_patches else cfg.model
    out = [main]
    for b in cfg.baselines:
        if b == "mean":
            out.append(Entry("mean", "mean", "none", "baseline", None, False))
        elif b == "colour":
            out.append(Entry(f"{head}-{COLOUR_FEATURES}", head, COLOUR_FEATURES, "baseline",
                             COLOUR_FEATURES, False))
        elif b == "random":
            key = key_of(False)
            if key != main.features:
                out.append(Entry(f"{head}-{key}", fitted if not on_patches else head, key,
                                 "baseline", "+".join(sources), False))
    return out


def make_selector(cfg: STConfig, genes: list[str] | None = None):
    """The gene selector a config describes (unfitted); ``genes`` replaces a panel's or a
    list's genes by those :meth:`GeneRequest.check` found in the data."""
    from ..expression import GeneSelector

    method, n, named = parse_genes(cfg.genes)
    if genes is not None or method == "list":
        return GeneSelector(genes=genes if genes is not None else named)
    return GeneSelector(method=method, n=n)


def _fold_genes(run: RunFolder, fold: str, cfg: STConfig, x: np.ndarray, var_names: list[str],
                train: np.ndarray, genes: list[str] | None) -> tuple[np.ndarray, np.ndarray]:
    """Columns of the chosen and the remaining genes, chosen on ``train`` only; saved in
    ``folds/<k>/genes.json`` and reused on resume."""
    path = run.fold(fold) / "genes.json"
    if path.is_file():
        saved = run.read_json(path)
        where = {g: i for i, g in enumerate(var_names)}
        if all(g in where for g in saved["genes"]):
            main = np.array([where[g] for g in saved["genes"]], int)
            rest = np.array([where[g] for g in saved["rest"]], int)
            return main, rest
    sel = make_selector(cfg, genes)
    tr = x[train]
    expressed = tr.max(axis=0) > 0  # genes never seen in training cannot be chosen
    cols = np.flatnonzero(expressed)
    if sel.genes is not None:
        sel.fit(x, var_names)
        absent = [g for g, i in zip(sel.genes_, sel.index_) if not expressed[i]]
        if absent:
            logger.warning("fold %s: %d requested genes have no counts in training (e.g. %s)",
                           fold, len(absent), ", ".join(absent[:3]))
        main = sel.index_
    else:
        sel.fit(tr[:, cols], [var_names[i] for i in cols])
        main = cols[sel.index_]
    rest = np.setdiff1d(cols, main)
    write_json(path, {"fold": fold, **sel.to_dict(), "rest": [var_names[i] for i in rest]})
    return main, rest


def spot_context(feats: np.ndarray, adata: Any, radius: float, *,
                 attention: bool = False) -> np.ndarray:
    """Features joined by their grid neighbours' mean, or attention-weighted pool
    (:mod:`histoexpr.features.context`)."""
    from ..features.context import with_context

    return with_context(feats, adata.obs[[K.X, K.Y]].to_numpy(float),
                        adata.obs[K.SLIDE_ID].to_numpy(), radius=radius,
                        pool="attention" if attention else "mean")


def scale_specs(spec: Any, scales: tuple[float, ...]) -> list[tuple[Any, str]]:
    """The patch of ``spec`` and one per extra side in µm (``--scales``), each with the
    ``variant`` its features are cached under: the same pixels over a wider (or narrower)
    field, so each extra scale costs one more encoder pass.

    >>> from histoexpr.tiling.spec import TileSpec
    >>> [(s.size_px, s.mpp, v) for s, v in scale_specs(TileSpec(224, 0.5), (224.0,))]
    [(224, 0.5, ''), (224, 1.0, '224um')]
    """
    from ..tiling.spec import TileSpec

    return [(spec, "")] + [(TileSpec(spec.size_px, float(um) / spec.size_px), f"{um:g}um")
                           for um in scales]


def _features(cfg: STConfig, data: SpotData, entry: Entry, cache_dir: Path, stain: Any,
              cache: dict[str, np.ndarray]) -> np.ndarray | None:
    from ..tiling.spots import iter_section_patches

    if entry.features in cache:
        return cache[entry.features]
    if entry.features == "none":  # the mean predictor sees no image
        out = np.zeros((data.adata.n_obs, 1), np.float32)
    elif entry.features == PATCHES:
        out = np.empty((data.adata.n_obs, data.spec.size_px, data.spec.size_px, 3), np.uint8)
        for _, rows, patches, _ in iter_section_patches(data.adata, data.spec):
            out[rows] = patches if stain is None else stain.transform(patches)
    else:
        def embed(variant: str = "", how: Any = stain, widths: Any = None) -> np.ndarray:
            return entry_features(cfg, data.adata, entry.source, data.spec,
                                  pretrained=entry.pretrained, cache_dir=cache_dir,
                                  stain=how, variant=variant, widths=widths)

        widths: list[int] = []
        out = embed(widths=widths)
        if len(widths) > 1:  # an ensemble of encoders fits one head per block
            cache[blocks_key(entry.features)] = widths
        if cfg.stain_augment:
            cache[augmented_key(entry.features)] = np.stack(
                [embed(f"aug-{cfg.stain_augment}-{i}", _augmenter(cfg, stain, i))
                 for i in range(cfg.augment_copies)])
    cache[entry.features] = out
    return out


def entry_features(cfg: STConfig, adata: Any, source: str, spec: Any, *, pretrained: bool,
                   cache_dir: Path | None = None, stain: Any = None, variant: str = "",
                   widths: list[int] | None = None) -> np.ndarray:
    """The features a run's model reads for ``adata``'s spots: each encoder of ``source``
    (``"a+b"`` for an ensemble of encoders) with the run's TTA, scales (``--scales``, one
    block per encoder with its scales side by side) and context, side by side;
    each encoder's column count is appended to ``widths`` when given."""
    from ..features.per_spot import spot_features

    parts = []
    for name in source.split("+"):
        each = [spot_features(adata, name, s, pretrained=pretrained, cache_dir=cache_dir,
                              batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                              device=cfg.device, stain=stain, store=False, tta=cfg.tta,
                              variant="-".join(v for v in (variant, scale) if v))
                for s, scale in scale_specs(spec, tuple(cfg.scales))]
        f = each[0] if len(each) == 1 else np.concatenate(each, axis=1)
        parts.append(spot_context(f, adata, cfg.context, attention=cfg.context_attention)
                     if cfg.context else f)
        if widths is not None:
            widths.append(parts[-1].shape[1])
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def blocks_key(features: str) -> str:
    """The cache key of a feature entry's per-encoder column counts."""
    return f"{features}#blocks"


def augmented_key(features: str) -> str:
    """The cache key of a feature entry's stain-augmented copies ``(copies, spots, D)``."""
    return f"{features}#augmented"


def _augmenter(cfg: STConfig, stain: Any, copy: int) -> Any:
    """Copy ``copy``'s stain augmentation, after the run's normaliser when it has one (an
    augmented copy stands for the same section stained another way, then normalised)."""
    from ..stain import StainChain
    from ..stain.augment import StainAugmenter

    aug = StainAugmenter.named(cfg.stain_augment, seed=cfg.seed * 1000 + copy)
    return aug if stain is None else StainChain([stain, aug])


def _estimator(cfg: STConfig, entry: Entry, checkpoint: Path | None,
               blocks: list[int] | None = None):
    from ..models import build_model

    params = dict(cfg.model_params) if entry.kind == "model" else {}
    if entry.model == "ensemble" and entry.model != cfg.model:  # an ensemble of encoders
        params = {"members": (cfg.model,), "member_params": {cfg.model: params},
                  "blocks": blocks}
    defaults: dict[str, Any] = {}
    if _input_kind(entry.model) == PATCHES:
        defaults = {"encoder": cfg.encoder, "pretrained": cfg.pretrained,
                    "stain_augment": cfg.stain_augment}
        if checkpoint is not None:
            defaults["checkpoint_dir"] = str(checkpoint)
    return build_model(entry.model, "spot", params, seed=cfg.seed, device=cfg.device,
                       defaults=defaults)


def fit_run(cfg: STConfig, out: str | Path, *, overwrite: bool = False,
            evaluate: bool = True, maps: bool = True,
            feature_cache: str | Path | None = None, adata: Any = None,
            spatialdata: bool = False) -> RunFolder:
    """Cross-validate ``cfg``'s model and baselines; write (or resume) the run folder.

    Parameters
    ----------
    cfg
        The resolved configuration.
    out
        The run folder (created, or resumed when it holds the same config).
    overwrite
        Replace a run folder that holds another config.
    evaluate, maps
        Score the folds and draw maps at the end (see :func:`.evaluate.evaluate_run`).
    feature_cache
        Where spot features are cached (default ``RUN/features``); runs that share it
        embed each section once (e.g. ridge and mlp on the same data).
    spatialdata
        Also write the held-out predictions as a SpatialData store
        (``RUN/predictions.zarr``; see :func:`.evaluate.evaluate_run`).
    adata
        Sections already in memory (an AnnData as :mod:`histoexpr.expression` reads them)
        instead of ``cfg.data``; ``run.json`` then records a SHA-256 of its counts and spot
        table, so a resumed run checks it is the same data.

    Returns
    -------
    RunFolder
        With ``metrics.csv``, ``summary.csv`` (and maps, with ``maps``) written when
        ``evaluate``.

    Examples
    --------
    >>> cfg = STConfig.resolve(data=["her2st"], split="section", encoder="efficientnet_lite0")
    >>> run = fit_run(cfg, "runs/her2st_ridge")  # doctest: +SKIP
    >>> from histoexpr.expression import read_cohort
    >>> cohort = read_cohort(["her2st"])  # doctest: +SKIP
    >>> run = fit_run(STConfig.resolve(split="section"), "runs/x", adata=cohort)  # doctest: +SKIP
    """
    from ..cohort import grouped_splits
    from ..expression.genespec import GeneRequest

    run = RunFolder(out)
    t0 = time.perf_counter()
    # every input is read and checked before the run folder is touched: a bad input
    # leaves nothing behind that would block the corrected command
    data = load_spot_data(cfg, adata)
    in_memory = adata is not None
    adata = data.adata
    request = GeneRequest.parse(cfg.genes)
    choice = None if request.data_driven else request.resolve(
        adata.var_names.astype(str).tolist(), data.removed_genes, strict=cfg.strict_genes)
    genes = None if choice is None else choice.genes
    gene_record = ({"spec": cfg.genes, "kind": request.kind,
                    "chosen_on": "the training spots of each fold"} if choice is None
                   else choice.to_dict())
    _estimator(cfg, entries(cfg)[0], None)  # unknown model parameters fail here
    patients = adata.obs[K.PATIENT_ID].astype(str).to_numpy()
    sections = adata.obs[K.SLIDE_ID].astype(str).to_numpy()
    # a fold is scored on 3 test spots or more (evaluate's cut-off): refused before the run
    split = grouped_splits(patients, sections, by=cfg.split, k=cfg.k,
                           holdout=list(cfg.holdout) or None, min_test=3, row_name="spot")
    stain = fit_stain(cfg, adata)
    files = [v for info in adata.uns[K.UNS_SECTIONS].values()
             for k, v in info.items() if k in ("source", "spots_path", "image_path") and v]
    sums = sha256_files(files)
    if in_memory:
        sums["<in-memory AnnData>"] = _anndata_sha256(adata)
    run.start(cfg.identity(), overwrite=overwrite, inputs=sums, execution=cfg.execution())
    with run.recording():
        _run_stages(run, cfg, data, split, stain, sums, t0, genes, gene_record,
                    evaluate=evaluate, maps=maps, feature_cache=feature_cache,
                    spatialdata=spatialdata)
    from ..plot.report import write_report_after_fit

    write_report_after_fit(run.path)
    return run


def _run_stages(run: RunFolder, cfg: STConfig, data: SpotData, split: Any, stain: Any,
                sums: dict[str, str], t0: float, genes: list[str] | None,
                gene_record: dict[str, Any], *, evaluate: bool,
                maps: bool, feature_cache: str | Path | None,
                spatialdata: bool = False) -> None:
    """The stages of :func:`fit_run` after the folder is started."""
    adata = data.adata
    write_json(run.data_json, {**data.summary(), "sha256": sums, "genes": gene_record,
                               "stain": None if stain is None else stain.params(),
                               "dropped": data.dropped.to_dict(orient="records")})
    cols = [K.SLIDE_ID, K.PATIENT_ID, K.X, K.Y, K.TOTAL_COUNTS, "white_fraction"]
    write_csv(run.spots, adata.obs[[c for c in cols if c in adata.obs]], index_label="spot")
    run.stage("data", time.perf_counter() - t0, n_spots=adata.n_obs)

    groups = adata.obs[K.PATIENT_ID if cfg.split == "patient" else K.SLIDE_ID]
    groups = groups.astype(str).to_numpy()
    write_json(run.splits, {**split.to_dict(), "spots": adata.obs_names.tolist(),
                            "fold_of_spot": _fold_of_spot(split, adata.n_obs)})
    plan = entries(cfg)
    write_json(run.models_json, [e.to_dict() for e in plan])

    cache: dict[str, np.ndarray] = {}
    t_feat = time.perf_counter()
    cache_dir = Path(feature_cache) if feature_cache is not None else run.features
    for e in plan:
        _features(cfg, data, e, cache_dir, stain, cache)
    run.stage("features", time.perf_counter() - t_feat, sources=sorted(cache))

    with run.timed("cross_validation", n_folds=len(split.folds)):
        units = units_from_split(split, adata.n_obs, refit=cfg.refit)
        run_folds(run, plan, units, _SpotFolds(run, cfg, data, cache, genes, groups))
    if evaluate:
        from .evaluate import evaluate_run

        evaluate_run(run.path, maps=maps, spatialdata=spatialdata)


def _anndata_sha256(adata: Any) -> str:
    """SHA-256 of an in-memory cohort's raw counts and spot table (its identity)."""
    from ..runs import arrays_sha256

    return arrays_sha256([adata.layers[K.LAYER_COUNTS]], "\n".join(map(str, adata.var_names)),
                         adata.obs[[K.SLIDE_ID, K.PATIENT_ID, K.X, K.Y]].astype(str).to_csv())


class _SpotFolds:
    """The spatial workflow as an adapter of the one fold loop (:mod:`histoexpr.runs.folds`):
    rows are spots, groups patients (or sections), genes chosen on each unit's training
    spots (``folds/<unit>/genes.json``), the rest of the genes as auxiliary targets for a
    model that takes them (seed 003's AuxNet)."""

    def __init__(self, run: RunFolder, cfg: STConfig, data: SpotData,
                 cache: dict[str, np.ndarray], genes: list[str] | None,
                 groups: np.ndarray) -> None:
        from ..models import MODELS, tags_of

        self.run, self.cfg, self.cache, self.genes = run, cfg, cache, genes
        self.x = np.asarray(data.adata.X)
        self.var_names = data.adata.var_names.astype(str).tolist()
        self.ids = data.adata.obs_names.to_numpy(str)
        self.xy = data.adata.obs[[K.X, K.Y]].to_numpy(float)
        self.sections = data.adata.obs[K.SLIDE_ID].astype(str).to_numpy()
        self.groups = groups
        self.device = cfg.device
        self.aux = tags_of(MODELS.get(cfg.model)).aux_targets

    def targets(self, unit: Unit) -> FoldTargets:
        main, rest = _fold_genes(self.run, unit.name, self.cfg, self.x, self.var_names,
                                 unit.train, self.genes)
        y_tr = self.x[unit.train]
        if self.cfg.smooth_targets:  # over the training spots' own grid: no test spot enters
            from .smoothing import smooth

            y_tr = smooth(y_tr, self.xy[unit.train], self.sections[unit.train],
                          self.cfg.smooth_targets, what="target smoothing (--smooth-targets)")
        return FoldTargets([self.var_names[i] for i in main], y_tr[:, main],
                           self.x[unit.rows][:, main], y_tr[:, rest] if self.aux else None)

    def inputs(self, entry: Entry, est: Any, rows: np.ndarray) -> Any:
        return self.cache[entry.features][rows]

    def augmented(self, entry: Entry, est: Any, rows: np.ndarray) -> list[Any]:
        """Extra training inputs of ``rows``: the stain-augmented feature copies."""
        copies = self.cache.get(augmented_key(entry.features))
        return [] if copies is None else [c[rows] for c in copies]

    def estimator(self, entry: Entry, unit: Unit) -> Any:
        return _estimator(self.cfg, entry, self.run.fold(unit.name) / f"{entry.key}_checkpoints",
                          self.cache.get(blocks_key(entry.features)))

    def available(self, entry: Entry) -> bool:
        return True

    def save_final(self, est: Any, entry: Entry, unit: Unit, targets: FoldTargets) -> None:
        _save_final(self.run, est, entry, targets.genes, len(unit.train))


def _save_final(run: RunFolder, est: Any, entry: Entry, genes: list[str], n_train: int) -> None:
    """The model ``st predict`` uses, with what it needs to rebuild its inputs."""
    import joblib

    if hasattr(est, "checkpoint_dir"):
        est.checkpoint_dir = None  # this machine's folder; predicting needs none
    with atomic_path(run.final_model) as tmp:
        joblib.dump(est, tmp)
    write_json(run.final_info, {**entry.to_dict(), "genes": genes,
                                          "n_train_spots": int(n_train)})


def _fold_of_spot(split, n: int) -> list[int]:
    fold = np.full(n, -1, int)
    for k, (_, te) in enumerate(split.folds):
        fold[te] = k
    return fold.tolist()
