"""Task-tuned encoders (seed 002): fine-tune a registry encoder to classify patches by a label.

Seed 002 (GTEx) fine-tuned ImageNet Inception-v3 to classify patches into their tissue of
origin, then compared how much expression variance the retrained network's features explain
with the raw network's. Its recipe gives the defaults here:

* a new classification head on the encoder's pooled features, categorical cross-entropy;
* step 1: the head alone, 10 epochs (``head_epochs``), the encoder frozen: no gradients,
  batch-norm statistics kept (its batch-norm layers stay in eval mode);
* step 2: all layers, 30 epochs (``full_epochs``);
* SGD with learning rate 1e-4 and momentum 0.9 in both steps (``head_lr``, ``full_lr``,
  ``momentum``);
* patches resized to the network's input size (the card's interpolation; seed 002: bilinear
  to 299 px) and normalised with the card's mean/std (:func:`.build.preprocess_tiles`).

Seed 002 puts a Dense layer between the pooling and the softmax and takes its 1024-d output
as features: ``dense=1024`` does that (the tuned encoder is the backbone plus that layer and
its ReLU). By default the head is one linear layer and the tuned encoder is the backbone
alone, so tuned features have the base's size and compare one-to-one with the raw ones.

Not in the seed: a seeded, stratified validation split (scikit-learn), random flips and 90°
rotations of the training patches (``augment``), and the weights of each step's best
validation epoch (lowest validation loss) kept. Training runs through
:func:`histoexpr.training.fit_loop`, which checkpoints after every epoch (atomically) into
``OUT/checkpoints/{head,full}/``: rerunning the same call continues where it stopped, and
rerunning with a larger ``full_epochs`` trains on. Any other change of configuration in the
same folder raises unless ``overwrite=True``. The folder's layout is in :mod:`.tuned`.

Labelled patches come as a folder ``DIR/<label>/*.png|jpg|jpeg|tif|tiff`` (ImageFolder
layout), a CSV with columns ``path,label`` (relative paths resolved against the CSV's
folder), or arrays. Every image file is opened before training starts (its header read): a
file that is missing or not an image raises :class:`~histoexpr.errors.InputError` naming
it; a file whose pixels fail to decode later raises the same error during training.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...atomic import atomic_path, write_json
from ...errors import InputError, SlideError
from ...slide import read_image
from ...slide.integrity import check_complete
from ...training import drop_lone_batch, fit_loop, resolve_device, seed_everything
from .build import build_network, get_card, preprocess_tiles
from .cards import ENCODERS
from .tuned import (
    CARD_FILE,
    INFO_FILE,
    TUNED_BUILDER,
    WEIGHTS_FILE,
    clean_encoder_name,
    save_tuned_weights,
    tuned_card,
    tuned_name,
)

logger = logging.getLogger(__name__)

__all__ = ["IMAGE_SUFFIXES", "FinetuneResult", "finetune_encoder", "read_labelled_patches"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
#: configuration keys that may change between runs in one folder (more epochs trains on)
_FREE = ("full_epochs", "device", "num_workers", "patches")
_OUTPUTS = (WEIGHTS_FILE, CARD_FILE, "labels.json", "history.csv", INFO_FILE, "split.csv")


@dataclass
class FinetuneResult:
    """What :func:`finetune_encoder` produced.

    Attributes
    ----------
    card
        The tuned encoder's card (``build_encoder(out)`` builds it).
    out
        The output folder.
    classes
        Class names; the head's output ``i`` is ``classes[i]``.
    history
        One row per epoch: ``step`` (head/full), ``epoch``, ``train_loss``, ``val_loss``,
        ``val_accuracy``, ``lr``, ``seconds``, ``best``.
    steps
        One row per step: ``epochs``, ``best_epoch``, ``val_loss`` and ``val_accuracy`` at
        the best epoch.
    metrics
        As in ``finetune.json``: per step, final validation accuracy, chance (majority
        class), confusion matrix (rows true, columns predicted).
    """

    card: Any
    out: Path
    classes: list[str]
    history: pd.DataFrame
    steps: pd.DataFrame
    metrics: dict[str, Any] = field(default_factory=dict)


# -- inputs ---------------------------------------------------------------------------------
def read_labelled_patches(path: str | Path) -> tuple[list[Path], list[str]]:
    """Image paths and their labels from a folder ``DIR/<label>/*.png`` or a CSV
    ``path,label``.

    Raises
    ------
    InputError
        Missing input, a CSV without ``path``/``label`` columns or with empty cells, or no
        image at all.

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> for label in ("fat", "muscle"):
    ...     (root / label).mkdir()
    ...     Image.new("RGB", (8, 8)).save(root / label / "a.png")
    >>> paths, labels = read_labelled_patches(root)
    >>> [p.name for p in paths], labels
    (['a.png', 'a.png'], ['fat', 'muscle'])
    """
    p = Path(path)
    if p.is_dir():
        paths, labels = [], []
        for sub in sorted(d for d in p.iterdir() if d.is_dir() and not d.name.startswith(".")):
            for f in sorted(sub.iterdir()):
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                    paths.append(f)
                    labels.append(sub.name)
        if not paths:
            raise InputError(f"{p}: no patches; expected {p}/<label>/*.png (or .jpg/.tif), one "
                             "sub-folder per class, or a CSV with columns path,label")
        return paths, labels
    if not p.is_file():
        raise InputError(f"{p}: no such folder or CSV of labelled patches")
    try:
        df = pd.read_csv(p, dtype=str)
    except (ValueError, OSError) as e:
        raise InputError(f"{p}: cannot read the CSV ({e}); expected columns path,label") from e
    missing = [c for c in ("path", "label") if c not in df.columns]
    if missing:
        raise InputError(f"{p}: column(s) {missing} missing (found {list(df.columns)}); the "
                         "CSV needs columns path,label")
    bad = df["path"].isna() | df["label"].isna()
    if bad.any():
        raise InputError(f"{p}: {int(bad.sum())} row(s) with an empty path or label (first: "
                         f"row {int(np.flatnonzero(bad)[0]) + 2}); fill or remove them")
    if df.empty:
        raise InputError(f"{p}: no rows; list one patch per row (path,label)")
    paths = [q if q.is_absolute() else p.parent / q for q in map(Path, df["path"])]
    return paths, df["label"].str.strip().tolist()


def _check_images(paths: list[Path]) -> None:
    """Open every file (header only): a missing file or a non-image raises, naming it."""
    from PIL import Image, UnidentifiedImageError

    for f in paths:
        try:
            check_complete(f)  # a cut patch fails here, not in the middle of training
            with Image.open(f) as im:
                im.size  # noqa: B018 - parsing the header is the check
        except (OSError, UnidentifiedImageError, SlideError) as e:
            raise InputError(f"{f}: cannot read this image ({e}); fix or remove it") from e


def _as_items(patches: Any, labels: Any) -> tuple[list[Any], list[str], str]:
    """``(items, labels, source)``: each item a Path or a uint8 (H, W, 3) array."""
    if isinstance(patches, str | Path):
        if labels is not None:
            raise InputError("labels come from the folder/CSV; pass labels=None with a path")
        items, labels = read_labelled_patches(patches)
        _check_images(items)
        return items, labels, str(patches)
    if labels is None:
        raise InputError("labels are required unless patches is a folder or CSV path")
    if isinstance(patches, np.ndarray) and patches.ndim == 4:
        items: list[Any] = list(patches)
    else:
        items = list(patches)
    out: list[Any] = []
    for i, x in enumerate(items):
        if isinstance(x, str | Path):
            out.append(Path(x))
            continue
        a = np.asarray(x)
        if a.ndim != 3 or a.shape[-1] != 3 or a.dtype != np.uint8:
            raise InputError(f"patch {i}: expected a uint8 (H, W, 3) image or a path, got "
                             f"{a.shape} {a.dtype}")
        out.append(a)
    labels = [str(v) for v in labels]
    if len(labels) != len(out):
        raise InputError(f"{len(out)} patches but {len(labels)} labels")
    _check_images([x for x in out if isinstance(x, Path)])
    return out, labels, "arrays"


def _check_classes(labels: list[str]) -> tuple[list[str], np.ndarray]:
    if not labels:
        raise InputError("no patches to fine-tune on")
    classes, y = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
    counts = np.bincount(y, minlength=len(classes))
    if len(classes) < 2:
        raise InputError(f"one class only ({str(classes[0])!r}); fine-tuning classifies patches, "
                         "so give patches of at least two labels")
    few = [f"{str(c)!r} ({n})" for c, n in zip(classes, counts) if n < 2]
    if few:
        raise InputError(f"label(s) {', '.join(few)} have fewer than 2 patches; add patches or "
                         "drop the label (one is needed to train and one to validate)")
    return [str(c) for c in classes], y.astype(np.int64)


def _split(y: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/validation indices; at least one validation patch per class."""
    from sklearn.model_selection import train_test_split

    if not 0.0 < float(val_fraction) < 1.0:
        raise InputError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n, k = len(y), int(y.max()) + 1
    n_val = max(k, int(np.ceil(val_fraction * n)))
    if n - n_val < k:
        raise InputError(f"{n} patches in {k} classes are too few for a validation fraction "
                         f"of {val_fraction}; add patches or lower --val-fraction")
    tr, va = train_test_split(np.arange(n), test_size=n_val, stratify=y, random_state=seed)
    return np.sort(tr), np.sort(va)


def _fingerprint(items: list[Any], labels: list[str]) -> str:
    h = hashlib.sha256()
    for x, lab in zip(items, labels):
        if isinstance(x, Path):  # where the folder lives does not matter
            h.update(f"{x.parent.name}/{x.name}\t{x.stat().st_size}".encode())
        else:
            h.update(np.ascontiguousarray(x).tobytes())
            h.update(str(x.shape).encode())
        h.update(f"\t{lab}\n".encode())
    return h.hexdigest()[:16]


class _Patches:
    """Map-style dataset: ``(normalised (3, S, S) tensor, class index)``."""

    def __init__(self, items: list[Any], y: np.ndarray, card: Any) -> None:
        self.items, self.y, self.card = items, y, card

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        x = self.items[i]
        img = read_image(x) if isinstance(x, Path) else x
        return preprocess_tiles(self.card, img[None])[0], int(self.y[i])


class _ValAccuracy:
    """Counts correct validation predictions, one accuracy per epoch.

    :func:`~histoexpr.training.fit_loop` steps its ``scheduler`` once per epoch after the
    validation pass and saves ``scheduler.state_dict()`` in its checkpoint: passed as the
    scheduler, this keeps the per-epoch accuracies with the checkpoint, so they resume too.
    """

    def __init__(self) -> None:
        self.correct, self.total, self.per_epoch = 0, 0, []

    def add(self, logits: Any, y: Any) -> None:
        self.correct += int((logits.argmax(1) == y).sum())
        self.total += len(y)

    def step(self) -> None:
        self.per_epoch.append(self.correct / self.total if self.total else float("nan"))
        self.correct = self.total = 0

    def state_dict(self) -> dict[str, list[float]]:
        return {"val_accuracy": [float(v) for v in self.per_epoch]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.per_epoch = [float(v) for v in state["val_accuracy"]]


# -- configuration and the output folder ----------------------------------------------------
def _check_folder(out: Path, config: dict[str, Any], *, overwrite: bool) -> None:
    """Same config (bar :data:`_FREE`) → resume; another → error, or wipe with overwrite."""
    path = out / "checkpoints" / "config.json"
    if path.is_file():
        old = json.loads(path.read_text())
        diff = {k: (old.get(k), v) for k, v in config.items()
                if k not in _FREE and old.get(k) != v}
        if diff and not overwrite:
            shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in list(diff.items())[:4])
            raise InputError(f"{out} holds a fine-tune with another configuration ({shown}); "
                             "use another --out, or --overwrite to start afresh")
        if diff or overwrite:
            logger.warning("%s: starting afresh (overwrite)", out)
            shutil.rmtree(out / "checkpoints")
            for name in _OUTPUTS:
                (out / name).unlink(missing_ok=True)
        else:
            logger.info("%s: same configuration; resuming from its checkpoints", out)
    write_json(path, config)


def _json_plain(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


# -- training -------------------------------------------------------------------------------
def _step_rows(step: str, hist: list[dict[str, float]], acc: list[float]) -> list[dict]:
    if not hist:
        return []
    best = min(hist, key=lambda h: h["val_loss"])["epoch"]
    return [{"step": step, "epoch": int(h["epoch"]), "train_loss": h["train_loss"],
             "val_loss": h["val_loss"], "val_accuracy": acc[i] if i < len(acc) else np.nan,
             "lr": h["lr"], "seconds": h["seconds"], "best": int(h["epoch"]) == int(best)}
            for i, h in enumerate(hist)]


def finetune_encoder(
    patches: Any,
    labels: Any = None,
    *,
    encoder: str,
    out: str | Path,
    name: str | None = None,
    head_epochs: int = 10,
    full_epochs: int = 30,
    head_lr: float = 1e-4,
    full_lr: float = 1e-4,
    momentum: float = 0.9,
    batch_size: int = 32,
    weight_decay: float = 0.0,
    val_fraction: float = 0.2,
    device: str | None = "cpu",
    seed: int = 0,
    pretrained: bool = True,
    weights: str | Path | None = None,
    augment: bool = True,
    num_workers: int = 0,
    overwrite: bool = False,
    dense: int | None = None,
) -> FinetuneResult:
    """Fine-tune ``encoder`` to classify ``patches`` by ``labels`` in two steps (seed 002).

    Parameters
    ----------
    patches
        A folder ``DIR/<label>/*.png`` or a CSV ``path,label`` (then ``labels=None``); or
        uint8 images ``(N, H, W, 3)`` / a list of images or paths, with ``labels``.
    labels
        One label per patch (any hashable; compared as strings).
    encoder
        Registry name of the base encoder (or a tuned folder, to tune further).
    out
        Output folder (layout in :mod:`.tuned`); holds the checkpoints a rerun resumes.
    name
        The tuned encoder's name; default ``<base>-tuned-<name of out>``.
    head_epochs, full_epochs
        Epochs of step 1 (new head only; 0 skips it) and step 2 (all layers; >= 1).
    head_lr, full_lr, momentum, weight_decay
        SGD settings of the two steps (seed 002: 1e-4, momentum 0.9).
    batch_size
        Patches per step (a trailing batch of one is dropped: batch norm needs two).
    val_fraction
        Share of patches held out, stratified by label, at least one per class.
    device
        ``"cpu"``, ``"cuda"``...; ``None`` picks CUDA when available.
    seed
        Seeds the split, the head's initial weights, the shuffling and the augmentation.
    pretrained
        Start from the base's pretrained weights (``False``: random init, for tests).
    weights
        An explicit file of the base's pretrained weights (first in the resolution order of
        :func:`histoexpr.features.encoders.weights.resolve_weights`).
    augment
        Random flips and 90° rotations of training patches.
    num_workers
        DataLoader processes that read and preprocess patches.
    overwrite
        Start afresh in a folder holding a fine-tune with another configuration.
    dense
        Seed 002's Dense layer: a fully connected layer of this width (+ ReLU) between the
        pooled features and the classifier, tuned with it; the tuned encoder's features are
        its output (``1024`` in the paper). ``None``: one linear head, the backbone's
        features.

    Returns
    -------
    FinetuneResult

    Raises
    ------
    InputError
        Unreadable images, fewer than two classes, a class with fewer than two patches,
        bad settings, or ``out`` holding another configuration.

    Examples
    --------
    >>> import tempfile
    >>> rng = np.random.default_rng(0)
    >>> x = rng.integers(0, 60, (24, 16, 16, 3), dtype=np.uint8)
    >>> x[12:, ..., 0] += 150  # the "red" class
    >>> res = finetune_encoder(x, ["pale"] * 12 + ["red"] * 12, encoder="toy",
    ...                        out=Path(tempfile.mkdtemp()) / "toy-doc", head_epochs=1,
    ...                        full_epochs=1, head_lr=0.05, full_lr=0.05, batch_size=8)
    >>> res.card.name, res.card.model_id, list(res.steps.index)
    ('toy-tuned-toy-doc', 'toy', ['head', 'full'])
    """
    import torch
    from torch import nn
    from torch.utils.data import DataLoader

    from ... import __version__
    from .tuning import FinetuneNet, dihedral

    head_epochs, full_epochs, bs = int(head_epochs), int(full_epochs), int(batch_size)
    if head_epochs < 0 or full_epochs < 1:
        raise InputError(f"need head_epochs >= 0 and full_epochs >= 1, got {head_epochs} and "
                         f"{full_epochs}")
    if bs < 2:
        raise InputError(f"batch_size must be >= 2 (batch norm), got {batch_size}")
    for key, v in (("head_lr", head_lr), ("full_lr", full_lr)):
        if not float(v) > 0:
            raise InputError(f"{key} must be > 0, got {v}")
    if not 0.0 <= float(momentum) < 1.0:
        raise InputError(f"momentum must be in [0, 1), got {momentum}")
    out = Path(out)
    items, str_labels, source = _as_items(patches, labels)
    classes, y = _check_classes(str_labels)
    tr, va = _split(y, val_fraction, seed)
    base = get_card(encoder)
    name = tuned_name(base.name, out.name) if name is None else clean_encoder_name(name)
    if name == base.name.lower() or (name in ENCODERS
                                     and ENCODERS.get(name).builder != TUNED_BUILDER):
        raise InputError(f"the name {name!r} belongs to a registry encoder; choose another "
                         "--name for the tuned encoder")
    k = len(classes)
    logger.info("fine-tuning %s on %d patches in %d classes (%d train, %d validation): %s",
                base.name, len(y), k, len(tr), len(va),
                ", ".join(f"{c} {n}" for c, n in zip(classes, np.bincount(y))))
    config = _json_plain({
        "encoder": base.name, "base_weights": base.weights, "name": name,
        "head_epochs": head_epochs, "full_epochs": full_epochs, "head_lr": float(head_lr),
        "full_lr": float(full_lr), "momentum": float(momentum), "batch_size": bs,
        "weight_decay": float(weight_decay), "val_fraction": float(val_fraction),
        "seed": int(seed), "pretrained": bool(pretrained), "augment": bool(augment),
        "base_weights_path": None if weights is None else str(weights),
        "optimizer": "SGD", "loss": "cross-entropy",
        "head": f"dense {int(dense)} + linear" if dense else "linear",
        "device": str(device), "num_workers": int(num_workers), "patches": source,
        "data": {"n_patches": len(y), "classes": classes,
                 "fingerprint": _fingerprint(items, str_labels)},
    })
    dev = resolve_device(device)
    seed_everything(seed)
    # weights that cannot be found fail here, before the output folder is touched
    backbone, res = build_network(base, pretrained=pretrained, weights=weights)
    _check_folder(out, config, overwrite=overwrite)
    meta = {key: v for key, v in config.items() if key not in _FREE}
    if dense is not None and int(dense) < 1:
        raise InputError(f"dense must be a positive width, got {dense}")
    model = FinetuneNet(backbone, base.embed_dim, (int(dense),) if dense else (), 0.0,
                        k).to(dev)
    data = _Patches(items, y, base)
    common = {"num_workers": int(num_workers), "pin_memory": dev.type == "cuda"}
    train = DataLoader(torch.utils.data.Subset(data, tr.tolist()), batch_size=bs, shuffle=True,
                       drop_last=drop_lone_batch(len(tr), bs), **common)
    val = DataLoader(torch.utils.data.Subset(data, va.tolist()), batch_size=bs, shuffle=False,
                     **common)

    def train_loss(net, batch):
        x, yb = batch
        return nn.functional.cross_entropy(net(dihedral(x) if augment else x), yb)

    rows: list[dict] = []
    for step, epochs, lr in (("head", head_epochs, head_lr), ("full", full_epochs, full_lr)):
        if epochs == 0:
            continue
        for p in backbone.parameters():  # step 1: frozen (FinetuneNet keeps its BN in eval)
            p.requires_grad_(step == "full")
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=float(lr), momentum=float(momentum),
                              weight_decay=float(weight_decay))
        acc = _ValAccuracy()

        def val_loss(net, batch, acc=acc):
            x, yb = batch
            logits = net(x)
            acc.add(logits, yb)
            return nn.functional.cross_entropy(logits, yb)

        logger.info("step %s: %d epochs, SGD lr %g momentum %g over %d parameters", step,
                    epochs, lr, momentum, sum(p.numel() for p in params))
        hist = fit_loop(model, train, val, optimizer=opt, loss_fn=train_loss,
                        val_loss_fn=val_loss, scheduler=acc, max_epochs=epochs, device=dev,
                        checkpoint_dir=out / "checkpoints" / step, meta={**meta, "step": step})
        rows += _step_rows(step, hist, acc.per_epoch)

    # the best step-2 weights are in place: score them on the validation patches
    model.eval()
    preds = []
    with torch.inference_mode():
        for x, _ in val:
            preds.append(model(x.to(dev)).argmax(1).cpu().numpy())
    pred = np.concatenate(preds)
    from sklearn.metrics import confusion_matrix

    history = pd.DataFrame(rows)
    best = history[history["best"]].set_index("step")
    order = list(dict.fromkeys(history["step"]))
    steps = pd.DataFrame({
        "epochs": history.groupby("step")["epoch"].max(), "best_epoch": best["epoch"],
        "val_loss": best["val_loss"], "val_accuracy": best["val_accuracy"]}).loc[order]
    yv = y[va]
    metrics = {
        "steps": {s: {c: (v.item() if hasattr(v, "item") else v) for c, v in r.items()}
                  for s, r in steps.to_dict("index").items()},
        "val_accuracy": float((pred == yv).mean()),
        "chance_accuracy": float(np.bincount(yv, minlength=k).max() / len(yv)),
        "confusion_matrix": {"labels": classes,
                             "matrix": confusion_matrix(yv, pred, labels=range(k)).tolist()},
    }
    card = tuned_card(base, name=name, n_patches=len(y), n_classes=k,
                      dense=int(dense) if dense else None)
    _write_outputs(out, model, card, base, classes, y, tr, va, items, history, config,
                   metrics, res.source, __version__)
    logger.info("%s: validation accuracy %.3f (chance %.3f) -> %s", card.name,
                metrics["val_accuracy"], metrics["chance_accuracy"], out)
    model.cpu()
    return FinetuneResult(card, out, classes, history, steps, metrics)


def _base_cards(base: Any) -> list[dict]:
    """``base`` and, for a tuned base, its bases: root first."""
    chain = [base]
    while chain[-1].builder == TUNED_BUILDER and chain[-1].model_id in ENCODERS:
        chain.append(ENCODERS.get(chain[-1].model_id))
    return [c.to_dict() for c in reversed(chain)]


def _write_outputs(out, model, card, base, classes, y, tr, va, items, history, config,
                   metrics, weights_source, version) -> None:
    state = model.backbone.state_dict()
    if card.embed_dim != base.embed_dim:  # the dense layer is part of the tuned encoder
        dense = model.head[0]
        state = {**{f"backbone.{k}": v for k, v in state.items()},
                 "proj.weight": dense.weight, "proj.bias": dense.bias}
    save_tuned_weights(out, state, card)
    counts = np.bincount(y, minlength=len(classes))
    write_json(out / "labels.json", {
        "classes": classes, "counts": dict(zip(classes, counts.tolist())),
        "n_train": len(tr), "n_val": len(va)})
    role = np.where(np.isin(np.arange(len(y)), va), "val", "train")
    names = [str(x) if isinstance(x, Path) else f"array[{i}]" for i, x in enumerate(items)]
    split = pd.DataFrame({"patch": names, "label": np.asarray(classes)[y], "set": role})
    for name, df in (("history.csv", history), ("split.csv", split)):
        with atomic_path(out / name) as tmp:
            df.to_csv(tmp, index=False)
    write_json(out / INFO_FILE, {
        "card": card.to_dict(), "config": config, "metrics": metrics,
        "base_weights_source": weights_source, "base_cards": _base_cards(base),
        "histoexpr_version": version})
