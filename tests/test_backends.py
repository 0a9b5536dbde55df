"""Backends (lightsr.backends): auto's table is a measurement, OpenVINO gives fp32's result within the
recorded tolerance on real images, and every impossible request is one line."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import BENCHMARK, REFERENCE, ROOT, need, need_module
from lightsr.backends import OPENVINO_MEASURED, choose_backend, make_runner
from lightsr.cli import main
from lightsr.errors import LightSRError
from lightsr.models.resolve import resolve

RECORD = ROOT / "results" / "runtimes" / "runtimes.json"  # written by benchmarks/runtimes.py --out results/runtimes


def test_auto_table_names_only_measured_models():
    """Each entry of auto's table matches the committed benchmark record: OpenVINO faster than lightsr
    auto on that model, its PSNR within 0.02 dB of fp32 on Set5 and Set14."""
    record = {r["model"]: r for r in json.loads(RECORD.read_text())}
    for name, m in OPENVINO_MEASURED.items():
        assert name in record, f"{name} is in auto's table but not in {RECORD.name}"
        r = record[name]
        assert r["ratio"]["lightsr openvino"] == pytest.approx(m.ratio, abs=0.005) and m.ratio < 1.0, name
        assert r["psnr"] is not None, f"{name}: no PSNR measured"
        d = r["psnr"]["lightsr openvino"]
        assert (d["Set5"], d["Set14"]) == pytest.approx((m.dpsnr_set5, m.dpsnr_set14), abs=1e-4), name
        assert abs(m.dpsnr_set5) <= 0.02 and abs(m.dpsnr_set14) <= 0.02, name


def test_choice_rules():
    rlfn = resolve("rlfn_s", None, 4)
    assert choose_backend("torch", rlfn, "cpu", "auto") == "torch"
    assert choose_backend("auto", rlfn, "cpu", "fp32") == "torch"  # an explicit fp32 is exact PyTorch
    assert choose_backend("auto", rlfn, "cuda", "auto") == "torch"
    srno = resolve("srno_edsr", None, 2, pretrained=False)
    assert choose_backend("auto", srno, "cpu", "auto") == "torch"  # continuous: PyTorch
    for backend, desc, device, precision, msg in [
            ("onnx", rlfn, "cpu", "auto", "unknown backend"), ("openvino", rlfn, "cuda", "auto", "runs on the CPU"),
            ("openvino", srno, "cpu", "auto", "fixed-scale"), ("openvino", rlfn, "cpu", "fp16", "fp16")]:
        with pytest.raises(LightSRError, match=msg):
            choose_backend(backend, desc, device, precision)


def _y_psnr(a: np.ndarray, b: np.ndarray, shave: int) -> float:
    from lightsr.metrics import psnr_ssim

    return psnr_ssim(a, b, shave)[0]


@pytest.mark.parametrize("name", sorted(set(OPENVINO_MEASURED) | {"rlfn_s"}))
def test_openvino_matches_fp32_on_a_real_image(name):
    """On Set5's butterfly, OpenVINO (bf16 where native) scores within 0.05 dB of PyTorch fp32 against
    the HR image (the set means are in auto's table), for every model auto may run on it."""
    need_module("openvino")
    from lightsr.data.benchmark import BenchmarkFolder

    folder = BenchmarkFolder(need(BENCHMARK / "Set5"), 4, cache=False)
    pair = folder.load(next(p for p in folder.files if p.name == "butterfly.png"))
    x = torch.from_numpy(pair.lr).permute(2, 0, 1)[None].float() / 255
    ref = REFERENCE / f"{name}_x4.pth"  # the published checkpoint where lightsr ships none
    weights = str(need(ref)) if name not in ("rlfn_s",) else None
    scores = {}
    for backend, precision in (("torch", "fp32"), ("openvino", "auto")):
        runner = make_runner(resolve(name, weights, 4), "cpu", precision, backend=backend)
        assert runner.backend == backend
        y = runner(x).clamp(0, 1)[0].permute(1, 2, 0).mul(255).round().byte().numpy()
        scores[backend] = _y_psnr(y, pair.hr, 4)
    assert math.isfinite(scores["torch"]) and scores["torch"] > 25
    assert abs(scores["openvino"] - scores["torch"]) < 0.05, scores


def test_cli_upscale_on_openvino(tmp_path, capsys):
    need_module("openvino")
    from PIL import Image

    src = tmp_path / "in.png"
    Image.fromarray((np.random.default_rng(0).random((24, 30, 3)) * 255).astype(np.uint8)).save(src)
    out = tmp_path / "out.png"
    assert main(["upscale", str(src), "-o", str(out), "--model", "rlfn_s", "--backend", "openvino", "--quiet"]) == 0
    assert Image.open(out).size == (120, 96)
    err = capsys.readouterr().err
    assert "openvino" in err, err
    assert main(["upscale", str(src), "-o", str(tmp_path / "o2.png"), "--model", "rlfn_s", "--backend",
                 "openvino", "--device", "cuda"]) == 2


def test_missing_openvino_is_one_line(monkeypatch, tmp_path, capsys):
    import lightsr.backends as B

    monkeypatch.setattr(B, "openvino_available", lambda: False)
    with pytest.raises(LightSRError, match=r"pip install 'lightsr\[openvino\]'"):
        choose_backend("openvino", resolve("rlfn_s", None, 4), "cpu", "auto")
    # auto quietly stays on PyTorch when OpenVINO is absent, whatever the table says
    monkeypatch.setattr(B, "OPENVINO_MEASURED", {"rlfn_s": B.Measured(0.5, 0.0, 0.0)})
    assert choose_backend("auto", resolve("rlfn_s", None, 4), "cpu", "auto") == "torch"


def test_record_exists_with_the_benchmark_command():
    """results/runtimes.md names the command that produced the JSON auto's table comes from."""
    md = (ROOT / "results" / "runtimes.md").read_text()
    assert "benchmarks/runtimes.py" in md and RECORD.is_file()
    assert Path(ROOT / "benchmarks" / "runtimes.py").is_file()


def test_one_size_graph_is_refused_in_one_line():
    """A window model's ONNX graph follows the traced size only: OpenVINO is refused at build time
    (the probe at a second size), never run wrong."""
    need_module("openvino")
    from lightsr.models import create_model

    torch.manual_seed(0)
    small = create_model("swinir_c2d", 4, blocks=1, windows=[8, 4, 8]).eval()
    runner = make_runner(small, "cpu", "auto", backend="openvino")
    with pytest.raises(LightSRError, match="follows one input size only"):
        runner(torch.rand(1, 3, 16, 24))
