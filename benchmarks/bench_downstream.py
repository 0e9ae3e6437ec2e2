"""How much of each downstream finding survives when measured expression is replaced by
predicted expression, beside the mean-predictor baseline, in one table.

The cohort is :func:`histoexpr.datasets.synthetic_bulk.synthetic_bulk` (300 slides, one per
patient, 20 genes: 5 signal genes the image carries, 15 noise genes it does not), with the
signal genes renamed to the gastric and breast genes the analyses need (SIG0..3 → GZMB,
WARS, SFRP4, CDX1; SIG4 → MKI67) and one noise gene renamed ESR1, so ESR1 is a gene the
image cannot predict. A clinical table is drawn from the *measured* expression with
:func:`histoexpr.datasets.synthetic_clinical.synthetic_clinical`: hazard ratio 2 per SD of
MKI67, ER status from ESR1 (unpredictable), grade from SFRP4, Ki67 % from MKI67, four
subtypes from GZMB and CDX1. Ridge on slide-mean features is cross-validated by patient
(5 folds, no held-out set): every patient gets an out-of-fold prediction, and so does the
mean predictor. Each analysis then runs through ``histoexpr analyze`` three times: on the
measured expression, on ridge's out-of-fold predictions, and on the mean predictor's.

Rows: the univariate Cox HR per SD of MKI67 and its p, the concordance of MKI67, the
log-rank p of a median split; the t-test p of ESR1 between ER groups, the ANOVA p of SFRP4
across grades, Pearson r of MKI67 with Ki67 %; the voting classifier's accuracy and
macro-F1 (trained on measured expression with labels, cross-fitted on the measured rows
and applied to the predicted ones); the share of patients whose Cheong group matches the
one called from measured expression; the shared variance between slide-mean image
features and the expression (with the chance level), and the seconds each analysis took.

Read the mean-predictor column with care: its out-of-fold "prediction" is the training
folds' mean, which is lower when the held-out fold happens to be high, so it is slightly
*anti*-correlated with the truth across folds; with 300 patients that fold artefact alone
can give p-values near 1e-3 (and an HR below 1). Only effects far beyond it count.

    python benchmarks/bench_downstream.py [--slides 300] [--out bench_out/downstream]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

RENAME = {"SIG0": "GZMB", "SIG1": "WARS", "SIG2": "SFRP4", "SIG3": "CDX1", "SIG4": "MKI67",
          "NOISE0": "ESR1"}
SOURCES = {"measured": ["--source", "measured"], "ridge": [], "mean": ["--entry", "mean"]}


def _cli(*argv) -> float:
    from histoexpr.cli import main

    t0 = time.perf_counter()
    rc = main(["-q", *map(str, argv)])
    if rc != 0:
        raise SystemExit(f"histoexpr {' '.join(map(str, argv[:2]))} failed with status {rc}")
    return time.perf_counter() - t0


def build(out: Path, n_slides: int):
    from histoexpr.bulk import fit_run
    from histoexpr.config import BulkConfig
    from histoexpr.datasets.synthetic_bulk import synthetic_bulk
    from histoexpr.datasets.synthetic_clinical import synthetic_clinical

    syn = synthetic_bulk(out / "cohort", n_slides=n_slides, n_genes=20, n_signal=5, seed=0)
    expr = pd.read_csv(syn.expression_path, index_col=0).rename(columns=RENAME)
    expr.to_csv(syn.expression_path)
    clin = synthetic_clinical(expr, survival_gene="MKI67", er_gene="ESR1", ki67_gene="MKI67",
                              grade_gene="SFRP4", subtype_genes=("GZMB", "CDX1"),
                              out=out / "clinical.csv")
    cfg = BulkConfig.resolve(features=str(syn.features_dir), expression=str(syn.expression_path),
                             genes="all", model="ridge", baselines=["mean"], k=5,
                             holdout_fraction=0.0)
    rf = fit_run(cfg, out / "run")
    return syn, clin, rf.path


def analyse(run: Path, syn, out: Path) -> tuple[dict, dict]:
    rows: dict[str, dict] = {}
    secs: dict[str, float] = {}
    clinical = out / "clinical.csv"
    for name, pick in SOURCES.items():
        r = rows.setdefault(name, {})
        d = out / "analyses" / name
        secs[f"survival/{name}"] = _cli(
            "analyze", "survival", "--expression", run, *pick, "--clinical", clinical,
            "--time", "OS_MONTHS", "--event", "OS_STATUS", "--score", "MKI67",
            "--out", d / "survival")
        uni = pd.read_csv(d / "survival" / "cox_univariate.csv")
        u = uni[uni["variable"] == "MKI67"].iloc[0]
        r["Cox HR per SD MKI67"], r["Cox p"] = u["hr"], u["p"]
        r["C-index MKI67"] = u["concordance"]
        lr = pd.read_csv(d / "survival" / "logrank.csv")
        r["log-rank p (median split)"] = lr["p"].iloc[0]

        secs[f"clinical/{name}"] = _cli(
            "analyze", "clinical", "--expression", run, *pick, "--clinical", clinical,
            "--genes", "ESR1,SFRP4,MKI67", "--group", "ER_STATUS", "--group", "GRADE",
            "--correlate", "MKI67=KI67_PERCENT", "--out", d / "clinical")
        er = pd.read_csv(d / "clinical" / "groups_ER_STATUS.csv").set_index("gene")
        gr = pd.read_csv(d / "clinical" / "groups_GRADE.csv").set_index("gene")
        co = pd.read_csv(d / "clinical" / "correlations.csv")
        r["t-test p ESR1 by ER"] = er.loc["ESR1", "p"]
        r["ANOVA p SFRP4 by grade"] = gr.loc["SFRP4", "p"]
        r["Pearson r MKI67 vs Ki67 %"] = co["r"].iloc[0]

        secs[f"subtype/{name}"] = _cli(
            "analyze", "subtype", "--expression", run, *pick, "--method", "vote",
            "--train", run, "--labels", clinical, "--label-col", "SUBTYPE",
            "--genes", "GZMB,WARS,SFRP4,CDX1,MKI67", "--out", d / "subtype")
        m = pd.read_csv(d / "subtype" / "metrics.csv")
        m = m[m["class"] == "all"].set_index("metric")["value"]
        r["subtype accuracy (vote)"] = float(m["accuracy"])
        r["subtype macro-F1 (vote)"] = float(m["macro_f1"])

        secs[f"cheong/{name}"] = _cli(
            "analyze", "cheong", "--expression", run, *pick, "--out", d / "cheong")
        r["_cheong"] = pd.read_csv(d / "cheong" / "cheong_groups.csv", index_col=0)["group"]

        secs[f"variance/{name}"] = _cli(
            "analyze", "variance", "--features", syn.features_dir, "--expression", run, *pick,
            "--top-features", 32, "--top-genes", 20, "--out", d / "variance")
        sv = pd.read_csv(d / "variance" / "shared_variance.csv").iloc[0]
        r["shared variance (image, expr.)"] = sv["shared_variance"]
        r["shared variance chance level"] = sv["expected_null"]
    ref = rows["measured"]["_cheong"]
    for r in rows.values():
        g = r.pop("_cheong")
        r["Cheong group = measured's"] = float((g.loc[ref.index] == ref).mean())
    return rows, secs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slides", type=int, default=300)
    ap.add_argument("--out", type=Path, default=Path("bench_out/downstream"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    syn, _, run = build(args.out, args.slides)
    t_fit = time.perf_counter() - t0
    rows, secs = analyse(run, syn, args.out)
    df = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(f"\nsynthetic cohort: {args.slides} patients; predictions are 5-fold out-of-fold "
          f"(split by patient, no held-out set); ESR1 is a gene the image does not carry; "
          f"cohort + ridge fit {t_fit:.0f} s")
    print(df.to_string(float_format=lambda v: f"{v:.3g}"))
    t = pd.Series(secs).rename("seconds")
    t.index = pd.MultiIndex.from_tuples([tuple(k.split("/")) for k in t.index])
    print("\nseconds per analysis (CLI, in-process)")
    print(t.unstack().round(2).to_string())
    df.to_csv(args.out / "bench_downstream.csv")
    (args.out / "seconds.json").write_text(json.dumps(secs, indent=1))
    return 0 if np.isfinite(df.to_numpy(float)).all() else 1


if __name__ == "__main__":
    sys.exit(main())
