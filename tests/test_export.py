"""ONNX export: dynamic height/width, onnxruntime matches PyTorch within 1e-3, optional dependency."""
import ast
import builtins
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from lightsr.cli import main
from lightsr.errors import LightSRError

from conftest import REFERENCE, need, need_module


class Tiny(nn.Module):
    def __init__(self, scale: int = 2):
        super().__init__()
        self.scale = scale
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.LeakyReLU(0.05),
                                  nn.Conv2d(8, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))

    def forward(self, x):
        return self.body(x) + nn.functional.interpolate(x, scale_factor=self.scale, mode="nearest")


def test_importing_lightsr_does_not_import_onnx():
    """No module of the package imports onnx at module level (only inside the export functions)."""
    import lightsr

    root = Path(lightsr.__file__).parent
    for path in root.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:  # module-level statements only
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] in ("onnx", "onnxruntime") for n in names), path


@pytest.mark.slow
def test_import_in_fresh_interpreter_does_not_load_onnx():
    code = ("import sys, lightsr, lightsr.upscaler, lightsr.export, lightsr.cli; "
            "assert 'onnx' not in sys.modules and 'onnxruntime' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_onnx_is_a_clear_error(monkeypatch, tmp_path):
    real_import = builtins.__import__

    def fake(name, *a, **k):
        if name.split(".")[0] in ("onnx", "onnxruntime"):
            raise ImportError(f"No module named {name!r}", name=name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    from lightsr.export import export_onnx

    with pytest.raises(LightSRError, match="pip install"):
        export_onnx(Tiny(), tmp_path / "m.onnx")


def test_tiny_export_dynamic_sizes(tmp_path):
    need_module("onnx")
    ort = need_module("onnxruntime")
    from lightsr.export import export_onnx

    torch.manual_seed(0)
    m = Tiny(3).eval()
    res = export_onnx(m, tmp_path / "m.onnx", sample_hw=(16, 16))
    assert res["max_abs_error"] < 1e-5
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, 7, 11)  # another batch and size than traced
    y = sess.run(None, {"input": x.numpy()})[0]
    assert y.shape == (2, 3, 21, 33)
    assert abs(y - m(x).detach().numpy()).max() < 1e-5
    with pytest.raises(LightSRError, match="overwrite"):
        export_onnx(m, tmp_path / "m.onnx")
    with pytest.raises(LightSRError, match=".onnx"):
        export_onnx(m, tmp_path / "m.bin")


@pytest.mark.slow
def test_cli_export_imdn(tmp_path, capsys):
    need_module("onnx")
    need_module("onnxruntime")
    w = need(REFERENCE / "imdn_x4.pth")
    rc = main(["export", "--model", "imdn", "--weights", str(w), "--format", "onnx", "-o", str(tmp_path / "i.onnx")])
    err = capsys.readouterr().err
    assert rc == 0 and (tmp_path / "i.onnx").stat().st_size > 2_000_000
    diff = float(err.split("max |diff| ")[1].split()[0].rstrip(")"))
    assert diff < 1e-3
    rc = main(["export", "--model", "imdn", "--scale", "4", "--weights", str(REFERENCE / "imdn_x2.pth"),
               "-o", str(tmp_path / "j.onnx")])
    assert rc == 2 and "checkpoint for x2, not x4" in capsys.readouterr().err and not (tmp_path / "j.onnx").exists()


def _tiny_mambairv2():
    from lightsr.layers.skeleton import LightweightSR
    from lightsr.models.mambairv2 import AttentiveLayers

    torch.manual_seed(0)
    opts = dict(dim=16, heads=2, d_state=4, inner_rank=4, num_tokens=8, mlp_ratio=1.0)
    return LightweightSR([AttentiveLayers(depth=2, window=8, **opts)], dim=16, scale=2, pad_multiple=8,
                         pad_mode="symmetric").eval()


def test_state_space_model_exports_at_a_fixed_size(tmp_path):
    """The selective scan (a custom op in PyTorch) and the semantic sort trace to plain ONNX ops: a
    MambaIRv2-structured model exported for one size matches PyTorch there; a dynamic-size export is
    refused with the way out named, and nothing is written."""
    need_module("onnx")
    ort = need_module("onnxruntime")
    from lightsr.export import export_onnx

    m = _tiny_mambairv2()
    # 8x24: one window high (empty shifted-window regions) and 192 tokens, not a square number
    # (the scan's chunk count must not be traced as a truncating division)
    res = export_onnx(m, tmp_path / "m.onnx", fixed_size=(8, 24))
    assert res["max_abs_error"] < 1e-4 and res["fixed_size"] == (8, 24)
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = torch.rand(1, 3, 8, 24)
    y = sess.run(None, {"input": x.numpy()})[0]
    assert y.shape == (1, 3, 16, 48) and abs(y - m(x).detach().numpy()).max() < 1e-4
    with pytest.raises(LightSRError, match="--fixed-size"):
        export_onnx(m, tmp_path / "d.onnx", sample_hw=(16, 16))
    assert not (tmp_path / "d.onnx").exists()


@pytest.mark.slow
def test_cli_export_mambairv2_light_fixed_size(tmp_path, capsys):
    need_module("onnx")
    need_module("onnxruntime")
    w = need(REFERENCE / "mambairv2_light_x4.pth")
    out = tmp_path / "m.onnx"
    rc = main(["export", "--model", "mambairv2_light", "--weights", str(w), "-o", str(out), "--fixed-size", "16x48"])
    err = capsys.readouterr().err
    assert rc == 0 and "1x3x16x48" in err, err  # one window high, 768 tokens
    assert float(err.split("max |diff| ")[1].split()[0].rstrip(")")) < 1e-4
    assert main(["export", "--model", "mambairv2_light", "--weights", str(w), "-o", str(tmp_path / "x.onnx"),
                 "--fixed-size", "64"]) == 2 and "--fixed-size expects HxW" in capsys.readouterr().err


def test_exported_file_says_how_to_feed_it(tmp_path, capsys):
    """The .onnx file carries scale, model, input range, channel order, layout and the lightsr version
    as metadata_props (a deployment cannot guess RGB vs BGR or 0-1 vs 0-255 from the graph)."""
    onnx = need_module("onnx")
    need_module("onnxruntime")
    import lightsr

    out = tmp_path / "r.onnx"
    assert main(["export", "--model", "rlfn_s", "--scale", "2", "-o", str(out)]) == 0  # the smallest shipped CNN
    assert "rlfn_s x2, RGB in 0-1, NCHW" in capsys.readouterr().err
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert {k: props.get(k) for k in ("scale", "model", "input_range", "channel_order", "layout", "input_size",
                                      "weights", "lightsr_version")} == {
        "scale": "2", "model": "rlfn_s", "input_range": "0-1", "channel_order": "RGB", "layout": "NCHW",
        "input_size": "dynamic", "weights": "rlfn_s_x2.safetensors", "lightsr_version": lightsr.__version__}
    from lightsr.export import export_onnx

    res = export_onnx(Tiny(3), tmp_path / "t.onnx", fixed_size=(16, 20))  # a module outside the registry
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "t.onnx")).metadata_props}
    assert props == res["metadata"] and props["model"] == "Tiny" and props["scale"] == "3"
    assert props["input_size"] == "16x20"
