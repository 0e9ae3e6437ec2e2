"""Image features per sample: a feature folder or a table, pooled and keyed by sample id.

Seed 002 turns each slide into one vector by averaging its tile features (``f_ik = 1/J
sum_j r_ijk``; it also tries the median). :func:`read_image_features` reads

- a folder of per-slide ``<slide>.h5`` feature files (``histoexpr embed``): each slide's tiles
  are pooled (``"mean"`` or ``"median"``) into one row named after the slide; columns are
  ``f0 .. f{D-1}`` (the index of the feature dimension); or
- a CSV/TSV table, samples x features (the id in a usual id column or the first column).

Slides are mapped to expression samples by a manifest (CSV ``slide,sample``), by TCGA
barcode (rows of one patient are averaged, as for expression) or, for GTEx, by the tissue
sample id: slide ``GTEX-1117F-0126`` is sample ``GTEX-1117F-0126-SM-5GZZ7``
(:func:`align_features`).

Examples
--------
>>> import pandas as pd
>>> F = pd.DataFrame({"f0": [1.0, 2.0]}, index=["GTEX-1117F-0126", "GTEX-111CU-0226"])
>>> E = pd.DataFrame({"A": [3.0, 4.0]},
...                  index=["GTEX-111CU-0226-SM-5GZXO", "GTEX-1117F-0126-SM-5GZZ7"])
>>> f, e = align_features(F, E)
>>> list(f.index), e["A"].tolist()
(['GTEX-1117F-0126', 'GTEX-111CU-0226'], [4.0, 3.0])
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["POOLS", "align_features", "apply_manifest", "gtex_tissue_id", "read_image_features",
           "read_manifest"]

#: how tile features are pooled into one vector per slide
POOLS = ("mean", "median")
_GTEX = re.compile(r"^(GTEX-[A-Z0-9]+-\d{4})(?:-|$)", re.IGNORECASE)


def gtex_tissue_id(sample: str) -> str | None:
    """The GTEx tissue sample id (donor + tissue site, the slide's name) of a sample id.

    Examples
    --------
    >>> gtex_tissue_id("GTEX-1117F-0126-SM-5GZZ7"), gtex_tissue_id("TCGA-A1-A0SB")
    ('GTEX-1117F-0126', None)
    """
    m = _GTEX.match(str(sample))
    return m.group(1).upper() if m else None


def _pool(features: np.ndarray, pool: str) -> np.ndarray:
    f = features.astype(np.float64)
    return f.mean(axis=0) if pool == "mean" else np.median(f, axis=0)


def _from_folder(path: Path, pool: str) -> pd.DataFrame:
    from ..features.bags import load_bag
    from ..features.store import feature_files

    files = feature_files(path)
    rows, names, skipped, encoders = [], [], {}, {}
    for name, f in files.items():
        try:
            bag = load_bag(f, slide=name)
        except InputError as e:
            logger.warning("skipping %s: %s", name, e)
            skipped[name] = str(e)
            continue
        rows.append(_pool(bag.features, pool))
        names.append(name)
        encoders.setdefault(bag.encoder, name)
    if not rows:
        raise InputError(f"{path}: none of {len(files)} feature files could be read (first "
                         f"error: {next(iter(skipped.values()), '?')})")
    if len(encoders) > 1:
        raise InputError(f"{path}: feature files come from different encoders "
                         f"({', '.join(f'{e} e.g. {s}' for e, s in encoders.items())}); "
                         "embed every slide with one encoder")
    dims = {len(r) for r in rows}
    if len(dims) > 1:
        raise InputError(f"{path}: feature files have different sizes {sorted(dims)}")
    if skipped:
        logger.warning("%s: %d of %d feature files skipped", path, len(skipped), len(files))
    width = len(rows[0])
    df = pd.DataFrame(np.vstack(rows), index=pd.Index(names, name="slide"),
                      columns=[f"f{k}" for k in range(width)])
    df.attrs["encoder"] = next(iter(encoders))
    df.attrs["skipped"] = skipped
    logger.info("%s: %d slides x %d features (%s of tiles)", path, len(df), width, pool)
    return df


def _from_table(path: Path) -> pd.DataFrame:
    from .tables import read_clinical

    tab = read_clinical(path)
    bad = [c for c in tab.columns if not pd.api.types.is_numeric_dtype(tab[c])]
    if bad:
        raise InputError(f"{path}: feature table has non-numeric column(s) "
                         f"{', '.join(map(str, bad[:5]))}; give samples x features with the "
                         "id in the first column")
    return tab.astype(float)


def read_image_features(
    path: str | Path,
    *,
    manifest: str | Path | pd.Series | None = None,
    pool: str = "mean",
    patients: bool = True,
) -> pd.DataFrame:
    """Samples x image features from a feature folder or a table.

    Parameters
    ----------
    path
        A folder of ``<slide>.h5`` feature files, or a CSV/TSV table samples x features.
    manifest
        CSV with columns ``slide,sample`` (or a Series slide -> sample): rows are renamed to
        samples; slides it does not list are dropped and counted; several slides of one
        sample are averaged.
    pool
        ``"mean"`` (seed 002) or ``"median"`` of the tiles of each slide (folders only).
    patients
        Average rows per TCGA patient when ids are TCGA barcodes (as expression is).

    Returns
    -------
    DataFrame, index = slide or sample id, columns = features (``f0``... for folders).

    Examples
    --------
    >>> import tempfile
    >>> from histoexpr.datasets.synthetic_bulk import synthetic_bulk
    >>> syn = synthetic_bulk(tempfile.mkdtemp(), n_slides=3, n_genes=3, n_signal=1)
    >>> read_image_features(syn.features_dir, patients=False).shape[0]
    3
    """
    if pool not in POOLS:
        raise InputError(f"unknown pooling {pool!r}; choose one of {', '.join(POOLS)}")
    p = Path(path)
    if p.is_dir():
        df = _from_folder(p, pool)
    elif p.is_file() and p.suffix == ".h5":
        raise InputError(f"{p}: give the folder of feature files ({p.parent}), not one file")
    elif p.is_file():
        df = _from_table(p)
    else:
        raise InputError(f"{p}: not found; give a feature folder (`histoexpr embed`) or a "
                         "samples x features table")
    attrs = dict(df.attrs)
    if manifest is not None:
        df = apply_manifest(df, manifest)
    if patients:
        from .tables import to_patients

        df = to_patients(df, list(df.index), str(p))
        df.index.name = "sample"
    df.attrs.update(attrs)
    return df


def read_manifest(path: str | Path) -> pd.Series:
    """``slide -> sample`` from a CSV (or TSV) with columns ``slide`` and ``sample``."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: manifest not found")
    tab = pd.read_csv(p, sep=None, engine="python", dtype=str)
    cols = {c.lower(): c for c in tab.columns}
    if "slide" not in cols or not ({"sample", "patient", "sample_id"} & set(cols)):
        raise InputError(f"{p}: a manifest needs columns slide and sample; has "
                         f"{', '.join(tab.columns)}")
    target = next(cols[c] for c in ("sample", "sample_id", "patient") if c in cols)
    tab = tab.dropna(subset=[cols["slide"], target])
    slides = tab[cols["slide"]].str.strip()
    stems = slides.map(lambda s: Path(s).stem if s.lower().endswith((".svs", ".tif", ".tiff",
                                                                     ".ndpi", ".h5")) else s)
    dup = stems[stems.duplicated()].unique().tolist()
    if dup:
        raise InputError(f"{p}: slide(s) {', '.join(dup[:3])} listed more than once")
    return pd.Series(tab[target].str.strip().to_numpy(), index=stems.to_numpy(), name="sample")


def apply_manifest(features: pd.DataFrame, manifest: str | Path | pd.Series) -> pd.DataFrame:
    """Rows renamed from slide to sample; unlisted slides dropped (logged), several slides
    per sample averaged.

    Examples
    --------
    >>> F = pd.DataFrame({"f0": [1.0, 3.0, 5.0]}, index=["s1", "s2", "s3"])
    >>> apply_manifest(F, pd.Series({"s1": "A", "s2": "A"}))["f0"].to_dict()
    {'A': 2.0}
    """
    m = manifest if isinstance(manifest, pd.Series) else read_manifest(manifest)
    listed = features.index.isin(m.index)
    if not listed.any():
        raise InputError(f"the manifest names none of the slides ({list(features.index[:3])}, "
                         f"...); its slides are {list(m.index[:3])}, ...")
    if (~listed).any():
        logger.warning("%d of %d slides are not in the manifest and are left out",
                       int((~listed).sum()), len(features))
    df = features.loc[listed]
    out = df.groupby(m.reindex(df.index).to_numpy(), sort=False).mean()
    if len(out) < len(df):
        logger.info("manifest: %d slides averaged to %d samples", len(df), len(out))
    out.index.name = "sample"
    return out


def align_features(
    features: pd.DataFrame, expression: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features and expression restricted to common samples, in the same order.

    Ids match exactly or by TCGA patient (:func:`~histoexpr.analysis.tables.align_samples`);
    when nothing matches and ids are GTEx ids, both sides are keyed by the tissue sample id
    (:func:`gtex_tissue_id`; expression samples that collapse onto one id are averaged).
    """
    from .tables import align_samples

    what = ("image features", "expression")
    try:
        return align_samples(features, expression, what=what)
    except InputError:
        fk = [gtex_tissue_id(s) for s in features.index]
        ek = [gtex_tissue_id(s) for s in expression.index]
        if any(k is None for k in fk) or any(k is None for k in ek):
            raise
    f = features.groupby(np.asarray(fk), sort=False).mean()
    e = expression.groupby(np.asarray(ek), sort=False).mean()
    for df, before, name in ((f, features, what[0]), (e, expression, what[1])):
        if len(df) < len(before):
            logger.info("%s: %d rows averaged to %d GTEx tissue samples", name, len(before),
                        len(df))
    logger.info("matched image features to expression by GTEx tissue sample id")
    return align_samples(f, e, what=what)
