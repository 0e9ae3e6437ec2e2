"""Regressing technical confounders out of image features and expression (seed 002, Q2/Q3A).

Seed 002 fits ``F ~ C + e`` and ``E ~ C + e`` for known technical confounders ``C`` (GTEx
sample attributes: ischaemic time ``SMTISCH`` on a log scale, RNA integrity ``SMRIN``,
centre, age, sex, ...) and repeats the shared-variance study on the residuals. It also
reports, per confounder, the fraction of variance it explains (its Figure 4: "technical
factors account for 40.6 % of variation in the image features and 51.1 % in expression").

:func:`regress_out` does this with one ordinary-least-squares fit of every column at once
(``numpy.linalg.lstsq``; the full model of all confounders x all columns, the first of the
Plan's three options):

- the design (:func:`design_matrix`) has an intercept; numeric covariates enter linearly,
  the ``log`` columns as their natural log (``log(x + log_offset)``; a non-positive value is
  an error), text/categorical columns as one-hot indicators with the first level dropped;
- samples with a missing covariate are dropped, counted and logged; constant covariates are
  dropped; as many design columns as samples (or more) is an error;
- ``r2`` holds, per feature/gene column, the R^2 of all confounders together (``"all"``) and
  of each confounder alone (its indicator group for a categorical), and
  :meth:`Regression.summary` averages them over columns (columns weigh the same, as after
  z-scoring).

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> C = pd.DataFrame({"ischemic_time": rng.uniform(60, 900, 80),
...                   "sex": rng.choice(["F", "M"], 80)})
>>> X = pd.DataFrame({"a": np.log(C["ischemic_time"]) + rng.normal(0, .1, 80),
...                   "b": rng.normal(size=80)})
>>> reg = regress_out(X, C)
>>> bool(reg.r2.loc["a", "all"] > 0.9), bool(abs(reg.residuals["a"].corr(X["a"])) < 0.3)
(True, True)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from .variance import drop_uninformative

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_LOG", "Design", "Regression", "design_matrix", "regress_out"]

#: covariates put on a log scale when present and ``log`` is not given (ischaemic time)
DEFAULT_LOG = ("ischemic_time", "ischaemic_time", "SMTISCH")


@dataclass
class Design:
    """A design matrix (intercept first) and which of its columns each covariate made."""

    matrix: pd.DataFrame
    groups: dict[str, list[str]]
    logged: list[str] = field(default_factory=list)
    dropped_rows: list[str] = field(default_factory=list)
    dropped_covariates: list[str] = field(default_factory=list)

    @property
    def n_params(self) -> int:
        """Design columns, the intercept included."""
        return int(self.matrix.shape[1])


def _resolve(names: Sequence[str], columns: pd.Index, what: str, *, strict: bool) -> list[str]:
    lower = {str(c).lower(): c for c in columns}
    out = []
    for name in names:
        if name in columns:
            out.append(name)
        elif str(name).lower() in lower:
            out.append(lower[str(name).lower()])
        elif strict:
            raise InputError(f"{what}: no covariate column {name!r}; columns are "
                             f"{', '.join(map(str, columns))}")
    return list(dict.fromkeys(out))


def design_matrix(
    covariates: pd.DataFrame,
    *,
    log: Sequence[str] | None = None,
    log_offset: float = 0.0,
    categorical: Sequence[str] = (),
    what: str = "covariates",
) -> Design:
    """Intercept + covariates as numbers: logs taken, categories one-hot (first dropped).

    Parameters
    ----------
    covariates
        Samples x covariates.
    log
        Columns to put on a natural-log scale; ``None`` means those of :data:`DEFAULT_LOG`
        that are present (an explicitly named column that is absent is an error).
    log_offset
        Added before the log (e.g. 1 for times that can be 0).
    categorical
        Numeric columns to treat as categories (text columns always are).
    what
        Name used in messages.

    Examples
    --------
    >>> C = pd.DataFrame({"t": [1.0, 10, 100, 1000], "site": ["a", "b", "b", "c"]})
    >>> d = design_matrix(C, log=["t"])
    >>> list(d.matrix.columns), d.groups["site"]
    (['intercept', 't', 'site[b]', 'site[c]'], ['site[b]', 'site[c]'])
    """
    cov = covariates.copy()
    if cov.isna().any().any():
        raise InputError(f"{what}: missing values; drop those rows first (regress_out does)")
    logs = _resolve(DEFAULT_LOG if log is None else list(log), cov.columns, what,
                    strict=log is not None)
    cats = _resolve(list(categorical), cov.columns, what, strict=True)
    blocks: list[pd.DataFrame] = [pd.DataFrame({"intercept": 1.0}, index=cov.index)]
    groups: dict[str, list[str]] = {}
    dropped: list[str] = []
    for col in cov.columns:
        s = cov[col]
        name = str(col)
        is_cat = col in cats or not (pd.api.types.is_numeric_dtype(s)
                                     or pd.api.types.is_bool_dtype(s))
        if col in logs:
            if is_cat:
                raise InputError(f"{what}: column {name!r} is not numeric and cannot be logged")
            v = s.astype(float) + log_offset
            if (v <= 0).any():
                bad = s[v <= 0].index[:3].tolist()
                raise InputError(f"{what}: column {name!r} has value(s) <= {0.0 - log_offset:g} "
                                 f"(samples {', '.join(map(str, bad))}), which have no log; "
                                 "give a log offset (--log-offset 1) or leave the column "
                                 "unlogged")
            block = pd.DataFrame({name: np.log(v.to_numpy())}, index=cov.index)
        elif is_cat:
            levels = sorted(s.astype(str).unique())
            block = pd.DataFrame({f"{name}[{lv}]": (s.astype(str) == lv).astype(float)
                                  for lv in levels[1:]}, index=cov.index)
        else:
            block = pd.DataFrame({name: s.astype(float).to_numpy()}, index=cov.index)
        if block.shape[1] == 0 or (block.nunique() <= 1).all():
            logger.warning("%s: covariate %r is constant over these samples and is left out",
                           what, name)
            dropped.append(name)
            continue
        groups[name] = list(block.columns)
        blocks.append(block)
    matrix = pd.concat(blocks, axis=1)
    return Design(matrix, groups, [str(c) for c in logs], dropped_covariates=dropped)


@dataclass
class Regression:
    """Residuals of ``X ~ C`` and how much of each column the covariates explain.

    ``r2``: columns x (``"all"`` + one column per covariate), R^2 on the kept samples.
    ``n_dropped``: samples left out (missing covariates, or absent from the covariate table).
    """

    residuals: pd.DataFrame
    r2: pd.DataFrame
    design: Design
    n_dropped: int
    dropped_columns: dict[str, int]

    @property
    def n_covariates(self) -> int:
        """Design parameters besides the intercept (degrees of freedom the fit used)."""
        return self.design.n_params - 1

    def summary(self) -> pd.DataFrame:
        """``covariate, mean_r2``: each R^2 column averaged over the feature/gene columns."""
        return pd.DataFrame({"covariate": list(self.r2.columns),
                             "mean_r2": self.r2.mean(axis=0).to_numpy()})


def _r2(y: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    beta, _, rank, _ = np.linalg.lstsq(d, y, rcond=None)
    res = y - d @ beta
    ss_tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    return 1 - (res**2).sum(axis=0) / ss_tot, res, int(rank)


def regress_out(
    X: Any,
    covariates: pd.DataFrame,
    *,
    log: Sequence[str] | None = None,
    log_offset: float = 0.0,
    categorical: Sequence[str] = (),
    per_covariate: bool = True,
    what: str = "data",
) -> Regression:
    """Residuals of an OLS fit of every column of ``X`` on the covariates.

    Parameters
    ----------
    X
        Samples x columns (image features or expression), indexed by sample.
    covariates
        Samples x covariates, indexed by the same ids (samples absent here are dropped and
        counted).
    log, log_offset, categorical
        See :func:`design_matrix`.
    per_covariate
        Also fit each covariate alone for its own R^2.
    what
        Name used in messages.

    Returns
    -------
    Regression
        Residuals (samples with complete covariates x informative columns), R^2 table,
        the design, the number of dropped samples and the dropped columns.
    """
    if not isinstance(X, pd.DataFrame):
        raise InputError(f"{what}: give a DataFrame indexed by sample id")
    if covariates.shape[1] == 0:
        raise InputError("covariates: the table has no covariate column")
    common = X.index.intersection(covariates.index, sort=False)
    if len(common) == 0:
        raise InputError(f"no sample ids in common between the {what} "
                         f"({list(X.index[:3])}, ...) and the covariates "
                         f"({list(covariates.index[:3])}, ...)")
    n_absent = len(X) - len(common)
    if n_absent:
        logger.warning("%s: %d of %d samples are not in the covariate table and are left out",
                       what, n_absent, len(X))
    cov = covariates.loc[common]
    missing = cov.isna().any(axis=1)
    if missing.any():
        worst = cov.isna().sum().sort_values(ascending=False)
        logger.warning("%s: %d of %d samples have missing covariates and are left out "
                       "(most missing: %s)", what, int(missing.sum()), len(cov),
                       ", ".join(f"{k} {v}" for k, v in worst[worst > 0].head(3).items()))
    cov = cov.loc[~missing.to_numpy()]
    design = design_matrix(cov, log=log, log_offset=log_offset, categorical=categorical,
                           what="covariates")
    design.dropped_rows = [str(i) for i in common[missing.to_numpy()]]
    n = len(cov)
    if design.n_params >= n:
        widest = max(design.groups.items(), key=lambda kv: len(kv[1]), default=("?", []))
        raise InputError(f"covariates: {design.n_params} design columns (intercept and "
                         f"one-hot levels; {widest[0]!r} alone has {len(widest[1])}) for {n} "
                         "samples with complete covariates; use fewer covariates "
                         "(--covariate-columns) or more samples")
    x, dropped_cols = drop_uninformative(X.loc[cov.index], what=what)
    d = design.matrix.to_numpy()
    y = x.to_numpy()
    r2_all, res, rank = _r2(y, d)
    if rank < design.n_params:
        logger.warning("covariates: the design has rank %d for %d columns (collinear "
                       "covariates); the fit is still least squares", rank, design.n_params)
    r2 = {"all": r2_all}
    if per_covariate:
        for name, cols in design.groups.items():
            r2[name] = _r2(y, design.matrix[["intercept", *cols]].to_numpy())[0]
    r2_tab = pd.DataFrame(r2, index=x.columns)
    n_dropped = n_absent + int(missing.sum())
    logger.info("%s: covariates explain on average %.1f %% of each column's variance "
                "(%d samples, %d design columns)", what, 100 * float(r2_all.mean()), n,
                design.n_params)
    return Regression(pd.DataFrame(res, index=x.index, columns=x.columns), r2_tab, design,
                      n_dropped, dropped_cols)
