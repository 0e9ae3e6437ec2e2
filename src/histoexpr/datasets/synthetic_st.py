"""Synthetic spatial-transcriptomics sections whose expression follows the image.

Each section is written in the legacy-ST layout that :func:`histoexpr.expression.read_legacy_st`
reads (her2st style): a counts table ``<section>.tsv.gz`` (spots x genes), a spot selection
table ``<section>_selection.tsv`` and an H&E-like image ``<section>.jpg`` (``.png`` for the
texture signal). Spots sit on a
square grid with the 200 µm legacy-ST pitch.

Every spot owns the square cell around it; inside a cell the tissue has two latent values,
drawn per spot. With ``signal="colour"`` they are **nuclear density** and **eosin
intensity**, formed as in :mod:`histoexpr.datasets.synthetic` (Beer–Lambert with
haematoxylin and eosin vectors), so a colour histogram sees them. With ``signal="texture"``
they are **nuclear size** and **nuclear elongation** at a fixed nuclear coverage
(:func:`histoexpr.datasets.nuclei.render_nuclei`), so the colours of a patch carry almost
nothing and only a model that sees shape can find the signal; eosin then varies per spot and
per section as a nuisance unrelated to expression. The first ``n_signal`` genes have a log
expression rate that is a linear function of the standardised latents; the others are
independent noise. Counts are Poisson draws at a
library size per spot, so after normalisation and ``log1p`` the signal genes are (nearly)
linear in what the image shows, which a good model must recover and the mean predictor
cannot.

Patients also differ in **stain and scanner**, as real cohorts do (``stain_shift``): each
patient's sections are rendered with its own
:class:`~histoexpr.datasets.synthetic.StainStyle` (haematoxylin and eosin vectors turned a
few degrees off the reference pair, stain amounts, glass white balance, scanner brightness,
gamma and blur). The style changes only how the tissue looks, never the latents or the
counts, so the same gene signal holds in every patient: a feature set that reads the
signal from colour does not carry over to a held-out patient, one that reads morphology
does, which is what a patient-grouped evaluation should reward. It is on by default for the
texture signal (the demo's) and off for the colour signal, whose eosin latent *is* a stain
amount, so a per-patient stain shift would blur the signal itself rather than the nuisance.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .synthetic import StainStyle, beer_lambert_rgb, patient_stain_styles

__all__ = ["SyntheticST", "synthetic_st"]

ST_PITCH_UM = 200.0


@dataclass(frozen=True)
class SyntheticST:
    """What :func:`synthetic_st` wrote.

    Attributes
    ----------
    specs
        One mapping per section for :func:`histoexpr.expression.read_sections`.
    latents
        Per spot (index ``"<section>:<x>x<y>"``), standardised: ``density`` (nuclear area
        drawn in the spot's central 112 µm, within the section) and ``eosin`` for the colour
        signal; ``size`` and ``elong`` for the texture signal.
    signal_genes, noise_genes
        Gene names with and without an image signal.
    weights
        ``(n_signal, 2)`` coefficients of the latents in the signal genes' log rate.
    stains
        Per patient, the stain and scanner style its sections were rendered with.
    """

    specs: list[dict[str, Any]]
    latents: pd.DataFrame
    signal_genes: list[str]
    noise_genes: list[str]
    weights: np.ndarray = field(repr=False)
    stains: dict[str, StainStyle] = field(default_factory=dict, repr=False)


def _section_image(dens: np.ndarray, eosin: np.ndarray, cell: int, rng: np.random.Generator,
                   mpp: float, style: StainStyle) -> tuple[np.ndarray, np.ndarray]:
    """RGB image of a grid of cells with per-cell nuclear density and eosin (raw units), and
    the nuclear map it was drawn from."""
    from scipy import ndimage

    ny, nx = dens.shape
    h, w = (ny + 1) * cell, (nx + 1) * cell
    off = cell // 2  # spot (i, j) is centred at ((j + 1) * cell, (i + 1) * cell)
    e_map = np.full((h, w), 0.0, np.float32)
    e_map[off:off + ny * cell, off:off + nx * cell] = np.kron(eosin, np.ones((cell, cell)))
    imp = np.zeros((h, w), np.float32)
    area_mm2 = (cell * mpp * 1e-3) ** 2
    for i in range(ny):
        for j in range(nx):
            n = rng.poisson(dens[i, j] * area_mm2)
            yy = rng.integers(off + i * cell, off + (i + 1) * cell, n)
            xx = rng.integers(off + j * cell, off + (j + 1) * cell, n)
            np.add.at(imp, (yy, xx), 1.0)
    sigma = 3.5 / mpp / 1.5  # ~7 µm nuclei
    nuc = np.clip(ndimage.gaussian_filter(imp, sigma) * (2 * np.pi * sigma**2) * 1.2, 0, 1)
    tissue = e_map > 0
    conc_h = (0.08 + 0.9 * nuc) * tissue
    conc_e = e_map * (1 - 0.5 * nuc)
    return beer_lambert_rgb(conc_h, conc_e, rng, style), nuc


def _colour_image(z: np.ndarray, cell: int, rng: np.random.Generator, mpp: float,
                  style: StainStyle) -> np.ndarray:
    """Section image from density/eosin latents; ``z[..., 0]`` becomes the drawn nuclear area."""
    ny, nx = z.shape[:2]
    dens = 3000.0 * np.exp(0.45 * z[..., 0])  # nuclei per mm²
    eosin = np.clip(0.40 + 0.12 * z[..., 1], 0.1, 0.8)
    img, nuc = _section_image(dens, eosin.astype(np.float32), cell, rng, mpp, style)
    # the expression follows what the image shows: the nuclear area actually drawn in
    # the central 112 µm of each spot (not the density it was drawn from)
    half = round(56.0 / mpp)
    area = np.array([[nuc[(i + 1) * cell - half:(i + 1) * cell + half,
                          (j + 1) * cell - half:(j + 1) * cell + half].mean()
                      for j in range(nx)] for i in range(ny)])
    z[..., 0] = (area - area.mean()) / area.std()
    return img


def _texture_image(z: np.ndarray, cell: int, rng: np.random.Generator, mpp: float,
                   style: StainStyle) -> np.ndarray:
    """Section image from size/elongation latents; eosin is nuisance (per section and spot)."""
    from .nuclei import render_nuclei

    ny, nx = z.shape[:2]
    h, w = (ny + 1) * cell, (nx + 1) * cell
    off = cell // 2

    def cells(values: np.ndarray) -> np.ndarray:
        full = np.zeros((h, w), np.float32)
        full[off:off + ny * cell, off:off + nx * cell] = np.kron(values, np.ones((cell, cell)))
        return full

    eosin = 0.40 + 0.04 * rng.normal() + 0.04 * rng.normal(size=(ny, nx))
    tissue = cells(np.ones((ny, nx))) > 0
    return render_nuclei(cells(z[..., 0]), cells(z[..., 1]), cells(np.clip(eosin, 0.2, 0.6)),
                         mpp=mpp, tissue=tissue, seed=rng, style=style)


def synthetic_st(
    out: str | Path,
    *,
    n_sections: int = 4,
    n_patients: int = 2,
    grid: tuple[int, int] = (8, 8),
    n_genes: int = 40,
    n_signal: int = 10,
    mpp: float = 2.0,
    library_size: float = 8000.0,
    n_low: int = 1,
    signal: str = "colour",
    stain_shift: float | None = None,
    seed: int = 0,
) -> SyntheticST:
    """Write ``n_sections`` legacy-ST sections with a known image → expression signal.

    Parameters
    ----------
    out
        Folder to write into (created).
    n_sections, n_patients
        Sections are dealt to patients in turn (``P0, P1, P0, ...``).
    grid
        Spots per section, ``(columns, rows)``.
    n_genes, n_signal
        Genes in all; the first ``n_signal`` (``SIG0, SIG1, ...``) carry the signal, the rest
        (``NOISE0, ...``) do not.
    mpp
        µm per image pixel; the spot pitch is 200 µm.
    library_size
        Median total counts per spot.
    n_low
        Spots per section given fewer than 1000 counts (so the default spot filter drops them).
    signal
        ``"colour"`` (nuclear density, eosin) or ``"texture"`` (nuclear size, elongation).
    stain_shift
        How far each patient's stain and scanner style departs from the reference
        (:func:`~histoexpr.datasets.synthetic.draw_stain_style` ``strength``; 1: of the order
        seen between labs). ``0`` gives exactly the images of the reference style; ``None``:
        1 for ``signal="texture"``, 0 for ``"colour"``. The counts and latents are the
        same at every shift.
    seed
        Everything is reproducible from it.

    Examples
    --------
    >>> import tempfile
    >>> from histoexpr.expression import read_sections
    >>> syn = synthetic_st(tempfile.mkdtemp(), n_sections=2, grid=(4, 3), n_genes=6, n_signal=2)
    >>> adata = read_sections(syn.specs)
    >>> adata.shape, sorted(adata.obs["patient_id"].unique())
    ((24, 6), ['P0', 'P1'])
    """
    if signal not in ("colour", "texture"):
        raise ValueError(f"signal must be 'colour' or 'texture', got {signal!r}")
    shift = (1.0 if signal == "texture" else 0.0) if stain_shift is None else float(stain_shift)
    # drawn from their own streams: the tissue, latents and counts do not depend on them
    styles = patient_stain_styles(n_patients, strength=shift, seed=seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    nx, ny = grid
    cell = round(ST_PITCH_UM / mpp)
    w = rng.normal(0, 1, (n_signal, 2))  # directions; strengths 0.5–0.9 so every signal
    weights = w / np.linalg.norm(w, axis=1, keepdims=True) * rng.uniform(0.5, 0.9, (n_signal, 1))
    base = rng.normal(-4.0, 1.0, n_genes)  # log share of the library per gene
    genes = [f"SIG{i}" for i in range(n_signal)] + [f"NOISE{i}" for i in range(n_genes - n_signal)]
    specs, lat_rows = [], []
    for s in range(n_sections):
        name, patient = f"S{s}", f"P{s % n_patients}"
        style = styles[s % n_patients]
        z = rng.normal(size=(ny, nx, 2))  # standardised latents per spot
        if signal == "texture":
            img = _texture_image(z, cell, rng, mpp, style)
        else:
            img = _colour_image(z, cell, rng, mpp, style)
        zf = z.reshape(-1, 2)
        logit = np.tile(base, (len(zf), 1))
        logit[:, :n_signal] += zf @ weights.T
        logit[:, n_signal:] += rng.normal(0, 0.5, (len(zf), n_genes - n_signal))
        share = np.exp(logit) / np.exp(logit).sum(axis=1, keepdims=True)
        lib = library_size * np.exp(rng.normal(0, 0.3, len(zf)))
        lib[rng.choice(len(zf), size=min(n_low, len(zf)), replace=False)] = 500.0
        counts = rng.poisson(share * lib[:, None])
        ii, jj = np.divmod(np.arange(nx * ny), nx)
        ax, ay = jj + 2, ii + 2  # array coordinates as in her2st ids
        ids = [f"{a}x{b}" for a, b in zip(ax, ay)]
        px, py = (jj + 1) * cell, (ii + 1) * cell
        sel = pd.DataFrame({"x": ax, "y": ay, "new_x": ax.astype(float), "new_y": ay.astype(float),
                            "pixel_x": px.astype(float), "pixel_y": py.astype(float),
                            "selected": 1})
        sel.to_csv(out / f"{name}_selection.tsv", sep="\t", index=False)
        with gzip.open(out / f"{name}.tsv.gz", "wt") as f:
            pd.DataFrame(counts, index=ids, columns=genes).to_csv(f, sep="\t")
        from PIL import Image

        # texture sections are saved losslessly: JPEG's blur and chroma subsampling would
        # turn nuclear size into a colour shift that a colour histogram could read
        image = out / (f"{name}.png" if signal == "texture" else f"{name}.jpg")
        Image.fromarray(img).save(image, **({"compress_level": 1} if signal == "texture"
                                            else {"quality": 92}))
        specs.append({"platform": "legacy_st", "counts": str(out / f"{name}.tsv.gz"),
                      "spots": str(out / f"{name}_selection.tsv"),
                      "image": str(image), "section": name, "patient": patient,
                      "mpp": mpp})
        names = ("size", "elong") if signal == "texture" else ("density", "eosin")
        lat_rows.append(pd.DataFrame(zf, columns=list(names),
                                     index=[f"{name}:{i}" for i in ids]))
    return SyntheticST(specs=specs, latents=pd.concat(lat_rows), signal_genes=genes[:n_signal],
                       noise_genes=genes[n_signal:], weights=weights,
                       stains={f"P{p}": st for p, st in enumerate(styles[:n_sections])})
