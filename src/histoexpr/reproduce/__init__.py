"""Study presets: rerun each of the four seed papers' protocols with one command, with the
paper's defaults (each citing its section), a record of every value the user changed, and
the paper's tables and figures in a report with a "paper vs this run" table.

- :mod:`.preset` — :class:`Preset`, :class:`PaperValue`, :class:`Departure`;
- :mod:`.brstnet` — BrST-Net (seed 003): spot expression, CNN/ViT with AuxNet;
- :mod:`.hist2rna` — hist2RNA (seed 001): 138 genes from slide-mean features, subtypes,
  survival;
- :mod:`.gastric` — the gastric study (seed 000): Table 1's patch models, Cheong groups;
- :mod:`.gtex` — GTEx (seed 002): shared variance, confounders, associations.
"""

from __future__ import annotations

from .brstnet import BRSTNET, reproduce_brstnet
from .gastric import GASTRIC, reproduce_gastric
from .gtex import GTEX, reproduce_gtex
from .hist2rna import HIST2RNA, reproduce_hist2rna
from .preset import Departure, Headline, PaperValue, Preset, Provenance

#: every preset by the name ``histoexpr reproduce`` takes
PRESETS = {"brstnet": BRSTNET, "hist2rna": HIST2RNA, "gastric": GASTRIC, "gtex": GTEX}

__all__ = ["BRSTNET", "GASTRIC", "GTEX", "HIST2RNA", "PRESETS", "Departure", "Headline",
           "PaperValue", "Preset", "Provenance", "reproduce_brstnet", "reproduce_gastric",
           "reproduce_gtex", "reproduce_hist2rna"]
