"""The fast path (lightsr.precision, lightsr.inference): the precision and memory format that run are
read inside the model with hooks, never inferred from outputs."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import lightsr
from lightsr import precision as P
from lightsr.errors import LightSRError
from lightsr.inference import Runner
from lightsr.models import build_model, create_model

from conftest import BENCHMARK, REFERENCE, ROOT, need


def _probe(model: nn.Module) -> list:
    """(output dtype, input channels_last?) of the first convolution, per call."""
    seen = []
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    conv.register_forward_hook(lambda m, i, o: seen.append(
        (o.dtype, i[0].is_contiguous(memory_format=torch.channels_last))))
    return seen


def test_auto_follows_native_bf16(monkeypatch):
    """Forcing the detection off gives fp32; on gives bf16 (and channels_last either way on CPU).
    Checked to fail by making ``resolve`` ignore ``native_bf16``."""
    x = torch.rand(1, 3, 20, 20)
    monkeypatch.setenv("LIGHTSR_NATIVE_BF16", "0")
    m = create_model("rlfn_s", scale=2)
    seen = _probe(m)
    r = Runner(m, "cpu", "auto")
    assert r.precision == "fp32"
    r(x)
    assert seen[-1] == (torch.float32, True)
    monkeypatch.setenv("LIGHTSR_NATIVE_BF16", "1")
    m = create_model("rlfn_s", scale=2)
    seen = _probe(m)
    r = Runner(m, "cpu", "auto")
    assert r.precision == "bf16"
    y = r(x)
    assert seen[-1] == (torch.bfloat16, True)
    assert y.dtype == torch.float32


def test_registry_verdict_keeps_fp32(monkeypatch):
    """A model whose registry entry says bf16 costs too much runs fp32 under auto."""
    from dataclasses import replace

    from lightsr.models import registry

    monkeypatch.setenv("LIGHTSR_NATIVE_BF16", "1")
    monkeypatch.setitem(registry._REGISTRY, "rlfn_s", replace(registry.get_entry("rlfn_s"), bf16=False))
    from lightsr.models.resolve import resolve

    desc = resolve("rlfn_s", scale=2, pretrained=False)  # the descriptor carries the registry's verdict
    assert not desc.bf16 and Runner(desc, "cpu", "auto").precision == "fp32"
    assert Runner(desc, "cpu", "bf16").precision == "bf16"  # asked for: honoured


def test_detection_reads_the_cpu(monkeypatch):
    monkeypatch.delenv("LIGHTSR_NATIVE_BF16", raising=False)
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    if "avx512_bf16" in flags or "amx_bf16" in flags:
        assert P.native_bf16("cpu")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert not P.native_bf16("cpu")


@pytest.mark.parametrize("bad,msg", [("fp16", "CUDA"), ("int8", "unknown precision")])
def test_bad_precision(bad, msg):
    with pytest.raises(LightSRError, match=msg):
        P.choose(bad, "cpu")


def test_bad_precision_cli_one_line(tmp_path):
    img = tmp_path / "a.png"
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img)
    r = subprocess.run([sys.executable, "-m", "lightsr", "upscale", str(img), "-o", str(tmp_path / "o"),
                        "--precision", "fp16", "--device", "cpu"], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "fp16 needs a CUDA GPU" in r.stderr


def test_compile_failure_falls_back(monkeypatch, capsys):
    """No working compiler: one line, then eager with the same output."""
    def broken(*a, **k):
        def run(*a, **k):
            raise RuntimeError("no C++ compiler found")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    torch.manual_seed(0)
    m = create_model("rlfn_s", scale=2)
    x = torch.rand(1, 3, 16, 16)
    want = Runner(m, "cpu", "fp32")(x)
    r = Runner(m, "cpu", "fp32", compile=True)
    got = r(x)
    err = capsys.readouterr().err
    assert "torch.compile unavailable" in err and "running eagerly" in err and err.count("\n") == 1
    assert torch.equal(got, want)
    r(x)  # no second note
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("name,ckpt", [("imdn", "imdn_x4.pth"), ("rlfn_s", "rlfn_s_x4.pth"),
                                       ("carn_m", "carn_m.pth")])
def test_fp32_fast_path_equals_plain(name, ckpt):
    """channels_last fp32 on a real checkpoint and a real image: within 1e-4 of the plain path.
    Checked to fail by running the Runner in bf16."""
    m = build_model(name, 4, str(need(REFERENCE / ckpt)))
    from lightsr.imageio import read_image

    hr = read_image(need(BENCHMARK / "Set5" / "butterfly.png"))[:96, :96, :3]
    x = torch.from_numpy(np.ascontiguousarray(hr.transpose(2, 0, 1))).float()[None] / 255
    with torch.no_grad():
        plain = m(x)
    seen = _probe(m)
    fast = Runner(m, "cpu", "fp32")(x)
    assert seen[-1] == (torch.float32, True)
    assert (fast - plain).abs().max().item() < 1e-4


def test_bf16_costs_at_most_002_db_imdn(monkeypatch):
    """IMDN x4 on Set5 through eval's pipeline: bf16 within 0.02 dB of fp32 (the auto criterion)."""
    from lightsr.evaluate import evaluate

    m = build_model("imdn", 4, str(need(REFERENCE / "imdn_x4.pth")))
    seen = _probe(m)
    fp32 = evaluate(m, [need(BENCHMARK / "Set5")], 4, progress=False)["Set5"]["psnr"]
    assert seen[-1][0] == torch.float32
    bf16 = evaluate(m, [BENCHMARK / "Set5"], 4, progress=False, precision="bf16")["Set5"]["psnr"]
    assert seen[-1][0] == torch.bfloat16
    assert abs(fp32 - 32.2049) < 5e-4
    assert 0 < abs(bf16 - fp32) <= 0.02


def test_load_default_is_auto(monkeypatch):
    monkeypatch.setenv("LIGHTSR_NATIVE_BF16", "1")
    up = lightsr.load(device="cpu")
    assert up.precision == "bf16" and up.runner.channels_last
    monkeypatch.setenv("LIGHTSR_NATIVE_BF16", "0")
    assert lightsr.load(device="cpu").precision == "fp32"
    assert lightsr.load(device="cpu", precision="fp32").precision == "fp32"
    with pytest.raises(TypeError):  # precision= is the one spelling (no half=/bf16=)
        lightsr.load(device="cpu", bf16=True)


def test_training_runs_in_bf16_channels_last(tmp_path, monkeypatch):
    """The trainer's step runs the precision it reports (hook inside the model)."""
    from lightsr.train.engine import TrainConfig, Trainer

    monkeypatch.setenv("LIGHTSR_NATIVE_BF16", "1")
    from PIL import Image

    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):  # one is held out for validation
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(d / f"{i}.png")
    cfg = TrainConfig(model="rlfn_s", scale=2, train_dirs=[str(d)], holdout=1, lr_patch=8, batch_size=2, iters=2,
                      out=str(tmp_path / "run"), cache_dir=None, progress=False, val_every=0, save_every=0)
    t = Trainer(cfg)
    assert t.precision == "bf16" and t.channels_last
    seen = _probe(t.model)
    t.fit()
    assert seen[0] == (torch.bfloat16, True)  # training steps (validation runs fp32 afterwards)
    assert seen[-1][0] == torch.float32


def test_benchmark_smoke(tmp_path):
    """The prepared GPU check (benchmarks/gpu_check.sh -> fast_path.py) on a CPU: its tiny run writes
    the table and every mode ran."""
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    import json

    data = json.loads((tmp_path / "fast_path.json").read_text())
    row = data["latency"][0]
    assert all("sec" in row[m] for m in ("plain", "cl", "bf16", "auto")), row
    assert row["cl"]["max_abs_diff"] < 1e-4
    assert data["train"][0]["fast"] > 0
    assert "| rlfn_s |" in (tmp_path / "fast_path.md").read_text()


def test_profile_reports_the_precision_that_ran(monkeypatch):
    from lightsr.profile import profile_model

    monkeypatch.setenv("LIGHTSR_NATIVE_BF16", "1")
    m = create_model("rlfn_s", scale=2)
    seen = _probe(m)
    r = profile_model(m, 2, input_size=(16, 16), precision="auto", warmup=1, repeats=1)
    assert r["precision"] == "bf16" and r["latency_ms"] > 0
    assert (torch.bfloat16, True) in seen  # the timed copy carries the hook: bf16 in channels_last ran
    monkeypatch.setenv("LIGHTSR_NATIVE_BF16", "0")
    assert profile_model(m, 2, input_size=(16, 16), precision="auto", warmup=1, repeats=1)["precision"] == "fp32"


@pytest.mark.parametrize("native,dtype", [("1", torch.bfloat16), ("0", torch.float32)])
def test_upscale_and_load_default_to_auto_read_inside_the_model(tmp_path, monkeypatch, native, dtype):
    """Without --precision, `lightsr upscale` and `lightsr.load` run auto: bf16 when the CPU is taken
    to do bf16 natively (LIGHTSR_NATIVE_BF16=1), fp32 when not, whatever this CPU really does; read
    by a hook in the first convolution while the image runs. Broken on purpose (the default of
    --precision, or of load's precision, fp32) -> fails."""
    import inspect

    from PIL import Image

    from lightsr import api
    from lightsr.cli import main

    monkeypatch.setenv("LIGHTSR_NATIVE_BF16", native)
    assert inspect.signature(lightsr.load).parameters["precision"].default == "auto"
    ran = []
    real = api.load

    def spy(*a, **k):
        up = real(*a, **k)
        ran.append((up, _probe(up.model)))
        return up

    monkeypatch.setattr(api, "load", spy)
    img = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(img)
    assert main(["upscale", str(img), "-o", str(tmp_path / "o"), "--device", "cpu", "-q"]) == 0
    (up, seen), = ran
    assert up.precision == ("bf16" if native == "1" else "fp32") and seen and seen[-1] == (dtype, True)
    up = lightsr.load(device="cpu")
    seen = _probe(up.model)
    up(np.zeros((12, 12, 3), np.uint8))
    assert seen == [(dtype, True)]


@pytest.mark.parametrize("k,dtype", [(7, torch.float32), (5, torch.bfloat16), (3, torch.float32)])
def test_depthwise_weight_gradient_is_the_convolutions(k, dtype):
    """The compiled training path's depthwise gradients (weight as a reduction, input and bias) equal
    aten's convolution backward, in both layouts."""
    from lightsr.layers.conv import DepthwiseConv2d, _DepthwiseGrad

    torch.manual_seed(0)
    conv = DepthwiseConv2d(6, k).to(dtype)
    for cl in (False, True):
        x = torch.randn(2, 6, 11, 9, dtype=dtype)
        x = (x.contiguous(memory_format=torch.channels_last) if cl else x).requires_grad_()
        g = torch.randn(2, 6, 11, 9, dtype=dtype)
        ref = torch.autograd.grad(nn.Conv2d.forward(conv, x), (x, conv.weight, conv.bias), g)
        for taps in (True, False):  # compiled: a reduction per tap; eager: oneDNN's fp32 kernel
            out = _DepthwiseGrad.apply(x, conv.weight, conv.bias, conv.padding, taps)
            got = torch.autograd.grad(out, (x, conv.weight, conv.bias), g)
            tol = 1e-4 if dtype == torch.float32 else 2e-2
            for r, o in zip(ref, got):
                assert o.dtype == r.dtype and o.shape == r.shape
                assert ((o.float() - r.float()).norm() / r.float().norm()).item() < tol


def test_depthwise_bf16_eager_training_takes_the_fp32_weight_gradient():
    """Under bf16 autocast (eager training's fast path) a 5x5 depthwise convolution's backward is
    :class:`_DepthwiseGrad`'s (oneDNN's fp32 weight-gradient kernel, several times faster than its bf16
    one on CPU): the same output and the same gradients as nn.Conv2d's within bf16 rounding; 3x3,
    inference and fp32 stay nn.Conv2d's."""
    from lightsr.layers.conv import DepthwiseConv2d

    torch.manual_seed(0)
    x = torch.randn(4, 8, 24, 24).contiguous(memory_format=torch.channels_last).requires_grad_()
    g = torch.randn(4, 8, 24, 24)
    for k, ours in ((5, True), (3, False)):
        conv = DepthwiseConv2d(8, k)
        with torch.autocast("cpu", torch.bfloat16):
            y, ref = conv(x), nn.Conv2d.forward(conv, x)
        assert ("DepthwiseGrad" in type(y.grad_fn).__name__) == ours
        assert torch.equal(y, ref)
        for a, b in zip(torch.autograd.grad(y, (x, conv.weight, conv.bias), g),
                        torch.autograd.grad(ref, (x, conv.weight, conv.bias), g)):
            assert ((a - b).norm() / b.norm()).item() < 1e-2
    with torch.autocast("cpu", torch.bfloat16), torch.no_grad():
        assert DepthwiseConv2d(8, 5)(x).grad_fn is None
    assert "DepthwiseGrad" not in type(DepthwiseConv2d(8, 5)(x).grad_fn).__name__  # fp32 eager


def test_compiled_training_step_equals_eager(tmp_path):
    """``TrainConfig(compile=True)``: the compiled step (the depthwise weight gradient and ESA's
    up-sampling as matrices inside it) gives eager's gradients; a continuous model is refused in one line."""
    from lightsr.layers.conv import ESA, DepthwiseConv

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), DepthwiseConv(8, 7), ESA(4, 8), nn.Conv2d(8, 3, 1))
    x, y = torch.rand(2, 3, 19, 17), torch.rand(2, 3, 19, 17)

    def grads(f):
        net.zero_grad()
        (f(x) - y).abs().mean().backward()
        return [p.grad.clone() for p in net.parameters()]

    eager, compiled = grads(net), grads(torch.compile(net))
    for e, c in zip(eager, compiled):
        assert torch.allclose(e, c, rtol=1e-4, atol=1e-6)

    from lightsr.train.engine import TrainConfig, Trainer

    cfg = TrainConfig(model="liif_edsr", scale=2, train_dirs=[str(BENCHMARK / "Set5")], holdout=1,
                      iters=1, out=str(tmp_path / "run"), cache_dir=None, progress=False, compile=True)
    with pytest.raises(LightSRError, match="continuous-scale model"):
        Trainer(cfg)


@pytest.mark.parametrize("size_in,size_out", [((6, 6), (48, 48)), ((5, 7), (37, 53)), ((1, 3), (15, 16)),
                                              ((13, 13), (40, 40))])
def test_bilinear_matrices_are_interpolate(size_in, size_out):
    """ESA's up-sampling in a compiled training step, ``A_h x A_w^T`` (:func:`bilinear_matrix`), is
    ``F.interpolate(mode="bilinear", align_corners=False)``: values and gradients, integer and
    fractional ratios, a one-pixel axis."""
    import torch.nn.functional as F

    from lightsr.layers.conv import bilinear_matrix

    torch.manual_seed(0)
    x = torch.randn(2, 3, *size_in, requires_grad=True)
    g = torch.randn(2, 3, *size_out)
    ah, aw = bilinear_matrix(size_out[0], size_in[0]), bilinear_matrix(size_out[1], size_in[1])
    ours = ah @ x @ aw.T
    ref = F.interpolate(x, size=size_out, mode="bilinear", align_corners=False)
    assert torch.allclose(ours, ref, atol=1e-5)
    assert torch.allclose(torch.autograd.grad(ours, x, g)[0], torch.autograd.grad(ref, x, g)[0], atol=1e-4)
