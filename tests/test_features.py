from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")

from histoexpr.errors import UnknownNameError
from histoexpr.features import (
    ENCODERS,
    WEIGHTS_ENV,
    WeightsError,
    build_encoder,
    get_card,
    resolve_weights,
)

#: cards whose networks are built in the smoke test; bigger ones are skipped by this cap
SIZE_CAP_M = 100.0


@pytest.mark.parametrize("name", ENCODERS.list())
def test_every_card_builds_and_gives_its_embedding_size(name):
    card = get_card(name)
    if card.n_params_m > SIZE_CAP_M:
        pytest.skip(f"{name}: {card.n_params_m:.0f}M parameters > {SIZE_CAP_M:.0f}M test cap")
    if card.builder == "hf":
        pytest.importorskip("transformers")
    enc = build_encoder(name, pretrained=False)
    tiles = np.random.default_rng(0).integers(0, 255, (2, 48, 48, 3), dtype=np.uint8)
    out = enc(tiles)  # 48 px tiles are resized to the card's input size
    assert out.shape == (2, card.embed_dim) and out.dtype == np.float32
    assert np.isfinite(out).all()


def test_toy_encoder_is_deterministic():
    tiles = np.random.default_rng(1).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    a, b = build_encoder("toy")(tiles), build_encoder("toy")(tiles)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[0], a[1])


def test_preprocess_follows_the_card():
    enc = build_encoder("toy")
    x = enc.preprocess(np.full((1, 64, 64, 3), 255, np.uint8))
    assert tuple(x.shape) == (1, 3, 32, 32)
    expect = (1 - np.array(enc.card.mean)) / np.array(enc.card.std)
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), expect, rtol=1e-5)
    with pytest.raises(Exception, match="uint8 tiles"):
        enc.preprocess(np.zeros((1, 8, 8, 3), np.float32))


def test_unknown_encoder_lists_the_valid_ones():
    with pytest.raises(UnknownNameError, match=r"efficientnet_lite0.*resnet50"):
        build_encoder("resnet5000")


def test_weight_resolution_order(tmp_path, monkeypatch):
    card = get_card("resnet50")
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    explicit = tmp_path / "mine.pth"
    explicit.write_bytes(b"x")
    folder = tmp_path / "weights"
    (folder / "resnet50").mkdir(parents=True)
    (folder / "resnet50" / "model.safetensors").write_bytes(b"x")
    monkeypatch.setenv(WEIGHTS_ENV, str(folder))
    assert resolve_weights(card, path=explicit).source == "explicit"
    r = resolve_weights(card)
    assert r.source == "weights folder" and r.path.name == "model.safetensors"
    (folder / "resnet50.pth").write_bytes(b"x")  # a top-level file beats the subfolder
    assert resolve_weights(card).path == folder / "resnet50.pth"
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "empty"))
    with pytest.raises(WeightsError, match=r"resnet50: no local weights.*resnet50\.safetensors"):
        resolve_weights(card)
    with pytest.raises(WeightsError, match="not found"):
        resolve_weights(card, path=tmp_path / "nope.pth")


def test_gated_weights_need_a_token_or_a_file(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")
    with pytest.raises(WeightsError, match=r"gated.*HF_TOKEN"):
        resolve_weights(get_card("uni"))


def test_weights_of_the_wrong_architecture_name_the_keys(tmp_path):
    import timm
    import torch

    wrong = tmp_path / "effnet.pth"
    torch.save(timm.create_model("efficientnet_b0", num_classes=0).state_dict(), wrong)
    with pytest.raises(WeightsError, match=r"do not fit densenet121.*missing keys.*unexpected"):
        build_encoder("densenet121", weights=wrong)


def test_right_weights_load_from_an_explicit_file(tmp_path):
    import timm
    import torch

    net = timm.create_model("densenet121", num_classes=0)
    path = tmp_path / "densenet121.pth"
    torch.save(net.state_dict(), path)
    enc = build_encoder("densenet121", weights=path)
    tiles = np.random.default_rng(2).integers(0, 255, (1, 224, 224, 3), dtype=np.uint8)
    with torch.inference_mode():
        ref = net.eval()(enc.preprocess(tiles)).numpy()
    np.testing.assert_allclose(enc(tiles), ref, rtol=1e-5, atol=1e-5)
    assert enc.weights.source == "explicit"


def test_random_init_encoder_is_the_same_network_every_time():
    import torch

    from histoexpr.features.encoders import ENCODERS, build_network

    card = ENCODERS.get("efficientnet_lite0")
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, _ = build_network(card, pretrained=False)
    b, _ = build_network(card, pretrained=False)
    assert torch.rand(1) == before  # the caller's RNG stream is untouched
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(pa, pb)


def test_timm_weights_in_the_hugging_face_cache_are_found_and_loaded(tmp_path, monkeypatch):
    import timm
    import torch
    from safetensors.torch import save_file

    from histoexpr.features.encoders import weights

    card = get_card("densenet121")
    assert weights.hub_repo(card) == "timm/densenet121.tv_in1k"
    assert weights.hub_repo(get_card("uni")) == "MahmoodLab/uni"
    assert weights.hub_repo(get_card("efficientnet_lite0")) is None
    net = timm.create_model("densenet121", num_classes=1000)  # with its classifier, as on the hub
    cached = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(cached))
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(weights, "_hf_cache", lambda c: cached if c is card else None)
    enc = build_encoder("densenet121")
    assert enc.weights.source == "hf cache"
    with torch.no_grad():
        for k, v in enc.network.state_dict().items():
            assert torch.equal(v, net.state_dict()[k]), k


def test_no_download_possible_names_every_way_to_supply_weights(monkeypatch):
    from histoexpr.features.encoders import weights

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(weights, "_hf_cache", lambda card: None)
    monkeypatch.setattr(weights, "hub_reachable", lambda: False)
    with pytest.raises(WeightsError) as e:
        resolve_weights(get_card("resnet101"))
    msg = str(e.value)
    for needle in ("resnet101: no local weights", "cannot be reached", "--weights PATH",
                   "resnet101.safetensors", "$HISTOEXPR_WEIGHTS (unset now)",
                   "timm/resnet101.tv_in1k", "--random-init"):
        assert needle in msg, msg
    assert "\n" not in msg


def test_the_weights_source_is_logged_once(caplog):
    import logging

    with caplog.at_level(logging.DEBUG, logger="histoexpr"):
        build_encoder("efficientnet_lite0")
    lines = [r for r in caplog.records if "weights from" in r.getMessage()
             and r.levelno >= logging.INFO]
    assert len(lines) == 1, [r.getMessage() for r in lines]


def test_intermediate_layer_as_an_encoder():
    """``NAME@LAYER``: the pooled output of an intermediate module (seed 002 compared the
    features of several layers); the card carries the layer's size."""
    from histoexpr.errors import InputError
    from histoexpr.features.encoders import build_encoder, get_card

    card = get_card("efficientnet_b0@blocks.4")
    assert card.embed_dim == 112 and card.builder == "layer"
    enc = build_encoder("efficientnet_b0@blocks.4", pretrained=False)
    x = np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    assert enc(x).shape == (2, 112)
    with pytest.raises(InputError, match=r"no layer 'blocks\.99'"):
        get_card("efficientnet_b0@blocks.99")


def test_tta_features_are_the_mean_over_the_eight_symmetries():
    import torch

    from histoexpr.features import build_encoder
    from histoexpr.features.extract import embed
    from histoexpr.slide import ArraySlide

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)
    s = ArraySlide(img, mpp=1.0)
    enc = build_encoder("toy")
    coords = np.array([[0, 0], [64, 64]])
    plain = embed(s, coords, enc, size_px=64, mpp=1.0, device="cpu")
    tta = embed(s, coords, enc, size_px=64, mpp=1.0, device="cpu", tta=True)
    tiles = enc.preprocess(s.read_at_mpp_batch(coords, 64, 1.0))
    with torch.inference_mode():
        views = [enc.network(torch.rot90(tiles, k, dims=(2, 3)).flip(3) if f else
                             torch.rot90(tiles, k, dims=(2, 3)))
                 for k in range(4) for f in (False, True)]
    assert np.allclose(tta, torch.stack(views).mean(0).numpy(), atol=1e-5)
    assert not np.allclose(tta, plain)
    # the average does not depend on the tile's orientation
    s2 = ArraySlide(np.rot90(img, 1).copy(), mpp=1.0)
    rotated = embed(s2, np.array([[0, 64]]), enc, size_px=64, mpp=1.0, device="cpu", tta=True)
    assert np.allclose(rotated[0], tta[0], atol=1e-4)
