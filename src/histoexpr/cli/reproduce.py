"""``histoexpr reproduce STUDY``: rerun a seed paper's protocol with its defaults and write
its tables and figures.

    histoexpr reproduce brstnet --data SECTIONS... --out DIR [--encoders LIST | --all-encoders]
                                [--no-aux-comparison] [--short] [any st fit option]
    histoexpr reproduce hist2rna --features DIR --expression FILE --subtypes CSV --out DIR
                                 [--clinical FILE] [--short] [any bulk fit option]
    histoexpr reproduce gastric --features DIR --expression FILE [--heatmaps DIR] --out DIR
                                [--slides DIR] [--clinical FILE] [--short] [bulk fit options]
    histoexpr reproduce gtex --features 256=DIR [512=DIR ...] --expression FILE
                             [--covariates FILE] [--gmt FILE] --out DIR

Every option of the study's workflow (``st fit`` for brstnet, ``bulk fit`` for hist2rna and
gastric) is accepted and overrides the
paper's value; ``DIR/preset.json`` and the report say, for every value, whether it is the
paper's (with its section), a stated departure, or yours. Rerunning the same command
resumes: finished fits are not redone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import BulkConfig, STConfig, add_config_flags
from . import add_common


def _given(args: argparse.Namespace, cls: type) -> dict:
    """The config values the user gave (``None``: not given), model parameters parsed."""
    from dataclasses import fields

    from ..config import parse_params

    given = {f.name: getattr(args, f.name, None) for f in fields(cls)}
    if given.get("model_params") is not None:
        given["model_params"] = parse_params(given["model_params"])
    return given


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="rerun a seed paper's protocol (brstnet, hist2rna, "
                       "gastric, gtex)",
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

    h = ss.add_parser("hist2rna", help="hist2RNA (seed 001): 138 genes from slide-mean "
                      "features, subtypes, survival", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flags(h, BulkConfig)
    h.add_argument("--subtypes", required=True, type=Path, metavar="CSV",
                   help="patient,PAM50 subtype: the split keeps their proportions and the "
                   "subtype classifier learns them")
    h.add_argument("--subtype-col", default=None, help="the subtype column (default: the "
                   "second, or one named subtype/pam50/label)")
    _study_args(h, "the survival analysis of the predicted subtypes", "20 epochs")
    h.set_defaults(func=run_hist2rna)

    g = ss.add_parser("gastric", help="gastric cancer (seed 000): 4 genes from tumour "
                      "patches, Table 1's models, Cheong groups", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flags(g, BulkConfig)
    _study_args(g, "survival by Cheong group", "15 epochs")
    g.add_argument("--response", default=None, metavar="COL", help="clinical column: "
                   "responded to chemotherapy (yes/no); searches the Cheong thresholds")
    g.add_argument("--treatment", default=None, metavar="COL", help="clinical column: "
                   "received chemotherapy (yes/no); tests treatment x predicted benefit")
    g.set_defaults(func=run_gastric)

    from ..reproduce.gtex import GTExConfig

    x = ss.add_parser("gtex", help="GTEx (seed 002): shared variance of image features and "
                      "expression, confounders, associations", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flags(x, GTExConfig)
    x.add_argument("--out", required=True, type=Path, help="study folder")
    add_common(x)
    x.set_defaults(func=run_gtex)


def _study_args(p: argparse.ArgumentParser, clinical_use: str, short: str) -> None:
    p.add_argument("--clinical", type=Path, default=None, metavar="FILE",
                   help=f"clinical table for {clinical_use}")
    p.add_argument("--time", default="OS_MONTHS", help="survival time column")
    p.add_argument("--event", default="OS_STATUS", help="event column")
    p.add_argument("--short", action="store_true",
                   help=f"a CPU schedule ({short}), named as such in the report")
    p.add_argument("--out", required=True, type=Path, help="study folder")
    add_common(p)


def run_brstnet(args: argparse.Namespace) -> int:
    from ..reproduce.brstnet import ENCODERS, reproduce_brstnet

    given = _given(args, STConfig)
    encoders = (ENCODERS if args.all_encoders else
                tuple(e.strip() for e in args.encoders.split(",") if e.strip())
                if args.encoders else ())
    report = reproduce_brstnet(args.out, given, encoders=encoders,
                               aux=(True, False) if args.compare else (True,),
                               short=args.short, file=args.config)
    print(f"report: {report}")
    return 0


def run_hist2rna(args: argparse.Namespace) -> int:
    from ..reproduce.hist2rna import reproduce_hist2rna

    report = reproduce_hist2rna(args.out, _given(args, BulkConfig), subtypes=args.subtypes,
                                subtype_col=args.subtype_col, clinical=args.clinical,
                                time_col=args.time, event_col=args.event, short=args.short,
                                file=args.config)
    print(f"report: {report}")
    return 0


def run_gastric(args: argparse.Namespace) -> int:
    from ..reproduce.gastric import reproduce_gastric

    report = reproduce_gastric(args.out, _given(args, BulkConfig), clinical=args.clinical,
                               time_col=args.time, event_col=args.event, short=args.short,
                               file=args.config, response=args.response,
                               treatment=args.treatment)
    print(f"report: {report}")
    return 0


def run_gtex(args: argparse.Namespace) -> int:
    from ..reproduce.gtex import GTExConfig, reproduce_gtex

    report = reproduce_gtex(args.out, _given(args, GTExConfig), file=args.config)
    print(f"report: {report}")
    return 0
