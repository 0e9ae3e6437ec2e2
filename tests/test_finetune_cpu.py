"""Cheap fine-tuning of ``cnn_aux`` (issue 20, item 3): frozen early stages, stain
augmentation of the training batches, mixed precision that is harmless on the CPU."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from histoexpr.errors import InputError
from histoexpr.features.encoders import (
    ENCODERS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    EncoderCard,
    build_network,
    get_card,
    register_card,
)
from histoexpr.features.encoders.tuning import FreezableModuleDict
from histoexpr.models import CNNAux
from histoexpr.models.cnn_aux import _Collate
from histoexpr.models.torch_base import encoder_stages, freeze_stages, stain_jitter

pytestmark = pytest.mark.usefixtures("torch_one_thread")

#: a tiny timm EfficientNet (random weights, batch norms) under a card of its own
TINY = "test_efficientnet_finetune_cpu"


@pytest.fixture(scope="module")
def tiny_card():
    if TINY not in ENCODERS:
        register_card(EncoderCard(
            name=TINY, builder="timm", model_id="test_efficientnet", weights="none (test)",
            input_size=32, mean=IMAGENET_MEAN, std=IMAGENET_STD, embed_dim=256, mpp=1.0,
            licence="Apache-2.0", gated=False, n_params_m=0.1))
    return get_card(TINY)


@pytest.fixture(scope="module")
def patches():
    """40 stained-looking 32 px patches whose brightness drives two genes."""
    rng = np.random.default_rng(0)
    b = rng.uniform(80, 200, 40)
    tint = np.array([1.0, 0.75, 0.9])
    x = np.clip(b[:, None, None, None] * tint + rng.normal(0, 12, (40, 32, 32, 3)), 0, 255)
    y = np.c_[b, -b + rng.normal(0, 5, 40)]
    return x.astype(np.uint8), y, np.c_[b ** 0.5, rng.normal(size=40)]


def _model(**kw):
    kw = {"encoder": "toy", "max_epochs": 2, "batch_size": 8, "patience": 5,
          "device": "cpu", **kw}
    return CNNAux(**kw)


def _backbone_state(model):
    return {k: v.clone() for k, v in model.network_["backbone"].state_dict().items()}


def test_stages_of_a_timm_efficientnet_and_of_a_plain_network(tiny_card):
    net, _ = build_network(tiny_card, pretrained=False)
    labels = [label for label, _ in encoder_stages(net)]
    assert labels[:3] == ["stem", "blocks.0", "blocks.1"] and len(labels) == 6
    names = [n for _, group in encoder_stages(net) for n in group]
    assert sorted(names) == sorted(n for n, _ in net.named_parameters())  # a partition
    toy, _ = build_network(get_card("toy"), pretrained=False)
    assert [label for label, _ in encoder_stages(toy)] == ["stem", "2"]
    assert freeze_stages(net, 2) == ["stem", "blocks.0", "blocks.1"]
    frozen = {n for n, p in net.named_parameters() if not p.requires_grad}
    assert frozen == {n for _, g in encoder_stages(net)[:3] for n in g}


def test_frozen_stages_do_not_change_while_the_rest_trains(tiny_card, patches):
    x, y, y_aux = patches
    start = build_network(tiny_card, pretrained=False)[0].state_dict()  # what fit starts from
    m = _model(encoder=TINY, freeze_stages=2).fit(x, y, y_aux=y_aux)
    assert isinstance(m.network_, FreezableModuleDict)
    assert m.frozen_stages_ == ["stem", "blocks.0", "blocks.1"] and m.n_stages_ == 6
    after = _backbone_state(m)
    frozen = {n for _, g in encoder_stages(m.network_["backbone"])[:3] for n in g}
    frozen_bn = {n.rsplit(".", 1)[0] for n in frozen if n.endswith("bn1.weight")}
    for k, v in after.items():
        module = k.rsplit(".", 1)[0]
        if k in frozen or module in frozen_bn:  # weights and running statistics kept
            assert torch.equal(v, start[k]), k
    assert any(not torch.equal(after[k], start[k]) for k in after if k not in frozen
               and k.endswith("weight")), "the unfrozen stages should train"
    # the heads always train; predictions stay finite
    assert np.isfinite(m.predict(x)).all()


def test_freeze_all_trains_only_the_heads(patches):
    x, y, y_aux = patches
    m = _model(freeze_stages="all").fit(x, y, y_aux=y_aux)
    base, _ = build_network(get_card("toy"), pretrained=False)
    for k, v in base.state_dict().items():
        assert torch.equal(m.network_["backbone"].state_dict()[k], v)
    none = _model(freeze_stages="none", max_epochs=1).fit(x, y, y_aux=y_aux)
    assert none.frozen_stages_ == [] and none.n_stages_ == 2


def test_default_is_unchanged_by_the_new_options(patches):
    x, y, y_aux = patches
    plain = _model().fit(x, y, y_aux=y_aux).predict(x)
    explicit = _model(freeze_stages=0, stain_augment=None, amp=False).fit(x, y, y_aux=y_aux)
    np.testing.assert_array_equal(explicit.predict(x), plain)


def test_stain_augmentation_changes_the_batches_and_repeats_with_a_seed(patches):
    x = patches[0]
    card = get_card("toy")
    plain = _Collate(card, x, torch.zeros(40, 1), torch.zeros(40, 1))
    stained = _Collate(card, x, torch.zeros(40, 1), torch.zeros(40, 1), "light")
    rows = list(range(8))
    torch.manual_seed(0)
    a = stained(rows)[0]
    b = stained(rows)[0]  # the next batch: a fresh draw
    torch.manual_seed(0)
    assert torch.equal(stained(rows)[0], a)
    assert not torch.equal(a, plain(rows)[0]) and not torch.equal(a, b)
    strong = stain_jitter(x[:4], "strong")
    assert strong.dtype == np.uint8 and strong.shape == x[:4].shape


def test_a_seeded_fit_with_stain_augmentation_repeats_exactly(patches):
    x, y, y_aux = patches
    one = _model(stain_augment="light").fit(x, y, y_aux=y_aux)
    two = _model(stain_augment="light").fit(x, y, y_aux=y_aux)
    np.testing.assert_array_equal(one.predict(x), two.predict(x))
    plain = _model().fit(x, y, y_aux=y_aux)
    assert not np.array_equal(one.predict(x), plain.predict(x))
    assert [h["train_loss"] for h in one.history_] != [h["train_loss"] for h in plain.history_]


def test_stain_augmentation_runs_in_dataloader_workers(patches):
    x, y, y_aux = patches
    one = _model(stain_augment="strong", num_workers=1, max_epochs=1).fit(x, y, y_aux=y_aux)
    two = _model(stain_augment="strong", num_workers=1, max_epochs=1).fit(x, y, y_aux=y_aux)
    np.testing.assert_array_equal(one.predict(x), two.predict(x))
    plain = _model(num_workers=1, max_epochs=1).fit(x, y, y_aux=y_aux)
    assert not np.array_equal(one.predict(x), plain.predict(x))


def test_amp_on_the_cpu_is_ignored_and_harmless(patches, caplog):
    x, y, y_aux = patches
    with caplog.at_level(logging.INFO, logger="histoexpr.models.torch_base"):
        amp = _model(amp=True, freeze_stages="stem").fit(x, y, y_aux=y_aux)
    assert any("amp=True is ignored" in r.getMessage() for r in caplog.records)
    plain = _model(freeze_stages="stem").fit(x, y, y_aux=y_aux)
    np.testing.assert_array_equal(amp.predict(x), plain.predict(x))
    np.testing.assert_array_equal(amp.predict_aux(x), plain.predict_aux(x))
    assert amp.network_["backbone"][0].weight.is_contiguous()


def test_amp_does_not_change_the_checkpoint_identity(tmp_path, patches):
    x, y, y_aux = patches
    _model(max_epochs=1, checkpoint_dir=str(tmp_path)).fit(x, y, y_aux=y_aux)
    resumed = _model(amp=True, checkpoint_dir=str(tmp_path)).fit(x, y, y_aux=y_aux)
    assert [h["epoch"] for h in resumed.history_] == [1, 2]


@pytest.mark.parametrize("kw, match", [
    ({"freeze_stages": "half"}, "freeze_stages"),
    ({"freeze_stages": 2}, "0 to 1 for this encoder"),
    ({"freeze_stages": -1}, "freeze_stages"),
    ({"freeze_stages": True}, "freeze_stages"),
    ({"stain_augment": "medium"}, "stain_augment.*light, strong"),
])
def test_unknown_values_are_input_errors(patches, kw, match):
    x, y, y_aux = patches
    with pytest.raises(InputError, match=match):
        _model(max_epochs=1, **kw).fit(x, y, y_aux=y_aux)


@pytest.mark.gpu
def test_amp_on_cuda_trains_and_predicts(patches):
    x, y, y_aux = patches
    amp = _model(device="cuda", amp=True, freeze_stages="stem").fit(x, y, y_aux=y_aux)
    assert all(np.isfinite(h["train_loss"]) for h in amp.history_)
    assert amp.network_["backbone"][0].weight.is_contiguous()  # back from channels-last
    assert next(amp.network_.parameters()).device.type == "cpu"
    pred = amp.predict(x)
    assert pred.shape == (40, 2) and pred.dtype == np.float32 and np.isfinite(pred).all()
