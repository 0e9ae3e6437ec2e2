"""What every expression model declares (:class:`ModelTags`) and how it is fitted by them.

The lowest layer of the model contract (:mod:`histoexpr.models.contract` re-exports it):
the model modules import it to declare their tags, the registry functions to read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InputError

__all__ = ["INPUTS", "ModelTags", "fit_model", "tags_of"]

#: the inputs a model may read (described in :mod:`histoexpr.models.contract`)
INPUTS = ("features", "patches", "bags", "patch_bags")


@dataclass(frozen=True)
class ModelTags:
    """What a model declares.

    Attributes
    ----------
    input
        One of :data:`INPUTS`.
    torch
        A torch model (``device`` applies; pickles are moved to the CPU).
    groups
        ``fit(X, y, groups=...)`` uses the sample groups (patients) for an inner split.
    aux_targets
        ``fit(X, y, y_aux=...)`` takes auxiliary targets (the rest of the genes, seed 003).
    validation
        ``fit(X, y, eval_set=(X_val, y_val))`` stops early on a given validation set (the
        validation patients of a train / validation / test split, seed 000) instead of an
        inner split of the training rows.
    copies
        ``fit(X, y, copies=k)`` knows that its rows are ``k`` blocks, the first the
        training rows and the others augmented copies of them in the same order (stain
        augmentation), so an inner choice (a penalty) is made on distinct rows.
    """

    input: str = "features"
    torch: bool = False
    groups: bool = False
    aux_targets: bool = False
    validation: bool = False
    copies: bool = False

    def __post_init__(self) -> None:
        if self.input not in INPUTS:
            raise ValueError(f"unknown model input {self.input!r}; one of {INPUTS}")


def tags_of(model: Any) -> ModelTags:
    """The tags of an estimator, its class, or a registry factory (built once to ask).

    Raises
    ------
    InputError
        The object declares no ``model_tags``: it does not follow the contract.
    """
    tags = getattr(model, "model_tags", None)
    if tags is None and callable(model) and not isinstance(model, type):
        tags = getattr(model(), "model_tags", None)  # a factory function
    if not isinstance(tags, ModelTags):
        name = getattr(model, "__name__", type(model).__name__)
        raise InputError(f"{name} declares no model_tags (histoexpr.models.contract."
                         "ModelTags); every expression model must")
    return tags


def fit_model(est: Any, X: Any, y: Any, *, groups: Any = None, y_aux: Any = None,
              eval_set: Any = None, copies: int = 1) -> Any:
    """``est.fit`` with the optional arguments its tags ask for; returns the fitted model."""
    tags = tags_of(est)
    kw: dict[str, Any] = {}
    if tags.groups and groups is not None:
        kw["groups"] = groups
    if tags.aux_targets and y_aux is not None:
        kw["y_aux"] = y_aux
    if tags.validation and eval_set is not None:
        kw["eval_set"] = eval_set
    if tags.copies and copies > 1:
        kw["copies"] = copies
    return est.fit(X, y, **kw)
