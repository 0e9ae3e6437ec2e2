"""Variance study (seed 002): how much image features and expression share, what covariates
explain, which features go with which genes. ``histoexpr analyze variance`` is
:func:`variance_study`.

For each feature set: **Q1** PCA of features and expression, the shared variance
``sum_i lambda_i sum_j r_ij^2`` with its chance level and a permutation null; **Q2** with
covariates, the same on the residuals of ``F ~ C`` and ``E ~ C``; **Q3** tests of the
top-varying features x genes with Benjamini-Hochberg q, and gene-set enrichment (``gmt``);
**Q4** montages of the tiles scoring highest and lowest on the most associated features.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from .inputs import clinical_table, expression_frame, input_label, split_list
from .study import StudyOutput, StudyResult, safe_name

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["parse_feature_specs", "variance_study"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Options:
    """The settings of one study (recorded as ``analysis.json`` ``params``)."""

    entry: str | None
    source: str
    role: str | None
    pool: str
    covariate_id: str | None
    covariate_columns: str | Sequence[str] | None
    log_covariates: Sequence[str] | None
    log_offset: float
    categorical_covariates: Sequence[str]
    variance_cutoff: float
    standardise: bool
    permutations: int
    seed: int
    top_features: int
    top_genes: int
    min_mean: float | None
    method: str
    fdr: float
    all_pairs: bool
    top_associated: int
    montage: int
    # inputs: in analysis.json's inputs, not its params
    covariates: Any = None
    manifest: Path | None = None
    gmt: Path | None = None
    slides: Path | None = None

    def params(self) -> dict[str, Any]:
        skip = ("covariates", "manifest", "gmt", "slides")
        return {k: v for k, v in asdict(self).items() if k not in skip}


def parse_feature_specs(specs: Mapping[str, str | Path] | Sequence[str | Path]
                        ) -> dict[str, Path]:
    """``[NAME=]PATH`` items (or ``{name: path}``) → ``{name: path}`` (name defaults to the
    path's stem).

    >>> {k: str(v) for k, v in parse_feature_specs(["raw=feats", "tuned.csv"]).items()}
    {'raw': 'feats', 'tuned': 'tuned.csv'}
    """
    if isinstance(specs, Mapping):
        return {str(k): Path(v) for k, v in specs.items()}
    out: dict[str, Path] = {}
    for item in [specs] if isinstance(specs, str | Path) else specs:
        spec = str(item)
        name, sep, rest = spec.partition("=")
        if sep and name and "/" not in name and not Path(spec).exists():
            if not rest:
                raise InputError(f"--features {spec!r}: write NAME=PATH")
            path = Path(rest)
        else:
            name, path = "", Path(spec)
        name = name or path.name.split(".")[0] or "features"
        if name in out:
            raise InputError(f"--features: the name {name!r} is given twice; name each set "
                             "(e.g. raw=DIR tuned=DIR)")
        out[name] = path
    return out


def _read_covariates(opt: _Options) -> pd.DataFrame:
    cov = clinical_table(opt.covariates, id_col=opt.covariate_id)
    if opt.covariate_columns:
        cols = split_list(opt.covariate_columns)
        missing = [c for c in cols if c not in cov.columns]
        if missing:
            raise InputError(f"{input_label(opt.covariates, 'covariates')}: no column(s) "
                             f"{', '.join(missing)}; columns "
                             f"are {', '.join(map(str, cov.columns))}")
        cov = cov[cols]
    return cov


def _match_covariates(index: pd.Index, cov: pd.DataFrame) -> pd.DataFrame:
    """The covariate rows of the samples ``index`` (exact, TCGA patient or GTEx tissue id)."""
    import pandas as pd

    from ..analysis.features_table import gtex_tissue_id
    from ..analysis.tables import align_samples

    probe = pd.DataFrame(index=index)
    try:
        _, c = align_samples(probe, cov, what=("samples", "covariates"))
        return c
    except InputError:
        keys = [gtex_tissue_id(s) for s in cov.index]
        if any(k is None for k in keys):
            raise
    c = cov.set_axis(keys, axis=0)
    if c.index.duplicated().any():
        logger.info("covariates: %d rows share a GTEx tissue sample id; the first is kept",
                    int(c.index.duplicated().sum()))
        c = c[~c.index.duplicated()]
    return align_samples(probe, c, what=("samples", "covariates"))[1]


def _r2_rows(reg: Any, *, set_name: str, source: str) -> pd.DataFrame:
    tab = reg.r2.rename_axis("column").reset_index().melt(
        id_vars="column", var_name="covariate", value_name="r2")
    tab.insert(0, "source", source)
    tab.insert(0, "features", set_name)
    return tab


def _one_set(name: str, path: Path, expr: pd.DataFrame, cov: pd.DataFrame | None,
             opt: _Options, out: StudyOutput, acc: dict) -> None:
    """Q1-Q3 for one feature set; appends to the accumulators in ``acc``."""
    from ..analysis.association import associate, feature_summary
    from ..analysis.confounders import regress_out
    from ..analysis.features_table import align_features, read_image_features
    from ..analysis.variance import shared_variance

    feats = read_image_features(path, manifest=opt.manifest, pool=opt.pool)
    f, e = align_features(feats, expr)
    acc["inputs"][f"features_{name}"] = path
    counts = {"feature_rows": len(feats), "expression_rows": len(expr), "matched": len(f)}
    sv_kw = {"variance_cutoff": opt.variance_cutoff, "standardise": opt.standardise,
             "n_permutations": opt.permutations, "seed": opt.seed}
    data = {"raw": (f, e, 0)}
    if cov is not None:
        c = _match_covariates(f.index, cov)
        log = opt.log_covariates
        kw = {"log": log, "log_offset": opt.log_offset,
              "categorical": opt.categorical_covariates}
        rf = regress_out(f, c, what=f"image features ({name})", **kw)
        re_ = regress_out(e, c, what="expression", **kw)
        keep = rf.residuals.index
        counts["dropped_by_covariates"] = len(f) - len(keep)
        if len(keep) < len(f):
            out.note(f"{name}: {len(f) - len(keep)} of {len(f)} matched samples lack "
                     "covariates; raw and residual results both use the other "
                     f"{len(keep)}, so they differ only by the regression")
        data = {"raw": (f.loc[keep], e.loc[keep], 0),
                "residual": (rf.residuals, re_.residuals, rf.n_covariates)}
        acc["r2"].append(_r2_rows(rf, set_name=name, source="features"))
        acc["r2"].append(_r2_rows(re_, set_name=name, source="expression"))
        for reg, src in ((rf, "features"), (re_, "expression")):
            s = reg.summary()
            s.insert(0, "source", src)
            s.insert(0, "features", name)
            acc["r2_summary"].append(s)
        acc["design"] = list(rf.design.matrix.columns)
        acc["logged"] = rf.design.logged
    for kind, (fx, ex, ncov) in data.items():
        res = shared_variance(fx, ex, n_covariates=ncov, **sv_kw)
        acc["summary"].append({"features": name, "data": kind, **res.summary()})
        comp = res.components.copy()
        comp.insert(0, "data", kind)
        comp.insert(0, "features", name)
        acc["components"].append(comp)
        if res.saturated:
            out.note(f"{name} ({kind}): {res.k_expression} expression PCs for "
                     f"{res.n_samples} samples explain any image PC perfectly; the shared "
                     "variance is meaningless here, lower --variance-cutoff")
    kind = "residual" if "residual" in data else "raw"
    fx, ex, _ = data[kind]
    if opt.min_mean is not None:  # on the raw scale (residuals have mean 0)
        means = e.loc[ex.index, ex.columns].mean()
        if not (means > opt.min_mean).any():
            raise InputError(f"expression: no gene has mean above --min-mean {opt.min_mean} "
                             f"(means range {means.min():.3g} to {means.max():.3g})")
        logger.info("expression: %d of %d genes have mean > %g", int((means > opt.min_mean)
                    .sum()), len(means), opt.min_mean)
        ex = ex.loc[:, (means > opt.min_mean).to_numpy()]
    assoc = associate(fx, ex, top_features=opt.top_features, top_genes=opt.top_genes,
                      method=opt.method)
    summ = feature_summary(assoc, fdr=opt.fdr)
    counts.update({"association_data": kind, "association_tests": assoc.attrs["n_tests"],
                   "association_significant": int((assoc["q"] < opt.fdr).sum())})
    acc["counts"][name] = counts
    a = assoc if opt.all_pairs else assoc[assoc["q"] < opt.fdr]
    acc["assoc"].append(a.assign(features=name, data=kind)[
        ["features", "data", "feature", "gene", "r", "r2", "slope", "p", "q"]])
    acc["assoc_features"].append(summ.assign(features=name, data=kind))
    acc["full"][name] = (assoc, summ, Path(path))


def _enrichment(opt: _Options, acc: dict, out: StudyOutput) -> None:
    import pandas as pd

    from ..analysis.enrichment import hypergeometric_enrichment, read_gmt

    sets = read_gmt(opt.gmt)
    rows = []
    for name, (assoc, summ, _) in acc["full"].items():
        sig = assoc[assoc["q"] < opt.fdr]
        top = summ[summ["n_significant"] > 0]["feature"].head(opt.top_associated).tolist()
        universe = assoc["gene"].unique().tolist()
        if not top:
            out.note(f"{name}: no feature has a gene with q < {opt.fdr}; no enrichment test")
            continue
        queries = {f: sig.loc[sig["feature"] == f, "gene"].tolist() for f in top}
        queries["union"] = list(dict.fromkeys(sig.loc[sig["feature"].isin(top), "gene"]))
        for q, genes in queries.items():
            try:
                res = hypergeometric_enrichment(genes, sets, universe=universe)
            except InputError as e:
                out.note(f"{name} {q}: enrichment not tested ({e})")
                continue
            rows.append(res.assign(features=name, query=q, n_query_genes=len(genes)))
    if rows:
        tab = pd.concat(rows, ignore_index=True)
        first = ["features", "query", "n_query_genes"]
        out.table("enrichment", tab[first + [c for c in tab.columns if c not in first]])


def _montages(opt: _Options, acc: dict, out: StudyOutput) -> None:
    from ..analysis.montage import montage_from_features

    for name, (_, summ, path) in acc["full"].items():
        if not path.is_dir():
            out.note(f"{name}: --montage needs a feature folder, not a table; skipped")
            continue
        for feat in summ["feature"].head(opt.montage):
            m = re.fullmatch(r"f(\d+)", str(feat))
            if m is None:
                continue
            fig = montage_from_features(path, feature=int(m.group(1)), slides_dir=opt.slides)
            prefix = "montage" if len(acc["full"]) == 1 else f"montage_{safe_name(name)}"
            out.figure(f"{prefix}_{safe_name(feat)}", fig)


def variance_study(
    features: Mapping[str, str | Path] | Sequence[str | Path],
    *,
    expression: str | Path | pd.DataFrame,
    out: str | Path,
    manifest: str | Path | None = None,
    pool: str = "mean",
    covariates: str | Path | pd.DataFrame | None = None,
    covariate_id: str | None = None,
    covariate_columns: str | Sequence[str] | None = None,
    log_covariates: Sequence[str] | None = None,
    log_offset: float = 0.0,
    categorical_covariates: Sequence[str] = (),
    variance_cutoff: float = 0.95,
    standardise: bool = True,
    permutations: int = 200,
    seed: int = 0,
    top_features: int = 500,
    top_genes: int = 2000,
    min_mean: float | None = None,
    method: str = "pearson",
    fdr: float = 0.05,
    all_pairs: bool = False,
    gmt: str | Path | None = None,
    top_associated: int = 10,
    montage: int = 0,
    slides: str | Path | None = None,
    entry: str | None = None,
    source: str = "predicted",
    role: str | None = None,
) -> StudyResult:
    """Shared variance of image features and expression, confounders, feature x gene
    associations, enrichment and montages, for one or several feature sets.

    Parameters
    ----------
    features
        Feature sets: ``{name: path}``, or ``"[NAME=]PATH"`` items; each path a feature
        folder (``histoexpr embed``; tiles pooled per slide by ``pool``) or a samples x
        features table.
    expression
        Any expression input of :mod:`histoexpr.workflows.inputs` (``entry``, ``source``,
        ``role`` pick a run folder's rows). Slides meet samples by ``manifest`` (CSV
        ``slide,sample``), TCGA patient barcode or GTEx tissue sample id.
    out
        Output folder: ``shared_variance.csv``, ``components.csv``, ``association.csv``,
        ``association_features.csv``, [``confounders_r2.csv``, ``confounders_summary.csv``],
        [``enrichment.csv``], ``shared_variance.png``, ``association_heatmap[_NAME].png``,
        [``montage_*.png``], ``analysis.json``.
    covariates, covariate_id, covariate_columns
        Covariate table (path or DataFrame), its id column and the columns to use (Q2).
    log_covariates, log_offset, categorical_covariates
        Covariates on a log scale (default: ischaemic time when present; ``[]`` for none),
        the offset added before the log, numeric covariates to one-hot.
    variance_cutoff, standardise, permutations, seed
        Q1: PCs kept up to this share of variance; z-score (else centre) columns;
        sample-pairing permutations of the null and their seed.
    top_features, top_genes, min_mean, method, fdr, all_pairs
        Q3: the most variable features and genes tested (genes with mean above
        ``min_mean``), pearson or spearman, the BH q threshold, and whether
        ``association.csv`` keeps every pair.
    gmt, top_associated
        Gene sets (GMT) tested for enrichment in the genes of the ``top_associated`` most
        associated features.
    montage, slides
        Tile montages of the ``montage`` most associated features (feature folders), with
        the slides' folder when they moved since embedding.

    Returns
    -------
    StudyResult
        ``res["shared_variance"]``, ``res["association"]``, ... and ``analysis.json``.

    Examples
    --------
    >>> from histoexpr.workflows import variance_study
    >>> res = variance_study({"raw": "feats", "tuned": "feats_tuned"},
    ...                      expression="gtex.gct", covariates="covariates.tsv",
    ...                      out="out/variance")  # doctest: +SKIP
    >>> res["shared_variance"]  # doctest: +SKIP
    """
    import pandas as pd

    from ..plot.variance import association_heatmap, shared_variance_bars

    if not 0 < fdr < 1:
        raise InputError(f"--fdr must be between 0 and 1, got {fdr}")
    if permutations < 0:
        raise InputError("--permutations must be >= 0")
    opt = _Options(
        entry=entry, source=source, role=role, pool=pool, covariate_id=covariate_id,
        covariate_columns=covariate_columns, log_covariates=log_covariates,
        log_offset=log_offset, categorical_covariates=categorical_covariates,
        variance_cutoff=variance_cutoff, standardise=standardise, permutations=permutations,
        seed=seed, top_features=top_features, top_genes=top_genes, min_mean=min_mean,
        method=method, fdr=fdr, all_pairs=all_pairs, top_associated=top_associated,
        montage=montage, covariates=covariates,
        manifest=None if manifest is None else Path(manifest),
        gmt=None if gmt is None else Path(gmt), slides=None if slides is None else Path(slides))
    specs = parse_feature_specs(features)
    expr = expression_frame(expression, entry=entry, source=source, role=role)
    cov = _read_covariates(opt) if covariates is not None else None
    output = StudyOutput(out, "variance")
    acc: dict[str, Any] = {k: [] for k in ("summary", "components", "r2", "r2_summary",
                                           "assoc", "assoc_features")}
    acc.update({"full": {}, "counts": {}, "inputs": {}})
    for name, path in specs.items():
        _one_set(name, path, expr, cov, opt, output, acc)

    summary = pd.DataFrame(acc["summary"])
    components = pd.concat(acc["components"], ignore_index=True)
    output.table("shared_variance", summary)
    output.table("components", components)
    output.table("association", pd.concat(acc["assoc"], ignore_index=True))
    output.table("association_features", pd.concat(acc["assoc_features"], ignore_index=True))
    if acc["r2"]:
        output.table("confounders_r2", pd.concat(acc["r2"], ignore_index=True))
        output.table("confounders_summary", pd.concat(acc["r2_summary"], ignore_index=True))
    output.figure("shared_variance", shared_variance_bars(summary, components))
    for name, (assoc, _, _) in acc["full"].items():
        fig_name = "association_heatmap" if len(specs) == 1 else \
            f"association_heatmap_{safe_name(name)}"
        output.figure(fig_name, association_heatmap(assoc, fdr=fdr, title=name))
    if gmt is not None:
        _enrichment(opt, acc, output)
    if montage > 0:
        _montages(opt, acc, output)
    output.note("shared variance = sum_i lambda_i sum_j r_ij^2 with lambda_i the share of "
                "total (z-scored) image-feature variance of image PC i; expected_null = "
                "kept share x k_E / (n - 1 - covariates) is its value under independence")
    params = opt.params()
    params["feature_sets"] = {k: str(v) for k, v in specs.items()}
    if "design" in acc:
        params["design_columns"] = acc["design"]
        params["logged_covariates"] = acc["logged"]
    record = output.finish(
        params=params,
        inputs={"expression": expression, "covariates": covariates,
                "manifest": manifest, "gmt": gmt, **acc["inputs"]},
        summary={"shared_variance": summary[["features", "data", "shared_variance",
                                             "expected_null", "p_value"]].to_dict("records"),
                 "samples": acc["counts"]},
    )
    return output.result(record)
