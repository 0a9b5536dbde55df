"""Y conversion, PSNR and SSIM against hand-computed values; the two protocols' differences."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lightsr import LightSRError
from lightsr.metrics import psnr, psnr_rgb, psnr_ssim, rgb_to_y, ssim, ssim_rgb


def test_rgb_to_y_hand_values():
    img = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]],
                   dtype=np.uint8)
    y = rgb_to_y(img)
    want = [16.0, 235.0, 16 + 65.481, 16 + 128.553, 16 + 24.966, 16 + (65.481 * 10 + 128.553 * 20 + 24.966 * 30) / 255]
    np.testing.assert_allclose(y[0], want, atol=1e-12)
    np.testing.assert_array_equal(rgb_to_y(img, rounded=True)[0], [16, 235, 81, 145, 41, 32])


def test_psnr_hand_values_and_shave():
    hr = np.zeros((20, 20))
    sr = np.ones((20, 20))
    sr[:2] = 200  # inside the shaved border: ignored
    assert psnr(sr, hr, shave=2) == pytest.approx(10 * math.log10(255**2 / 1.0), abs=1e-12)
    assert psnr(sr, hr, shave=0) < 20
    assert psnr(hr, hr) == math.inf
    # RGB: one MSE over all values: errors 1, 2, 3 -> MSE 14/3
    a = np.zeros((8, 8, 3))
    b = a + np.array([1.0, 2.0, 3.0])
    assert psnr_rgb(b, a) == pytest.approx(10 * math.log10(255**2 / (14 / 3)), abs=1e-12)


def test_ssim_hand_values():
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    a, b = np.full((16, 16), 100.0), np.full((16, 16), 110.0)
    # constant images: no variance, SSIM = luminance term only
    assert ssim(a, b) == pytest.approx((2 * 100 * 110 + c1) / (100**2 + 110**2 + c1), abs=1e-12)
    x = np.random.default_rng(0).random((30, 40)) * 255
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-12)
    assert ssim(x, 255 - x) < 0


def _ssim_conv2d(a: np.ndarray, b: np.ndarray) -> float:
    """Independent 2-D formulation (a full 11x11 window, as BasicSR's cv2.filter2D + valid crop)."""
    g = torch.exp(-((torch.arange(11, dtype=torch.float64) - 5) ** 2) / (2 * 1.5**2))
    w = torch.outer(g / g.sum(), g / g.sum())[None, None]
    t = lambda v: torch.from_numpy(v)[None, None]  # noqa: E731
    f = lambda v: F.conv2d(t(v), w)[0, 0]  # noqa: E731
    mu1, mu2 = f(a), f(b)
    s1, s2, s12 = f(a * a) - mu1**2, f(b * b) - mu2**2, f(a * b) - mu1 * mu2
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    return float((((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s1 + s2 + c2))).mean())


def test_ssim_matches_full_window_formulation():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (37, 45, 3)).astype(np.float64)
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255)
    want = _ssim_conv2d(b[3:-3, 3:-3, 0], a[3:-3, 3:-3, 0])
    assert ssim(b[..., 0], a[..., 0], shave=3) == pytest.approx(want, abs=1e-12)
    want = np.mean([_ssim_conv2d(b[..., c], a[..., c]) for c in range(3)])
    assert ssim_rgb(b, a) == pytest.approx(want, abs=1e-12)


def test_protocols_on_gray_and_rgb():
    rng = np.random.default_rng(2)
    hr_gray = rng.integers(0, 256, (24, 24, 1), dtype=np.uint8)
    sr_gray = np.clip(hr_gray.astype(int) + rng.integers(-9, 10, hr_gray.shape), 0, 255).astype(np.uint8)
    sr = np.repeat(sr_gray, 3, axis=2)
    p_gray = psnr(sr_gray[..., 0], hr_gray[..., 0], 2)
    # matlab: a gray file is compared on its own channel
    p, s = psnr_ssim(sr, hr_gray, 2, "matlab")
    assert p == pytest.approx(p_gray, abs=1e-9)
    assert s == pytest.approx(ssim(sr_gray[..., 0], hr_gray[..., 0], 2), abs=1e-12)
    # standard: replicated to RGB, float Y = 16 + 219 g / 255 -> the error shrinks by 219/255
    p, _ = psnr_ssim(sr, hr_gray, 2, "standard")
    assert p == pytest.approx(p_gray + 20 * math.log10(255 / 219), abs=1e-9)
    # RGB images: the protocols differ only by the rounding of Y
    hr = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    sr = np.clip(hr.astype(int) + rng.integers(-9, 10, hr.shape), 0, 255).astype(np.uint8)
    assert psnr_ssim(sr, hr, 3)[0] == pytest.approx(psnr(rgb_to_y(sr), rgb_to_y(hr), 3), abs=1e-12)
    assert psnr_ssim(sr, hr, 3, "matlab")[0] == pytest.approx(
        psnr(rgb_to_y(sr, True), rgb_to_y(hr, True), 3), abs=1e-12)
    assert psnr_ssim(sr, hr, 3, y_only=False)[0] == pytest.approx(psnr_rgb(sr, hr, 3), abs=1e-12)
    # a non-integer scale shaves ceil(scale)
    assert psnr_ssim(sr, hr, 2.5)[0] == pytest.approx(psnr(rgb_to_y(sr), rgb_to_y(hr), 3), abs=1e-12)


def test_bad_inputs():
    with pytest.raises(LightSRError):
        psnr_ssim(np.zeros((20, 20, 3), np.uint8), np.zeros((21, 20, 3), np.uint8), 2)
    with pytest.raises(LightSRError):
        psnr_ssim(np.zeros((20, 20, 3), np.uint8), np.zeros((20, 20, 3), np.uint8), 2, "nope")
    with pytest.raises(LightSRError):
        ssim(np.zeros((8, 8)), np.zeros((8, 8)))
