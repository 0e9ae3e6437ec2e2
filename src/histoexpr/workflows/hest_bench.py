"""HEST-Benchmark's protocol on any encoder card (issue 22, item 2): ``histoexpr bench hest``.

HEST-Benchmark (Jaume et al. 2024, HEST-1k; the ``MahmoodLab/hest-bench`` data) scores a
frozen patch encoder by a linear probe per task (IDC, PRAD, PAAD, SKCM, COAD, READ, ccRCC,
HCC, LUNG, LYMPH_IDC). Each task folder holds ``splits/train_<i>.csv`` / ``test_<i>.csv``
(``sample_id``, ``patches_path``, ``expr_path``: patient-level splits), the gene list
``var_50genes.json`` (the 50 most variable genes), ``patches/<id>.h5`` (224 px spot patches
at 0.5 µm/px: ``img``/``imgs``, ``coords``, ``barcode``) and ``adata/<id>.h5ad``. Per split,
as the benchmark's code does:

1. every patch is embedded with the encoder (cached under ``OUT/embeddings``);
2. the targets are ``log1p`` of the listed genes' counts at each patch's barcode;
3. the features are standardised and reduced by PCA to 256 dimensions (fitted on train);
4. a ridge without intercept, ``alpha = 100 / (n_features * n_genes)``, lsqr solver, is fitted
   on train and scores each gene's Pearson r on test; the split's score is the mean over
   genes (over the genes not constant in the test split: the benchmark's mean would be
   NaN there, the one departure).

The task's figure is the mean and standard deviation of the split scores, the number the
HEST paper's table reports. Results go to ``OUT/results.csv`` (task x encoder),
``OUT/<task>/<encoder>/split<i>.json`` (per-gene r) and ``OUT/run.json``.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError

__all__ = ["HEST_LATENT_DIM", "hest_probe", "run_hest_bench", "task_folders"]

logger = logging.getLogger(__name__)

#: PCA size of the benchmark's probe
HEST_LATENT_DIM = 256
#: the benchmark's gene list file
GENE_LIST = "var_50genes.json"


def hest_probe(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, *,
               seed: int = 1, latent_dim: int = HEST_LATENT_DIM) -> np.ndarray:
    """Predictions of HEST-Benchmark's linear probe: StandardScaler → PCA(latent_dim) →
    Ridge(alpha = 100 / (n_features x n_genes), no intercept, lsqr), fitted on train.

    The PCA keeps at most ``min(latent_dim, n_train, n_features)`` components (the
    benchmark's tasks all have more than 256 training spots).
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    k = int(min(latent_dim, x_train.shape[0], x_train.shape[1]))
    pipe = Pipeline([("scaler", StandardScaler()), ("pca", PCA(n_components=k,
                                                               random_state=seed))])
    z_train = pipe.fit_transform(x_train).astype(np.float32)
    z_test = pipe.transform(x_test).astype(np.float32)
    alpha = 100.0 / (z_train.shape[1] * y_train.shape[1])
    reg = Ridge(solver="lsqr", alpha=alpha, random_state=seed, fit_intercept=False,
                max_iter=1000).fit(z_train, y_train)
    return reg.predict(z_test)


def task_folders(root: str | Path, tasks: list[str] | None = None) -> list[Path]:
    """The task folders under ``root`` (or ``root`` itself when it is one): folders with
    ``splits/`` and the gene list."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: no such folder; give the HEST-Benchmark data folder "
                         "(hest-bench, with one folder per task)")
    found = ([root] if (root / "splits").is_dir() else
             sorted(p for p in root.iterdir() if (p / "splits").is_dir()))
    if tasks:
        by = {p.name.lower(): p for p in found}
        missing = [t for t in tasks if t.lower() not in by]
        if missing:
            raise InputError(f"{root}: no task {', '.join(missing)} (found: "
                             f"{', '.join(sorted(p.name for p in found)) or 'none'})")
        found = [by[t.lower()] for t in tasks]
    if not found:
        raise InputError(f"{root}: no HEST-Benchmark task here (a task folder holds "
                         f"splits/train_0.csv, splits/test_0.csv and {GENE_LIST})")
    return found


@dataclass
class _Patches:
    images: np.ndarray
    barcodes: list[str]


def _read_patches(path: Path) -> _Patches:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            key = next((k for k in ("img", "imgs", "images") if k in f), None)
            if key is None:
                raise InputError(f"{path}: no `img`/`imgs` dataset of patches")
            images = np.asarray(f[key][:], np.uint8)
            bkey = next((k for k in ("barcode", "barcodes") if k in f), None)
            if bkey is None:
                raise InputError(f"{path}: no `barcode` dataset (the patches' spots)")
            raw = np.asarray(f[bkey][:]).reshape(len(images), -1)[:, 0]
    except OSError as e:
        raise InputError(f"{path}: not a readable patch file ({e})") from e
    barcodes = [b.decode() if isinstance(b, bytes) else str(b) for b in raw]
    return _Patches(images, barcodes)


def _embed(patches: _Patches, encoder: Any, batch: int) -> np.ndarray:
    return np.concatenate([encoder(patches.images[i:i + batch])
                           for i in range(0, len(patches.images), batch)]).astype(np.float32)


def _targets(path: Path, barcodes: list[str], genes: list[str]) -> np.ndarray:
    import anndata as ad
    import scipy.sparse as sp

    try:
        a = ad.read_h5ad(path)
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable .h5ad ({e})") from e
    missing_b = [b for b in barcodes if b not in a.obs_names]
    if missing_b:
        raise InputError(f"{path}: {len(missing_b)} patch barcodes are not spots of this "
                         f"sample (e.g. {missing_b[0]}); patches and expression disagree")
    missing_g = [g for g in genes if g not in a.var_names]
    if missing_g:
        raise InputError(f"{path}: lacks {len(missing_g)} listed genes (e.g. "
                         f"{', '.join(missing_g[:3])})")
    x = a[barcodes, genes].X
    x = x.toarray() if sp.issparse(x) else np.asarray(x)
    return np.log1p(x.astype(np.float64))


def _split_ids(folder: Path) -> list[int]:
    ids = sorted(int(m.group(1)) for p in (folder / "splits").glob("train_*.csv")
                 if (m := re.fullmatch(r"train_(\d+)\.csv", p.name)))
    if not ids:
        raise InputError(f"{folder / 'splits'}: no train_<i>.csv / test_<i>.csv split files")
    return ids


def run_hest_bench(root: str | Path, *, encoders: list[str], out: str | Path,
                   tasks: list[str] | None = None, pretrained: bool = True,
                   batch_size: int = 64, seed: int = 1) -> pd.DataFrame:
    """HEST-Benchmark's protocol (module docstring) for ``encoders`` on the tasks under
    ``root``; returns one row per task and encoder (``pearson_mean``, ``pearson_std`` over
    splits, ``n_splits``, ``n_genes``) and writes it to ``OUT/results.csv``.

    Raises
    ------
    InputError
        No task folder, a split file without the benchmark's columns, patches or
        expression that do not match, a missing gene list.
    """
    from ..atomic import write_csv, write_json
    from ..features.encoders import build_encoder
    from ..features.store import load_features, save_features
    from ..metrics import per_gene

    out = Path(out)
    rows = []
    for folder in task_folders(root, tasks):
        gl = folder / GENE_LIST
        if not gl.is_file():
            raise InputError(f"{gl}: the task's gene list is missing")
        genes = list(json.loads(gl.read_text())["genes"])
        for name in encoders:
            enc = build_encoder(name, pretrained=pretrained)
            cache = out / "embeddings" / folder.name / name
            scores = []
            for i in _split_ids(folder):
                parts = {}
                for role in ("train", "test"):
                    csv = folder / "splits" / f"{role}_{i}.csv"
                    df = pd.read_csv(csv)
                    need = {"sample_id", "patches_path", "expr_path"} - set(df.columns)
                    if need:
                        raise InputError(f"{csv}: lacks column(s) {', '.join(sorted(need))}")
                    xs, ys = [], []
                    for r in df.itertuples():
                        emb = cache / f"{r.sample_id}.h5"
                        patches = _read_patches(folder / r.patches_path)
                        if emb.is_file():
                            x = load_features(emb)[1]
                        else:
                            x = _embed(patches, enc, batch_size)
                            save_features(emb, np.zeros((len(x), 2)), x,
                                          {"encoder": enc.card.to_dict()})
                        xs.append(x)
                        ys.append(_targets(folder / r.expr_path, patches.barcodes, genes))
                    parts[role] = (np.concatenate(xs), np.concatenate(ys))
                pred = hest_probe(parts["train"][0], parts["train"][1], parts["test"][0],
                                  seed=seed)
                r_gene = per_gene(parts["test"][1], pred, genes)["pearson_r"].to_numpy()
                score = float(np.nanmean(r_gene))
                scores.append(score)
                write_json(out / folder.name / name / f"split{i}.json", {
                    "n_train": len(parts["train"][0]), "n_test": len(parts["test"][0]),
                    "pearson_mean": score,
                    "pearson_per_gene": dict(zip(genes, map(float, r_gene)))})
                logger.info("%s / %s split %d: mean Pearson %.3f", folder.name, name, i,
                            score)
            rows.append({"task": folder.name, "encoder": name,
                         "pretrained": pretrained, "pearson_mean": float(np.mean(scores)),
                         "pearson_std": float(np.std(scores)), "n_splits": len(scores),
                         "n_genes": len(genes)})
    table = pd.DataFrame(rows)
    write_csv(out / "results.csv", table, index=False)
    write_json(out / "run.json", {"command": "bench hest", "root": str(Path(root).resolve()),
                                  "encoders": encoders, "pretrained": pretrained,
                                  "seed": seed, "latent_dim": HEST_LATENT_DIM,
                                  "probe": "StandardScaler > PCA(256) > Ridge(lsqr, alpha="
                                           "100/(n_features*n_genes), no intercept)"})
    return table
