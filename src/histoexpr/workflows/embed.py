"""Embed a cohort: the tiles of each slide through an encoder → ``OUT/<slide>.h5`` (``coords``,
``features``, encoder card, tile spec), in this process or over a Dask cluster.

The coordinates are those ``histoexpr tile`` wrote (``coords/<slide>.h5``, or a manifest's
``coords`` column); each file is checked against its slide (SHA-256 recorded at tiling time).
With a manifest (CSV: ``slide`` [, ``coords``, ``slide_mpp``]) there is one Dask task per
slide on a LocalCluster, or on a running cluster (``scheduler``). Finished slides are
skipped, so a rerun finishes what is missing; one run at a time writes an output folder (a
second is refused while the first holds its lock; the Dask workers of one run share it
through a lock per slide); a slide that fails (or whose worker dies) is reported in the
result and the others finish. Each file is written whole or not at all: a full disk stops
the run at once, the finished slides kept for the rerun. A run in which every slide fails
leaves the folder as it found it. ``histoexpr embed`` is :func:`embed_cohort`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError

if TYPE_CHECKING:
    import pandas as pd

    from ..features.jobs import JobResult, SlideJob

__all__ = ["EmbedCohortResult", "embed_cohort"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbedCohortResult:
    """What :func:`embed_cohort` did.

    Attributes
    ----------
    out
        The feature folder: ``out/<slide>.h5`` per slide done (now or before).
    encoder
        The encoder's card name (or fine-tuned folder) as given.
    results
        One :class:`~histoexpr.features.jobs.JobResult` per slide, in input order; its
        ``status`` is ``done``, ``done before``, ``locked`` (another worker holds it) or
        ``failed``.
    on_dask
        Whether the slides ran as Dask tasks (a manifest) or in this process.
    """

    out: Path
    encoder: str
    results: list[JobResult] = field(default_factory=list)
    on_dask: bool = False

    @property
    def n_slides(self) -> int:
        return len(self.results)

    @property
    def failed(self) -> list[tuple[str, str]]:
        """``(slide, reason)`` of each slide that failed."""
        return [(r.name, r.message) for r in self.results if r.status == "failed"]

    @property
    def counts(self) -> dict[str, int]:
        """Slides ``done`` now, ``skipped`` (done before, or locked by another worker) and
        ``failed``."""
        c = Counter("skipped" if r.status in ("done before", "locked") else r.status
                    for r in self.results)
        return {k: c[k] for k in ("done", "skipped", "failed")}

    @property
    def features(self) -> list[Path]:
        """The feature files of the slides done (now or before)."""
        return [self.out / f"{r.name}.h5" for r in self.results
                if r.status in ("done", "done before")]

    @property
    def table(self) -> pd.DataFrame:
        """The results as a table (one row per slide)."""
        import pandas as pd

        from ..features.jobs import JobResult

        return pd.DataFrame([r.__dict__ for r in self.results],
                            columns=list(JobResult.__dataclass_fields__))


def fitted_stain(stain: Any, target: str | Path | None) -> Any:
    """The stain normaliser ``stain`` names (macenko, vahadane, reinhard, luminosity), fitted
    on the reference image ``target``; ``None`` for none; an object is taken as fitted."""
    from ..stain import get_normalizer

    if stain is None or not isinstance(stain, str):
        return stain
    norm = get_normalizer(stain)
    if stain in ("luminosity", "none"):  # nothing to fit
        return norm
    if target is None:
        raise InputError(f"--stain {stain} needs --stain-target IMAGE to fit on")
    from ..slide import read_image

    return norm.fit(read_image(Path(target)))


def _jobs(slides: Sequence[str | Path], *, out: Path, manifest: Path | None,
          coords: Path | None, slide_mpp: float | None,
          dask_options: bool) -> list[SlideJob]:
    from ..features.jobs import make_job, read_manifest
    from ..runner import check_cohort_inputs, unique_items
    from ..slide import slide_name

    check_cohort_inputs(slides, manifest, dask_options=dask_options)
    if manifest is not None:
        return read_manifest(manifest, out, coords_dir=coords, slide_mpp=slide_mpp)
    return [make_job(s, out, coords_dir=coords, slide_mpp=slide_mpp)
            for s in unique_items(slides, name=slide_name)]


def _in_process(jobs: list[SlideJob], *, encoder: str, weights: Path | None,
                pretrained: bool, stain: Any, overwrite: bool,
                embed_kwargs: dict[str, Any]) -> list[JobResult]:
    from ..errors import HistoexprError, OutputError
    from ..features import build_encoder
    from ..features.jobs import JobResult, run_job

    net = build_encoder(encoder, weights=weights, pretrained=pretrained)
    results = []
    for job in jobs:
        try:
            results.append(run_job(job, net, stain=stain, overwrite=overwrite, **embed_kwargs))
        except OutputError:
            raise  # a full disk or read-only folder: every other slide would fail alike
        except HistoexprError as e:
            if len(jobs) == 1:
                raise
            logger.error("skipped %s: %s", job.slide, e)
            results.append(JobResult(job.name, "failed", message=str(e)))
    return results


def _on_dask(jobs: list[SlideJob], *, encoder: str, weights: Path | None, pretrained: bool,
             workers: int | None, scheduler: str | None, stain: Any, overwrite: bool,
             embed_kwargs: dict[str, Any]) -> list[JobResult]:
    from ..features.jobs import EncoderSpec, embed_on_dask

    def progress(r: JobResult, k: int, n: int) -> None:
        log = logger.error if r.status == "failed" else logger.info
        log("[%d/%d] %s: %s%s", k, n, r.name, r.status, f" ({r.message})" if r.message else "")

    spec = EncoderSpec(encoder, str(weights) if weights else None, pretrained=pretrained)
    return embed_on_dask(jobs, spec, workers=workers, scheduler=scheduler, stain=stain,
                         overwrite=overwrite, on_result=progress, **embed_kwargs)


def embed_cohort(
    slides: Sequence[str | Path] = (), *, out: str | Path,
    manifest: str | Path | None = None, coords: str | Path | None = None,
    encoder: str = "efficientnet_lite0", weights: str | Path | None = None,
    random_init: bool = False, slide_mpp: float | None = None,
    stain: Any = None, stain_target: str | Path | None = None,
    batch_size: int = 64, num_workers: int = 0, device: str | None = None,
    compile: bool | str = False, overwrite: bool = False,
    workers: int | None = None, scheduler: str | None = None,
) -> EmbedCohortResult:
    """Tile features of many slides, resumably, in this process or on Dask.

    Parameters
    ----------
    slides
        Slide files, images or tile folders, embedded in this process (a path listed twice
        is embedded once; two files with one slide name are refused). Not with ``manifest``.
    out
        Feature folder: ``out/<slide>.h5`` and ``out/run.json`` (each slide's status,
        tiles, seconds, worker). Locked for the run.
    manifest
        CSV of slides (columns ``slide`` [, ``coords``, ``slide_mpp``]; relative paths from
        its folder): one Dask task per slide.
    coords
        Folder of ``histoexpr tile`` coordinate files (``coords/<slide>.h5``), e.g.
        ``tiles/224px_0.5mpp``.
    encoder, weights, random_init
        Encoder card name or ``histoexpr finetune`` output folder; an explicit checkpoint;
        or the architecture with random weights (seed 0), the baseline that shows what the
        pretrained weights add (not with ``weights``).
    slide_mpp
        Level-0 µm/px of files that do not record it.
    stain, stain_target
        Stain normaliser (macenko, vahadane, reinhard, luminosity) and the reference H&E
        image it is fitted on; or an already fitted normaliser.
    batch_size, num_workers, device, compile
        Encoder batches; DataLoader worker processes; ``cuda`` / ``cpu`` (default: cuda
        when available; on Dask one GPU per worker); ``torch.compile`` the encoder
        (``"auto"``: kept only where it runs faster than eager).
    overwrite
        Redo slides already done.
    workers, scheduler
        With ``manifest``: LocalCluster workers (default one per GPU, else cores / 4), or
        the address of a running scheduler (e.g. ``tcp://head:8786``).

    Returns
    -------
    EmbedCohortResult
        One result per slide, the counts and the failed slides.

    Raises
    ------
    InputError
        Before any work: bad settings, or another run holds ``out``. After: the run had one
        slide and it failed (with several, a failed slide is one of the results).
    OutputError
        A full disk or a read-only ``out``: the run stops, the slides done are kept.

    Examples
    --------
    >>> from histoexpr.workflows import embed_cohort
    >>> res = embed_cohort(["slides/a.svs"], coords="tiles/224px_0.5mpp", encoder="uni",
    ...                    out="feats")  # doctest: +SKIP
    >>> res.counts, res.features  # doctest: +SKIP
    """
    from ..runner import BatchOutput

    out = Path(out)
    if random_init and weights is not None:
        raise InputError("give --weights or --random-init, not both")
    on_dask = manifest is not None
    jobs = _jobs(slides, out=out, manifest=None if manifest is None else Path(manifest),
                 coords=None if coords is None else Path(coords), slide_mpp=slide_mpp,
                 dask_options=workers is not None or scheduler is not None)
    fitted = fitted_stain(stain, stain_target)
    common = {"encoder": encoder, "weights": None if weights is None else Path(weights),
              "pretrained": not random_init, "stain": fitted, "overwrite": overwrite,
              "embed_kwargs": {"batch_size": batch_size, "num_workers": num_workers,
                               "device": device, "compile": compile}}
    # locked for the run: a second run on out, or a read-only one, fails before any work;
    # a run that finished no slide leaves the folder as it found it
    import time

    from ..atomic import write_json

    t0 = time.perf_counter()
    with BatchOutput(out) as output:
        results = (_on_dask(jobs, workers=workers, scheduler=scheduler, **common) if on_dask
                   else _in_process(jobs, **common))
        output.produced = any(r.status != "failed" for r in results)
        if output.produced:  # the run record: each slide's status, tiles, time, worker
            write_json(out / "run.json", {
                "command": "embed", "encoder": encoder, "random_init": random_init,
                "on_dask": on_dask, "counts": {s: sum(r.status == s for r in results)
                                               for s in ("done", "done before", "failed")},
                "seconds": round(time.perf_counter() - t0, 3),
                "items": [{"slide": str(j.slide), **r.__dict__}
                          for j, r in zip(jobs, results, strict=True)]})
    for r in results:
        if r.status == "locked":
            logger.warning("%s: another worker holds %s.lock; if none does, delete the lock",
                           r.name, out / f"{r.name}.h5")
    return EmbedCohortResult(out, encoder, results, on_dask)
