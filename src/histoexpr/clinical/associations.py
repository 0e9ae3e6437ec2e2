"""Clinical associations of (predicted) genes: group comparisons and correlations with a
measured value.

hist2RNA (seed 001, Figs. 7 and 8) checks predicted expression against routine pathology:
predicted ESR1, PGR and ERBB2 between IHC-positive and -negative tumours (t-tests), predicted
MKI67 across tumour grades 1-3 (one-way ANOVA), and predicted MKI67 against the Ki67 % of IHC
(correlation). This module does both kinds of test on plain frames:

- :func:`compare_groups`: one row per gene — t-test (Student or Welch) or Mann-Whitney U for
  two groups, one-way ANOVA or Kruskal-Wallis for more, with group sizes, means, medians,
  effect size (difference of means, eta squared) and Benjamini-Hochberg q across genes;
- :func:`correlate_with_measure`: Pearson or Spearman r of a gene with a measured number
  (percentages such as ``"30%"`` are read as 30), with the least-squares line.

Missing labels (empty cells and the placeholders of TCGA, cBioPortal and GDC such as
``[Not Available]``, ``NA``, ``'--``) and missing measurements are dropped, counted, logged
and reported with the result.

Examples
--------
>>> import pandas as pd
>>> expr = pd.DataFrame({"ESR1": [1.0, 1.2, 0.9, 3.0, 3.2, 2.9]})
>>> er = pd.Series(["Negative", "Negative", "Negative", "Positive", "Positive", "Positive"])
>>> res = compare_groups(expr, er)
>>> res[["gene", "test", "n_Negative", "n_Positive"]].to_dict("records")
[{'gene': 'ESR1', 'test': 't', 'n_Negative': 3, 'n_Positive': 3}]
>>> round(float(res.loc[0, "difference"]), 3), bool(res.loc[0, "p"] < 1e-3)
(2.0, True)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..metrics import bh_adjust
from .labels import clean_labels, is_missing

logger = logging.getLogger(__name__)

__all__ = [
    "GROUP_TESTS",
    "compare_groups",
    "correlate_with_measure",
    "parse_measure",
    "prepare_groups",
]

#: test name → (readable name, number of groups it takes: 2, or None for two or more)
GROUP_TESTS: dict[str, tuple[str, int | None]] = {
    "t": ("Student t-test", 2),
    "welch": ("Welch t-test", 2),
    "mannwhitney": ("Mann-Whitney U", 2),
    "anova": ("one-way ANOVA", None),
    "kruskal": ("Kruskal-Wallis", None),
}

def _natural_key(s: str) -> tuple:
    try:
        return (0, float(s), "")
    except ValueError:
        return (1, 0.0, s.lower())


def prepare_groups(
    groups: pd.Series,
    *,
    order: Sequence[str] | None = None,
    min_per_group: int = 2,
) -> tuple[pd.Series, list[str], dict[str, Any]]:
    """Clean a label column, keep the groups to compare, and say what was dropped.

    Parameters
    ----------
    groups
        One label per sample (its name is used in messages).
    order
        The groups to compare, in this order; samples with any other label are left out and
        counted. Default: every group, numbers in numeric order, then text alphabetically.
    min_per_group
        Groups with fewer samples are left out (and reported).

    Returns
    -------
    labels
        The kept samples' labels (missing and left-out samples removed).
    levels
        The groups, in order.
    report
        ``n_input``, ``n_missing_label``, ``missing_labels`` (count per spelling),
        ``groups_left_out`` (label → n: too small or not in ``order``), ``n_used``.
    """
    name = groups.name if groups.name is not None else "groups"
    if min_per_group < 2:
        raise InputError(f"min_per_group must be at least 2, got {min_per_group}")
    lab, missing = clean_labels(groups)
    n_missing = int(lab.isna().sum())
    if n_missing:
        logger.info("%s: %d of %d samples have no label and are left out (%s)", name,
                    n_missing, len(lab), ", ".join(f"{k}: {v}" for k, v in missing.items()))
    lab = lab.dropna()
    counts = lab.value_counts()
    left_out: dict[str, int] = {}
    if order is not None:
        levels = [str(o).strip() for o in order]
        absent = [g for g in levels if g not in counts.index]
        if absent:
            raise InputError(f"column {name!r}: group(s) {', '.join(map(repr, absent))} named in "
                             f"the order do not occur; groups are "
                             f"{', '.join(map(repr, sorted(counts.index, key=_natural_key)))}")
        left_out.update({str(g): int(n) for g, n in counts.items() if g not in levels})
    else:
        levels = sorted(counts.index, key=_natural_key)
    if len(levels) == 1 and not left_out:
        raise InputError(f"column {name!r} holds a single group ({levels[0]!r}, "
                         f"{int(counts[levels[0]])} samples) after dropping {n_missing} "
                         "without a label; a comparison needs at least 2 groups")
    small = {g: int(counts[g]) for g in levels if counts[g] < min_per_group}
    if small:
        logger.warning("%s: group(s) %s have fewer than %d samples and are left out", name,
                       ", ".join(f"{g!r} (n={n})" for g, n in small.items()), min_per_group)
        left_out.update(small)
        levels = [g for g in levels if g not in small]
    if len(levels) < 2:
        raise InputError(f"column {name!r}: fewer than 2 groups with at least {min_per_group} "
                         f"samples remain (kept {levels}, left out {left_out}); "
                         "choose another column or gather more labelled samples")
    if order is not None and left_out:
        logger.info("%s: %d samples in groups outside the comparison left out", name,
                    sum(left_out.values()))
    lab = lab[lab.isin(levels)]
    report = {
        "column": str(name),
        "n_input": len(groups),
        "n_missing_label": n_missing,
        "missing_labels": missing,
        "groups_left_out": left_out,
        "n_used": len(lab),
        "groups": list(levels),
    }
    return lab, levels, report


def _resolve_test(test: str, k: int, name: str) -> str:
    if test == "auto":
        return "t" if k == 2 else "anova"
    if test not in GROUP_TESTS:
        raise InputError(f"unknown test {test!r}; choose auto or one of "
                         f"{', '.join(GROUP_TESTS)}")
    if GROUP_TESTS[test][1] == 2 and k != 2:
        raise InputError(f"column {name!r} has {k} groups; the {GROUP_TESTS[test][0]} compares "
                         "two. Use --test anova or kruskal, or name two groups")
    return test


def _one_gene(samples: list[np.ndarray], test: str) -> tuple[float, float, str]:
    """(statistic, p, note) of one gene; NaN and a note where the test is undefined."""
    from scipy import stats

    if any(len(s) < 2 for s in samples):
        return math.nan, math.nan, "a group has fewer than 2 values for this gene"
    allv = np.concatenate(samples)
    if np.ptp(allv) == 0:
        return math.nan, math.nan, "constant"
    if test in ("t", "welch", "anova") and all(np.ptp(s) == 0 for s in samples):
        return math.nan, math.nan, "constant within every group"
    if test in ("t", "welch"):
        # second group vs first: a positive statistic means the second group is higher
        r = stats.ttest_ind(samples[1], samples[0], equal_var=test == "t")
    elif test == "mannwhitney":
        r = stats.mannwhitneyu(samples[1], samples[0], alternative="two-sided")
    elif test == "anova":
        r = stats.f_oneway(*samples)
    else:
        r = stats.kruskal(*samples)
    return float(r.statistic), float(r.pvalue), ""


def compare_groups(
    expr: pd.DataFrame,
    groups: pd.Series,
    *,
    genes: Sequence[str] | None = None,
    test: str = "auto",
    min_per_group: int = 2,
    order: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Compare each gene's (predicted) expression between clinical groups.

    Parameters
    ----------
    expr
        Samples x genes.
    groups
        One label per sample: a Series aligned to ``expr.index`` by index (samples absent
        from it count as unlabelled), or any sequence of ``len(expr)`` labels. Labels are
        stripped; empty cells and placeholders (:data:`MISSING_LABELS`, anything in square
        brackets) are missing, dropped and counted.
    genes
        Genes to test (default every column); absent genes are an error naming them.
    test
        ``"auto"`` (t-test for two groups, one-way ANOVA for more, as hist2RNA), ``"t"``
        (Student, equal variances), ``"welch"``, ``"mannwhitney"``, ``"anova"`` or
        ``"kruskal"``.
    min_per_group
        Groups with fewer labelled samples are left out and reported; fewer than 2 groups
        left is an error.
    order
        The groups to compare, in order (others left out and counted). For two groups the
        difference and the t / U statistic are ``order[1]`` versus ``order[0]``. Default:
        numeric labels in numeric order, then text alphabetically (``Negative`` before
        ``Positive``, so the difference is positive minus negative).

    Returns
    -------
    DataFrame, one row per gene: ``gene``, ``test``, ``n`` and ``n_<group>``,
    ``mean_<group>``, ``median_<group>`` for each group, ``difference`` (two groups: mean of
    the second minus the first), ``eta_squared`` (between-group share of the variance),
    ``statistic``, ``p``, ``q`` (Benjamini-Hochberg across the genes of this table) and
    ``note`` (why a test is undefined, e.g. a constant gene). ``attrs`` holds the report of
    :func:`prepare_groups` (missing labels, groups left out) and the test's name.
    """
    if not isinstance(expr, pd.DataFrame):
        raise InputError("expr must be a samples x genes DataFrame")
    if genes is None:
        genes = [str(c) for c in expr.columns]
    else:
        from ..analysis.tables import select_genes

        genes = list(dict.fromkeys(genes))
        select_genes(expr, genes, what="expression")
    if not genes:
        raise InputError("no genes to test; name at least one")
    bad = [g for g in genes if not pd.api.types.is_numeric_dtype(expr[g])]
    if bad:
        raise InputError(f"expression column(s) {', '.join(bad)} are not numeric")
    if isinstance(groups, pd.Series):
        if not groups.index.equals(expr.index):
            if groups.index.duplicated().any() or expr.index.duplicated().any():
                raise InputError(f"{groups.name}: duplicate sample ids; keep one row per "
                                 "sample in the labels and the expression")
            n_absent = int((~expr.index.isin(groups.index)).sum())
            if n_absent:
                logger.info("%s: %d samples of the expression have no row in the labels",
                            groups.name, n_absent)
            groups = groups.reindex(expr.index)
    else:
        groups = pd.Series(list(groups), index=expr.index, name="groups")
        if len(groups) != len(expr):
            raise InputError(f"got {len(groups)} labels for {len(expr)} samples")
    labels, levels, report = prepare_groups(groups, order=order, min_per_group=min_per_group)
    test = _resolve_test(test, len(levels), report["column"])
    sub = expr.loc[labels.index, genes]
    rows = []
    for g in genes:
        col = sub[g].to_numpy(dtype=np.float64)
        samples = [col[(labels == lv).to_numpy() & np.isfinite(col)] for lv in levels]
        stat, p, note = _one_gene(samples, test)
        row: dict[str, Any] = {"gene": g, "test": test, "n": int(sum(len(s) for s in samples))}
        for lv, s in zip(levels, samples):
            row[f"n_{lv}"] = len(s)
        for lv, s in zip(levels, samples):
            row[f"mean_{lv}"] = float(s.mean()) if len(s) else math.nan
        for lv, s in zip(levels, samples):
            row[f"median_{lv}"] = float(np.median(s)) if len(s) else math.nan
        row["difference"] = (row[f"mean_{levels[1]}"] - row[f"mean_{levels[0]}"]
                             if len(levels) == 2 else math.nan)
        allv = np.concatenate(samples)
        ss_tot = float(((allv - allv.mean()) ** 2).sum()) if len(allv) else 0.0
        ss_between = float(sum(len(s) * (s.mean() - allv.mean()) ** 2 for s in samples if len(s)))
        row["eta_squared"] = ss_between / ss_tot if ss_tot > 0 else math.nan
        row.update(statistic=stat, p=p, note=note)
        rows.append(row)
    out = pd.DataFrame(rows)
    out.insert(out.columns.get_loc("note"), "q", bh_adjust(out["p"].to_numpy(dtype=np.float64)))
    undefined = out.loc[out["note"] != "", "gene"].tolist()
    if undefined:
        logger.warning("%s: test undefined (p = NaN) for %d gene(s): %s", report["column"],
                       len(undefined), ", ".join(undefined[:10]))
    out.attrs = {**report, "test": test, "test_name": GROUP_TESTS[test][0],
                 "n_undefined": len(undefined)}
    return out


def parse_measure(values: pd.Series) -> tuple[pd.Series, int]:
    """A measured column as floats: ``"30%"`` → 30, placeholders and blanks → NaN.

    Returns the floats and how many cells were missing. A value that is neither a number,
    a percentage nor a placeholder is an error naming the column and the value.

    Examples
    --------
    >>> import pandas as pd
    >>> v, n_missing = parse_measure(pd.Series(["30%", " 5 ", "[Not Available]", 12.5]))
    >>> v.tolist()[:2], v.tolist()[3], n_missing
    ([30.0, 5.0], 12.5, 1)
    """
    name = values.name if values.name is not None else "measure"
    if pd.api.types.is_bool_dtype(values):
        raise InputError(f"column {name!r} holds true/false values; give a number per sample")
    if pd.api.types.is_numeric_dtype(values):
        out = values.astype(np.float64)
        out[~np.isfinite(out.to_numpy())] = np.nan
        return out, int(out.isna().sum())
    parsed: list[float] = []
    for v in values.tolist():
        if is_missing(v):
            parsed.append(math.nan)
            continue
        if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
            parsed.append(float(v))
            continue
        s = str(v).strip()
        num = s[:-1].strip() if s.endswith("%") else s
        try:
            x = float(num)
        except ValueError:
            raise InputError(f"column {name!r}: {s!r} is not a number; give numbers or "
                             "percentages (e.g. 30 or 30%) and leave unknown values empty"
                             ) from None
        parsed.append(x if math.isfinite(x) else math.nan)
    out = pd.Series(parsed, index=values.index, name=values.name, dtype=np.float64)
    return out, int(out.isna().sum())


def correlate_with_measure(
    predicted: pd.Series | Sequence[float],
    measured: pd.Series | Sequence[Any],
    *,
    method: str = "pearson",
) -> pd.Series:
    """Correlation of a (predicted) gene with a measured number, e.g. MKI67 vs Ki67 %.

    Parameters
    ----------
    predicted
        One value per sample.
    measured
        One value per sample (numbers, or text such as ``"30%"``; placeholders and blanks
        are missing). When both are Series with different indexes, ``measured`` is aligned
        to ``predicted``'s index.
    method
        ``"pearson"`` (:func:`scipy.stats.pearsonr`) or ``"spearman"``
        (:func:`scipy.stats.spearmanr`).

    Returns
    -------
    Series: ``gene``, ``measure``, ``method``, ``n`` (complete pairs), ``n_dropped`` (pairs
    with either value missing), ``r``, ``p``, ``slope`` and ``intercept`` of the
    least-squares line ``predicted = intercept + slope * measured``, ``note``.

    Examples
    --------
    >>> import pandas as pd
    >>> res = correlate_with_measure(pd.Series([1.0, 2.0, 2.9, 4.2, None], name="MKI67"),
    ...                              pd.Series(["10%", "20%", "30%", "40%", "50%"], name="ki67"))
    >>> int(res["n"]), int(res["n_dropped"]), round(res["r"], 3), round(res["slope"], 3)
    (4, 1, 0.997, 0.105)
    """
    from scipy import stats

    if method not in ("pearson", "spearman"):
        raise InputError(f"method must be 'pearson' or 'spearman', not {method!r}")
    if isinstance(predicted, pd.Series) and isinstance(measured, pd.Series):
        if not measured.index.equals(predicted.index):
            measured = measured.reindex(predicted.index)
    pred = predicted if isinstance(predicted, pd.Series) else pd.Series(list(predicted))
    meas = measured if isinstance(measured, pd.Series) else pd.Series(list(measured))
    if len(pred) != len(meas):
        raise InputError(f"got {len(meas)} measured values for {len(pred)} predicted ones")
    gene = str(pred.name) if pred.name is not None else "predicted"
    mname = str(meas.name) if meas.name is not None else "measured"
    if not pd.api.types.is_numeric_dtype(pred):
        raise InputError(f"{gene}: predicted values are not numeric")
    x, _ = parse_measure(meas.rename(mname))
    x = x.to_numpy(dtype=np.float64)
    y = pred.to_numpy(dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    n, n_drop = int(ok.sum()), int((~ok).sum())
    if n_drop:
        logger.info("%s vs %s: %d of %d samples lack a value and are left out", gene, mname,
                    n_drop, len(ok))
    if n < 3:
        raise InputError(f"{gene} vs {mname}: only {n} samples have both values; "
                         "a correlation needs at least 3")
    x, y = x[ok], y[ok]
    res = {"gene": gene, "measure": mname, "method": method, "n": n, "n_dropped": n_drop,
           "r": math.nan, "p": math.nan, "slope": math.nan, "intercept": math.nan, "note": ""}
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        res["note"] = f"{mname if np.ptp(x) == 0 else gene} is constant"
        logger.warning("%s vs %s: %s; no correlation", gene, mname, res["note"])
        return pd.Series(res)
    fn = stats.pearsonr if method == "pearson" else stats.spearmanr
    c = fn(x, y)
    lr = stats.linregress(x, y)
    res.update(r=float(c.statistic), p=float(c.pvalue), slope=float(lr.slope),
               intercept=float(lr.intercept))
    return pd.Series(res)
