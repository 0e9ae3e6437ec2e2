from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError

from histoexpr.errors import InputError
from histoexpr.features.encoders import build_network, get_card
from histoexpr.features.encoders.tuning import dihedral
from histoexpr.models import MODELS, CNNAux
from histoexpr.models.cnn_aux import AuxLayer, find_aux_layer, forward_with_aux

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def patches():
    """48 noisy grey 32x32 patches whose brightness drives the main and auxiliary genes."""
    rng = np.random.default_rng(0)
    b = rng.uniform(40, 215, 48)
    x = np.clip(b[:, None, None, None] + rng.normal(0, 10, (48, 32, 32, 3)), 0, 255)
    y = np.c_[b, -0.5 * b + rng.normal(0, 5, 48)]
    y_aux = np.c_[b ** 2, rng.normal(size=48), b]
    return x.astype(np.uint8), y, y_aux


def _model(**kw):
    kw = {"encoder": "toy", "max_epochs": 6, "batch_size": 8, "patience": 20,
          "device": "cpu", **kw}
    return CNNAux(**kw)


@pytest.fixture(scope="module")
def fitted(patches):
    x, y, y_aux = patches
    return _model().fit(x, y, y_aux=y_aux)


def test_cnn_aux_trains_end_to_end_and_its_loss_falls(fitted, patches):
    x, y, _ = patches
    hist = fitted.history_
    assert [h["epoch"] for h in hist] == list(range(1, 7)) and fitted.n_epochs_ == 6
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert fitted.aux_weight == 40.0 and fitted.aux_layer_ == AuxLayer("3", 16, "nchw")
    pred, aux = fitted.predict(x), fitted.predict_aux(x)
    assert pred.shape == (48, 2) and aux.shape == (48, 3)
    assert pred.dtype == aux.dtype == np.float32
    assert np.corrcoef(pred[:, 0], y[:, 0])[0, 1] > 0.8  # brightness is easy to learn


def test_cnn_aux_uses_the_auxiliary_head(fitted, patches):
    x, y, y_aux = patches
    frozen = _model(lr=0.0, max_epochs=1).fit(x, y, y_aux=y_aux)  # the initial weights
    for k in ("weight", "bias"):
        assert not torch.allclose(frozen.network_["aux"].state_dict()[k],
                                  fitted.network_["aux"].state_dict()[k])
    for no_aux in (_model(aux_weight=0.0, max_epochs=1).fit(x, y, y_aux=y_aux),
                   _model(max_epochs=1).fit(x, y)):
        assert no_aux.aux_layer_ is None and "aux" not in no_aux.network_
        with pytest.raises(InputError, match="auxiliary"):
            no_aux.predict_aux(x)


def test_augmentation_is_training_only(fitted, patches):
    x = patches[0]
    assert fitted.augment
    np.testing.assert_array_equal(fitted.predict(x), fitted.predict(x))
    # and it is one of the 8 flips/rotations of each patch
    t = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    out = dihedral(t)
    for i in range(2):
        options = [torch.rot90(v, k, dims=(-2, -1)) for v in (t[i], t[i].flip(-1))
                   for k in range(4)]
        assert any(torch.equal(out[i], o) for o in options)


def test_cnn_aux_pickles_and_is_reproducible(fitted, patches):
    x, y, y_aux = patches
    pred = fitted.predict(x)
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.predict(x), pred)
    np.testing.assert_array_equal(again.predict_aux(x), fitted.predict_aux(x))
    np.testing.assert_array_equal(_model().fit(x, y, y_aux=y_aux).predict(x), pred)


def test_cnn_aux_resumes_from_its_checkpoint(tmp_path, fitted, patches):
    x, y, y_aux = patches
    _model(max_epochs=3, checkpoint_dir=str(tmp_path)).fit(x, y, y_aux=y_aux)
    resumed = _model(checkpoint_dir=str(tmp_path)).fit(x, y, y_aux=y_aux)
    assert [h["epoch"] for h in resumed.history_] == list(range(1, 7))
    np.testing.assert_allclose(resumed.predict(x), fitted.predict(x), rtol=1e-5, atol=1e-4)


def test_cnn_aux_checks_its_inputs(patches):
    x, y, y_aux = patches
    with pytest.raises(NotFittedError):
        _model().predict(x)
    with pytest.raises(InputError, match="aux_layer"):
        _model(aux_layer="no_such_layer").fit(x, y, y_aux=y_aux)
    with pytest.raises(InputError, match="uint8"):
        _model().fit(x.astype(np.float32), y)
    with pytest.raises(InputError):
        _model().fit(x, y[:10])
    one = _model(max_epochs=1, aux_layer="1").fit(x, y[:, 0], y_aux=y_aux)
    assert one.predict(x).shape == (48,) and one.aux_layer_ == AuxLayer("1", 8, "nchw")
    assert MODELS.get("cnn_aux") is CNNAux and CNNAux.model_tags.input == "patches"


def test_automatic_aux_layer_on_a_timm_efficientnet():
    net, _ = build_network(get_card("efficientnet_b0"), pretrained=False)
    aux = find_aux_layer(net, input_size=64, encoder="efficientnet_b0")
    assert aux == AuxLayer("blocks.4", 112, "nchw")  # feature_info[-2]: second-to-last stage
    net.eval()
    with torch.no_grad():
        feats, act = forward_with_aux(net, torch.zeros(1, 3, 64, 64), aux)
    assert tuple(feats.shape) == (1, 1280) and tuple(act.shape) == (1, 112)


def test_no_automatic_aux_layer_names_the_choices():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    with pytest.raises(InputError, match="aux_layer= one of: 0, 1"):
        find_aux_layer(net, input_size=8, encoder="flat")


def test_no_automatic_aux_layer_for_a_token_model():
    class Tokens(torch.nn.Module):  # a patch embedding, then token layers: a transformer
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Conv2d(3, 4, 4, stride=4)
            self.block = torch.nn.Linear(4, 4)

        def forward(self, x):
            return self.block(self.embed(x).flatten(2).transpose(1, 2)).mean(1)

    with pytest.raises(InputError, match="aux_layer= one of: embed, block"):
        find_aux_layer(Tokens(), input_size=8, encoder="tokens")
    assert find_aux_layer(Tokens(), input_size=8, aux_layer="block") == AuxLayer("block", 4, "nlc")


def test_literal_cross_entropy_loss_is_an_option():
    """BrST-Net's "cross-entropy" read literally: BCE on [0, 1]-scaled targets; predictions
    come back in the units of y, inside the training range."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)
    y = x.mean(axis=(1, 2, 3))[:, None] / 10.0
    m = CNNAux(encoder="toy", max_epochs=3, batch_size=8, device="cpu", loss="bce")
    m.fit(x, y, y_aux=np.c_[y, 2 * y])
    p, pa = m.predict(x), m.predict_aux(x)
    assert p.shape == (24, 1) and pa.shape == (24, 2)
    assert y.min() <= p.min() and p.max() <= y.max()
    assert np.isfinite([h["train_loss"] for h in m.history_]).all()
    with pytest.raises(InputError, match="unknown loss 'xent'"):
        CNNAux(encoder="toy", loss="xent").fit(x, y)
