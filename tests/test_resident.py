"""Training data held on the device (histoexpr.resident, issue 21): the same batches as a
DataLoader, so cnn_aux, hist2rna and the MLP fit to the same weights either way; stain
augmentation and oversized data keep the DataLoader."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from histoexpr import resident  # noqa: E402
from histoexpr.models import MODELS, CNNAux  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _fit_both(monkeypatch, make, fit):
    out = []
    for cap in (0, resident.RESIDENT_MAX_BYTES):  # 0: nothing is resident, a DataLoader
        monkeypatch.setattr(resident, "RESIDENT_MAX_BYTES", cap)
        model = make()
        fit(model)
        out.append(model)
    return out


def test_resident_batches_match_a_shuffling_dataloader():
    from torch.utils.data import DataLoader, TensorDataset

    x = torch.arange(23)
    torch.manual_seed(5)
    want = [b[0].tolist() for _ in range(2) for b in DataLoader(TensorDataset(x),
                                                                batch_size=4, shuffle=True)]
    torch.manual_seed(5)
    got = [b[0].tolist() for _ in range(2) for b in resident.ResidentBatches(
        x, batch_size=4, shuffle=True)]
    assert got == want and sorted(i for b in got[:6] for i in b) == list(range(23))
    assert len(resident.ResidentBatches(x, batch_size=4, drop_last=True)) == 5


def test_cnn_aux_fits_the_same_weights(monkeypatch):
    rng = np.random.default_rng(0)
    b = rng.uniform(40, 215, 40)
    x = np.clip(b[:, None, None, None] + rng.normal(0, 10, (40, 32, 32, 3)), 0, 255)
    y = np.c_[b, -b]
    loader, held = _fit_both(monkeypatch, lambda: CNNAux(encoder="toy", max_epochs=3,
                                                         batch_size=8, device="cpu"),
                             lambda m: m.fit(x.astype(np.uint8), y, y_aux=np.c_[b, b]))
    assert [h["train_loss"] for h in loader.history_] == [h["train_loss"] for h in
                                                          held.history_]
    for (k, a), (_, c) in zip(loader.network_.state_dict().items(),
                              held.network_.state_dict().items()):
        assert torch.equal(a, c), k


@pytest.mark.parametrize("name", ["hist2rna", "mlp"])
def test_heads_on_pooled_features_fit_alike(monkeypatch, name):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(120, 32)).astype(np.float32)
    y = x[:, :3] @ rng.normal(size=(3, 4)) + rng.normal(scale=0.3, size=(120, 4))
    xin = x[:, None, :] if name == "hist2rna" else x
    a, b = _fit_both(monkeypatch, lambda: MODELS.get(name)(device="cpu", max_epochs=4),
                     lambda m: m.fit(xin, y))
    np.testing.assert_allclose([h["val_loss"] for h in a.history_],
                               [h["val_loss"] for h in b.history_], rtol=1e-4)
    np.testing.assert_allclose(a.predict(xin), b.predict(xin), rtol=1e-3, atol=1e-4)


def test_stain_augmentation_keeps_the_dataloader():
    model = CNNAux(encoder="toy", device="cpu", stain_augment="light", batch_size=4)
    x = np.zeros((8, 16, 16, 3), np.uint8)
    train, _, _ = model._loaders(x, torch.zeros(8, 1), torch.zeros(8, 0), np.arange(6),
                                 np.arange(6, 8), card=None, stain="light",
                                 device=torch.device("cpu"))
    assert isinstance(train, torch.utils.data.DataLoader)
