"""The upscaler: tiling equals whole-image inference, every input kind, outscale, the CLI's bad-input path."""
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms
from torch import nn

import lightsr
from lightsr import api
from lightsr import upscaler as up_mod
from lightsr.cli import main
from lightsr.errors import LightSRError
from lightsr.imageio import read, read_image, write_image
from lightsr.models import create_model
from lightsr.resize import imresize
from lightsr.api import load
from lightsr.cli._options import parse_memory
from lightsr.upscaler import Upscaler

from conftest import REFERENCE, need

IMDN4 = REFERENCE / "imdn_x4.pth"
RNG = np.random.default_rng(0)


class Tiny(nn.Module):
    """5 convs (receptive radius 5) + pixel shuffle + nearest skip: a fast local model."""

    def __init__(self, scale: int = 2, width: int = 8):
        super().__init__()
        self.scale = scale
        layers = []
        for i in range(4):
            layers += [nn.Conv2d(3 if i == 0 else width, width, 3, padding=1), nn.ReLU()]
        self.body = nn.Sequential(*layers, nn.Conv2d(width, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))

    def forward(self, x):
        return self.body(x) + nn.functional.interpolate(x, scale_factor=self.scale, mode="nearest")


class TinyContinuous(nn.Module):
    """Arbitrary-scale stand-in: bicubic to round(h*s) plus a 1x1 conv."""

    continuous = True

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.calls = []

    def forward(self, x, scale):
        self.calls.append(scale)
        h, w = x.shape[-2:]
        size = (round(h * scale), round(w * scale))
        return self.conv(nn.functional.interpolate(x, size=size, mode="bicubic", align_corners=False))


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return Upscaler(Tiny(3), precision="fp32")


# ------------------------------------------------------------------ tiling
def _count_calls(up) -> list:
    calls = []
    up.model.register_forward_pre_hook(lambda m, i: calls.append(tuple(i[0].shape[-2:])))
    return calls


@pytest.mark.parametrize("tile,pad,n_tiles", [(8, 12, 35), (16, 10, 12), (11, 13, 20), (64, 4, 1)])
def test_tiled_equals_untiled(tiny, tile, pad, n_tiles):
    """The model is called once per tile (5 x 7 tiles of 8 px on a 37x53 image ...; one call when the
    tile covers the image), and the result equals the whole-image output. Checked to fail by forcing
    ``tile = None`` in ``_native_bands`` (the call counts break)."""
    x = torch.rand(1, 3, 37, 53)
    whole = tiny(x)
    calls = _count_calls(tiny)
    tiny.tile, tiny.tile_pad = tile, pad
    tiled = tiny(x)
    assert len(calls) == n_tiles
    assert max(h for h, w in calls) <= min(tile, 37) + 2 * pad
    assert tiled.shape == (1, 3, 111, 159)
    assert (tiled - whole).abs().max().item() < 1e-5  # context >= receptive radius: exact


@pytest.mark.parametrize("multiple,tile,pad,want", [(1, 100, 16, 100), (64, 100, 16, 96), (64, 16, 16, 16),
                                                     (8, 50, 10, 44), (16, 96, 0, 96)])
def test_tiles_fit_the_models_window(multiple, tile, pad, want):
    """A tile plus its context on both sides is a whole number of the model's windows (the descriptor's
    ``window_multiple``), so a windowed model pads no interior tile; rounded down only, and a tile too small
    for one window with its context stays as asked.
    Checked to fail by returning ``tile`` unchanged from ``_window_tile`` (96 expected, 100 seen)."""
    from dataclasses import replace

    from lightsr.models.loading import describe_module

    desc = replace(describe_module(Tiny(2)), window_multiple=multiple)
    up = Upscaler(desc, precision="fp32", tile=tile, tile_pad=pad)
    assert up._window_tile(tile) == want
    calls = _count_calls(up)
    up(torch.rand(1, 3, 3 * want + 5, 3 * want + 5))
    interior = [h for h, w in calls if h == w == want + 2 * pad]
    assert interior  # the image was tiled with the rounded tile
    if want != tile:  # rounded: a whole number of windows
        assert all(h % multiple == 0 for h in interior)


def test_tiles_stream_band_by_band(tiny):
    """Bounded memory: the first output band is handed over after one row of tiles, before the rest
    are computed. Checked to fail by collecting the bands in a list before yielding them."""
    x = torch.rand(1, 3, 40, 40)
    calls = _count_calls(tiny)
    tiny.tile, tiny.tile_pad = 10, 4
    bands = tiny._native_bands(x, 3)
    y0, y1, band = next(bands)
    assert len(calls) == 4  # one row of 4 tiles
    assert band.shape[2] == y1 - y0 < 40 * 3
    rest = list(bands)
    assert len(calls) == 16 and rest[-1][1] == 120


def test_tiled_uint8_within_one_level(tiny):
    img = RNG.integers(0, 256, (30, 41, 3), dtype=np.uint8)
    whole = tiny(img)
    calls = _count_calls(tiny)
    tiny.tile, tiny.tile_pad = 12, 4  # context smaller than the receptive field: blending hides seams
    tiled = tiny(img)
    assert len(calls) == 3 * 4
    assert np.abs(tiled.astype(int) - whole).max() <= 1


def test_blend_weights_sum_to_one():
    tiles = [(0, 10), (10, 20), (20, 23)]
    total = sum(up_mod._ramp(23, a, b, 4, 3) for a, b in tiles)
    assert torch.allclose(total, torch.ones(69))


def test_memory_budget_too_small_is_one_line(tiny):
    """A budget no tile can meet (200 KB of process memory) is refused in one line, not exceeded; the
    tile choice itself is tested in tests/test_memory.py against measured process memory."""
    tiny.tile_pad = 12
    tiny.max_memory = 200_000
    with pytest.raises(LightSRError) as exc:
        tiny(np.zeros((40, 40, 3), np.uint8))
    assert "too small" in str(exc.value) and "\n" not in str(exc.value)


def test_imdn_tiled_close_to_untiled(set5):
    """IMDN's contrast-aware channel attention pools over the whole image, so tiles cannot be bit-exact;
    they stay within a few levels (results/upscale.md has the measured figures)."""
    up = load("imdn", weights=need(IMDN4))
    img = read_image(sorted(set5.iterdir())[0])[:32, :40]
    whole = up(img)
    up.tile, up.tile_pad = 20, 16
    diff = np.abs(up(img).astype(int) - whole)
    assert diff.max() <= 4 and diff.mean() < 0.1


# ------------------------------------------------------------------ input kinds
def test_kinds_and_dtypes(tiny):
    img = RNG.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    ref = tiny(torch.from_numpy(img.transpose(2, 0, 1).copy()).float() / 255)  # (C, H, W) tensor
    assert ref.shape == (3, 21, 27)
    out8 = tiny(img)
    assert out8.dtype == np.uint8 and out8.shape == (21, 27, 3)
    np.testing.assert_array_equal(out8, (ref.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round())
    out16 = tiny(img.astype(np.uint16) * 257)
    assert out16.dtype == np.uint16 and np.abs(out16 / 257.0 - out8).max() <= 0.51
    outf = tiny(img.astype(np.float32) / 255)
    assert outf.dtype == np.float32 and np.abs(outf * 255 - out8).max() <= 0.51
    pil = tiny(Image.fromarray(img))
    assert pil.size == (27, 21) and pil.mode == "RGB"
    batch = tiny(torch.rand(2, 3, 5, 6))
    assert batch.shape == (2, 3, 15, 18)


def test_gray_and_rgba(tiny):
    gray = RNG.integers(0, 256, (6, 8), dtype=np.uint8)
    out = tiny(gray)
    assert out.shape == (18, 24)
    rgb = tiny(np.repeat(gray[..., None], 3, axis=2)).astype(np.float64).mean(2).round()
    np.testing.assert_array_equal(out, rgb)
    rgba = RNG.integers(0, 256, (6, 8, 4), dtype=np.uint8)
    out = tiny(rgba)
    assert out.shape == (18, 24, 4)
    np.testing.assert_array_equal(out[..., :3], tiny(rgba[..., :3]))
    np.testing.assert_array_equal(out[..., 3], imresize(rgba[..., 3], output_size=(18, 24)))
    assert tiny(Image.fromarray(rgba)).mode == "RGBA"


def test_one_pixel_and_smaller_than_window():
    torch.manual_seed(0)
    up = Upscaler(Tiny(2), precision="fp32")
    assert up(np.full((1, 1, 3), 128, np.uint8)).shape == (2, 2, 3)
    swin = Upscaler(create_model("swinir_light", scale=2))  # 8x8 windows, a 5x3 image
    out = swin(RNG.integers(0, 256, (5, 3, 3), dtype=np.uint8))
    assert out.shape == (10, 6, 3)


def test_fractional_outscale_is_native_then_matlab_bicubic(tiny):
    img = RNG.integers(0, 256, (10, 14, 3), dtype=np.uint8)
    x = torch.from_numpy(img.transpose(2, 0, 1).copy()).float()[None] / 255
    native = tiny(x).clamp(0, 1)
    got = tiny(x, outscale=2.5)
    assert got.shape == (1, 3, 25, 35)
    want = imresize(native, 2.5 / 3, output_size=(25, 35)).clamp(0, 1)
    assert torch.allclose(got, want, atol=1e-6)
    assert tiny(img, outscale=2.5).shape == (25, 35, 3)


def test_outscale_streams_band_by_band(tiny):
    """With tiles, a fractional ``outscale`` is resized as the model's bands arrive: several output
    bands, the first before the last tile row has run, and the same result as the whole image at
    native scale then one ``imresize``. Broken on purpose (collecting every native band first) the
    first-band check fails."""
    x = torch.rand(1, 3, 40, 29)
    want = imresize(tiny(x).clamp(0, 1), 2.5 / 3, output_size=(100, 72)).clamp(0, 1)
    calls = _count_calls(tiny)
    tiny.tile, tiny.tile_pad = 8, 12
    bands = tiny._bands(x, 2.5)
    y0, y1, first = next(bands)
    assert y0 == 0 and 0 < y1 < 100 and len(calls) < 5 * 4  # 5 tile rows of 4 tiles
    rest = [first] + [b for _, _, b in bands]
    assert len(rest) > 2 and len(calls) == 20
    assert torch.allclose(torch.cat(rest, dim=2).clamp(0, 1), want, atol=1e-5)


def test_continuous_model_gets_the_scale():
    m = TinyContinuous()
    up = Upscaler(m, precision="fp32")
    out = up(RNG.integers(0, 256, (10, 14, 3), dtype=np.uint8), outscale=2.5)
    assert out.shape == (25, 35, 3) and m.calls == [2.5]
    with pytest.raises(LightSRError, match="outscale"):
        up(np.zeros((4, 4, 3), np.uint8))


def test_self_ensemble_is_the_x8_mean(tiny):
    x = torch.rand(1, 3, 17, 19)  # at least MIN_SIDE: no edge padding
    tiny.self_ensemble = True
    got = tiny(x)
    want = 0
    with torch.no_grad():
        for k in range(4):
            for flip in (False, True):
                xi = torch.rot90(x, k, (2, 3))
                xi = xi.flip(3) if flip else xi
                y = tiny.model(xi)
                y = y.flip(3) if flip else y
                want = want + torch.rot90(y, -k, (2, 3))
    assert torch.allclose(got, (want / 8).clamp(0, 1), atol=1e-5)


def test_bf16_close_to_float32():
    """The dtype that ran is read inside the model (a forward hook), not inferred from the output;
    checked to fail by forcing Runner's precision to fp32."""
    torch.manual_seed(0)
    m = Tiny(2)
    seen = []
    m.body[0].register_forward_hook(lambda mod, i, o: seen.append(o.dtype))
    x = torch.rand(1, 3, 12, 12)
    a = Upscaler(m, precision="fp32")(x)
    assert seen == [torch.float32]
    b = Upscaler(m, precision="bf16")(x)
    assert seen[-1] == torch.bfloat16
    assert b.dtype == torch.float32
    assert 0 < (a - b).abs().max().item() < 0.03


# ------------------------------------------------------------------ loading
def test_load_errors(tmp_path):
    ref = need(IMDN4)
    with pytest.raises(LightSRError, match="not found"):
        load("imdn", weights=tmp_path / "nope.pth")
    with pytest.raises(LightSRError, match="checkpoint for x4, not x2"):
        load("imdn", scale=2, weights=ref)
    with pytest.raises(LightSRError, match="holds imdn weights, not rlfn_s"):
        load("rlfn_s", scale=4, weights=ref)
    up = load(weights=ref, precision="fp32")  # no name, no scale: read from the keys and shapes
    assert (up.descriptor.model, up.descriptor.scale, up.scale) == ("imdn", 4, 4)
    assert load(ref).descriptor.model == "imdn"
    with pytest.raises(LightSRError, match="unknown model"):
        load("imdnn", weights=ref)


def test_missing_shipped_weights_says_how(monkeypatch, tmp_path):
    monkeypatch.setattr("lightsr.models.registry.WEIGHTS_DIR", tmp_path)
    monkeypatch.setenv("LIGHTSR_CACHE", str(tmp_path / "cache"))  # no cached download; offline (conftest)
    for name in ("imdn", "swinir_light", None):
        with pytest.raises(LightSRError) as exc:
            load(name)
        assert "--weights" in str(exc.value) and "\n" not in str(exc.value)


class _Evil:
    def __reduce__(self):
        return (Path.touch, (Path(_Evil.marker),))


def test_pickled_code_is_never_run(tmp_path):
    _Evil.marker = str(tmp_path / "pwned")
    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"w": _Evil()}, f)
    with pytest.raises(LightSRError, match="cannot read checkpoint"):
        load("imdn", weights=tmp_path / "evil.pth")
    assert not (tmp_path / "pwned").exists()


def test_self_describing_checkpoint(tmp_path):
    from lightsr.checkpoint import save_weights

    m = create_model("imdn", scale=2)
    save_weights(m, tmp_path / "w.safetensors", metadata={"model": "imdn", "scale": 2})
    up = load(tmp_path / "w.safetensors")
    assert up.native_scale == 2 and type(up.model).__name__ == type(m).__name__


# ------------------------------------------------------------------ command line
def _cli(capsys, *argv):
    rc = main(["upscale", *map(str, argv), "-q"])
    return rc, capsys.readouterr().err


@pytest.fixture
def tree(tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(RNG.integers(0, 256, (8, 10, 3), dtype=np.uint8)).save(src / "a.png")
    Image.fromarray(RNG.integers(0, 256, (6, 6, 3), dtype=np.uint8)).save(src / "sub" / "b.jpg")
    (src / "sub" / "text.png").write_text("not an image")
    (src / "zero.png").write_bytes(b"")
    return src


def test_cli_folder_tree_bad_files_and_summary(tmp_path, tree, capsys):
    w = need(IMDN4)
    out = tmp_path / "out"
    rc, err = _cli(capsys, tree, "-o", out, "--model", "imdn", "--weights", w)
    assert rc == 1  # two bad files
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == ["a.png", "sub/b.jpg"]
    assert read_image(out / "a.png").shape == (32, 40, 3)
    assert "text.png" in err and "zero.png" in err and "upscaled 2 images" in err and "2 failed" in err
    assert not list(out.rglob("*.part"))
    # second run: nothing overwritten without --overwrite
    stamp = (out / "a.png").stat().st_mtime_ns
    rc, err = _cli(capsys, tree / "a.png", "-o", out, "--model", "imdn", "--weights", w)
    assert rc == 1 and "--overwrite" in err and (out / "a.png").stat().st_mtime_ns == stamp
    rc, err = _cli(capsys, tree / "a.png", "-o", out, "--model", "imdn", "--weights", w, "--overwrite")
    assert rc == 0 and (out / "a.png").stat().st_mtime_ns != stamp


def test_cli_glob_suffix_ext_outscale(tmp_path, tree, capsys):
    w = need(IMDN4)
    out = tmp_path / "o"
    rc, _ = _cli(capsys, str(tree / "**" / "*.jpg"), "-o", out, "--model", "imdn", "--weights", w,
                 "--suffix", "_sr", "--ext", "png", "--outscale", "2.5")
    assert rc == 0 and read_image(out / "b_sr.png").shape == (15, 15, 3)
    rc, _ = _cli(capsys, tree / "a.png", "-o", tmp_path / "single.webp", "--model", "imdn", "--weights", w)
    assert rc == 0 and read_image(tmp_path / "single.webp").shape == (32, 40, 3)


def test_cli_output_equal_to_input_refused(tree, capsys):
    w = need(IMDN4)
    before = (tree / "a.png").read_bytes()
    rc, err = _cli(capsys, tree / "a.png", "-o", tree, "--model", "imdn", "--weights", w, "--overwrite")
    assert rc == 1 and "is the input" in err and (tree / "a.png").read_bytes() == before


def test_cli_unwritable_output(tmp_path, tree, capsys):
    (tmp_path / "afile").write_text("x")
    rc, err = _cli(capsys, tree / "a.png", "-o", tmp_path / "afile" / "out", "--model", "imdn",
                   "--weights", need(IMDN4))
    assert rc == 2 and "not a folder" in err and err.count("\n") == 1


def test_cli_missing_weights_and_inputs(tmp_path, tree, capsys, monkeypatch):
    monkeypatch.setattr("lightsr.models.registry.WEIGHTS_DIR", tmp_path / "empty")
    rc, err = _cli(capsys, tree / "a.png", "-o", tmp_path / "o")
    assert rc == 2 and "--weights" in err and err.count("\n") == 1
    rc, err = _cli(capsys, tmp_path / "nothing.png", "-o", tmp_path / "o", "--model", "imdn", "--weights", IMDN4)
    assert rc == 2 and "not found" in err
    rc, err = _cli(capsys, tree / "a.png", "-o", tmp_path / "o", "--model", "imdn", "--weights", tmp_path / "x.pth")
    assert rc == 2 and "not found" in err


def test_cli_16bit_and_icc_kept(tmp_path, capsys):
    w = need(IMDN4)
    a = RNG.integers(0, 65536, (6, 7, 3), dtype=np.uint16)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    from lightsr.imageio import ImageData

    write_image(tmp_path / "in16.png", a, like=ImageData(a, icc_profile=srgb))
    rc, _ = _cli(capsys, tmp_path / "in16.png", "-o", tmp_path / "out", "--model", "imdn", "--weights", w)
    got = read(tmp_path / "out" / "in16.png")
    assert rc == 0 and got.array.dtype == np.uint16 and got.array.shape == (24, 28, 3)
    assert got.icc_profile == srgb
    assert len(np.unique(got.array)) > 256  # real 16-bit data, not 8-bit scaled up


def test_cli_interrupted_run_leaves_no_partial_file(tmp_path, tree, capsys, monkeypatch):
    import lightsr.imageio as io

    real = io._encode
    calls = []

    def encode(tmp, *args):
        calls.append(tmp)
        if len(calls) == 2:
            with open(tmp, "wb") as f:
                f.write(b"partial")
            raise KeyboardInterrupt
        return real(tmp, *args)

    monkeypatch.setattr(io, "_encode", encode)
    out = tmp_path / "out"
    rc = main(["upscale", str(tree / "a.png"), str(tree / "sub" / "b.jpg"), "-o", str(out), "--model", "imdn",
               "--weights", str(need(IMDN4)), "-q"])
    assert rc == 130
    assert sorted(p.name for p in out.rglob("*")) == ["a.png"]  # the finished one only, no .part


def test_public_api(set5):
    import lightsr

    w = need(REFERENCE / "imdn_x2.pth")
    up = lightsr.load("imdn", scale=2, weights=w)
    img = read_image(sorted(set5.iterdir())[0])[:6, :5]
    np.testing.assert_array_equal(lightsr.upscale(img, up), up(img))
    assert lightsr.upscale(img, "imdn", scale=2, weights=w).shape == (12, 10, 3)


# ------------------------------------------------------------------ input faults (API)
@pytest.mark.parametrize("bad,msg", [
    (np.full((4, 4, 3), 200.0), "divide by 255"),
    (np.full((4, 4, 3), np.nan, np.float32), "NaN"),
    (torch.full((3, 4, 4), float("inf")), "NaN or infinite"),
    (torch.zeros(1, 3, 0, 4), "empty image"),
    (torch.full((3, 4, 4), -0.5), r"\[0, 1\]"),
])
def test_api_refuses_bad_values(tiny, bad, msg):
    with pytest.raises(LightSRError, match=msg):
        tiny(bad)


def test_tiny_flat_images_stay_flat():
    """A 1x1 or 3x2 flat image through the shipped default model comes back within 3 levels (edge
    padding on every side keeps the network's zero padding away; right/bottom-only padding gave
    up to 30 levels)."""
    up = lightsr.load(scale=4, precision="fp32")
    for v in (0, 77, 128, 255):
        for shape in ((1, 1, 3), (3, 2, 3)):
            y = up(np.full(shape, v, np.uint8))
            assert y.shape == (shape[0] * 4, shape[1] * 4, 3)
            assert np.abs(y.astype(int) - v).max() <= 3


def test_unsupported_scale_names_the_scales():
    with pytest.raises(LightSRError, match=r"supports scales x2, x3, x4, not x5"):
        lightsr.load("imdn", scale=5)
    with pytest.raises(LightSRError, match="unknown device"):
        lightsr.load(device="tpu9")


def test_cli_weights_alone_equals_named(tmp_path):
    """`lightsr upscale IMG --weights FILE` (architecture and scale detected) writes the same bytes as
    with --model and --scale named."""
    ref = need(IMDN4)
    img = tmp_path / "in.png"
    Image.fromarray(RNG.integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(img)
    assert main(["upscale", str(img), "-o", str(tmp_path / "a"), "--weights", str(ref), "-q"]) == 0
    assert main(["upscale", str(img), "-o", str(tmp_path / "b"), "--model", "imdn", "--scale", "4",
                 "--weights", str(ref), "-q"]) == 0
    a, b = (tmp_path / "a" / "in.png").read_bytes(), (tmp_path / "b" / "in.png").read_bytes()
    assert a == b and read_image(tmp_path / "a" / "in.png").shape == (96, 80, 3)


def test_cli_quality_range_and_same_stem_collision(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    a = RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(a).save(src / "x.png")
    Image.fromarray(a).save(src / "x.jpg")
    assert main(["upscale", str(src / "x.png"), "-o", str(tmp_path / "o"), "--quality", "101", "-q"]) == 2
    assert "--quality 101" in capsys.readouterr().err
    out = tmp_path / "o2"
    assert main(["upscale", str(src), "-o", str(out), "--ext", "png", "--overwrite", "-q"]) == 2
    assert "would both be written to" in capsys.readouterr().err and not out.exists()
    assert main(["upscale", str(src), "-o", str(out), "-q"]) == 0  # same extensions: distinct names
    assert sorted(p.name for p in out.iterdir()) == ["x.jpg", "x.png"]


# ------------------------------------------------------------------ 16 bit, --max-memory
class NearestX2(nn.Module):
    """x2 nearest neighbour after an identity 1x1 convolution: the output pixels are the input's,
    exactly, so any loss of input precision shows in the output."""

    scale = 2

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(3)[:, :, None, None])

    def forward(self, x):
        return nn.functional.interpolate(self.conv(x), scale_factor=2, mode="nearest")


def test_16bit_input_reaches_the_model_at_16_bit(tmp_path):
    """A 16-bit ramp whose neighbours differ by 1/65535 (far below 1/255) goes into the model at full
    precision and comes back exactly (array API, tiled, and a 16-bit PNG file through upscale_files);
    an 8-bit cut anywhere on the way quantises it to multiples of 257. Broken on purpose (the
    16-bit pixels rounded to 8 bit before the model, in memory) -> fails."""
    from lightsr.imageio import read_png16

    ramp = np.arange(30 * 40).reshape(30, 40) + 20000
    a = np.stack([ramp, ramp + 3, 65535 - ramp], axis=2).astype(np.uint16)
    up = Upscaler(NearestX2(), precision="fp32")
    seen = []
    up.model.register_forward_pre_hook(lambda m, i: seen.append((i[0].detach().float() * 65535).round()))
    want = a.repeat(2, 0).repeat(2, 1)
    for tile in (None, 16):
        up.tile = tile
        out = up(a)
        assert out.dtype == np.uint16
        np.testing.assert_array_equal(out, want)
    inside = torch.cat([s.flatten() for s in seen])
    assert (inside % 257 != 0).float().mean() > 0.9 and len(torch.unique(inside)) > 1000
    up.tile = None
    (tmp_path / "in").mkdir()
    write_image(tmp_path / "in" / "rgb16.png", a)
    Image.fromarray(ramp.astype(np.uint16)).save(tmp_path / "in" / "gray16.png")  # I;16
    stats = lightsr.upscale_files(up, [tmp_path / "in"], tmp_path / "out", progress=False)
    assert stats.done == 2 and stats.failed == 0
    np.testing.assert_array_equal(read_png16(tmp_path / "out" / "rgb16.png"), want)
    gray = read(tmp_path / "out" / "gray16.png").array
    assert gray.dtype == np.uint16
    np.testing.assert_array_equal(gray[..., 0], ramp.astype(np.uint16).repeat(2, 0).repeat(2, 1))


@pytest.mark.parametrize("text,want", [
    ("2G", 2 * 2**30), ("2g", 2 * 2**30), ("2GB", 2 * 2**30), ("2GiB", 2 * 2**30), (" 2G ", 2 * 2**30),
    ("1.5G", 1.5 * 2**30), ("512M", 512 * 2**20), ("512MB", 512 * 2**20), ("64K", 64 * 2**10),
    ("1T", 2**40), ("2", 2 * 2**30), ("0.5", 2**29), (None, None)])
def test_parse_memory_exact_bytes(text, want):
    """K/M/G/T are powers of 1024 (B and iB accepted), a bare number is GB. Broken on purpose ("2G"
    read as 2 MiB) -> fails."""
    assert parse_memory(text) == want


@pytest.mark.parametrize("bad", ["", "G", "abc", "2X", "2 G B", "-1G", "0", "0M", "nan", "inf", "1e400G"])
def test_parse_memory_refuses_garbage(bad):
    with pytest.raises(LightSRError, match="--max-memory"):
        parse_memory(bad)


def test_cli_max_memory_reaches_the_upscaler_in_bytes(tmp_path, monkeypatch):
    got = []
    real = api.load

    def spy(*a, **k):
        got.append(k.get("max_memory"))
        return real(*a, **k)

    monkeypatch.setattr(api, "load", spy)
    Image.fromarray(RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--max-memory", "2G", "-q"]) == 0
    assert got == [2 * 2**30]
