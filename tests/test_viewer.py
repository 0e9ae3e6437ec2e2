"""The deep-zoom viewer (issue 22, item 5): `histoexpr view` on a predict-slide output builds
a folder that opens from disk; headless Chromium loads it with no console errors, the gene
picker switches the layer, and screenshots of two genes differ. Bad input is one clear
error."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from histoexpr.cli import main
from histoexpr.errors import InputError

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _osd_or_skip():
    from histoexpr.plot.viewer import find_openseadragon

    try:
        return find_openseadragon()
    except InputError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def predicted(tmp_path_factory, synthetic_tiff, tiny_st_run):
    from histoexpr.st.predict_slide import predict_slide

    dest = tmp_path_factory.mktemp("view_pred")
    res = predict_slide(synthetic_tiff, tiny_st_run[0].path, out=dest, n_maps=2, quiet=True,
                        map_mpp=None)
    return dest, res


def test_viewer_folder(predicted):
    _osd_or_skip()
    dest, res = predicted
    assert main(["-q", "view", str(dest)]) == 0
    v = dest / "viewer"
    assert (v / "index.html").is_file() and (v / "slide.dzi").is_file()
    assert (v / "openseadragon" / "openseadragon.min.js").is_file()
    data = json.loads((v / "data.js").read_text().removeprefix("window.HISTOEXPR = ")
                      .rstrip().rstrip(";"))
    assert data["genes"] == list(res.adata.var_names)  # every gene is a layer
    assert all((v / p).is_file() for p in data["layers"].values())
    g = data["grid"]
    assert len(g["index"]) == g["rows"] * g["cols"]
    assert sorted(k for k in g["index"] if k >= 0) == list(range(res.n_tiles))


PROBE_HEAD = """<head><script>window.__errors = [];
window.addEventListener('error', function (e) { __errors.push(String(e.message)); });
var __ce = console.error;
console.error = function () {
  __errors.push([].join.call(arguments, ' ')); __ce.apply(console, arguments); };
</script>"""
PROBE_TAIL = """<script>window.addEventListener('load', function () {
  setTimeout(function () {
    var first = document.body.dataset.gene;
    window.histoexprShow('__SECOND__');
    setTimeout(function () {
      var p = document.createElement('pre'); p.id = 'probe';
      p.textContent = JSON.stringify({errors: window.__errors, first: first,
                                      now: document.body.dataset.gene});
      document.body.appendChild(p);
    }, 1500);
  }, 1500);
});</script></body>"""


def _chromium(*args, timeout=90):
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           "--disable-background-networking", "--window-size=900,700",
                           "--virtual-time-budget=8000", *args], capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium / chromium-browser on PATH")
def test_headless_chromium_switches_genes_without_errors(predicted, tmp_path):
    _osd_or_skip()
    dest, res = predicted
    from histoexpr.plot.viewer import build_viewer

    page = build_viewer(dest, dest=tmp_path / "v")
    a, b = list(res.adata.var_names)[:2]
    html = page.read_text().replace("<head>", PROBE_HEAD, 1).replace(
        "</body>", PROBE_TAIL.replace("__SECOND__", b))
    probe = page.with_name("probe.html")
    probe.write_text(html)
    out = _chromium("--dump-dom", probe.as_uri())
    start = out.stdout.find('<pre id="probe">')
    assert start >= 0, out.stderr[-2000:]
    got = json.loads(out.stdout[start + 16:out.stdout.index("</pre>", start)]
                     .replace("&quot;", '"'))
    assert got["errors"] == [] and got["first"] == a and got["now"] == b, got
    shots = []
    for gene in (a, b):
        shot = tmp_path / f"{gene}.png"
        _chromium(f"--screenshot={shot}", f"{page.as_uri()}#gene={gene}")
        shots.append(shot.read_bytes())
    assert shots[0] != shots[1]


def test_bad_input_is_named(predicted, tmp_path, synthetic_tiff):
    _osd_or_skip()
    dest, _ = predicted
    from histoexpr.plot.viewer import build_viewer

    with pytest.raises(InputError, match="no predictions for NOPE"):
        build_viewer(dest, dest=tmp_path / "a", genes=["NOPE"])
    with pytest.raises(InputError, match="no predictions to view"):
        build_viewer(tmp_path, dest=tmp_path / "b")
    from histoexpr.datasets.synthetic import synthetic_he, write_pyramidal_tiff

    other = write_pyramidal_tiff(tmp_path / "other.tif", synthetic_he(300, 200, mpp=0.5).rgb,
                                 mpp=0.5)
    with pytest.raises(InputError, match="pass the slide they came from"):
        build_viewer(dest, dest=tmp_path / "c", slide=other)
    big = write_pyramidal_tiff(tmp_path / "mpp.tif", synthetic_he(64, 64, mpp=0.25).rgb,
                               mpp=0.25)
    with pytest.raises(InputError, match=r"predictions were made at 0\.5"):
        build_viewer(dest, dest=tmp_path / "d", slide=big)


def test_st_predict_spots_with_measured_layers(tiny_st_run, tmp_path):
    """st predict with --counts, viewed: each spot a disc on the section image, each gene's
    measured values a layer beside the prediction, on one colour scale."""
    _osd_or_skip()
    import numpy as np

    from histoexpr.plot.viewer import build_viewer
    from histoexpr.st import predict_section

    run, s = tiny_st_run
    spec = s.specs[0]
    res = predict_section(run.path, spec["image"], spec["spots"], out=tmp_path / "p",
                          counts=spec["counts"])
    page = build_viewer(tmp_path / "p", genes=[str(res.var_names[0])])
    section = str(res.obs["slide_id"].iloc[0])
    assert page == tmp_path / "p" / f"{section}_viewer" / "index.html"
    data = json.loads((page.parent / "data.js").read_text()
                      .removeprefix("window.HISTOEXPR = ").rstrip().rstrip(";"))
    g = str(res.var_names[0])
    assert data["genes"] == [g, f"{g} (measured)"] and data["unit"] == "spot"
    assert data["range"][g] == data["range"][f"{g} (measured)"]
    measured = np.asarray(res.layers["measured"])[:, 0]
    got = np.array([np.nan if v is None else v for v in data["values"][f"{g} (measured)"]])
    np.testing.assert_allclose(got, measured, rtol=1e-3, atol=1e-3, equal_nan=True)
    grid = data["grid"]
    index = np.asarray(grid["index"])
    assert set(index[index >= 0]) == set(range(res.n_obs))  # every spot is a disc
    # the cell under each spot's centre holds that spot
    xy = res.obs[["x", "y"]].to_numpy(float)
    c = ((xy[:, 0] - grid["x0"]) // grid["step"]).astype(int)
    r = ((xy[:, 1] - grid["y0"]) // grid["step"]).astype(int)
    np.testing.assert_array_equal(index[r * grid["cols"] + c], np.arange(res.n_obs))


def test_a_spatialdata_store_is_viewed(tiny_st_run, tmp_path):
    """histoexpr view store.zarr: the store's own image (from zarr, via a streamed TIFF) and
    spots, the table's predictions and measured values as layers."""
    _osd_or_skip()
    pytest.importorskip("spatialdata")
    import numpy as np

    from histoexpr.st import predict_section

    run, s = tiny_st_run
    spec = s.specs[0]
    res = predict_section(run.path, spec["image"], spec["spots"], out=tmp_path / "p",
                          counts=spec["counts"], spatialdata=True)
    section = str(res.obs["slide_id"].iloc[0])
    store = tmp_path / "p" / f"{section}.zarr"
    g = str(res.var_names[1])
    assert main(["-q", "view", str(store), "--genes", g]) == 0
    v = tmp_path / "p" / f"{section}_viewer"
    data = json.loads((v / "data.js").read_text().removeprefix("window.HISTOEXPR = ")
                      .rstrip().rstrip(";"))
    assert data["genes"] == [g, f"{g} (measured)"] and data["unit"] == "spot"
    np.testing.assert_allclose(data["values"][g], res.X[:, 1], rtol=1e-3, atol=1e-4)
    index = np.asarray(data["grid"]["index"])
    assert set(index[index >= 0]) == set(range(res.n_obs))
    assert (v / "slide.dzi").is_file() and not (v / ".slide.tif").exists()
    from histoexpr.plot.viewer import build_viewer

    with pytest.raises(InputError, match="no section 'nope'"):
        build_viewer(store, section="nope")
