"""Typed, frozen run configurations, validated on entry and saved with the results.

Values merge in one order: the defaults here < a JSON config file < command-line options <
keyword arguments. :meth:`STConfig.resolve` does the merge and checks every value, so a
mistake is reported before any data is read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import InputError

__all__ = ["BASELINES", "BULK_BASELINES", "EXECUTION", "PROTOCOLS", "BulkConfig", "STConfig",
           "execution_keys", "parse_genes"]

#: field metadata of an execution setting: how a run is computed (device, batch size,
#: workers), not what it computes; kept out of the run's identity (``config.json``), so a run
#: resumes on another machine or with another batch size
EXECUTION = {"execution": True}


def execution_keys(cls: Any) -> tuple[str, ...]:
    """The execution settings among the fields of a config class."""
    return tuple(f.name for f in fields(cls) if f.metadata.get("execution"))


class _Identity:
    """``identity()`` / ``execution()`` for the frozen configs below."""

    def identity(self) -> dict[str, Any]:
        """What defines the result: every field but the execution settings (written to
        ``config.json`` and compared on resume)."""
        keys = set(execution_keys(type(self)))
        return {k: v for k, v in self.to_dict().items() if k not in keys}  # type: ignore[attr-defined]

    def execution(self) -> dict[str, Any]:
        """How the result is computed (recorded in ``run.json``; may change on resume)."""
        d = self.to_dict()  # type: ignore[attr-defined]
        return {k: d[k] for k in execution_keys(type(self))}


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


def _resolve(cls: Any, file: str | Path | None, overrides: Mapping[str, Any],
             tuple_keys: tuple[str, ...]) -> Any:
    """Merge defaults < JSON ``file`` < ``overrides`` into ``cls`` and validate it."""
    values: dict[str, Any] = {}
    if file is not None:
        try:
            values.update(json.loads(Path(file).read_text()))
        except (OSError, ValueError) as e:
            raise InputError(f"{file}: not a JSON config ({e})") from e
    values.update({k: v for k, v in overrides.items() if v is not None})
    names = {f.name for f in fields(cls)}
    if "panel" in values and "genes" in names and "panel" not in names:
        values.setdefault("genes", values.pop("panel"))  # the bulk name before one grammar
    unknown = sorted(set(values) - names)
    if unknown:
        raise InputError(f"unknown config key(s) {', '.join(unknown)}; valid keys: "
                         f"{', '.join(sorted(names))}")
    for k in tuple_keys:
        if k in values:
            v = values[k]
            values[k] = tuple(str(x) for x in ([v] if isinstance(v, str) else v))
    cfg = cls(**values)
    cfg.validate()
    return cfg


@dataclass(frozen=True)
class STConfig(_Identity):
    """Everything a spatial run depends on (saved as ``config.json`` in the run folder).

    Examples
    --------
    >>> cfg = STConfig.resolve(data=["sections.json"], model="ridge", split="section")
    >>> cfg.genes, cfg.patch_um, cfg.baselines
    ('top250', 112.0, ('mean', 'colour', 'random'))
    """

    data: tuple[str, ...] = ()
    encoder: str = "efficientnet_lite0"
    pretrained: bool = True
    model: str = "ridge"
    model_params: Mapping[str, Any] = field(default_factory=dict)
    genes: str = "top250"
    strict_genes: bool = False
    log: str = "log1p"
    target_sum: float = 1e4
    min_counts: float = 1000.0
    patch_um: float = 112.0
    patch_px: int = 224
    max_white: float = 0.5
    split: str = "patient"
    k: int = 5
    holdout: tuple[str, ...] = ()
    baselines: tuple[str, ...] = BASELINES
    stain: str = "none"
    stain_target: str | None = None
    join: str = "inner"
    refit: bool = True
    seed: int = 0
    batch_size: int = field(default=64, metadata=EXECUTION)
    num_workers: int = field(default=0, metadata=EXECUTION)
    device: str | None = field(default=None, metadata=EXECUTION)

    @classmethod
    def resolve(cls, file: str | Path | None = None, **overrides: Any) -> STConfig:
        """Defaults < ``file`` (JSON) < ``overrides`` (``None`` values are ignored)."""
        return _resolve(cls, file, overrides, ("data", "holdout", "baselines"))

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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model_params"] = dict(self.model_params)
        for k in ("data", "holdout", "baselines"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> STConfig:
        return cls.resolve(**dict(d))


#: the baselines every bulk evaluation reports beside the model
BULK_BASELINES = ("mean", "colour", "random")
#: bulk evaluation protocols: k-fold CV by patient plus a held-out set, or train/val/test
PROTOCOLS = ("kfold", "split")


@dataclass(frozen=True)
class BulkConfig(_Identity):
    """Everything a bulk run depends on (saved as ``config.json`` in the run folder).

    ``protocol="kfold"``: ``holdout`` (a fraction) of the patients is set aside first, the
    rest is split into ``k`` patient-disjoint folds; every slide outside the hold-out gets
    an out-of-fold prediction, and the model refitted on all of them predicts the hold-out.
    ``protocol="split"``: patients are split ``split_fractions`` (60/20/20) into train,
    validation and test; the model fitted on train is scored on validation and test.

    Examples
    --------
    >>> cfg = BulkConfig.resolve(features="feats", expression="expr.csv", model="hist2rna")
    >>> cfg.genes, cfg.protocol, cfg.k, cfg.holdout
    ('hist2rna138', 'kfold', 5, 0.2)
    """

    features: str = ""
    expression: str = ""
    expression_format: str | None = None
    expression_value: str | None = None
    genes: str = "hist2rna138"  # hist2RNA's 138 assay genes (seed 001)
    strict_genes: bool = False
    transform: str = "log1p"
    model: str = "ridge"
    model_params: Mapping[str, Any] = field(default_factory=dict)
    join_rule: str = "first_dx"
    sample_types: tuple[str, ...] = ("01",)
    manifest: str | None = None
    select: str = "all"
    n_tiles: int | None = None
    heatmaps: str | None = None
    slides_dir: str | None = None
    protocol: str = "kfold"
    k: int = 5
    holdout: float = 0.2
    split_fractions: tuple[str, ...] = ("0.6", "0.2", "0.2")
    baselines: tuple[str, ...] = BULK_BASELINES
    refit: bool = True
    seed: int = 0
    device: str | None = field(default=None, metadata=EXECUTION)

    @classmethod
    def resolve(cls, file: str | Path | None = None, **overrides: Any) -> BulkConfig:
        """Defaults < ``file`` (JSON) < ``overrides`` (``None`` values are ignored)."""
        return _resolve(cls, file, overrides, ("sample_types", "split_fractions", "baselines"))

    @property
    def fractions(self) -> tuple[float, float, float]:
        return tuple(float(x) for x in self.split_fractions)  # type: ignore[return-value]

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
        if not 0 <= self.holdout < 1:
            raise InputError(f"holdout must be a fraction in [0, 1), got {self.holdout}")
        try:
            fr = self.fractions
        except ValueError:
            raise InputError(f"split_fractions must be numbers, got {self.split_fractions}") \
                from None
        if len(fr) != 3 or min(fr) <= 0 or abs(sum(fr) - 1) > 1e-6:
            raise InputError(f"split_fractions must be three positive fractions summing to 1 "
                             f"(train, validation, test), got {self.split_fractions}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model_params"] = dict(self.model_params)
        for k in ("sample_types", "split_fractions", "baselines"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BulkConfig:
        return cls.resolve(**dict(d))

