"""Figures of subtype calling: one-vs-rest ROC curves per class and the confusion matrix.

Built on an Agg canvas with matplotlib's object-oriented API (never ``pyplot``); the
functions return the :class:`~matplotlib.figure.Figure` and the caller saves it.

Examples
--------
>>> import pandas as pd
>>> fig = roc_figure(["a", "b", "b"], [[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], ["a", "b"])
>>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
['a (AUC 1.00, n=1)', 'b (AUC 1.00, n=2)']
>>> cm = pd.DataFrame([[3, 1], [0, 2]], index=["a", "b"], columns=["a", "b"])
>>> confusion_figure(cm).axes[0].get_xlabel()
'called'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import InputError
from .figures import new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["confusion_figure", "roc_figure"]


def roc_figure(y_true: Sequence[Any], scores: Any, classes: Sequence[Any], *,
               title: str | None = None, figsize: tuple[float, float] = (4.8, 4.5)) -> Figure:
    """One-vs-rest ROC curve of each class (classes absent from ``y_true`` are skipped and
    said so in the legend), with the chance diagonal.

    Parameters
    ----------
    y_true
        Known class of each sample.
    scores
        (samples, classes) scores in the order of ``classes`` (higher = more of the class).
    classes
        Class names.
    title
        Axes title.
    figsize
        Inches.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    yt = np.asarray(y_true, dtype=object)
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (len(yt), len(classes)):
        raise InputError(f"roc_figure: scores of shape {s.shape} for {len(yt)} samples and "
                         f"{len(classes)} classes")
    fig = new_figure(figsize)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="0.6")
    skipped = []
    for j, c in enumerate(classes):
        pos = yt == c
        if not 0 < pos.sum() < len(yt):
            skipped.append(str(c))
            continue
        fpr, tpr, _ = roc_curve(pos, s[:, j])
        ax.plot(fpr, tpr, lw=1.5,
                label=f"{c} (AUC {roc_auc_score(pos, s[:, j]):.2f}, n={int(pos.sum())})")
    if skipped:
        ax.plot([], [], " ", label=f"no AUC: {', '.join(skipped)}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize=7, frameon=False)
    ax.set_title(title or "one-vs-rest ROC", fontsize=9)
    return fig


def confusion_figure(confusion: pd.DataFrame, *, normalise: bool = True,
                     title: str | None = None, figsize: tuple[float, float] | None = None
                     ) -> Figure:
    """Heatmap of a confusion matrix (rows true, columns called), each cell annotated with
    its count; colour = the fraction of the true class's samples (``normalise``) or counts.
    """
    cm = confusion.to_numpy(dtype=np.float64)
    if cm.ndim != 2 or cm.size == 0:
        raise InputError("confusion_figure: an empty confusion matrix")
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0) if normalise else cm
    n_r, n_c = cm.shape
    fig = new_figure(figsize or (1.2 + 0.6 * n_c, 1.0 + 0.55 * n_r))
    ax = fig.add_subplot()
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1 if normalise else max(cm.max(), 1))
    hi = (frac.max() or 1) * 0.6
    for i in range(n_r):
        for j in range(n_c):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8,
                    color="white" if frac[i, j] > hi else "black")
    ax.set_xticks(range(n_c), [str(c) for c in confusion.columns], rotation=45, ha="right",
                  fontsize=8)
    ax.set_yticks(range(n_r), [str(r) for r in confusion.index], fontsize=8)
    ax.set_xlabel("called")
    ax.set_ylabel("true")
    fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of true class" if normalise else "n")
    ax.set_title(title or "confusion matrix", fontsize=9)
    return fig
