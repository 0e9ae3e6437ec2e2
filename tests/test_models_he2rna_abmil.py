"""HE2RNA (supertiles, masked top-K) and gated attention MIL on the synthetic bulk cohort."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from histoexpr.datasets.synthetic_bulk import synthetic_bulk
from histoexpr.errors import InputError
from histoexpr.features.bags import Bag, load_bags, supertiles
from histoexpr.models import MODELS
from histoexpr.models.abmil import ABMIL
from histoexpr.models.he2rna import HE2RNA
from histoexpr.models.pooling import topk_mean

pytestmark = pytest.mark.usefixtures("torch_one_thread")

N_TRAIN = 120


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """180 slides (40-120 tiles, 5 signal genes, 5 noise genes): 120 to fit, 60 to test."""
    syn = synthetic_bulk(tmp_path_factory.mktemp("bulk"), n_slides=180, n_genes=10,
                         n_signal=5, seed=0)
    bags = load_bags(syn.features_dir).bags
    y = np.log1p(pd.read_csv(syn.expression_path, index_col=0)).to_numpy()
    assert [b.slide for b in bags] == syn.slides
    return syn, bags[:N_TRAIN], y[:N_TRAIN], bags[N_TRAIN:], y[N_TRAIN:]


@pytest.fixture(scope="module")
def he2rna(cohort):
    _, bags, y, _, _ = cohort
    # HE2RNA's architecture and K's; a larger step and a short patience keep the test quick
    return HE2RNA(hidden=(64,), lr=3e-3, patience=5, max_epochs=60, device="cpu").fit(bags, y)


@pytest.fixture(scope="module")
def abmil(cohort):
    _, bags, y, _, _ = cohort
    return ABMIL(patience=5, device="cpu").fit(bags, y)


def _pearson(pred, y):
    return np.array([np.corrcoef(pred[:, g], y[:, g])[0, 1] for g in range(y.shape[1])])


def _signal_and_noise_r(model, cohort):
    syn, _, _, bags, y = cohort
    pred = model.predict(bags)
    assert pred.shape == y.shape and pred.dtype == np.float32
    r = _pearson(pred, y)
    n = len(syn.signal_genes)
    return r[:n], r[n:]


# -- signal recovery (measured, seeds 0-4: HE2RNA 0.83-0.88, ABMIL 0.91-0.95, slide-mean
#    ridge 0.83-0.88; noise genes' mean |r| 0.04-0.17; attention AUROC 0.97-0.98) ------------
def test_he2rna_predicts_the_signal_genes_of_held_out_slides(he2rna, cohort):
    sig, noise = _signal_and_noise_r(he2rna, cohort)
    assert sig.mean() > 0.75 and sig.min() > 0.65, sig
    assert np.abs(noise).mean() < 0.25, noise
    assert he2rna.n_epochs_ < he2rna.max_epochs  # stopped early


def test_abmil_predicts_the_signal_genes_of_held_out_slides(abmil, cohort):
    sig, noise = _signal_and_noise_r(abmil, cohort)
    assert sig.mean() > 0.85 and sig.min() > 0.8, sig
    assert np.abs(noise).mean() < 0.25, noise


def test_abmil_attention_ranks_the_signal_tiles_first(abmil, cohort):
    syn, _, _, bags, _ = cohort
    weights = abmil.tile_scores(bags)
    assert [len(w) for w in weights] == [len(b) for b in bags]
    np.testing.assert_allclose([w.sum() for w in weights], 1.0, rtol=1e-5)
    assert all(w.dtype == np.float32 and (w >= 0).all() for w in weights)
    auroc = [roc_auc_score(syn.signal_tiles[b.slide], w) for b, w in zip(bags, weights)]
    assert np.mean(auroc) > 0.9, np.mean(auroc)


@pytest.mark.parametrize("name", ["he2rna", "abmil"])
def test_padding_never_changes_a_prediction(name, request, cohort):
    model = request.getfixturevalue(name)
    bags = cohort[3][:6]  # different sizes: each is padded in the batch of six
    alone = np.concatenate([model.predict([b]) for b in bags])
    np.testing.assert_allclose(model.predict(bags), alone, rtol=1e-5, atol=1e-5)
    if name == "abmil":
        for b, w in zip(bags, model.tile_scores(bags)):
            np.testing.assert_allclose(model.tile_scores([b])[0], w, rtol=1e-5, atol=1e-7)


# -- HE2RNA's masked top-K ------------------------------------------------------------------
def test_topk_mean_ignores_padding_and_caps_k_at_the_bag_size():
    import torch

    s = torch.tensor([[[-1.0, 0.0], [-3.0, 4.0], [-2.0, 1.0], [0.0, 0.0]],
                      [[-5.0, 2.0], [-4.0, 7.0], [0.0, 0.0], [0.0, 0.0]]])
    m = torch.tensor([[True, True, True, False], [True, True, False, False]])
    # padding scores 0, above every real score of gene 0: it must not count
    assert topk_mean(s, m, 1).tolist() == [[-1.0, 4.0], [-4.0, 7.0]]
    assert topk_mean(s, m, 2).tolist() == [[-1.5, 2.5], [-4.5, 4.5]]
    np.testing.assert_allclose(topk_mean(s, m, 100), [[-2.0, 5 / 3], [-4.5, 4.5]], rtol=1e-6)
    with pytest.raises(InputError):
        topk_mean(s, m, 0)


def _tiny(seed=0, n=20, d=5):
    rng = np.random.default_rng(seed)
    sizes = [1, 2, 3, 7, 12] * (n // 5) + [9] * (n % 5)  # some below K, some above n_supertiles
    bags = [Bag(f"s{i}", rng.normal(size=(k, d)), rng.integers(0, 4000, size=(k, 2)))
            for i, k in enumerate(sizes)]
    y = np.c_[[b.features[:, 0].max() for b in bags], rng.normal(size=n), np.full(n, 2.0)]
    return bags, y


def _top_k_mean(p, k):
    return np.sort(p, axis=0)[::-1][: min(k, len(p))].mean(axis=0)


def test_he2rna_with_one_k_predicts_the_top_k_mean_of_its_supertiles():
    bags, y = _tiny()
    model = HE2RNA(n_supertiles=5, hidden=(8,), ks=(2,), lr=1e-2, max_epochs=3, batch_size=8,
                   device="cpu").fit(bags, y)
    per_supertile = model.supertile_predictions(bags)
    assert [len(p) for p in per_supertile] == [min(5, len(b)) for b in bags]
    pred = model.predict(bags)
    by_hand = np.stack([_top_k_mean(p, 2) for p in per_supertile])
    np.testing.assert_allclose(pred, by_hand, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pred[:, 2], 2.0)  # a constant gene stays so
    # tile scores: each tile gets its supertile's gene-mean of standardised predictions
    scale = np.where(model.y_scale_ > 0, model.y_scale_, 1.0)
    for b, p, t in zip(bags, per_supertile, model.tile_scores(bags)):
        _, labels = supertiles(b.coords, b.features, n_clusters=5)
        z = ((p - model.y_mean_) / scale).mean(axis=1)
        np.testing.assert_allclose(t, z[labels], rtol=1e-4, atol=1e-5)
    one_gene = model.tile_scores(bags[:4], genes=[0])
    assert [len(t) for t in one_gene] == [len(b) for b in bags[:4]]
    with pytest.raises(InputError, match="genes"):
        model.tile_scores(bags, genes=[3])


def test_he2rna_prediction_averages_the_top_k_means_over_ks():
    bags, y = _tiny(2)
    ks = (1, 3, 100)
    model = HE2RNA(n_supertiles=5, hidden=(8,), ks=ks, lr=1e-2, max_epochs=2, batch_size=8,
                   device="cpu").fit(bags, y)
    by_hand = np.stack([np.mean([_top_k_mean(p, k) for k in ks], axis=0)
                        for p in model.supertile_predictions(bags)])
    np.testing.assert_allclose(model.predict(bags), by_hand, rtol=1e-5, atol=1e-5)


# -- the estimator contract -----------------------------------------------------------------
@pytest.mark.parametrize("cls, name", [(HE2RNA, "he2rna"), (ABMIL, "abmil")])
def test_params_clone_registry_and_reproducibility(cls, name):
    model = MODELS.create(name, lr=2e-3, max_epochs=3, random_state=7, device="cpu")
    assert type(model) is cls and cls.model_tags.input == "bags"
    params = model.get_params()
    assert params["lr"] == 2e-3 and params["random_state"] == 7
    for p in ("lr", "weight_decay", "batch_size", "max_epochs", "patience", "val_fraction",
              "max_tiles", "random_state", "device"):
        assert p in params
    assert clone(model).get_params() == params
    bags, y = _tiny(1)
    a = clone(model).fit(bags, y).predict(bags)
    np.testing.assert_array_equal(clone(model).fit(bags, y).predict(bags), a)
    other = clone(model).set_params(random_state=8).fit(bags, y).predict(bags)
    assert not np.array_equal(other, a)


@pytest.mark.parametrize("name", ["he2rna", "abmil"])
def test_pickle_round_trip_predicts_the_same(name, request, cohort):
    model = request.getfixturevalue(name)
    bags = cohort[3][:10]
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(bags), model.predict(bags))
    for a, b in zip(again.tile_scores(bags), model.tile_scores(bags)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["he2rna", "abmil"])
def test_bad_inputs_raise_helpful_errors(name, request, cohort):
    model = request.getfixturevalue(name)
    other = [np.ones((5, 7), np.float32)]  # features of another encoder
    with pytest.raises(InputError, match="another encoder"):
        model.predict(other)
    with pytest.raises(InputError, match="another encoder"):
        model.tile_scores(other)
    with pytest.raises(NotFittedError):
        clone(model).predict(cohort[3][:2])
    bags, y = _tiny()
    with pytest.raises(InputError, match="n_bags"):
        clone(model).fit(bags, y[:-1])


@pytest.mark.parametrize("model, match", [
    (HE2RNA(ks=()), "ks"), (HE2RNA(ks=(0, 5)), "ks"), (HE2RNA(ks=(1.5,)), "ks"),
    (HE2RNA(n_supertiles=0), "n_supertiles"), (HE2RNA(dropout=1.0), "dropout"),
    (HE2RNA(hidden=(64, 0)), "hidden"),
    (ABMIL(hidden=0), "hidden"), (ABMIL(dropout=-0.1), "dropout"),
    (ABMIL(max_tiles=0), "max_tiles"),
])
def test_bad_parameters_raise_on_fit(model, match):
    bags, y = _tiny()
    with pytest.raises(InputError, match=match):
        model.fit(bags, y)
