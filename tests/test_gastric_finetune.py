from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from histoexpr.errors import InputError
from histoexpr.features import build_encoder, embed_to_h5, save_features
from histoexpr.features.bags import Bag, find_slide, load_bag, minmax_normalise, read_bag_patches
from histoexpr.features.encoders import build_network, get_card
from histoexpr.models import MODELS
from histoexpr.models.gastric_finetune import (
    GastricFinetune,
    encoder_blocks,
    freeze_early_blocks,
    prepare_patches,
)
from histoexpr.models.nets import FinetuneNet
from histoexpr.slide import open_slide

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _slides(n: int, seed: int, n_patches: int = 4):
    """``n`` slides of noisy grey 32x32 patches; brightness drives gene 0 (and -gene 1)."""
    rng = np.random.default_rng(seed)
    b = rng.uniform(40, 215, n)
    X = [np.clip(b[i] + rng.normal(0, 25, (n_patches, 32, 32, 3)), 0, 255).astype(np.uint8)
         for i in range(n)]
    return X, np.c_[b, -0.5 * b + rng.normal(0, 10, n)]


def _model(**kw):
    kw = {"encoder": "toy", "pretrained": False, "minmax": False, "n_patches": 4,
          "batch_size": 16, "lr": 3e-3, "max_epochs": 12, "patience": 12, "device": "cpu",
          **kw}
    return GastricFinetune(**kw)


@pytest.fixture(scope="module")
def data():
    return _slides(24, 0), _slides(12, 1)


@pytest.fixture(scope="module")
def fitted(data):
    (X, y), _ = data
    groups = np.repeat(np.arange(12), 2)  # two slides per patient
    return _model().fit(X, y, groups=groups)


# -- the model ------------------------------------------------------------------------------
def test_fit_predict_shapes_and_learns_brightness_on_held_out_slides(fitted, data):
    _, (Xt, yt) = data
    assert fitted.n_epochs_ == 12 and 1 <= fitted.best_epoch_ <= 12
    assert fitted.history_[-1]["train_loss"] < fitted.history_[0]["train_loss"]
    pred = fitted.predict(Xt)
    assert pred.shape == (12, 2) and pred.dtype == np.float32
    assert np.corrcoef(pred[:, 0], yt[:, 0])[0, 1] > 0.8
    assert np.corrcoef(pred[:, 1], yt[:, 1])[0, 1] > 0.5
    assert (fitted.n_frozen_blocks_, fitted.n_blocks_) == (1, 2)  # freeze=0.75 of 2 blocks


def test_slide_prediction_is_the_mean_of_its_patches(fitted, data):
    _, (Xt, _) = data
    X = [Xt[0][:1], np.concatenate([Xt[1], Xt[2]])]  # 1 and 8 patches
    per_patch = fitted.predict_patches(X)
    assert [p.shape for p in per_patch] == [(1, 2), (8, 2)]
    np.testing.assert_allclose(fitted.predict(X), np.stack([p.mean(0) for p in per_patch]),
                               rtol=1e-5)
    one = fitted.predict(np.stack([Xt[3], Xt[4]]))  # a 5-D array is a list of slides
    assert one.shape == (2, 2)


def test_pickle_round_trip_clone_and_registry(fitted, data):
    _, (Xt, _) = data
    back = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(back.predict(Xt), fitted.predict(Xt))
    params = fitted.get_params()
    assert params["hidden"] == (256,) and params["freeze"] == 0.75
    c = clone(fitted)
    assert c.get_params() == params and not hasattr(c, "network_")
    m = MODELS.create("gastric_simplified", encoder="toy", pretrained=False)
    assert isinstance(m, GastricFinetune) and m.model_tags.input == "patch_bags"
    assert GastricFinetune().encoder == "resnet50" and GastricFinetune().pretrained


def test_frozen_blocks_do_not_change_and_the_rest_trains(data):
    (X, y), _ = data
    init, _ = build_network(get_card("toy"), pretrained=False)
    m = _model(freeze=0.5, max_epochs=2).fit(X, y)
    after = m.network_.backbone.state_dict()
    assert torch.equal(after["0.weight"], init.state_dict()["0.weight"])  # frozen block
    assert not torch.equal(after["2.weight"], init.state_dict()["2.weight"])
    head_only = _model(freeze=1.0, max_epochs=2).fit(X, y)
    for k, v in init.state_dict().items():
        assert torch.equal(head_only.network_.backbone.state_dict()[k], v)
    assert _model(freeze=0.0, max_epochs=1).fit(X, y).n_frozen_blocks_ == 0


def test_freezing_follows_timm_blocks_and_keeps_frozen_batch_norm_in_eval():
    import timm

    net = timm.create_model("resnet18", pretrained=False, num_classes=0)
    blocks = encoder_blocks(net)
    assert len(blocks) == 9 and blocks[0][0] == "conv1.weight"  # stem + 8 basic blocks
    assert blocks[-1][0].startswith("layer4.1.")
    assert freeze_early_blocks(net, 0.5) == (4, 9)  # stem, layer1.*, layer2.0
    assert not net.conv1.weight.requires_grad and not net.layer2[0].conv1.weight.requires_grad
    assert net.layer2[1].conv1.weight.requires_grad
    model = FinetuneNet(net, 512, (8,), 0.1, 2).train()
    assert not net.bn1.training and not net.layer2[0].bn1.training
    assert net.layer2[1].bn1.training and model.head.training
    with pytest.raises(InputError, match="fraction"):
        freeze_early_blocks(net, 1.5)


def test_checkpoint_resume_ends_like_an_uninterrupted_fit(data, tmp_path):
    (X, y), _ = data
    whole = _model(max_epochs=4).fit(X, y)
    _model(max_epochs=2, checkpoint_dir=str(tmp_path)).fit(X, y)
    resumed = _model(max_epochs=4, checkpoint_dir=str(tmp_path)).fit(X, y)
    assert [h["epoch"] for h in resumed.history_] == [1, 2, 3, 4]
    np.testing.assert_allclose(resumed.predict(X), whole.predict(X), rtol=1e-5, atol=1e-4)


def test_minmax_normalise_values():
    p = np.array([[[[10, 60, 110]]], [[[7, 7, 7]]]], np.uint8)
    out = minmax_normalise(p)
    assert out.dtype == np.float32 and out.shape == p.shape
    np.testing.assert_array_equal(out.reshape(2, 3), [[0, 0.5, 1], [0, 0, 0]])  # constant → 0
    rng = np.random.default_rng(0)
    x = rng.integers(30, 200, (5, 8, 8, 3), dtype=np.uint8)
    out = minmax_normalise(x)
    assert out.min(axis=(1, 2, 3)).tolist() == [0.0] * 5
    assert out.max(axis=(1, 2, 3)).tolist() == [1.0] * 5
    np.testing.assert_array_equal(minmax_normalise(x[0]), out[0])  # one (H, W, 3) patch
    with pytest.raises(InputError):
        minmax_normalise(np.zeros((4, 4)))


def test_minmax_inputs_ignore_patch_brightness_and_contrast():
    card = get_card("toy")
    x = np.random.default_rng(0).integers(0, 100, (3, 20, 20, 3)).astype(np.uint8)
    brighter = (2 * x.astype(int) + 30).astype(np.uint8)
    a = prepare_patches(card, x, minmax=True)
    np.testing.assert_allclose(a, prepare_patches(card, brighter, minmax=True), atol=1e-5)
    assert a.shape == (3, 3, 32, 32)
    assert not torch.allclose(prepare_patches(card, x, minmax=False),
                              prepare_patches(card, brighter, minmax=False))


def test_minmax_model_fits(data):
    (X, y), _ = data
    m = _model(minmax=True, max_epochs=1, hidden=(), n_patches=None).fit(X, y)
    assert m.predict(X[:3]).shape == (3, 2)


def test_bad_inputs(fitted, data):
    (X, y), _ = data
    with pytest.raises(NotFittedError):
        _model().predict(X)
    with pytest.raises(InputError, match="read_bag_patches"):
        _model().fit([Bag("s", np.zeros((2, 4)), np.zeros((2, 2)))] * 4, y[:4])
    with pytest.raises(InputError, match="uint8"):
        _model().fit([x.astype(np.float32) for x in X], y)
    with pytest.raises(InputError, match="N >= 1"):
        fitted.predict([X[0][:0]])
    with pytest.raises(InputError, match="n_bags"):
        _model().fit(X, y[:-1])
    with pytest.raises(InputError, match="at least 3"):
        _model().fit(X[:2], y[:2])
    with pytest.raises(InputError, match="differ in size"):
        _model().fit([*X[:-1], X[-1][:, :16, :16]], y)
    with pytest.raises(InputError, match="NaN"):
        _model().fit(X, np.where(np.arange(24)[:, None] == 3, np.nan, y))
    for bad in ({"freeze": 1.5}, {"n_patches": 0}, {"dropout": 1.0}, {"hidden": (0,)}):
        with pytest.raises(InputError):
            _model(**bad).fit(X, y)
    with pytest.raises(InputError, match="empty"):
        fitted.predict([])


# -- reading a bag's patches back from its slide --------------------------------------------
@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """A 512x384 pyramidal TIFF at 0.5 µm/px and its toy feature file (12 tiles of 32 px at
    1 µm/px, i.e. 64 level-0 pixels)."""
    from histoexpr.datasets.synthetic import write_pyramidal_tiff

    d = tmp_path_factory.mktemp("bag_patches")
    rgb = np.random.default_rng(0).integers(0, 256, (384, 512, 3), dtype=np.uint8)
    (d / "slides").mkdir()
    tif = write_pyramidal_tiff(d / "slides" / "s1.tif", rgb, mpp=0.5, downsamples=(1, 4),
                               tile=128, compression="zlib")
    coords = np.array([[x, y] for y in range(0, 320, 96) for x in range(0, 448, 128)])
    with open_slide(tif) as s:
        h5, status = embed_to_h5(d / "features" / "s1.h5", s, coords, build_encoder("toy"),
                                 size_px=32, mpp=1.0)
    assert status == "done"
    return tif, h5


def test_read_bag_patches_returns_what_the_slide_reader_reads(embedded):
    tif, h5 = embedded
    bag = load_bag(h5, select="random", n=5, seed=1)
    patches = read_bag_patches(bag)
    assert patches.shape == (5, 32, 32, 3) and patches.dtype == np.uint8
    with open_slide(tif) as s:
        for i, (x, y) in enumerate(bag.coords):
            np.testing.assert_array_equal(patches[i], s.read_at_mpp(int(x), int(y), 32, 1.0))
        np.testing.assert_array_equal(read_bag_patches(bag, slide=s), patches)
        half = read_bag_patches(bag, size_px=16)  # same tissue square, coarser pixels
        assert half.shape == (5, 16, 16, 3)
        np.testing.assert_array_equal(half[0], s.read_at_mpp(*map(int, bag.coords[0]), 16, 2.0))


def test_read_bag_patches_finds_a_moved_slide_in_slides_dir(embedded, tmp_path):
    tif, h5 = embedded
    bag = load_bag(h5)
    expected = read_bag_patches(bag)
    moved_h5 = tmp_path / "s1.h5"
    shutil.copy(h5, moved_h5)
    gone = tmp_path / "gone"
    gone.mkdir()
    (tmp_path / "new").mkdir()
    shutil.copy(tif, tmp_path / "new" / "s1.tif")
    # point the copy's slide_path at a folder that no longer holds the slide
    import h5py

    with h5py.File(moved_h5, "r+") as f:
        f.attrs["slide_path"] = str(gone / "s1.tif")
    moved = load_bag(moved_h5)
    with pytest.raises(InputError, match=r"s1\.h5.*--slides DIR"):
        read_bag_patches(moved)
    np.testing.assert_array_equal(read_bag_patches(moved, slides_dir=tmp_path / "new"),
                                  expected)
    with pytest.raises(InputError, match="nor in"):
        read_bag_patches(moved, slides_dir=gone)
    assert find_slide(gone / "s1.tiff", slides_dir=tmp_path / "new").name == "s1.tif"


def test_read_bag_patches_errors_name_the_feature_file(tmp_path):
    coords, feats = np.array([[0, 0]]), np.zeros((1, 4), np.float32)
    no_path = save_features(tmp_path / "a.h5", coords, feats,
                            {"tile_spec": {"size_px": 32, "mpp": 1.0}})
    with pytest.raises(InputError, match=r"a\.h5: the feature file records no slide path"):
        read_bag_patches(load_bag(no_path))
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"not a slide")
    unreadable = save_features(tmp_path / "b.h5", coords, feats, {
        "tile_spec": {"size_px": 32, "mpp": 1.0}, "slide_path": str(junk)})
    with pytest.raises(InputError, match=r"b\.h5: cannot read its slide .*--slides DIR"):
        read_bag_patches(load_bag(unreadable))
    no_spec = save_features(tmp_path / "c.h5", coords, feats, {"slide_path": str(junk)})
    with pytest.raises(InputError, match="no tile spec"):
        read_bag_patches(load_bag(no_spec))
    with pytest.raises(InputError, match="not read from a feature file"):
        read_bag_patches(Bag("x", feats, coords))


def test_read_bag_patches_of_a_plain_image_uses_the_given_mpp(tmp_path):
    from PIL import Image

    rgb = np.random.default_rng(1).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    png = tmp_path / "p.png"
    Image.fromarray(rgb).save(png)
    coords = np.array([[0, 0], [64, 64]])
    h5 = save_features(tmp_path / "p.h5", coords, np.zeros((2, 4), np.float32), {
        "tile_spec": {"size_px": 32, "mpp": 1.0}, "slide_path": str(png)})
    with pytest.raises(InputError, match="cannot read its slide"):
        read_bag_patches(load_bag(h5))  # a PNG records no pixel size
    patches = read_bag_patches(load_bag(h5), slide_mpp=0.5)
    with open_slide(png, mpp=0.5) as s:
        np.testing.assert_array_equal(patches, s.read_at_mpp_batch(coords, 32, 1.0))
