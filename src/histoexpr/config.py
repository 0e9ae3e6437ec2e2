"""Typed, frozen run configurations, validated on entry and saved with the results.

Each workflow has one config: a frozen dataclass whose fields carry an
:class:`~histoexpr.options.Option` (help text, command-line flag, argparse type and choices,
whether it is an execution setting). That one declaration makes the JSON config (the keys
``--config FILE`` reads), the command-line flags (:func:`add_config_flags`) and their
``--help``. Values merge in one order: the defaults here < a JSON config file < command-line
options (:func:`config_from_args`) < keyword arguments (``resolve``), and every value is
checked before any data is read. The machinery is in :mod:`histoexpr.options`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InputError
from .options import (
    EXECUTION,
    ConfigBase,
    Option,
    add_config_flags,
    config_from_args,
    execution_keys,
    flag_names,
    opt,
    parse_params,
)

__all__ = ["BASELINES", "BULK_BASELINES", "EXECUTION", "PROTOCOLS", "BulkConfig", "Option",
           "STConfig", "add_config_flags", "config_from_args", "execution_keys", "flag_names",
           "parse_genes", "parse_params"]

logger = logging.getLogger(__name__)


#: the baselines every spatial evaluation reports beside the model
BASELINES = ("mean", "colour", "random")
_LOGS = ("log1p", "log2", "none")


def parse_genes(spec: str) -> tuple[str, int, list[str] | None]:
    """``"top250"`` → ``("top_mean", 250, None)``; ``"hvg50"`` → ``("hvg", 50, None)``; a
    built-in panel, a file (one gene per line) or ``"A,B,C"`` → ``("list", n, [...])``. The
    grammar is :class:`~histoexpr.expression.genespec.GeneRequest`'s.

    Examples
    --------
    >>> parse_genes("top250"), parse_genes("hvg50"), parse_genes("ERBB2,GRB7")
    (('top_mean', 250, None), ('hvg', 50, None), ('list', 2, ['ERBB2', 'GRB7']))
    >>> parse_genes("pam50")[:2]
    ('list', 50)
    """
    from .expression.genespec import GeneRequest

    r = GeneRequest.parse(spec)
    return (r.kind, r.n, None) if r.genes is None else ("list", r.n, list(r.genes))


# help texts shared by both workflows; "seed NNN" is the paper in ../shared/seeds/
_GENES = ("a built-in panel (pam50, hist2rna138, gastric4), all, topN (highest mean), hvgN, "
          "a file of gene names, or A,B,C")
_STRICT = ("every gene of a panel or file must be in the data (default: the missing ones "
           "are named and the rest fitted, if at least half remain)")
_TRANSFORM = "log1p, log2 (log2(1+x)) or none"
_PARAM = "a model parameter (repeatable; JSON values), e.g. --param max_epochs=5"
_BASELINES_HELP = "comma list of mean, colour, random; 'none' for none"
_SEED = "random seed of the folds and the models"
_DEVICE = "torch device, e.g. cpu, cuda, cuda:1 (default: cuda when available, else cpu)"


@dataclass(frozen=True)
class STConfig(ConfigBase):
    """Everything a spatial run depends on (saved as ``config.json`` in the run folder).

    Examples
    --------
    >>> cfg = STConfig.resolve(data=["sections.json"], model="ridge", split="section")
    >>> cfg.genes, cfg.patch_um, cfg.baselines
    ('top250', 112.0, ('mean', 'colour', 'random'))
    """

    data: tuple[str, ...] = opt(
        (), "section folders (her2st-style, Space Ranger), .h5ad files or a sections.json "
        "list; NAME=PATH prefixes a folder's section and patient ids", form="nargs",
        metavar="PATH")
    encoder: str = opt("efficientnet_lite0", "encoder card (histoexpr info --encoders); an "
                       "EfficientNet, the family BrST-Net found best (seed 003, Quantitative "
                       "results)", metavar="NAME")
    pretrained: bool = opt(True, "use the encoder with random weights", flags=("--random-init",),
                           undo=("--pretrained",))
    model: str = opt("ridge", "spot model: ridge, mlp, cnn_aux (BrST-Net's CNN with an "
                     "auxiliary head, seed 003, Gene expression prediction models) or mean",
                     metavar="NAME")
    model_params: Mapping[str, Any] = opt(help=_PARAM, factory=dict, form="params",
                                          flags=("--param",), metavar="KEY=VALUE")
    genes: str = opt("top250", "genes to fit, chosen on each training fold: " + _GENES + "; "
                     "BrST-Net fitted its top 250 (seed 003, Implementation and setup)",
                     metavar="SPEC")
    strict_genes: bool = opt(False, _STRICT, undo=("--no-strict-genes",))
    log: str = opt("log1p", "transform of the counts scaled to --target-sum: " + _TRANSFORM
                   + "; BrST-Net log-transforms (seed 003, Discussion)", choices=_LOGS,
                   flags=("--transform",), hidden=("--log",))
    target_sum: float = opt(1e4, "counts each spot is scaled to before the transform (0: "
                            "no scaling, the raw counts are transformed, as BrST-Net did)")
    min_counts: float = opt(1000.0, "drop spots with fewer counts (BrST-Net's, seed 003, "
                            "Gene and spots filtering)")
    patch_um: float = opt(112.0, "patch side in µm around each spot (BrST-Net's 224 px at "
                          "20×, 0.5 µm/px; seed 003, Dataset description); 0: --patch-px "
                          "pixels at the images' own resolution (their median µm/px)")
    patch_px: int = opt(224, "patch side in pixels given to the encoder (BrST-Net's, seed "
                        "003, Generating image patches)")
    max_white: float = opt(0.5, "drop spots whose patch is more than this fraction white "
                           "(BrST-Net's 50 %, seed 003, Generating image patches)")
    split: str = opt("patient", "group the folds by patient or by section (one patient: use "
                     "section)", choices=("patient", "section"))
    k: int = opt(5, "cross-validation folds (BrST-Net's 5, seed 003, Implementation and "
                 "setup)", flags=("--folds",))
    holdout: tuple[str, ...] = opt(
        (), "patients (or sections, with --split section) held out from CV and scored by the "
        "final model, as BrST-Net held out one patient (seed 003, Implementation and setup)",
        form="nargs", metavar="GROUP")
    baselines: tuple[str, ...] = opt(BASELINES, _BASELINES_HELP, form="comma", empty="none",
                                     metavar="LIST")
    stain: str = opt("none", "stain normalisation: none, macenko, vahadane, reinhard, "
                     "luminosity, or a chain such as luminosity+vahadane (BrST-Net's, seed "
                     "003, Stain normalization)", metavar="METHOD")
    stain_target: str | None = opt(None, "reference image for --stain", metavar="IMAGE")
    tta: bool = opt(False, "test-time augmentation: encoder features averaged over the 8 "
                    "flips and rotations of each patch (8x the encoder time)",
                    undo=("--no-tta",))
    ensemble_encoders: tuple[str, ...] = opt(
        (), "more encoders beside --encoder: the model is fitted on each encoder's features "
        "and the predictions averaged (an ensemble; the random-init baseline ensembles the "
        "same encoders with random weights)", form="comma", metavar="LIST")
    stain_augment: str | None = opt(None, "stain augmentation of the training spots: light "
                                    "or strong (HED jitter of Tellez et al. 2019, with "
                                    "brightness/contrast and stain-vector perturbations); "
                                    "features models train on --augment-copies extra "
                                    "feature rows per spot, patch models augment each batch; "
                                    "predictions see no augmentation",
                                    choices=("light", "strong"))
    augment_copies: int = opt(2, "stain-augmented copies of each training spot's features "
                              "(with --stain-augment; each costs one more embedding pass)")
    smooth_targets: float | None = opt(None, "denoise the training targets over the spot "
                                       "grid before fitting (strength in [0, 1]: the "
                                       "weight of the grid neighbours' mean); the "
                                       "test spots are scored on their measured values",
                                       metavar="STRENGTH")
    smooth: bool = opt(False, "also score the main model's predictions smoothed over the spot "
                       "grid, the strength chosen on the other folds (entry <model>+smooth; "
                       "st predict applies it)", undo=("--no-smooth",))
    context: float | None = opt(None, "spot context: join each spot's features with the mean "
                                "of its neighbours' within this many grid steps (e.g. 1: the "
                                "ring around it); applied to every feature entry, baselines "
                                "too; 0: off. Default 2 (the recipe that held best on "
                                "sections never seen, README 'Spatial: unseen patients')",
                                metavar="STEPS")
    context_attention: bool = opt(False, "pool the --context neighbours by attention (each "
                                  "weighted by its features' cosine similarity to the spot's, "
                                  "a softmax) instead of their plain mean",
                                  undo=("--no-context-attention",))
    scales: tuple[float, ...] = opt(
        (), "more patch sides in µm around each spot: each is read at --patch-px pixels, "
        "embedded, and its features joined to the --patch-um patch's (multi-scale context; "
        "one more encoder pass per scale); none: the patch alone. Default for features "
        "models: 2 and 4 times --patch-um (224,448 beside 112 µm patches; the recipe that "
        "held best on sections never seen)", form="comma",
        empty="none", metavar="UM,...")
    gene_names: str | None = opt(None, "GTF or id,symbol table naming genes the sections give "
                                 "by Ensembl id (the ST-Net / BrST-Net breast data, seed "
                                 "003)", metavar="FILE")
    join: str = opt("inner", "genes of sections that differ: inner (those in every section) "
                    "or outer (all; absent counts are 0)", choices=("inner", "outer"))
    refit: bool = opt(True, "skip the final model (st predict needs it)", flags=("--no-refit",),
                      undo=("--refit",))
    seed: int = opt(0, _SEED)
    batch_size: int = opt(64, "patches per encoder batch", execution=True)
    num_workers: int = opt(0, "data-loading worker processes", execution=True)
    device: str | None = opt(None, _DEVICE, execution=True)

    @classmethod
    def fill_defaults(cls, values: Mapping[str, Any]) -> dict[str, Any]:
        """The recommended recipe's defaults where not given (issue 20's benchmark: the best
        on sections never seen, README 'Spatial: unseen patients'): ``context`` 2 grid steps
        and, for features models, ``scales`` of 2 and 4 times the patch (224 and 448 µm
        beside the default 112 µm patch); a given
        ``context`` of 0 is off (``None``)."""
        from .models import level_input

        out = dict(values)
        if "context" not in out:
            out["context"] = RECOMMENDED_CONTEXT
        elif out["context"] is not None and float(out["context"]) == 0:
            out["context"] = None
        if "scales" not in out:
            try:
                features = level_input(out.get("model", "ridge"), "spot") == "features"
            except InputError:
                features = False  # an unknown model: validate names it
            um = float(out.get("patch_um", 112.0) or 0)
            scales = tuple(f * um for f in RECOMMENDED_SCALE_FACTORS) if um > 0 \
                else RECOMMENDED_SCALES  # native pixels: BrST-Net's 224 px are ~112 µm
            out["scales"] = scales if features else ()
        return out

    def validate(self) -> None:
        """Check every value; raises :class:`~histoexpr.errors.InputError` naming the key."""
        from .cohort import SPLITS
        from .features.encoders import get_card
        from .models import level_input

        level_input(self.model, "spot")  # unknown or slide-only names list the valid ones
        get_card(self.encoder)  # unknown names list the valid ones; tuned folders register
        for name in self.ensemble_encoders:
            get_card(name)
        if self.ensemble_encoders and level_input(self.model, "spot") != "features":
            raise InputError(f"ensemble_encoders: model {self.model!r} trains its own encoder "
                             "on patches; ensembles of encoders take a features model "
                             "(ridge, mlp)")
        if len(set((self.encoder, *self.ensemble_encoders))) <= len(self.ensemble_encoders):
            raise InputError(f"ensemble_encoders {','.join(self.ensemble_encoders)}: each "
                             f"encoder once, and not --encoder {self.encoder} again")
        parse_genes(self.genes)
        if self.log not in _LOGS:
            raise InputError(f"log must be one of {', '.join(_LOGS)}, not {self.log!r}")
        if self.split not in SPLITS:
            raise InputError(f"unknown split {self.split!r}; choose one of: {', '.join(SPLITS)}")
        bad = sorted(set(self.baselines) - set(BASELINES))
        if bad:
            raise InputError(f"unknown baseline(s) {', '.join(bad)}; choose from "
                             f"{', '.join(BASELINES)}")
        checks = [("k", self.k >= 2, "at least 2"),
                  ("patch_um", self.patch_um >= 0, "0 or positive"),
                  ("patch_px", self.patch_px >= 8, "at least 8"),
                  ("max_white", 0 < self.max_white <= 1, "in (0, 1]"),
                  ("min_counts", self.min_counts >= 0, "non-negative"),
                  ("target_sum", self.target_sum >= 0, "0 or positive"),
                  ("batch_size", self.batch_size >= 1, "at least 1"),
                  ("num_workers", self.num_workers >= 0, "non-negative")]
        for name, ok, what in checks:
            if not ok:
                flag = flag_names(self.__dataclass_fields__[name])[0]
                raise InputError(f"{name} ({flag}) must be {what}, got {getattr(self, name)!r}")
        if self.context is not None and not self.context > 0:
            raise InputError(f"context must be a positive number of grid steps (0: off), "
                             f"got {self.context!r}")
        if self.context_attention and not self.context:
            raise InputError("context_attention (--context-attention) pools the --context "
                             "neighbours; give --context STEPS too")
        bad_scales = [v for v in self.scales if not v > 0]
        if bad_scales:
            raise InputError(f"scales (--scales) must be positive patch sides in µm, got "
                             f"{', '.join(map(str, bad_scales))}")
        if self.scales and level_input(self.model, "spot") != "features":
            raise InputError(f"scales (--scales): model {self.model!r} trains its own encoder "
                             "on one patch size; multi-scale features take a features model "
                             "(ridge, mlp)")
        if len(set(self.scales)) < len(self.scales) or self.patch_um in self.scales:
            raise InputError(f"scales (--scales) {','.join(f'{v:g}' for v in self.scales)}: "
                             f"each patch side once, and not --patch-um {self.patch_um:g} "
                             "again")
        if self.stain_augment is not None:
            from .stain.augment import AUGMENT_STRENGTHS

            if self.stain_augment not in AUGMENT_STRENGTHS:
                raise InputError(f"stain_augment must be one of {', '.join(AUGMENT_STRENGTHS)}"
                                 f", not {self.stain_augment!r}")
        if self.augment_copies < 1:
            raise InputError(f"augment_copies must be at least 1, got {self.augment_copies!r}")
        if self.smooth_targets is not None and not 0 <= self.smooth_targets <= 1:
            raise InputError(f"smooth_targets must be in [0, 1], got {self.smooth_targets!r}")
        if self.join not in ("inner", "outer"):
            raise InputError(f"join must be 'inner' or 'outer', not {self.join!r}")


#: the recommended recipe's spot context (grid steps) and extra patch sides (µm), the
#: defaults of ``st fit`` (issue 20; benchmarks/bench_cross_patient.py)
RECOMMENDED_CONTEXT = 2.0
RECOMMENDED_SCALE_FACTORS = (2.0, 4.0)
RECOMMENDED_SCALES = (224.0, 448.0)

#: the baselines every bulk evaluation reports beside the model
BULK_BASELINES = ("mean", "colour", "random")
#: bulk evaluation protocols: k-fold CV by patient plus a held-out set, or train/val/test
PROTOCOLS = ("kfold", "split")


@dataclass(frozen=True)
class BulkConfig(ConfigBase):
    """Everything a bulk run depends on (saved as ``config.json`` in the run folder).

    ``protocol="kfold"``: ``holdout_fraction`` of the patients is set aside first, the rest
    is split into ``k`` patient-disjoint folds; every slide outside the hold-out gets an
    out-of-fold prediction, and the model refitted on all of them predicts the hold-out.
    ``protocol="split"``: patients are split ``split_fractions`` (60/20/20) into train,
    validation and test; the model fitted on train is scored on validation and test.

    Examples
    --------
    >>> cfg = BulkConfig.resolve(features="feats", expression="expr.csv", model="hist2rna")
    >>> cfg.genes, cfg.protocol, cfg.k, cfg.holdout_fraction, cfg.split_fractions
    ('hist2rna138', 'kfold', 5, 0.2, (0.6, 0.2, 0.2))
    """

    features: str = opt("", "folder of per-slide feature .h5 files (histoexpr embed)",
                        metavar="DIR")
    expression: str = opt("", "expression table (CSV/TSV, GDC STAR or FPKM-UQ, cBioPortal, "
                          "GCT)", metavar="FILE")
    expression_format: str | None = opt(None, "expression format (default: sniffed): table, "
                                        "star, fpkm_uq, cbioportal, gct", flags=("--format",),
                                        metavar="NAME")
    expression_value: str | None = opt(None, "GDC STAR column (default: tpm_unstranded)",
                                       flags=("--value",), metavar="COLUMN")
    gtf: str | None = opt(None, "GENCODE GTF that names the Ensembl ids of legacy GDC "
                          "FPKM-UQ files (seed 000's expression; without it those files keep "
                          "Ensembl ids and symbol panels match nothing)", metavar="FILE")
    sample_sheet: str | None = opt(None, "GDC sample sheet TSV naming the sample of each "
                                   "UUID-named expression file", metavar="TSV")
    genes: str = opt("hist2rna138", "genes to fit: " + _GENES + "; topN and hvgN are chosen "
                     "on the training patients; hist2rna138 is hist2RNA's 138 genes of six "
                     "commercial assays (seed 001, 2.3.3)", metavar="SPEC", hidden=("--panel",),
                     legacy=("panel",))
    strict_genes: bool = opt(False, _STRICT, undo=("--no-strict-genes",))
    transform: str = opt("log1p", "expression transform: " + _TRANSFORM + "; log1p is the "
                         "gastric study's log(1+x) (seed 000, 4.2.1), log2 hist2RNA's (seed "
                         "001, 2.3.3)", choices=_LOGS, hidden=("--log",))
    model: str = opt("ridge", "slide model: ridge, mlp, mean, hist2rna (seed 001, 2.4), "
                     "gastric_baseline, gastric_mean, gastric_max, gastric_simplified (seed "
                     "000, 4.2.2), multitask, he2rna, abmil", metavar="NAME")
    model_params: Mapping[str, Any] = opt(help=_PARAM, factory=dict, form="params",
                                          flags=("--param",), metavar="KEY=VALUE")
    join_rule: str = opt("first_dx", "slides per patient: the first diagnostic (DX) slide or "
                         "all", choices=("first_dx", "all"))
    sample_types: tuple[str, ...] = opt(("01",), "TCGA sample types kept, comma list (01: "
                                        "primary tumour); 'any' for all", form="comma",
                                        empty="any", metavar="LIST")
    manifest: str | None = opt(None, "CSV slide,patient[,sample] (non-TCGA names)",
                               metavar="FILE")
    select: str = opt("all", "tiles per slide: all, top N by tumour heatmap (the gastric "
                      "study's 10 tumour patches, seed 000, 4.1) or random N",
                      choices=("all", "top", "random"))
    n_tiles: int | None = opt(None, "N for --select top/random", metavar="N")
    heatmaps: str | None = opt(None, "folder of tumour heatmaps (--select top)", metavar="DIR")
    slides_dir: str | None = opt(None, "where the slides are now (patch models, colour and "
                                 "random baselines)", flags=("--slides",), metavar="DIR")
    protocol: str = opt("kfold", "kfold: k folds by patient plus a held-out fraction; split: "
                        "train/validation/test by --split-fractions", choices=PROTOCOLS)
    k: int = opt(5, "cross-validation folds of --protocol kfold", flags=("--folds",))
    holdout_fraction: float = opt(0.2, "fraction of patients held out from CV and scored by "
                                  "the final model (0 for none)", metavar="F",
                                  deprecated=("--holdout",), legacy=("holdout",))
    split_fractions: tuple[float, ...] = opt(
        (0.6, 0.2, 0.2), "train,validation,test fractions of the patients for --protocol "
        "split (the gastric study's 60/20/20, seed 000, 4.2.1)", form="comma",
        metavar="T,V,T")
    strata: str | None = opt(None, "CSV of patient and a label (e.g. the PAM50 subtype): the "
                             "held-out, validation and test patients are drawn in proportion "
                             "to each label, as hist2RNA's subtype-stratified 335/160 split "
                             "(seed 001, Dataset)", metavar="CSV")
    baselines: tuple[str, ...] = opt(BULK_BASELINES, _BASELINES_HELP + " (colour and random "
                                     "need --slides)", form="comma", empty="none",
                                     metavar="LIST")
    refit: bool = opt(True, "keep no final model (bulk predict needs it)",
                      flags=("--no-refit",), undo=("--refit",))
    seed: int = opt(0, _SEED)
    device: str | None = opt(None, _DEVICE, execution=True)

    def validate(self) -> None:
        """Check every value; raises :class:`~histoexpr.errors.InputError` naming the key."""
        from .features.bags import SELECTIONS
        from .models import level_input

        level_input(self.model, "slide")  # unknown or spot-only names list the valid ones
        if self.transform not in _LOGS:
            raise InputError(f"transform must be one of {', '.join(_LOGS)}, "
                             f"not {self.transform!r}")
        if self.protocol not in PROTOCOLS:
            raise InputError(f"protocol must be one of {', '.join(PROTOCOLS)}, "
                             f"not {self.protocol!r}")
        if self.select not in SELECTIONS:
            raise InputError(f"select must be one of {', '.join(SELECTIONS)}, "
                             f"not {self.select!r}")
        if self.select != "all" and not (self.n_tiles and self.n_tiles >= 1):
            raise InputError(f"select={self.select!r} needs n_tiles >= 1 (--n-tiles)")
        if self.select == "top" and not self.heatmaps:
            raise InputError("select='top' needs a folder of tumour heatmaps (--heatmaps)")
        bad = sorted(set(self.baselines) - set(BULK_BASELINES))
        if bad:
            raise InputError(f"unknown baseline(s) {', '.join(bad)}; choose from "
                             f"{', '.join(BULK_BASELINES)}")
        if self.join_rule not in ("first_dx", "all"):
            raise InputError(f"join_rule must be 'first_dx' or 'all', not {self.join_rule!r}")
        if self.k < 2:
            raise InputError(f"k must be at least 2, got {self.k}")
        if not 0 <= self.holdout_fraction < 1:
            raise InputError(f"holdout_fraction must be in [0, 1), got {self.holdout_fraction}")
        fr = self.split_fractions
        if (len(fr) != 3 or fr[0] <= 0 or fr[2] <= 0 or fr[1] < 0
                or abs(sum(fr) - 1) > 1e-6):
            raise InputError(f"split_fractions must be three fractions summing to 1 (train, "
                             f"validation, test; validation may be 0), got {list(fr)}")
