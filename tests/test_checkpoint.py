"""Strict, safe checkpoint loading: nesting, prefixes, formats, and readable mismatches."""
import pytest
import torch
from torch import nn

from lightsr.checkpoint import load_checkpoint, read_metadata, read_state_dict, save_weights
from lightsr.files import json_text, write_json
from lightsr.errors import LightSRError


def _net(out=12):
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, out, 3))


@pytest.mark.parametrize("wrap", [None, "params", "params_ema", "state_dict"])
@pytest.mark.parametrize("prefix", ["", "module."])
def test_pth_variants_load(tmp_path, wrap, prefix):
    src = _net()
    sd = {prefix + k: v for k, v in src.state_dict().items()}
    if wrap:
        sd = {wrap: sd}
    torch.save(sd, tmp_path / "w.pth")
    dst = load_checkpoint(_net(), tmp_path / "w.pth")
    for a, b in zip(src.parameters(), dst.parameters()):
        assert torch.equal(a, b)


def test_params_ema_preferred_over_params(tmp_path):
    a, b = _net(), _net()
    torch.save({"params": a.state_dict(), "params_ema": b.state_dict()}, tmp_path / "w.pth")
    got = load_checkpoint(_net(), tmp_path / "w.pth")
    assert torch.equal(got[0].weight, b[0].weight)


def test_safetensors_roundtrip_no_overwrite(tmp_path):
    src = _net()
    p = save_weights(src, tmp_path / "w.safetensors", metadata={"scale": 4, "model": "x"})
    assert read_metadata(p) == {"scale": 4, "model": "x"}
    assert torch.equal(load_checkpoint(_net(), p)[1].bias, src[1].bias)
    with pytest.raises(LightSRError, match="exists"):
        save_weights(src, p)


def test_mismatches_are_one_clear_line(tmp_path):
    torch.save(_net(out=48).state_dict(), tmp_path / "x4.pth")
    with pytest.raises(LightSRError, match="another shape.*another scale") as e:
        load_checkpoint(_net(out=12), tmp_path / "x4.pth")
    assert "\n" not in str(e.value)
    torch.save({"foo.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(LightSRError, match="missing.*unexpected.*another architecture"):
        load_checkpoint(_net(), tmp_path / "other.pth")


def test_bad_files(tmp_path):
    with pytest.raises(LightSRError, match="not found"):
        read_state_dict(tmp_path / "none.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(LightSRError, match="empty"):
        read_state_dict(tmp_path / "empty.pth")
    torch.save(_net().state_dict(), tmp_path / "t.pth")
    data = (tmp_path / "t.pth").read_bytes()
    (tmp_path / "trunc.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(LightSRError, match="cannot read"):
        read_state_dict(tmp_path / "trunc.pth")


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(LightSRError, match="cannot read"):
        read_state_dict(tmp_path / "evil.pth")


def test_json_is_strict_and_never_clobbers(tmp_path):
    import json
    import math

    obj = {"psnr": math.inf, "best": -math.inf, "nan": math.nan, "x": [1.5, math.inf], "n": 3}
    text = json_text(obj)
    assert "Infinity" not in text and "NaN" not in text
    assert json.loads(text) == {"psnr": None, "best": None, "nan": None, "x": [1.5, None], "n": 3}
    path = write_json(tmp_path / "r.json", {"a": 1})
    with pytest.raises(LightSRError, match="exists"):
        write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1}
    write_json(path, {"a": 2}, overwrite=True)
    assert json.loads(path.read_text()) == {"a": 2}
