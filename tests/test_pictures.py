"""The pictures (issue 18): `lightsr plot`, `lightsr compare`, `lightsr lam` and the eval JSON's "meta".

Each test was broken once on purpose and seen to fail (the break is named in its docstring)."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from lightsr.cli import main
from lightsr.lam import diffusion_index, gini, local_attribution_map, window_objective
from lightsr.plots import compare_layout, load_hr_lr

from conftest import BENCHMARK, need, need_module
from test_evaluate import _one_line_error  # one line on stderr, exit 2, naming the words

need_module("matplotlib")  # the `plot` extra (in `test` too); CI fails without it


class LocalSR(nn.Module):
    """Three 3x3 convolutions and a pixel shuffle: each output pixel sees a 7x7 LR neighbourhood."""

    scale = 4

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
                                  nn.ReLU(), nn.Conv2d(16, 48, 3, padding=1), nn.PixelShuffle(4))

    def forward(self, x):
        return self.body(x)


@pytest.fixture(scope="module")
def butterfly():
    """The LR of Set5 butterfly.png by the standard protocol (64x64 at x4) and its 48x48 crop."""
    hr, lr = load_hr_lr(need(BENCHMARK / "Set5" / "butterfly.png"), 4)
    return hr, lr, lr[8:56, 8:56]


WINDOW = (88, 88, 16)  # output pixels of the 48x48 crop (192x192 output): the wing's edge


def test_gini_and_di():
    assert gini(np.ones(100)) == pytest.approx(0.0)
    one_hot = np.zeros(100)
    one_hot[3] = 5.0
    assert gini(one_hot) == pytest.approx(0.99)
    assert diffusion_index(np.ones((8, 8))) == pytest.approx(100.0)
    assert gini(np.array([1.0, 3.0])) == pytest.approx(0.25)  # sum |xi - xj| / (2 n^2 mean) = 4 / 16


def test_lam_completeness_small_model(butterfly):
    """Attributions sum to D(input) - D(baseline) within 5 % at the default 50 steps (measured 0.08 %;
    IMDN 0.48 %, HiT-SRF 0.11 % on the same crop, results/pictures.md).
    Broken on purpose: attributing gradient x (input - baseline) at each step instead of gradient x
    path step (attributions 50x too large) -> fails."""
    _, _, crop = butterfly
    res = local_attribution_map(LocalSR(), crop, *WINDOW)
    delta = res.objective_input - res.objective_baseline
    assert abs(delta) > 1.0  # a real difference to attribute
    assert res.attribution.sum() == pytest.approx(delta, rel=0.05)
    assert res.completeness_error < 0.05
    # the objective is the summed gradient magnitude of the window
    x = torch.from_numpy(crop.transpose(2, 0, 1).copy()).float()[None] / 255
    with torch.no_grad():
        assert window_objective(LocalSR()(x), *WINDOW).item() == pytest.approx(res.objective_input, rel=1e-5)


def test_local_model_has_no_attribution_outside_its_receptive_field(butterfly):
    """The output window rows 88..104 (+1 for the forward differences) come from LR rows 22..26;
    three 3x3 convolutions reach 3 LR pixels further: rows/columns 19..29 of the 48x48 crop.
    Broken on purpose: the objective summed over the whole output instead of the window -> fails."""
    _, _, crop = butterfly
    res = local_attribution_map(LocalSR(), crop, *WINDOW, steps=8)
    y, x, size = WINDOW
    lo, hi = y // 4 - 3, (y + size) // 4 + 3
    inside = np.zeros(crop.shape[:2], bool)
    inside[lo: hi + 1, lo: hi + 1] = True
    a = np.abs(res.attribution).sum(axis=0)
    assert np.all(a[~inside] == 0.0)
    assert a[inside].max() > 0 and (a[inside] > 0).sum() > 0.5 * inside.sum()


def test_di_grows_from_local_to_imdn_to_hit_srf(butterfly, reference):
    """Same 48x48 crop and window, 10 steps (cheap): local 3-conv model < IMDN < HiT-SRF.
    At the default 50 steps: 1.57 / 8.25 / 9.90 (results/pictures.md).
    Broken on purpose: DI as Gini x 100 instead of (1 - Gini) x 100 -> the order reverses -> fails."""
    from lightsr.models import build_model

    _, _, crop = butterfly
    local = local_attribution_map(LocalSR(), crop, *WINDOW, steps=10)
    imdn = build_model("imdn", 4, str(need(reference / "imdn_x4.pth")))
    di_imdn = local_attribution_map(imdn, crop, *WINDOW, steps=10, batch=11).di
    hit = build_model("hit_srf", 4, str(need(reference / "hit_srf_x4.pth")))
    di_hit = local_attribution_map(hit, crop, *WINDOW, steps=10, batch=11).di
    assert local.di < di_imdn < di_hit, (local.di, di_imdn, di_hit)
    assert local.di < 5 and di_hit > 8


# ----------------------------------------------------------------------------------------------
# plot and compare from eval JSON the project wrote


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    """A one-image folder: a 96x120 crop of Set5 butterfly.png."""
    src = need(BENCHMARK / "Set5" / "butterfly.png")
    d = tmp_path_factory.mktemp("pics") / "Tiny"
    d.mkdir()
    Image.fromarray(np.asarray(Image.open(src).convert("RGB"))[40:136, 30:150]).save(d / "wing.png")
    return d


@pytest.fixture(scope="module")
def eval_jsons(small_set, tmp_path_factory):
    out = tmp_path_factory.mktemp("evals")
    paths = {}
    for name in ("bicubic", "rdb_esa"):
        paths[name] = out / f"{name}.json"
        argv = ["eval", "--model", name, "--scale", "4", "--data", str(small_set), "--json", str(paths[name]),
                "--cache-dir", str(out / "cache"), "--device", "cpu"]
        assert main(argv) == 0
    return paths


def test_eval_json_has_meta_beside_the_datasets(eval_jsons):
    """Broken on purpose: run_cli writing the results without "meta" -> fails (and plot refuses)."""
    res = json.loads(eval_jsons["rdb_esa"].read_text())
    assert set(res) == {"Tiny", "meta"} and set(res["Tiny"]) == {"psnr", "ssim", "images"}
    meta = res["meta"]
    assert meta["model"] == "rdb_esa" and meta["scale"] == 4 and meta["weights_source"] == "shipped"
    assert meta["params"] > 0 and meta["flops"] > 0 and meta["flops_convention"] in ("macs", "fvcore")
    assert meta["precision"] == "fp32" and meta["weights"].endswith("rdb_esa_x4.safetensors")
    assert meta["flops_output_size"] == [720, 1280]
    bic = json.loads(eval_jsons["bicubic"].read_text())["meta"]
    assert bic["params"] == 0 and bic["flops"] == 0 and bic["weights_source"] == "none"


def _pixels(path):
    return np.asarray(Image.open(path).convert("RGB"))


def test_plot_writes_a_chart_of_the_expected_size(eval_jsons, tmp_path, capsys):
    """One panel (Tiny x4): 560x420 pixels, not uniform, the model's marker drawn; SVG by extension;
    no overwrite. Broken on purpose: drawing no markers (scatter skipped) -> fails."""
    out = tmp_path / "chart.png"
    assert main(["plot", str(eval_jsons["bicubic"]), str(eval_jsons["rdb_esa"]), "-o", str(out)]) == 0
    img = _pixels(out)
    assert img.shape == (420, 560, 3)
    assert img.std() > 5 and len(np.unique(img.reshape(-1, 3), axis=0)) > 20
    # the rdb_esa marker (the second file: colour C1 = #ff7f0e at alpha 0.6 over white) is drawn
    marker = np.array([255, 0.6 * 0x7F + 0.4 * 255, 0.6 * 0x0E + 0.4 * 255])
    assert (np.abs(img.astype(float) - marker).max(axis=2) <= 3).sum() > 100
    svg = tmp_path / "chart.svg"
    assert main(["plot", str(eval_jsons["bicubic"]), str(eval_jsons["rdb_esa"]), "-o", str(svg)]) == 0
    assert "<svg" in svg.read_text()[:2000]
    capsys.readouterr()
    _one_line_error(["plot", str(eval_jsons["rdb_esa"]), "-o", str(out)], capsys, "exists", "--overwrite")
    assert main(["plot", str(eval_jsons["rdb_esa"]), "-o", str(out), "--overwrite"]) == 0


def test_plot_bad_input_is_one_line(eval_jsons, tmp_path, capsys):
    """Missing file, not JSON, JSON not from eval, old eval JSON without meta, a bad extension."""
    out = str(tmp_path / "c.png")
    _one_line_error(["plot", str(tmp_path / "nope.json"), "-o", out], capsys, "not found")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    _one_line_error(["plot", str(bad), "-o", out], capsys, "not JSON")
    prof = tmp_path / "profile.json"
    prof.write_text(json.dumps({"model": "imdn", "params": 5, "flops": 7}))
    _one_line_error(["plot", str(prof), "-o", out], capsys, "not a `lightsr eval --json` file")
    old = tmp_path / "old.json"
    res = json.loads(eval_jsons["rdb_esa"].read_text())
    res.pop("meta")
    old.write_text(json.dumps(res))
    _one_line_error(["plot", str(old), "-o", out], capsys, "older lightsr eval")
    _one_line_error(["plot", str(eval_jsons["rdb_esa"]), "-o", str(tmp_path / "c.jpg")], capsys, ".png")


def test_compare_labels_equal_eval_and_grid_size(small_set, eval_jsons, tmp_path, capsys):
    """compare's PSNR/SSIM are eval's (same image, standard protocol) to 1e-9; the grid has the
    size of compare_layout; the crops are nearest-neighbour zooms of the box.
    Broken on purpose: scoring compare's outputs without the scale-pixel shave -> PSNR differs from
    eval's -> fails."""
    from lightsr.plots import compare

    image = small_set / "wing.png"
    out = tmp_path / "grid.png"
    res = compare(image, ["bicubic", "rdb_esa"], 4, out, box="20,30,24,40", tile=120)
    for row, name in zip(res["rows"], ("bicubic", "rdb_esa")):
        ev = json.loads(eval_jsons[name].read_text())["Tiny"]["images"]["wing.png"]
        assert row["psnr"] == pytest.approx(ev["psnr"], abs=1e-9)
        assert row["ssim"] == pytest.approx(ev["ssim"], abs=1e-9)
    hr, _ = load_hr_lr(image, 4)
    lay = compare_layout(2, (24, 40), 120, True, hr.shape[:2])
    assert lay["zoom"] == 3 and res["size"] == lay["size"]
    img = _pixels(out)
    assert img.shape[:2] == lay["size"] and img.std() > 5
    # the HR crop (first zoomed panel) is the box, zoomed by 3 with nearest neighbour
    left = lay["gap"] + lay["overview_width"] + lay["gap"]
    top = lay["label"]
    panel = img[top: top + 72, left: left + 120]
    want = hr[20:44, 30:70].repeat(3, 0).repeat(3, 1)
    assert np.abs(panel[3:-3, 3:-3].astype(int) - want[3:-3, 3:-3]).max() <= 2
    # CLI: no box -> the window where the models differ most, inside the image; a checkpoint path
    # whose safetensors metadata names the architecture is a spec too
    from lightsr.models import get_entry

    shipped = str(get_entry("rdb_esa").shipped_weights(4))
    out2 = tmp_path / "auto.png"
    assert main(["compare", str(image), "--models", "bicubic", shipped, "--scale", "4", "-o", str(out2)]) == 0
    captured = capsys.readouterr()
    assert f"{res['rows'][1]['psnr']:.4f}" in captured.out and "box y=" in captured.out
    assert _pixels(out2).std() > 5


def test_compare_and_lam_bad_input_is_one_line(small_set, tmp_path, capsys):
    image = str(small_set / "wing.png")
    out = str(tmp_path / "g.png")
    base = ["compare", image, "--scale", "4", "-o", out]
    _one_line_error(base + ["--models", "bicubic", "--box", "90,0,20,20"], capsys, "not inside")
    _one_line_error(base + ["--models", "bicubic", "--box", "1,2,3"], capsys, "Y,X,H,W")
    _one_line_error(base + ["--models", "no_such_model"], capsys, "unknown model")
    _one_line_error(base + ["--models", "swinir_light"], capsys, "no weights ship", "swinir_light=PATH")
    _one_line_error(["compare", str(tmp_path / "none.png"), "--models", "bicubic", "--scale", "4", "-o", out],
                    capsys, "not found")
    lam = ["lam", "--model", "rdb_esa", "--scale", "4", "--image", image, "-o", str(tmp_path / "l.png")]
    _one_line_error(lam + ["--window", "90,10"], capsys, "not inside")
    _one_line_error(lam + ["--window", "a,b"], capsys, "Y,X")
    _one_line_error(["lam", "--model", "bicubic", "--scale", "4", "--image", image, "--window", "8,8",
                     "-o", str(tmp_path / "l.png")], capsys, "no parameters")


def test_lam_cli_figure_and_json(small_set, tmp_path, capsys):
    """Broken on purpose: the JSON without "di" -> fails."""
    out, js = tmp_path / "lam.png", tmp_path / "lam.json"
    argv = ["lam", "--model", "rdb_esa", "--scale", "4", "--image", str(small_set / "wing.png"),
            "--window", "40,60,16", "--steps", "6", "-o", str(out), "--json", str(js)]
    assert main(argv) == 0
    d = json.loads(js.read_text())
    assert 0 < d["di"] < 100 and d["window"] == {"y": 40, "x": 60, "size": 16} and d["steps"] == 6
    assert d["completeness_error"] < 0.1 and d["lr_size"] == [24, 30]
    img = _pixels(out)
    assert img.shape[1] == 4 * 320 and img.std() > 5
    assert f"DI {d['di']:.2f}" in capsys.readouterr().out
    _one_line_error(argv, capsys, "exists")


def test_without_matplotlib_one_line_says_what_to_install(eval_jsons, tmp_path, capsys, monkeypatch):
    """Broken on purpose: importing matplotlib at the top of run_plot without the guard -> an
    internal-error line without the install hint -> fails."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    _one_line_error(["plot", str(eval_jsons["rdb_esa"]), "-o", str(tmp_path / "c.png")], capsys,
                    "pip install 'lightsr[plot]'")


def test_plot_draws_each_files_psnr_at_its_flops(tmp_path, monkeypatch):
    """The plotted data, read off the matplotlib figure: per (dataset, scale) panel, each model is a
    point at (FLOPs / 1e9, that dataset's PSNR) and bicubic a horizontal line at its PSNR; never the
    SSIM or another dataset's figure. Eval JSON written here (no benchmark images needed).
    Broken on purpose (``r["sets"][dname]["ssim"]`` plotted) -> fails."""
    from lightsr import plots

    figs = []

    def keep(fig, output, overwrite=False, dpi=100):
        figs.append(fig)
        return output

    monkeypatch.setattr(plots, "save_figure", keep)
    runs = {"a": ("imdn", 715_000, 40.9e9, {"Set5": (32.2049, 0.8948), "Set14": (28.5819, 0.7811)}),
            "b": ("rlfn_s", 317_000, 17.6e9, {"Set5": (31.6651, 0.8878), "Set14": (28.1893, 0.7700)}),
            "c": ("bicubic", 0, 0, {"Set5": (28.4206, 0.8104), "Set14": (26.0004, 0.7027)})}
    paths = []
    for key, (model, params, flops, sets) in runs.items():
        data = {name: {"psnr": p, "ssim": s, "images": {}} for name, (p, s) in sets.items()}
        data["meta"] = {"model": model, "scale": 4, "params": params, "flops": flops, "flops_convention": "macs"}
        paths.append(tmp_path / f"{key}.json")
        paths[-1].write_text(json.dumps(data))
    assert main(["plot", *map(str, paths), "-o", str(tmp_path / "chart.png")]) == 0
    (fig,) = figs
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    assert set(panels) == {"Set5 x4", "Set14 x4"}
    for dname, ax in ((d, panels[f"{d} x4"]) for d in ("Set5", "Set14")):
        points = sorted(tuple(map(float, xy)) for c in ax.collections for xy in c.get_offsets())
        want = sorted((flops / 1e9, sets[dname][0]) for _, _, flops, sets in runs.values() if flops)
        assert points == pytest.approx(want), dname
        lines = [float(y) for ln in ax.get_lines() for y in set(ln.get_ydata())]
        assert lines == pytest.approx([runs["c"][3][dname][0]]), dname
        assert "PSNR" in ax.get_ylabel()
