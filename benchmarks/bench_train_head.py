"""Training a slide-level head on 1,000 slides' pooled features on the CPU (issue 21,
item 5: "a head on 1,000 slides' pooled features trains in under a minute on CPU").

Synthetic pooled features (1,280 dims, the size of efficientnet_lite0's) for ``--slides``
slides, 138 targets (hist2rna's gene panel size), 20 of them linear in the features plus
noise. Each head is fitted with its defaults (early stopping on an inner 10 % split),
twice in the same process: ``loader``, a ``DataLoader`` that collates every batch from
per-slide rows and the unfused Adam (the path before this benchmark); ``resident``, the
default now (:mod:`histoexpr.resident`: tensors held on the training device and sliced per
batch, fused Adam). hist2rna's network computes its length-1 convolutions as the matrix
products they are in both rows. The table
gives epochs, wall seconds, seconds per epoch, the validation loss reached and the ratio
of the two wall times.

    python benchmarks/bench_train_head.py [--slides 1000] [--models hist2rna,mlp,he2rna]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _data(n: int, d: int = 1280, genes: int = 138, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    w = rng.normal(size=(d, genes)) / np.sqrt(d)
    w[:, 20:] = 0
    y = x @ w + rng.normal(scale=0.5, size=(n, genes))
    return x, y.astype(np.float32)


def _unfused(cls):
    """``cls`` that ignores ``fused=True``: Adam as it ran before this benchmark."""

    def make(params, fused=None, **kw):
        return cls(params, **kw)

    return make


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slides", type=int, default=1000)
    ap.add_argument("--models", default="hist2rna,mlp,he2rna")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    import pandas as pd
    import torch

    from histoexpr import resident
    from histoexpr.models import MODELS

    cap, adam_cls, adamw_cls = (resident.RESIDENT_MAX_BYTES, torch.optim.Adam,
                                torch.optim.AdamW)
    torch.set_num_threads(args.threads)
    x, y = _data(args.slides)
    rows = []
    for name in args.models.split(","):
        walls = {}
        for path in ("loader", "resident"):
            # the loader path: nothing fits the resident cap, and the unfused optimiser
            resident.RESIDENT_MAX_BYTES = 0 if path == "loader" else cap
            fused = path == "resident"
            torch.optim.Adam = adam_cls if fused else _unfused(adam_cls)
            torch.optim.AdamW = adamw_cls if fused else _unfused(adamw_cls)
            model = MODELS.get(name)(device="cpu")
            t0 = time.perf_counter()
            model.fit(x[:, None, :] if getattr(model, "model_tags", None) and
                      model.model_tags.input == "bags" else x, y)
            wall = time.perf_counter() - t0
            walls[path] = wall
            best = min(h["val_loss"] for h in model.history_)
            rows.append({"model": name, "data path": path, "slides": args.slides,
                         "epochs": model.n_epochs_, "wall s": round(wall, 2),
                         "s / epoch": round(wall / model.n_epochs_, 3),
                         "best val loss": round(best, 4),
                         "loader / resident": ""})
        if len(walls) == 2:
            rows[-1]["loader / resident"] = f"{walls['loader'] / walls['resident']:.2f}x"
    print(f"torch {torch.__version__}, {args.threads} threads, CPU")
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
