"""A synthetic bulk cohort: per-slide tile features whose *signal tiles* carry a known
relation to some genes, and one expression profile per patient.

Each slide has ``n_tiles`` tiles; a slide-specific fraction of them (between
``signal_fraction`` bounds) are signal tiles (think: tumour). Signal tiles share a "tile type"
direction ``v`` in feature space, so a model can learn to find them, and carry the slide's
latent state ``z`` (``n_latent`` numbers) along directions ``W``; other tiles carry neither.
Signal genes have log expression linear in ``z``; noise genes are independent of the image.
Because the fraction of signal tiles differs between slides, the slide *mean* sees ``z``
diluted by a varying factor, while attention over tiles can find the signal tiles and read
``z`` from them (attention MIL). Max pooling over these dense, Gaussian features does *not*
single the signal tiles out: they differ from the rest by about half a standard deviation per
dimension, so background tiles hold most per-dimension maxima; seed 000's max aggregation
pays off on sparse, non-negative (ReLU-like) features, which the model tests build apart.

Written in the formats the bulk workflow reads: ``features/<slide>.h5`` (``coords``,
``features``, attributes as :func:`histoexpr.features.save_features` writes them) and
``expression.csv`` (patients x genes, TPM-like non-negative values, ``PATIENT_ID`` first).
Patients and slides carry TCGA-style barcodes (project ``TCGA-SY``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["SyntheticBulk", "synthetic_bulk"]


@dataclass(frozen=True)
class SyntheticBulk:
    """What :func:`synthetic_bulk` wrote, and the truth behind it."""

    features_dir: Path
    expression_path: Path
    slides: list[str]
    patients: list[str]
    signal_genes: list[str]
    noise_genes: list[str]
    latents: pd.DataFrame  # per patient, z
    signal_tiles: dict[str, np.ndarray] = field(repr=False)  # per slide, bool mask


def synthetic_bulk(
    out: str | Path,
    *,
    n_slides: int = 60,
    n_tiles: tuple[int, int] = (40, 120),
    dim: int = 32,
    n_genes: int = 20,
    n_signal: int = 5,
    n_latent: int = 2,
    signal_fraction: tuple[float, float] = (0.1, 0.5),
    noise: float = 0.3,
    encoder: str = "synthetic",
    seed: int = 0,
) -> SyntheticBulk:
    """Write a synthetic cohort (see the module docstring).

    Parameters
    ----------
    out
        Folder; ``features/`` and ``expression.csv`` are written inside.
    n_slides
        One slide per patient.
    n_tiles
        Range of tiles per slide.
    dim
        Feature dimension.
    n_genes, n_signal
        Genes in all; the first ``n_signal`` (``SIG0, ...``) follow the image.
    n_latent
        Slide latent dimensions the signal genes mix.
    signal_fraction
        Range of the per-slide fraction of signal tiles.
    noise
        Standard deviation of the log-expression noise (signal genes' image part has
        standard deviation about 1).
    encoder
        The encoder name recorded in the feature files.
    seed
        Everything is reproducible from it.

    Examples
    --------
    >>> import tempfile
    >>> syn = synthetic_bulk(tempfile.mkdtemp(), n_slides=4, n_genes=3, n_signal=1)
    >>> sorted(p.name for p in syn.features_dir.iterdir())[0]
    'TCGA-SY-0000-01Z-00-DX1.h5'
    >>> pd.read_csv(syn.expression_path, index_col=0).shape
    (4, 3)
    """
    from ..features.store import save_features

    out = Path(out)
    fdir = out / "features"
    fdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    v = rng.normal(size=dim)
    v /= np.linalg.norm(v)
    w = rng.normal(size=(n_latent, dim))
    w -= np.outer(w @ v, v)  # latent directions orthogonal to the tile-type direction
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    mix = rng.normal(size=(n_signal, n_latent))
    mix /= np.linalg.norm(mix, axis=1, keepdims=True)
    base = rng.normal(3.0, 1.0, n_genes)  # log-scale level of each gene
    genes = [f"SIG{i}" for i in range(n_signal)] + [f"NOISE{i}" for i in range(n_genes - n_signal)]
    patients = [f"TCGA-SY-{i:04d}" for i in range(n_slides)]
    slides = [f"{p}-01Z-00-DX1" for p in patients]
    z = rng.normal(size=(n_slides, n_latent))
    masks: dict[str, np.ndarray] = {}
    for s, slide in enumerate(slides):
        n = int(rng.integers(n_tiles[0], n_tiles[1] + 1))
        frac = rng.uniform(*signal_fraction)
        sig = rng.random(n) < frac
        if not sig.any():
            sig[rng.integers(n)] = True
        x = rng.normal(size=(n, dim)).astype(np.float32)
        x[sig] += 3.0 * v + 2.0 * (z[s] @ w)
        side = int(np.ceil(np.sqrt(n)))
        coords = np.stack([np.arange(n) % side, np.arange(n) // side], 1) * 224
        save_features(fdir / f"{slide}.h5", coords, x,
                      {"encoder": encoder, "slide": slide, "synthetic": True})
        masks[slide] = sig
    log_expr = np.tile(base, (n_slides, 1)) + noise * rng.normal(size=(n_slides, n_genes))
    log_expr[:, :n_signal] += z @ mix.T
    expr = pd.DataFrame(np.expm1(np.clip(log_expr, 0, None)), index=pd.Index(patients,
                        name="PATIENT_ID"), columns=genes)
    path = out / "expression.csv"
    expr.to_csv(path)
    return SyntheticBulk(
        features_dir=fdir, expression_path=path, slides=slides, patients=patients,
        signal_genes=genes[:n_signal], noise_genes=genes[n_signal:],
        latents=pd.DataFrame(z, index=patients, columns=[f"z{i}" for i in range(n_latent)]),
        signal_tiles=masks,
    )
