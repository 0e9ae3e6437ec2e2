"""A study preset: every default set to its paper's value, with the place in the paper it
comes from, and a record of what the user changed.

A :class:`Preset` holds :class:`PaperValue` s (a config key, the value, where the paper says
so), the :class:`Departure` s this tool makes on purpose (the paper's value, ours, why) and
the paper's headline numbers (:class:`Headline`). :meth:`Preset.resolve` layers the user's
options over the paper's values and returns the config with a :class:`Provenance` that says,
key by key, whether a value came from the paper, from a stated departure or from the user;
it is saved as ``preset.json`` and printed in the report.

Examples
--------
>>> from histoexpr.config import STConfig
>>> p = Preset("demo", "003", "BrST-Net", STConfig,
...            values=[PaperValue("k", 5, "Implementation and setup")],
...            departures=[Departure("stain", "vahadane+luminosity", "none", "fast demo")])
>>> cfg, prov = p.resolve({"data": ("d",), "k": 3})
>>> cfg.k, [(r["key"], r["source"]) for r in prov.rows() if r["key"] in ("k", "stain")]
(3, [('k', 'user (paper: 5)'), ('stain', 'departure: fast demo (paper: vahadane+luminosity)')])

Model parameters are dotted keys; the user's ``--param`` adds to the preset's:

>>> p = Preset("demo", "003", "BrST-Net", STConfig, values=[
...     PaperValue("model_params.lr", 1e-3, "Implementation"),
...     PaperValue("model_params.batch_size", 32, "Implementation")])
>>> cfg, prov = p.resolve({"data": ("d",), "model_params": {"lr": 0.01}})
>>> dict(cfg.model_params), [(r["key"], r["source"]) for r in prov.rows()]
({'lr': 0.01, 'batch_size': 32}, [('model_params.lr', 'user (paper: 0.001)'), \
('model_params.batch_size', 'paper'), ('data', 'user')])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError
from ..options import read_json_config

__all__ = ["Departure", "Headline", "PaperValue", "Preset", "Provenance", "short_schedule"]


@dataclass(frozen=True)
class PaperValue:
    """A config key set to the paper's value; ``where`` is the paper's section or table."""

    key: str
    value: Any
    where: str


@dataclass(frozen=True)
class Departure:
    """A key where this tool's preset differs from the paper on purpose, and why."""

    key: str
    paper: Any
    ours: Any
    why: str


@dataclass(frozen=True)
class Headline:
    """A number the paper reports, to set beside this run's (``metric`` names how the run's
    number is computed; ``data`` what the paper's came from)."""

    metric: str
    paper: float | str
    where: str
    data: str


@dataclass
class Provenance:
    """Where each value of a resolved preset came from."""

    preset: str
    seed: str
    title: str
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        """One row per key the paper or the user set: key, value, source, where."""
        return [{"key": k, **v} for k, v in self.sources.items()]

    def to_dict(self) -> dict[str, Any]:
        return {"preset": self.preset, "seed": self.seed, "title": self.title,
                "values": self.rows()}


@dataclass(frozen=True)
class Preset:
    """A paper's protocol as config values (see the module docstring).

    Parameters
    ----------
    name
        The command's name (``histoexpr reproduce NAME``).
    seed
        The paper's number in ``../shared/seeds/`` (``"003"``).
    title
        A short title of the paper.
    config
        The workflow config class the values belong to.
    values, departures, headlines
        See :class:`PaperValue`, :class:`Departure`, :class:`Headline`.
    """

    name: str
    seed: str
    title: str
    config: Any
    values: Sequence[PaperValue] = ()
    departures: Sequence[Departure] = ()
    headlines: Sequence[Headline] = ()

    def defaults(self) -> dict[str, Any]:
        """The preset's config values: the paper's, then the stated departures. A dotted
        key (``model_params.lr``) is one entry of a mapping field."""
        out: dict[str, Any] = {}
        for key, value in [(v.key, v.value) for v in self.values] + [
                (d.key, d.ours) for d in self.departures]:
            top, _, sub = key.partition(".")
            if sub:
                out[top] = {**out.get(top, {}), sub: value}
            else:
                out[key] = value
        return out

    def resolve(self, given: Mapping[str, Any], file: Any = None) -> tuple[Any, Provenance]:
        """The config: the workflow's defaults < the preset < ``file`` < ``given`` (the
        options the user gave; ``None`` values are not given), and where each value came
        from."""
        given = {k: v for k, v in given.items() if v is not None}
        if file is not None:  # a JSON config counts as the user's: it overrides the paper
            given = {**read_json_config(file), **given}
        known = {f for f in getattr(self.config, "__dataclass_fields__", {})}
        base = self.defaults()
        bad = sorted(set(base) - known)
        if bad:
            raise InputError(f"preset {self.name}: unknown config key(s) {', '.join(bad)}")
        merged = base | given
        for k, v in given.items():  # a mapping (model parameters) adds to the preset's
            if isinstance(v, Mapping) and isinstance(base.get(k), Mapping):
                merged[k] = {**base[k], **v}
        cfg = self.config.resolve(None, **merged)
        prov = Provenance(self.name, self.seed, self.title)
        paper = {v.key: v for v in self.values}
        dep = {d.key: d for d in self.departures}
        for key in list(paper) + [k for k in dep if k not in paper]:
            p = paper.get(key)
            paper_value = dep[key].paper if key in dep else p.value  # type: ignore[union-attr]
            top, _, sub = key.partition(".")
            if (key in given) or (sub and sub in (given.get(top) or {})):
                source = f"user (paper: {_fmt(paper_value)})"
            elif key in dep:
                source = f"departure: {dep[key].why} (paper: {_fmt(paper_value)})"
            else:
                source = "paper"
            value = getattr(cfg, top)[sub] if sub else getattr(cfg, key)
            prov.sources[key] = {"value": _jsonable(value), "source": source,
                                 "where": f"seed {self.seed}, {p.where}" if p else ""}
        for key in sorted(set(given) - set(prov.sources)):
            if key in known and not isinstance(given[key], Mapping):
                prov.sources[key] = {"value": _jsonable(getattr(cfg, key)), "source": "user",
                                     "where": ""}
        return cfg, prov


def short_schedule(cfg: Any, prov: Provenance, given: Mapping[str, Any],
                   schedule: Mapping[str, Any]) -> Any:
    """``cfg`` with a CPU-sized ``schedule`` of model parameters (``--short``): each entry
    the user did not set themselves replaces the paper's value, and the record says so."""
    from dataclasses import replace

    user = dict(given.get("model_params") or {})
    short = {k: v for k, v in schedule.items() if k not in user}
    for k, v in short.items():
        prov.sources[f"model_params.{k}"] = {"value": v, "where": "", "source":
                                             "short schedule (--short), not the paper's"}
    return replace(cfg, model_params={**cfg.model_params, **short})


def _fmt(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v)) or "none"
    if isinstance(v, Mapping):
        return ", ".join(f"{k}={x}" for k, x in v.items())
    return str(v)


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return list(v)
    if isinstance(v, Mapping):
        return dict(v)
    return v
