from __future__ import annotations

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from histoexpr.cohort import grouped_splits
from histoexpr.models import MODELS, RidgeProbe


def _synthetic_st(rng, n_sections=4, spots=120, d=64, n_signal=5, n_noise=5):
    """Spots whose first genes are a linear function of the image features (plus noise) and
    whose last genes are pure noise."""
    feats = rng.normal(size=(n_sections * spots, d))
    w = rng.normal(size=(d, n_signal))
    signal = feats @ w + 0.3 * rng.normal(size=(len(feats), n_signal)) * np.abs(feats @ w).std()
    noise = rng.normal(size=(len(feats), n_noise))
    sections = np.repeat([f"S{i}" for i in range(n_sections)], spots)
    patients = np.repeat([f"P{i}" for i in range(n_sections)], spots)
    return feats, np.c_[signal, noise], patients, sections


def test_ridge_recovers_a_linear_signal_on_held_out_patients():
    rng = np.random.default_rng(0)
    x, y, patients, sections = _synthetic_st(rng)
    r = []
    for tr, te in grouped_splits(patients, sections, k=4).folds:
        pred = MODELS.get("ridge")(n_components=256).fit(x[tr], y[tr]).predict(x[te])
        r.append([np.corrcoef(pred[:, g], y[te, g])[0, 1] for g in range(y.shape[1])])
    r = np.mean(r, axis=0)
    assert (r[:5] > 0.9).all(), r
    assert np.abs(r[5:]).max() < 0.2, r


def test_ridge_chooses_alpha_per_gene_and_checks_fitting():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 30))
    y = np.c_[x[:, 0], rng.normal(size=60)]  # a clean gene and a noise gene
    model = RidgeProbe(n_components=8).fit(x, y)
    assert model.pipeline_.named_steps["pca"].n_components_ == 8
    assert model.alpha_.shape == (2,) and model.alpha_[1] > model.alpha_[0]
    assert model.predict(x).dtype == np.float32
    with pytest.raises(NotFittedError):
        RidgeProbe().predict(x)


def test_a_unit_silent_in_training_cannot_swamp_a_test_prediction():
    # sparse CNN-like features: unit 0 fires (barely) in one training row only
    rng = np.random.default_rng(2)
    x = np.abs(rng.normal(size=(100, 20)))
    x[:, 0] = 0.0
    x[0, 0] = 1e-3
    y = x[:, 1:3] @ [[1.0, 0.0], [0.0, 1.0]]
    test = x[:5].copy()
    test[:, 0] = 1.0  # fires at test time: z ~ 10^4 unclipped
    clipped = RidgeProbe(n_components=10).fit(x, y).predict(test)
    unclipped = RidgeProbe(n_components=10, clip=None).fit(x, y).predict(test)
    truth = test[:, 1:3]
    assert np.abs(clipped - truth).max() < 1.0
    assert np.abs(unclipped - truth).max() > 5 * np.abs(clipped - truth).max()


def test_ensemble_averages_its_members_and_plugs_into_both_levels():
    from histoexpr.errors import InputError
    from histoexpr.models import EnsembleModel, build_model, model_names

    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 6))
    y = x[:, :3] @ rng.normal(size=(3, 2)) + 0.1 * rng.normal(size=(80, 2))
    m = build_model("ensemble", "spot", {"members": ["ridge", "mlp"], "weights": [3, 1],
                                         "member_params": {"mlp": {"max_epochs": 5}}},
                    seed=4, device="cpu")
    m.fit(x, y)
    parts = [mem.predict(x) for mem in m.members_]
    assert np.allclose(m.predict(x), 0.75 * parts[0] + 0.25 * parts[1], atol=1e-5)
    assert m.members_[1].random_state == 4 and m.members_[1].max_epochs == 5
    assert "ensemble" in model_names("spot") and "ensemble" in model_names("slide")
    with pytest.raises(InputError, match="reads patches"):
        EnsembleModel(members=("ridge", "cnn_aux")).fit(x, y)
    with pytest.raises(InputError, match="at least two"):
        EnsembleModel(members=("ridge",)).fit(x, y)


def test_ridge_on_augmented_copies_chooses_its_penalty_on_distinct_rows():
    """Stain-augmented copies of the training rows: leave-one-out over them would see each
    held-out row's copies; the penalty is chosen on the first block and scaled by the
    copies, so exact copies give the un-augmented model back."""
    from histoexpr.models import fit_model

    rng = np.random.default_rng(0)
    x = rng.normal(size=(150, 30))
    y = x[:, :3] @ rng.normal(size=(3, 4)) + rng.normal(size=(150, 4))
    plain = RidgeProbe().fit(x, y)
    xx, yy = np.concatenate([x] * 3), np.concatenate([y] * 3)
    copies = fit_model(RidgeProbe(), xx, yy, copies=3)
    assert np.allclose(copies.alpha_, 3 * plain.alpha_)
    np.testing.assert_allclose(copies.predict(x), plain.predict(x), atol=1e-4)
    naive = RidgeProbe().fit(xx, yy)  # copies unknown: the penalty is too weak
    assert np.abs(naive.predict(x) - plain.predict(x)).max() > 1e-2
    one = RidgeProbe().fit(xx, yy[:, 0], copies=3)  # one gene: a scalar penalty
    np.testing.assert_allclose(one.predict(x), plain.predict(x)[:, 0], atol=1e-3)
    with pytest.raises(ValueError, match="not 2 blocks"):
        RidgeProbe().fit(xx[:-1], yy[:-1], copies=2)
