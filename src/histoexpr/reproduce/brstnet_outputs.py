"""BrST-Net's tables and figures (seed 003) from the ``st fit`` runs of
:func:`~histoexpr.reproduce.brstnet.reproduce_brstnet`.

- Table 1: the top 10 genes by median PCC on the held-out set, per main network with AuxNet
  (Table S1: without);
- Table 2: aMAE / aRMSE on the training and the test data, with and without AuxNet (training:
  the final model on every training spot; test: the held-out set);
- Table 3: training time per model (every fold and the final fit);
- Fig. 2: genes per PCC bin (> 0.5, 0.3-0.5, 0.1-0.3, 0-0.1, negative), stacked, per model;
- Fig. 3: the histogram of the positive PCCs of the best model;
- Fig. 4: the best gene on each held-out section: H&E, truth, prediction, overlay;
- the baselines (mean, colour histogram, random-init encoder) on the same held-out set, and
  the margin of each model over colour.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import _keys as K
from ..atomic import write_csv
from ..runs import RunFolder
from . import report as rep

__all__ = ["BINS", "LABELS", "held_out_sections", "median_pcc", "pcc_bins", "write_outputs"]

#: the paper's names of the networks
LABELS = {"resnet101": "ResNet101", "inception_v3": "Inception-v3",
          **{f"efficientnet_b{i}": f"EfficientNet-b{i}" for i in range(6)},
          "vit_base_patch16_224": "ViT-B16", "vit_base_patch32_224": "ViT-B32"}

#: Fig. 2's bins of median PCC (seed 003, Fig. 2 and Results)
BINS = [("> 0.5", 0.5, np.inf), ("0.3-0.5", 0.3, 0.5), ("0.1-0.3", 0.1, 0.3),
        ("0-0.1", 0.0, 0.1), ("negative", -np.inf, 0.0)]


def _label(name: str) -> str:
    enc, aux = name.removesuffix("+aux"), name.endswith("+aux")
    return LABELS.get(enc, enc) + (" + AuxNet" if aux else "")


def pcc_bins(pcc: pd.Series) -> dict[str, int]:
    """Genes per Fig. 2 bin (a PCC of exactly 0.5 / 0.3 / 0.1 / 0 counts in the lower bin,
    0 as negative).

    Examples
    --------
    >>> pcc_bins(pd.Series([0.6, 0.5, 0.2, 0.05, -0.1, 0.0]))
    {'> 0.5': 1, '0.3-0.5': 1, '0.1-0.3': 1, '0-0.1': 1, 'negative': 2}
    """
    v = pcc.to_numpy(float)
    return {name: int(((v > lo) & (v <= hi)).sum()) if np.isfinite(hi) else int((v > lo).sum())
            for name, lo, hi in BINS}


def held_out_sections(run_path: Path) -> list[str]:
    """The sections of a run's held-out set (from its spots and splits)."""
    run = RunFolder(run_path)
    spots = pd.read_csv(run.spots, index_col=0)
    held = run.read_json(run.splits).get("holdout_groups") or []
    col = K.PATIENT_ID if run.read_json(run.config).get("split") == "patient" else K.SLIDE_ID
    return sorted(spots.loc[spots[col].astype(str).isin(held), K.SLIDE_ID].astype(str).unique())


def median_pcc(metrics: Any, sections: list[str]) -> Any:
    """Per gene: the median over the held-out sections of the per-section Pearson r (the
    paper's "median PCC values on the held-out test patient", Table 1)."""
    m = metrics[(metrics["role"] == "holdout") & (metrics["kind"] == "model")
                & (metrics["metric"] == "pearson_r") & (metrics["section"].isin(sections))]
    return m.groupby("gene")["value"].median().astype(float).dropna().rename("median_pcc")


def _collect(runs: dict[str, Path]) -> dict[str, Any]:
    from ..runs.folds import average_errors
    from ..st.evaluate import load_predictions

    pcc, errors, times, sections, held_of = {}, [], [], None, {}
    for name, path in runs.items():
        run = RunFolder(path)
        sections = sections or held_out_sections(path)
        metrics = pd.read_csv(run.metrics)
        pcc[name] = median_pcc(metrics, sections)
        every = [r for r in load_predictions(run) if r["kind"] == "model"]
        held = held_of[name] = [r for r in every if r["role"] == "holdout"]
        train = next((r.get("train_error") for r in held), None) or {}
        test = average_errors(held[0]["y_true"], held[0]["y_pred"]) if held else {}
        errors.append({"model": _label(name), "train aMAE": train.get("amae", np.nan),
                       "train aRMSE": train.get("armse", np.nan),
                       "test aMAE": test.get("amae", np.nan),
                       "test aRMSE": test.get("armse", np.nan)})
        wall = float(np.nansum([r["wall_s"] for r in every]))
        final = float(np.nansum([r["wall_s"] for r in held]))
        epochs = [r.get("n_epochs") for r in every if r.get("n_epochs")]
        times.append({"model": _label(name), "all folds + final (h:mm:ss)": _hms(wall),
                      "seconds": wall, "final fit (s)": final,
                      "epochs per fit (mean)": float(np.mean(epochs)) if epochs else np.nan})
    return {"pcc": pcc, "errors": pd.DataFrame(errors).set_index("model"),
            "times": pd.DataFrame(times).set_index("model"), "sections": sections or [],
            "held": held_of}


def _hms(s: float) -> str:
    s = round(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _top10(pcc: dict[str, pd.Series], names: list[str]) -> pd.DataFrame:
    table = pd.DataFrame({_label(n): pcc[n] for n in names})
    best = table.max(axis=1).sort_values(ascending=False)
    return table.loc[best.index[:10]]


def _fig2(pcc: dict[str, pd.Series], path: Path) -> Path:
    from ..plot.figures import new_figure
    from ..plot.spatial import save_figure

    counts = pd.DataFrame({_label(n): pcc_bins(v) for n, v in pcc.items()}).T
    fig = new_figure((max(5.0, 1.0 + 0.8 * len(counts)), 4.0), layout="constrained")
    ax = fig.subplots()
    bottom = np.zeros(len(counts))
    colours = ["#1a9641", "#a6d96a", "#ffffbf", "#fdae61", "#d7191c"]
    for (name, *_), c in zip(BINS, colours):
        ax.bar(counts.index, counts[name], bottom=bottom, color=c, label=name,
               edgecolor="#555", linewidth=0.4)
        bottom += counts[name].to_numpy()
    ax.set_ylabel("genes (median PCC on the held-out set)")
    for t in ax.get_xticklabels():
        t.set_rotation(30)
        t.set_horizontalalignment("right")
    ax.legend(title="PCC", fontsize=8, bbox_to_anchor=(1.02, 1.0), loc="upper left")
    return save_figure(fig, path)


def _fig3(pcc: pd.Series, label: str, path: Path) -> Path:
    from ..plot.figures import new_figure
    from ..plot.spatial import save_figure

    fig = new_figure((5.0, 3.5), layout="constrained")
    ax = fig.subplots()
    pos = pcc[pcc > 0]
    ax.hist(pos, bins=np.linspace(0, max(0.1, float(pos.max()) if len(pos) else 1.0), 21),
            color="#2b83ba", edgecolor="white")
    ax.set_xlabel("median PCC")
    ax.set_ylabel("genes")
    ax.set_title(f"{len(pos)} positive correlations, {label}", fontsize=10)
    return save_figure(fig, path)


def _fig4(run: RunFolder, held: list[dict[str, Any]], gene: str, r: float, path: Path
          ) -> Path | None:
    """Truth / prediction / overlay of ``gene`` on each held-out section."""
    from ..plot.figures import new_figure
    from ..plot.spatial import save_figure, section_image, spot_scatter

    if not held:
        return None
    res = held[0]
    j = list(res["genes"]).index(gene)
    spots = pd.read_csv(run.spots, index_col=0).loc[res["spots"]]
    info = run.read_json(run.data_json)["sections"]
    names = sorted(spots[K.SLIDE_ID].astype(str).unique())
    fig = new_figure((13.0, 3.4 * len(names)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(names), 4))
    for row, s in zip(axes, names):
        m = (spots[K.SLIDE_ID].astype(str) == s).to_numpy()
        xy = spots.loc[m, [K.X, K.Y]].to_numpy(float)
        img, scale = section_image(info[s]["image_path"]) if info.get(s, {}).get(
            "image_path") else (None, 1.0)
        truth, pred = res["y_true"][m, j], res["y_pred"][m, j]
        lo, hi = float(np.nanmin(truth)), float(np.nanmax(truth))
        if img is not None:
            row[0].imshow(img)
        row[0].set_title(f"{s} (held out)", fontsize=9)
        spot_scatter(row[1], None, xy, truth, scale=1.0, title=f"{gene} measured",
                     vmin=lo, vmax=hi)
        spot_scatter(row[2], None, xy, pred, scale=1.0, title=f"predicted (PCC {r:.2f})")
        spot_scatter(row[3], img, xy, pred, scale=scale, alpha=0.6, title="overlay")
        for ax in row:
            ax.set_axis_off()
    return save_figure(fig, path)


def _baselines(first: Path, sections: list[str], model_pcc: dict[str, pd.Series]
               ) -> pd.DataFrame:
    m = pd.read_csv(RunFolder(first).metrics)
    m = m[(m["role"] == "holdout") & (m["metric"] == "pearson_r") & m["section"].isin(sections)]
    rows = {}
    for name, v in model_pcc.items():
        rows[_label(name)] = v
    for entry, g in m[m["kind"] == "baseline"].groupby("entry"):
        rows[f"baseline: {entry}"] = g.groupby("gene")["value"].median().dropna()
    colour = next((v for k, v in rows.items() if k.startswith("baseline:") and "colour" in k),
                  None)
    table = pd.DataFrame({
        "mean median PCC": {k: float(v.mean()) if len(v) else np.nan for k, v in rows.items()},
        "genes scored": {k: len(v) for k, v in rows.items()},
        "genes PCC > 0": {k: int((v > 0).sum()) for k, v in rows.items()},
    })
    if colour is not None and len(colour):
        table["margin over colour"] = table["mean median PCC"] - float(colour.mean())
    return table


def write_outputs(out: Path, runs: dict[str, Path], record: dict[str, Any], preset: Any) -> Path:
    """Write ``tables/*.csv``, ``figures/*.png`` and ``report.html`` into ``out``."""
    res = _collect(runs)
    pcc, sections = res["pcc"], res["sections"]
    tables, figs = out / "tables", out / "figures"
    with_aux = [n for n in runs if n.endswith("+aux")]
    without = [n for n in runs if not n.endswith("+aux")]
    split = record["config"]["split"]
    where = (f"median over the held-out {split}'s sections ({', '.join(sections)}) of the "
             "per-section Pearson r")
    sec: list[rep.Section] = [rep.provenance_section(record)]
    for title, names, fname in [("Table 1: top 10 genes, with AuxNet", with_aux, "table1"),
                                ("Table S1: top 10 genes, without AuxNet", without, "table_s1")]:
        if names:
            t = _top10(pcc, names)
            write_csv(tables / f"{fname}_top10_median_pcc.csv", t)
            sec.append(rep.table_section(title, t, where))
    write_csv(tables / "table2_errors.csv", res["errors"])
    sec.append(rep.table_section("Table 2: aMAE and aRMSE", res["errors"], "training: the final "
                             "model on every training spot; test: the held-out set; on the "
                             "run's log scale"))
    write_csv(tables / "table3_training_time.csv", res["times"])
    sec.append(rep.table_section("Table 3: training time", res["times"], "wall time of every fit "
                             "(cross-validation folds and the final model) on this machine"))
    sec.append(rep.figure_section("Fig. 2: genes per PCC bin", _fig2(pcc, figs / "fig2_bins.png")))
    best = max(pcc, key=lambda n: int((pcc[n] > 0).sum()) + float(pcc[n].mean() or 0))
    sec.append(rep.figure_section(f"Fig. 3: positive PCCs of {_label(best)}",
                              _fig3(pcc[best], _label(best), figs / "fig3_positive_pcc.png")))
    if len(pcc[best]):
        gene = str(pcc[best].idxmax())
        f4 = _fig4(RunFolder(runs[best]), res["held"][best], gene, float(pcc[best].max()),
                   figs / "fig4_held_out_maps.png")
        if f4 is not None:
            sec.append(rep.figure_section(f"Fig. 4: {gene} on the held-out sections", f4,
                                      f"{_label(best)}; colour scale of the measured map from "
                                      "its own range"))
    base = _baselines(next(iter(runs.values())), sections, {n: pcc[n] for n in runs})
    write_csv(tables / "baselines.csv", base)
    sec.append(rep.table_section("Beside the baselines", base, f"split: {split}-grouped, scored on "
                             f"the held-out {split} ({', '.join(record['config']['holdout'])})"
                             "; the colour-histogram and random-init baselines use the ridge "
                             "probe"))
    sec.append(rep.versus_section(_versus(preset, pcc[best], res["errors"].loc[_label(best)],
                                      record)))
    title = f"Reproduction of {preset.title}"
    intro = (f"histoexpr reproduce {preset.name}: {len(runs)} run(s) in runs/; "
             f"{'SHORT schedule (not the paper’s 200 epochs); ' if record['short'] else ''}"
             f"held out: {', '.join(record['config']['holdout'])} ({split}).")
    return rep.write_study_report(out / "report.html", title, intro, sec)


def _versus(preset: Any, pcc: pd.Series, err: pd.Series, record: dict[str, Any]) -> list:
    b = pcc_bins(pcc)
    ours = [int((pcc > 0).sum()), b["> 0.5"], b["0.3-0.5"], err.get("test aMAE"),
            err.get("test aRMSE")]
    cfg = record["config"]
    differs = (f"data: {cfg['split']}-grouped split of the given sections; "
               f"epochs: {cfg['model_params'].get('max_epochs')}"
               f"{' (short schedule)' if record['short'] else ''}; "
               f"networks: {', '.join(record['encoders'])}; "
               f"genes scored: {len(pcc)}")
    return [[h.metric, h.paper, v, h.data, differs] for h, v in zip(preset.headlines, ours)]
