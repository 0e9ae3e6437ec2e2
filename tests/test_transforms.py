from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from histoexpr.errors import InputError
from histoexpr.expression.transforms import (
    GeneSelector,
    expressed_genes,
    normalise,
    spot_mask,
)


def test_spot_filter_and_gene_filter_on_sparse_counts():
    counts = sp.csr_matrix(np.array([[900, 100, 0], [500, 0, 0], [1000, 5, 0]]))
    assert spot_mask(counts).tolist() == [True, False, True]
    assert expressed_genes(counts).tolist() == [True, True, False]


def test_normalise_counts_per_10k_then_log():
    rng = np.random.default_rng(0)
    counts = rng.poisson(3, (20, 30)).astype(float)
    counts[3] = 0  # an empty spot stays zero
    lin = normalise(counts, log="none")
    assert np.allclose(np.delete(lin, 3, 0).sum(axis=1), 1e4, rtol=1e-5) and (lin[3] == 0).all()
    np.testing.assert_allclose(normalise(counts), np.log1p(lin), rtol=1e-5)
    np.testing.assert_allclose(normalise(counts, log="log2"), np.log2(1 + lin), rtol=1e-5)
    for bad in (np.array([[1.0, -1.0]]), np.array([[np.nan, 1.0]])):
        with pytest.raises(InputError, match="NaN or negative"):
            normalise(bad)
    with pytest.raises(InputError, match="log must be"):
        normalise(counts, log="ln")


def test_gene_selection_is_fitted_on_training_spots_only():
    rng = np.random.default_rng(1)
    genes = [f"g{i}" for i in range(6)]
    train = rng.normal(1, 0.1, (50, 6))
    test = rng.normal(1, 0.1, (20, 6))
    train[:, 2] += 5  # high in training
    test[:, 4] += 9  # highest in the test fold only: must not be chosen
    sel = GeneSelector(n=1).fit(train, genes)
    assert sel.genes_ == ["g2"]
    np.testing.assert_allclose(sel.transform(test)[:, 0], test[:, 2], rtol=1e-6)
    assert sel.rest(6).tolist() == [0, 1, 3, 4, 5]
    assert sel.to_dict() == {"method": "top_mean", "n": 1, "genes": ["g2"]}


def test_hvg_prefers_variable_genes_over_highly_expressed_flat_ones():
    rng = np.random.default_rng(2)
    n = 200
    counts = np.c_[
        np.full(n, 400.0),  # abundant and flat
        rng.poisson(50, n),  # Poisson noise only
        np.where(rng.random(n) < 0.5, 5, 150),  # bimodal: truly variable
        rng.poisson(49, n),
    ]
    log = normalise(counts)
    top = GeneSelector(method="hvg", n=1).fit(log, ["flat", "p1", "bimodal", "p2"]).genes_
    assert top == ["bimodal"]
    assert GeneSelector(n=1).fit(log, ["flat", "p1", "bimodal", "p2"]).genes_ == ["flat"]


def test_explicit_panel_and_errors():
    x = np.ones((3, 3))
    sel = GeneSelector(genes=["c", "a"]).fit(x, ["a", "b", "c"])
    assert sel.index_.tolist() == [2, 0]
    with pytest.raises(InputError, match=r"1 of 2 requested genes are not in the data.*zz"):
        GeneSelector(genes=["a", "zz"]).fit(x, ["a", "b", "c"])
    with pytest.raises(InputError, match="not fitted"):
        GeneSelector().transform(x)
    with pytest.raises(InputError, match="unknown gene selection"):
        GeneSelector(method="random")
    with pytest.raises(InputError, match="3 genes but 2 names"):
        GeneSelector().fit(x, ["a", "b"])
