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
    import lightsr.models.resolve as front

    def no_model(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(front, "resolve", no_model)
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


# ------------------------------------------------------------------ 6. feedback: tiles on a terminal, a summary
def _picture(tmp_path: Path, h: int = 40, w: int = 44) -> Path:
    path = tmp_path / "in" / "a.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def test_tile_progress_callback_is_called_once_per_tile():
    up = lightsr.load(scale=4, precision="fp32", tile=16)  # the default model, shipped weights
    calls = []
    up.on_tile = lambda done, total: calls.append((done, total))
    up(RNG.integers(0, 256, (40, 44, 3), dtype=np.uint8))  # 3 x 3 tiles of 16 px
    assert calls == [(k, 9) for k in range(10)]  # (0, 9) at the start, then once per tile
    calls.clear()
    up.tile = None
    up(RNG.integers(0, 256, (20, 20, 3), dtype=np.uint8))  # the whole image: one model call
    assert calls == [(0, 1), (1, 1)]


class _Terminal:
    """A stderr that says it is a terminal (and one that says it is not: a log file or a pipe)."""

    def __init__(self, tty: bool):
        self.tty, self.text = tty, ""

    def write(self, s):
        self.text += s
        return len(s)

    def flush(self):
        pass

    def isatty(self):
        return self.tty


@pytest.mark.parametrize("tty", [True, False])
def test_tile_progress_only_on_a_terminal(tmp_path, monkeypatch, tty):
    import sys

    src = _picture(tmp_path)
    err = _Terminal(tty)
    monkeypatch.setattr(sys, "stderr", err)
    rc = main(["upscale", str(src), "-o", str(tmp_path / "o") + "/", "--tile", "16", "--precision", "fp32"])
    assert rc == 0 and (tmp_path / "o" / "a.png").is_file()
    if tty:
        assert "\r\x1b[Klightsr: tile 0/9" in err.text and "tile 8/9" in err.text
        assert err.text.split("lightsr: upscaled")[0].endswith("\r\x1b[K")  # the tile line is cleared first
    else:  # a log or a pipe: no carriage returns, no tile lines, just the summary
        assert "\r" not in err.text and "tile 0/" not in err.text
        assert err.text.count("\n") == 1 and "upscaled 1 image" in err.text
    err.text = ""
    rc = main(["upscale", str(src), "-o", str(tmp_path / "q") + "/", "--tile", "16", "-q"])
    assert rc == 0 and "\r" not in err.text and "tile 0/" not in err.text  # -q: none on a terminal either


def test_summary_names_output_model_scale_and_precision(tmp_path, capsys):
    src = _picture(tmp_path)
    out = tmp_path / "out" / "big.png"
    rc, err = _upscale(capsys, src, "-o", out, "--precision", "fp32")
    assert rc == 0
    from lightsr.models.resolve import default_model

    assert f"upscaled 1 image to {out} ({default_model(4)} x4, fp32)" in err
    rc, err = _upscale(capsys, src.parent, "-o", tmp_path / "o2", "--model", "rdb_esa", "--scale", "2",
                       "--outscale", "1.5", "--precision", "fp32")
    assert rc == 0 and f"to {tmp_path / 'o2'}" in err and "(rdb_esa x2 then bicubic to x1.5, fp32)" in err


# ------------------------------------------------------------------ 7. defaults shared between commands
def test_eval_without_model_uses_upscales_default(tmp_path, capsys, monkeypatch):
    import lightsr.models.resolve as front

    monkeypatch.setattr(front, "DEFAULT_MODELS", ("rdb_esa", "rlfn_s"))  # one constant decides both
    assert lightsr.load(precision="fp32").descriptor.model == "rdb_esa"
    _pictures(tmp_path / "set", ("a.png",))
    Image.fromarray(RNG.integers(0, 256, (24, 28, 3), dtype=np.uint8)).save(tmp_path / "set" / "a.png")
    rc = main(["eval", "--data", str(tmp_path / "set"), "--cache-dir", str(tmp_path / "cache"),
               "--json", str(tmp_path / "r.json")])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "rdb_esa_x4" in cap.err and " x4 " in cap.out  # the default model, at the default scale
    import json

    assert json.loads((tmp_path / "r.json").read_text())["meta"]["scale"] == 4


def test_eval_named_model_defaults_to_x4_and_reads_a_checkpoints_scale(tmp_path, capsys, monkeypatch):
    """Without --scale, eval runs a named model at upscale's default x4, and a named model with a
    checkpoint at the checkpoint's scale (the front door reads it once)."""
    import lightsr.evaluate as evaluate

    seen = []
    monkeypatch.setattr(evaluate, "evaluate", lambda net, data, scale, **kw: seen.append((net.model, scale)) or {})
    data = tmp_path / "set"
    data.mkdir()
    Image.fromarray(RNG.integers(0, 256, (24, 28, 3), dtype=np.uint8)).save(data / "a.png")
    assert main(["eval", "--model", "bicubic", "--data", str(data)]) == 0 and seen[-1] == ("bicubic", 4)
    assert main(["eval", "--model", "imdn", "--weights", str(need(REFERENCE / "imdn_x2.pth")), "--data", str(data)]) == 0
    assert seen[-1] == ("imdn", 2)  # as upscale: the scale comes from the file


def _help(command: str, dest: str) -> str:
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    return next(a for a in sub._actions if a.dest == dest).help


def test_scale_help_tells_the_truth_about_multi_head_checkpoints(tmp_path, capsys):
    for command in ("upscale", "eval", "export"):
        text = _help(command, "scale")
        assert "default: " in text and "else 4" in text and "CARN-M" in text, (command, text)
    carn = need(REFERENCE / "carn_m.pth")  # the file that needs --scale, and says so in one line
    rc, err = _upscale(capsys, _picture(tmp_path), "-o", tmp_path / "o", "--weights", carn)
    assert rc == 2 and err.count("\n") == 1 and "pass --scale" in err


def test_profile_measures_what_upscale_runs_by_default():
    args = build_parser().parse_args(["profile", "--model", "rlfn_s", "--scale", "4"])
    assert args.precision == "auto" and "default auto" in _help("profile", "precision")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "lightsr profile --model rlfn_s --scale 4 --precision auto" not in readme  # auto needs no flag
    assert "default auto" in readme and "`--precision auto` as `upscale` runs" in readme


# ------------------------------------------------------------------ 5. messages
@pytest.mark.parametrize("command,typo,flag", [
    (["upscale", "a.png", "-o", "o/"], ["--tiel", "256"], "--tile"),
    (["upscale", "a.png", "-o", "o/"], ["--outsacle=3"], "--outscale"),
    (["eval", "--data", "d"], ["--wieghts", "w.pth"], "--weights"),
    (["profile", "--model", "rlfn_s", "--scale", "4"], ["--no-latnecy"], "--no-latency"),
])
def test_unknown_flag_suggests_the_close_one(capsys, command, typo, flag):
    with pytest.raises(SystemExit) as e:
        main(command + typo)
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"unrecognized arguments: {' '.join(typo)}" in err
    assert f"did you mean {flag}?" in err and f"lightsr {command[0]}" in err  # the command's usage line


def test_inputs_split_around_options_say_so(capsys):
    with pytest.raises(SystemExit):
        main(["upscale", "a.png", "-o", "o/", "b.png"])
    assert "give all the inputs together" in capsys.readouterr().err


def test_fractional_scale_on_a_fixed_scale_model_names_outscale(tmp_path, capsys):
    rc, err = _upscale(capsys, _picture(tmp_path), "-o", tmp_path / "o", "--model", "rdb_esa", "--scale", "1.5")
    assert rc == 2 and err.count("\n") == 1 and "--outscale 1.5" in err
    with pytest.raises(LightSRError, match="--outscale"):
        lightsr.load("rdb_esa", scale=1.5)


# ------------------------------------------------------------------ 9. docs that drift
def test_list_models_details_show_options_and_paper_titles(capsys):
    from lightsr.models import list_models

    assert main(["list-models", "--details"]) == 0
    out = capsys.readouterr().out
    assert "seed" not in out.lower()  # the project's document numbers are not paper names
    assert "HASN: Hybrid Attention Separable Network for Efficient Image Super-resolution" in out
    assert "AnySR: Realizing Image Super-Resolution as Any-Scale, Any-Resource" in out
    assert out.count("options: ") == len(list_models())
    hasn = out[out.index("\nhasn "):].split("options: ", 1)[1].splitlines()[0]
    assert "channels=52" in hasn and "block='hasb'" in hasn and "scale" not in hasn
    assert "channels=64, groups=4" in out  # carn_m


def test_info_claims_the_bf16_cost_only_where_it_was_measured(tmp_path, capsys):
    from safetensors.torch import save_file

    model = lightsr.create_model("rlfn_s", scale=2)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "mine.safetensors"))
    assert main(["info", str(tmp_path / "mine.safetensors")]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("precision:"))
    assert "0.02 dB" not in line and "not measured" in line  # an own checkpoint: nothing was measured
    ref = need(REFERENCE / "imdn_x4.pth")
    assert main(["info", str(ref)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("precision:"))
    assert "measured on these weights" in line and "-0.0071 / -0.0051 dB" in line  # results/fast_path.md
    import hashlib
    import json

    sd = torch.load(ref, map_location="cpu", weights_only=True)  # as lightsr.hub converts a published file
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "converted.safetensors"),
              metadata={"sha256": json.dumps(hashlib.sha256(ref.read_bytes()).hexdigest())})
    assert main(["info", str(tmp_path / "converted.safetensors")]) == 0
    assert "-0.0071 / -0.0051 dB" in capsys.readouterr().out


def test_numpy_input_is_rgb_as_the_readme_says():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "A numpy image is **RGB**, HWC" in readme and "uint8, uint16 or float in [0, 1]" in readme
    up = lightsr.load(scale=2, precision="fp32")
    red = np.zeros((24, 24, 3), dtype=np.uint8)
    red[..., 0] = 220
    out = up(red)
    assert out.shape == (48, 48, 3) and out[..., 0].mean() > 150 > 60 > out[..., 1:].mean()
    assert up(red.astype(np.float32) / 255).dtype == np.float32
