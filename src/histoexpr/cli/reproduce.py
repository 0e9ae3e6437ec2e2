"""``histoexpr reproduce STUDY``: rerun a seed paper's protocol with its defaults and write
its tables and figures.

    histoexpr reproduce brstnet --data SECTIONS... --out DIR [--encoders LIST | --all-encoders]
                                [--no-aux-comparison] [--short] [any st fit option]

Every option of the study's workflow (``st fit`` for brstnet) is accepted and overrides the
paper's value; ``DIR/preset.json`` and the report say, for every value, whether it is the
paper's (with its section), a stated departure, or yours. Rerunning the same command
resumes: finished fits are not redone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import STConfig, add_config_flags
from . import add_common


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="rerun a seed paper's protocol (brstnet)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(p)
    ss = p.add_subparsers(dest="study", metavar="STUDY", title="studies")
    ss.required = True
    b = ss.add_parser("brstnet", help="BrST-Net (seed 003): spot expression, CNN/ViT + AuxNet",
                      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flags(b, STConfig)
    b.add_argument("--encoders", default=None, metavar="LIST",
                   help="main networks, comma separated (default: --encoder, the paper's "
                   "EfficientNet-b0)")
    b.add_argument("--all-encoders", action="store_true",
                   help="the paper's ten networks (ResNet101, Inception-v3, EfficientNet-b0 "
                   "to b5, ViT-B16, ViT-B32)")
    b.add_argument("--no-aux-comparison", dest="compare", action="store_false",
                   help="train only with AuxNet (default: with and without, Table 2)")
    b.add_argument("--short", action="store_true",
                   help="a CPU schedule (2 epochs), named as such in the report")
    b.add_argument("--out", required=True, type=Path, help="study folder")
    add_common(b)
    b.set_defaults(func=run_brstnet)


def run_brstnet(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from ..reproduce.brstnet import ENCODERS, reproduce_brstnet

    given = {f.name: getattr(args, f.name, None) for f in fields(STConfig)}
    if given.get("model_params") is not None:
        from ..config import parse_params

        given["model_params"] = parse_params(given["model_params"])
    encoders = (ENCODERS if args.all_encoders else
                tuple(e.strip() for e in args.encoders.split(",") if e.strip())
                if args.encoders else ())
    report = reproduce_brstnet(args.out, given, encoders=encoders,
                               aux=(True, False) if args.compare else (True,),
                               short=args.short, file=args.config)
    print(f"report: {report}")
    return 0
