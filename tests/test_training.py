from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from histoexpr.errors import InputError
from histoexpr.training import (
    EarlyStopping,
    fit_loop,
    inner_split,
    seed_everything,
    standardise,
    target_scaling,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("frac", [0.1, 0.3, 0.6])
def test_inner_split_by_groups_never_puts_a_group_on_both_sides(seed, frac):
    rng = np.random.default_rng(seed)
    groups = rng.choice([f"P{i}" for i in range(7)], size=200)
    tr, va = inner_split(200, frac, random_state=seed, groups=groups)
    assert len(tr) and len(va)
    assert not set(groups[tr]) & set(groups[va])
    assert np.array_equal(np.sort(np.r_[tr, va]), np.arange(200))


def test_inner_split_plain_and_single_group(caplog):
    tr, va = inner_split(50, 0.2, random_state=1)
    assert (len(tr), len(va)) == (40, 10) and not set(tr) & set(va)
    assert np.array_equal(inner_split(50, 0.2, random_state=1)[1], va)  # seeded
    with caplog.at_level(logging.WARNING, logger="histoexpr.training"):
        tr1, va1 = inner_split(50, 0.2, random_state=1, groups=["only"] * 50)
    assert "one group" in caplog.text and (len(tr1), len(va1)) == (40, 10)
    for bad in (0.0, 1.0):
        with pytest.raises(InputError):
            inner_split(50, bad)
    with pytest.raises(InputError):
        inner_split(50, 0.2, groups=["a"] * 49)
    with pytest.raises(InputError):
        inner_split(1, 0.5)


def test_early_stopping_counts_and_round_trips():
    stop = EarlyStopping(patience=2, min_delta=0.05)
    assert [stop.step(v) for v in (1.0, 0.97, 0.9, 0.89, 0.88)] == [True, False, True, False,
                                                                       False]
    assert stop.should_stop and stop.best == 0.9 and stop.best_epoch == 3
    other = EarlyStopping(patience=2, min_delta=0.05)
    other.load_state_dict(stop.state_dict())
    assert other.should_stop and other.best_epoch == 3
    never = EarlyStopping(patience=None)
    for v in range(10):
        never.step(float(v))
    assert not never.should_stop and never.best == 0.0


def test_target_scaling_handles_constant_genes():
    y = np.c_[np.arange(4.0), np.full(4, 7.0)]
    mean, scale = target_scaling(y)
    assert np.allclose(mean, [1.5, 7.0]) and scale[1] == 0.0 and scale[0] > 0
    z = standardise(y, mean, scale)
    assert z.dtype == np.float32 and np.allclose(z[:, 1], 0) and np.isclose(z[:, 0].std(), 1)


def _setup(seed=0, hidden=8):
    """A small regression task with dropout (uses the global RNG) and a plateau scheduler."""
    g = torch.Generator().manual_seed(42)
    x = torch.randn(96, 5, generator=g)
    y = (x @ torch.randn(5, 2, generator=g)).tanh()
    seed_everything(seed)
    net = torch.nn.Sequential(torch.nn.Linear(5, hidden), torch.nn.ReLU(),
                              torch.nn.Dropout(0.2), torch.nn.Linear(hidden, 2))
    data = torch.utils.data.TensorDataset(x[:72], y[:72])
    train = torch.utils.data.DataLoader(data, batch_size=16, shuffle=True)
    val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[72:], y[72:]),
                                      batch_size=32)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=1)
    return net, train, val, opt, sched


def _mse(model, batch):
    return torch.nn.functional.mse_loss(model(batch[0]), batch[1])


def _strip(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def test_fit_loop_resume_continues_and_matches_an_uninterrupted_run(tmp_path):
    net, train, val, opt, sched = _setup()
    full = fit_loop(net, train, val, optimizer=opt, loss_fn=_mse, max_epochs=4,
                    scheduler=sched, patience=10, checkpoint_dir=tmp_path / "a")
    ref = {k: v.clone() for k, v in net.state_dict().items()}

    net, train, val, opt, sched = _setup()
    part = fit_loop(net, train, val, optimizer=opt, loss_fn=_mse, max_epochs=2,
                    scheduler=sched, patience=10, checkpoint_dir=tmp_path / "b")
    assert [h["epoch"] for h in part] == [1, 2]
    # a new process: different seed and initial weights, everything restored from last.pt
    net, train, val, opt, sched = _setup(seed=123)
    rest = fit_loop(net, train, val, optimizer=opt, loss_fn=_mse, max_epochs=4,
                    scheduler=sched, patience=10, checkpoint_dir=tmp_path / "b")
    assert [h["epoch"] for h in rest] == [1, 2, 3, 4]
    for a, b in zip(_strip(rest), _strip(full)):
        assert a == pytest.approx(b, rel=1e-6)
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, ref[k])
    # checkpoints are plain (weights_only) and written atomically
    last = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    best = torch.load(tmp_path / "b" / "best.pt", weights_only=True)
    assert last["epoch"] == 4 and len(last["history"]) == 4
    assert best["epoch"] == min(full, key=lambda h: h["val_loss"])["epoch"]
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["best.pt", "last.pt"]


def test_fit_loop_restores_the_best_weights_and_stops_early():
    net, train, val, opt, _ = _setup()
    for g in opt.param_groups:
        g["lr"] = 0.5  # too high: the validation loss wanders, early stopping kicks in
    hist = fit_loop(net, train, val, optimizer=opt, loss_fn=_mse, max_epochs=200, patience=3)
    assert len(hist) < 200
    best = min(hist, key=lambda h: h["val_loss"])
    assert best["epoch"] == len(hist) - 3  # patience 3: stopped three epochs after the best
    net.eval()
    with torch.no_grad():
        now = sum(float(_mse(net, b)) * len(b[0]) for b in val) / 24
    assert now == pytest.approx(best["val_loss"], rel=1e-5)
    assert set(hist[0]) == {"epoch", "train_loss", "val_loss", "lr", "seconds"}


def test_fit_loop_refuses_a_checkpoint_of_another_run(tmp_path):
    net, train, val, opt, _ = _setup()
    fit_loop(net, train, val, optimizer=opt, loss_fn=_mse, max_epochs=1,
             checkpoint_dir=tmp_path, meta={"lr": 0.05})
    net, train, val, opt, _ = _setup()
    with pytest.raises(InputError, match="different run"):
        fit_loop(net, train, val, optimizer=opt, loss_fn=_mse, max_epochs=2,
                 checkpoint_dir=tmp_path, meta={"lr": 0.1})
    hist = fit_loop(net, train, val, optimizer=opt, loss_fn=_mse, max_epochs=2,
                    checkpoint_dir=tmp_path, meta={"lr": 0.1}, resume=False)
    assert [h["epoch"] for h in hist] == [1, 2]


def test_fit_loop_logs_each_epoch(caplog):
    net, train, val, opt, _ = _setup()
    with caplog.at_level(logging.INFO, logger="histoexpr.training"):
        fit_loop(net, train, val, optimizer=opt, loss_fn=_mse, max_epochs=3)
    assert sum("epoch" in r.getMessage() for r in caplog.records) == 3
    with pytest.raises(InputError):
        fit_loop(net, train, val, optimizer=opt, loss_fn=_mse, max_epochs=0)
