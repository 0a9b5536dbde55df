"""Registry behaviour and the CLI's one-line errors."""
import pytest

import lightsr
from lightsr.cli import main, parse_options
from lightsr.errors import LightSRError


def test_unknown_model_suggests(capsys):
    with pytest.raises(LightSRError, match="unknown model"):
        lightsr.create_model("no_such_model")
    assert main(["profile", "--model", "no_such_model", "--scale", "4", "--no-latency"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lightsr: error: unknown model") and "\n" not in err


def test_every_registered_model_builds_at_its_scales():
    from lightsr.models import get_entry

    names = lightsr.list_models()
    assert "bicubic" in names
    for name in names:
        e = get_entry(name)
        for s in (e.scales or (4,))[:1]:
            assert lightsr.create_model(name, scale=s) is not None


def test_wrong_scale_is_refused():
    from lightsr.models import get_entry, list_models

    fixed = [n for n in list_models() if get_entry(n).scales]
    if not fixed:
        pytest.skip("no fixed-scale model registered")
    with pytest.raises(LightSRError, match="supports scales"):
        lightsr.create_model(fixed[0], scale=7)


def test_parse_options():
    assert parse_options(["hie=false", "windows=[8, 16]", "name=abc", "w=0.5"]) == {
        "hie": False, "windows": [8, 16], "name": "abc", "w": 0.5}
    with pytest.raises(LightSRError):
        parse_options(["novalue"])


def test_anysr_resource_flags_become_options():
    from lightsr.cli import build_parser, model_options

    base = ["eval", "--model", "anysr_srno_edsr", "--scale", "2", "--data", "d", "--opt", "lam=4"]
    assert model_options(build_parser().parse_args(base + ["--width", "0.7"])) == {"lam": 4, "width": 0.7}
    assert model_options(build_parser().parse_args(base + ["--max-gflops", "50"])) == {"lam": 4, "max_gflops": 50.0}
    assert model_options(build_parser().parse_args(base + ["--full-net"])) == {"lam": 4, "mode": "full"}
    with pytest.raises(LightSRError, match="--width and --full-net"):  # one sub-network flag at a time
        model_options(build_parser().parse_args(base + ["--width", "0.7", "--full-net"]))
    args = build_parser().parse_args(["upscale", "a.png", "-o", "out", "--width", "0.5"])
    assert model_options(args) == {"width": 0.5}
