"""Rough edges a new user hits on the command line: resuming a folder, output names, one-line messages."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import lightsr
from lightsr.cli import build_parser, main
from lightsr.errors import LightSRError

from conftest import REFERENCE, need

IMDN4 = REFERENCE / "imdn_x4.pth"
RNG = np.random.default_rng(7)


def _upscale(capsys, *argv) -> tuple[int, str]:
    rc = main(["upscale", *map(str, argv), "-q"])
    return rc, capsys.readouterr().err


def _imdn() -> list:
    return ["--model", "imdn", "--weights", need(IMDN4)]


def _pictures(root: Path, names=("a.png", "b.png", "c.png")) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.fromarray(RNG.integers(0, 256, (6, 7, 3), dtype=np.uint8)).save(root / name)
    return root


# ------------------------------------------------------------------ 1. --skip-existing
def test_skip_existing_resumes_an_interrupted_folder(tmp_path, capsys):
    src, out = _pictures(tmp_path / "in"), tmp_path / "out"
    rc, _ = _upscale(capsys, src, "-o", out, *_imdn())
    assert rc == 0
    stamp = (out / "a.png").stat().st_mtime_ns
    (out / "c.png").unlink()  # never written
    data = (out / "b.png").read_bytes()
    (out / "b.png").write_bytes(data[: len(data) // 2])  # cut off: not a complete image

    rc, err = _upscale(capsys, src, "-o", out, *_imdn(), "--skip-existing")
    assert rc == 1  # the incomplete one is a failure, with a line saying what to do
    assert "b.png" in err and "not a complete image" in err and "--overwrite" in err
    assert "upscaled 1 image" in err and "1 skipped" in err and "1 failed" in err
    assert (out / "a.png").stat().st_mtime_ns == stamp and Image.open(out / "c.png").size == (28, 24)
    assert (out / "b.png").read_bytes() == data[: len(data) // 2]  # left alone without --overwrite

    (out / "b.png").unlink()
    rc, err = _upscale(capsys, src, "-o", out, *_imdn(), "--skip-existing")
    assert rc == 0 and "upscaled 1 image" in err and "2 skipped" in err and "failed" not in err

    # the default stays "never overwrite", and the message names both ways out
    rc, err = _upscale(capsys, src / "a.png", "-o", out, *_imdn())
    assert rc == 1 and "--overwrite" in err and "--skip-existing" in err
    assert (out / "a.png").stat().st_mtime_ns == stamp


def test_skip_existing_and_overwrite_exclude_each_other(tmp_path, capsys):
    src = _pictures(tmp_path / "in", ("a.png",))
    with pytest.raises(SystemExit) as e:
        main(["upscale", str(src), "-o", str(tmp_path / "o"), "--skip-existing", "--overwrite"])
    assert e.value.code == 2 and "not allowed with" in capsys.readouterr().err


# ------------------------------------------------------------------ 2. a trailing slash is a folder
def test_trailing_separator_means_a_folder(tmp_path, capsys):
    src = _pictures(tmp_path / "in", ("a.png",))
    rc, err = _upscale(capsys, src / "a.png", "-o", str(tmp_path / "run.v2") + "/", *_imdn())
    assert rc == 0, err
    assert (tmp_path / "run.v2" / "a.png").is_file()
    rc, err = _upscale(capsys, src / "a.png", "-o", str(tmp_path / "x.png") + "/", *_imdn())
    assert rc == 0 and (tmp_path / "x.png" / "a.png").is_file()


# ------------------------------------------------------------------ 3. one-line messages
def test_info_on_an_image_says_it_is_not_a_checkpoint(tmp_path, capsys):
    src = _pictures(tmp_path, ("photo.png",))
    rc = main(["info", str(src / "photo.png")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "photo.png is not a checkpoint" in err and "image" in err and "eights only" not in err


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has an MPS device")
def test_unavailable_device_lists_the_devices(tmp_path, capsys):
    src = _pictures(tmp_path / "in", ("a.png",))
    rc, err = _upscale(capsys, src / "a.png", "-o", tmp_path / "o", *_imdn(), "--device", "mps")
    assert rc == 2 and err.count("\n") == 1 and "internal error" not in err
    assert "mps" in err and "cpu" in err
    with pytest.raises(LightSRError, match="cpu"):
        lightsr.load(device="mps")


@pytest.mark.parametrize("bad", ["-2", "0", "nan", "inf"])
def test_bad_outscale_is_refused_before_the_model_loads(tmp_path, capsys, monkeypatch, bad):
    import lightsr.models.loading as loading

    def no_model(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(loading, "resolve", no_model)
    src = _pictures(tmp_path / "in", ("a.png",))
    rc, err = _upscale(capsys, src / "a.png", "-o", tmp_path / "o", *_imdn(), f"--outscale={bad}")
    assert rc == 2 and err.count("\n") == 1 and "--outscale" in err


def test_export_under_a_file_says_so(tmp_path, capsys):
    (tmp_path / "afile.txt").write_text("x")
    rc = main(["export", "-o", str(tmp_path / "afile.txt" / "m.onnx"), "--no-check"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "is a file, not a folder" in err and "FileExistsError" not in err


def test_load_with_a_bad_scale_is_one_line():
    with pytest.raises(LightSRError) as e:
        lightsr.load(scale="abc")
    assert "\n" not in str(e.value) and "abc" in str(e.value)


# ------------------------------------------------------------------ 4. train --help lists every recipe
def test_train_help_lists_every_recipe():
    from lightsr.train.recipes import RECIPES

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    recipe = next(a for a in train._actions if a.dest == "recipe")
    listed = recipe.help.split(":", 1)[1].replace(" ", "").split(",")
    assert listed == list(RECIPES)


# ------------------------------------------------------------------ 5. GIF in, PNG out: said once
def test_gif_input_written_as_png_is_said_once(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.gif", "b.gif"):
        Image.fromarray(RNG.integers(0, 256, (6, 7, 3), dtype=np.uint8)).save(src / name)
    rc, err = _upscale(capsys, src, "-o", tmp_path / "o", *_imdn())
    assert rc == 0 and (tmp_path / "o" / "a.png").is_file() and (tmp_path / "o" / "b.png").is_file()
    notes = [line for line in err.splitlines() if "GIF" in line]
    assert len(notes) == 1 and "PNG" in notes[0] and "2" in notes[0]
    rc, err = _upscale(capsys, src, "-o", tmp_path / "o2", *_imdn(), "--ext", "jpg")
    assert rc == 0 and "GIF" not in err  # the user chose the format
