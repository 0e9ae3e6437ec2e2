"""The sections of the run report (see :mod:`.report`): each takes a
:class:`.report_html.RunInfo` and returns HTML, or raises :class:`.report_html.Missing` naming
the file it needs."""

from __future__ import annotations

import html
import json
import logging
from typing import Any

import numpy as np
import pandas as pd

from .figures import new_figure
from .report_html import Missing, RunInfo, esc, figure_img, png_img, table_html

__all__ = [
    "analyses_section", "box_section", "config_section", "cost_section", "genes_section",
    "metrics_section", "qc_section", "spatial_section",
]

logger = logging.getLogger(__name__)

N_GENES = 3  # best and worst genes shown


def _p(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def _kv(d: dict[str, Any]) -> str:
    rows = [(k, json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in d.items()]
    return table_html([(k, str(v)) for k, v in rows], ["key", "value"], text_cols=2)


# --------------------------------------------------------------------------- config + data


def config_section(run: RunInfo) -> str:
    out = ["<h3>Resolved config</h3>", _kv(run.config) if run.config else
           '<p class="na">not available: config.json missing</p>', "<h3>Data</h3>"]
    try:
        data = run.json("data.json")
    except Missing:
        out.append('<p class="na">not available: data.json missing</p>')
        return "\n".join(out)
    small = {k: v for k, v in data.items() if not isinstance(v, (dict, list))}
    big = {k: f"{len(v)} entries" for k, v in data.items() if isinstance(v, (dict, list))
           and k != "sections"}
    out.append(_kv(small | big))
    secs = data.get("sections")
    if isinstance(secs, dict) and secs:
        rows = [(s, d.get("patient", ""), d.get("platform", ""), d.get("spots_kept", ""),
                 "; ".join(f"{k}: {v}" for k, v in (d.get("dropped") or {}).items()))
                for s, d in secs.items()]
        out.append(table_html(rows, ["section", "patient", "platform", "spots kept",
                                     "dropped"], text_cols=3))
    return "\n".join(out)


def qc_section(run: RunInfo) -> str:
    """Thumbnails: the sections' H&E images (st) and any PNG under ``RUN/qc/``."""
    figs = []
    for p in sorted((run.path / "qc").glob("*.png")):
        figs.append((p.stem, _file_img(p, alt=f"QC {p.stem}")))
    if run.kind == "st" and (run.path / "data.json").is_file():
        for s, d in run.json("data.json").get("sections", {}).items():
            img = d.get("image_path")
            if img:
                figs.append((s, _thumbnail(img, alt=f"section {s}")))
    if not figs:
        raise Missing("qc/*.png (bulk runs start from tile features; QC lives with `tile`)")
    cells = "".join(f"<figure>{im}<figcaption>{esc(name)}</figcaption></figure>"
                    for name, im in figs)
    return f'<div class="grid">{cells}</div>'


def _file_img(path: Any, *, alt: str, max_px: int = 1000, max_bytes: int = 400_000) -> str:
    """A PNG file embedded as is, or when larger than ``max_bytes`` (photographic: tissue
    under a map) shrunk to ``max_px`` and stored as JPEG, which is many times smaller."""
    data = path.read_bytes()
    if len(data) <= max_bytes:
        return png_img(data, alt=alt)
    return _thumbnail(str(path), alt=alt, size=max_px, jpeg=True)


def _thumbnail(path: str, *, alt: str, size: int = 240, jpeg: bool = False) -> str:
    """An image or slide shrunk to ``size`` pixels, embedded as PNG (or JPEG). It is read
    through the slide layer, which decodes a JPEG at reduced scale and a pyramid from a
    coarse level, never the whole 92-megapixel section."""
    import io
    from pathlib import Path

    from PIL import Image

    from ..errors import HistoexprError
    from ..slide import read_thumbnail

    if not Path(path).exists():
        return f'<p class="na">not available: {esc(path)} missing</p>'
    try:
        rgb = read_thumbnail(path, size)
    except HistoexprError as e:
        logger.warning("report thumbnail skipped: %s", e)
        return f'<p class="na">not available: {esc(e)}</p>'
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG" if jpeg else "PNG",
                              **({"quality": 85} if jpeg else {}))
    return png_img(buf.getvalue(), alt=alt, mime="image/jpeg" if jpeg else "image/png")


# --------------------------------------------------------------------------- metrics


def _protocol(run: RunInfo) -> str:
    try:
        sp = run.json("splits.json")
    except Missing:
        return "protocol: not available (splits.json missing)"
    if run.kind == "st":
        by = sp.get("by", "patient")
        k = len(sp.get("fold_test_groups", []))
        n_sec = (len(run.json("data.json").get("sections", {}))
                 if (run.path / "data.json").is_file() else -1)
        how = ("leave-one-section-out" if by == "section" and k == n_sec
               else f"{k}-fold cross-validation grouped by {by}")
        held = sp.get("holdout_groups") or []
        return (f"Protocol: {how}; scores are out-of-fold"
                + (f"; held out from CV: {', '.join(map(str, held))}" if held else "") + ".")
    held = sp.get("holdout_patients") or []
    return (f"Protocol: {sp.get('protocol')} (k={sp.get('k')}) split by patient; "
            f"{len(held)} patients held out and scored by the model refitted on the rest.")


def _table(run: RunInfo, name: str) -> pd.DataFrame:
    """``summary.csv`` / ``metrics.csv`` in the vocabulary every workflow shares (entry,
    kind, role, fold: :mod:`histoexpr.runs.folds`); a spatial run of layout 1 named the
    kind ``role`` and had no entry or role columns."""
    t = pd.read_csv(run.file(name))
    if "kind" not in t and "role" in t:
        t = t.rename(columns={"role": "kind"})
        t["role"] = np.where(t["fold"].astype(str) == "holdout", "holdout", "cv")
        t["entry"] = np.where(t["kind"] == "model", t["model"],
                              t["model"] + "/" + t["features"].astype(str))
    return t


def metrics_section(run: RunInfo) -> str:
    s = _table(run, "summary.csv")
    agg = s[~s["fold"].astype(str).str.fullmatch(r"\d+")].copy()
    agg["_b"] = (agg["kind"] == "baseline").astype(int)
    agg = agg.sort_values(["_b", "role"], kind="stable")
    drop = {"_b", "n_spots", "n_patients", "wall_s", "cpu_s", "gpu_s", "energy_wh", "n_fits"}
    cols = [c for c in agg.columns if c not in drop]
    text = [c for c in ("entry", "model", "features", "kind", "role", "fold") if c in cols]
    cols = text + [c for c in cols if c not in text]
    classes = ["baseline" if r.get("kind") == "baseline" else ""
               for r in agg.to_dict("records")]
    return (_p(_protocol(run)) + _p("Fold 'mean' is the mean over folds, 'pooled' all "
                                    "out-of-fold predictions scored together; baselines are "
                                    "shaded. A correlation is undefined for a gene constant "
                                    "in the scored samples (measured or predicted): such a "
                                    "gene is left out of every correlation column and counted "
                                    "in n_constant (n_scored = genes with an r); a mean "
                                    "predictor is constant for every gene (—).")
            + table_html(agg[cols].itertuples(index=False), cols, text_cols=len(text),
                         row_class=classes))


def _per_gene(run: RunInfo) -> tuple[pd.DataFrame, str, str]:
    """Per-gene r (genes x entries), the metric name and the main entry."""
    m = _table(run, "metrics.csv")
    # what differs is content: spatial runs score Pearson r per fold's pooled test spots
    # (seed 003), bulk runs Spearman r over the pooled out-of-fold patients (seed 001)
    if run.kind == "st":
        metric = "pearson_r"
        m = m[(m["section"] == "pooled") & (m["role"] == "cv") & (m["metric"] == metric)]
    else:
        metric = "spearman_r"
        m = m[(m["fold"].astype(str) == "pooled") & (m["role"] == "cv") & (m["metric"] == metric)]
    main = m.loc[m["kind"] == "model", "entry"]
    if m.empty:
        raise Missing(f"per-gene {metric} in metrics.csv")
    wide = m.pivot_table(index="gene", columns="entry", values="value", aggfunc="mean")
    return wide, metric, str(main.iloc[0]) if len(main) else str(wide.columns[0])


def _measured_predicted(run: RunInfo, entry: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if run.kind == "st":
        import anndata as ad

        a = ad.read_h5ad(run.file("predictions.h5ad"))
        return np.asarray(a.layers["measured"]), np.asarray(a.X), list(a.var_names)
    p = pd.read_csv(run.file("predictions.csv"))
    meta = {"entry", "model", "features", "kind", "unit", "role", "slide"}
    genes = [c for c in p.columns if c not in meta]
    pred = p[(p["entry"] == entry) & (p["role"] == "cv")].set_index("slide")
    meas = p[p["entry"] == "measured"].drop_duplicates("slide").set_index("slide")
    slides = pred.index.intersection(meas.index)
    return (meas.loc[slides, genes].to_numpy(float), pred.loc[slides, genes].to_numpy(float),
            genes)


def genes_section(run: RunInfo) -> str:
    from .spatial import prediction_scatter

    wide, metric, main = _per_gene(run)
    r = wide[main].dropna().sort_values(ascending=False) if main in wide else pd.Series()
    out = []
    if len(r):
        best, worst = list(r.index[:N_GENES]), list(r.index[-N_GENES:][::-1])
        rows = [(g, r[g], "best") for g in best] + [(g, r[g], "worst") for g in worst
                                                    if g not in best]
        out.append(table_html(rows, ["gene", f"{metric} ({main})", ""], text_cols=1))
        try:
            meas, pred, names = _measured_predicted(run, main)
            for label, chosen in (("best", best), ("worst", worst)):
                # per-fold gene panels (st): a gene scored in some folds may be absent from
                # the pooled out-of-fold predictions
                genes = [g for g in chosen if g in set(names)]
                if not genes:
                    continue
                fig = prediction_scatter(meas, pred, names, genes, ncols=N_GENES)
                out.append(f"<h3>{esc(label)} genes: predicted vs measured ({esc(main)}, "
                           "out-of-fold)</h3>" + figure_img(fig, alt=f"scatter {label} genes"))
        except Missing as e:
            out.append(f'<p class="na">not available: {esc(e)} missing (scatter plots)</p>')
    fig = new_figure((min(2 + 1.4 * wide.shape[1], 10), 3.5))
    ax = fig.add_subplot()
    data = [wide[c].dropna().to_numpy() for c in wide.columns]
    pos = [i for i, d in enumerate(data) if len(d) > 1]
    if pos:
        ax.violinplot([data[i] for i in pos], positions=pos, showmedians=True)
    ax.set_xticks(range(len(data)), [str(c) for c in wide.columns], rotation=20, ha="right")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylabel(f"per-gene {metric}")
    ax.set_title("per-gene correlation (constant predictions: no r)")
    out.append(figure_img(fig, alt="violin of per-gene correlations"))
    return "\n".join(out)


def box_section(run: RunInfo) -> str:
    wide, metric, _ = _per_gene(run)
    groups, title = _per_group(run)
    fig = new_figure((10, 3.6))
    for i, (w, lab) in enumerate(((wide, "per gene"), (groups, title))):
        ax = fig.add_subplot(1, 2, i + 1)
        if w is None or w.empty:
            ax.text(0.5, 0.5, f"{lab}: not available", ha="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        data = [w[c].dropna().to_numpy() for c in w.columns]
        ax.boxplot(data, tick_labels=[str(c) for c in w.columns])
        ax.tick_params(axis="x", rotation=20)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(f"{metric} {lab}")
    note = ("Per patient: each patient's correlation across genes (bulk, patients.csv)."
            if run.kind == "bulk" else
            "Per section: each section's mean per-gene correlation within the section.")
    return _p(note) + figure_img(fig, alt="box plots of correlations")


def _per_group(run: RunInfo) -> tuple[pd.DataFrame | None, str]:
    if run.kind == "bulk":
        p = run.path / "patients.csv"
        if not p.is_file():
            return None, "per patient"
        d = pd.read_csv(p)
        d = d[(d["fold"].astype(str) == "pooled") & (d["role"] == "cv")]
        return d.pivot_table(index="patient", columns="model", values="spearman_r"), \
            "per patient"
    m = _table(run, "metrics.csv")
    m = m[(m["section"] != "pooled") & (m["metric"] == "pearson_r")]
    return m.pivot_table(index="section", columns="entry", values="value"), "per section"


# --------------------------------------------------------------------------- maps, analyses


def spatial_section(run: RunInfo) -> str:
    if run.kind != "st":
        return _p("not a spatial run: no maps.")
    pngs = sorted(run.file("maps").glob("*.png"))
    if not pngs:
        raise Missing("maps/*.png (run `histoexpr st evaluate RUN`)")
    return "\n".join(f"<h3>{esc(p.stem)}</h3>" + _file_img(p, alt=f"map {p.stem}")
                     for p in pngs)


def analyses_section(run: RunInfo) -> str:
    """Every analysis folder under ``RUN/analyses/`` (``analysis.json`` + its PNGs)."""
    folders = sorted(p.parent for p in (run.path / "analyses").glob("*/analysis.json"))
    if not folders:
        raise Missing("analyses/*/analysis.json (no survival or other analysis of this run)")
    out = []
    for f in folders:
        try:
            meta = json.loads((f / "analysis.json").read_text())
        except ValueError:
            meta = {}
        out.append(f"<h3>{esc(meta.get('analysis', f.name))} ({esc(f.name)})</h3>")
        for n in meta.get("notes", []) or []:
            out.append(_p(str(n)))
        if meta.get("summary"):
            out.append(f"<pre>{html.escape(json.dumps(meta['summary'], indent=1))}</pre>")
        pngs = sorted(f.glob("*.png"), key=lambda p: (p.stem != "km", p.stem))
        out += [_file_img(p, alt=f"{f.name} {p.stem}") for p in pngs]
    return "\n".join(out)


def cost_section(run: RunInfo) -> str:
    if not run.run:
        raise Missing("run.json")
    info = {k: run.run.get(k) for k in ("status", "started", "finished", "host", "resumed")}
    out = [_kv({k: v for k, v in info.items() if v is not None})]
    stages = run.run.get("stages") or {}
    if stages:
        rows = [(k, v.get("seconds"), ", ".join(f"{a}={b}" for a, b in v.items()
                                                if a != "seconds"))
                for k, v in stages.items()]
        total = sum(float(v.get("seconds") or 0) for v in stages.values())
        out.append(table_html([*rows, ("total", total, "")], ["stage", "seconds", "details"]))
    cost = run.path / "cost.json"
    if cost.is_file():
        c = json.loads(cost.read_text())
        ents = dict(c.get("entries", {})) | {"total": c.get("total", {})}
        cols = ["wall_s", "cpu_s", "gpu_s", "energy_wh", "device", "energy_method"]
        rows = [(k, *[v.get(x, "") for x in cols]) for k, v in ents.items()]
        out.append("<h3>Model fits (cost.json)</h3>" + table_html(rows, ["entry", *cols]))
    else:
        out.append(_p("cost.json: not written by this kind of run; stage times above."))
    return "\n".join(out)
