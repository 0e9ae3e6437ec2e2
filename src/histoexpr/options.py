"""Config machinery: one declaration per field makes the JSON key, the command-line flag
and its help (the configs themselves are in :mod:`histoexpr.config`).

A config is a frozen dataclass deriving :class:`ConfigBase` whose fields carry an
:class:`Option` (made with :func:`opt`): help text, flag names, argparse form and choices,
whether it is an execution setting (device, batch size: how a run is computed, not what
it computes). :func:`add_config_flags` builds the argparse flags; :func:`config_from_args`
merges defaults < JSON file < command line < keyword arguments and validates.
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

__all__ = ["EXECUTION", "ConfigBase", "Option", "add_config_flags", "config_from_args",
           "execution_keys", "flag_names", "opt", "parse_params", "read_json_config"]

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


def read_json_config(file: str | Path) -> dict[str, Any]:
    """The keys and values of a JSON config file; a clear error when it is not one."""
    try:
        raw = json.loads(Path(file).read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{file}: not a JSON config ({e})") from e
    if not isinstance(raw, dict):
        raise InputError(f"{file}: a JSON config is an object of keys and values")
    return raw


def _resolve(cls: Any, file: str | Path | None, overrides: Mapping[str, Any], *,
             saved: bool = False) -> Any:
    """Merge defaults < JSON ``file`` < ``overrides`` into ``cls`` and validate it.

    ``saved``: ``overrides`` is a config a run wrote (its ``None`` values are kept, and the
    defaults that depend on other values are not filled: a key it lacks predates its
    option, which was then off)."""
    values: dict[str, Any] = {}
    if file is not None:
        values.update(_layer(cls, read_json_config(file)))
    values.update(_layer(cls, {k: v for k, v in overrides.items()
                               if v is not None or saved}))
    by_name = {f.name: f for f in fields(cls)}
    if hasattr(cls, "fill_defaults") and not saved:  # defaults that depend on other values
        values = cls.fill_defaults(values)
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise InputError(f"unknown config key(s) {', '.join(unknown)}; valid keys: "
                         f"{', '.join(sorted(by_name))}")
    cfg = cls(**{k: _coerce(by_name[k], v) for k, v in values.items()})
    cfg.validate()
    return cfg


C = TypeVar("C", bound="ConfigBase")


class ConfigBase:
    """What every run config shares: the merge, the JSON form and the identity split."""

    @classmethod
    def resolve(cls: type[C], file: str | Path | None = None, **overrides: Any) -> C:
        """Defaults < ``file`` (JSON) < ``overrides`` (``None`` values are ignored)."""
        return _resolve(cls, file, overrides)

    @classmethod
    def from_dict(cls: type[C], d: Mapping[str, Any]) -> C:
        """The config a run saved (``config.json``): its values as they are, ``None``
        included; a key it lacks takes the field's default."""
        return _resolve(cls, None, dict(d), saved=True)

    def validate(self) -> None:
        """Check every value; a config with constraints overrides this (both of
        :mod:`histoexpr.config` do). The base has none to check."""

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
    >>> from histoexpr.config import BulkConfig
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
    >>> from histoexpr.config import STConfig
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
