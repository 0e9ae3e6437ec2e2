"""What a fit cost: wall time, CPU time, GPU time and an energy estimate.

:class:`CostMeter` times a block and gives the JSON-ready record a run stores; under it,
:func:`estimate_energy` computes power x time as hist2RNA compares training costs (GPUs x hours
x board watts / 1000 = kWh); :func:`sum_costs` adds records (a run sums its folds).

Energy: when a CUDA device was used and ``pynvml`` is importable, the GPU's (board-wide) energy
counter is read before and after (method ``"nvml"``), else power x time (``"power x time"``);
the CPU part is always ``cpu_watts_per_core`` x CPU seconds. Power, first found:
per core, argument > env ``HISTOEXPR_CPU_WATTS_PER_CORE`` > 10 W; per GPU, argument > env
``HISTOEXPR_GPU_WATTS`` > NVML power limit > :data:`GPU_WATTS` by name > 300 W (a V100).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import InputError

__all__ = ["DEFAULT_CPU_WATTS_PER_CORE", "DEFAULT_GPU_WATTS", "GPU_WATTS", "CostMeter",
           "estimate_energy", "sum_costs"]  # fmt: skip

#: Watts drawn per busy CPU core (a server core under load, package power / cores).
DEFAULT_CPU_WATTS_PER_CORE = 10.0
#: Board power assumed for an unknown GPU (Tesla V100, as in hist2RNA).
DEFAULT_GPU_WATTS = 300.0
#: Board power (TDP, W) of common GPUs, matched as a substring of the device name.
GPU_WATTS: dict[str, float] = {
    "H200": 700.0, "H100": 700.0, "A100": 400.0, "V100": 300.0, "P100": 250.0,
    "L40S": 350.0, "L40": 300.0, "A40": 300.0, "A10": 150.0, "L4": 72.0, "T4": 70.0,
    "A6000": 300.0, "RTX 4090": 450.0, "RTX 3090": 350.0, "RTX 4080": 320.0,
}  # fmt: skip


def _env_float(name: str) -> float | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    with contextlib.suppress(ValueError):
        if (value := float(raw)) >= 0:
            return value
    raise InputError(f"{name}={raw!r} is not a number of watts >= 0; unset it or fix it")


def _first(*values: float | None) -> float | None:
    return next((float(v) for v in values if v is not None), None)


def _table_watts(gpu_name: str | None) -> float | None:
    keys = sorted(GPU_WATTS, key=len, reverse=True)  # "L40S" before "L40", "A100" before "A10"
    return next((GPU_WATTS[k] for k in keys if k in (gpu_name or "").upper()), None)


def estimate_energy(
    *,
    cpu_s: float,
    gpu_s: float = 0.0,
    cpu_watts_per_core: float | None = None,
    gpu_watts: float | None = None,
    gpu_name: str | None = None,
) -> dict[str, Any]:
    """Energy as power x time.

    Parameters
    ----------
    cpu_s, gpu_s
        CPU seconds (user + system, summed over cores); GPU seconds, summed over devices.
    cpu_watts_per_core, gpu_watts
        Power; ``None``: env var, then (GPU) :data:`GPU_WATTS` by ``gpu_name``, then default.
    gpu_name
        Device name, e.g. ``"NVIDIA H100 80GB HBM3"``.

    Returns
    -------
    dict
        ``energy_wh``, ``energy_kwh``, ``energy_method`` and the inputs used
        (``cpu_watts_per_core``, ``gpu_watts`` — ``None`` if no GPU —, ``gpu_name``).

    Examples
    --------
    >>> # hist2RNA's patch-based model: 4 V100s x 8.48 h x 300 W
    >>> e = estimate_energy(cpu_s=0, gpu_s=4 * 8.48 * 3600, gpu_name="Tesla V100-SXM2-32GB")
    >>> round(e["energy_kwh"], 3), e["gpu_watts"]
    (10.176, 300.0)
    """
    if cpu_s < 0 or gpu_s < 0:
        raise InputError(f"times must be >= 0, got cpu_s={cpu_s}, gpu_s={gpu_s}")
    env_cpu = _env_float("HISTOEXPR_CPU_WATTS_PER_CORE")
    cpu_w = _first(cpu_watts_per_core, env_cpu, DEFAULT_CPU_WATTS_PER_CORE)
    gpu_w = _first(gpu_watts)
    if gpu_w is None and (gpu_s > 0 or gpu_name):
        gpu_w = _first(_env_float("HISTOEXPR_GPU_WATTS"), _table_watts(gpu_name), DEFAULT_GPU_WATTS)
    joules = cpu_w * cpu_s + (gpu_w or 0.0) * gpu_s
    return {"energy_wh": joules / 3600.0, "energy_kwh": joules / 3.6e6,
            "energy_method": "power x time", "cpu_watts_per_core": cpu_w,
            "gpu_watts": gpu_w, "gpu_name": gpu_name}  # fmt: skip


def _cpu_seconds() -> float:
    try:
        import resource
    except ImportError:  # Windows
        return time.process_time()
    who = (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    return sum(r.ru_utime + r.ru_stime for r in map(resource.getrusage, who))


def _nvml(index: int) -> tuple[float | None, float | None]:
    """GPU ``index``'s energy counter (J) and enforced power limit (W), ``None`` if unread."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return None, None
    out: list[float | None] = [None, None]
    with contextlib.suppress(Exception):  # the energy counter needs Volta or newer
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        out[1] = pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0  # mW -> W
        out[0] = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000.0  # mJ -> J
    with contextlib.suppress(Exception):
        pynvml.nvmlShutdown()
    return out[0], out[1]


class CostMeter:
    """Measure the cost of a block of code.

    Parameters
    ----------
    device
        What the block runs on (``"cpu"``, ``"cuda:1"``, a ``torch.device``), recorded; picks
        the GPU read. ``None``: ``"cuda:<current>"`` if CUDA was used, else ``"cpu"``.
    cpu_watts_per_core, gpu_watts
        Override the power used by the estimate (see the module docstring).

    Notes
    -----
    CPU time: this process's and its finished children's. GPU time: the block's wall time if
    torch was imported (never here), CUDA initialised by its end and ``device`` is ``None`` or
    CUDA. CUDA is synchronised before each clock read; NVML is read at start if CUDA is up/named.

    Examples
    --------
    >>> with CostMeter(device="cpu") as m:
    ...     _ = sum(i * i for i in range(10_000))
    >>> r = m.record()
    >>> r["wall_s"] > 0, r["gpu_s"], r["energy_method"]
    (True, 0.0, 'power x time')
    """

    def __init__(self, *, device: Any = None, cpu_watts_per_core: float | None = None,
                 gpu_watts: float | None = None) -> None:  # fmt: skip
        self.device = device
        self.cpu_watts_per_core = cpu_watts_per_core
        self.gpu_watts = gpu_watts
        self._t0: float | None = None
        self._result: dict[str, Any] | None = None

    def _gpu(self) -> Any:
        """``torch.cuda``, synchronised, if the block counts as GPU work, else ``None``."""
        cuda = getattr(sys.modules.get("torch"), "cuda", None)  # never import torch here
        if cuda is None or (self.device is not None and "cuda" not in str(self.device)):
            return None
        with contextlib.suppress(Exception):
            if cuda.is_initialized():
                cuda.synchronize()
                return cuda
        return None

    def _index(self, cuda: Any) -> int:
        if str(self.device).startswith("cuda:"):
            return int(str(self.device)[5:])
        return int(cuda.current_device()) if cuda is not None else 0

    def start(self) -> CostMeter:
        """Start (or restart) the clocks; returns ``self``."""
        cuda = self._gpu()
        self._result = None
        use_nvml = cuda is not None or "cuda" in str(self.device)
        self._j0 = _nvml(self._index(cuda))[0] if use_nvml else None
        self._cpu0 = _cpu_seconds()
        self._t0 = time.perf_counter()
        return self

    def stop(self) -> dict[str, Any]:
        """Stop the clocks and return :meth:`record`."""
        if self._t0 is None:
            raise RuntimeError("CostMeter.stop() called before start()")
        cuda = self._gpu()
        wall_s = time.perf_counter() - self._t0
        cpu_s = max(_cpu_seconds() - self._cpu0, 0.0)
        self._t0 = None
        gpu_s = wall_s if cuda is not None else 0.0
        index = self._index(cuda)
        gpu_name, gpu_watts, gpu_j = None, self.gpu_watts, None
        if cuda is not None:
            gpu_name = str(cuda.get_device_name(index))
            joules, limit_w = _nvml(index)
            gpu_watts = _first(gpu_watts, _env_float("HISTOEXPR_GPU_WATTS"), limit_w)
            gpu_j = None if joules is None or self._j0 is None else joules - self._j0
        energy = estimate_energy(cpu_s=cpu_s, gpu_s=gpu_s, gpu_watts=gpu_watts, gpu_name=gpu_name,
                                 cpu_watts_per_core=self.cpu_watts_per_core)  # fmt: skip
        if gpu_j is not None:  # measured GPU energy replaces the GPU power x time term
            j = energy["cpu_watts_per_core"] * cpu_s + gpu_j
            energy.update(energy_wh=j / 3600.0, energy_kwh=j / 3.6e6, energy_method="nvml")
        device = self.device or (f"cuda:{index}" if cuda is not None else "cpu")
        self._result = {"wall_s": wall_s, "cpu_s": cpu_s, "gpu_s": gpu_s, "device": str(device),
                        "cores_busy": cpu_s / wall_s if wall_s > 0 else 0.0, **energy}  # fmt: skip
        return self.record()

    def record(self) -> dict[str, Any]:
        """The cost as a plain, JSON-ready dict (a copy); the meter must be stopped."""
        if self._result is None:
            raise RuntimeError("no cost measured yet: use `with CostMeter() as m:` or stop()")
        return dict(self._result)

    __enter__ = start

    def __exit__(self, *exc: object) -> None:
        self.stop()


def sum_costs(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Add several cost records (e.g. the folds of a run).

    Times and energies are summed and ``cores_busy`` recomputed; a descriptive field
    (device, method, watts, GPU name) is kept when all records agree, else ``"mixed"``.

    Examples
    --------
    >>> a = estimate_energy(cpu_s=3600) | {"wall_s": 3600.0, "cpu_s": 3600.0, "gpu_s": 0.0}
    >>> total = sum_costs([a, a])
    >>> total["wall_s"], total["energy_wh"], total["cores_busy"]
    (7200.0, 20.0, 1.0)
    """
    records = list(records)
    added = ("wall_s", "cpu_s", "gpu_s", "energy_wh", "energy_kwh")
    total: dict[str, Any] = {k: float(sum(r.get(k) or 0.0 for r in records)) for k in added}
    total["cores_busy"] = total["cpu_s"] / total["wall_s"] if total["wall_s"] > 0 else 0.0
    for key in ("gpu_name", "device", "energy_method", "cpu_watts_per_core", "gpu_watts"):
        values = {r.get(key) for r in records} - {None}
        total[key] = values.pop() if len(values) == 1 else ("mixed" if values else None)
    return total
