"""The model contract: what every expression model declares, so callers never inspect it.

One registry, :data:`MODELS`, holds every model of both workflows; :func:`model_names`
and :func:`create_model` give those a spot (``st``) or slide (``bulk``) run can use. A
model on frozen features is used at slide level on pooled tile features
(:class:`~histoexpr.models.bags.PooledModel`), so ``ridge``, ``mlp`` and ``mean`` are one
entry each, not two.

Each estimator class carries a :class:`ModelTags` as the class attribute ``model_tags``
(the way scikit-learn estimators declare ``__sklearn_tags__``): the input it reads, whether
it is a torch model, and which optional fit arguments it uses. The workflows read the tags
(:func:`tags_of`) and call :func:`fit_model`; nothing looks at ``fit``'s signature.

Inputs:

- ``"features"``: ``(n, D)`` frozen features, one row per spot (or per slide when pooled);
- ``"patches"``: ``(n, S, S, 3)`` uint8 image patches, one per spot;
- ``"bags"``: a list of per-slide :class:`~histoexpr.features.bags.Bag` of tile features;
- ``"patch_bags"``: a list of per-slide uint8 patch stacks.

Examples
--------
>>> from histoexpr.models import MODELS
>>> t = tags_of(MODELS.get("cnn_aux"))
>>> t.input, t.torch, t.aux_targets
('patches', True, True)
>>> "cnn_aux" in model_names("spot"), "cnn_aux" in model_names("slide")
(True, False)
>>> type(create_model("ridge", "slide")).__name__
'PooledModel'
"""

from __future__ import annotations

from typing import Any

from ..errors import InputError, UnknownNameError
from ..registry import Registry
from .tags import INPUTS, ModelTags, fit_model, tags_of

__all__ = ["INPUTS", "LEVELS", "MODELS", "ModelTags", "build_model", "create_model",
           "fit_model", "level_input", "model_names", "tags_of"]

#: every expression model by name (spot and slide level); entries are estimator classes
#: or factories of them, each declaring ``model_tags``
MODELS: Registry = Registry("expression model")

#: the inputs each workflow level can give a model: ``spot`` (st, one row per spot) and
#: ``slide`` (bulk, one row per slide; ``features`` models see slide-pooled features)
LEVELS: dict[str, tuple[str, ...]] = {
    "spot": ("features", "patches"),
    "slide": ("features", "bags", "patch_bags"),
}


def _level_inputs(level: str) -> tuple[str, ...]:
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; one of {tuple(LEVELS)}")
    return LEVELS[level]


def model_names(level: str) -> list[str]:
    """The registered models a ``level`` (``"spot"`` or ``"slide"``) run can fit, best first."""
    inputs = _level_inputs(level)
    return [n for n in MODELS.list() if tags_of(MODELS.get(n)).input in inputs]


def level_input(name: str, level: str) -> str:
    """The input model ``name`` reads in a ``level`` run (a features model at slide level
    reads bags, pooled per slide); unknown or unusable names are an error listing the valid
    ones."""
    inputs = _level_inputs(level)
    tags = tags_of(MODELS.get(name))
    if tags.input not in inputs:
        raise UnknownNameError(f"model {name!r} reads {tags.input.replace('_', ' ')}, which a "
                               f"{level}-level run does not give; choose one of: "
                               f"{', '.join(model_names(level))}")
    return "bags" if level == "slide" and tags.input == "features" else tags.input


def create_model(name: str, level: str, **params: Any) -> Any:
    """A new estimator for ``level``: the registry entry built with ``params``; at slide
    level a features model is wrapped in :class:`~histoexpr.models.bags.PooledModel`
    (slide-mean features, hist2RNA's aggregation)."""
    level_input(name, level)  # unknown / unusable names are one clear error
    est = MODELS.create(name, **params)
    if level == "slide" and tags_of(est).input == "features":
        from .bags import PooledModel

        est = PooledModel(est)
    return est


def build_model(name: str, level: str, params: dict[str, Any] | None = None, *,
                seed: int | None = None, device: str | None = None,
                defaults: dict[str, Any] | None = None) -> Any:
    """The estimator a workflow fits: :func:`create_model` with the user's ``params``
    checked against the model's own (scikit-learn ``get_params``), ``defaults`` for the
    parameters the model has and the user did not set, and every ``random_state`` /
    ``device`` (nested ones too) set to ``seed`` / ``device`` unless the user set them.

    Raises
    ------
    InputError
        A parameter the model does not take; the message lists those it does.
    """
    level_input(name, level)
    params = dict(params or {})
    names = MODELS.create(name).get_params()
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise InputError(f"model {name!r} has no parameter(s) {', '.join(unknown)}; "
                         f"it takes: {', '.join(sorted(names))}")
    for k, v in (defaults or {}).items():
        if k in names:
            params.setdefault(k, v)
    est = create_model(name, level, **params)
    upd: dict[str, Any] = {}
    for k in est.get_params(deep=True):
        leaf = k.rsplit("__", 1)[-1]
        if leaf in params:
            continue
        if leaf == "random_state" and seed is not None:
            upd[k] = seed
        elif leaf == "device" and device is not None:
            upd[k] = device
    return est.set_params(**upd) if upd else est
