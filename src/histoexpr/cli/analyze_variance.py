"""``histoexpr analyze variance``: how much image features and expression share (seed 002).

    histoexpr analyze variance --features [NAME=]DIR|FILE [--features NAME=DIR ...]
        --expression RUN|FILE [--manifest FILE] [--pool mean|median]
        [--covariates FILE [--covariate-columns A,B] [--log-covariates SMTISCH ...]
         [--categorical-covariates SMCENTER ...] [--log-offset 0]]
        [--variance-cutoff 0.95] [--permutations 200] [--seed 0]
        [--top-features 500 --top-genes 2000 --min-mean X] [--method pearson|spearman]
        [--fdr 0.05] [--all-pairs] [--gmt FILE] [--top-associated 10]
        [--montage N [--slides DIR]] --out DIR

Each ``--features`` is a feature folder (``histoexpr embed``; tiles mean-pooled per slide) or
a samples x features table; give several as ``NAME=PATH`` (e.g. ``raw=feats/ tuned=tuned/``)
to compare encoders side by side. Slides meet expression samples by ``--manifest``
(``slide,sample``), TCGA patient barcode or GTEx tissue sample id.

For each feature set:

- **Q1** PCA of features and expression (z-scored columns), components up to
  ``--variance-cutoff``, and the shared variance ``sum_i lambda_i sum_j r_ij^2`` (lambda_i:
  image PC i's share of the total image variance; r_ij: its Pearson r with expression PC j),
  with the chance level ``k_E / (n - 1)`` and a permutation null;
- **Q2** with ``--covariates`` (e.g. GTEx sample attributes; ischaemic time on a log scale):
  the same on the residuals of ``F ~ C`` and ``E ~ C``, and how much of each feature and gene
  the covariates explain;
- **Q3** Pearson tests of the top-varying features x genes (on the residuals when covariates
  are given), Benjamini-Hochberg q over all pairs; ``--gmt`` tests the genes associated with
  the most associated features for gene-set enrichment; ``--montage N`` draws the tiles
  scoring highest and lowest on the N most associated features (Q4).

Writes ``shared_variance.csv`` (one row per feature set and raw/residual), ``components.csv``
(each image PC's contribution), ``association.csv`` (pairs with q < FDR, or all with
``--all-pairs``), ``association_features.csv``, ``confounders_r2.csv`` and
``confounders_summary.csv`` (with covariates), ``enrichment.csv`` (with ``--gmt``),
``shared_variance.png``, ``association_heatmap[_NAME].png``, ``montage_*.png`` and
``analysis.json``.
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

from ..errors import InputError
from .analyze import add_expression_args, add_out_arg, load_expression, print_files

logger = logging.getLogger(__name__)


def add_parser(ss: argparse._SubParsersAction) -> None:
    p = ss.add_parser("variance", help="shared variance of image features and expression, "
                      "confounders, feature x gene associations (GTEx study)",
                      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--features", action="append", required=True, metavar="[NAME=]DIR|FILE",
                   help="feature folder or samples x features table (repeatable, NAME=PATH)")
    add_expression_args(p)
    p.add_argument("--manifest", type=Path, default=None,
                   help="CSV slide,sample mapping feature files to expression samples")
    p.add_argument("--pool", default="mean", choices=["mean", "median"],
                   help="pooling of each slide's tile features (default mean)")
    c = p.add_argument_group("confounders (Q2)")
    c.add_argument("--covariates", type=Path, default=None,
                   help="covariate table (id column + e.g. SMTISCH, SMRIN, AGE, SEX)")
    c.add_argument("--covariate-id", default=None, help="its id column (default: guessed)")
    c.add_argument("--covariate-columns", default=None, metavar="A,B,...",
                   help="covariates to use (default every column)")
    c.add_argument("--log-covariates", nargs="*", default=None, metavar="COL",
                   help="covariates on a log scale (default: ischemic_time/SMTISCH if "
                   "present; give none to log nothing)")
    c.add_argument("--log-offset", type=float, default=0.0,
                   help="added before the log (default 0; 1 when times can be 0)")
    c.add_argument("--categorical-covariates", nargs="*", default=(), metavar="COL",
                   help="numeric covariates to one-hot (text columns always are)")
    v = p.add_argument_group("shared variance (Q1)")
    v.add_argument("--variance-cutoff", type=float, default=0.95,
                   help="keep PCs up to this share of variance (default 0.95; seed Plan 0.999)")
    v.add_argument("--no-standardise", dest="standardise", action="store_false",
                   help="only centre columns before PCA (default: z-score)")
    v.add_argument("--permutations", type=int, default=200,
                   help="sample-pairing permutations for the null (default 200; 0 for none)")
    v.add_argument("--seed", type=int, default=0, help="seed of the permutations")
    a = p.add_argument_group("associations (Q3)")
    a.add_argument("--top-features", type=int, default=500,
                   help="most variable features tested (default 500)")
    a.add_argument("--top-genes", type=int, default=2000,
                   help="most variable genes tested (default 2000)")
    a.add_argument("--min-mean", type=float, default=None,
                   help="only genes with mean above this (seed 002: 1 on log RPKM)")
    a.add_argument("--method", default="pearson", choices=["pearson", "spearman"])
    a.add_argument("--fdr", type=float, default=0.05, help="BH q threshold (default 0.05)")
    a.add_argument("--all-pairs", action="store_true",
                   help="write every tested pair to association.csv, not only q < FDR")
    a.add_argument("--gmt", type=Path, default=None,
                   help="gene sets (GMT): enrichment of the genes associated with the top "
                   "features")
    a.add_argument("--top-associated", type=int, default=10,
                   help="features (most associated first) used by --gmt (default 10)")
    a.add_argument("--montage", type=int, default=0, metavar="N",
                   help="tile montages of the N most associated features (feature folders)")
    a.add_argument("--slides", type=Path, default=None,
                   help="folder of the slides, for --montage when they moved since embedding")
    add_out_arg(p)
    p.set_defaults(func=run_variance)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "x"


def parse_feature_specs(specs: list[str]) -> dict[str, Path]:
    """``[NAME=]PATH`` options → ``{name: path}`` (name defaults to the path's stem)."""
    out: dict[str, Path] = {}
    for spec in specs:
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


def _read_covariates(args: argparse.Namespace):
    from ..analysis.tables import read_clinical

    cov = read_clinical(args.covariates, id_col=args.covariate_id)
    if args.covariate_columns:
        cols = [c.strip() for c in args.covariate_columns.split(",") if c.strip()]
        missing = [c for c in cols if c not in cov.columns]
        if missing:
            raise InputError(f"{args.covariates}: no column(s) {', '.join(missing)}; columns "
                             f"are {', '.join(map(str, cov.columns))}")
        cov = cov[cols]
    return cov


def _match_covariates(index, cov):
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


def _r2_rows(reg, *, set_name: str, source: str):
    tab = reg.r2.rename_axis("column").reset_index().melt(
        id_vars="column", var_name="covariate", value_name="r2")
    tab.insert(0, "source", source)
    tab.insert(0, "features", set_name)
    return tab


def _one_set(name, path, expr, cov, args, out, acc):
    """Q1-Q3 for one feature set; appends to the accumulators in ``acc``."""
    from ..analysis.association import associate, feature_summary
    from ..analysis.confounders import regress_out
    from ..analysis.features_table import align_features, read_image_features
    from ..analysis.variance import shared_variance

    feats = read_image_features(path, manifest=args.manifest, pool=args.pool)
    f, e = align_features(feats, expr)
    acc["inputs"][f"features_{name}"] = path
    counts = {"feature_rows": len(feats), "expression_rows": len(expr), "matched": len(f)}
    sv_kw = {"variance_cutoff": args.variance_cutoff, "standardise": args.standardise,
             "n_permutations": args.permutations, "seed": args.seed}
    data = {"raw": (f, e, 0)}
    if cov is not None:
        c = _match_covariates(f.index, cov)
        log = args.log_covariates
        kw = {"log": log, "log_offset": args.log_offset,
              "categorical": args.categorical_covariates}
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
    if args.min_mean is not None:  # on the raw scale (residuals have mean 0)
        means = e.loc[ex.index, ex.columns].mean()
        if not (means > args.min_mean).any():
            raise InputError(f"expression: no gene has mean above --min-mean {args.min_mean} "
                             f"(means range {means.min():.3g} to {means.max():.3g})")
        logger.info("expression: %d of %d genes have mean > %g", int((means > args.min_mean)
                    .sum()), len(means), args.min_mean)
        ex = ex.loc[:, (means > args.min_mean).to_numpy()]
    assoc = associate(fx, ex, top_features=args.top_features, top_genes=args.top_genes,
                      method=args.method)
    summ = feature_summary(assoc, fdr=args.fdr)
    counts.update({"association_data": kind, "association_tests": assoc.attrs["n_tests"],
                   "association_significant": int((assoc["q"] < args.fdr).sum())})
    acc["counts"][name] = counts
    a = assoc if args.all_pairs else assoc[assoc["q"] < args.fdr]
    acc["assoc"].append(a.assign(features=name, data=kind)[
        ["features", "data", "feature", "gene", "r", "r2", "slope", "p", "q"]])
    acc["assoc_features"].append(summ.assign(features=name, data=kind))
    acc["full"][name] = (assoc, summ, Path(path))


def _enrichment(args, acc, out):
    import pandas as pd

    from ..analysis.enrichment import hypergeometric_enrichment, read_gmt

    sets = read_gmt(args.gmt)
    rows = []
    for name, (assoc, summ, _) in acc["full"].items():
        sig = assoc[assoc["q"] < args.fdr]
        top = summ[summ["n_significant"] > 0]["feature"].head(args.top_associated).tolist()
        universe = assoc["gene"].unique().tolist()
        if not top:
            out.note(f"{name}: no feature has a gene with q < {args.fdr}; no enrichment test")
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


def _montages(args, acc, out):
    from ..analysis.montage import montage_from_features

    for name, (_, summ, path) in acc["full"].items():
        if not path.is_dir():
            out.note(f"{name}: --montage needs a feature folder, not a table; skipped")
            continue
        for feat in summ["feature"].head(args.montage):
            m = re.fullmatch(r"f(\d+)", str(feat))
            if m is None:
                continue
            fig = montage_from_features(path, feature=int(m.group(1)), slides_dir=args.slides)
            prefix = "montage" if len(acc["full"]) == 1 else f"montage_{_safe(name)}"
            out.figure(f"{prefix}_{_safe(feat)}", fig)


def run_variance(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..analysis.output import AnalysisOutput
    from ..plot.variance import association_heatmap, shared_variance_bars

    if not 0 < args.fdr < 1:
        raise InputError(f"--fdr must be between 0 and 1, got {args.fdr}")
    if args.permutations < 0:
        raise InputError("--permutations must be >= 0")
    specs = parse_feature_specs(args.features)
    expr = load_expression(args)
    cov = _read_covariates(args) if args.covariates is not None else None
    out = AnalysisOutput(args.out, "variance")
    acc = {k: [] for k in ("summary", "components", "r2", "r2_summary", "assoc",
                           "assoc_features")}
    acc.update({"full": {}, "counts": {}, "inputs": {}})
    for name, path in specs.items():
        _one_set(name, path, expr, cov, args, out, acc)

    summary = pd.DataFrame(acc["summary"])
    components = pd.concat(acc["components"], ignore_index=True)
    out.table("shared_variance", summary)
    out.table("components", components)
    out.table("association", pd.concat(acc["assoc"], ignore_index=True))
    out.table("association_features", pd.concat(acc["assoc_features"], ignore_index=True))
    if acc["r2"]:
        out.table("confounders_r2", pd.concat(acc["r2"], ignore_index=True))
        out.table("confounders_summary", pd.concat(acc["r2_summary"], ignore_index=True))
    out.figure("shared_variance", shared_variance_bars(summary, components))
    for name, (assoc, _, _) in acc["full"].items():
        fig_name = "association_heatmap" if len(specs) == 1 else \
            f"association_heatmap_{_safe(name)}"
        out.figure(fig_name, association_heatmap(assoc, fdr=args.fdr, title=name))
    if args.gmt is not None:
        _enrichment(args, acc, out)
    if args.montage > 0:
        _montages(args, acc, out)
    out.note("shared variance = sum_i lambda_i sum_j r_ij^2 with lambda_i the share of total "
             "(z-scored) image-feature variance of image PC i; expected_null = "
             "kept share x k_E / (n - 1 - covariates) is its value under independence")
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
              if k not in ("func", "features", "expression", "covariates", "gmt", "out",
                           "manifest", "slides")}
    params["feature_sets"] = {k: str(v) for k, v in specs.items()}
    if "design" in acc:
        params["design_columns"] = acc["design"]
        params["logged_covariates"] = acc["logged"]
    record = out.finish(
        params=params,
        inputs={"expression": args.expression, "covariates": args.covariates,
                "manifest": args.manifest, "gmt": args.gmt, **acc["inputs"]},
        summary={"shared_variance": summary[["features", "data", "shared_variance",
                                             "expected_null", "p_value"]].to_dict("records"),
                 "samples": acc["counts"]},
    )
    print_files(record, args.out)
    return 0
