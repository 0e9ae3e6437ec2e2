"""Cost records: CPU/wall clocks, the power x time estimate, env overrides, sums, fake GPUs."""

from __future__ import annotations

import json
import os
import sys
import time
import types

import pytest

from histoexpr.cost import (
    DEFAULT_CPU_WATTS_PER_CORE,
    DEFAULT_GPU_WATTS,
    CostMeter,
    estimate_energy,
    sum_costs,
)
from histoexpr.errors import InputError

KEYS = {
    "wall_s", "cpu_s", "cores_busy", "gpu_s", "gpu_name", "device", "energy_wh", "energy_kwh",
    "energy_method", "cpu_watts_per_core", "gpu_watts",
}  # fmt: skip


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HISTOEXPR_CPU_WATTS_PER_CORE", raising=False)
    monkeypatch.delenv("HISTOEXPR_GPU_WATTS", raising=False)
    monkeypatch.setitem(sys.modules, "pynvml", None)  # NVML absent unless a test fakes it


def _busy(cpu_seconds: float) -> None:
    """Spin until this process has used ``cpu_seconds`` of CPU (robust on a loaded machine)."""
    start, give_up = time.process_time(), time.perf_counter() + 3
    while time.process_time() - start < cpu_seconds and time.perf_counter() < give_up:
        pass


def test_busy_loop_uses_cpu_within_cores() -> None:
    with CostMeter(device="cpu") as m:
        _busy(0.2)
    r = m.record()
    assert set(r) == KEYS
    assert r["cpu_s"] > 0.1
    assert r["wall_s"] >= 0.1
    assert r["cpu_s"] <= r["wall_s"] * (os.cpu_count() or 1) + 0.05
    assert r["cores_busy"] == pytest.approx(r["cpu_s"] / r["wall_s"])
    assert r["energy_wh"] == pytest.approx(DEFAULT_CPU_WATTS_PER_CORE * r["cpu_s"] / 3600)
    assert r["energy_kwh"] == pytest.approx(r["energy_wh"] / 1000)


def test_sleep_grows_wall_not_cpu() -> None:
    m = CostMeter().start()
    time.sleep(0.3)
    r = m.stop()
    assert r["wall_s"] >= 0.3
    assert r["cpu_s"] < 0.1
    assert r["cores_busy"] < 0.34
    assert r == m.record()


def test_seed_example_arithmetic() -> None:
    # hist2RNA: 4 GPUs x 8.48 h x 300 W = 10.176 kWh; 1 GPU x 0.66 h ~ 0.2 kWh
    e = estimate_energy(cpu_s=0, gpu_s=4 * 8.48 * 3600, gpu_watts=300)
    assert e["energy_kwh"] == pytest.approx(10.176)
    assert e["energy_wh"] == pytest.approx(10176)
    assert e["energy_method"] == "power x time"
    assert estimate_energy(cpu_s=0, gpu_s=0.66 * 3600, gpu_watts=300)["energy_kwh"] == (
        pytest.approx(0.198)
    )
    both = estimate_energy(cpu_s=3600, gpu_s=3600, cpu_watts_per_core=5, gpu_watts=100)
    assert both["energy_wh"] == pytest.approx(105)


@pytest.mark.parametrize(
    ("name", "watts"),
    [("NVIDIA H100 80GB HBM3", 700), ("NVIDIA A100-SXM4-40GB", 400), ("NVIDIA A10", 150),
     ("NVIDIA L40S", 350), ("Tesla T4", 70), ("NVIDIA GeForce RTX 4090", 450),
     ("Mystery GPU", DEFAULT_GPU_WATTS)],
)  # fmt: skip
def test_gpu_table(name: str, watts: float) -> None:
    assert estimate_energy(cpu_s=0, gpu_s=1, gpu_name=name)["gpu_watts"] == watts


def test_no_gpu_means_no_gpu_watts() -> None:
    e = estimate_energy(cpu_s=10)
    assert e["gpu_watts"] is None and e["gpu_name"] is None


def test_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HISTOEXPR_CPU_WATTS_PER_CORE", "20")
    monkeypatch.setenv("HISTOEXPR_GPU_WATTS", "250")
    e = estimate_energy(cpu_s=3600, gpu_s=3600, gpu_name="NVIDIA H100")
    assert (e["cpu_watts_per_core"], e["gpu_watts"]) == (20.0, 250.0)
    assert e["energy_wh"] == pytest.approx(270)
    # an explicit argument beats the env var
    assert estimate_energy(cpu_s=1, cpu_watts_per_core=3)["cpu_watts_per_core"] == 3.0
    with CostMeter(device="cpu", cpu_watts_per_core=7) as m:
        pass
    assert m.record()["cpu_watts_per_core"] == 7.0


@pytest.mark.parametrize("raw", ["abc", "-5", "nan"])
def test_bad_env_value(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("HISTOEXPR_CPU_WATTS_PER_CORE", raw)
    with pytest.raises(InputError, match="HISTOEXPR_CPU_WATTS_PER_CORE"):
        estimate_energy(cpu_s=1)


def test_negative_time_rejected() -> None:
    with pytest.raises(InputError):
        estimate_energy(cpu_s=-1)


def test_sum_costs() -> None:
    a = {"wall_s": 10.0, "cpu_s": 20.0, "gpu_s": 0.0, "energy_wh": 1.0, "energy_kwh": 0.001,
         "device": "cpu", "energy_method": "power x time", "cpu_watts_per_core": 10.0,
         "gpu_watts": None, "gpu_name": None}  # fmt: skip
    b = dict(a, wall_s=30.0, cpu_s=20.0, gpu_s=30.0, energy_wh=3.0, energy_kwh=0.003,
             device="cuda:0", gpu_watts=300.0, gpu_name="NVIDIA H100")  # fmt: skip
    t = sum_costs([a, b])
    assert (t["wall_s"], t["cpu_s"], t["gpu_s"]) == (40.0, 40.0, 30.0)
    assert t["energy_wh"] == pytest.approx(4.0) and t["energy_kwh"] == pytest.approx(0.004)
    assert t["cores_busy"] == pytest.approx(1.0)
    assert t["device"] == "mixed" and t["energy_method"] == "power x time"
    assert t["gpu_watts"] == 300.0 and t["gpu_name"] == "NVIDIA H100"
    assert sum_costs([])["wall_s"] == 0.0


def test_record_is_json_ready() -> None:
    with CostMeter(device="cpu") as m:
        _busy(0.01)
    r = m.record()
    assert json.loads(json.dumps(r)) == r
    assert json.loads(json.dumps(sum_costs([r, r])))["wall_s"] == pytest.approx(2 * r["wall_s"])


def test_no_torch_means_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with CostMeter() as m:
        _busy(0.01)
    r = m.record()
    assert r["gpu_s"] == 0.0 and r["gpu_name"] is None and r["gpu_watts"] is None
    assert r["energy_method"] == "power x time" and r["device"] == "cpu"


def test_record_before_stop_and_stop_before_start() -> None:
    m = CostMeter()
    with pytest.raises(RuntimeError):
        m.record()
    with pytest.raises(RuntimeError):
        m.stop()


def _fake_torch(monkeypatch: pytest.MonkeyPatch, name: str = "NVIDIA H100 80GB HBM3") -> list:
    calls: list[str] = []
    cuda = types.SimpleNamespace(
        is_initialized=lambda: True,
        synchronize=lambda: calls.append("sync"),
        current_device=lambda: 0,
        get_device_name=lambda i: name,
    )
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    return calls


def test_fake_cuda_power_x_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_torch(monkeypatch)
    with CostMeter() as m:
        time.sleep(0.05)
    r = m.record()
    assert calls == ["sync", "sync"]
    assert r["gpu_s"] == r["wall_s"] and r["device"] == "cuda:0"
    assert r["gpu_watts"] == 700.0 and r["energy_method"] == "power x time"
    expected = (r["cpu_watts_per_core"] * r["cpu_s"] + 700.0 * r["gpu_s"]) / 3600
    assert r["energy_wh"] == pytest.approx(expected)
    # a block declared as CPU work does not count the GPU, even with CUDA up
    with CostMeter(device="cpu") as m:
        pass
    assert m.record()["gpu_s"] == 0.0


def test_fake_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_torch(monkeypatch)
    counter = iter([1_000_000, 1_036_000])  # mJ: 36 J used by the block
    nvml = types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetHandleByIndex=lambda i: f"gpu{i}",
        nvmlDeviceGetTotalEnergyConsumption=lambda h: next(counter),
        nvmlDeviceGetEnforcedPowerLimit=lambda h: 650_000,  # mW
    )
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    with CostMeter(device="cuda:0", cpu_watts_per_core=0) as m:
        pass
    r = m.record()
    assert r["energy_method"] == "nvml" and r["gpu_watts"] == 650.0
    assert r["energy_wh"] == pytest.approx(36 / 3600)
