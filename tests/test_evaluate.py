"""`lightsr eval`: the bicubic table of ../shared/data/README.md, the JSON format, benchmark pairs,
the LR cache, self-ensemble, saved images and bad input."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from lightsr import LightSRError
from lightsr.cli import main
from lightsr.data.benchmark import BenchmarkFolder, crop_hr, make_lr
from lightsr.evaluate import evaluate
from lightsr.inference import ensemble_x8
from lightsr.models import create_model
from lightsr.resize import imresize

from conftest import BENCHMARK, need

# ../shared/data/README.md: bicubic up-scaling of the benchmark LR (standard PSNR / SSIM, MATLAB PSNR)
STANDARD = {
    2: {"Set5": (33.6818, 0.9305), "Set14": (30.3301, 0.8700), "BSD100": (29.5648, 0.8436)},
    3: {"Set5": (30.4047, 0.8690), "Set14": (27.6341, 0.7760), "BSD100": (27.2110, 0.7392)},
    4: {"Set5": (28.4314, 0.8113), "Set14": (26.0918, 0.7050), "BSD100": (25.9634, 0.6682)},
}
MATLAB = {
    2: {"Set5": 33.649, "Set14": 30.224, "BSD100": 29.552},
    3: {"Set5": 30.386, "Set14": 27.533, "BSD100": 27.204},
    4: {"Set5": 28.419, "Set14": 25.993, "BSD100": 25.958},
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Element-wise work on small images: one thread avoids spin overhead on a shared 2-core box."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def lr_cache(tmp_path_factory):
    """One LR cache for the module: the cache does not depend on the protocol."""
    return tmp_path_factory.mktemp("lr_cache")


def _run_table(sets, scale, protocol, cache, tmp_path):
    folders = [str(need(BENCHMARK / s)) for s in sets]
    out = tmp_path / "r.json"
    rc = main(["eval", "--model", "bicubic", "--scale", str(scale), "--protocol", protocol, "--data", *folders,
               "--json", str(out), "--cache-dir", str(cache), "--device", "cpu"])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res.pop("meta")["model"] == "bicubic"  # what `lightsr plot` reads, beside the datasets
    return res


def _check_table(res, scale, protocol):
    for name, r in res.items():
        # measured: every figure within the rounding of the README's (4 and 3 decimals); the issue asks
        # for 0.005 dB / 0.0005 (standard) and 0.01 dB (matlab), asserted tighter here
        if protocol == "standard":
            p, s = STANDARD[scale][name]
            assert r["psnr"] == pytest.approx(p, abs=2e-4), name
            assert r["ssim"] == pytest.approx(s, abs=2e-4), name
        else:
            assert r["psnr"] == pytest.approx(MATLAB[scale][name], abs=1e-3), name


@pytest.mark.parametrize("protocol", ["standard", "matlab"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_table_set5_set14(scale, protocol, lr_cache, tmp_path):
    res = _run_table(["Set5", "Set14"], scale, protocol, lr_cache, tmp_path)
    assert list(res) == ["Set5", "Set14"]
    _check_table(res, scale, protocol)


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["standard", "matlab"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_table_bsd100(scale, protocol, lr_cache, tmp_path):
    _check_table(_run_table(["BSD100"], scale, protocol, lr_cache, tmp_path), scale, protocol)


# ----------------------------------------------------------------------------------------------
# small user folders


@pytest.fixture
def folder(tmp_path):
    """A user folder: RGB PNG, gray PNG, RGBA PNG, JPEG, a non-image file that is ignored."""
    rng = np.random.default_rng(0)
    d = tmp_path / "MySet"
    d.mkdir()
    base = np.clip(np.cumsum(rng.normal(0, 12, (50, 47, 3)), axis=1) + 128, 0, 255).astype(np.uint8)
    Image.fromarray(base).save(d / "a.png")
    Image.fromarray(base[..., 1]).save(d / "b_gray.png")
    Image.fromarray(np.dstack([base, np.full(base.shape[:2], 200, np.uint8)])).save(d / "c_rgba.png")
    Image.fromarray(base[:40, :45]).save(d / "d.jpg", quality=95)
    (d / "notes.txt").write_text("not an image")
    return d


def test_pairs_crop_lr_and_protocols(folder, tmp_path):
    std = {p.name: p for p in BenchmarkFolder(folder, 4, "standard", tmp_path / "c")}
    mat = {p.name: p for p in BenchmarkFolder(folder, 4, "matlab", tmp_path / "c")}
    assert sorted(std) == ["a.png", "b_gray.png", "c_rgba.png", "d.jpg"]
    a = std["a.png"]
    assert a.hr.shape == (48, 44, 3) and a.lr.shape == (12, 11, 3)  # cropped to a multiple of 4
    hr = np.asarray(Image.open(folder / "a.png"))[:48, :44]
    np.testing.assert_array_equal(a.hr, hr)
    want = np.clip(np.floor(imresize(hr / 255.0, 0.25) * 255 + 0.5), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(a.lr, want)
    np.testing.assert_array_equal(std["c_rgba.png"].hr, hr)  # alpha dropped
    # gray: replicated under the standard protocol, one channel under matlab, same LR values
    assert std["b_gray.png"].hr.shape == (48, 44, 3) and mat["b_gray.png"].hr.shape == (48, 44, 1)
    np.testing.assert_array_equal(std["b_gray.png"].lr[..., 2], mat["b_gray.png"].lr[..., 0])
    np.testing.assert_array_equal(std["a.png"].lr, mat["a.png"].lr)


def test_non_integer_scale_follows_liif(folder, tmp_path):
    pair = BenchmarkFolder(folder, 2.5, cache_dir=tmp_path / "c").load(folder / "a.png")
    # LR = floor(H / s), HR cropped to round(LR * s): 50 -> 20 -> 50, 47 -> 18 -> 45
    assert pair.lr.shape == (20, 18, 3) and pair.hr.shape == (50, 45, 3)
    np.testing.assert_array_equal(pair.lr, make_lr(crop_hr(pair.hr, 2.5), 2.5))
    res = evaluate(create_model("bicubic", 2.5), [folder], 2.5, cache_dir=tmp_path / "c", progress=False)
    r2 = evaluate(create_model("bicubic", 2), [folder], 2, cache_dir=tmp_path / "c", progress=False)
    r3 = evaluate(create_model("bicubic", 3), [folder], 3, cache_dir=tmp_path / "c", progress=False)
    assert r3["MySet"]["psnr"] < res["MySet"]["psnr"] < r2["MySet"]["psnr"]


def test_lr_cache_is_used_and_keyed_by_content(folder, tmp_path):
    cache = tmp_path / "c"
    bf = BenchmarkFolder(folder, 2, cache_dir=cache)
    first = bf.load(folder / "a.png")
    entries = list(cache.rglob("a.png.*.npy"))
    assert len(entries) == 1
    np.save(entries[0], np.zeros_like(first.lr))  # a (planted) cached LR is what gets used
    assert not BenchmarkFolder(folder, 2, cache_dir=cache).load(folder / "a.png").lr.any()
    Image.fromarray(first.hr[::-1].copy()).save(folder / "a.png")  # new content -> new entry
    again = BenchmarkFolder(folder, 2, cache_dir=cache).load(folder / "a.png")
    assert again.lr.any() and len(list(cache.rglob("a.png.*.npy"))) == 1


def test_json_format_save_images_and_no_overwrite(folder, tmp_path, capsys):
    out, imgs = tmp_path / "res.json", tmp_path / "sr"
    args = ["eval", "--model", "bicubic", "--scale", "2", "--data", str(folder), "--json", str(out),
            "--save-images", str(imgs), "--cache-dir", str(tmp_path / "c")]
    assert main(args) == 0
    printed = capsys.readouterr().out
    res = json.loads(out.read_text())
    assert res.pop("meta")["scale"] == 2  # the model description for `lightsr plot` (tests/test_pictures.py)
    assert list(res) == ["MySet"] and set(res["MySet"]) == {"psnr", "ssim", "images"}
    images = res["MySet"]["images"]
    assert sorted(images) == ["a.png", "b_gray.png", "c_rgba.png", "d.jpg"]
    assert all(set(v) == {"psnr", "ssim"} and isinstance(v["psnr"], float) for v in images.values())
    assert res["MySet"]["psnr"] == pytest.approx(np.mean([v["psnr"] for v in images.values()]), abs=1e-12)
    assert res["MySet"]["ssim"] == pytest.approx(np.mean([v["ssim"] for v in images.values()]), abs=1e-12)
    assert "MySet" in printed and f"{res['MySet']['psnr']:.4f}" in printed
    saved = sorted(p.name for p in (imgs / "MySet").iterdir())
    assert saved == ["a.png", "b_gray.png", "c_rgba.png", "d.png"]
    sr = np.asarray(Image.open(imgs / "MySet" / "a.png"))
    lr = BenchmarkFolder(folder, 2, cache_dir=tmp_path / "c").load(folder / "a.png").lr
    want = np.clip(np.round(imresize(lr / 255.0, 2.0) * 255), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(sr, want)
    # a second run refuses to replace the results, then --overwrite replaces them
    before = out.read_text()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "exists" in err
    assert main(args + ["--overwrite"]) == 0 and out.read_text() == before


def test_identical_image_gives_null_psnr_in_strict_json(tmp_path):
    """A model that returns the HR image exactly has infinite PSNR: the table says inf, the JSON null."""
    import torch

    from lightsr.evaluate import evaluate
    from lightsr.files import write_json

    folder = tmp_path / "Flat"
    folder.mkdir()
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(folder / "flat.png")
    # bicubic of a constant image is the same constant: MSE = 0
    model = __import__("lightsr").create_model("bicubic", scale=2)
    res = evaluate(model, [folder], 2, device=torch.device("cpu"), cache_dir=tmp_path / "c")
    assert res["Flat"]["psnr"] == float("inf")
    out = write_json(tmp_path / "r.json", res)
    assert "Infinity" not in out.read_text()
    assert json.loads(out.read_text())["Flat"]["images"]["flat.png"]["psnr"] is None


def _one_line_error(argv, capsys, *words):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("lightsr: error:"), err
    for w in words:
        assert w in err, err


def test_bad_input(tmp_path, capsys):
    ev = ["eval", "--model", "bicubic", "--scale", "2", "--cache-dir", str(tmp_path / "c"), "--data"]
    _one_line_error(ev + [str(tmp_path / "missing")], capsys, "not found", "missing")
    (tmp_path / "empty").mkdir()
    _one_line_error(ev + [str(tmp_path / "empty")], capsys, "no images", "empty")
    txt = tmp_path / "txt"
    txt.mkdir()
    (txt / "readme.txt").write_text("hello")
    _one_line_error(ev + [str(txt)], capsys, "no images")
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "x.png").write_text("this is text, not a PNG")
    _one_line_error(ev + [str(fake)], capsys, "x.png")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "ok.png")
    (corrupt / "y.png").write_bytes((tmp_path / "ok.png").read_bytes()[:2000])
    _one_line_error(ev + [str(corrupt)], capsys, "y.png")
    _one_line_error(ev + [str(tmp_path / "ok.png")], capsys, "not a folder")
    _one_line_error(["eval", "--model", "bicubic", "--scale", "0.5", "--data", str(corrupt)], capsys, "scale")
    _one_line_error(["eval", "--model", "no_such_model", "--scale", "2", "--data", str(fake)], capsys, "unknown model")


def test_self_ensemble_against_explicit_transforms():
    x = torch.rand(1, 3, 5, 7, dtype=torch.float64)
    ramp = torch.arange(5 * 7, dtype=torch.float64)
    fn = lambda t: t * ramp[: t.shape[-2] * t.shape[-1]].view(t.shape[-2:]) + t.roll(1, -1)  # noqa: E731
    xs = x[0].numpy().transpose(1, 2, 0)
    want = np.zeros_like(xs)
    for k in range(4):
        for flip in (False, True):
            t = np.rot90(xs, k)
            t = t[:, ::-1] if flip else t
            y = fn(torch.from_numpy(t.transpose(2, 0, 1).copy())[None])[0].numpy().transpose(1, 2, 0)
            y = y[:, ::-1] if flip else y
            want += np.rot90(y, -k)
    np.testing.assert_allclose(ensemble_x8(fn, x)[0].numpy().transpose(1, 2, 0), want / 8, atol=1e-12)


class _Recorder(nn.Module):
    """A continuous model: bicubic, recording the scale it was called with."""

    continuous = True

    def __init__(self):
        super().__init__()
        self.scales = []
        self.inner = create_model("bicubic", 4)

    def forward(self, x, scale):
        self.scales.append(scale)
        return self.inner(x, scale=scale)


def test_continuous_models_get_the_scale_and_ensemble_runs(folder, tmp_path):
    m = _Recorder()
    res = evaluate(m, [folder], 3, self_ensemble=True, cache_dir=tmp_path / "c", progress=False)
    assert m.scales == [3] * 32  # 4 images x 8 transforms
    plain = evaluate(create_model("bicubic", 3), [folder], 3, cache_dir=tmp_path / "c", progress=False)
    # bicubic is flip/rotation-equivariant: the ensemble changes nothing beyond rounding
    assert res["MySet"]["psnr"] == pytest.approx(plain["MySet"]["psnr"], abs=1e-3)


def test_wrong_output_size_is_a_clear_error(folder, tmp_path):
    class Bad(nn.Module):
        def forward(self, x):
            return torch.zeros(1, 3, 7, 7)

    with pytest.raises(LightSRError, match="does not match"):
        evaluate(Bad(), [folder], 2, cache_dir=tmp_path / "c", progress=False)


def test_forward_override_and_rgb_variant(folder, tmp_path):
    ident = lambda x: torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")  # noqa: E731
    res = evaluate(None, [folder], 2, cache_dir=tmp_path / "c", progress=False, forward=ident)
    bic = evaluate(create_model("bicubic", 2), [folder], 2, cache_dir=tmp_path / "c", progress=False)
    assert res["MySet"]["psnr"] < bic["MySet"]["psnr"]
    rgb = evaluate(create_model("bicubic", 2), [folder], 2, cache_dir=tmp_path / "c", progress=False, y_only=False)
    assert math.isfinite(rgb["MySet"]["psnr"]) and rgb["MySet"]["psnr"] != bic["MySet"]["psnr"]


@pytest.mark.parametrize("scale", [2.5, 3.7])
def test_non_integer_scale_sizes_are_consistent(scale, tmp_path):
    """LR = floor(H / s) of the original HR and HR = round(LR * s), for every image (woman.png at x2.5
    once got an LR one row short: 344 -> 137 -> HR 342, then floor(342 / 2.5) = 136)."""
    import math

    from lightsr.data.benchmark import BenchmarkFolder
    from lightsr.imageio import read_image

    folder = need(BENCHMARK / "Set5")
    for pair in BenchmarkFolder(folder, scale, "standard", cache_dir=tmp_path):
        H, W = read_image(folder / pair.name).shape[:2]
        lh, lw = math.floor(H / scale + 1e-9), math.floor(W / scale + 1e-9)
        assert pair.lr.shape[:2] == (lh, lw)
        assert pair.hr.shape[:2] == (round(lh * scale), round(lw * scale))


def test_eval_refuses_random_weights_unless_asked(tmp_path):
    """A model with neither --weights nor shipped weights: exit 2 with one line; --random-weights runs."""
    from PIL import Image

    from lightsr.cli import main

    d = tmp_path / "set"
    d.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(d / "a.png")
    assert main(["eval", "--model", "imdn", "--scale", "2", "--data", str(d)]) == 2
    assert main(["eval", "--model", "imdn", "--scale", "2", "--data", str(d), "--random-weights"]) == 0
    assert main(["eval", "--model", "bicubic", "--scale", "2", "--data", str(d)]) == 0  # no parameters
