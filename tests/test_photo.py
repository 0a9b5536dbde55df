"""Photos as users bring them (issue #26): the compression of an input file is read from the file
(JPEG quality from its quantization tables, lossy vs lossless WebP), the benchmark and the training
validation can score JPEG inputs, and the ``photo`` recipe starts from the shipped weights."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lightsr.data.benchmark import BenchmarkFolder
from lightsr.data.degradations import jpeg_u8
from lightsr.errors import LightSRError
from lightsr.imageio import read


def noise_image(h=40, w=56, c=3, seed=0):
    return (np.random.default_rng(seed).random((h, w, c)) * 255).astype(np.uint8)


@pytest.mark.parametrize("q", [10, 40, 75, 90, 95, 100])
def test_jpeg_quality_is_read_from_the_quantization_tables(tmp_path, q):
    p = tmp_path / "a.jpg"
    Image.fromarray(noise_image()).save(p, quality=q)
    im = read(p)
    assert (im.lossy, im.quality) == ("jpeg", q)


def test_gray_jpeg_quality(tmp_path):
    p = tmp_path / "g.jpg"
    Image.fromarray(noise_image(c=1)[:, :, 0]).save(p, quality=60)
    assert read(p).quality == 60


@pytest.mark.parametrize("name,kw,lossy", [
    ("y.webp", dict(quality=80), "webp"),
    ("l.webp", dict(lossless=True), None),
    ("p.png", {}, None),
    ("t.tif", {}, None),
])
def test_lossy_or_lossless(tmp_path, name, kw, lossy):
    p = tmp_path / name
    Image.fromarray(noise_image()).save(p, **kw)
    assert read(p).lossy == lossy and read(p).quality is None


@pytest.mark.parametrize("alpha_lossless,lossy", [(False, "webp"), (True, None)])
def test_webp_with_alpha_extended_container(tmp_path, alpha_lossless, lossy):
    p = tmp_path / "a.webp"
    Image.fromarray(noise_image(c=4)).save(p, **(dict(lossless=True) if alpha_lossless else dict(quality=70)))
    assert read(p).lossy == lossy


def test_jpeg_u8_round_trip_is_pillows_codec():
    a = noise_image()
    b = jpeg_u8(a, 50)
    assert b.shape == a.shape and b.dtype == np.uint8
    assert 5 < np.abs(b.astype(int) - a).mean() < 80  # changed, not destroyed
    assert np.array_equal(jpeg_u8(a, 50), b)  # deterministic
    g = jpeg_u8(a[:, :, :1], 50)
    assert g.shape == (40, 56, 1)


def test_benchmark_folder_jpeg_lr(tmp_path):
    for i in range(2):
        Image.fromarray(noise_image(64, 48, seed=i)).save(tmp_path / f"{i}.png")
    clean = list(BenchmarkFolder(tmp_path, 4, cache=False))
    q30 = list(BenchmarkFolder(tmp_path, 4, cache=False, jpeg=30))
    for c, j in zip(clean, q30):
        assert np.array_equal(c.hr, j.hr)
        assert np.array_equal(j.lr, jpeg_u8(c.lr, 30))
        assert not np.array_equal(c.lr, j.lr)
    with pytest.raises(LightSRError, match="JPEG quality"):
        BenchmarkFolder(tmp_path, 4, jpeg=0)


def test_evaluate_scores_jpeg_inputs_below_clean(set5):
    from lightsr.evaluate import evaluate
    from lightsr.models import build_model

    m = build_model("bicubic", 4)
    clean = evaluate(m, set5, 4, progress=False)["Set5"]["psnr"]
    q40 = evaluate(m, set5, 4, progress=False, jpeg=40)["Set5"]["psnr"]
    assert clean == pytest.approx(28.42, abs=0.02)  # data/README.md's bicubic figure
    assert q40 < clean - 0.5


def test_photo_recipe_starts_from_the_shipped_weights():
    from lightsr.models import get_entry
    from lightsr.train.recipes import get_recipe

    for s in (2, 4):
        cfg = get_recipe("photo", s)
        assert cfg.init == str(get_entry("rlfn_s").shipped_weights(s))
        assert (cfg.degradation, cfg.val_jpeg, cfg.model, cfg.scale) == ("photo_jpeg", 75, "rlfn_s", s)


def test_validation_on_jpeg_lr_is_recorded(tmp_path, monkeypatch):
    """A run with --val_jpeg validates on JPEG LR (lower than clean) and says so in best.safetensors."""
    from lightsr.checkpoint import read_metadata
    from lightsr.cli import main

    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(6):
        Image.fromarray(noise_image(96, 96, seed=i)).save(d / f"{i}.png")
    common = ["train", "--model", "rlfn_s", "--scale", "4", "--train_dir", str(d), "--holdout", "1",
              "--iters", "2", "--batch_size", "2", "--lr_patch", "12", "--val_every", "2", "--no_progress",
              "--precision", "fp32"]
    assert main(common + ["--out", str(tmp_path / "clean")]) == 0
    assert main(common + ["--out", str(tmp_path / "q20"), "--val_jpeg", "20"]) == 0
    a = read_metadata(tmp_path / "clean" / "best.safetensors")
    b = read_metadata(tmp_path / "q20" / "best.safetensors")
    assert "JPEG q20" in b["val"] and "JPEG" not in a["val"]
    assert float(b["val_psnr_y"]) != float(a["val_psnr_y"])


def test_cli_eval_jpeg(set5, capsys, tmp_path):
    from lightsr.cli import main

    js = tmp_path / "r.json"
    assert main(["eval", "--model", "bicubic", "--data", str(set5), "--jpeg", "40", "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "JPEG q40" in out
    import json

    r = json.loads(js.read_text())
    assert r["meta"]["lr_jpeg_quality"] == 40 and r["Set5"]["psnr"] < 28.0  # clean bicubic: 28.42
    assert main(["eval", "--model", "bicubic", "--data", str(set5), "--jpeg", "101"]) == 2
    assert "JPEG quality" in capsys.readouterr().err


# ---- choosing the weights per input ---------------------------------------------------------------


@pytest.fixture
def photo_weights(tmp_path, monkeypatch):
    """rlfn_s x4 with a stand-in photo file (the shipped weights with a shifted output bias, so the
    two are told apart by their outputs), registered in a copy of the registry."""
    import dataclasses
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from lightsr.models import registry

    src = registry.WEIGHTS_DIR / "rlfn_s_x4.safetensors"
    wdir = tmp_path / "weights"
    wdir.mkdir()
    shutil.copy(src, wdir / src.name)
    sd = load_file(src)
    bias = [k for k in sd if k.endswith("bias")][-1]  # the last conv before the pixel shuffle
    sd[bias] = sd[bias] + 0.05
    save_file(sd, wdir / "rlfn_s_photo_x4.safetensors", metadata={"model": "rlfn_s", "scale": "4"})
    monkeypatch.setattr(registry, "WEIGHTS_DIR", wdir)
    registry.list_models()  # discovery first: the copy below must hold every model
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry._REGISTRY["rlfn_s"] = dataclasses.replace(registry.get_entry("rlfn_s"),
                                                       photo={4: "rlfn_s_photo_x4.safetensors"})
    return wdir


def _inputs(folder):
    folder.mkdir()
    a = noise_image(24, 20, seed=5)
    Image.fromarray(a).save(folder / "clean.png")
    Image.fromarray(a).save(folder / "q75.jpg", quality=75)
    Image.fromarray(a).save(folder / "q98.jpg", quality=98)
    Image.fromarray(a).save(folder / "lossy.webp", quality=70)
    return folder


def _expected(kind, folder, name):
    from lightsr import load

    return load("rlfn_s", scale=4, kind=kind, precision="fp32")(read(folder / name).array)


@pytest.mark.parametrize("flag,photo_files", [
    ("auto", {"q75.jpg", "lossy.webp"}),
    ("clean", set()),
    ("photo", {"clean.png", "q75.jpg", "q98.jpg", "lossy.webp"}),
])
def test_upscale_picks_photo_weights_for_compressed_input(photo_weights, tmp_path, capsys, flag, photo_files):
    from lightsr.cli import main

    src = _inputs(tmp_path / "in")
    out = tmp_path / "out"
    assert main(["upscale", str(src), "-o", str(out), "--kind", flag, "--precision", "fp32", "--ext", "png",
                 "-q"]) == 0
    err = capsys.readouterr().err
    for name in ("clean.png", "q75.jpg", "q98.jpg", "lossy.webp"):
        got = read(out / (Path(name).stem + ".png")).array
        want = _expected("photo" if name in photo_files else "clean", src, name)
        assert np.array_equal(got, want), (flag, name)
    if flag == "auto":
        assert "photo weights for 2 compressed inputs, clean weights for 2" in err
    if flag == "photo":
        assert "photo weights" in err


def test_weights_flag_and_models_without_photo_weights_never_switch(photo_weights, tmp_path, capsys):
    from lightsr.cli import main

    src = _inputs(tmp_path / "in")
    w = photo_weights / "rlfn_s_x4.safetensors"
    assert main(["upscale", str(src / "q75.jpg"), "-o", str(tmp_path / "a.png"), "--weights", str(w),
                 "--precision", "fp32", "-q"]) == 0
    assert np.array_equal(read(tmp_path / "a.png").array, _expected("clean", src, "q75.jpg"))
    assert "photo" not in capsys.readouterr().err
    assert main(["upscale", str(src / "q75.jpg"), "-o", str(tmp_path / "b.png"), "--kind", "photo",
                 "--model", "rdb_esa", "--scale", "2", "-q"]) == 2
    assert "no photo weights" in capsys.readouterr().err


def test_api_kind(photo_weights, tmp_path):
    from lightsr import load

    src = _inputs(tmp_path / "in")
    a = read(src / "q75.jpg").array
    clean, photo = load(scale=4, precision="fp32"), load(scale=4, kind="photo", precision="fp32")
    assert (clean.kind, photo.kind) == ("clean", "photo")
    assert not np.array_equal(clean(a), photo(a))
    with pytest.raises(LightSRError, match="kind"):
        load(scale=4, kind="jpeg")
    with pytest.raises(LightSRError, match="photo weights"):
        load(weights=str(photo_weights / "rlfn_s_x4.safetensors"), kind="photo")


def test_kind_for_threshold():
    from lightsr.imageio import ImageData
    from lightsr.photo import CLEAN_JPEG_QUALITY, kind_for

    a = noise_image()
    assert kind_for(ImageData(a, "JPEG", lossy="jpeg", quality=CLEAN_JPEG_QUALITY - 1)) == "photo"
    assert kind_for(ImageData(a, "JPEG", lossy="jpeg", quality=CLEAN_JPEG_QUALITY)) == "clean"
    assert kind_for(ImageData(a, "JPEG", lossy="jpeg", quality=None)) == "photo"
    assert kind_for(ImageData(a, "WEBP", lossy="webp")) == "photo"
    assert kind_for(ImageData(a, "PNG")) == "clean"


def test_compare_on_jpeg_input_with_photo_weights(photo_weights, set5, tmp_path, capsys):
    """`lightsr compare --jpeg Q` scores models on the JPEG LR, and NAME:photo names the photo weights."""
    pytest.importorskip("matplotlib")
    from lightsr.cli import main

    img = set5 / "baby.png"
    args = ["compare", str(img), "--models", "bicubic", "rlfn_s", "rlfn_s:photo", "--scale", "4", "--box",
            "100,100,48,48"]
    assert main(args + ["-o", str(tmp_path / "clean.png")]) == 0
    clean = capsys.readouterr().out
    assert main(args + ["--jpeg", "40", "-o", str(tmp_path / "q40.png")]) == 0
    q40 = capsys.readouterr().out
    assert "rlfn_s (photo)" in q40 and "JPEG q40" in q40 and "JPEG" not in clean

    def db(out, label):
        return float(next(ln for ln in out.splitlines() if ln.startswith(label + " ")).split()[-4])

    assert db(q40, "bicubic") < db(clean, "bicubic") - 0.3
    assert db(q40, "rlfn_s (photo)") != db(q40, "rlfn_s")


def test_broken_jpeg_in_a_folder_is_one_line_and_the_rest_goes_on(photo_weights, tmp_path, capsys):
    """Item 5: a JPEG that fails to decode is one line; the folder's other files (one JPEG, one PNG) are
    upscaled with their weights."""
    from lightsr.cli import main

    src = _inputs(tmp_path / "in")
    data = (src / "q75.jpg").read_bytes()
    (src / "broken.jpg").write_bytes(data[: len(data) // 2])
    assert main(["upscale", str(src), "-o", str(tmp_path / "out"), "--precision", "fp32", "-q"]) == 1
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "broken.jpg" in ln]
    assert len(lines) == 1 and "cannot read image" in lines[0]
    assert "1 failed" in err and "upscaled 4 images" in err
    assert np.array_equal(read(tmp_path / "out" / "q75.jpg").array.shape, (96, 80, 3))
