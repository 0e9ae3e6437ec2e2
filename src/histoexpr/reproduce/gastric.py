"""Gastric cancer (seed 000): CDX1, GZMB, SFRP4 and WARS from tumour patches of TCGA-STAD
slides, ResNet-50 features, one patch (baseline) or ten with mean / max aggregation, and
multi-task heads; then Cheong et al.'s chemotherapy-benefit groups on the predicted genes.

:data:`GASTRIC` holds the paper's protocol as ``bulk fit`` values, each with the section it
comes from; :func:`reproduce_gastric` fits every model of the paper's Table 1 on the same
60 / 20 / 20 split (M2 with N = 1; M3, M4 with N = 10; the multi-task variants with N = 1
and 10; M1, the fine-tuned ResNet-50, when the slides are given), writes Table 1 (Pearson r
on the test patients), Fig. 7 (true vs predicted violins) and the Cheong groups of the test
patients (with survival by group when a clinical table is given).

Upstream of this command, as the paper did it: ``histoexpr tile`` with the K-means patch
filter (K = 3) and ``histoexpr embed --encoder resnet50`` (ImageNet weights), and tumour
heatmaps for ``--heatmaps`` (10 tiles of highest tumour probability).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..atomic import write_json
from ..config import BulkConfig
from .preset import Headline, PaperValue, Preset, short_schedule

__all__ = ["GASTRIC", "VARIANTS", "reproduce_gastric"]

logger = logging.getLogger(__name__)

#: the preset: the paper's values (seed 000) and where it states each
GASTRIC = Preset(
    "gastric", "000", "Gastric cancer: 4 chemotherapy-benefit genes from H&E tumour patches "
    "(Stanford report)", BulkConfig,
    values=[
        PaperValue("model", "multitask", "Table 1: M4 + multi-task is the best model"),
        PaperValue("genes", "gastric4", "4 Methods: CDX1, GZMB, SFRP4, WARS"),
        PaperValue("transform", "log1p", "4.2.1: log(1 + x) of FPKM-UQ"),
        PaperValue("protocol", "split", "4.2.1: training 60 %, validation 20 %, test 20 %"),
        PaperValue("split_fractions", (0.6, 0.2, 0.2), "4.2.1: the validation patients stop "
                   "the training early"),
        PaperValue("select", "top", "4.1: 10 patches of highest tumour probability"),
        PaperValue("n_tiles", 10, "4.1 and Table 1: N = 10 patches"),
    ],
    headlines=[
        Headline("Pearson r, M4 + multi-task, N = 10 (test)", 0.3122, "Table 1",
                 "TCGA-STAD, 350 patients, ResNet-50 ImageNet features"),
        Headline("Pearson r, M2 baseline, N = 1 (test)", 0.2635, "Table 1", "idem"),
        Headline("Pearson r, M4 max aggregation, N = 10 (test)", 0.3119, "Table 1", "idem"),
    ],
)

#: Table 1's rows: (label, model, extra parameters, N patches)
VARIANTS = [
    ("M2 baseline", "gastric_baseline", {}, 1),
    ("M2 + multi-task", "gastric_baseline", {"multitask": True}, 1),
    ("M3 mean aggregation", "gastric_mean", {}, 10),
    ("M4 max aggregation", "gastric_max", {}, 10),
    ("M3 + multi-task", "gastric_mean", {"multitask": True}, 10),
    ("M4 + multi-task", "multitask", {}, 10),
]
#: seed 000's M1: ResNet-50 fine-tuned end to end on one patch (needs the slides)
M1 = ("M1 simplified (fine-tuned)", "gastric_simplified", {}, 1)

#: a schedule that runs on a CPU in seconds; named in the record and the report
SHORT = {"max_epochs": 15}


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_")


def reproduce_gastric(out: str | Path, given: dict[str, Any], *,
                      clinical: str | Path | None = None, time_col: str = "OS_MONTHS",
                      event_col: str = "OS_STATUS", short: bool = False,
                      file: Any = None, response: str | None = None,
                      treatment: str | None = None) -> Path:
    """Run the gastric study's protocol into ``out``; returns the report.

    ``out`` holds ``runs/<model>/`` (one ``bulk fit`` per Table 1 row; rerunning resumes),
    ``cheong/``, ``tables/``, ``figures/``, ``preset.json`` and ``report.html``.
    ``given``: the user's ``bulk fit`` values (``None``: not given), over the paper's.
    Without ``--heatmaps`` the 10 tiles are drawn at random (a stated departure).
    ``response`` / ``treatment``: clinical columns for the threshold search and the
    chemotherapy-benefit interaction test.
    """
    from ..bulk import fit_run
    from .gastric_outputs import write_outputs

    out = Path(out)
    no_maps = given.get("heatmaps") is None and given.get("select") is None
    cfg, prov = GASTRIC.resolve({**given, "select": "random"} if no_maps else given, file)
    if no_maps and cfg.heatmaps:  # heatmaps from a --config file: the paper's choice
        cfg = replace(cfg, select="top")
        prov.sources["select"]["value"] = "top"
    elif no_maps:
        prov.sources["select"] = {"value": cfg.select, "where": "seed 000, 4.1", "source":
                                  "departure: no --heatmaps given, 10 random tiles (paper: "
                                  "top by tumour probability)"}
    if short:
        cfg = short_schedule(cfg, prov, given, SHORT)
    user = dict(given.get("model_params") or {})
    variants = VARIANTS + ([M1] if cfg.slides_dir else [])
    out.mkdir(parents=True, exist_ok=True)
    record = {**prov.to_dict(), "short": short, "config": cfg.to_dict(),
              "variants": [v[0] for v in variants],
              "clinical": None if clinical is None else str(clinical)}
    write_json(out / "preset.json", record)
    runs = {}
    for i, (label, model, extra, n) in enumerate(variants):
        params = {**dict(cfg.model_params), **extra, **user}  # the user's values win
        vcfg = replace(cfg, model=model, n_tiles=n, model_params=params,
                       baselines=cfg.baselines if i == 0 else ())
        logger.info("gastric study: %s", label)
        runs[label] = fit_run(vcfg, out / "runs" / _slug(label)).path
    return write_outputs(out, runs, record, GASTRIC, clinical=clinical, time_col=time_col,
                         event_col=event_col, response=response, treatment=treatment)
