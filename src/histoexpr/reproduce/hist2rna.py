"""hist2RNA (seed 001): 138 breast-cancer assay genes from the patient-mean of pretrained
patch features, a 1D-convolutional head, scored on a subtype-stratified held-out set, then
PAM50 subtypes called from the predicted genes.

:data:`HIST2RNA` holds the paper's protocol as ``bulk fit`` values, each with the section it
comes from; :func:`reproduce_hist2rna` runs it: the bulk fit on the 335 / 160
(train / held-out test, 67.7 / 32.3 %) split stratified by subtype, the paper's scores
(Spearman across genes and across patients with FDR, R²; Figs. 3 and 5), the soft-voting
subtype classifier on the predicted PAM50 genes (accuracy, F1, AUROC per subtype) and, with
a clinical table, the survival analysis of the predicted luminal subtypes (Tables 1-2).

The external TMA cohort: ``histoexpr tma dearray`` finds and names the cores of each TMA
slide, ``histoexpr tma predict STUDY/run --features TMA.h5 --cores cores.csv --core-map
map.csv`` predicts per core and per patient with this study's model. The five backbones:
embed the slides with each of :data:`BACKBONES` and run this command once per feature
folder.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..atomic import write_json
from ..config import BulkConfig
from ..errors import InputError
from .preset import Departure, Headline, PaperValue, Preset, short_schedule

__all__ = ["BACKBONES", "HIST2RNA", "reproduce_hist2rna"]

#: the pretrained backbones hist2RNA compared (seed 001, 2.4 and Fig. 3), as encoder cards:
#: embed the slides with each (``histoexpr embed --encoder NAME``) and run this preset once
#: per feature folder
BACKBONES = ("efficientnetv2_s", "regnety_320", "densenet201", "inception_v3", "resnet50")

logger = logging.getLogger(__name__)

_M = "2.4 Model architecture and training"
#: the preset: the paper's values (seed 001) and where it states each
HIST2RNA = Preset(
    "hist2rna", "001", "hist2RNA: 138 breast-cancer genes from H&E (Mondol et al.)", BulkConfig,
    values=[
        PaperValue("model", "hist2rna", f"{_M}: three 1D conv blocks (256 k5, 512 k1, 512 k1), "
                   "global average pooling, one output per gene"),
        PaperValue("genes", "hist2rna138", "1 Introduction: the 138 genes of six commercial "
                   "assays"),
        PaperValue("transform", "log2", "2.3 Data preparation: log2(1 + x)"),
        PaperValue("select", "all", f"{_M}: the mean of every patch's features per patient"),
        PaperValue("protocol", "split", "2.1 Dataset: 335 training and 160 held-out test "
                   "patients"),
        PaperValue("split_fractions", (335 / 495, 0.0, 160 / 495), "2.1 Dataset: 335 / 160 of "
                   "495, subtype proportions kept (validation inside training)"),
        PaperValue("model_params.lr", 1e-3, f"{_M}: Adam, learning rate 0.001"),
        PaperValue("model_params.batch_size", 12, f"{_M}: 12 samples per step"),
        PaperValue("model_params.patience", 4, f"{_M}: early stopping, patience 4"),
        PaperValue("model_params.max_epochs", 150, f"{_M}: at most 150 epochs"),
    ],
    departures=[
        Departure("model_params.val_fraction", "not given", 0.1, "the paper stops early on a "
                  "loss it does not define; 10 % of the training patients here"),
    ],
    headlines=[
        Headline("median Spearman r across patients (test)", 0.82, "3.1, Fig. 3",
                 "TCGA-BRCA, 495 patients, EfficientNet features"),
        Headline("median Spearman r across genes (test)", 0.29, "3.1, Fig. 3", "idem"),
        Headline("genes with FDR q < 0.05", "105 / 138", "3.1", "idem"),
        Headline("genes with R² >= 0.1 (PAM50 among them)", "32 (17)", "3.1, Fig. 5", "idem"),
        Headline("subtype accuracy from predicted PAM50", 0.55, "3.2", "idem, 4 subtypes"),
        Headline("subtype macro F1", 0.54, "3.2", "idem"),
    ],
)

#: a schedule that runs on a CPU in seconds; named in the record and the report
SHORT = {"max_epochs": 20}


def reproduce_hist2rna(out: str | Path, given: dict[str, Any], *, subtypes: str | Path,
                       clinical: str | Path | None = None, time_col: str = "OS_MONTHS",
                       event_col: str = "OS_STATUS", short: bool = False, file: Any = None,
                       subtype_col: str | None = None) -> Path:
    """Run hist2RNA's protocol into ``out`` and write its tables, figures and report.

    Parameters
    ----------
    out
        The study folder: ``run/`` (the ``bulk fit`` run; rerunning resumes), ``subtype/``,
        [``survival/``], ``tables/``, ``figures/``, ``preset.json``, ``report.html``.
    given
        The user's ``bulk fit`` values (``None``: not given); they override the paper's.
    subtypes
        CSV of patient and PAM50 subtype: the split keeps their proportions and the
        subtype classifier learns them on the training patients.
    clinical, time_col, event_col
        Optional clinical table for the survival analysis of the predicted subtypes.
    short
        A CPU-sized schedule (:data:`SHORT`), named in the report.
    """
    from ..bulk import fit_run
    from .hist2rna_outputs import write_outputs

    out = Path(out)
    if not Path(subtypes).is_file():
        raise InputError(f"{subtypes}: no such subtype table; give a CSV of patient,subtype "
                         "(hist2RNA stratifies its split and trains its classifier on it)")
    given = {**given, "strata": str(subtypes)}
    cfg, prov = HIST2RNA.resolve(given, file)
    prov.sources["strata"] = {"value": str(subtypes), "where": "seed 001, 2.1 Dataset",
                              "source": "user (the paper's split keeps subtype proportions)"}
    if short:
        cfg = short_schedule(cfg, prov, given, SHORT)
    out.mkdir(parents=True, exist_ok=True)
    record = {**prov.to_dict(), "short": short, "config": cfg.to_dict(),
              "subtypes": str(subtypes), "clinical": None if clinical is None else str(clinical)}
    write_json(out / "preset.json", record)
    run = fit_run(cfg, out / "run")
    return write_outputs(out, run.path, record, HIST2RNA, subtypes=subtypes,
                         subtype_col=subtype_col, clinical=clinical, time_col=time_col,
                         event_col=event_col)
