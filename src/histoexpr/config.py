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

__all__ = ["BASELINES", "STConfig", "parse_genes"]

#: the baselines every spatial evaluation reports beside the model
BASELINES = ("mean", "colour", "random")
_LOGS = ("log1p", "log2", "none")


def parse_genes(spec: str) -> tuple[str, int, list[str] | None]:
    """``"top250"`` → ``("top_mean", 250, None)``; ``"hvg50"`` → ``("hvg", 50, None)``; a
    file (one gene per line) or ``"A,B,C"`` → ``("list", n, [...])``.

    Examples
    --------
    >>> parse_genes("top250"), parse_genes("hvg50"), parse_genes("ERBB2,GRB7")
    (('top_mean', 250, None), ('hvg', 50, None), ('list', 2, ['ERBB2', 'GRB7']))
    """
    s = str(spec).strip()
    for prefix, method in (("top", "top_mean"), ("hvg", "hvg")):
        if s.lower().startswith(prefix) and s[len(prefix):].isdigit():
            n = int(s[len(prefix):])
            if n < 1:
                raise InputError(f"--genes {s}: the number of genes must be at least 1")
            return method, n, None
    p = Path(s)
    if p.is_file():
        names = [ln.strip().split(",")[0] for ln in p.read_text().splitlines() if ln.strip()]
        names = [g for g in names if not g.startswith("#")]
        if names and names[0].lower() in ("gene", "genes", "symbol", "gene_name"):
            names = names[1:]  # a header line
        if not names:
            raise InputError(f"{p}: no gene names in the file")
        return "list", len(names), names
    if "/" in s or p.suffix.lower() in (".txt", ".csv", ".tsv"):
        raise InputError(f"--genes {s}: no such gene list file")
    names = [g.strip() for g in s.split(",") if g.strip()]
    if not names:
        raise InputError(f"--genes {s!r}: use topN (e.g. top250), hvgN (e.g. hvg50), a file "
                         "with one gene per line, or a comma-separated list")
    return "list", len(names), names


@dataclass(frozen=True)
class STConfig:
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
    batch_size: int = 64
    num_workers: int = 0
    device: str | None = None

    @classmethod
    def resolve(cls, file: str | Path | None = None, **overrides: Any) -> STConfig:
        """Defaults < ``file`` (JSON) < ``overrides`` (``None`` values are ignored)."""
        values: dict[str, Any] = {}
        if file is not None:
            try:
                values.update(json.loads(Path(file).read_text()))
            except (OSError, ValueError) as e:
                raise InputError(f"{file}: not a JSON config ({e})") from e
        values.update({k: v for k, v in overrides.items() if v is not None})
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise InputError(f"unknown config key(s) {', '.join(unknown)}; valid keys: "
                             f"{', '.join(sorted(names))}")
        for k in ("data", "holdout", "baselines"):
            if k in values:
                v = values[k]
                values[k] = tuple(str(x) for x in ([v] if isinstance(v, str) else v))
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Check every value; raises :class:`~histoexpr.errors.InputError` naming the key."""
        from .cohort import SPLITS
        from .features.cards import ENCODERS
        from .models import MODELS

        if self.model not in MODELS.list():
            raise InputError(f"unknown model {self.model!r}; choose one of: "
                             f"{', '.join(MODELS.list())}")
        ENCODERS.get(self.encoder)  # unknown names list the valid ones
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
