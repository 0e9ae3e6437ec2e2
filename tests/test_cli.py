from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from histoexpr.cli import main
from histoexpr.tiling import load_coords


def run(capsys, *argv):
    rc = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc, err, *needles):
    assert rc == 2
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("info", "tile", "demo"):
        assert cmd in out


def test_info_json(capsys, synthetic_tiff):
    rc, out, _ = run(capsys, "info", synthetic_tiff, "--json")
    d = json.loads(out)
    assert rc == 0 and d["mpp"] == 0.5 and d["reader"] == "openslide" and d["level_count"] == 3


def test_tile_writes_coords_qc_and_run_record_then_resumes(capsys, synthetic_tiff, tmp_path):
    out = tmp_path / "tiles"
    rc, _, _ = run(capsys, "-q", "tile", synthetic_tiff, "--out", out,
                        "--tile-size", "128", "256", "--filter", "white,kmeans")
    assert rc == 0
    for size in (128, 256):
        h5 = out / f"{size}px_0.5mpp" / "synthetic.h5"
        coords, attrs = load_coords(h5)
        assert len(coords) > 0 and attrs["patch_size"] == size
        assert (out / f"{size}px_0.5mpp" / "qc" / "synthetic.png").is_file()
    assert (out / "kmeans_filter.json").is_file()
    record = json.loads((out / "run.json").read_text())
    assert [s["status"] for s in record["slides"]] == ["done", "done"]
    mtime = (out / "128px_0.5mpp" / "synthetic.h5").stat().st_mtime_ns
    rc, _, _ = run(capsys, "-q", "tile", synthetic_tiff, "--out", out, "--tile-size", "128", "256")
    assert rc == 0 and (out / "128px_0.5mpp" / "synthetic.h5").stat().st_mtime_ns == mtime
    record = json.loads((out / "run.json").read_text())
    assert {s["status"] for s in record["slides"]} == {"done before"}


def test_tile_spots_and_heatmap(capsys, synthetic_tiff, synthetic, tmp_path):
    ys, xs = np.nonzero(synthetic.tissue[::200, ::200])
    spots = tmp_path / "synthetic.csv"
    pd.DataFrame({"spot_id": range(len(xs)), "x": xs * 200, "y": ys * 200}).to_csv(spots)
    rc, _, _ = run(capsys, "-q", "tile", synthetic_tiff, "--out", tmp_path / "s", "--spots", spots)
    coords, attrs = load_coords(tmp_path / "s" / "224px_0.5mpp" / "synthetic.h5")
    assert rc == 0 and attrs["sampler"] == "spots" and len(coords) == len(xs)
    np.testing.assert_array_equal(coords[0], [xs[0] * 200 - 112, ys[0] * 200 - 112])

    heat = tmp_path / "synthetic.png"
    Image.fromarray(synthetic.tissue[::16, ::16].astype(np.uint8) * 255).save(heat)
    rc, _, _ = run(capsys, "-q", "tile", synthetic_tiff, "--out", tmp_path / "h",
                   "--heatmap", heat, "--n-tiles", "4", "--filter", "kmeans")
    coords, attrs = load_coords(tmp_path / "h" / "224px_0.5mpp" / "synthetic.h5")
    assert rc == 0 and attrs["sampler"] == "heatmap" and len(coords) == 4


def test_multi_slide_run_skips_the_bad_slide_and_reports_it(capsys, synthetic_tiff, tmp_path):
    bad = tmp_path / "broken.svs"
    bad.write_text("not a slide")
    rc, _, err = run(capsys, "tile", bad, synthetic_tiff, "--out", tmp_path / "o",
                       "--tile-size", "256")
    assert rc == 2
    assert (tmp_path / "o" / "256px_0.5mpp" / "synthetic.h5").is_file()
    assert "1 of 2 slides failed" in err and "broken.svs" in err
    statuses = {s["slide"]: s["status"] for s in json.loads((tmp_path / "o" / "run.json")
                                                           .read_text())["slides"]}
    assert statuses == {"broken": "failed", "synthetic": "done"}


def test_bad_input_missing_path(capsys, tmp_path):
    rc, _, err = run(capsys, "info", tmp_path / "missing.svs")
    assert_one_line_error(rc, err, "missing.svs", "no such file")


def test_bad_input_text_renamed_svs(capsys, tmp_path):
    p = tmp_path / "notes.svs"
    p.write_text("hello\n")
    rc, _, err = run(capsys, "info", p)
    assert_one_line_error(rc, err, "notes.svs")


def test_bad_input_truncated_slide(capsys, tmp_path, synthetic_tiff):
    p = tmp_path / "cut.tif"
    p.write_bytes(synthetic_tiff.read_bytes()[:60_000])
    rc, _, err = run(capsys, "tile", p, "--out", tmp_path / "o")
    assert_one_line_error(rc, err, "cut.tif", "incomplete")


def test_bad_input_no_mpp(capsys, tmp_path, synthetic):
    p = tmp_path / "section.png"
    Image.fromarray(synthetic.rgb[:256, :256]).save(p)
    rc, _, err = run(capsys, "info", p)
    assert_one_line_error(rc, err, "section.png", "--mpp")
    rc, _, err = run(capsys, "tile", p, "--out", tmp_path / "o")
    assert_one_line_error(rc, err, "section.png", "--slide-mpp")


def test_bad_input_empty_tissue(capsys, tmp_path):
    p = tmp_path / "glass.png"
    Image.fromarray(np.full((600, 600, 3), 243, np.uint8)).save(p)
    rc, _, err = run(capsys, "-q", "tile", p, "--out", tmp_path / "o", "--slide-mpp", "0.5")
    assert_one_line_error(rc, err, "glass.png", "no tissue")


def test_bad_input_spots_outside_image(capsys, tmp_path, synthetic_tiff):
    spots = tmp_path / "spots.csv"
    pd.DataFrame({"x": [100, 99_999], "y": [100, 100]}).to_csv(spots, index=False)
    rc, _, err = run(capsys, "tile", synthetic_tiff, "--out", tmp_path / "o", "--spots", spots)
    assert_one_line_error(rc, err, "spots.csv", "outside the image")


def test_debug_shows_the_traceback(capsys, tmp_path):
    rc, _, err = run(capsys, "--debug", "info", tmp_path / "missing.svs")
    assert rc == 2 and "Traceback" in err and "error: " in err


def test_unknown_filter(capsys, synthetic_tiff, tmp_path):
    rc, _, err = run(capsys, "tile", synthetic_tiff, "--out", tmp_path, "--filter", "blur")
    assert_one_line_error(rc, err, "blur", "white, kmeans")


@pytest.mark.data
def test_cli_on_real_slides(capsys, shared_data, tmp_path):
    rc, out, _ = run(capsys, "info", shared_data / "wsi" / "CMU-1-Small-Region.svs", "--json")
    assert rc == 0 and json.loads(out)["mpp"] == pytest.approx(0.499)
    rc, _, _ = run(capsys, "-q", "tile", shared_data / "her2st" / "images" / "C3.jpg",
                   "--out", tmp_path, "--spots", shared_data / "her2st" / "spots",
                   "--slide-mpp", "from-spots", "--filter", "white")
    coords, attrs = load_coords(tmp_path / "224px_0.5mpp" / "C3.h5")
    assert rc == 0 and len(coords) > 150 and attrs["level0_mpp"] == pytest.approx(0.69, abs=0.02)


def test_embed_after_tile_then_resume_and_checksum_guard(capsys, synthetic_tiff, tmp_path):
    pytest.importorskip("torch")
    from histoexpr.features import load_features

    tiles = tmp_path / "tiles"
    assert run(capsys, "-q", "tile", synthetic_tiff, "--out", tiles, "--tile-size", "128")[0] == 0
    feats = tmp_path / "feats"
    args = ["embed", synthetic_tiff, "--coords", tiles / "128px_0.5mpp", "--encoder", "toy",
            "--out", feats]
    rc, out, _ = run(capsys, *args)
    coords, f, attrs = load_features(feats / "synthetic.h5")
    assert rc == 0 and f.shape == (len(coords), 16) and attrs["encoder"]["name"] == "toy"
    assert "done" in out
    rc, out, _ = run(capsys, *args)
    assert rc == 0 and "done before" in out
    # coordinates of another slide are refused
    other = tmp_path / "synthetic.tif"
    other.write_bytes(synthetic_tiff.read_bytes()[:-1] + b"\x00")
    rc, _, err = run(capsys, "embed", other, "--coords", tiles / "128px_0.5mpp", "--encoder",
                     "toy", "--out", tmp_path / "f2")
    assert_one_line_error(rc, err, "checksum differs")


def test_info_lists_encoder_cards_and_their_weights(capsys, tmp_path, monkeypatch):
    import json as _json

    monkeypatch.setenv("HISTOEXPR_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "resnet50.pth").write_bytes(b"x")
    rc, out, _ = run(capsys, "info", "--encoders", "--json")
    assert rc == 0
    rows = {r["name"]: r for r in _json.loads(out)}
    assert rows["resnet50"]["weights"] == "weights folder: resnet50.pth"
    assert rows["uni"]["gated"] and rows["uni"]["weights"].startswith("none local (gated")
    assert rows["resnet50"]["dim"] == 2048
    rc, _, err = run(capsys, "info")
    assert_one_line_error(rc, err, "--encoders")


def test_info_encoders_never_cuts_names_when_not_a_terminal(capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rc, out, _ = run(capsys, "info", "--encoders")  # captured: not a terminal
    assert rc == 0 and "…" not in out
    for name in ("efficientnet_lite0", "efficientnet_b0", "vit_base_patch16_224", "h_optimus_0"):
        assert f" {name} " in out


def test_finetune_random_init_flag_and_its_hidden_deprecated_alias(capsys):
    from histoexpr.cli import build_parser

    parser = build_parser()
    base = ["finetune", "--patches", "p", "--encoder", "toy", "--out", "o"]
    assert parser.parse_args([*base, "--random-init"]).random_init
    assert parser.parse_args([*base, "--no-pretrained"]).no_pretrained
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--help"])
    out = capsys.readouterr().out
    assert "--random-init" in out and "--no-pretrained" not in out
    with pytest.raises(SystemExit):
        parser.parse_args(["embed", "--help"])
    assert "--random-init" in capsys.readouterr().out
