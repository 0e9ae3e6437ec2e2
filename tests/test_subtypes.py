"""Subtype calling (issue 6, item 1): synthetic labelled expression with planted class-specific
gene shifts; the callers must beat chance by a wide margin on held-out "predictions", and a
shuffled-label control must stay near chance."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from histoexpr.cli import main
from histoexpr.clinical.clusters import (
    NearestCentroidCaller,
    cluster_samples,
    compare_clusters,
    log_scale,
)
from histoexpr.clinical.subtypes import evaluate_calls, make_voting_classifier, subtype_analysis
from histoexpr.errors import InputError
from histoexpr.plot.subtype import confusion_figure, roc_figure

K, P, BLOCK = 4, 24, 5
FAST = {"n_estimators": 30, "learning_rate_init": 0.01}  # quick to fit, same ensemble


def shifts(effect: float = 1.5) -> np.ndarray:
    """Class i raises genes [i*BLOCK, (i+1)*BLOCK) by ``effect`` (same in every dataset)."""
    s = np.zeros((K, P))
    for i in range(K):
        s[i, i * BLOCK:(i + 1) * BLOCK] = effect
    return s


def cohort(n: int, *, seed: int, prefix: str = "P", effect: float = 1.5,
           ) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    idx = rng.permutation(np.arange(n) % K)
    x = 6.0 + shifts(effect)[idx] + rng.normal(0, 1, (n, P))
    ids = [f"{prefix}{i:03d}" for i in range(n)]
    genes = [f"G{j}" for j in range(P)]
    return (pd.DataFrame(x, index=ids, columns=genes),
            pd.Series(np.array([f"T{i}" for i in range(K)])[idx], index=ids, name="subtype"))


def predicted(measured: pd.DataFrame, *, seed: int) -> pd.DataFrame:
    """What a regression model returns: shrunk towards the mean, each gene with its own
    bias, noisier."""
    rng = np.random.default_rng(seed)
    mu = measured.mean()
    bias = rng.normal(0, 2.0, measured.shape[1])
    return (mu + 0.3 * (measured - mu) + bias
            + rng.normal(0, 0.25, measured.shape)).astype(float)


@pytest.fixture(scope="module")
def data():
    train, y_train = cohort(160, seed=1, prefix="TR")
    test, y_test = cohort(100, seed=2, prefix="TE")
    return train, y_train, predicted(test, seed=3), y_test


def test_voting_beats_chance_on_held_out_predictions_and_standardising_matters(data):
    train, y_train, pred, y_test = data
    res = subtype_analysis(pred, method="vote", train=train, labels=y_train, truth=y_test,
                           folds=3, classifier_params=FAST)
    s = res.summary
    # chance is 0.25 with four balanced classes
    assert s["accuracy"] > 0.8 and s["macro_f1"] > 0.8 and s["cv_accuracy"] > 0.8
    aurocs = res.metrics.table.query("metric == 'auroc'")["value"]
    assert len(aurocs) == K and aurocs.min() > 0.9
    assert (res.calls["model"] == "all").all() and s["n_overlap_train"] == 0
    assert s["standardise"] and "z-scored" in s["standardised"]
    assert res.metrics.confusion.to_numpy().sum() == 100
    assert np.allclose(res.calls[[f"score_T{i}" for i in range(K)]].sum(axis=1), 1.0)
    raw = subtype_analysis(pred, method="vote", train=train, labels=y_train, truth=y_test,
                           folds=3, standardise=False, classifier_params=FAST)
    # shrunk, shifted predictions fool a classifier trained on measured values
    assert raw.summary["accuracy"] < s["accuracy"] - 0.25
    assert "no per-dataset" in raw.summary["standardised"]


def test_shuffled_labels_stay_near_chance_and_cross_fitting_is_honest(data):
    train, y_train, _, _ = data
    shuffled = pd.Series(np.random.default_rng(7).permutation(y_train.to_numpy()),
                         index=y_train.index)
    # train = the called samples: every call is cross-fitted
    res = subtype_analysis(train, method="vote", labels=shuffled, truth=shuffled, folds=2,
                           classifier_params=FAST)
    assert res.summary["accuracy"] < 0.45 and res.summary["cv_accuracy"] < 0.45
    assert res.calls["model"].str.startswith("fold").all()
    assert res.summary["n_overlap_train"] == 160
    naive = subtype_analysis(train, method="vote", labels=shuffled, truth=shuffled, folds=2,
                             cross_fit=False, classifier_params=FAST)
    assert naive.summary["accuracy"] > 0.6  # a model scoring its own training samples
    assert any("optimistic" in n for n in naive.notes)


def test_centroid_caller_from_labels_and_from_a_user_table(data):
    train, y_train, pred, y_test = data
    res = subtype_analysis(pred, method="centroid", train=train, labels=y_train, truth=y_test)
    assert res.summary["accuracy"] > 0.75 and res.summary["cv_accuracy"] > 0.8
    assert list(res.centroids.columns) == [f"T{i}" for i in range(K)]
    # centroids learnt from labels put each class's block on top
    for i in range(K):
        assert res.centroids[f"T{i}"].iloc[i * BLOCK:(i + 1) * BLOCK].min() > 0.5

    table = pd.DataFrame(shifts().T, index=train.columns, columns=[f"T{i}" for i in range(K)])
    table = table.iloc[::-1]  # gene order must not matter
    res2 = subtype_analysis(pred, method="centroid", centroids=table, truth=y_test)
    assert res2.summary["accuracy"] > 0.75 and res2.cv_metrics is None
    assert (res2.calls["model"] == "all").all()


def test_centroid_scores_are_spearman_after_cohort_centring():
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(6, 8)), columns=list("ABCDEFGH"))
    cent = pd.DataFrame(rng.normal(size=(8, 3)), index=list("HGFEDCBA"), columns=["a", "b", "c"])
    caller = NearestCentroidCaller(centroids=cent, centre="median").fit(x)
    scores = caller.decision_function(x)
    xc = x - x.median()
    for i in range(6):
        for j, c in enumerate(cent.columns):
            want = spearmanr(xc.iloc[i][list("HGFEDCBA")], cent[c]).statistic
            assert scores[i, j] == pytest.approx(want)
    assert list(caller.predict(x)) == list(cent.columns[scores.argmax(axis=1)])
    assert np.allclose(caller.predict_proba(x).sum(axis=1), 1.0)
    with pytest.raises(InputError, match=r"gene\(s\) A of the centroids absent"):
        caller.decision_function(x.rename(columns={"A": "Z"}))
    dropped = NearestCentroidCaller(centroids=cent, missing_genes="drop").fit(x.drop(columns="A"))
    assert dropped.decision_function(x.drop(columns="A")).shape == (6, 3)


def test_evaluate_calls_against_hand_computed_values():
    y_true = ["A", "A", "A", "B", "B", "B"]
    y_pred = ["A", "A", "B", "B", "B", "C"]
    scores = np.array([[.8, .1, .1], [.6, .3, .1], [.4, .5, .1],
                       [.2, .7, .1], [.3, .6, .1], [.1, .2, .7]])
    m = evaluate_calls(y_true, y_pred, scores, ["A", "B", "C"])
    assert m.value("accuracy") == pytest.approx(4 / 6)
    # F1: A = 2*1*(2/3)/(1+2/3) = 0.8; B = precision 2/3, recall 2/3 → 2/3; C = 0
    assert m.value("f1", "A") == pytest.approx(0.8)
    assert m.value("f1", "B") == pytest.approx(2 / 3)
    assert m.value("macro_f1") == pytest.approx((0.8 + 2 / 3 + 0) / 3)
    # AUROC of A: A's scores .8 .6 .4 all above B's .2 .3 .1 → 1; of B: B's .7 .6 .2 vs
    # A's .1 .3 .5: 7 of 9 pairs ordered
    assert m.value("auroc", "A") == 1.0 and m.value("auroc", "B") == pytest.approx(7 / 9)
    assert np.isnan(m.value("auroc", "C")) and m.n_auroc_undefined == 1
    assert m.value("auroc_macro") == pytest.approx((1 + 7 / 9) / 2)
    assert m.confusion.loc["A"].tolist() == [2, 1, 0] and m.confusion.loc["B", "C"] == 1
    assert m.confusion.index.name == "true" and m.confusion.columns.name == "predicted"


def test_missing_labels_are_dropped_and_counted(data):
    train, y_train, pred, y_test = data
    lab = y_train.copy().astype(object)
    lab.iloc[:7] = np.nan
    lab.iloc[7:10] = ""
    lab = lab.iloc[:-5]  # 5 training samples absent from the labels table
    res = subtype_analysis(pred, method="centroid", train=train, labels=lab, truth=y_test)
    s = res.summary
    assert s["n_labels_missing"] == 10 and s["n_train_unlabelled"] == 15
    assert s["n_train"] == 145 and res.class_sizes["n_train"].sum() == 145
    assert any("15 of 160 training samples had no label" in n for n in res.notes)
    # truth for half the called samples: the rest are called but not scored
    res2 = subtype_analysis(pred, method="centroid", train=train, labels=lab,
                            truth=y_test.iloc[:50])
    assert res2.summary["n_truth"] == 50 and res2.summary["n_called_without_truth"] == 50
    assert res2.calls["truth"].isna().sum() == 50 and len(res2.calls) == 100


def test_tcga_sample_barcodes_join_patient_labels(data):
    train, y_train, _, _ = data
    pats = [f"TCGA-SY-A{i:03d}" for i in range(len(train))]
    expr = train.set_axis([f"{p}-01A" for p in pats])  # sample barcodes
    labels = y_train.set_axis(pats)  # patient barcodes
    res = subtype_analysis(expr, method="centroid", labels=labels, truth=labels)
    assert res.calls["truth"].notna().all() and res.summary["n_overlap_train"] == 160
    assert res.calls["model"].str.startswith("fold").all() and res.summary["accuracy"] > 0.8


def test_bad_inputs_raise_errors_that_say_what_to_do(data):
    train, y_train, pred, _ = data
    few = y_train.copy()
    few.iloc[:3] = "rare"
    with pytest.raises(InputError, match=r"'rare' \(3\).*--drop-small-classes"):
        subtype_analysis(pred, method="centroid", train=train, labels=few)
    res = subtype_analysis(pred, method="centroid", train=train, labels=few,
                           small_classes="drop")
    assert "rare" not in res.classes and any("rare" in n for n in res.notes)
    with pytest.raises(InputError, match="only one class"):
        subtype_analysis(pred, method="centroid", train=train,
                         labels=pd.Series("T0", index=train.index))
    with pytest.raises(InputError, match="G3, G7"):
        subtype_analysis(pred.drop(columns=["G3", "G7"]), method="centroid", train=train,
                         labels=y_train, genes=list(train.columns))
    res = subtype_analysis(pred.drop(columns=["G3", "G7"]), method="centroid", train=train,
                           labels=y_train, genes=list(train.columns), missing_genes="drop")
    assert res.summary["genes_dropped"] == ["G3", "G7"] and res.summary["n_genes"] == P - 2
    with pytest.raises(InputError, match="needs training labels"):
        subtype_analysis(pred, method="vote", train=train)
    with pytest.raises(InputError, match="method must be"):
        subtype_analysis(pred, method="pam50")


def test_make_voting_classifier_is_soft_and_seeded():
    clf = make_voting_classifier(random_state=3, n_estimators=10)
    assert clf.voting == "soft"
    params = clf.get_params()
    assert params["rf__random_state"] == 3 and params["mlp__mlpclassifier__random_state"] == 3
    assert params["lda__lineardiscriminantanalysis__shrinkage"] == "auto"


def test_cluster_samples_recovers_planted_groups():
    x, y = cohort(120, seed=4, effect=3.0)
    lin = 2.0 ** x - 1  # linear scale: "auto" must log it back
    for method in ("hierarchical", "kmeans"):
        res = cluster_samples(lin, k=K, method=method)
        assert res.transform == "log2" and res.sizes.sum() == 120
        table, cont = compare_clusters(y.loc[res.labels.index], res.labels)
        assert cont.to_numpy().sum() == 120
        assert table.set_index("metric").loc["adjusted_rand", "value"] > 0.9
        assert list(res.sizes.index) == ["C1", "C2", "C3", "C4"]
        assert res.sizes.is_monotonic_decreasing and res.silhouette > 0.1
    assert log_scale(x)[1] == "none"
    with pytest.raises(InputError, match="negative"):
        log_scale(x - 10, transform="log2")


def test_cluster_method_calls_by_cluster_centroids(data):
    train, y_train, _, _ = data
    res = subtype_analysis(train, method="cluster", k=K, truth=y_train)
    s = res.summary
    assert sum(s["class_sizes"].values()) == 160 and s["cluster_call_agreement"] > 0.9
    assert s["adjusted_rand"] > 0.8 and "accuracy" not in s
    assert res.centroids.shape == (P, K)


def test_figures():
    fig = roc_figure(["a", "a", "b"], [[.9, .1, 0], [.6, .4, 0], [.3, .7, 0]], ["a", "b", "c"])
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["a (AUC 1.00, n=2)", "b (AUC 1.00, n=1)", "no AUC: c"]
    cm = pd.DataFrame([[5, 0], [1, 4]], index=["a", "b"], columns=["a", "b"])
    ax = confusion_figure(cm).axes[0]
    assert [t.get_text() for t in ax.texts] == ["5", "0", "1", "4"]


# --- CLI -------------------------------------------------------------------------------


def run(capsys, *argv):
    rc = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return rc, out, err


def write_inputs(tmp_path, data):
    train, y_train, pred, y_test = data
    paths = {"train": tmp_path / "measured.csv", "pred": tmp_path / "predicted.csv",
             "labels": tmp_path / "labels.csv"}
    train.rename_axis("PATIENT_ID").to_csv(paths["train"])
    pred.rename_axis("PATIENT_ID").to_csv(paths["pred"])
    lab = pd.concat([y_train, y_test]).rename_axis("PATIENT_ID").to_frame()
    lab["age"] = 50
    lab.to_csv(paths["labels"])
    return paths


def test_cli_vote_writes_calls_metrics_and_figures(capsys, tmp_path, data):
    p = write_inputs(tmp_path, data)
    out = tmp_path / "out"
    rc, stdout, _ = run(capsys, "-q", "analyze", "subtype", "--expression", p["pred"],
                        "--train", p["train"], "--labels", p["labels"], "--folds", "3",
                        "--param", "n_estimators=30", "--param", "learning_rate_init=0.01",
                        "--out", out)
    assert rc == 0, stdout
    for f in ("calls.csv", "class_sizes.csv", "metrics.csv", "confusion.csv", "roc.png",
              "confusion.png", "cv_metrics.csv", "cv_roc.png", "analysis.json"):
        assert (out / f).is_file(), f
    calls = pd.read_csv(out / "calls.csv")
    assert len(calls) == 100 and calls["truth"].notna().all()
    metrics = pd.read_csv(out / "metrics.csv").set_index(["metric", "class"])["value"]
    assert metrics[("accuracy", "all")] > 0.8
    conf = pd.read_csv(out / "confusion.csv", index_col=0)
    assert conf.to_numpy().sum() == 100
    rec = json.loads((out / "analysis.json").read_text())
    assert rec["summary"]["standardise"] is True and rec["params"]["method"] == "vote"
    assert any("--labels" in n for n in rec["notes"])  # truth reused from the labels
    assert "class_sizes.csv" in stdout


def fake_run(tmp_path, data) -> tuple:
    """A bulk run folder as `bulk evaluate` leaves it: measured and out-of-fold rows."""
    train, y_train, _, _ = data
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text("{}")
    pats = [f"TCGA-SY-A{i:03d}" for i in range(len(train))]
    slides = [f"{p}-01Z-00-DX1" for p in pats]
    pd.DataFrame({"slide": slides, "patient": pats}).to_csv(run_dir / "slides.csv", index=False)
    meas = train.set_axis(slides).assign(entry="measured", model="measured", features="",
                                         kind="measured", unit="", role="")
    pred = predicted(train, seed=5).set_axis(slides).assign(
        entry="ridge", model="ridge", features="toy", kind="model", unit="slide", role="cv")
    pd.concat([meas, pred]).rename_axis("slide").reset_index().to_csv(
        run_dir / "predictions.csv", index=False)
    labels = tmp_path / "pam50.tsv"
    pd.DataFrame({"PATIENT_ID": pats, "SUBTYPE": y_train.to_numpy(), "OS": 1}).to_csv(
        labels, sep="\t", index=False)
    return run_dir, labels


def test_cli_run_folder_trains_on_measured_and_cross_fits(capsys, tmp_path, data):
    run_dir, labels = fake_run(tmp_path, data)
    out = tmp_path / "out"
    rc, _, _ = run(capsys, "-q", "analyze", "subtype", "--expression", run_dir,
                   "--method", "centroid", "--labels", labels, "--label-col", "SUBTYPE",
                   "--out", out)
    assert rc == 0
    calls = pd.read_csv(out / "calls.csv")
    assert len(calls) == 160 and calls["model"].str.startswith("fold").all()
    assert (calls["call"] == calls["truth"]).mean() > 0.8
    rec = json.loads((out / "analysis.json").read_text())
    assert rec["summary"]["training_data"].endswith("(measured)")
    assert any("measured expression" in n for n in rec["notes"])
    assert any("cross-fitted" in n for n in rec["notes"])


def test_cli_cluster_without_labels_reports_sizes_only(capsys, tmp_path, data):
    p = write_inputs(tmp_path, data)
    out = tmp_path / "out"
    rc, _, _ = run(capsys, "-q", "analyze", "subtype", "--expression", p["train"],
                   "--method", "cluster", "--k", "4", "--out", out)
    assert rc == 0
    sizes = pd.read_csv(out / "class_sizes.csv")
    assert sizes["n_called"].sum() == 160 and sizes["n_called"].min() > 10
    assert (out / "centroids.csv").is_file() and not (out / "metrics.csv").exists()
    rec = json.loads((out / "analysis.json").read_text())
    assert any("no accuracy" in n for n in rec["notes"])


def test_cli_errors_are_one_line(capsys, tmp_path, data):
    p = write_inputs(tmp_path, data)
    rc, _, err = run(capsys, "-q", "analyze", "subtype", "--expression", p["pred"], "--train",
                     p["train"], "--labels", p["labels"], "--genes", "G1,G2,NOPE",
                     "--method", "centroid", "--out", tmp_path / "o")
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("error: ") and "gene(s) NOPE absent" in err
    rc, _, err = run(capsys, "-q", "analyze", "subtype", "--expression", p["pred"],
                     "--out", tmp_path / "o")
    assert rc == 2 and "--labels" in err
    rc, _, err = run(capsys, "-q", "analyze", "subtype", "--expression", p["pred"], "--labels",
                     p["labels"], "--param", "trees=5", "--out", tmp_path / "o")
    assert rc == 2 and "n_estimators" in err
    two = tmp_path / "two.csv"
    pd.read_csv(p["labels"]).assign(other="x").to_csv(two, index=False)
    rc, _, err = run(capsys, "-q", "analyze", "subtype", "--expression", p["pred"], "--labels",
                     two, "--method", "centroid", "--out", tmp_path / "o")
    assert rc == 0  # 'subtype' is found among several columns
    pd.read_csv(p["labels"]).rename(columns={"subtype": "x"}).assign(y=1).to_csv(two,
                                                                                index=False)
    rc, _, err = run(capsys, "-q", "analyze", "subtype", "--expression", p["pred"], "--labels",
                     two, "--method", "centroid", "--out", tmp_path / "o")
    assert rc == 2 and "--label-col" in err
