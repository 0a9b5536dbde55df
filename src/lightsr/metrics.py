"""PSNR / SSIM of 8-bit images and the two evaluation protocols of the SR literature.

The protocols (../shared/data/README.md) live in :data:`PROTOCOLS`, the one place that knows how they
differ; :func:`psnr_ssim` and :mod:`lightsr.data.benchmark` both read it.

* **standard** (BasicSR, used by SwinIR, HiT-SR, MambaIR, C2D-ISR...): a grayscale file is replicated
  to RGB; Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 of the uint8 image scaled to [0, 1], times
  255 and kept as float.
* **matlab** (older papers' bicubic tables): Y rounded to integers (MATLAB ``rgb2ycbcr`` on uint8); a
  grayscale file is compared on its own channel (an RGB output of the model is brought back to
  gray with the BT.601 luma 0.299/0.587/0.114 = (Y - 16) 255/219, rounded).

In both, ``scale`` pixels are shaved from every border (``ceil(scale)`` for non-integer scales),
PSNR uses peak 255, SSIM an 11x11 Gaussian window (sigma 1.5) over the valid region with
C1 = (0.01 255)^2, C2 = (0.03 255)^2, averaged over channels for RGB (BasicSR ``calculate_ssim``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from .errors import LightSRError

__all__ = ["Protocol", "PROTOCOLS", "get_protocol", "rgb_to_y", "rgb_to_gray", "shave_border", "psnr", "ssim",
           "psnr_rgb", "ssim_rgb", "psnr_ssim"]


@dataclass(frozen=True)
class Protocol:
    name: str
    round_y: bool  # Y rounded to integers (MATLAB rgb2ycbcr on uint8) or kept as float
    gray_to_rgb: bool  # grayscale files replicated to RGB from the start, or kept on one channel


PROTOCOLS = {
    "standard": Protocol("standard", round_y=False, gray_to_rgb=True),
    "matlab": Protocol("matlab", round_y=True, gray_to_rgb=False),
}


def get_protocol(protocol: str | Protocol) -> Protocol:
    if isinstance(protocol, Protocol):
        return protocol
    if protocol not in PROTOCOLS:
        raise LightSRError(f"unknown protocol {protocol!r}; choose {' or '.join(PROTOCOLS)}")
    return PROTOCOLS[protocol]


def _rgb(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise LightSRError(f"expected an (H, W, 3) RGB image, got shape {img.shape}")
    return img.astype(np.float64)


def rgb_to_y(img: np.ndarray, rounded: bool = False) -> np.ndarray:
    """BT.601 luma of an (H, W, 3) uint8 image on the [16, 235] scale, float64 (rounded if asked)."""
    x = _rgb(img) / 255.0
    y = 16.0 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2])
    return np.floor(y + 0.5) if rounded else y  # MATLAB rounds half away from zero (y > 0)


def rgb_to_gray(img: np.ndarray, rounded: bool = True) -> np.ndarray:
    """BT.601 luma on the 0-255 scale: 0.299 R + 0.587 G + 0.114 B = (Y - 16) * 255 / 219.

    It maps a gray image replicated to RGB back to exactly its gray values.
    """
    x = _rgb(img)
    g = (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 219.0
    return np.floor(g + 0.5) if rounded else g


def shave_border(img: np.ndarray, shave: int) -> np.ndarray:
    if shave <= 0:
        return img
    if img.shape[0] <= 2 * shave or img.shape[1] <= 2 * shave:
        raise LightSRError(f"image of {img.shape[0]}x{img.shape[1]} is too small to shave {shave} pixels")
    return img[shave:-shave, shave:-shave]


def _pair(sr: np.ndarray, hr: np.ndarray, shave: int) -> tuple[np.ndarray, np.ndarray]:
    sr, hr = np.asarray(sr, dtype=np.float64), np.asarray(hr, dtype=np.float64)
    if sr.shape != hr.shape:
        raise LightSRError(f"SR and HR shapes differ: {sr.shape} vs {hr.shape}")
    return shave_border(sr, shave), shave_border(hr, shave)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def psnr(sr: np.ndarray, hr: np.ndarray, shave: int = 0) -> float:
    """PSNR (peak 255) of two single-channel images on the 0-255 scale, ``shave`` pixels cropped."""
    return _psnr(*_pair(sr, hr, shave))


def psnr_rgb(sr: np.ndarray, hr: np.ndarray, shave: int = 0) -> float:
    """PSNR over all channels of (H, W, C) images (one MSE over every value)."""
    return _psnr(*_pair(sr, hr, shave))


def _gaussian(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """cv2.getGaussianKernel(11, 1.5): the 1-D factor of the separable 11x11 window."""
    g = np.exp(-((np.arange(size) - (size - 1) / 2) ** 2) / (2 * sigma ** 2))
    return g / g.sum()


_GAUSS = _gaussian()


def _filter_valid(x: np.ndarray) -> np.ndarray:
    """``x`` (..., H, W) filtered by the 11x11 Gaussian over the valid region (separable, float64)."""
    n = len(_GAUSS)
    h, w = x.shape[-2] - n + 1, x.shape[-1] - n + 1
    rows = _GAUSS[0] * x[..., 0:h, :]
    for k in range(1, n):
        rows += _GAUSS[k] * x[..., k:k + h, :]
    out = _GAUSS[0] * rows[..., 0:w]
    for k in range(1, n):
        out += _GAUSS[k] * rows[..., k:k + w]
    return out


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two 2-D float64 images (0-255 scale), valid region (BasicSR ``_ssim``)."""
    if min(a.shape) < 11:
        raise LightSRError(f"image of {a.shape[0]}x{a.shape[1]} is smaller than the 11x11 SSIM window")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu1, mu2, e11, e22, e12 = _filter_valid(np.stack([a, b, a * a, b * b, a * b]))
    s11, s22, s12 = e11 - mu1 * mu1, e22 - mu2 * mu2, e12 - mu1 * mu2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1 * mu1 + mu2 * mu2 + c1) * (s11 + s22 + c2))
    return float(m.mean())


def ssim(sr: np.ndarray, hr: np.ndarray, shave: int = 0) -> float:
    """SSIM of two single-channel images on the 0-255 scale, ``shave`` pixels cropped."""
    return _ssim(*_pair(sr, hr, shave))


def ssim_rgb(sr: np.ndarray, hr: np.ndarray, shave: int = 0) -> float:
    """Mean over channels of the per-channel SSIM of (H, W, C) images."""
    a, b = _pair(sr, hr, shave)
    if a.ndim == 2:
        return _ssim(a, b)
    return float(np.mean([_ssim(a[..., c], b[..., c]) for c in range(a.shape[2])]))


def shave_for(scale: float) -> int:
    """Border shaved for a scale: the scale itself, rounded up when it is not an integer."""
    return int(math.ceil(float(scale) - 1e-9))


def psnr_ssim(sr_u8: np.ndarray, hr_u8: np.ndarray, scale: float, protocol: str | Protocol = "standard",
              y_only: bool = True) -> tuple[float, float]:
    """(PSNR, SSIM) of an SR output against its HR under a protocol.

    ``sr_u8``: (H, W, 3) uint8 model output. ``hr_u8``: (H, W, 3) uint8, or (H, W) / (H, W, 1) for a
    grayscale file. ``y_only=False`` gives the RGB variants (on the gray channel for a grayscale file
    under the matlab protocol).
    """
    p = get_protocol(protocol)
    sr, hr = np.asarray(sr_u8), np.asarray(hr_u8)
    if hr.ndim == 3 and hr.shape[2] == 1:
        hr = hr[..., 0]
    if sr.ndim == 3 and sr.shape[2] == 1:
        sr = np.repeat(sr, 3, axis=2)
    if sr.ndim != 3 or sr.shape[2] != 3:
        raise LightSRError(f"SR output must be (H, W, 3), got shape {sr.shape}")
    shave = shave_for(scale)
    if hr.ndim == 2:  # a grayscale file
        if p.gray_to_rgb:
            hr = np.repeat(hr[..., None], 3, axis=2)
        else:  # compared on its own channel
            g = rgb_to_gray(sr, rounded=True)
            return psnr(g, hr, shave), ssim(g, hr, shave)
    if y_only:
        ys, yh = rgb_to_y(sr, p.round_y), rgb_to_y(hr, p.round_y)
        return psnr(ys, yh, shave), ssim(ys, yh, shave)
    return psnr_rgb(sr, hr, shave), ssim_rgb(sr, hr, shave)
