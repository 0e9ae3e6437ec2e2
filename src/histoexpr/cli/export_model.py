"""``histoexpr export-model``: a run's final model as one portable file.

    histoexpr export-model RUN model.histoexpr

Writes the final model of an ``st fit`` or ``bulk fit`` run as one safetensors file:
weights and fitted arrays as tensors, and in its header the model's classes and
parameters, the encoder, patch size and µm/px, stain settings, genes, output smoothing and
intervals, and the run's metrics. ``st predict``, ``predict-slide`` and ``bulk predict``
take the file in place of RUN; loading it never unpickles code. Feature models (ridge,
mean, mlp, ensembles), ``cnn_aux`` (its whole trained encoder and heads) and slide-level
heads (hist2rna, he2rna, abmil, gastric, pooled) export.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import add_common


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export-model", help="write a run's final model as one portable file",
                       description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, metavar="RUN", help="run folder of `st fit` / `bulk fit`")
    p.add_argument("out", type=Path, metavar="FILE", help="model file to write (.histoexpr)")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..runs.portable import export_model

    path = export_model(args.run, args.out)
    print(f"{args.run} -> {path} ({path.stat().st_size / 2**20:.1f} MB)")
    return 0
