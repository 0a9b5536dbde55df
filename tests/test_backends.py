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
from lightsr.models import get_entry
from lightsr.models.resolve import resolve


def test_auto_table_names_only_measured_models():
    """Each entry of auto's table matches the committed benchmark record: OpenVINO faster than lightsr
    auto on that model, its PSNR within 0.02 dB of fp32 on Set5 and Set14."""
    for name, m in OPENVINO_MEASURED.items():
        path = ROOT / m.record
        record = {r["model"]: r for r in json.loads(path.read_text())}
        assert name in record, f"{name} is in auto's table but not in {m.record}"
        r = record[name]
        assert r["ratio"]["lightsr openvino"] == pytest.approx(m.ratio, abs=0.005) and m.ratio < 1.0, name
        assert r["psnr"] is not None, f"{name}: no PSNR measured"
        d = r["psnr"]["lightsr openvino"]
        assert (d["Set5"], d["Set14"]) == pytest.approx((m.dpsnr_set5, m.dpsnr_set14), abs=1e-4), name
        assert abs(m.dpsnr_set5) <= 0.02 and abs(m.dpsnr_set14) <= 0.02, name
        if m.pays_from_mpx != (0.0, 0.0):  # a job-size threshold comes from benchmarks/backend_breakeven.py
            b = json.loads((ROOT / m.breakeven_record).read_text())
            assert b["model"] == name, m.breakeven_record
            got = (b["arms"]["openvino, cached"]["pays_from_mpx"], b["arms"]["openvino, empty cache"]["pays_from_mpx"])
            assert got == pytest.approx(m.pays_from_mpx, abs=0.01), (name, got)
            assert m.pays_from_mpx[0] <= m.pays_from_mpx[1], name  # the cache can only help


def test_job_size_counts_repeated_sizes_only():
    from lightsr.backends import job_mpx

    assert job_mpx([]) == 0
    assert job_mpx([(1000, 1000), (500, 400)]) == 0  # every size once: OpenVINO's dynamic graph only
    assert job_mpx([(1000, 1000), (500, 400), (1000, 1000)]) == pytest.approx(2.0)
    assert job_mpx([(500, 400)] * 5) == pytest.approx(1.0)


def test_auto_weighs_the_job_for_the_default_model(monkeypatch):
    """RLFN-S runs OpenVINO under auto only when the job repays its setup: the cached threshold when its
    conversion is in the cache, the first-run threshold when not; one image never does."""
    need_module("openvino")
    import lightsr.backends as B

    rlfn = resolve("rlfn_s", None, 4)
    cached_from, first_from = B.OPENVINO_MEASURED["rlfn_s"].pays_from_mpx
    for cached in (True, False):
        monkeypatch.setattr(B, "conversion_cached", lambda model, c=cached: c)
        need = cached_from if cached else first_from
        assert choose_backend("auto", rlfn, "cpu", "auto") == "torch"  # unknown job: one image
        assert choose_backend("auto", rlfn, "cpu", "auto", job=0.9 * need) == "torch"
        assert choose_backend("auto", rlfn, "cpu", "auto", job=need) == "openvino"
        assert choose_backend("auto", rlfn, "cpu", "fp32", job=10 * need) == "torch"  # exact fp32 stays PyTorch
        assert choose_backend("torch", rlfn, "cpu", "auto", job=10 * need) == "torch"
    imdn = resolve("imdn", None, 4, pretrained=False)
    assert choose_backend("auto", imdn, "cpu", "auto") == "openvino"  # repaid from the first image


def test_cli_folder_job_runs_openvino(tmp_path, capsys, monkeypatch):
    """``lightsr upscale FOLDER`` passes its job size to auto: a folder of same-size images large enough
    runs OpenVINO (the summary says so), a single image of it PyTorch."""
    need_module("openvino")
    import lightsr.backends as B
    from PIL import Image

    monkeypatch.setattr(B, "OPENVINO_MEASURED", {"rlfn_s": B.Measured(0.9, 0.0, 0.0, pays_from_mpx=(0.001, 0.001))})
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):  # 2 x 24x30 = 0.00144 Mpx of one size
        Image.fromarray((rng.random((24, 30, 3)) * 255).astype(np.uint8)).save(src / f"{i}.png")
    assert main(["upscale", str(src), "-o", str(tmp_path / "out"), "--model", "rlfn_s", "--quiet"]) == 0
    assert "openvino" in capsys.readouterr().err
    assert main(["upscale", str(src / "0.png"), "-o", str(tmp_path / "one.png"), "--model", "rlfn_s", "--quiet"]) == 0
    assert "openvino" not in capsys.readouterr().err
    assert main(["upscale", str(src), "-o", str(tmp_path / "mem"), "--model", "rlfn_s", "--quiet",
                 "--max-memory", "1G"]) == 0
    assert "openvino" not in capsys.readouterr().err  # a memory budget runs PyTorch


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
    weights = None if get_entry(name).shipped_weights(4) else str(need(ref))  # ours where we ship some
    scores = {}
    for backend, precision in (("torch", "fp32"), ("openvino", "auto")):
        runner = make_runner(resolve(name, weights, 4), "cpu", precision, backend=backend)
        assert runner.backend == backend
        for call in ("", " again"):  # OpenVINO: the dynamic-size graph, then the one compiled for this size
            y = runner(x).clamp(0, 1)[0].permute(1, 2, 0).mul(255).round().byte().numpy()
            scores[backend + call] = _y_psnr(y, pair.hr, 4)
    assert math.isfinite(scores["torch"]) and scores["torch"] > 25
    assert abs(scores["openvino"] - scores["torch"]) < 0.05, scores
    assert abs(scores["openvino again"] - scores["torch"]) < 0.05, scores


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
    """results/runtimes.md names the command that produced each JSON record auto's table comes from."""
    md = (ROOT / "results" / "runtimes.md").read_text()
    for m in OPENVINO_MEASURED.values():
        out = str(Path(m.record).parent)
        assert (ROOT / m.record).is_file() and "benchmarks/runtimes.py" in md and f"--out {out}" in md, m.record
        if m.breakeven_record:
            assert f"benchmarks/backend_breakeven.py" in md and f"--out {m.breakeven_record}" in md, m.breakeven_record
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


def test_openvino_compiles_a_size_seen_twice():
    """A size's first image runs on the dynamic-size graph; from its second, on a graph compiled for that
    size (kept for the last STATIC_SIZES sizes), with the same output (f32: within 1e-4)."""
    need_module("openvino")
    runner = make_runner(resolve("rlfn_s", None, 4), "cpu", "fp32", backend="openvino")
    runner.STATIC_SIZES = 2
    x = torch.rand(1, 3, 24, 28, generator=torch.Generator().manual_seed(0))
    first = runner(x)
    assert not runner._static
    second = runner(x)
    assert list(runner._static) == [(1, 3, 24, 28)]
    assert second.shape == (1, 3, 96, 112) and float((first - second).abs().max()) < 1e-4
    for h in (20, 20, 22, 22):  # two more sizes, each seen twice: the oldest static graph goes
        runner(torch.rand(1, 3, h, 28))
    assert list(runner._static) == [(1, 3, 20, 28), (1, 3, 22, 28)]


def test_openvino_conversion_is_cached_by_weights(tmp_path, monkeypatch):
    """The ONNX trace (most of the first call's time) runs once per weights: a second runner reads the
    converted model from $LIGHTSR_CACHE/openvino; other weights get their own entry."""
    need_module("openvino")
    import lightsr.export

    monkeypatch.setenv("LIGHTSR_CACHE", str(tmp_path))
    x = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    desc = resolve("rlfn_s", None, 4)
    first = make_runner(desc, "cpu", "fp32", backend="openvino")(x)
    assert len(list((tmp_path / "openvino").glob("*.xml"))) == 1
    traced = []
    real = lightsr.export.trace_onnx
    monkeypatch.setattr(lightsr.export, "trace_onnx", lambda *a, **k: traced.append(1) or real(*a, **k))
    again = make_runner(resolve("rlfn_s", None, 4), "cpu", "fp32", backend="openvino")(x)
    assert not traced and torch.allclose(first, again, atol=1e-5)
    other = resolve("rlfn_s", None, 4)
    with torch.no_grad():
        next(other.module.parameters()).mul_(0.5)
    make_runner(other, "cpu", "fp32", backend="openvino")(x)
    assert traced and len(list((tmp_path / "openvino").glob("*.xml"))) == 2


def test_memory_budget_runs_pytorch():
    """--max-memory's budget is measured on PyTorch's tile calls: under it auto runs PyTorch for a model
    auto would give OpenVINO (a 1000x750 IMDN image under 300M was refused before), and an explicit
    openvino backend with a budget is one line."""
    need_module("openvino")
    import lightsr

    ckpt = str(need(REFERENCE / "imdn_x4.pth"))
    assert lightsr.load("imdn", weights=ckpt, device="cpu").backend == "openvino"
    assert lightsr.load("imdn", weights=ckpt, device="cpu", max_memory=300e6).backend == "torch"
    with pytest.raises(LightSRError, match="max-memory budgets PyTorch"):
        lightsr.load("imdn", weights=ckpt, device="cpu", max_memory=300e6, backend="openvino")


def test_signal_after_openvino_runner_is_released():
    """A released OpenVINO runner must not leave the process fragile: with the CPU plugin unloaded under
    its parked worker threads, the next SIGTERM (a training run's clean stop, in the same process)
    killed the process with SIGSEGV. Run in a child process, so a regression fails this test only."""
    need_module("openvino")
    import subprocess
    import sys

    code = (
        "import gc, os, signal, time, torch\n"
        "from lightsr.backends import make_runner\n"
        "from lightsr.models import create_model\n"
        "r = make_runner(create_model('imdn', scale=4), 'cpu', 'fp32', backend='openvino')\n"
        "x = torch.rand(1, 3, 20, 24)\n"
        "r(x); r(x)\n"  # the dynamic graph, then one compiled for this size
        "del r; gc.collect()\n"
        "got = []\n"
        "signal.signal(signal.SIGTERM, lambda s, f: got.append(s))\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "time.sleep(0.2)\n"
        "print('caught', got)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "caught [15]" in res.stdout, (res.returncode, res.stderr[-500:])
