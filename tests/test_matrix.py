"""Every registered model in every mode users run it, generated from the registry (a new model is
covered without editing this file):

* built at every supported scale (a continuous model at x2.5 and at (2, 3));
* through :class:`lightsr.inference.Runner` under ``torch.inference_mode``, in fp32 and in ``auto``
  (bf16 + channels_last where the CPU has native bf16; forced on here so every CPU tests that path),
  on a tiny crop of the shipped sample photo;
* through ``lightsr eval --random-weights`` and ``lightsr upscale --weights ... --tile`` (tiling
  asserted: more than one tile ran);
* one training step and one validation through the training engine;
* ONNX export (dynamic height and width, checked under onnxruntime at two other sizes) for the
  convolutional family; window transformers and state-space models export at a fixed size only,
  which takes 20-200 s each here, so tests/test_export.py covers one of each.

The whole file runs in about two minutes on 2 cores: images of a few dozen pixels, one scale for the
command-line and training columns. Checked to fail by re-introducing the two bugs it was written
for, one at a time: HIIF-L's feature cache under ``inference_mode`` (every ``*_hiif`` / ``hiif_l_*``
model fails) and ``Module.to(memory_format=channels_last)`` on ArbSR's 5-D weights (every ``arbsr``
model fails).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import need_module
from lightsr.checkpoint import save_weights
from lightsr.cli import main
from lightsr.inference import Runner
from lightsr.models import create_model, get_entry, list_models
from lightsr.train import TrainConfig, Trainer

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "lightsr" / "assets" / "sample.png"
MODELS = [n for n in list_models() if n != "bicubic"]
CONTINUOUS_SCALES = (2.5, (2.0, 3.0))


def _scales(name: str) -> list:
    entry = get_entry(name)
    return list(CONTINUOUS_SCALES) if entry.scales is None else [int(s) for s in entry.scales]


def _cli_scale(name: str) -> float:
    return 2.5 if get_entry(name).scales is None else 4


def _crop(h: int, w: int, top: int = 40, left: int = 60) -> np.ndarray:
    return np.asarray(Image.open(SAMPLE).convert("RGB"))[top:top + h, left:left + w]


@pytest.fixture(scope="module")
def lr_image() -> torch.Tensor:
    return torch.from_numpy(_crop(13, 17).copy()).permute(2, 0, 1)[None].float() / 255


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Five small HR images (the trainer holds one out for validation: at most a fifth)."""
    d = tmp_path_factory.mktemp("hr")
    for i in range(5):
        Image.fromarray(_crop(40, 44, top=10 + 25 * i, left=20 + 20 * i)).save(d / f"{i}.png")
    return d


def _out_size(h: int, w: int, scale) -> tuple[int, int]:
    sh, sw = (scale, scale) if not isinstance(scale, tuple) else scale
    return round(h * sh), round(w * sw)


@pytest.mark.parametrize("name", MODELS)
def test_runner_fp32_and_auto_under_inference_mode(name, lr_image, monkeypatch):
    monkeypatch.setenv("LIGHTSR_NATIVE_BF16", "1")  # the auto path as on a CPU with native bf16
    for scale in _scales(name):
        torch.manual_seed(0)
        model = create_model(name, scale=scale if isinstance(scale, int) else None)
        run_scale = None if isinstance(scale, int) else scale
        with torch.inference_mode():
            y32 = Runner(model, "cpu", "fp32")(lr_image, run_scale)
            runner = Runner(model, "cpu", "auto")
            yauto = runner(lr_image, run_scale)
        assert tuple(y32.shape[-2:]) == _out_size(13, 17, scale), (name, scale)
        assert y32.shape == yauto.shape and torch.isfinite(y32).all() and torch.isfinite(yauto).all()
        has_conv = any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
        assert runner.channels_last == has_conv
        # auto = bf16 autocast where the registry allows it: close to fp32 relative to the output's spread
        spread = float(y32.std()) + 1e-3
        tol = 0.15 if runner.precision == "bf16" else 1e-4
        assert float((yauto - y32).abs().mean()) <= tol * spread, (name, scale, runner.precision)


@pytest.mark.parametrize("name", MODELS)
def test_cli_eval_and_tiled_upscale(name, folder, tmp_path, capsys):
    scale = _cli_scale(name)
    rc = main(["eval", "--model", name, "--scale", str(scale), "--random-weights", "--data", str(folder),
               "--precision", "auto", "--cache-dir", str(tmp_path / "cache")])
    assert rc == 0, capsys.readouterr().err
    torch.manual_seed(0)
    weights = save_weights(create_model(name, scale=None if scale == 2.5 else scale), tmp_path / "w.safetensors")
    src = tmp_path / "in.png"
    Image.fromarray(_crop(21, 26)).save(src)
    # tiles line up with the output grid at integer scales only (a fractional scale runs whole images)
    scale = 3 if scale == 2.5 else scale
    # the scale option each kind takes: native scale (discrete) or any scale (continuous)
    args = ["upscale", str(src), "-o", str(tmp_path / "out"), "--model", name, "--weights", str(weights),
            "--tile", "12", "--tile-pad", "4", "--scale", str(scale), "-q"]
    calls = []
    from lightsr import backends, inference

    def counting(real):  # counts the tiles the upscaler runs, on whichever backend auto picked
        def call(self, x, scale=None):
            calls.append(tuple(x.shape))
            return real(self, x, scale)
        return call
    with pytest.MonkeyPatch.context() as mp:
        for cls in (inference.Runner, backends.OpenVINORunner):
            mp.setattr(cls, "__call__", counting(cls.__call__))
        rc = main(args)
    assert rc == 0, capsys.readouterr().err
    assert len(calls) > 1, f"{name}: the image was not tiled"
    out = Image.open(tmp_path / "out" / "in.png")
    assert out.size == (round(26 * scale), round(21 * scale))


@pytest.mark.parametrize("name", MODELS)
def test_one_training_step_and_validation(name, folder, tmp_path):
    entry = get_entry(name)
    continuous = entry.scales is None
    cfg = TrainConfig(model=name, scale=2.5 if continuous else 2, train_dirs=[str(folder)], val_dir=None,
                      holdout=1, out=str(tmp_path / "run"), lr_patch=8, batch_size=2, iters=1, lr=1e-4,
                      precision="auto", device="cpu", progress=False, log_every=1, val_every=1,
                      save_every=0, cache_dir=None, seed=0, scale_min=1.5, scale_max=3.0)
    result = Trainer(cfg).fit()
    assert result["step"] == 1
    run = Path(cfg.out)
    assert (run / "final.safetensors").is_file()
    log = (run / "log.csv").read_text().splitlines()
    header, row = log[0].split(","), log[-1].split(",")
    val = float(row[header.index("val_psnr_y")])
    assert math.isfinite(val), f"{name}: validation PSNR {val}"


@pytest.mark.parametrize("name", [n for n in MODELS if get_entry(n).family == "cnn"])
def test_onnx_export_dynamic_sizes(name, tmp_path):
    need_module("onnxruntime")
    from lightsr.export import export_onnx

    torch.manual_seed(0)
    report = export_onnx(create_model(name, scale=2).eval(), tmp_path / f"{name}.onnx")
    assert report["fixed_size"] is None and report["max_abs_error"] < 1e-3
