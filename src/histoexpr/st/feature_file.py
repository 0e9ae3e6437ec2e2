"""Whether a feature file (``histoexpr embed``, TRIDENT or CLAM) is what a spatial run's
final model was fitted on: the same encoder (pretrained or not), tile size and µm/px, stain
normalisation and slide; ``predict-slide --features`` refuses any other with one message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InputError

__all__ = ["check_feature_file"]


def check_feature_file(path: Path, attrs: dict[str, Any], info: dict[str, Any], spec: Any,
                        stain: dict[str, Any] | None, slide: Any,
                        scales: tuple[float, ...] = ()) -> None:
    """Refuse a feature file that is not what the run's final model was fitted on."""
    card = attrs.get("encoder") or {}
    enc, want = card.get("name"), info.get("source")
    if attrs.get("format") in ("trident", "clam") and (enc is None or "tile_spec" not in attrs):
        lacks = " and ".join(w for w, have in (("its encoder", enc is not None),
                                                ("its tiles' µm/px", "tile_spec" in attrs))
                             if not have)
        raise InputError(f"{path}: a {attrs['format'].upper()} feature file that does not "
                         f"record {lacks} (TRIDENT keeps files in features_<encoder>/ and "
                         "records the magnification), so it cannot be checked against the "
                         "run; drop --features and predict-slide embeds the slide")
    if scales:
        raise InputError(f"{path}: the run's final model reads patches of "
                         f"{', '.join(f'{v:g}' for v in scales)} µm beside the tiles (st fit "
                         "--scales), and a feature file holds one size; drop --features and "
                         "predict-slide embeds each scale")
    if want and "+" in want:
        raise InputError(f"{path}: the run's final model ensembles the encoders "
                         f"{', '.join(want.split('+'))}, and a feature file holds one; drop "
                         "--features and predict-slide embeds the slide with each")
    # no weights loaded = random init (the toy test encoder never has weights)
    random_file = attrs.get("encoder_weights") == "none" and card.get("builder") != "toy"
    if info.get("features") in ("none", "patches") or enc != want or \
            random_file == bool(info.get("pretrained", True)):
        raise InputError(f"{path}: features of {enc!r}"
                         f"{' (random init)' if random_file else ''}, but the run's final model "
                         f"takes {info.get('features')!r} of {want!r}; drop --features or embed "
                         f"the slide with `histoexpr embed --encoder {want}`")
    ts = attrs.get("tile_spec") or {}
    if int(ts.get("size_px", -1)) != spec.size_px or \
            abs(float(ts.get("mpp", -1)) - spec.mpp) > 1e-6 * spec.mpp:
        raise InputError(f"{path}: tiles of {ts.get('size_px')} px at {ts.get('mpp')} µm/px, but "
                         f"the model was fitted on {spec.size_px} px at {spec.mpp:g} µm/px; tile "
                         f"with `histoexpr tile --tile-size {spec.size_px} --mpp {spec.mpp:g}` "
                         "and embed again")
    if attrs.get("stain", None) != stain:
        raise InputError(f"{path}: stain normalisation {attrs.get('stain')!r} differs from the "
                         f"run's {stain!r}; embed with the run's --stain and --stain-target")
    dims = attrs.get("slide_dimensions")
    if dims is not None and list(dims) != [int(v) for v in slide.dimensions]:
        raise InputError(f"{path}: embedded from a {dims[0]} x {dims[1]} slide, not "
                         f"{slide.path} ({slide.dimensions[0]} x {slide.dimensions[1]})")
