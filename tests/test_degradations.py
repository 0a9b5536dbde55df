"""Training degradations (lightsr.data.degradations): a pure function of (seed, index), parameters in
their ranges, every stage changes the LR, the `bicubic` preset is today's stream byte for byte, and
`lightsr train --degradation photo` runs and records the preset."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from lightsr.data import degradations as D
from lightsr.data.patches import FixedScalePatches, augment, bicubic_lr, to_tensor
from lightsr.errors import LightSRError


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Five 64 x 72 RGB images with detail at every frequency (deterministic)."""
    d = tmp_path_factory.mktemp("degr_imgs")
    g = torch.Generator().manual_seed(0)
    for i in range(5):
        x = F.interpolate(torch.rand(1, 3, 8, 9, generator=g), size=(64, 72), mode="bicubic", align_corners=False)[0]
        x = x + 0.15 * torch.rand(3, 64, 72, generator=g)
        Image.fromarray((x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()).save(d / f"im{i}.png")
    return d


def textured(seed: int = 0, size: int = 48) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.rand(1, 3, size // 6, size // 6, generator=g), size=(size, size), mode="bicubic",
                      align_corners=False)[0]
    return (x + 0.2 * torch.rand(3, size, size, generator=g)).clamp(0, 1).mul(255).round().div(255)


def ds(folder, name, **kw):
    base = dict(scale=4, lr_patch=12, global_batch=4, seed=3, cache_dir=None, degradation=name)
    base.update(kw)
    return FixedScalePatches(folder, **base)


def hf_energy(x: torch.Tensor) -> float:
    """Mean squared Laplacian."""
    lap = x[:, 1:-1, 1:-1] * 4 - x[:, :-2, 1:-1] - x[:, 2:, 1:-1] - x[:, 1:-1, :-2] - x[:, 1:-1, 2:]
    return float(lap.pow(2).mean())


# ---- (seed, index) -> sample ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["jpeg", "photo"])
def test_stream_is_a_pure_function_of_seed_and_index(folder, name):
    a = ds(folder, name)
    first = [a[g] for g in (5, 6, 7)]
    b = ds(folder, name)  # a fresh dataset, other order
    again = [b[g] for g in (7, 6, 5)][::-1]
    for s, t in zip(first, again):
        assert torch.equal(s["lr"], t["lr"]) and torch.equal(s["hr"], t["hr"])
    assert not torch.equal(first[0]["lr"], first[1]["lr"])
    assert first[0]["lr"].shape == (3, 12, 12) and first[0]["hr"].shape == (3, 48, 48)
    other = ds(folder, name, seed=4)[5]
    assert not torch.equal(other["lr"], first[0]["lr"])


def test_degraded_lr_is_the_documented_draws_of_the_documented_seed(folder):
    """LR = apply(HR, sample(preset, default_rng([seed, g, 0xDE6A]))) before the (shared) flips."""
    d = ds(folder, "photo", augment=False)
    for g in range(6):
        s = d[g]
        draws = D.sample(D.PRESETS["photo"], np.random.default_rng([3, g, 0xDE6A]), 4, 12)
        assert torch.equal(s["lr"], D.apply(s["hr"], draws))


# ---- the bicubic preset is today's stream -------------------------------------------------------


def today(d: FixedScalePatches, g: int) -> dict:
    """The fixed-scale sample as lightsr made it before degradations existed (written out here)."""
    rng = np.random.default_rng([d.seed, g, 0xDA7A])
    a = np.asarray(Image.open(d.bank.files[d.image_index(g)]).convert("RGB"))
    s, p = d.scale, d.lr_patch
    hr = a[: a.shape[0] - a.shape[0] % s, : a.shape[1] - a.shape[1] % s]
    lr = bicubic_lr(to_tensor(hr), scale=s).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    y = int(rng.integers(0, lr.shape[0] - p + 1))
    x = int(rng.integers(0, lr.shape[1] - p + 1))
    lr_t, hr_t = to_tensor(lr[y:y + p, x:x + p]), to_tensor(hr[y * s:(y + p) * s, x * s:(x + p) * s])
    lr_t, hr_t = augment(rng, lr_t, hr_t)
    return {"lr": lr_t, "hr": hr_t}


def test_bicubic_preset_is_todays_stream_byte_for_byte(folder):
    named = ds(folder, "bicubic", scale=2, lr_patch=10)
    default = FixedScalePatches(folder, scale=2, lr_patch=10, global_batch=4, seed=3, cache_dir=None)
    photo = ds(folder, "photo", scale=2, lr_patch=10)
    for g in range(12):
        ref, a, b = today(named, g), named[g], default[g]
        assert torch.equal(a["lr"], ref["lr"]) and torch.equal(a["hr"], ref["hr"])
        assert torch.equal(b["lr"], ref["lr"]) and torch.equal(b["hr"], ref["hr"])
        # another preset sees the same HR patches (same crop and flips), only its LR differs
        assert torch.equal(photo[g]["hr"], ref["hr"])


def test_unknown_preset_is_one_line_listing_the_presets(folder):
    with pytest.raises(LightSRError) as e:
        D.get_degradation("phone")
    msg = str(e.value)
    assert "\n" not in msg and "'phone'" in msg and "bicubic, jpeg, photo" in msg
    with pytest.raises(LightSRError, match="bicubic, jpeg, photo"):
        ds(folder, "phone")


# ---- parameters land in their ranges --------------------------------------------------------------


def near(k: float, n: int, p: float) -> bool:
    """``k`` successes in ``n`` draws is within 4 binomial standard errors of rate ``p``."""
    return abs(k / n - p) <= 4 * math.sqrt(p * (1 - p) / n) + 1e-9


@pytest.mark.parametrize("name", ["photo_strong", "photo_mild", "photo_jpeg", "photo"])
def test_photo_parameters_land_in_their_ranges(name):
    deg = D.PRESETS[name]
    rng = np.random.default_rng(0)
    n, scale, p = 4000, 4, 48
    draws = [D.sample(deg, rng, scale, p) for _ in range(n)]
    plain = D.RoundDraw(None, "matlab", p, None, None)  # clean: a drawn clean sample, or all stages skipped
    if deg.clean_prob:
        base = [D.sample(dataclasses.replace(deg, clean_prob=0.0), rng, scale, p) for _ in range(n)]
        natural = sum(d == [plain] for d in base) / n
        clean = [d for d in draws if d == [plain]]
        assert near(len(clean), n, deg.clean_prob + (1 - deg.clean_prob) * natural)
        draws = base  # the stages' own statistics: the same preset without its clean samples
    assert all(len(d) in (1, 2) for d in draws)
    two = np.mean([len(d) == 2 for d in draws])
    assert near(two * len(draws), len(draws), deg.second_prob)
    per_round = {0: [], 1: []}
    for d in draws:
        assert d[-1].size == p  # the last round always lands on the LR patch size
        if len(d) == 2:
            lo, hi = (round(p * scale ** t) for t in deg.rounds[0].resize.t)
            assert lo <= d[0].size <= hi and d[0].size > p
            per_round[0].append(d[0])
            per_round[1].append(d[1])
        else:
            per_round[0].append(d[0])
    for i, rs in per_round.items():
        r = deg.rounds[i]
        blurs = [x.blur for x in rs if x.blur is not None]
        assert near(len(blurs), len(rs), r.blur.prob)
        for s1, s2, th in blurs:
            assert r.blur.sigma[0] <= s1 <= r.blur.sigma[1] and r.blur.sigma[0] <= s2 <= r.blur.sigma[1]
            assert -math.pi <= th <= math.pi and s1 <= 2.0 and s2 <= 2.0
        aniso = np.mean([b[0] != b[1] for b in blurs])
        assert near(aniso * len(blurs), len(blurs), r.blur.aniso_prob)
        modes = {x.mode for x in rs}
        assert modes == set(r.resize.modes) and modes <= set(D.RESIZE_MODES)
        noises = [x.noise for x in rs if x.noise is not None]
        assert near(len(noises), len(rs), r.noise.prob)
        gauss = [x for x in noises if x[0] == "gaussian"]
        pois = [x for x in noises if x[0] == "poisson"]
        assert len(gauss) + len(pois) == len(noises) and near(len(gauss), len(noises), r.noise.gaussian_prob)
        assert all(r.noise.sigma[0] / 255 <= x[1] <= r.noise.sigma[1] / 255 <= 10 / 255 for x in gauss)
        assert all(r.noise.poisson_scale[0] <= x[1] <= r.noise.poisson_scale[1] for x in pois)
        assert near(sum(x[2] for x in noises), len(noises), r.noise.gray_prob)
        qs = [x.jpeg for x in rs if x.jpeg is not None]
        assert near(len(qs), len(rs), r.jpeg.prob)
        assert all(isinstance(q, int) and 30 <= r.jpeg.quality[0] <= q <= r.jpeg.quality[1] <= 95 for q in qs)
        assert min(qs) == r.jpeg.quality[0] and max(qs) == r.jpeg.quality[1]  # both ends inclusive


def test_jpeg_preset_always_compresses_in_range():
    rng = np.random.default_rng(1)
    qs = []
    for _ in range(500):
        (d,) = D.sample(D.PRESETS["jpeg"], rng, 4, 48)
        assert d.blur is None and d.noise is None and d.mode == "matlab" and d.size == 48
        qs.append(d.jpeg)
    assert None not in qs and min(qs) == 30 and max(qs) == 95


def test_presets_are_dataclasses_in_one_place():
    assert list(D.PRESETS) == ["bicubic", "jpeg", "photo_strong", "photo_mild", "photo_jpeg", "photo"]
    assert D.PRESETS["bicubic"].is_bicubic and not D.PRESETS["photo"].is_bicubic
    for deg in D.PRESETS.values():
        assert dataclasses.is_dataclass(deg) and all(dataclasses.is_dataclass(r) for r in deg.rounds)


# ---- every stage changes the LR -------------------------------------------------------------------


def test_jpeg_q10_differs_from_clean_more_than_q95():
    x = textured()
    q10, q95 = (D.jpeg(x, q) - x for q in (10, 95))
    assert q10.abs().mean() > 4 / 255
    assert q95.abs().mean() < q10.abs().mean() / 2
    assert torch.equal(D.jpeg(x, 10), D.jpeg(x, 10))  # the codec is deterministic


def test_noise_changes_the_image_at_its_level():
    x = textured() * 0.8 + 0.1  # away from the clip
    n = D.add_noise(x, "gaussian", 10 / 255, False, 7) - x
    assert abs(float(n.std()) - 10 / 255) < 1.5 / 255
    gray = D.add_noise(x, "gaussian", 10 / 255, True, 7) - x
    assert torch.allclose(gray[0], gray[1], atol=1e-6) and not torch.allclose(n[0], n[1])
    p = D.add_noise(x, "poisson", 1.0, False, 7) - x
    assert 0.01 < float(p.std()) < 0.06  # sqrt(256 x)/256 at x ~ 0.5: ~0.044
    assert torch.equal(D.add_noise(x, "poisson", 1.0, False, 7), D.add_noise(x, "poisson", 1.0, False, 7))


def test_blur_lowers_high_frequencies_along_its_axes():
    x = textured(size=64)
    assert hf_energy(D.blur(x, 1.5, 1.5, 0.0)) < 0.3 * hf_energy(x)
    assert hf_energy(D.blur(x, 1.5, 1.5, 0.0)) < hf_energy(D.blur(x, 0.5, 0.5, 0.0))
    k = D.gaussian_kernel(2.0, 1.0, 0.7)
    assert abs(float(k.sum()) - 1) < 1e-5 and torch.allclose(k, k.flip(0, 1))
    # stripes of period 4 px varying along x (width) or along y (height)
    ramp = torch.sin(torch.arange(32.0) * math.pi / 2) * 0.4 + 0.5
    along_x, along_y = ramp.expand(3, 32, 32), ramp[:, None].expand(3, 32, 32)
    amp = lambda t: float((t[:, 8:-8, 8:-8] - 0.5).abs().max())  # noqa: E731
    # sigma1 acts along x, sigma2 along y; a quarter turn swaps them
    assert amp(D.blur(along_x, 2.0, 0.3, 0.0)) < 0.05 < 0.3 < amp(D.blur(along_y, 2.0, 0.3, 0.0))
    assert amp(D.blur(along_y, 2.0, 0.3, math.pi / 2)) < 0.05 < 0.3 < amp(D.blur(along_x, 2.0, 0.3, math.pi / 2))


@pytest.mark.parametrize("sigmas", [(1.0, 1.0, 0.0), (0.2, 0.2, 0.0), (3.5, 3.5, 0.0), (1.2, 0.5, 0.4),
                                    (2.0, 0.3, -1.0)])
def test_fast_blur_and_matlab_resize_equal_their_definitions(sigmas):
    """The shifted-sum (isotropic) and FFT (anisotropic) blurs equal a direct 2-D correlation with the
    kernel under reflect padding; the patch pipeline's matrix MATLAB resize equals lightsr.resize."""
    from lightsr.resize import imresize

    x = torch.rand(3, 50, 37, generator=torch.Generator().manual_seed(3))
    k = D.gaussian_kernel(*sigmas)
    h = k.shape[-1] // 2
    direct = F.conv2d(F.pad(x[:, None], (h, h, h, h), mode="reflect"), k[None, None])[:, 0]
    assert torch.allclose(D.blur(x, *sigmas), direct, atol=2e-6)
    assert torch.allclose(D.resize(x, 12, "matlab"), imresize(x, output_size=(12, 12)), atol=2e-6)


def test_every_drawn_stage_changes_the_lr(folder):
    """Over samples of `photo`, dropping any drawn stage of a noticeable strength (blur, noise, JPEG),
    changing the resize mode or the second round changes its LR; each kind is seen at least once."""
    d = ds(folder, "photo", augment=False)
    seen = set()
    for g in range(40):
        s = d[g]
        draws = D.sample(D.PRESETS["photo"], np.random.default_rng([3, g, 0xDE6A]), 4, 12)
        lr = s["lr"]
        assert torch.equal(lr, D.apply(s["hr"], draws))
        for i, r in enumerate(draws):
            for stage, off in (("blur", None), ("noise", None), ("jpeg", None)):
                v = getattr(r, stage)
                strong = {"blur": lambda: v and max(v[:2]) > 0.8, "jpeg": lambda: v and v < 90,
                          "noise": lambda: v and v[1] > (3 / 255 if v[0] == "gaussian" else 0.3)}[stage]()
                if not strong:  # sigma 0.2 blurs, q 95 and 1/255 noise may vanish in the rounding
                    continue
                seen.add(stage)
                cut = [dataclasses.replace(x, **{stage: off}) if j == i else x for j, x in enumerate(draws)]
                assert (D.apply(s["hr"], cut) - lr).abs().mean() > 0.2 / 255, (g, i, stage)
            other = "area" if r.mode != "area" else "bicubic"
            cut = [dataclasses.replace(x, mode=other) if j == i else x for j, x in enumerate(draws)]
            assert not torch.equal(D.apply(s["hr"], cut), lr)
        if len(draws) == 2:
            seen.add("second")
            one = [dataclasses.replace(draws[0], size=12)]
            assert not torch.equal(D.apply(s["hr"], one), lr)
    assert seen == {"blur", "noise", "jpeg", "second"}


def test_jpeg_preset_compresses_every_patch(folder):
    """`jpeg` = MATLAB bicubic of the HR patch + JPEG: every LR differs from the clean bicubic patch by
    more than rounding, and its 8 x 8 block grid shows (skip the JPEG and this fails)."""
    d = ds(folder, "jpeg", scale=2, lr_patch=16, augment=False)
    from lightsr.resize import imresize

    for g in range(8):
        s = d[g]
        clean = imresize(s["hr"], output_size=(16, 16)).mul(255).round().clamp(0, 255).div(255)
        assert (s["lr"] - clean).abs().mean() > 1 / 255, g
        assert (s["lr"] - clean).abs().max() > 4 / 255, g


def test_continuous_models_refuse_other_presets(tmp_path, folder):
    from lightsr.train import TrainConfig, Trainer

    class Implicit(nn.Module):
        continuous = True

        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 3, 1)

    cfg = TrainConfig(model="x", scale=2, train_dirs=[str(folder)], holdout=0, out=str(tmp_path / "r"), lr_patch=8,
                      batch_size=2, iters=2, device="cpu", progress=False, cache_dir=None, degradation="photo")
    with pytest.raises(LightSRError, match="fixed-scale"):
        Trainer(cfg, model=Implicit())
    assert not (tmp_path / "r").exists()


# ---- lightsr train --degradation ------------------------------------------------------------------


class _TinySR(nn.Module):
    def __init__(self, scale=2):
        super().__init__()
        self.scale = scale
        self.up = nn.Sequential(nn.Conv2d(3, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))

    def forward(self, x):
        return self.up(x)


def _tiny(scale=2):
    return _TinySR(int(scale))


def test_cli_train_with_photo_degradation(folder, tmp_path, capsys, monkeypatch):
    from lightsr.cli.train import main
    from lightsr.models import registry

    registry.get_entry("rlfn_s")  # the registry is discovered before this test adds to it
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # removed again after the test
    registry.register_model("tiny_degradation_sr", scales=(2,))(_tiny)
    monkeypatch.setenv("LIGHTSR_CACHE", str(tmp_path / "cache"))
    args = ["--model", "tiny_degradation_sr", "--train_dir", str(folder), "--scale", "2", "--iters", "2",
            "--lr_patch", "8", "--batch_size", "2", "--device", "cpu", "--no_progress", "--val_every", "0",
            "--holdout", "0", "--precision", "fp32", "--seed", "1"]
    assert main([*args, "--degradation", "photo", "--out", str(tmp_path / "run")]) == 0
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["degradation"] == "photo"
    assert main([*args, "--degradation", "phone", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("lightsr: error: unknown degradation 'phone'") and "bicubic, jpeg, photo" in err[-1]
    assert not (tmp_path / "bad").exists()
