"""Out-of-memory during the forward pass (issue 21): the batch halves and retries, the
smaller size is kept, rows stay in order and equal; one tile that does not fit is a clear
error; a compile that fails falls back to eager."""

from __future__ import annotations

import logging

import numpy as np
import pytest

pytest.importorskip("torch")

import torch

from histoexpr.features import build_encoder, embed
from histoexpr.features.forward import Forward, GPUMemoryError, is_oom, resolve_batch_size
from histoexpr.slide import ArraySlide


class _Limited(torch.nn.Module):
    """A network that raises CUDA's OOM for batches above ``limit`` (what a full GPU does)."""

    def __init__(self, inner, limit):
        super().__init__()
        self.inner, self.limit, self.calls = inner, limit, []

    def forward(self, x):
        self.calls.append(len(x))
        if len(x) > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner(x)


def test_forward_halves_on_oom_and_keeps_order(caplog):
    net = _Limited(lambda x: x * 3, limit=5)
    f = Forward(net, size=16)
    x = torch.arange(16.0)
    with caplog.at_level(logging.WARNING):
        y = f(x)
    assert y.tolist() == (x * 3).tolist()
    assert f.size == 4 and f.halvings == 2 and net.calls[:3] == [16, 8, 4]
    assert "batch size halved to 4" in caplog.text
    net.calls.clear()
    assert f(torch.arange(8.0)).tolist() == (torch.arange(8.0) * 3).tolist()
    assert net.calls == [4, 4]  # the smaller size is kept


def test_one_tile_that_does_not_fit_is_a_clear_error():
    f = Forward(_Limited(lambda x: x, limit=0), size=4)
    with pytest.raises(GPUMemoryError, match=r"single tile.*--device cpu"):
        f(torch.zeros(4))


def test_other_errors_pass_through():
    def bad(x):
        raise ValueError("shape mismatch")

    with pytest.raises(ValueError, match="shape mismatch"):
        Forward(bad, size=4)(torch.zeros(4))
    assert is_oom(RuntimeError("CUDA error: out of memory")) and not is_oom(ValueError("x"))


def test_embed_with_oom_gives_the_same_features():
    enc = build_encoder("toy")
    rng = np.random.default_rng(0)
    s = ArraySlide(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8), mpp=0.5)
    coords = np.array([[x, y] for x in range(0, 192, 32) for y in range(0, 192, 32)])
    want = embed(s, coords, enc, size_px=32, mpp=0.5, batch_size=36)
    limited = _Limited(enc.network, limit=7)
    enc.network = limited
    try:
        got = embed(s, coords, enc, size_px=32, mpp=0.5, batch_size=36)
    finally:
        enc.network = limited.inner
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert max(limited.calls[3:]) <= 7


def test_auto_batch_size():
    assert resolve_batch_size("auto", "cpu") == 64
    assert resolve_batch_size(None, "cuda") == 1024 and resolve_batch_size(8, "cuda") == 8
    with pytest.raises(ValueError, match="positive"):
        resolve_batch_size(0, "cpu")


def test_a_compile_that_fails_runs_eagerly(monkeypatch, caplog):
    enc = build_encoder("toy")
    s = ArraySlide(np.full((64, 64, 3), 120, np.uint8), mpp=0.5)

    def broken(net, **kw):
        def run(x):
            raise RuntimeError("backend='inductor' raised: no C compiler")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    want = embed(s, np.array([[0, 0], [32, 32]]), enc, size_px=32, mpp=0.5)
    with caplog.at_level(logging.WARNING):
        got = embed(s, np.array([[0, 0], [32, 32]]), enc, size_px=32, mpp=0.5, compile=True)
    np.testing.assert_array_equal(got, want)
    assert "torch.compile failed" in caplog.text


@pytest.mark.parametrize("slow", ["compiled", "eager"])
def test_compile_auto_keeps_the_faster(monkeypatch, caplog, slow):
    import time

    enc = build_encoder("toy")
    net = enc.network
    calls = {"compiled": 0}

    def fake_compile(module, **kw):
        def run(x):  # the compiled network: the wrapped one without the eager delay
            calls["compiled"] += 1
            if slow == "compiled":
                time.sleep(0.05)
            return module.inner(x)
        return run

    class SlowEager(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            if slow == "eager":
                time.sleep(0.05)
            return self.inner(x)

    monkeypatch.setattr(torch, "compile", fake_compile)
    enc.network = SlowEager(net)
    s = ArraySlide(np.full((128, 128, 3), 120, np.uint8), mpp=0.5)
    coords = np.array([[x, y] for x in range(0, 96, 32) for y in range(0, 96, 32)])
    with caplog.at_level(logging.INFO):
        got = embed(s, coords, enc, size_px=32, mpp=0.5, batch_size=4, compile="auto")
    keep = "eager" if slow == "compiled" else "compiled"
    assert f"keeping the {keep} network" in caplog.text
    n_batches = 3  # 9 tiles, batches of 4
    assert calls["compiled"] == (2 + n_batches if keep == "compiled" else 2)
    enc.network = net
    np.testing.assert_allclose(got, embed(s, coords, enc, size_px=32, mpp=0.5), rtol=1e-6)
