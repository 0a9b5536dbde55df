"""Architecture detection from keys and shapes (issue 15): the reference checkpoints, a round trip
over the whole registry, the refusals, ``lightsr info`` and ``lightsr eval --weights`` alone.

How these tests were seen to fail (detection broken on purpose, then restored):

* the pixel-shuffle scale formula changed to ``s = isqrt(out / 3) + 1`` in
  ``detect.pixel_shuffle_scale``: every IMDN / RLFN-S / HASN / RDB-ESA / transformer case of the
  reference and round-trip tests failed ("cannot tell which architecture ... up-sampler ...");
  ``test_wrong_guess_is_refused_not_returned`` keeps that check permanent;
* ``hie`` read as ``mlp_in == dim`` instead of ``dim + 2``: every C2D case of the round trip failed;
* the AnySR-RDN preference (``PREFER``) emptied: the ``liif_rdn`` cases failed as ambiguous, which
  ``test_exact_tie_is_refused_without_the_rule`` asserts on purpose;
* ``@detector`` taken off ``rdb_esa``'s detector (models/rdb_esa.py): the round trip failed for
  rdb_esa x2/x3/x4, its variant and ``rdb_esa_hiif`` (every registered model with tensors is a case,
  so a model without a detector cannot pass); ``traits=`` taken off imdn's registration: importing
  the models raised ``ValueError: model 'imdn': a fixed-scale model states its input traits``, so
  every test failed (tests/test_registry.py checks the refusal itself).
"""
from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import pytest
import torch
from PIL import Image

from lightsr import LightSRError
from lightsr.cli import main
from lightsr.models import detect as detection
from lightsr.models import get_entry, list_models
from lightsr.models.loading import Descriptor, describe, detect, read_any_state_dict
from lightsr.models.resolve import resolve

from conftest import BENCHMARK, need

# the reference README's table: file -> (model, scale, options, parameters)
REFERENCE_CHECKPOINTS = {
    "imdn_x2.pth": ("imdn", 2, {}, 694_404),
    "imdn_x3.pth": ("imdn", 3, {}, 703_059),
    "imdn_x4.pth": ("imdn", 4, {}, 715_176),
    "carn_m.pth": ("carn_m", (2, 3, 4), {}, 414_811),
    "rlfn_s_x4.pth": ("rlfn_s", 4, {}, 317_218),
    "hit_srf_x4.pth": ("hit_srf", 4, {}, 866_420),
    "mambairv2_light_x4.pth": ("mambairv2_light", 4, {}, 789_680),
}

# options that change the weights, per registered model (built at x4 / continuous); the default
# build of every model at each of its scales is always included
C2D = [{"hie": False}, {"attention": "scc"}, {"unet": False}, {"skips": 2}, {"mlp": "linear"}, {"mlp": "mlp"},
       {"norm": "pre"}, {"blocks": 2}, {"dim": 48}, {"mlp_ratio": 3.0}]
ANYSR = [{"ase": "concat"}, {"lam": 2}]
VARIANTS: dict[str, list[dict]] = {
    "imdn": [{"channels": 32, "num_blocks": 4}],
    "carn_m": [{"channels": 32, "groups": 2}],
    "rlfn_s": [{"channels": 32, "mid_channels": 40, "num_blocks": 3}],
    "hasn": [{"channels": 32, "num_blocks": 3, "mlp_ratio": 2, "kernel_size": 5}],
    "rdb_esa": [{"channels": 32, "num_blocks": 3, "esa_channels": 8}],
    "rdn": [{"config": "A"}],
    "swinir_c2d": C2D,
    "srformer_c2d": [{"hie": False}, {"unet": False}, {"norm": "pre"}],
    "swinir_c2d_hiif": [{"hie": False}, {"head_opts": {"dim": 48}}, {"head_opts": {"hidden": 128, "levels": 2}},
                        {"head_opts": {"freq": False, "blocks": 2}}],
    "srformer_c2d_hiif": [{"mlp": "linear", "head_opts": {"heads": 3}}],
    "mambairv2_c2d": [{"mlp": "linear"}, {"skips": 2}, {"skips": 0}],
    "mambairv2_c2d_hiif": [{"mlp": "mlp", "head_opts": {"dim": 32}}],
    "liif_edsr": [{"hidden": (128, 128)}, {"feat_unfold": False}, {"cell_decode": False}],
    "liif_rdn": [{"hidden": (64,)}],
    "metasr_edsr": [{"hidden": 128}],
    "srno_edsr": [{"width": 128, "heads": 8}],
    "srno_rdn": [{"heads": 8}],
    "hiif_l_edsr": [{"dim": 32}, {"heads": 4}, {"levels": 4, "freq": False}],
    "hiif_l_rdn": [{"dim": 48}],
    **{f"anysr_{h}_edsr": ANYSR + [{"ase": None}] for h in ("liif", "metasr", "srno", "arbsr")},
    **{f"anysr_{h}_rdn": ANYSR for h in ("liif", "metasr", "srno", "arbsr")},
}


def _weightless() -> set[str]:
    """Registered models without a single tensor (nothing to detect): bicubic only."""
    return {n for n in list_models() if not _shapes(n, 4 if get_entry(n).scales else None, {})}


def _cases() -> list[tuple[str, int | None, dict]]:
    out = []
    for name in sorted(set(list_models()) - _weightless()):
        entry = get_entry(name)
        for s in entry.scales or (None,):
            out.append((name, None if s is None else int(s), {}))
        out += [(name, 4 if entry.scales else None, opts) for opts in VARIANTS.get(name, [])]
    return out


def _expected_scale(name: str, scale):
    return (2, 3, 4) if name == "carn_m" else scale


def _shapes(name: str, scale, opts: dict) -> list[tuple[str, tuple[int, ...]]]:
    """The registered builder's state-dict names and shapes, built on the meta device (cached, so the
    detector's own verification build of the same model is free)."""
    return detection.build_shapes(name, scale, opts)


# ---------------------------------------------------------------------------------------------
# the reference checkpoints
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("file", sorted(REFERENCE_CHECKPOINTS))
def test_reference_checkpoint_detected(reference, file):
    model, scale, options, params = REFERENCE_CHECKPOINTS[file]
    d = describe(need(reference / file))
    assert (d.model, d.scale, d.options, d.params) == (model, scale, options, params)
    assert d.source == str(reference / file) and d.detected


@pytest.fixture(scope="module")
def tiny_set5(tmp_path_factory) -> Path:
    """One 96 x 96 crop of Set5's bird (LR 48 / 32 / 24 px at x2 / x3 / x4): fast on a busy CPU."""
    src = need(BENCHMARK / "Set5" / "bird.png")
    folder = tmp_path_factory.mktemp("tiny") / "Set5"
    folder.mkdir()
    Image.open(src).convert("RGB").crop((96, 96, 192, 192)).save(folder / "bird.png")
    return folder


def _eval_json(tmp_path: Path, data: Path, cache: Path, *flags: str) -> dict:
    out = tmp_path / f"r{len(list(tmp_path.iterdir()))}.json"
    rc = main(["eval", *flags, "--data", str(data), "--json", str(out), "--cache-dir", str(cache),
               "--device", "cpu"])
    assert rc == 0
    return json.loads(out.read_text())


SLOW_ON_CPU = ("hit_srf_x4.pth", "mambairv2_light_x4.pth")  # ~10 s per forward on a busy 2-core CPU


@pytest.mark.parametrize("file", [pytest.param(f, marks=pytest.mark.slow) if f in SLOW_ON_CPU else f
                                  for f in sorted(REFERENCE_CHECKPOINTS)])
def test_eval_with_only_weights_matches_named(reference, file, tiny_set5, tmp_path):
    """``lightsr eval --weights FILE`` gives exactly the figures of ``--model NAME --scale S``."""
    model, scale, _, _ = REFERENCE_CHECKPOINTS[file]
    path = str(need(reference / file))
    cache = tmp_path.parent / "lr_cache"
    multi = isinstance(scale, tuple)
    run_scale = 4 if multi else scale
    alone = _eval_json(tmp_path, tiny_set5, cache, "--weights", path, *(["--scale", "4"] if multi else []))
    named = _eval_json(tmp_path, tiny_set5, cache, "--model", model, "--scale", str(run_scale), "--weights", path)
    meta_a, meta_n = alone.pop("meta", {}), named.pop("meta", {})
    assert alone == named  # every figure, per image and per set, identical
    for key in ("model", "scale", "params", "weights"):
        assert meta_a.get(key) == meta_n.get(key), key
    assert alone["Set5"]["psnr"] > 25  # the real weights, not a random network


def test_eval_multi_scale_checkpoint_needs_scale(reference, tiny_set5, capsys):
    rc = main(["eval", "--weights", str(need(reference / "carn_m.pth")), "--data", str(tiny_set5),
               "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "x2, x3, x4" in err and "--scale" in err


def test_eval_scale_contradicting_checkpoint(reference, tiny_set5, capsys):
    rc = main(["eval", "--weights", str(need(reference / "imdn_x2.pth")), "--scale", "4",
               "--data", str(tiny_set5), "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "for x2, not x4" in err
    # eval's defaults are upscale's: x4, the shipped else published weights (offline in tests: one
    # line naming the URL, the cache path and --weights)
    rc = main(["eval", "--model", "swinir_light", "--data", str(tiny_set5), "--device", "cpu"])
    assert rc == 2 and "none shipped or published for swinir_light x4" in capsys.readouterr().err
    rc = main(["eval", "--model", "imdn", "--data", str(tiny_set5), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and "imdn_x4.pth" in err.lower() and "--weights" in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------
# the whole registry, round trip
# ---------------------------------------------------------------------------------------------


def test_round_trip_every_registered_model_and_weight_option():
    """Every registered model at each scale, and each option that changes the weights, is detected
    back to the same name, scale and options from its names and shapes alone."""
    failures = []
    cases = _cases()
    assert _weightless() == {"bicubic"}  # a model added without tensors would escape the check
    assert {c[0] for c in cases} == set(list_models()) - {"bicubic"}  # every other registered model
    assert set(VARIANTS) <= set(list_models())  # no option list left behind by a renamed model
    losers = {lose for _, lose in detection.PREFER}  # the same tensors as a preferred model: named
    for name, scale, opts in cases:
        sd = {k: torch.empty(s, device="meta") for k, s in _shapes(name, scale, opts)}
        try:
            d = detect(sd, hint=name if name in losers else None)
        except LightSRError as exc:
            failures.append(f"{name} x{scale} {opts}: {exc}")
            continue
        got, want = (d.model, d.scale, d.options), (name, _expected_scale(name, scale), opts)
        if got != want:
            failures.append(f"{want} detected as {got}")
    assert not failures, "\n".join(failures)


def _save_pth(shapes, path: Path) -> None:
    """A bare state dict as written by ``torch.save(model.state_dict())``; every tensor is a
    zero-stride view of one float, so even RDN's 22M-parameter file stays tiny."""
    one = torch.zeros(1)
    torch.save({k: one.expand(s) if s else one[0].clone() for k, s in shapes}, path)


def _save_safetensors(shapes, path: Path) -> None:
    """A safetensors file without metadata, of 1-byte zeros (detection reads shapes, never values).
    Up to 4M elements through ``safetensors.torch.save_file``; the RDN-sized ones (22M) as the same
    format written directly, its zero data left sparse (8-byte header length, JSON header padded to
    8 bytes, data), which keeps the test fast on a busy machine."""
    if sum(math.prod(s) for _, s in shapes) <= 4_000_000:
        from safetensors.torch import save_file

        save_file({k: torch.zeros(s, dtype=torch.uint8) for k, s in shapes}, str(path))
        return
    header, offset = {}, 0
    for k, s in shapes:
        header[k] = {"dtype": "U8", "shape": list(s), "data_offsets": [offset, offset + math.prod(s)]}
        offset += math.prod(s)
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(len(blob).to_bytes(8, "little"))
        f.write(blob)
        f.truncate(8 + len(blob) + offset)


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_round_trip_through_files_without_metadata(fmt, tmp_path):
    """Every registered model at each of its scales, written as a bare .pth state dict and as a
    metadata-free .safetensors file, is read back and detected to the same name and scale."""
    save = _save_pth if fmt == "pth" else _save_safetensors
    failures = []
    for name, scale, opts in _cases():
        if opts and name not in ("swinir_c2d", "imdn", "anysr_srno_edsr"):  # options: a few, through files
            continue
        if name in {lose for _, lose in detection.PREFER}:  # read as their winner without metadata
            continue
        path = tmp_path / f"{name}_{scale}_{len(opts)}.{fmt}"
        save(_shapes(name, scale, opts), path)
        try:
            d = describe(path)
        except LightSRError as exc:
            failures.append(f"{name} x{scale}: {exc}")
            continue
        if (d.model, d.scale, d.options) != (name, _expected_scale(name, scale), opts):
            failures.append(f"{name} x{scale} {opts} detected as {d.model} x{d.scale} {d.options}")
        path.unlink()
    assert not failures, "\n".join(failures)


def test_official_layouts_are_unwrapped(tmp_path):
    """``module.`` prefixes, BasicSR's ``params_ema`` / ``params``, ``state_dict`` and LIIF's
    ``{"model": {"name", "args", "sd"}}`` all reach the detector as the same flat dict."""
    shapes = _shapes("liif_edsr", None, {})
    one = torch.zeros(1)
    sd = {k: one.expand(s) for k, s in shapes}
    layouts = {
        "liif": {"model": {"name": "liif", "args": {"encoder_spec": {"name": "edsr-baseline"}}, "sd": sd},
                 "epoch": 1000},
        "ema": {"params_ema": sd, "params": {k: v for k, v in list(sd.items())[:3]}},
        "params": {"params": sd},
        "module": {f"module.{k}": v for k, v in sd.items()},
        "state_dict": {"state_dict": sd},
    }
    for what, obj in layouts.items():
        torch.save(obj, tmp_path / f"{what}.pth")
        flat, meta = read_any_state_dict(tmp_path / f"{what}.pth")
        assert sorted(flat) == sorted(sd), what
        assert describe(tmp_path / f"{what}.pth").model == "liif_edsr", what


# ---------------------------------------------------------------------------------------------
# ambiguity rule and refusals
# ---------------------------------------------------------------------------------------------


def _meta_sd(name, scale=None, **opts):
    return {k: torch.empty(s, device="meta") for k, s in _shapes(name, scale, opts)}


def test_anysr_rdn_without_ase_is_reported_as_its_base():
    """AnySR-RDN with ``ase=None`` has exactly the base model's tensors: the base wins (PREFER),
    unless the caller names the AnySR model (a hint, as resolve passes)."""
    sd = _meta_sd("anysr_liif_rdn", ase=None)
    assert sorted(sd) == sorted(_meta_sd("liif_rdn"))
    assert detect(sd).model == "liif_rdn"
    hinted = detect(sd, hint="anysr_liif_rdn")
    assert (hinted.model, hinted.options) == ("anysr_liif_rdn", {"ase": None})


def test_reduced_swinir_c2d_is_named_by_its_metadata(tmp_path):
    """swinir_c2d_small's windows are not in its weights: unnamed, the tensors read as swinir_c2d with
    2 blocks (the paper's windows); lightsr's metadata (or --model) names the variant, whose windows
    the builder holds."""
    sd = _meta_sd("swinir_c2d_small", 4)
    assert sorted(sd) == sorted(_meta_sd("swinir_c2d", 4, blocks=2))
    assert (detect(sd).model, detect(sd).options) == ("swinir_c2d", {"blocks": 2})
    assert detect(sd, hint="swinir_c2d_small").model == "swinir_c2d_small"
    from lightsr.checkpoint import save_weights
    from lightsr.models import create_model
    path = save_weights(create_model("swinir_c2d_small", 4), tmp_path / "w.safetensors",
                        {"model": "swinir_c2d_small", "scale": 4})
    desc = resolve(str(path))
    assert desc.model == "swinir_c2d_small" and desc.window_multiple == 32
    assert desc.module.layers[0].residual_group.windows == (32, 16, 8, 8, 16, 32)


def test_exact_tie_is_refused_without_the_rule(monkeypatch):
    monkeypatch.setattr(detection, "PREFER", ())
    with pytest.raises(LightSRError, match=r"ambiguous.*liif_rdn.*anysr_liif_rdn"):
        detect(_meta_sd("liif_rdn"))


def test_mixed_state_dict_is_refused_naming_both():
    """Keys of two architectures at once (IMDN + RLFN-S): both detectors fire, neither fits."""
    sd = {**_meta_sd("imdn", 4), **_meta_sd("rlfn_s", 4)}
    with pytest.raises(LightSRError) as info:
        detect(sd, source="mixed.pth")
    msg = str(info.value)
    assert "\n" not in msg and "imdn" in msg and "rlfn_s" in msg and "unexpected" in msg


def test_truncated_state_dict_is_refused():
    sd = _meta_sd("imdn", 4)
    for k in [k for k in sd if k.startswith("IMDB6.")]:
        del sd[k]
    sd.pop("c.0.weight")
    with pytest.raises(LightSRError, match=r"cannot tell.*closest: imdn: .*(missing|another shape)") as info:
        detect(sd, source="cut.pth")
    assert "\n" not in str(info.value)


def test_unknown_state_dict_is_refused():
    sd = {"generator.conv_in.weight": torch.empty(64, 3, 3, 3), "generator.conv_in.bias": torch.empty(64)}
    with pytest.raises(LightSRError, match="cannot tell which architecture"):
        detect(sd)
    with pytest.raises(LightSRError, match="no tensors"):
        detect({})


def test_other_width_of_a_fixed_family_is_refused_with_the_reason():
    """An EDSR with 32 blocks is recognised as EDSR and refused: only EDSR-baseline is registered."""
    sd = {k: v for k, v in _meta_sd("edsr_baseline", 4).items()}
    sd["body.31.body.0.weight"] = torch.empty(64, 64, 3, 3, device="meta")
    for i in range(16, 32):
        sd[f"body.{i}.body.0.weight"] = torch.empty(64, 64, 3, 3, device="meta")
    with pytest.raises(LightSRError, match="EDSR-baseline"):
        detect(sd)


def test_wrong_guess_is_refused_not_returned(monkeypatch):
    """A broken scale formula cannot produce a wrong model: every guess is verified by building it."""
    monkeypatch.setattr(detection, "pixel_shuffle_scale", lambda out, per=3: 3)
    with pytest.raises(LightSRError, match="imdn"):
        detect(_meta_sd("imdn", 4))


def test_not_a_checkpoint_is_refused(tmp_path, capsys):
    text = tmp_path / "notes.pth"
    text.write_text("these are not weights\n")
    with pytest.raises(LightSRError, match="cannot read checkpoint"):
        describe(text)
    assert main(["info", str(text)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("lightsr: error:")
    assert main(["info", str(tmp_path / "absent.pth")]) == 2


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_pickle_with_code_is_not_executed(tmp_path):
    marker = tmp_path / "marker.txt"
    bad = tmp_path / "evil.pth"
    with open(bad, "wb") as f:
        pickle.dump({"state_dict": _Exploit(marker)}, f, protocol=2)
    with pytest.raises(LightSRError, match="cannot read checkpoint"):
        describe(bad)
    with pytest.raises(LightSRError):
        resolve(None, bad)
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------
# lightsr info, resolve
# ---------------------------------------------------------------------------------------------


def test_info_json_and_text(reference, capsys):
    assert main(["info", "--json", str(need(reference / "carn_m.pth"))]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {k: out[k] for k in ("model", "scale", "options", "params")} == \
        {"model": "carn_m", "scale": [2, 3, 4], "options": {}, "params": 414_811}
    assert out["tiling_exact"] is True and out["window_multiple"] == 1
    assert main(["info", str(need(reference / "hit_srf_x4.pth"))]) == 0
    text = capsys.readouterr().out
    assert "hit_srf" in text and "866,420" in text and "multiple of 64" in text and "approximate" in text


def test_info_continuous_scale_is_null(tmp_path, capsys):
    path = tmp_path / "srno.safetensors"
    _save_safetensors(_shapes("srno_edsr", None, {}), path)
    assert main(["info", "--json", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "srno_edsr" and out["scale"] is None and out["continuous"] is True
    assert main(["eval", "--weights", str(path), "--data", str(tmp_path), "--device", "cpu"]) == 2
    assert "continuous-scale srno_edsr checkpoint; pass --scale" in capsys.readouterr().err


def test_resolve_builds_and_loads_strictly(reference):
    """The front door: a checkpoint alone, as the spec, named with it (NAME, weights= or NAME=PATH)."""
    path = need(reference / "imdn_x2.pth")
    d = resolve(None, path)
    assert isinstance(d, Descriptor) and (d.model, d.scale, d.params, d.origin) == ("imdn", 2, 694_404, "file")
    ref = torch.load(path, map_location="cpu", weights_only=True)
    assert torch.equal(d.module.fea_conv.weight, ref["module.fea_conv.weight"]) and not d.module.training
    d2 = resolve(path)  # a path as the spec
    assert d2.model == "imdn" and d2.module.scale == 2
    d3 = resolve("imdn", weights=path)  # a name with weights: the scale comes from the file
    assert d3.module.scale == 2 and d3.scale == 2
    assert resolve(f"imdn={path}").scale == 2  # NAME=PATH
    with pytest.raises(LightSRError, match="holds imdn weights, not rlfn_s"):
        resolve("rlfn_s", weights=path)
    dc = resolve(None, need(reference / "carn_m.pth"), scale=3)
    assert dc.module.scale == 3 and dc.scale == 3  # the x3 head of the x2/x3/x4 network was built
    assert describe(need(reference / "carn_m.pth")).scale == (2, 3, 4)
    with pytest.raises(LightSRError, match="pass --scale"):
        resolve(None, need(reference / "carn_m.pth"))
    db = resolve("swinir_light", scale=2, pretrained=False)  # random init, named descriptor
    assert db.model == "swinir_light" and db.scale == 2 and not db.detected and db.window_multiple == 8
    assert db.source is None and db.origin is None
    with pytest.raises(LightSRError, match="no shipped or published weights"):
        resolve("swinir_light", scale=2)  # a model that needs weights and has none: one line
    ds = resolve("rdb_esa", scale=3)  # a name whose weights ship with lightsr
    if get_entry("rdb_esa").shipped_weights(3) is not None:
        assert ds.source.endswith("rdb_esa_x3.safetensors") and ds.detected and ds.scale == 3
        assert ds.origin == "shipped"
