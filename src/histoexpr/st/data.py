"""From the user's sections to model-ready spots (seed 003's preprocessing).

1. read every section into one cohort (:func:`histoexpr.expression.read_cohort`);
2. drop spots with fewer than ``min_counts`` total counts;
3. drop spots whose patch is more than ``max_white`` near-white (off the tissue);
4. keep genes with any count in the kept spots, normalise to ``target_sum`` per spot and log.

Gene *selection* is not done here: it happens on each training fold (see :mod:`.fit`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from .. import _keys as K
from ..config import STConfig
from ..errors import InputError
from ..tiling.spec import TileSpec

logger = logging.getLogger(__name__)

__all__ = ["SpotData", "check_spot_grids", "fit_stain", "load_spot_data", "patch_spec",
           "recorded_patch"]


@dataclass
class SpotData:
    """Spots ready for modelling.

    Attributes
    ----------
    adata
        Kept spots; ``X`` is log-normalised expression (dense float32) of the expressed
        genes, ``layers["counts"]`` the raw counts, ``obs`` as the readers write it.
    dropped
        One row per dropped spot: ``spot``, ``section``, ``reason``.
    spec
        The patch size and pixel size.
    removed_genes
        Genes the counts held that a filter removed -> which filter (for messages).
    grid_steps
        Each section's spot grid step in image pixels (``None`` where it has no grid).
    """

    adata: AnnData
    dropped: pd.DataFrame
    spec: TileSpec
    removed_genes: dict[str, str] = field(default_factory=dict)
    grid_steps: dict[str, float | None] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Per-section counts for ``data.json``."""
        obs = self.adata.obs
        per = {}
        for s, info in self.adata.uns.get(K.UNS_SECTIONS, {}).items():
            d = self.dropped[self.dropped["section"] == s]
            per[s] = {
                "patient": str(obs.loc[obs[K.SLIDE_ID] == s, K.PATIENT_ID].iloc[0])
                if (obs[K.SLIDE_ID] == s).any() else None,
                "spots_kept": int((obs[K.SLIDE_ID] == s).sum()),
                "dropped": d["reason"].value_counts().to_dict(),
                "mpp": info.get("mpp"), "image_path": info.get("image_path"),
                "platform": info.get("platform"),
                # the spot pitch: predict-slide compares it with its tile grid (--context)
                "grid_step_um": _step_um(self.grid_steps.get(s), info.get("mpp")),
            }
        return {"n_spots": int(self.adata.n_obs), "n_genes": int(self.adata.n_vars),
                "patch": {"size_px": self.spec.size_px, "mpp": self.spec.mpp,
                          "size_um": self.spec.size_um},
                "n_patients": int(obs[K.PATIENT_ID].nunique()), "sections": per}


def _step_um(step_px: float | None, mpp: Any) -> float | None:
    return round(float(step_px) * float(mpp), 2) if step_px and mpp else None


def _grid_options(cfg: STConfig) -> list[str]:
    """The options of ``cfg`` that average over the spot grid, as the user wrote them."""
    from ..config import RECOMMENDED_CONTEXT

    opts = []
    if cfg.context:
        opts.append(f"--context {cfg.context:g}" + (
            " (st fit's default; --context 0 turns it off)"
            if cfg.context == RECOMMENDED_CONTEXT else ""))
    if cfg.smooth:
        opts.append("--smooth")
    if cfg.smooth_targets:
        opts.append(f"--smooth-targets {cfg.smooth_targets:g}")
    return opts


def check_spot_grids(cfg: STConfig, adata: AnnData) -> dict[str, float | None]:
    """Each section's spot grid step (image pixels; ``None`` for a section without one),
    checked against the options that average over grid neighbours (``--context``,
    ``--smooth``, ``--smooth-targets``).

    Raises
    ------
    InputError
        With one of those options: a section whose spots are not on a grid (scattered, or
        positions missing), or a context radius under one grid step (no spot would have a
        neighbour). A radius that reaches across whole sections is a warning: the context
        is then the section's mean, a section-level feature, which a model can still use.
    """
    from ..features.context import no_grid_reason, reach_warning, spot_grid, spot_names

    opts = _grid_options(cfg)
    info = adata.uns.get(K.UNS_SECTIONS) or {}
    xy = adata.obs[[K.X, K.Y]].to_numpy(float)
    sections = adata.obs[K.SLIDE_ID].astype(str).to_numpy()
    names = " and ".join(opts)
    them, they = ("them", "they average") if len(opts) > 1 else ("it", "it averages")
    grids, steps = {}, {}
    for s in pd.unique(sections):
        rows = sections == s
        steps[s] = None
        if rows.sum() < 2:
            continue
        spots = (info.get(s) or {}).get("spots_path") or (info.get(s) or {}).get("source")
        where = f"section {s}" + (f" ({spots})" if spots else "")
        try:
            g = spot_grid(xy[rows])
        except InputError as e:
            if opts:
                raise InputError(f"{names}: {where}: {e}; fix its spot table, or leave "
                                 f"{them} out") from e
            continue
        if not g.regular:
            if opts:
                raise InputError(f"{names}: {where} has no spot grid ({no_grid_reason(g)}); "
                                 f"{they} over each spot's grid neighbours: check the "
                                 f"section's spot positions, or leave {them} out")
            continue
        grids[s], steps[s] = g, g.step
    if cfg.context and grids:
        short = [s for s, g in grids.items() if g.reach(cfg.context) < g.step]
        if short:
            raise InputError(f"--context {cfg.context:g} is under one grid step of section(s) "
                             f"{spot_names(short)}: no spot has a neighbour that near, so "
                             "the context would repeat each spot's own features; give 1 or "
                             "more grid steps")
        msg = reach_warning(grids, cfg.context, option=f"--context {cfg.context:g}",
                            mpp={s: (info.get(s) or {}).get("mpp") for s in grids})
        if msg:
            logger.warning("%s", msg)
    return steps


def patch_spec(cfg: STConfig, adata: AnnData | None = None,
               recorded: dict[str, Any] | None = None) -> TileSpec:
    """The spot patch of a config: ``patch_um`` microns in ``patch_px`` pixels; with
    ``patch_um == 0``, ``patch_px`` pixels at the median µm/px of ``adata``'s sections (the
    images' own resolution, BrST-Net's patches) or, when predicting, the patch a run
    ``recorded`` in its ``data.json``."""
    if recorded:
        return TileSpec(int(recorded["size_px"]), float(recorded["mpp"]))
    if cfg.patch_um > 0:
        return TileSpec.from_um(cfg.patch_um, size_px=cfg.patch_px)
    mpps = [float(v["mpp"]) for v in ((adata.uns.get(K.UNS_SECTIONS) or {}) if adata is not None
                                      else {}).values() if v.get("mpp")]
    if not mpps:
        raise InputError("patch_um 0 takes the patch's µm/px from the sections' images, and "
                         "none of them states one; give --patch-um")
    return TileSpec(cfg.patch_px, float(np.median(mpps)))


def recorded_patch(run: Any) -> dict[str, Any] | None:
    """The patch (``size_px``, ``mpp``) a spatial run recorded, or ``None`` (older runs)."""
    return run.read_json(run.data_json).get("patch") if run.data_json.is_file() else None


def fit_stain(cfg: STConfig, adata: AnnData) -> Any:
    """The stain normaliser of a config, fitted to ``stain_target`` (an image) or, by
    default, to the first section's image; ``None`` when ``stain == "none"``."""
    if cfg.stain == "none":
        return None
    from ..slide import open_slide
    from ..stain import get_normalizer
    from ..tiling.spots import open_section

    if cfg.stain_target:
        target = open_slide(cfg.stain_target, mpp=1.0).thumbnail(2048)
    else:
        first = str(adata.obs[K.SLIDE_ID].iloc[0])
        target = open_section(adata, first).thumbnail(2048)
    return get_normalizer(cfg.stain).fit(target)


def _checked_cohort(adata: AnnData) -> AnnData:
    """An in-memory cohort, checked for what the workflow reads; a copy."""
    if not isinstance(adata, AnnData):
        raise InputError(f"expected an AnnData of spots, got {type(adata).__name__}")
    missing = [k for k in (K.SLIDE_ID, K.PATIENT_ID, K.X, K.Y) if k not in adata.obs]
    if K.LAYER_COUNTS not in adata.layers:
        missing.append(f'layers["{K.LAYER_COUNTS}"]')
    sections = adata.uns.get(K.UNS_SECTIONS) or {}
    absent = sorted(set(adata.obs.get(K.SLIDE_ID, pd.Series(dtype=str)).astype(str))
                    - set(sections))
    if absent:
        missing.append(f'uns["{K.UNS_SECTIONS}"] entries for {", ".join(absent[:3])}')
    if missing:
        raise InputError(f"the AnnData lacks {'; '.join(missing)}; read the sections with "
                         "histoexpr.expression (read_cohort, read_visium, read_h5ad, ...)")
    return adata.copy()


def load_spot_data(cfg: STConfig, adata: AnnData | None = None) -> SpotData:
    """Read, filter and normalise the sections of ``cfg.data`` (see the module docstring),
    or of ``adata``: sections already in memory, as the readers of
    :mod:`histoexpr.expression` make them (``obs`` slide_id, patient_id, x, y;
    ``layers["counts"]``; ``uns["sections"]`` with each section's image and µm/px)."""
    from ..expression import normalise, spot_mask
    from ..expression.discover import read_cohort
    from ..tiling.spots import spot_white_fraction

    if adata is not None:
        adata = _checked_cohort(adata)
    elif not cfg.data:
        raise InputError("no data given; pass --data with one or more section folders/files")
    else:
        adata = read_cohort(cfg.data, join=cfg.join)
    if cfg.gene_names:
        from ..expression.genenames import read_gene_names, rename_genes

        adata = rename_genes(adata, read_gene_names(cfg.gene_names), source=cfg.gene_names)
    removed: dict[str, str] = dict(adata.uns.pop(K.UNS_REMOVED_GENES, {}) or {})
    never = np.asarray(adata.layers[K.LAYER_COUNTS].sum(axis=0)).ravel() == 0
    removed.update({str(g): "no counts in any spot of the sections"
                    for g in adata.var_names[never]})
    spec = patch_spec(cfg, adata)
    sections = adata.obs[K.SLIDE_ID].astype(str).to_numpy()
    dropped = []
    keep = spot_mask(adata.layers[K.LAYER_COUNTS], min_counts=cfg.min_counts)
    dropped += [(n, s, f"total counts < {cfg.min_counts:g}")
                for n, s in zip(adata.obs_names[~keep], sections[~keep])]
    adata = adata[keep].copy()
    white = spot_white_fraction(adata, spec)
    ok = white <= cfg.max_white
    sections = adata.obs[K.SLIDE_ID].astype(str).to_numpy()
    dropped += [(n, s, f"patch > {cfg.max_white:.0%} white")
                for n, s in zip(adata.obs_names[~ok], sections[~ok])]
    adata = adata[ok].copy()
    adata.obs["white_fraction"] = white[ok]
    dropped_df = pd.DataFrame(dropped, columns=["spot", "section", "reason"])
    for s, n in dropped_df.groupby("section")["reason"].value_counts().items():
        logger.info("section %s: dropped %d spots (%s)", s[0], n, s[1])
    if adata.n_obs == 0:
        raise InputError("no spots left after the count and white filters; check min_counts "
                         "and that the images match the spots")
    counts = adata.layers[K.LAYER_COUNTS]
    expressed = np.asarray(counts.sum(axis=0)).ravel() > 0
    why = (f"no counts in the {adata.n_obs} spots kept after the spot filters "
           f"(min_counts {cfg.min_counts:g}, max_white {cfg.max_white:g})")
    removed.update({str(g): why for g in adata.var_names[~expressed] if str(g) not in removed})
    adata = adata[:, expressed].copy()
    adata.X = normalise(adata.layers[K.LAYER_COUNTS], target_sum=cfg.target_sum,
                        log=cfg.log).astype(np.float32)
    logger.info("%d spots in %d sections of %d patients; %d expressed genes", adata.n_obs,
                adata.obs[K.SLIDE_ID].nunique(), adata.obs[K.PATIENT_ID].nunique(),
                adata.n_vars)
    steps = check_spot_grids(cfg, adata)
    return SpotData(adata=adata, dropped=dropped_df, spec=spec, removed_genes=removed,
                    grid_steps=steps)
