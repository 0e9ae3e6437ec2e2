from __future__ import annotations

import pickle

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from histoexpr.errors import InputError
from histoexpr.models import MODELS, MeanPredictor, MLPHead

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _linear_task(seed=0, n=900, d=32, n_signal=4, n_noise=4):
    """Features, genes that are a noisy linear function of them, then pure-noise genes, and
    one section label per row."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    signal = x @ rng.normal(size=(d, n_signal))
    signal += 0.2 * signal.std() * rng.normal(size=signal.shape)
    y = np.c_[signal, rng.normal(size=(n, n_noise))]
    return x, y, np.repeat([f"S{i}" for i in range(6)], n // 6)


@pytest.fixture(scope="module")
def fitted():
    x, y, groups = _linear_task()
    test = groups == "S5"
    model = MLPHead(hidden=(64,), lr=3e-3, max_epochs=200, patience=8, device="cpu")
    model.fit(x[~test], y[~test], groups=groups[~test])
    return model, x[test], y[test]


def test_mlp_recovers_a_linear_signal_on_held_out_sections(fitted):
    model, x, y = fitted
    pred = model.predict(x)
    assert pred.shape == y.shape and pred.dtype == np.float32
    r = np.array([np.corrcoef(pred[:, g], y[:, g])[0, 1] for g in range(y.shape[1])])
    assert (r[:4] > 0.9).all(), r
    assert np.abs(r[4:]).max() < 0.25, r


def test_mlp_stops_early_and_keeps_the_best_epoch(fitted):
    model = fitted[0]
    assert model.n_epochs_ < model.max_epochs
    assert model.n_epochs_ == len(model.history_) == model.best_epoch_ + model.patience
    assert model.history_[0]["val_loss"] > model.history_[model.best_epoch_ - 1]["val_loss"]


def test_mlp_pickles_and_is_reproducible(fitted):
    model, x, _ = fitted
    pred = model.predict(x)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).predict(x), pred)
    np.testing.assert_array_equal(joblib.load(_dump(model)).predict(x), pred)
    again = clone(model).fit(*_train_part())
    np.testing.assert_array_equal(again.predict(x), pred)


def _train_part():
    x, y, groups = _linear_task()
    keep = groups != "S5"
    return x[keep], y[keep], groups[keep]


def _dump(model):
    import io

    buf = io.BytesIO()
    joblib.dump(model, buf)
    buf.seek(0)
    return buf


def test_mlp_checks_fitting_shapes_and_1d_targets():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 5))
    with pytest.raises(NotFittedError):
        MLPHead().predict(x)
    y = np.c_[x[:, 0], np.full(60, 3.0)]  # a constant gene comes back as its constant
    model = MLPHead(hidden=(), max_epochs=5, device="cpu").fit(x, y)
    assert np.allclose(model.predict(x)[:, 1], 3.0)
    one = MLPHead(hidden=(8,), max_epochs=3, device="cpu").fit(x, x[:, 0])
    assert one.predict(x).shape == (60,)
    with pytest.raises(InputError):
        one.predict(x[:, :4])


def test_mean_predictor_returns_the_training_means():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(30, 3)) + np.array([1.0, 2.0, 3.0])
    model = MeanPredictor().fit(x, y)
    xt = np.full((5, 4), np.nan)  # the content of X is ignored
    pred = model.predict(xt)
    assert pred.dtype == np.float32 and pred.shape == (5, 3)
    np.testing.assert_allclose(pred, np.tile(y.mean(axis=0), (5, 1)), rtol=1e-6)
    assert MeanPredictor().fit(x, y[:, 0]).predict(xt).shape == (5,)
    with pytest.raises(InputError):
        model.predict(np.zeros((5, 3)))
    with pytest.raises(NotFittedError):
        MeanPredictor().predict(xt)


def test_models_are_registered_with_their_input():
    assert MODELS.get("mlp") is MLPHead and MODELS.get("mean") is MeanPredictor
    assert MLPHead.model_tags.input == MeanPredictor.model_tags.input == "features"
    assert MODELS.get("cnn_aux").model_tags.input == "patches"
    assert MLPHead().get_params()["hidden"] == (256,)
