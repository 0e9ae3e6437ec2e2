"""Benchmark feature extraction: bare model forward rate vs the end-to-end embedding rate.

Measures, in one process, for each encoder (``efficientnet_lite0`` with its ImageNet
weights, ``resnet50`` with random weights: only speed matters here) and each mode

- **eager** — ``embed(..., channels_last=False, compile=False)``;
- **channels_last** — NHWC memory layout (``channels_last=True``);
- **compiled** — ``torch.compile`` of the channels_last network (``compile=True``);

two rates, in tiles per second:

- **bare forward** — the network alone on random ``(B, 3, 224, 224)`` float batches under
  ``torch.inference_mode`` (warm-up batches first, so compilation and first-call costs are
  excluded), best of ``--passes`` passes;
- **end-to-end** — ``open_slide`` + :func:`histoexpr.features.embed_to_h5` on real tiles:
  read at 0.5 µm/px, Macenko stain normalisation (``--stain none`` to leave it out) and
  preprocessing in the ``DataLoader`` (``num_workers`` 0, 1 and 2 by default), forward, HDF5
  write, best of ``--passes`` runs (default 2). One warm-up embedding of a single batch per
  encoder x mode comes first (compilation happens there).

and their ratio end-to-end / bare. Target: >= 0.9, i.e. reading and preprocessing hidden
behind compute. Slides: ``CMU-1-Small-Region.svs`` (a grid inside tissue with stride
112 px, i.e. 50 % overlap, so the small slide yields enough tiles) and the her2st section
``C2.jpg`` (tiles centred on its spots; its pixel size is estimated from the spot grid),
both from ``../shared/data``; prints a note and exits 0 when they are absent. A seeded random
subset of ``--n-tiles`` tiles (a multiple of the batch size) is embedded per slide.

A per-tile profile of the loader's stages (read, stain, preprocess; in the main process
before any model runs, i.e. what one DataLoader worker does without contention) is printed
as well, to show where end-to-end time goes, with numpy's BLAS thread count (its pool runs
beside torch's in the same process and in every worker).

Usage::

    .venv/bin/python benchmarks/bench_embed.py            # full run (~14 minutes on 2 CPU cores)
    .venv/bin/python benchmarks/bench_embed.py --quick    # fewer tiles and reps (smoke test)
    .venv/bin/python benchmarks/bench_embed.py --encoders resnet50 --modes eager,compiled \\
        --num-workers 2 --device cpu
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
CMU_SMALL = SHARED_DATA / "wsi" / "CMU-1-Small-Region.svs"
HER2ST_IMAGE = SHARED_DATA / "her2st" / "images" / "C2.jpg"
HER2ST_SPOTS = SHARED_DATA / "her2st" / "spots" / "C2_selection.tsv"

TILE_PX = 224
TILE_MPP = 0.5
CMU_STRIDE_PX = 112
BATCH = 32
ENCODERS = ("efficientnet_lite0", "resnet50")
MODES = ("eager", "channels_last", "compiled")
TARGET = 0.9
# tiles embedded per slide (full run; --quick uses one batch more than the warm-up)
N_TILES = {"efficientnet_lite0": 128, "resnet50": 96}
BARE_WARMUP = 2  # batches
BARE_REPS = 6  # timed batches (full run)


@dataclass
class Case:
    name: str
    path: Path
    slide_mpp: float | None  # None: read from the file
    coords: np.ndarray  # every candidate tile
    t_open: float = 0.0  # seconds to open the slide in the main process


@dataclass
class Row:
    encoder: str
    mode: str
    slide: str
    tiles: int
    workers: int | None
    bare: float | None  # tiles/s
    e2e: float | None  # tiles/s
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return None if self.bare is None or self.e2e is None else self.e2e / self.bare


@dataclass
class BareResult:
    rate: float | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)


def short(exc: BaseException, n: int = 90) -> str:
    msg = " ".join(str(exc).split()) or type(exc).__name__
    msg = f"{type(exc).__name__}: {msg}"
    return msg if len(msg) <= n else msg[: n - 3] + "..."


def load_cases() -> list[Case]:
    from histoexpr.expression import estimate_mpp_from_spots, read_spots
    from histoexpr.slide import open_slide
    from histoexpr.tiling import TileSpec, tile_slide

    cases = []
    if CMU_SMALL.exists():
        t0 = time.perf_counter()
        with open_slide(CMU_SMALL) as s:
            t_open = time.perf_counter() - t0
            coords = tile_slide(s, TileSpec(TILE_PX, TILE_MPP, CMU_STRIDE_PX)).coords
        cases.append(Case("CMU-1-Small-Region.svs", CMU_SMALL, None, coords, t_open))
    else:
        print(f"note: {CMU_SMALL} is absent; skipping the CMU slide")
    if HER2ST_IMAGE.exists() and HER2ST_SPOTS.exists():
        spots = read_spots(HER2ST_SPOTS)
        mpp = estimate_mpp_from_spots(spots)
        t0 = time.perf_counter()
        with open_slide(HER2ST_IMAGE, mpp=mpp) as s:
            t_open = time.perf_counter() - t0
            coords = tile_slide(s, TileSpec(TILE_PX, TILE_MPP),
                                spots=spots[["x", "y"]].to_numpy(),
                                spot_ids=spots["spot_id"].to_numpy()).coords
        cases.append(Case("her2st C2.jpg", HER2ST_IMAGE, mpp, coords, t_open))
    else:
        print(f"note: {HER2ST_IMAGE} or {HER2ST_SPOTS} is absent; skipping the her2st section")
    return cases


def subset(coords: np.ndarray, n: int) -> np.ndarray:
    """A seeded random subset of ``n`` tiles (all, rounded down to whole batches, if fewer),
    in the sampler's order."""
    n = min(n, len(coords))
    if n >= BATCH:
        n -= n % BATCH
    idx = np.sort(np.random.default_rng(0).choice(len(coords), n, replace=False))
    return coords[idx]


def fit_stain(case: Case, method: str):
    """``method`` fitted on the tile with the most stained pixels among the first 64."""
    from histoexpr.slide import open_slide
    from histoexpr.stain import get_normalizer

    if method == "none":
        return None
    with open_slide(case.path, mpp=case.slide_mpp) as s:
        tiles = s.read_at_mpp_batch(case.coords[:64], TILE_PX, TILE_MPP)
    best = int(np.argmax((tiles.max(axis=-1) < 200).sum(axis=(1, 2))))
    return get_normalizer(method).fit(tiles[best])


def blas_threads() -> str:
    """NumPy's BLAS thread pool(s), which run beside torch's in the same process."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (no threadpoolctl)"
    pools = [f"{p['internal_api']} {p['num_threads']}" for p in threadpool_info()
             if p.get("user_api") == "blas"]
    return ", ".join(pools) or "none found"


def profile_loader(case: Case, stain, card, n: int) -> dict[str, float]:
    """Per-tile milliseconds of each loader stage, one process (what one worker does)."""
    from histoexpr.features.encoders import preprocess_tiles
    from histoexpr.slide import open_slide

    coords = subset(case.coords, n)
    with open_slide(case.path, mpp=case.slide_mpp) as s:
        s.read_at_mpp(int(coords[0][0]), int(coords[0][1]), TILE_PX, TILE_MPP)  # warm-up
        t0 = time.perf_counter()
        tiles = [s.read_at_mpp(int(x), int(y), TILE_PX, TILE_MPP) for x, y in coords]
        t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    normed = tiles if stain is None else [stain.transform(t) for t in tiles]
    t_stain = time.perf_counter() - t0
    t0 = time.perf_counter()
    for t in normed:
        preprocess_tiles(card, t[None])
    t_pre = time.perf_counter() - t0
    k = 1e3 / len(coords)
    return {"read": t_read * k, "stain": t_stain * k, "preprocess": t_pre * k}


def set_layout(encoder, mode: str) -> None:
    """``embed(channels_last=True)`` converts the network in place; undo it for eager."""
    import torch

    fmt = torch.contiguous_format if mode == "eager" else torch.channels_last
    encoder.network.to(memory_format=fmt)


def bare_forward(encoder, mode: str, device: str, reps: int, passes: int) -> BareResult:
    """Best of ``passes`` passes of ``reps`` batches (after warm-up batches)."""
    import torch

    set_layout(encoder, mode)
    net = encoder.network.to(device)
    on_gpu = device.startswith("cuda")
    s = encoder.card.input_size
    x = torch.randn(BATCH, 3, s, s, device=device)
    if mode != "eager":
        x = x.contiguous(memory_format=torch.channels_last)
    res = BareResult()
    run = net
    if mode == "compiled":
        try:
            run = torch.compile(net)
        except Exception as e:  # reported in the table
            return BareResult(note=f"compile failed: {short(e)}")
    with torch.inference_mode(), torch.autocast(device.split(":")[0], dtype=torch.bfloat16,
                                                enabled=on_gpu):
        t0 = time.perf_counter()
        try:
            for _ in range(BARE_WARMUP):
                run(x)
        except Exception as e:  # torch.compile errors surface on first call
            return BareResult(note=f"compile failed: {short(e)}")
        if on_gpu:
            torch.cuda.synchronize()
        res.extra["warmup_s"] = time.perf_counter() - t0
        best = float("inf")
        for _ in range(passes):
            t0 = time.perf_counter()
            for _ in range(reps):
                run(x).float().cpu()
            if on_gpu:
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        res.rate = reps * BATCH / best
    return res


def end_to_end(case: Case, coords: np.ndarray, encoder, mode: str, device: str, workers: int,
               stain, out_dir: Path, passes: int = 1, prefetch: int = 2) -> float:
    """Tiles/s of ``open_slide`` + ``embed_to_h5`` (read + stain + forward + write), best of
    ``passes`` runs."""
    from histoexpr.features import embed_to_h5
    from histoexpr.slide import open_slide

    set_layout(encoder, mode)
    out = out_dir / f"{encoder.card.name}_{mode}_{case.path.stem}_{workers}.h5"
    best = float("inf")
    for _ in range(passes):
        t0 = time.perf_counter()
        with open_slide(case.path, mpp=case.slide_mpp) as s:
            _, status = embed_to_h5(
                out, s, coords, encoder, size_px=TILE_PX, mpp=TILE_MPP, overwrite=True,
                batch_size=BATCH, num_workers=workers, stain=stain, device=device,
                channels_last=mode != "eager", compile=mode == "compiled",
                prefetch=prefetch,
            )
        best = min(best, time.perf_counter() - t0)
        if status != "done":
            raise RuntimeError(f"embed_to_h5 returned {status!r}")
    return len(coords) / best


def fmt(v: float | None, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def format_table(head: list[str], body: list[list[str]]) -> str:
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), sep, *(line(b) for b in body)])


def row_cells(r: Row) -> list[str]:
    ratio = r.ratio
    met = "-" if ratio is None else ("yes" if ratio >= TARGET else "no")
    return [r.encoder, r.mode, r.slide, str(r.tiles),
            "-" if r.workers is None else str(r.workers), fmt(r.bare), fmt(r.e2e),
            fmt(ratio, ".2f"), met, r.note]


HEAD = ["encoder", "mode", "slide", "tiles", "workers", "bare t/s", "end-to-end t/s",
        "ratio e2e/bare", f">= {TARGET}", "note"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="one timed batch of tiles per slide and fewer bare reps (smoke test)")
    ap.add_argument("--encoders", default=",".join(ENCODERS),
                    help=f"comma-separated encoder names (default: {','.join(ENCODERS)})")
    ap.add_argument("--modes", default=",".join(MODES),
                    help=f"comma-separated modes among {','.join(MODES)} (default: all)")
    ap.add_argument("--num-workers", default=None,
                    help="comma-separated DataLoader worker counts (default 0,1,2; 2 with "
                         "--quick)")
    ap.add_argument("--n-tiles", type=int, default=None,
                    help="tiles per slide (default: 128 efficientnet_lite0, 96 resnet50)")
    ap.add_argument("--stain", default="macenko", choices=["macenko", "none"],
                    help="stain normaliser in the loader (default macenko; 'none' shows "
                         "what it costs)")
    ap.add_argument("--passes", type=int, default=None,
                    help="timed passes per rate, best kept (default 2; 1 with --quick)")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    ap.add_argument("--prefetch", default="2",
                    help="with 0 workers: batches read ahead by embed's background thread, "
                         "comma-separated (default 2, embed's default; 0 reads in turn)")
    args = ap.parse_args(argv)

    encoders = [e.strip() for e in args.encoders.split(",") if e.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = sorted(set(modes) - set(MODES))
    if bad:
        ap.error(f"unknown mode(s) {bad}; choose among {list(MODES)}")
    workers_list = [int(w) for w in (args.num_workers or ("2" if args.quick else "0,1,2"))
                    .split(",")]
    bare_reps = 2 if args.quick else BARE_REPS
    passes = max(1, args.passes or (1 if args.quick else 2))

    if not (CMU_SMALL.exists() or HER2ST_IMAGE.exists()):
        print(f"note: no slides under {SHARED_DATA} (CMU-1-Small-Region.svs, her2st C2.jpg); "
              "nothing to measure")
        return 0

    import torch

    from histoexpr.features import build_encoder

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    t_start = time.perf_counter()
    print(f"machine: {platform.machine()} {platform.system()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} intra-op threads, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.startswith("cuda") else ""))
    print(f"numpy BLAS threads: {blas_threads()}")
    print(f"{TILE_PX} px tiles at {TILE_MPP} µm/px, batch {BATCH}, stain '{args.stain}' in the "
          f"loader; modes {modes}; DataLoader workers {workers_list}; best of {passes} "
          f"pass(es) per rate", flush=True)

    cases = load_cases()
    if not cases:
        return 0
    for c in cases:
        print(f"{c.name}: {len(c.coords)} candidate tiles; slide opened in {c.t_open:.2f} s",
              flush=True)
    stain = fit_stain(cases[0], args.stain)  # one reference for both slides, as in a real run

    rows: list[Row] = []
    profiles: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_embed_") as tmp:
        out_dir = Path(tmp)
        for name in encoders:
            kw = {} if name == "efficientnet_lite0" else {"pretrained": False}
            encoder = build_encoder(name, **kw)
            print(f"\n{name}: {encoder!r}", flush=True)
            n_tiles = args.n_tiles or (2 * BATCH if args.quick else N_TILES.get(name, 64))
            for c in cases:
                if c.name not in profiles:
                    profiles[c.name] = profile_loader(c, stain, encoder.card, 64)
            for mode in modes:
                bare = bare_forward(encoder, mode, device, bare_reps, passes)
                warm = bare.extra.get("warmup_s")
                print(f"  {mode}: bare {fmt(bare.rate)} t/s"
                      + (f" (warm-up {warm:.1f} s)" if warm is not None else "")
                      + (f" {bare.note}" if bare.note else ""), flush=True)
                if bare.rate is None:
                    rows.append(Row(name, mode, "-", 0, None, None, None, bare.note))
                    continue
                # warm-up embedding (one batch; compilation happens here for 'compiled')
                try:
                    t0 = time.perf_counter()
                    end_to_end(cases[0], cases[0].coords[:BATCH], encoder, mode, device, 0,
                               stain, out_dir)
                    print(f"    warm-up embed {time.perf_counter() - t0:.1f} s", flush=True)
                except Exception as e:  # reported in the table
                    note = f"embed failed: {short(e)}"
                    print(f"    {note}", flush=True)
                    rows.append(Row(name, mode, "-", 0, None, bare.rate, None, note))
                    continue
                for c in cases:
                    coords = subset(c.coords, n_tiles)
                    runs = [(w, p) for w in workers_list
                            for p in ([int(v) for v in args.prefetch.split(",")] if w == 0
                                      else [0])]
                    for w, ahead in runs:
                        try:
                            e2e = end_to_end(c, coords, encoder, mode, device, w, stain,
                                             out_dir, passes, prefetch=ahead)
                            note = f"prefetch {ahead}" if w == 0 else ""
                        except Exception as e:  # reported in the table
                            e2e, note = None, f"embed failed: {short(e)}"
                        r = Row(name, mode, c.name, len(coords), w, bare.rate, e2e, note)
                        rows.append(r)
                        print(f"    {c.name}, {w} workers: {fmt(e2e)} t/s, ratio "
                              f"{fmt(r.ratio, '.2f')} {note}", flush=True)
            del encoder
            torch._dynamo.reset()

    print()
    print("Loader cost per tile in one process, before any model ran (what each DataLoader "
          "worker does), ms:")
    prof_body = []
    for c in cases:
        p = profiles.get(c.name)
        if p:
            total = sum(p.values())
            prof_body.append([c.name, f"{c.t_open:.2f}", f"{p['read']:.2f}",
                              f"{p['stain']:.2f}", f"{p['preprocess']:.2f}", f"{total:.2f}",
                              f"{1e3 / total:.0f}"])
    print(format_table(["slide", "open s", "read ms", f"{args.stain} ms", "preprocess ms",
                        "total ms", "1-core loader t/s"], prof_body))

    print()
    print(f"bare = network alone on random batches of {BATCH}; end-to-end = open_slide + "
          f"embed_to_h5 (read + stain '{args.stain}' + preprocess in the DataLoader, forward, "
          "HDF5 write), "
          f"best of {passes} run(s), each including opening the slide, DataLoader worker "
          "start-up and each worker opening the slide again; "
          f"bare: best of {passes} pass(es) of {bare_reps} batches; "
          "t/s = tiles per second; ratio = end-to-end / bare; "
          f"target >= {TARGET}. device {device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} cores.")
    print(format_table(HEAD, [row_cells(r) for r in rows]))

    best: dict[tuple[str, str, str], Row] = {}
    for r in rows:
        key = (r.encoder, r.mode, r.slide)
        if r.ratio is not None and (key not in best or r.ratio > best[key].ratio):
            best[key] = r
    if best and len(workers_list) > 1:
        print("\nbest worker count per encoder x mode x slide:")
        print(format_table(HEAD, [row_cells(r) for r in best.values()]))
    print(f"\ntotal runtime {time.perf_counter() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
