"""``histoexpr finetune``: tune an encoder to classify patches by a label (seed 002).

    histoexpr finetune --patches DIR|CSV --encoder NAME --out DIR [--name NAME]
                       [--head-epochs 10] [--full-epochs 30] [--head-lr 1e-4] [--full-lr 1e-4]
                       [--momentum 0.9] [--batch-size 32] [--val-fraction 0.2] [--seed 0]
                       [--device cpu|cuda] [--random-init] [--no-augment] [--overwrite]
                       [--dense 1024]

Patches: a folder ``DIR/<label>/*.png|jpg|tif`` (one sub-folder per class, e.g. tissue type)
or a CSV with columns ``path,label`` (relative paths from the CSV's folder). A new linear head
on the encoder's features is trained alone first (the encoder frozen), then all layers, both
with SGD (momentum 0.9), the best validation epoch kept. ``OUT`` then holds the tuned
backbone (``weights.safetensors``), its encoder card, ``history.csv`` and ``finetune.json``;
embed with it as with any encoder: ``histoexpr embed ... --encoder OUT``. A tuned folder in
``$HISTOEXPR_WEIGHTS/<name>/`` is found by name. Rerunning the same command resumes from the
checkpoints; a larger ``--full-epochs`` trains on.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from . import add_common

logger = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune an encoder on labelled patches (new card)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--patches", required=True, type=Path,
                   help="folder DIR/<label>/*.png or CSV with columns path,label")
    p.add_argument("--encoder", required=True, help="base encoder card name (e.g. inception_v3)")
    p.add_argument("--out", required=True, type=Path, help="output folder of the tuned encoder")
    p.add_argument("--name", default=None,
                   help="tuned encoder name (default <encoder>-tuned-<patches folder name>)")
    p.add_argument("--head-epochs", type=int, default=10, help="step 1, head only (default 10)")
    p.add_argument("--full-epochs", type=int, default=30, help="step 2, all layers (default 30)")
    p.add_argument("--head-lr", type=float, default=1e-4, help="SGD learning rate of step 1")
    p.add_argument("--full-lr", type=float, default=1e-4, help="SGD learning rate of step 2")
    p.add_argument("--dense", type=int, default=None, metavar="WIDTH",
                   help="a dense layer of this width (+ ReLU) before the classifier, whose "
                   "output become the features: seed 002's Dense(1024) (default: none)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of patches held out for validation, stratified by label")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--random-init", action="store_true",
                   help="start from random weights instead of the card's pretrained ones")
    p.add_argument("--weights", type=Path, default=None,
                   help="explicit file of the encoder's pretrained weights")
    p.add_argument("--no-pretrained", dest="no_pretrained", action="store_true",
                   help=argparse.SUPPRESS)  # deprecated alias of --random-init
    p.add_argument("--no-augment", dest="augment", action="store_false",
                   help="no random flips / 90° rotations of training patches")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in a folder that holds another fine-tune")
    add_common(p)
    p.set_defaults(func=run)


def _default_name(encoder: str, patches: Path) -> str:
    from ..features.encoders import get_card, tuned_name

    label = patches.stem if patches.is_file() else patches.resolve().name
    return tuned_name(get_card(encoder).name, label)


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ..errors import InputError
    from ..features.encoders.finetune import finetune_encoder
    from . import table_console

    if args.no_pretrained:
        logger.warning("--no-pretrained is deprecated; use --random-init (the same flag as in "
                       "`embed` and `st fit`)")
    random_init = args.random_init or args.no_pretrained
    if random_init and args.weights is not None:
        raise InputError("give --weights or --random-init, not both")
    name = args.name or _default_name(args.encoder, args.patches)
    res = finetune_encoder(
        args.patches, None, encoder=args.encoder, out=args.out, name=name,
        head_epochs=args.head_epochs, full_epochs=args.full_epochs, head_lr=args.head_lr,
        full_lr=args.full_lr, momentum=args.momentum, batch_size=args.batch_size,
        weight_decay=args.weight_decay, val_fraction=args.val_fraction, device=args.device,
        seed=args.seed, pretrained=not random_init, weights=args.weights,
        augment=args.augment,
        num_workers=args.num_workers, overwrite=args.overwrite, dense=args.dense,
    )
    if args.quiet:
        return 0
    m = res.metrics
    t = Table(title=f"{res.card.name}: {res.card.weights}", title_justify="left")
    for col in ("step", "epochs", "best epoch", "val loss", "val accuracy"):
        t.add_column(col, justify="left" if col == "step" else "right")
    what = {"head": "1 head only", "full": "2 all layers"}
    for step, r in res.steps.iterrows():
        t.add_row(what.get(str(step), str(step)), str(int(r["epochs"])),
                  str(int(r["best_epoch"])), f"{r['val_loss']:.4f}", f"{r['val_accuracy']:.3f}")
    console = table_console()
    console.print(t)
    console.print(f"validation accuracy {m['val_accuracy']:.3f} (chance {m['chance_accuracy']:.3f},"
                  f" {len(res.classes)} classes); history.csv, finetune.json in {res.out}",
                  highlight=False)
    console.print(f"use it: histoexpr embed SLIDE --coords TILES --encoder {res.out} --out "
                  "FEATURES", highlight=False, markup=False)
    return 0
