"""HEST-Benchmark's protocol (issue 22, item 2) on generated data in the hest-bench layout:
the probe is the benchmark's (scaler, PCA, ridge alpha = 100/(features x genes), no
intercept), the table has mean and std over splits, a signal the patches carry is found,
and a broken task folder is one clear error."""

from __future__ import annotations

import json

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")

from histoexpr.errors import InputError
from histoexpr.workflows.hest_bench import hest_probe, run_hest_bench

GENES = [f"G{i}" for i in range(6)]


def _sample(task, sid, seed, n=60):
    """Patches whose red level drives G0-G2 (the rest noise), and their spots' counts."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(0, 1, n)
    imgs = np.empty((n, 32, 32, 3), np.uint8)
    imgs[..., 0] = (60 + 180 * level)[:, None, None]
    imgs[..., 1] = 90
    imgs[..., 2] = 160
    imgs = np.clip(imgs + rng.normal(0, 8, imgs.shape), 0, 255).astype(np.uint8)
    barcodes = [f"{sid}_{i}" for i in range(n)]
    with h5py.File(task / "patches" / f"{sid}.h5", "w") as f:
        f["img"] = imgs
        f["coords"] = rng.integers(0, 5000, (n, 2))
        f["barcode"] = np.array([b.encode() for b in barcodes])[:, None]
    lam = np.c_[np.exp(1 + 3 * level)[:, None].repeat(3, 1), np.full((n, 3), 8.0)]
    counts = rng.poisson(lam).astype(np.float32)
    extra = rng.poisson(3, (n, 2)).astype(np.float32)  # genes outside the list
    a = ad.AnnData(np.c_[counts, extra], obs=pd.DataFrame(index=barcodes),
                   var=pd.DataFrame(index=[*GENES, "X1", "X2"]))
    a.write_h5ad(task / "adata" / f"{sid}.h5ad")


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("hest_bench")
    task = root / "IDC"
    for d in ("splits", "patches", "adata"):
        (task / d).mkdir(parents=True)
    ids = ["S1", "S2", "S3"]
    for k, sid in enumerate(ids):
        _sample(task, sid, k)
    (task / "var_50genes.json").write_text(json.dumps({"genes": GENES}))
    for i, test in enumerate(ids[:2]):  # two patient-level splits
        for role, group in (("train", [s for s in ids if s != test]), ("test", [test])):
            pd.DataFrame({"sample_id": group,
                          "patches_path": [f"patches/{s}.h5" for s in group],
                          "expr_path": [f"adata/{s}.h5ad" for s in group]}).to_csv(
                task / "splits" / f"{role}_{i}.csv", index=False)
    return root


def test_probe_is_the_benchmarks():
    from sklearn.decomposition import PCA
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x, y, xt = rng.normal(size=(80, 20)), rng.normal(size=(80, 4)), rng.normal(size=(30, 20))
    s = StandardScaler().fit(x)
    p = PCA(n_components=20, random_state=1).fit(s.transform(x))
    z = p.transform(s.transform(x))
    want = Ridge(alpha=100 / (20 * 4), fit_intercept=False, solver="lsqr",
                 random_state=1).fit(z, y).predict(p.transform(s.transform(xt)))
    np.testing.assert_allclose(hest_probe(x, y, xt, seed=1), want, rtol=1e-4, atol=1e-5)


def test_bench_table_over_splits(bench, tmp_path):
    from histoexpr.cli import main

    assert main(["-q", "bench", "hest", str(bench), "--encoder", "toy", "--out",
                 str(tmp_path / "out")]) == 0
    t = pd.read_csv(tmp_path / "out" / "results.csv")
    assert list(t["task"]) == ["IDC"] and t["n_splits"].iloc[0] == 2
    assert t["n_genes"].iloc[0] == len(GENES)
    split = json.loads((tmp_path / "out" / "IDC" / "toy" / "split0.json").read_text())
    assert split["n_test"] == 60 and split["n_train"] == 120
    r = split["pearson_per_gene"]
    assert min(r[g] for g in GENES[:3]) > 0.5  # the red level is in the patches
    assert abs(np.mean([r[g] for g in GENES[3:]])) < 0.3  # noise genes
    assert t["pearson_mean"].iloc[0] == pytest.approx(np.mean([json.loads(
        (tmp_path / "out" / "IDC" / "toy" / f"split{i}.json").read_text())["pearson_mean"]
        for i in (0, 1)]))
    assert (tmp_path / "out" / "embeddings" / "IDC" / "toy" / "S1.h5").is_file()


def test_broken_task_folders(bench, tmp_path):
    with pytest.raises(InputError, match="no task LUNG"):
        run_hest_bench(bench, encoders=["toy"], out=tmp_path / "o", tasks=["LUNG"])
    with pytest.raises(InputError, match="no HEST-Benchmark task"):
        run_hest_bench(tmp_path, encoders=["toy"], out=tmp_path / "o")
    import shutil

    broken = tmp_path / "b"
    shutil.copytree(bench, broken)
    (broken / "IDC" / "var_50genes.json").write_text(json.dumps({"genes": ["NOPE"]}))
    with pytest.raises(InputError, match="lacks 1 listed genes"):
        run_hest_bench(broken, encoders=["toy"], out=tmp_path / "o2")
