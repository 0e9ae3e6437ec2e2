"""The inputs of ``histoexpr demo`` and the check of its results against the known truth.

:func:`make_demo_inputs` writes legacy-ST sections whose expression follows nuclear size and
elongation (:func:`~histoexpr.datasets.synthetic_st.synthetic_st`, ``signal="texture"``) and
a whole slide whose nuclei follow smooth fields of the same two latents
(:func:`~histoexpr.datasets.nuclei.signal_slide`), with the truth needed to score them: the
gene weights and the slide's latent fields. :func:`score_demo` reads a fitted run and a
``predict-slide`` output and says how well each feature set found the signal.

Patients differ in stain and scanner (``stain_shift``, see
:func:`~histoexpr.datasets.synthetic.draw_stain_style`), and the whole slide comes from yet
another patient with its own style, so the demo's patient-grouped scores reward features
that are invariant to stain and scanner and see morphology, not ones that read colour.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import write_json
from ..runs import files

__all__ = ["DEMO_DEFAULTS", "DemoInputs", "make_demo_inputs", "score_demo", "slide_truth"]

#: what the demo generates (changing any of these regenerates the inputs)
DEMO_DEFAULTS: dict[str, Any] = {
    "n_sections": 6, "n_patients": 3, "grid": [10, 10], "n_genes": 40, "n_signal": 10,
    "mpp": 1.0, "slide_size": [4096, 3072], "stain_shift": 1.0, "seed": 0, "version": 3,
}
#: the fields are stored at 1/FIELD_STEP of the slide's resolution
FIELD_STEP = 8


@dataclass(frozen=True)
class DemoInputs:
    """Paths of the generated inputs and the truth behind them."""

    folder: Path
    sections: Path  # sections.json for ``st fit --data``
    slide: Path  # pyramidal TIFF
    signal_genes: list[str]
    noise_genes: list[str]
    weights: np.ndarray  # (n_signal, 2): gene log-rate per (size, elong) unit

    def slide_latents(self) -> tuple[np.ndarray, np.ndarray]:
        """The slide's ``size`` and ``elong`` fields at 1/:data:`FIELD_STEP` resolution."""
        with np.load(self.folder / "slide_latents.npz") as z:
            return z["size"], z["elong"]


def _load(folder: Path) -> DemoInputs:
    truth = json.loads((folder / "truth.json").read_text())
    return DemoInputs(folder=folder, sections=folder / "sections" / "sections.json",
                      slide=folder / truth["slide"], signal_genes=truth["signal_genes"],
                      noise_genes=truth["noise_genes"], weights=np.asarray(truth["weights"]))


def make_demo_inputs(folder: str | Path, **params: Any) -> tuple[DemoInputs, bool]:
    """Write the demo's sections, slide and truth under ``folder`` (or reuse them).

    Returns the inputs and whether they were generated now (``False``: an earlier call with
    the same parameters wrote them, so a rerun of the demo resumes instead of starting over).

    Examples
    --------
    >>> import tempfile
    >>> d, new = make_demo_inputs(tempfile.mkdtemp(), n_sections=2, n_patients=2,
    ...                           grid=[3, 3], n_genes=4, n_signal=2, slide_size=[256, 192])
    >>> new, d.signal_genes, d.weights.shape, d.slide.suffix
    (True, ['SIG0', 'SIG1'], (2, 2), '.tif')
    """
    from dataclasses import asdict

    from .nuclei import signal_slide, write_signal_slide
    from .synthetic import patient_stain_styles
    from .synthetic_st import synthetic_st

    folder = Path(folder)
    p = {**DEMO_DEFAULTS, **params}
    stamp = folder / "demo_inputs.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == p and \
            (folder / "truth.json").is_file():
        return _load(folder), False
    folder.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    syn = synthetic_st(folder / "sections", n_sections=p["n_sections"],
                       n_patients=p["n_patients"], grid=tuple(p["grid"]),
                       n_genes=p["n_genes"], n_signal=p["n_signal"], mpp=p["mpp"],
                       signal="texture", stain_shift=p["stain_shift"], seed=p["seed"])
    # paths relative to sections.json (the reader resolves them from there): the folder moves
    specs = [{k: (Path(v).name if k in ("counts", "spots", "image") else v)
              for k, v in spec.items()} for spec in syn.specs]
    write_json(folder / "sections" / "sections.json", specs, indent=1)
    w, h = p["slide_size"]
    # the slide is a patient of its own: the next style after the sections' patients
    slide_style = patient_stain_styles(p["n_patients"] + 1, strength=p["stain_shift"],
                                       seed=p["seed"])[-1]
    sl = signal_slide(w, h, mpp=p["mpp"], seed=p["seed"] + 1, n_blobs=8, style=slide_style)
    slide = write_signal_slide(folder / "demo_slide.tif", sl)
    np.savez_compressed(folder / "slide_latents.npz", size=sl.size[::FIELD_STEP, ::FIELD_STEP],
                        elong=sl.elong[::FIELD_STEP, ::FIELD_STEP])
    write_json(folder / "truth.json", {
        "slide": slide.name, "signal_genes": syn.signal_genes, "noise_genes": syn.noise_genes,
        "weights": syn.weights.tolist(), "latents": ["size", "elong"],
        "about": "log expression rate of signal gene g = base_g + weights[g] . (size, elong)",
        "stains": {**{k: asdict(v) for k, v in syn.stains.items()},
                   "slide": asdict(slide_style)},
    }, indent=1)
    write_json(stamp, p, indent=None)
    return _load(folder), True


def _cv_pearson(run_path: Path) -> pd.DataFrame:
    """Genes x feature sets: pooled Pearson r averaged over the CV folds."""
    m = pd.read_csv(run_path / files.METRICS)
    m = m[(m["section"] == "pooled") & (m["metric"] == "pearson_r") & (m["role"] == "cv")]
    label = m["model"].where(m["model"] == "mean", m["model"] + " " + m["features"])
    return m.assign(entry=label).pivot_table(index="gene", columns="entry", values="value",
                                             aggfunc="mean", dropna=False)


def slide_truth(inputs: DemoInputs, adata: Any) -> np.ndarray:
    """``(tiles, signal genes)``: the true log-rate signal of each ``predict-slide`` tile
    (the gene weights applied to the latents averaged over the tile)."""
    size0 = float(adata.uns["tile_spec"]["size_level0"])
    size, elong = inputs.slide_latents()
    xy = adata.obs[["x", "y"]].to_numpy(float)
    lat = np.array([[f[int(y // FIELD_STEP):int(np.ceil((y + size0) / FIELD_STEP)),
                       int(x // FIELD_STEP):int(np.ceil((x + size0) / FIELD_STEP))].mean()
                     for f in (size, elong)] for x, y in xy]).reshape(-1, 2)
    return lat @ inputs.weights.T


def score_demo(inputs: DemoInputs, run_path: str | Path,
               slide_pred: Any = None) -> dict[str, Any]:
    """How well each feature set found the known signal.

    Returns ``{"sections": {entry: {"signal": r, "noise": r}}, "slide": {...} | None}``:
    the mean cross-validated Pearson r over the signal and the noise genes per model and
    baseline (the mean predictor has no correlation: NaN), and, with ``slide_pred`` (a
    ``predict-slide`` AnnData, or the path of its ``.h5ad``), the mean over signal genes of
    Pearson r between the predicted and the true log rate across the slide's tiles.
    """
    import anndata as ad

    r = _cv_pearson(Path(run_path))
    sections = {}
    for entry in r.columns:
        sig = r.loc[r.index.intersection(inputs.signal_genes), entry]
        noise = r.loc[r.index.intersection(inputs.noise_genes), entry]
        sections[entry] = {"signal": float(sig.mean()), "noise": float(noise.mean()),
                           "n_signal": int(sig.notna().sum()), "n_noise": int(noise.notna().sum())}
    out: dict[str, Any] = {"sections": sections, "slide": None}
    if slide_pred is None:
        return out
    a = slide_pred if isinstance(slide_pred, ad.AnnData) else ad.read_h5ad(slide_pred)
    truth = slide_truth(inputs, a)
    per_gene = {}
    for g, t in zip(inputs.signal_genes, truth.T):
        if g in a.var_names:
            pred = np.asarray(a[:, g].X).ravel()
            per_gene[g] = float(np.corrcoef(pred, t)[0, 1])
    out["slide"] = {"n_tiles": int(a.n_obs), "signal": float(np.mean(list(per_gene.values())))
                    if per_gene else float("nan"), "per_gene": per_gene}
    return out
