"""The HTML run report: every section with embedded images for a tiny bulk run (written by
``fit`` itself) and a fabricated spatial run, half-finished runs, bad folders, the CLI and
(when a Chromium binary exists) a headless render."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from histoexpr.cli import main
from histoexpr.errors import InputError
from histoexpr.plot.report import write_report

SECTIONS = {"config", "qc", "metrics", "genes", "correlations", "spatial", "analyses", "cost"}


class _Parsed(HTMLParser):
    def __init__(self, text: str, *, strict: bool = True) -> None:
        super().__init__()
        self.strict = strict
        self.sections: dict[str, list[str]] = {}
        self.imgs: list[dict[str, str]] = []
        self.text: list[str] = []
        self._cur: str | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self._cur = a["id"]
            self.sections[self._cur] = []
        if tag == "img":
            self.imgs.append(a | {"section": self._cur})
        if self.strict and tag in ("script", "link", "iframe"):
            raise AssertionError(f"external or active content: <{tag}>")

    def handle_data(self, data):
        self.text.append(data)
        if self._cur:
            self.sections[self._cur].append(data)


def _parse(path: Path) -> _Parsed:
    p = _Parsed(path.read_text(encoding="utf-8"))
    for img in p.imgs:
        head, b64 = img["src"].split(",", 1)
        magic = {"data:image/png;base64": b"\x89PNG\r\n\x1a\n",
                 "data:image/jpeg;base64": b"\xff\xd8\xff"}
        assert head in magic, head[:40]
        assert base64.b64decode(b64).startswith(magic[head])
    return p


def _png(path: Path) -> None:
    from histoexpr.plot import new_figure

    fig = new_figure((2, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=30)


@pytest.fixture(scope="module")
def bulk_run(tmp_path_factory):
    from histoexpr.bulk import fit_run
    from histoexpr.config import BulkConfig
    from histoexpr.datasets.synthetic_bulk import synthetic_bulk

    syn = synthetic_bulk(tmp_path_factory.mktemp("bulk"), n_slides=40, n_genes=5, n_signal=2,
                         seed=0)
    cfg = BulkConfig.resolve(features=str(syn.features_dir), expression=str(syn.expression_path),
                             genes="all", baselines=["mean"], k=2)
    return fit_run(cfg, tmp_path_factory.mktemp("run") / "bulk").path


@pytest.fixture(scope="module")
def st_run(tmp_path_factory):
    """A finished-looking spatial run folder with every file the report reads."""
    import anndata as ad
    from PIL import Image

    d = tmp_path_factory.mktemp("st") / "run"
    rng = np.random.default_rng(0)
    genes, sections = [f"G{i}" for i in range(6)], ["S0", "S1"]
    Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(d.parent / "S0.png")
    (d / "maps").mkdir(parents=True)
    _png(d / "maps" / "S0.png")
    _png(d / "analyses" / "survival" / "km.png")
    (d / "analyses" / "survival" / "analysis.json").write_text(json.dumps(
        {"analysis": "survival", "notes": ["<b>median</b> split"], "summary": {"p": 0.04}}))
    (d / "config.json").write_text(json.dumps({"data": ["x.json"], "encoder": "toy",
                                               "split": "patient", "k": 2}))
    (d / "run.json").write_text(json.dumps({"format": 1, "status": "done", "stages": {
        "data": {"seconds": 0.1}, "cross_validation": {"seconds": 0.2, "n_folds": 2}}}))
    (d / "data.json").write_text(json.dumps({"n_spots": 20, "sections": {
        s: {"patient": f"P{i}", "spots_kept": 10, "dropped": {},
            "image_path": str(d.parent / "S0.png")} for i, s in enumerate(sections)}}))
    (d / "splits.json").write_text(json.dumps({"by": "patient", "fold_test_groups": [["P0"],
                                                                                     ["P1"]]}))
    rows = []
    for (model, feat, role) in (("ridge", "toy", "model"), ("ridge", "colour_hist", "baseline")):
        for sec in ["pooled", *sections]:
            for g in genes:
                rows.append((model, feat, role, 0, sec, g, "pearson_r", rng.uniform(-.2, .9)))
    pd.DataFrame(rows, columns=["model", "features", "role", "fold", "section", "gene", "metric",
                                "value"]).to_csv(d / "metrics.csv", index=False)
    pd.DataFrame({"model": ["ridge", "ridge", "mean"], "features": ["toy", "colour_hist", "none"],
                  "role": ["model", "baseline", "baseline"], "fold": ["mean"] * 3,
                  "pcc_mean": [0.5, 0.2, np.nan]}).to_csv(d / "summary.csv", index=False)
    y = rng.normal(size=(20, 6)).astype(np.float32)
    a = ad.AnnData(X=y + rng.normal(size=y.shape).astype(np.float32),
                   obs=pd.DataFrame(index=[f"s{i}" for i in range(20)]),
                   var=pd.DataFrame(index=genes), layers={"measured": y})
    a.write_h5ad(d / "predictions.h5ad")
    return d


def test_bulk_fit_writes_a_report_with_every_section(bulk_run):
    p = _parse(bulk_run / "report.html")
    assert set(p.sections) == SECTIONS
    sec = {i["section"] for i in p.imgs}
    assert {"genes", "correlations"} <= sec and len(p.imgs) >= 4
    metrics = " ".join(p.sections["metrics"])
    assert "ridge" in metrics and "mean" in metrics and "held out" in metrics
    assert "energy_wh" in " ".join(p.sections["cost"])  # cost.json is shown
    assert "not a spatial run" in " ".join(p.sections["spatial"])


def test_st_report_embeds_every_figure_and_escapes_text(st_run, tmp_path):
    out = write_report(st_run, out=tmp_path / "r.html")
    p = _parse(out)
    assert set(p.sections) == SECTIONS
    assert not any("not available" in t for t in p.text)
    by = {s: sum(i["section"] == s for i in p.imgs) for s in SECTIONS}
    assert by["qc"] == 2 and by["genes"] == 3 and by["correlations"] == 1
    assert by["spatial"] == 1 and by["analyses"] == 1
    assert "<b>median</b> split" in "".join(p.sections["analyses"])  # escaped, shown as text
    assert "cross-validation grouped by patient" in "".join(p.sections["metrics"])


def test_half_finished_run_reports_what_exists(st_run, tmp_path):
    d = tmp_path / "half"
    d.mkdir()
    for name in ("config.json", "data.json"):
        shutil.copy(st_run / name, d / name)
    (d / "run.json").write_text(json.dumps({"format": 1, "status": "running", "stages": {}}))
    p = _parse(write_report(d))
    text = " ".join(p.text)
    assert "did not finish" in text and "not available: summary.csv missing" in text
    assert "not available: metrics.csv missing" in " ".join(p.sections["genes"])
    assert set(p.sections) == SECTIONS


def test_bad_folders_are_refused_with_what_to_run(tmp_path):
    with pytest.raises(InputError, match=r"not a run folder.*st fit"):
        write_report(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"format": 99}))
    with pytest.raises(InputError, match="format 99"):
        write_report(tmp_path)
    assert main(["report", str(tmp_path / "nope")]) == 2


def test_cli_writes_the_report(st_run, tmp_path, capsys):
    out = tmp_path / "x" / "report.html"
    assert main(["report", str(st_run), "--out", str(out)]) == 0
    assert out.is_file() and str(out) in capsys.readouterr().out


_CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_PROBE = """<script>window.addEventListener('load', function () {
  var bad = 0, imgs = document.images;
  for (var i = 0; i < imgs.length; i++) { if (!(imgs[i].naturalWidth > 0)) bad++; }
  var p = document.createElement('pre'); p.id = 'probe';
  p.textContent = JSON.stringify({n: imgs.length, bad: bad,
    overflow: document.body.scrollWidth > window.innerWidth});
  document.body.appendChild(p);
});</script></body>"""


@pytest.mark.skipif(_CHROMIUM is None, reason="no chromium / chromium-browser on PATH")
@pytest.mark.parametrize("width", [1280, 400])
def test_headless_chromium_loads_every_image_without_overflow(st_run, tmp_path, width):
    html_text = write_report(st_run, out=tmp_path / "r.html").read_text(encoding="utf-8")
    probe = tmp_path / "probe.html"
    probe.write_text(html_text.replace("</body>", _PROBE), encoding="utf-8")
    res = subprocess.run([_CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                          "--disable-background-networking", f"--window-size={width},900",
                          "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=60)
    dom = _Parsed(res.stdout, strict=False)
    found = [t for t in dom.text if t.startswith("{") and '"bad"' in t]
    assert found, res.stderr[-2000:]
    got = json.loads(found[-1])
    assert got["n"] > 0 and got["bad"] == 0 and not got["overflow"], got


def test_large_photographic_figures_are_embedded_as_smaller_jpeg(tmp_path):
    from PIL import Image

    from histoexpr.plot.report_sections import _file_img

    rng = np.random.default_rng(0)
    big = tmp_path / "map.png"
    Image.fromarray(rng.integers(0, 255, (1400, 1400, 3), dtype=np.uint8)).save(big)
    tag = _file_img(big, alt="map")
    assert 'src="data:image/jpeg;base64,' in tag
    assert len(tag) < big.stat().st_size / 2
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((50, 50, 3), np.uint8)).save(small)
    assert 'src="data:image/png;base64,' in _file_img(small, alt="s")


def test_section_thumbnail_reads_reduced_without_a_bomb_warning(tmp_path, monkeypatch):
    """An H&E section over PIL's pixel limit is drawn from a reduced decode through the slide
    layer: no DecompressionBombWarning (warnings are errors here), no crash above 2x."""
    import io

    from PIL import Image

    from histoexpr.plot.report_sections import _thumbnail

    p = tmp_path / "S0.jpg"
    Image.fromarray(np.full((1200, 1600, 3), 120, np.uint8)).save(p)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)  # the image is 19x the limit
    decoded = []
    real = Image.Image.resize
    monkeypatch.setattr(Image.Image, "resize",
                        lambda self, *a, **k: decoded.append(self.size) or real(self, *a, **k))
    tag = _thumbnail(str(p), alt="section S0")
    head, b64 = tag.split('src="', 1)[1].split('"', 1)[0].split(",", 1)
    assert head == "data:image/png;base64"
    with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
        assert im.size == (240, 180)
    assert decoded == [(800, 600)]  # decoded at 1/2 scale, not 1600 x 1200
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(p.read_bytes()[:-300])
    assert "not available" in _thumbnail(str(cut), alt="x")  # one note, the report goes on


@pytest.mark.data
def test_her2st_section_thumbnail_without_a_bomb_warning(shared_data):
    from histoexpr.plot.report_sections import _thumbnail

    tag = _thumbnail(str(shared_data / "her2st" / "images" / "C3.jpg"), alt="C3")
    assert 'src="data:image/png;base64,' in tag and len(tag) < 400_000
