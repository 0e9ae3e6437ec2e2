"""Task-tuned encoders (seed 002): two-step fine-tuning, the tuned folder, ``embed`` with it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from histoexpr.errors import InputError

torch = pytest.importorskip("torch")

from histoexpr.cli import main  # noqa: E402
from histoexpr.features import build_encoder  # noqa: E402
from histoexpr.features.encoders import (  # noqa: E402
    ENCODERS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    EncoderCard,
    build_network,
    get_card,
    load_state_dict,
    register_card,
    register_tuned_encoder,
)
from histoexpr.features.encoders.finetune import (  # noqa: E402
    finetune_encoder,
    read_labelled_patches,
)
from histoexpr.training import seed_everything  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")

FAST = {"head_epochs": 2, "full_epochs": 3, "head_lr": 0.05, "full_lr": 0.05, "batch_size": 8,
        "pretrained": False}
BN = "test-effnet-bn"  # a tiny timm CNN with batch norm, random weights


def _patches(n_per: int = 20, size: int = 16, seed: int = 0):
    """Three classes: red, blue, grey horizontal stripes (a texture)."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c, lab in enumerate(["red", "blue", "stripes"]):
        for _ in range(n_per):
            x = rng.normal(128, 25, (size, size, 3))
            if c == 0:
                x[..., 0] += 70
            elif c == 1:
                x[..., 2] += 70
            else:
                x[::2] -= 60
                x[1::2] += 40
            xs.append(np.clip(x, 0, 255).astype(np.uint8))
            ys.append(lab)
    return np.stack(xs), ys


def run(capsys, *argv):
    rc = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def data():
    return _patches()


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, data, torch_one_thread):
    x, y = data
    return finetune_encoder(x, y, encoder="toy", out=tmp_path_factory.mktemp("t") / "tissue",
                            **FAST)


def test_two_steps_learn_the_labels_and_shuffled_labels_do_not(tuned, data, tmp_path):
    assert tuned.card.name == "toy-tuned-tissue" and tuned.classes == ["blue", "red", "stripes"]
    m = tuned.metrics
    assert m["val_accuracy"] >= 0.9 and m["chance_accuracy"] < 0.4
    assert list(tuned.steps.index) == ["head", "full"]
    # the kept weights are step 2's best epoch: the final score is that epoch's
    assert m["val_accuracy"] == pytest.approx(tuned.steps.loc["full", "val_accuracy"])
    cm = np.array(m["confusion_matrix"]["matrix"])
    labels = json.loads((tuned.out / "labels.json").read_text())
    assert cm.sum() == labels["n_val"] == 12 and labels["counts"] == {
        "blue": 20, "red": 20, "stripes": 20}
    hist = pd.read_csv(tuned.out / "history.csv")
    assert hist["step"].tolist() == ["head"] * 2 + ["full"] * 3
    assert {"train_loss", "val_loss", "val_accuracy", "best"} <= set(hist.columns)
    assert hist.groupby("step")["best"].sum().tolist() == [1, 1]
    split = pd.read_csv(tuned.out / "split.csv")
    assert (split["set"] == "val").sum() == 12
    assert split[split["set"] == "val"]["label"].value_counts().tolist() == [4, 4, 4]
    # control: the same run on shuffled labels stays near chance
    x, y = data
    shuffled = list(np.random.default_rng(1).permutation(y))
    ctrl = finetune_encoder(x, shuffled, encoder="toy", out=tmp_path / "ctrl", **FAST)
    assert ctrl.metrics["val_accuracy"] <= 0.6


def test_step1_freezes_the_backbone_step2_trains_all_with_sgd_momentum(data, tmp_path):
    if BN not in ENCODERS:
        register_card(EncoderCard(
            name=BN, builder="timm", model_id="test_efficientnet", weights="none (test)",
            input_size=32, mean=IMAGENET_MEAN, std=IMAGENET_STD, embed_dim=256, mpp=1.0,
            licence="Apache-2.0", gated=False, n_params_m=0.1))
    x, y = data
    res = finetune_encoder(x, y, encoder=BN, out=tmp_path / "bn",
                           **{**FAST, "head_epochs": 1, "full_epochs": 1, "full_lr": 0.01})
    seed_everything(0)  # the base network is built right after seeding with `seed`
    base = build_network(get_card(BN), pretrained=False)[0].state_dict()
    head = torch.load(tmp_path / "bn/checkpoints/head/last.pt", weights_only=True)
    full = torch.load(tmp_path / "bn/checkpoints/full/last.pt", weights_only=True)
    # step 1: parameters and batch-norm statistics bit-identical; only the head trained
    after1 = {k[len("backbone."):]: v for k, v in head["model"].items()
              if k.startswith("backbone.")}
    assert after1.keys() == base.keys()
    assert all(torch.equal(after1[k], base[k]) for k in base)
    assert any("running_mean" in k for k in base)
    (g1,) = head["optimizer"]["param_groups"]
    assert len(g1["params"]) == 2 and g1["momentum"] == 0.9 and g1["lr"] == 0.05
    # step 2: SGD with momentum 0.9 over every parameter; the backbone moved
    (g2,) = full["optimizer"]["param_groups"]
    n_params = len(list(build_network(get_card(BN), pretrained=False)[0].parameters())) + 2
    assert len(g2["params"]) == n_params and g2["momentum"] == 0.9 and g2["lr"] == 0.01
    assert all("momentum_buffer" in s for s in full["optimizer"]["state"].values())
    tuned_w = load_state_dict(tmp_path / "bn/weights.safetensors")
    assert tuned_w.keys() == base.keys()
    assert not all(torch.equal(tuned_w[k], base[k]) for k in base)
    assert json.loads((tmp_path / "bn/finetune.json").read_text())["config"]["optimizer"] == "SGD"
    assert res.card.embed_dim == 256 and res.card.input_size == 32


def test_rerun_resumes_from_checkpoints_and_guards_the_config(data, tmp_path):
    x, y = data
    a, b = tmp_path / "a", tmp_path / "b"
    first = finetune_encoder(x, y, encoder="toy", out=a, name="t", **{**FAST, "full_epochs": 1})
    head_ckpt = (a / "checkpoints/head/last.pt").stat().st_mtime_ns
    more = finetune_encoder(x, y, encoder="toy", out=a, name="t", **{**FAST, "full_epochs": 2})
    once = finetune_encoder(x, y, encoder="toy", out=b, name="t", **{**FAST, "full_epochs": 2})
    assert len(first.history) == 3 and more.history["step"].tolist().count("full") == 2
    assert (a / "checkpoints/head/last.pt").stat().st_mtime_ns == head_ckpt  # step 1 not redone
    pd.testing.assert_frame_equal(more.history.drop(columns="seconds"),
                                  once.history.drop(columns="seconds"))
    wa, wb = load_state_dict(a / "weights.safetensors"), load_state_dict(b / "weights.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    with pytest.raises(InputError, match=r"another configuration.*head_lr"):
        finetune_encoder(x, y, encoder="toy", out=a, name="t", **{**FAST, "head_lr": 0.01})
    again = finetune_encoder(x, y, encoder="toy", out=a, name="t", overwrite=True,
                             **{**FAST, "head_lr": 0.01, "head_epochs": 1, "full_epochs": 1})
    assert len(again.history) == 2


def test_tuned_folder_is_an_encoder_with_its_own_weights(tuned, data, tmp_path, monkeypatch):
    x, _ = data
    enc = build_encoder(tuned.out)
    assert enc.card.name == "toy-tuned-tissue" and enc.weights.source == "registered"
    assert enc.card.builder == "tuned" and enc.card.model_id == "toy"
    tuned_f, raw_f = enc(x[:6]), build_encoder("toy")(x[:6])
    assert tuned_f.shape == raw_f.shape == (6, 16)
    assert np.abs(tuned_f - raw_f).max() > 1e-3
    net = build_network(get_card("toy"), pretrained=False)[0]
    net.load_state_dict(load_state_dict(tuned.out / "weights.safetensors"))
    with torch.inference_mode():
        manual = net.eval()(enc.preprocess(x[:6])).numpy()
    np.testing.assert_allclose(tuned_f, manual, rtol=1e-6)
    np.testing.assert_allclose(build_encoder("toy-tuned-tissue")(x[:6]), tuned_f)
    # random init of a tuned encoder = the base architecture's random init
    np.testing.assert_allclose(build_encoder(tuned.out, pretrained=False)(x[:6]), raw_f)
    # a tuned encoder tunes further; its card names its base, finetune.json the lineage
    again = finetune_encoder(x, data[1], encoder=tuned.out, out=tmp_path / "again",
                             **{**FAST, "head_epochs": 0, "full_epochs": 1})
    assert again.card.model_id == "toy-tuned-tissue" and build_encoder(again.out)(x[:2]).shape
    info = json.loads((again.out / "finetune.json").read_text())
    assert [c["name"] for c in info["base_cards"]] == ["toy", "toy-tuned-tissue"]
    # by name from the user weights folder, in a fresh name
    monkeypatch.setenv("HISTOEXPR_WEIGHTS", str(tmp_path))
    _, y = data
    finetune_encoder(x, y, encoder="toy", out=tmp_path / "toy-by-name", name="toy-by-name",
                     **{**FAST, "head_epochs": 0, "full_epochs": 1})
    assert "toy-by-name" not in ENCODERS
    assert build_encoder("toy-by-name").card.weights.startswith("fine-tuned from toy on 60")
    # another folder with the same name and other weights is refused
    finetune_encoder(x, y, encoder="toy", out=tmp_path / "other", name="toy-tuned-tissue",
                     **{**FAST, "head_epochs": 0, "full_epochs": 1, "seed": 5})
    with pytest.raises(InputError, match="already registered"):
        register_tuned_encoder(tmp_path / "other")


def _write_folder(root, data, n_per=8):
    x, y = data
    for lab in sorted(set(y)):
        (root / lab).mkdir(parents=True)
        idx = [i for i, v in enumerate(y) if v == lab][:n_per]
        for j, i in enumerate(idx):
            Image.fromarray(x[i]).save(root / lab / f"p{j}.png")
    return root


def test_cli_finetune_then_embed_records_the_tuned_name(capsys, data, synthetic_tiff, tmp_path):
    from histoexpr.features import load_features
    from histoexpr.features.bags import load_bags

    patches = _write_folder(tmp_path / "colours", data)
    out = tmp_path / "tuned"
    args = ["finetune", "--patches", patches, "--encoder", "toy", "--out", out,
            "--head-epochs", 1, "--full-epochs", 2, "--head-lr", 0.05, "--full-lr", 0.05,
            "--batch-size", 8, "--random-init", "--device", "cpu"]
    rc, text, _ = run(capsys, *args)
    assert rc == 0, text
    assert "toy-tuned-colours" in text and "all layers" in text and "val accuracy" in text
    assert f"--encoder {out}" in text.replace("\n", "")
    for f in ("weights.safetensors", "card.json", "labels.json", "history.csv",
              "finetune.json", "split.csv"):
        assert (out / f).is_file(), f
    card = json.loads((out / "card.json").read_text())
    assert card["weights"] == "fine-tuned from toy on 24 patches, 3 classes"
    assert run(capsys, *args)[0] == 0  # resumes: nothing left to train
    tiles = tmp_path / "tiles"
    assert run(capsys, "-q", "tile", synthetic_tiff, "--out", tiles, "--tile-size", "128")[0] == 0
    feats = tmp_path / "feats"
    rc, _, err = run(capsys, "-q", "embed", synthetic_tiff, "--coords", tiles / "128px_0.5mpp",
                     "--encoder", out, "--out", feats)
    assert rc == 0, err
    _, f, attrs = load_features(feats / "synthetic.h5")
    assert attrs["encoder"]["name"] == "toy-tuned-colours" and f.shape[1] == 16
    with pytest.raises(InputError, match=r"made with encoder .toy-tuned-colours."):
        load_bags(feats, encoder="toy")  # a model trained on raw features refuses them


def test_bad_inputs_say_what_is_wrong(capsys, data, tmp_path):
    x, y = data
    out = tmp_path / "o"
    with pytest.raises(InputError, match="one class only"):
        finetune_encoder(x[:5], ["a"] * 5, encoder="toy", out=out, **FAST)
    with pytest.raises(InputError, match=r"'b' \(1\) have fewer than 2 patches"):
        finetune_encoder(x[:6], ["a"] * 5 + ["b"], encoder="toy", out=out, **FAST)
    with pytest.raises(InputError, match="belongs to a registry encoder"):
        finetune_encoder(x, y, encoder="toy", out=out, name="resnet50", **FAST)
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, _, err = run(capsys, "finetune", "--patches", empty, "--encoder", "toy", "--out", out)
    assert rc == 2 and "no patches" in err and len(err.strip().splitlines()) == 1
    folder = _write_folder(tmp_path / "pf", data, n_per=3)
    (folder / "red" / "broken.png").write_bytes(b"not a png")
    rc, _, err = run(capsys, "finetune", "--patches", folder, "--encoder", "toy", "--out", out)
    assert rc == 2 and "broken.png" in err and "cannot read this image" in err
    csv = tmp_path / "patches.csv"
    pd.DataFrame({"file": ["pf/red/p0.png"], "label": ["red"]}).to_csv(csv, index=False)
    with pytest.raises(InputError, match=r"column.*path"):
        read_labelled_patches(csv)
    pd.DataFrame({"path": ["pf/red/p0.png", "pf/blue/p1.png"], "label": ["red", "blue"]}
                 ).to_csv(csv, index=False)
    paths, labels = read_labelled_patches(csv)
    assert paths[0] == tmp_path / "pf/red/p0.png" and paths[0].is_file()
    assert labels == ["red", "blue"]


def test_dense_layer_becomes_the_tuned_encoders_features(tmp_path):
    """Seed 002: a Dense layer before the softmax, its output the features."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 60, (24, 16, 16, 3), dtype=np.uint8)
    x[12:, ..., 0] += 150
    res = finetune_encoder(x, ["pale"] * 12 + ["red"] * 12, encoder="toy",
                           out=tmp_path / "dense", head_epochs=1, full_epochs=1,
                           head_lr=0.05, full_lr=0.05, batch_size=8, dense=12)
    assert res.card.embed_dim == 12 and "dense 12" in res.card.weights
    enc = build_encoder(str(tmp_path / "dense"))
    feats = enc(x[:4])
    assert feats.shape == (4, 12) and (feats >= 0).all()   # the dense layer's ReLU output
    with pytest.raises(InputError, match="dense must be a positive width"):
        finetune_encoder(x, ["pale"] * 12 + ["red"] * 12, encoder="toy",
                         out=tmp_path / "bad", dense=0)
