"""The README's SpatialData figure: a real her2st section written as a SpatialData store by
``histoexpr.st.sdata_out.write_spots_store`` (the same writer as ``--spatialdata``), read
back with ``spatialdata.read_zarr`` and drawn by scverse's own renderer, spatialdata-plot.

    pip install spatialdata-plot        # not a histoexpr dependency; only for this figure
    python docs/make_spatialdata_figure.py [../shared/data/her2st] [C2] [ERBB2]

Writes docs/figures/spatialdata_her2st.jpg and prints the store's layout and timings.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import spatialdata as sd
    import spatialdata_plot  # noqa: F401  (registers sdata.pl)

    from histoexpr.expression import read_cohort
    from histoexpr.st.sdata_out import write_spots_store

    root = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/her2st")
    section = sys.argv[2] if len(sys.argv) > 2 else "C2"
    gene = sys.argv[3] if len(sys.argv) > 3 else "ERBB2"
    adata = read_cohort([str(root)])
    one = adata[adata.obs["slide_id"] == section].copy()
    # the table holds log-normalised expression here, as a prediction table would
    counts = one.X.toarray()
    one.X = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4).astype(np.float32)
    one.layers.clear()
    out = Path(tempfile.mkdtemp()) / f"{section}.zarr"
    t0 = time.perf_counter()
    write_spots_store(out, one, uns={"what": "her2st measured expression, log1p CP10k"})
    t_write = time.perf_counter() - t0
    t0 = time.perf_counter()
    sdata = sd.read_zarr(out)
    t_read = time.perf_counter() - t0
    print(sdata)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"write {t_write:.1f} s, read_zarr {t_read:.1f} s, store {size / 1e6:.1f} MB")
    fig, ax = plt.subplots(figsize=(6.4, 6.4), dpi=110)
    (sdata.pl.render_images(f"{section}_he")
     .pl.render_shapes(f"{section}_spots", color=gene, table_name="table", cmap="magma",
                       fill_alpha=0.8)
     .pl.show(ax=ax, title=f"her2st {section}: {gene} (log1p CP10k) over the H&E, "
              "spatialdata-plot"))
    ax.set_axis_off()
    dest = Path(__file__).parent / "figures" / "spatialdata_her2st.jpg"
    fig.savefig(dest, bbox_inches="tight", pil_kwargs={"quality": 85})
    print(f"-> {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
