"""Typed, frozen run configurations, validated on entry and saved with the results.

Each workflow has one config: a frozen dataclass whose fields carry an :class:`Option`
(help text, command-line flag, argparse type and choices, whether it is an execution
setting). That one declaration makes the JSON config (:meth:`~_Config.to_dict`, the keys
``--config FILE`` reads), the command-line flags (:func:`add_config_flags`) and their
``--help``. Values merge in one order: the defaults here < a JSON config file < command-line
options (:func:`config_from_args`) < keyword arguments (:meth:`~_Config.resolve`), and every
value is checked before any data is read.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from .errors import InputError

__all__ = ["BASELINES", "BULK_BASELINES", "EXECUTION", "PROTOCOLS", "BulkConfig", "Option",
           "STConfig", "add_config_flags", "config_from_args", "execution_keys", "flag_names",
           "parse_genes", "parse_params"]

logger = logging.getLogger(__name__)

#: field metadata of an execution setting: how a run is computed (device, batch size,
#: workers), not what it computes; kept out of the run's identity (``config.json``), so a run
#: resumes on another machine or with another batch size
EXECUTION = {"execution": True}


@dataclass(frozen=True)
class Option:
    """How one config field is documented and spelled (the field's ``metadata["option"]``).

    ``help`` is the ``--help`` text (the field's default is appended). ``flags``: the
    option strings (default ``--field-name``); for a bool field, the ones that flip its
    default, and ``undo`` the ones that set the default back (e.g. over a ``--config``
    file). ``form``: ``"one"`` value, ``"nargs"`` (space-separated values), ``"comma"`` (one
    comma list; the word ``empty`` gives an empty list) or ``"params"`` (repeated
    ``KEY=VALUE``); list items take the field's annotated item type, in the JSON file too.
    ``hidden``: other flags still accepted and not shown; ``deprecated``: old flags
    accepted with a warning naming ``flags[0]``; ``legacy``: old JSON keys accepted.
    """

    help: str
    flags: tuple[str, ...] = ()
    undo: tuple[str, ...] = ()
    form: str = "one"
    empty: str | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    hidden: tuple[str, ...] = ()
    deprecated: tuple[str, ...] = ()
    legacy: tuple[str, ...] = ()


def opt(default: Any = MISSING, help: str = "", *, factory: Any = MISSING,
        execution: bool = False, **option: Any) -> Any:
    """A dataclass field documented by an :class:`Option` (``execution=True`` marks an
    execution setting)."""
    meta: dict[str, Any] = {"option": Option(help, **option)}
    if execution:
        meta |= EXECUTION
    if factory is not MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def execution_keys(cls: Any) -> tuple[str, ...]:
    """The execution settings among the fields of a config class."""
    return tuple(f.name for f in fields(cls) if f.metadata.get("execution"))


def _option(f: Field) -> Option:
    return f.metadata["option"]


def flag_names(f: Field) -> tuple[str, ...]:
    """The visible command-line flags of a config field (``k`` → ``("--folds",)``)."""
    o = _option(f)
    return o.flags or ("--" + f.name.replace("_", "-"),)


def _item_type(f: Field) -> type:
    """``int`` / ``float`` / ``str`` from the annotation (``tuple[float, ...]`` → float)."""
    t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "str")
    t = t.removeprefix("tuple[")
    return int if t.startswith("int") else float if t.startswith("float") else str


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings (``--param``) as a dict, values parsed as JSON where they are.

    Examples
    --------
    >>> parse_params(["max_epochs=5", "hidden=[64, 32]", "act=relu"])
    {'max_epochs': 5, 'hidden': [64, 32], 'act': 'relu'}
    """
    out: dict[str, Any] = {}
    for it in items:
        key, sep, value = it.partition("=")
        if not sep or not key:
            raise InputError(f"--param {it!r}: use KEY=VALUE, e.g. --param max_epochs=5")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _coerce(f: Field, value: Any) -> Any:
    """A JSON or command-line value in the field's type (lists → tuples of the item type)."""
    o = _option(f)
    if o.form == "params":
        return dict(value) if isinstance(value, Mapping) else parse_params(value)
    if o.form not in ("nargs", "comma"):
        return value
    if isinstance(value, str):
        value = ([] if value == o.empty else value.split(",") if o.form == "comma"
                 else [value])
    try:
        items = [x.strip() if isinstance(x, str) else x for x in value]
        return tuple(_item_type(f)(x) for x in items if x != "")
    except (TypeError, ValueError):
        raise InputError(f"{f.name} must be a list of {_item_type(f).__name__} values, "
                         f"got {value!r}") from None


def _layer(cls: Any, values: Mapping[str, Any]) -> dict[str, Any]:
    """One layer of values (file, options, keywords) with legacy keys renamed."""
    out = dict(values)
    for f in fields(cls):
        for old in _option(f).legacy:
            if old in out:
                v = out.pop(old)
                out.setdefault(f.name, v)
    return out


def _resolve(cls: Any, file: str | Path | None, overrides: Mapping[str, Any]) -> Any:
    """Merge defaults < JSON ``file`` < ``overrides`` into ``cls`` and validate it."""
    values: dict[str, Any] = {}
    if file is not None:
        try:
            raw = json.loads(Path(file).read_text())
        except (OSError, ValueError) as e:
            raise InputError(f"{file}: not a JSON config ({e})") from e
        if not isinstance(raw, dict):
            raise InputError(f"{file}: a JSON config is an object of keys and values")
        values.update(_layer(cls, raw))
    values.update(_layer(cls, {k: v for k, v in overrides.items() if v is not None}))
    by_name = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise InputError(f"unknown config key(s) {', '.join(unknown)}; valid keys: "
                         f"{', '.join(sorted(by_name))}")
    cfg = cls(**{k: _coerce(by_name[k], v) for k, v in values.items()})
    cfg.validate()
    return cfg


C = TypeVar("C", bound="_Config")


class _Config:
    """What every run config shares: the merge, the JSON form and the identity split."""

    @classmethod
    def resolve(cls: type[C], file: str | Path | None = None, **overrides: Any) -> C:
        """Defaults < ``file`` (JSON) < ``overrides`` (``None`` values are ignored)."""
        return _resolve(cls, file, overrides)

    @classmethod
    def from_dict(cls: type[C], d: Mapping[str, Any]) -> C:
        return cls.resolve(**dict(d))

    def validate(self) -> None:  # pragma: no cover - every config defines it
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: one key per field, lists for tuples."""
        return {k: list(v) if isinstance(v, tuple) else dict(v) if isinstance(v, Mapping)
                else v for k, v in asdict(self).items()}  # type: ignore[call-overload]

    def identity(self) -> dict[str, Any]:
        """What defines the result: every field but the execution settings (written to
        ``config.json`` and compared on resume)."""
        keys = set(execution_keys(type(self)))
        return {k: v for k, v in self.to_dict().items() if k not in keys}

    def execution(self) -> dict[str, Any]:
        """How the result is computed (recorded in ``run.json``; may change on resume)."""
        d = self.to_dict()
        return {k: d[k] for k in execution_keys(type(self))}


class _Switch(argparse.Action):
    """A bool field's flags: those in ``on`` set True, the others False."""

    def __init__(self, option_strings: list[str], dest: str, *, on: tuple[str, ...],
                 **kw: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, **kw)
        self.on = on

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, option_string in self.on)


class _Deprecated(argparse.Action):
    """An old flag: stores its value and notes it (logged by :func:`config_from_args`,
    once logging is set up)."""

    def __init__(self, option_strings: list[str], dest: str, *, use: str, **kw: Any) -> None:
        super().__init__(option_strings, dest, **kw)
        self.use = use

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, values)
        notes = getattr(namespace, "deprecated_flags", None) or []
        namespace.deprecated_flags = [*notes, (option_string, self.use)]


def _default_text(f: Field) -> str:
    v = f.default
    if v is MISSING or v is None or isinstance(v, bool) or v in ("", ()):
        return ""
    if isinstance(v, tuple):
        v = ",".join(map(str, v))
    elif isinstance(v, float):
        v = f"{v:g}"
    return f" (default: {v})"


def add_config_flags(parser: argparse.ArgumentParser, cls: Any) -> None:
    """Add ``--config FILE`` and one flag per field of ``cls`` (every default ``None``, so
    :func:`config_from_args` sees what was given), in two groups: what defines the run and
    the execution settings.

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> add_config_flags(p, BulkConfig)
    >>> a = p.parse_args(["--folds", "3", "--holdout-fraction", "0", "--no-refit"])
    >>> a.k, a.holdout_fraction, a.refit, a.seed
    (3, 0.0, False, None)
    """
    run = parser.add_argument_group(
        "run config", "what the run computes, saved in RUN/config.json; read from --config\n"
        "FILE too, and options given here override it")
    exe = parser.add_argument_group(
        "execution", "how it is computed: not part of the run's identity, so a run resumes\n"
        "with other values")
    run.add_argument("--config", type=Path, default=None, metavar="FILE",
                     help="JSON config: keys are the field names of config.json")
    for f in fields(cls):
        o, names = _option(f), flag_names(f)
        group = exe if f.metadata.get("execution") else run
        text = (o.help + _default_text(f)).replace("%", "%%")
        if isinstance(f.default, bool):
            on = names if not f.default else o.undo
            if o.undo:
                text += f"; {o.undo[0]} sets the default back"
            group.add_argument(*names, *o.undo, dest=f.name, action=_Switch, on=on,
                               default=None, help=text)
            continue
        kw: dict[str, Any] = {"dest": f.name, "default": None, "metavar": o.metavar}
        if o.form == "nargs":
            kw["nargs"] = "+"
        elif o.form == "params":
            kw["action"] = "append"
        elif o.form == "one":
            kw |= {"type": _item_type(f), "choices": o.choices}
            if o.choices:
                kw.pop("metavar")
        group.add_argument(*names, help=text, **kw)
        if o.hidden:
            group.add_argument(*o.hidden, help=argparse.SUPPRESS, **kw)
        if o.deprecated:
            group.add_argument(*o.deprecated, help=argparse.SUPPRESS, use=names[0],
                               **(kw | {"action": _Deprecated}))


def config_from_args(cls: type[C], args: argparse.Namespace, file: str | Path | None = None,
                     **overrides: Any) -> C:
    """The config from parsed :func:`add_config_flags` options: defaults < ``file`` (or
    ``--config``) < the options given < ``overrides``.

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> add_config_flags(p, STConfig)
    >>> cfg = config_from_args(STConfig, p.parse_args(["--data", "d", "--baselines", "none"]))
    >>> cfg.data, cfg.baselines, cfg.k
    (('d',), (), 5)
    """
    for old, new in getattr(args, "deprecated_flags", None) or []:
        logger.warning("%s is deprecated here; use %s", old, new)
    given = {f.name: getattr(args, f.name, None) for f in fields(cls)}
    file = file if file is not None else getattr(args, "config", None)
    return cls.resolve(file, **(given | {k: v for k, v in overrides.items() if v is not None}))


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
class STConfig(_Config):
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
    target_sum: float = opt(1e4, "counts each spot is scaled to before the transform")
    min_counts: float = opt(1000.0, "drop spots with fewer counts (BrST-Net's, seed 003, "
                            "Gene and spots filtering)")
    patch_um: float = opt(112.0, "patch side in µm around each spot (BrST-Net's 224 px at "
                          "20×, 0.5 µm/px; seed 003, Dataset description)")
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
                     "luminosity (BrST-Net: vahadane + luminosity, seed 003, Stain "
                     "normalization)", metavar="METHOD")
    stain_target: str | None = opt(None, "reference image for --stain", metavar="IMAGE")
    join: str = opt("inner", "genes of sections that differ: inner (those in every section) "
                    "or outer (all; absent counts are 0)", choices=("inner", "outer"))
    refit: bool = opt(True, "skip the final model (st predict needs it)", flags=("--no-refit",),
                      undo=("--refit",))
    seed: int = opt(0, _SEED)
    batch_size: int = opt(64, "patches per encoder batch", execution=True)
    num_workers: int = opt(0, "data-loading worker processes", execution=True)
    device: str | None = opt(None, _DEVICE, execution=True)

    def validate(self) -> None:
        """Check every value; raises :class:`~histoexpr.errors.InputError` naming the key."""
        from .cohort import SPLITS
        from .features.encoders import get_card
        from .models import MODELS

        if self.model not in MODELS.list():
            raise InputError(f"unknown model {self.model!r}; choose one of: "
                             f"{', '.join(MODELS.list())}")
        get_card(self.encoder)  # unknown names list the valid ones; tuned folders register
        parse_genes(self.genes)
        if self.log not in _LOGS:
            raise InputError(f"log must be one of {', '.join(_LOGS)}, not {self.log!r}")
        if self.split not in SPLITS:
            raise InputError(f"unknown split {self.split!r}; choose one of: {', '.join(SPLITS)}")
        bad = sorted(set(self.baselines) - set(BASELINES))
        if bad:
            raise InputError(f"unknown baseline(s) {', '.join(bad)}; choose from "
                             f"{', '.join(BASELINES)}")
        checks = [("k", self.k >= 2, "at least 2"), ("patch_um", self.patch_um > 0, "positive"),
                  ("patch_px", self.patch_px >= 8, "at least 8"),
                  ("max_white", 0 < self.max_white <= 1, "in (0, 1]"),
                  ("min_counts", self.min_counts >= 0, "non-negative"),
                  ("target_sum", self.target_sum > 0, "positive"),
                  ("batch_size", self.batch_size >= 1, "at least 1"),
                  ("num_workers", self.num_workers >= 0, "non-negative")]
        for name, ok, what in checks:
            if not ok:
                raise InputError(f"{name} must be {what}, got {getattr(self, name)!r}")
        if self.join not in ("inner", "outer"):
            raise InputError(f"join must be 'inner' or 'outer', not {self.join!r}")


#: the baselines every bulk evaluation reports beside the model
BULK_BASELINES = ("mean", "colour", "random")
#: bulk evaluation protocols: k-fold CV by patient plus a held-out set, or train/val/test
PROTOCOLS = ("kfold", "split")


@dataclass(frozen=True)
class BulkConfig(_Config):
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
        from .models import BULK_MODELS

        if not self.features or not self.expression:
            raise InputError("a bulk run needs --features DIR and --expression FILE")
        if self.model not in BULK_MODELS:
            raise InputError(f"unknown model {self.model!r}; choose one of: "
                             f"{', '.join(BULK_MODELS.list())}")
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
        if len(fr) != 3 or min(fr) <= 0 or abs(sum(fr) - 1) > 1e-6:
            raise InputError(f"split_fractions must be three positive fractions summing to 1 "
                             f"(train, validation, test), got {list(fr)}")
