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


def test_every_registered_model_states_its_input_traits():
    """Traits live in each model's registration (``register_model(..., traits=...)``); the descriptor
    reads them from there (a continuous model defaults to ``Traits()``)."""
    from lightsr.models import get_entry, list_models
    from lightsr.models.registry import Traits

    for name in list_models():
        e = get_entry(name)
        t = e.input_traits({})
        assert isinstance(t, Traits), name
        assert t.window_multiple >= 1 and t.min_size >= 1, name
        if e.scales is None and name != "bicubic":  # implicit heads: whole-image coordinates
            assert t == Traits(), name
    # C2D: the window multiple is the largest window, read from the options
    assert get_entry("swinir_c2d").input_traits({}).window_multiple == 64
    assert get_entry("swinir_c2d").input_traits({"windows": [8, 16, 8]}).window_multiple == 16
    assert get_entry("swinir_light").input_traits() == Traits(8, 1, False)


def test_every_lightsr_model_states_its_traits():
    """Every fixed-scale model of the package states its traits in its registration; one registered
    without them (a user's own model) runs with the cautious ``Traits()``, and bad traits are refused.
    Broken on purpose: ``traits=`` removed from imdn's registration made this test fail (imdn)."""
    from lightsr.models import get_entry, list_models, register_model
    from lightsr.models.registry import Traits

    unstated = [n for n in list_models() if get_entry(n).scales is not None and get_entry(n).traits is None
                and get_entry(n).builder.__module__.startswith("lightsr.models.")]
    assert not unstated, f"registered without traits: {unstated}"
    with pytest.raises(ValueError, match="traits"):
        register_model("bad_traits_model", scales=(2, 4), traits=(1, 1, False))
    assert "bad_traits_model" not in list_models()
    deco = register_model("user_model_for_test", scales=(2,))  # not applied: nothing is registered
    assert callable(deco) and Traits() == Traits(1, 1, False)
