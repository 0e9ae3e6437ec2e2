"""BrST-Net (seed 003): spot expression of the top 250 genes from breast H&E, CNNs and ViTs
trained from scratch on 224 px spot patches, with and without the auxiliary network.

:data:`BRSTNET` holds the paper's protocol as config values, each with the section it comes
from; :func:`reproduce_brstnet` runs it: one ``st fit`` run per main network, with AuxNet
(λ = 40) and without (λ = 0), all on the same folds, then the paper's Tables 1-3 and
Figs. 2-4 (:mod:`.brstnet_outputs`) and a report with a "paper vs this run" table.

The split follows the paper where the data allow it: 5-fold cross-validation over patients
plus one held-out patient (seed 003, Implementation and setup). With a single patient (the
shared her2st sections) sections take the place of patients, one section is held out and
``k`` is capped at the number of sections left; the record says so.

Where the paper is ambiguous: both losses are "calculated using cross-entropy" (Eq. 5) on
continuous expression. The defensible reading, the default, is the squared error on
per-gene standardised targets (a regression loss); the literal one, binary cross-entropy on
targets min-max scaled to [0, 1], is ``--param loss=bce``. Its weight decay is not given:
1e-4 here, stated as such.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from .. import _keys as K
from ..atomic import write_json
from ..config import STConfig
from ..errors import InputError
from .brstnet_outputs import write_outputs
from .preset import Departure, Headline, PaperValue, Preset, Provenance, short_schedule

__all__ = ["BRSTNET", "ENCODERS", "reproduce_brstnet"]

logger = logging.getLogger(__name__)

_S = "Implementation and setup"
#: the preset: the paper's values (seed 003) and where it states each
BRSTNET = Preset(
    "brstnet", "003", "BrST-Net: spot expression of 250 genes from breast H&E (Rahaman et al.)",
    STConfig,
    values=[
        PaperValue("model", "cnn_aux", "Gene expression prediction models (main network + "
                   "AuxNet, one fully connected layer before the end of the network)"),
        PaperValue("encoder", "efficientnet_b0", "Quantitative results (EfficientNet-b0 best)"),
        PaperValue("pretrained", False, "Abstract: all trained without pretrained weights"),
        PaperValue("genes", "top250", f"{_S}; Discussion: top 250 genes by mean"),
        PaperValue("min_counts", 1000.0, "Gene and spots filtering: >= 1000 reads per spot"),
        PaperValue("log", "log1p", "Discussion: a logarithmic transformation of the counts"),
        PaperValue("target_sum", 0.0, "Discussion: the counts are log-transformed; no per-spot "
                   "scaling is described"),
        PaperValue("patch_px", 224, "Generating image patches: m = n = 224 px"),
        PaperValue("patch_um", 0.0, "Generating image patches: 224 px cut from the 20x "
                   "image at its own resolution"),
        PaperValue("max_white", 0.5, "Generating image patches: > 50 % white excluded"),
        PaperValue("context", 0, "Generating image patches: each spot's own patch, no "
                   "neighbourhood (st fit's default context is off here)"),
        PaperValue("scales", (), "Generating image patches: one 224 px patch per spot"),
        PaperValue("split", "patient", f"{_S}: 5-fold CV on 22 of 23 patients"),
        PaperValue("k", 5, _S),
        PaperValue("stain", "luminosity+vahadane", "Stain normalization: StainTools' "
                   "LuminosityStandardizer and Vahadane (brightness first, StainTools' order)"),
        PaperValue("model_params.batch_size", 32, _S),
        PaperValue("model_params.max_epochs", 200, _S),
        PaperValue("model_params.lr", 1e-3, f"{_S}: SGD, learning rate 0.001"),
        PaperValue("model_params.aux_weight", 40.0, "Eq. 5: lambda = 40"),
        PaperValue("model_params.augment", True, "Data augmentation: flips and 90° rotations"),
    ],
    departures=[
        Departure("model_params.weight_decay", "not given", 1e-4, "the paper uses weight decay "
                  "but gives no value"),
        Departure("model_params.loss", "cross-entropy", "mse", "cross-entropy is not defined "
                  "for continuous expression; squared error on standardised targets (the "
                  "literal reading: --param loss=bce)"),
    ],
    headlines=[
        Headline("genes with a positive median PCC on the held-out patient", 237,
                 "Results, Fig. 3", "23 patients (ST breast dataset), EfficientNet-b0 + AuxNet"),
        Headline("genes with median PCC > 0.5", 24, "Results", "idem"),
        Headline("genes with median PCC 0.3-0.5", 123, "Results", "idem"),
        Headline("aMAE on the test patient", 0.7490, "Table 2", "idem"),
        Headline("aRMSE on the test patient", 0.9144, "Table 2", "idem"),
    ],
)

#: the main networks the paper trained, in its order (seed 003, Quantitative results)
ENCODERS = ("resnet101", "inception_v3", "efficientnet_b0", "efficientnet_b1",
            "efficientnet_b2", "efficientnet_b3", "efficientnet_b4", "efficientnet_b5",
            "vit_base_patch16_224", "vit_base_patch32_224")
#: a schedule that runs on a CPU in minutes; named in the record and the report
SHORT = {"max_epochs": 2, "patience": 1}


def _split(cfg: STConfig, adata: Any, prov: Provenance) -> STConfig:
    """The paper's split (k folds over patients + one held-out patient) as far as the data
    allow; every change is recorded in ``prov`` as a departure."""
    patients = sorted(adata.obs[K.PATIENT_ID].astype(str).unique())
    sections = sorted(adata.obs[K.SLIDE_ID].astype(str).unique())
    split = cfg.split
    if split == "patient" and len(patients) < 3:
        split = "section"
        prov.sources["split"] = {"value": split, "where": "seed 003, " + _S, "source":
                                 f"departure: {len(patients)} patient(s) in the data; "
                                 "sections are the groups (paper: patient)"}
    groups = patients if split == "patient" else sections
    holdout = cfg.holdout or (groups[0],)
    if not cfg.holdout:
        prov.sources["holdout"] = {"value": list(holdout), "where": "seed 003, " + _S,
                                   "source": f"the first {split} held out, as the paper held "
                                   "out one patient"}
    left = len(set(groups) - set(holdout))
    if left < 2:
        raise InputError(f"BrST-Net's protocol needs at least 3 {split}s (one held out, two "
                         f"for cross-validation); the data have {len(groups)}")
    k = min(cfg.k, left)
    if k != cfg.k:
        prov.sources["k"] = {"value": k, "where": "seed 003, " + _S, "source": f"departure: "
                             f"only {left} {split}s outside the held-out one (paper: 5)"}
    return replace(cfg, split=split, holdout=tuple(holdout), k=k)


def variants(cfg: STConfig, encoders: tuple[str, ...], aux: tuple[bool, ...]
             ) -> list[tuple[str, STConfig]]:
    """``(name, config)`` of each run: every encoder with AuxNet (λ from the preset) and
    without (λ = 0); the baselines only in the first run (they do not depend on it)."""
    out = []
    for i, enc in enumerate(encoders):
        for j, with_aux in enumerate(aux):
            params = dict(cfg.model_params)
            if not with_aux:
                params["aux_weight"] = 0.0
            name = f"{enc}{'+aux' if with_aux else ''}"
            out.append((name, replace(cfg, encoder=enc, model_params=params,
                                      baselines=cfg.baselines if i == j == 0 else ())))
    return out


def reproduce_brstnet(out: str | Path, given: dict[str, Any], *, encoders: tuple[str, ...] = (),
                      aux: tuple[bool, ...] = (True, False), short: bool = False,
                      file: Any = None, adata: Any = None) -> Path:
    """Run BrST-Net's protocol into ``out`` and write its tables, figures and report.

    Parameters
    ----------
    out
        The study folder: ``runs/<encoder>[+aux]/`` (``st fit`` runs; rerunning resumes),
        ``tables/``, ``figures/``, ``preset.json``, ``report.html``.
    given
        The user's config values (``None``: not given); they override the paper's.
    encoders
        Main networks (encoder cards); default: the configured one (the paper's
        EfficientNet-b0). :data:`ENCODERS` are the paper's ten.
    aux
        Which variants: with AuxNet (``True``) and / or without.
    short
        A CPU-sized schedule (:data:`SHORT` epochs), named in the report.
    adata
        Sections already in memory (else ``data`` is read).

    Returns
    -------
    Path
        The report.
    """
    from ..expression.discover import read_cohort

    out = Path(out)
    cfg, prov = BRSTNET.resolve(given, file)
    if short:
        cfg = short_schedule(cfg, prov, given, SHORT)
    if adata is None:
        if not cfg.data:
            raise InputError("no data given; pass --data with the sections (her2st-style "
                             "folders, Space Ranger outputs or .h5ad)")
        adata = read_cohort(cfg.data, join=cfg.join)
    cfg = _split(cfg, adata, prov)
    encoders = tuple(encoders) or (cfg.encoder,)
    out.mkdir(parents=True, exist_ok=True)
    record = {**prov.to_dict(), "encoders": list(encoders), "aux": list(aux), "short": short,
              "config": cfg.to_dict()}
    write_json(out / "preset.json", record)
    runs = {}
    from ..st.fit import fit_run

    for name, vcfg in variants(cfg, encoders, tuple(aux)):
        logger.info("BrST-Net: %s", name)
        runs[name] = fit_run(vcfg, out / "runs" / name, adata=adata, maps=False).path
    return write_outputs(out, runs, record, BRSTNET)
