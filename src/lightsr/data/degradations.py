"""Degradations: the LR training patch made from the HR patch as photos are degraded ("photos as users
bring them"), for fixed-scale training (:class:`lightsr.data.patches.FixedScalePatches`).

A *preset* (:data:`PRESETS`, chosen with ``lightsr train --degradation NAME`` and stored in the run's
``config.json`` as ``degradation``) is one or two *rounds*; a round is the classical degradation model

    y = JPEG_q( clip( (x * k)↓_r + n ) )          (BSRGAN: Zhang et al. 2021, eq. 1; Real-ESRGAN:
                                                  Wang et al. 2021, eq. 1 and its "second order")

applied stage by stage, each stage with its own probability and parameter range:

1. **blur** ``x * k``: a normalised Gaussian kernel ``k(p) ∝ exp(-½ pᵀ Σ⁻¹ p)``, ``p`` the integer
   offset from the kernel centre. Isotropic: ``Σ = σ² I``. Anisotropic (Real-ESRGAN §3.1, BSRGAN §3.1):
   ``Σ = R(θ) diag(σ₁², σ₂²) R(θ)ᵀ`` with ``σ₁, σ₂`` drawn independently from the range and
   ``θ ~ U(-π, π)``. Kernel side ``2⌈3 max(σ₁, σ₂)⌉ + 1`` (at most 21, Real-ESRGAN's largest),
   reflect padding.
2. **resize** ``↓_r``: one of ``matlab`` (MATLAB bicubic, :func:`lightsr.resize.imresize`, the benchmark
   protocol), ``bicubic`` / ``bilinear`` (``torch.nn.functional.interpolate``, anti-aliased) or ``area``
   (box average), chosen per sample (Real-ESRGAN draws among area / bilinear / bicubic the same way).
   The last round resizes to the LR patch size ``P``; the first of two rounds resizes to an intermediate
   side ``round(P * s**t)``, ``t ~ U(t_lo, t_hi)`` (``t = 0``: already at the LR size, ``t = 1``: no
   resize; log-uniform between the two), so the second round's blur acts at an intermediate scale.
3. **noise** ``+ n`` (then clipped to [0, 1]); Gaussian or Poisson, chosen per sample:
   Gaussian ``n ~ N(0, σ²)`` per pixel and channel, ``σ`` in 8-bit units (``σ/255`` on [0, 1]);
   Poisson (shot noise, Real-ESRGAN's ``generate_poisson_noise``) ``n = c (Poisson(256 x) / 256 - x)``
   with ``c`` the drawn scale (Real-ESRGAN counts the image's distinct values for the 256; a fixed 256,
   the 8-bit count, keeps it independent of the content). With ``gray_prob`` the noise is "gray"
   (Real-ESRGAN): one Gaussian field for all channels, or Poisson noise of the luma
   ``0.299 R + 0.587 G + 0.114 B`` added to every channel.
4. **JPEG** at quality ``q`` (integer, uniform in the range): Pillow's JPEG codec (libjpeg; encode the
   8-bit image, decode it). Real-ESRGAN uses a differentiable JPEG in the same place.

The LR patch is finally rounded to 8 bit (like the benchmark LR images). With two rounds the second runs
with probability ``second_prob`` (Real-ESRGAN's second-order model); otherwise round one alone resizes
to ``P``. With probability ``clean_prob`` (drawn first, only by presets that set it) a sample skips all
of this and is the MATLAB-bicubic LR of its HR patch, the clean input of the benchmark protocol.

Reproducibility: :func:`sample` draws every random choice of a sample (kernels, modes, levels, qualities,
noise seeds) from a generator the dataset seeds with ``(seed, g, 0xDE6A)``, ``g`` the global sample index,
and :func:`apply` is deterministic given those draws; so the LR patch, like the rest of the stream, is a
pure function of ``(seed, g)``. The crop and flips come from the dataset's own generator (unchanged), so
every preset sees the same HR patches as ``bicubic``.

The ``bicubic`` preset is no pipeline at all: the dataset keeps today's exact path (the whole image's
MATLAB-bicubic LR, made once and cached).
"""
from __future__ import annotations

import dataclasses
import io
import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import LightSRError

__all__ = ["Blur", "Resize", "Noise", "Jpeg", "Round", "Degradation", "PRESETS", "get_degradation",
           "RoundDraw", "sample", "apply", "degrade", "gaussian_kernel", "blur", "resize", "add_noise", "jpeg", "jpeg_u8"]

RESIZE_MODES = ("matlab", "bicubic", "bilinear", "area")


# ----------------------------------------------------------------------------------------------
# the parameters of a preset (one place: PRESETS below)


@dataclass(frozen=True)
class Blur:
    """Gaussian blur with probability ``prob``; ``sigma`` range in HR/intermediate pixels; anisotropic
    (two sigmas and a rotation) with probability ``aniso_prob``."""

    prob: float = 0.0
    sigma: tuple = (0.2, 2.0)
    aniso_prob: float = 0.5


@dataclass(frozen=True)
class Resize:
    """Resize mode drawn from ``modes`` with ``probs``; ``t`` the exponent range of the first of two
    rounds' intermediate size ``P * s**t`` (ignored by the last round, which resizes to ``P``)."""

    modes: tuple = ("bicubic", "bilinear", "area")
    probs: tuple = (1 / 3, 1 / 3, 1 / 3)
    t: tuple = (0.3, 0.8)


@dataclass(frozen=True)
class Noise:
    """Additive noise with probability ``prob``: Gaussian with probability ``gaussian_prob`` (``sigma`` in
    8-bit units), else Poisson (``poisson_scale``); "gray" (shared by the channels) with ``gray_prob``."""

    prob: float = 0.0
    gaussian_prob: float = 0.5
    sigma: tuple = (1.0, 10.0)
    poisson_scale: tuple = (0.05, 1.0)
    gray_prob: float = 0.4


@dataclass(frozen=True)
class Jpeg:
    """Pillow JPEG with probability ``prob`` at an integer quality uniform in ``quality`` (inclusive)."""

    prob: float = 0.0
    quality: tuple = (30, 95)


@dataclass(frozen=True)
class Round:
    """One round: blur -> resize -> noise -> JPEG."""

    blur: Blur = field(default_factory=Blur)
    resize: Resize = field(default_factory=Resize)
    noise: Noise = field(default_factory=Noise)
    jpeg: Jpeg = field(default_factory=Jpeg)


@dataclass(frozen=True)
class Degradation:
    """A preset: ``rounds`` (empty = today's whole-image MATLAB bicubic); the second round, when there
    is one, runs with probability ``second_prob``."""

    name: str
    rounds: tuple = ()
    second_prob: float = 0.0
    # with this probability a sample is left clean: the MATLAB-bicubic LR of the HR patch (the benchmark
    # protocol), so that a model trained on degraded LR keeps most of its quality on clean input
    clean_prob: float = 0.0

    @property
    def is_bicubic(self) -> bool:
        return not self.rounds


PRESETS: dict[str, Degradation] = {
    # today's LR: MATLAB bicubic of the whole image, 8 bit (the benchmark protocol); byte-identical stream
    "bicubic": Degradation("bicubic"),
    # MATLAB bicubic of the HR patch, then JPEG at q ~ U{30..95} on every sample
    "jpeg": Degradation("jpeg", rounds=(
        Round(resize=Resize(modes=("matlab",), probs=(1.0,)), jpeg=Jpeg(prob=1.0, quality=(30, 95))),)),
    # strong "photo" degradations (the first candidate for the photo model; results/photo.md):
    #   round 1: blur p=0.7, sigma 0.2-2.0 (half anisotropic) -> bicubic / bilinear / area (1/3 each)
    #            -> noise p=0.5: Gaussian sigma 1-10 (/255) or Poisson scale 0.05-1.0, 40 % gray
    #            -> JPEG p=0.7, q 30-95
    #   round 2 (p=0.3; round 1 then resizes to P*s**t, t in [0.3, 0.8]):
    #            blur p=0.5, sigma 0.2-1.0 -> resize to P -> noise p=0.4: sigma 1-6 or Poisson 0.05-0.5
    #            -> JPEG p=0.7, q 30-95
    "photo_strong": Degradation("photo_strong", second_prob=0.3, rounds=(
        Round(blur=Blur(prob=0.7, sigma=(0.2, 2.0), aniso_prob=0.5),
              resize=Resize(modes=("bicubic", "bilinear", "area"), probs=(1 / 3, 1 / 3, 1 / 3), t=(0.3, 0.8)),
              noise=Noise(prob=0.5, gaussian_prob=0.5, sigma=(1.0, 10.0), poisson_scale=(0.05, 1.0), gray_prob=0.4),
              jpeg=Jpeg(prob=0.7, quality=(30, 95))),
        Round(blur=Blur(prob=0.5, sigma=(0.2, 1.0), aniso_prob=0.5),
              resize=Resize(modes=("bicubic", "bilinear", "area"), probs=(1 / 3, 1 / 3, 1 / 3)),
              noise=Noise(prob=0.4, gaussian_prob=0.5, sigma=(1.0, 6.0), poisson_scale=(0.05, 0.5), gray_prob=0.4),
              jpeg=Jpeg(prob=0.7, quality=(30, 95))),
    )),
    # milder (the second candidate, results/photo.md): JPEG on most samples, MATLAB bicubic among the
    # resizes, less and weaker blur and noise, a rare second round
    #   round 1: blur p=0.4, sigma 0.2-1.2 -> matlab 0.4 / bicubic / bilinear / area 0.2 each
    #            -> noise p=0.3: Gaussian sigma 1-5 or Poisson 0.05-0.5 -> JPEG p=0.85, q 30-95
    #   round 2 (p=0.1): blur p=0.3, sigma 0.2-0.8 -> resize -> noise p=0.2, sigma 1-3 -> JPEG p=0.85
    "photo_mild": Degradation("photo_mild", second_prob=0.1, rounds=(
        Round(blur=Blur(prob=0.4, sigma=(0.2, 1.2), aniso_prob=0.5),
              resize=Resize(modes=("matlab", "bicubic", "bilinear", "area"), probs=(0.4, 0.2, 0.2, 0.2), t=(0.3, 0.8)),
              noise=Noise(prob=0.3, gaussian_prob=0.5, sigma=(1.0, 5.0), poisson_scale=(0.05, 0.5), gray_prob=0.4),
              jpeg=Jpeg(prob=0.85, quality=(30, 95))),
        Round(blur=Blur(prob=0.3, sigma=(0.2, 0.8), aniso_prob=0.5),
              resize=Resize(modes=("matlab", "bicubic", "bilinear", "area"), probs=(0.4, 0.2, 0.2, 0.2)),
              noise=Noise(prob=0.2, gaussian_prob=0.5, sigma=(1.0, 3.0), poisson_scale=(0.05, 0.3), gray_prob=0.4),
              jpeg=Jpeg(prob=0.85, quality=(30, 95))),
    )),
}
# JPEG first (the shipped photo model's preset since 2026-12-03, results/photo.md): photo_mild with JPEG on 95 % of the rounds,
# blur and noise at about half of photo_mild's rate and strength, MATLAB bicubic as the commonest resize,
# a rare second round and 10 % of the samples left clean
#   round 1: blur p=0.25, sigma 0.2-1.0 -> matlab 0.55 / bicubic / bilinear / area 0.15 each
#            -> noise p=0.15: Gaussian sigma 1-4 or Poisson 0.05-0.3 -> JPEG p=0.95, q 30-95
#   round 2 (p=0.05): photo_mild's second round
PRESETS["photo_jpeg"] = Degradation("photo_jpeg", second_prob=0.05, clean_prob=0.1, rounds=(
    Round(blur=Blur(prob=0.25, sigma=(0.2, 1.0), aniso_prob=0.5),
          resize=Resize(modes=("matlab", "bicubic", "bilinear", "area"), probs=(0.55, 0.15, 0.15, 0.15), t=(0.3, 0.8)),
          noise=Noise(prob=0.15, gaussian_prob=0.5, sigma=(1.0, 4.0), poisson_scale=(0.05, 0.3), gray_prob=0.4),
          jpeg=Jpeg(prob=0.95, quality=(30, 95))),
    PRESETS["photo_mild"].rounds[1],
))
# "photo", the first shipped photo model's preset: photo_mild's rounds, and 20 % of the samples left clean
# (MATLAB-bicubic LR), chosen by measurement (results/photo.md: photo_mild lost 0.64 dB on clean input);
# "photo_jpeg" above replaced it (0.03-0.05 dB better at every JPEG quality the photo model is used for)
PRESETS["photo"] = dataclasses.replace(PRESETS["photo_mild"], name="photo", clean_prob=0.2)


def get_degradation(name: str) -> Degradation:
    """The preset called ``name``; an unknown name is one line listing the presets."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise LightSRError(f"unknown degradation {name!r}; choose one of {', '.join(PRESETS)}") from None


# ----------------------------------------------------------------------------------------------
# drawing a sample's parameters


@dataclass
class RoundDraw:
    """Everything random about one round of one sample. ``None``: the stage is skipped."""

    blur: tuple | None  # (sigma1, sigma2, theta); isotropic: sigma1 == sigma2, theta == 0
    mode: str
    size: int  # output side of the resize
    noise: tuple | None  # ("gaussian", sigma/255, gray, seed) or ("poisson", scale, gray, seed)
    jpeg: int | None  # quality


def _draw_round(r: Round, rng: np.random.Generator, size: int) -> RoundDraw:
    b = None
    if rng.random() < r.blur.prob:
        lo, hi = r.blur.sigma
        if rng.random() < r.blur.aniso_prob:
            b = (float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi)), float(rng.uniform(-math.pi, math.pi)))
        else:
            s = float(rng.uniform(lo, hi))
            b = (s, s, 0.0)
    mode = str(r.resize.modes[int(rng.choice(len(r.resize.modes), p=np.asarray(r.resize.probs) / sum(r.resize.probs)))])
    n = None
    if rng.random() < r.noise.prob:
        gray = bool(rng.random() < r.noise.gray_prob)
        seed = int(rng.integers(0, 2**63 - 1))
        if rng.random() < r.noise.gaussian_prob:
            n = ("gaussian", float(rng.uniform(*r.noise.sigma)) / 255.0, gray, seed)
        else:
            n = ("poisson", float(rng.uniform(*r.noise.poisson_scale)), gray, seed)
    q = int(rng.integers(r.jpeg.quality[0], r.jpeg.quality[1] + 1)) if rng.random() < r.jpeg.prob else None
    return RoundDraw(b, mode, int(size), n, q)


def sample(deg: Degradation, rng: np.random.Generator, scale: int, lr_patch: int) -> list[RoundDraw]:
    """The random choices of one sample: one :class:`RoundDraw` per round that runs. The last resizes
    to ``lr_patch``; the first of two to ``round(lr_patch * scale**t)``."""
    if deg.is_bicubic:
        return []
    if deg.clean_prob > 0 and rng.random() < deg.clean_prob:  # no draw at all for presets without it
        return [RoundDraw(None, "matlab", int(lr_patch), None, None)]
    rounds = list(deg.rounds)
    if len(rounds) > 1 and not rng.random() < deg.second_prob:
        rounds = rounds[:1]
    draws = []
    for i, r in enumerate(rounds):
        if i < len(rounds) - 1:
            t = float(rng.uniform(*r.resize.t))
            size = max(lr_patch, min(lr_patch * scale, round(lr_patch * scale ** t)))
        else:
            size = lr_patch
        draws.append(_draw_round(r, rng, size))
    return draws


# ----------------------------------------------------------------------------------------------
# the stages (float (3, H, W) in [0, 1])


def gaussian_kernel(sigma1: float, sigma2: float, theta: float) -> torch.Tensor:
    """``k(p) ∝ exp(-½ pᵀ Σ⁻¹ p)``, ``Σ = R(θ) diag(σ₁², σ₂²) R(θ)ᵀ``, side ``2⌈3 max σ⌉ + 1`` (<= 21), sum 1."""
    half = min(10, int(math.ceil(3 * max(sigma1, sigma2))))
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    cov = rot @ np.diag([sigma1 ** 2, sigma2 ** 2]) @ rot.T
    inv = np.linalg.inv(cov)
    ax = np.arange(-half, half + 1, dtype=np.float64)
    yy, xx = np.meshgrid(ax, ax, indexing="ij")
    pts = np.stack([xx, yy], -1)  # (x, y) offsets
    k = np.exp(-0.5 * np.einsum("...i,ij,...j->...", pts, inv, pts))
    return torch.from_numpy(k / k.sum()).float()


def blur(x: torch.Tensor, sigma1: float, sigma2: float, theta: float) -> torch.Tensor:
    """``x * k`` with reflect padding. Isotropic kernels as two 1-D passes (``k = g gᵀ``), each a sum of
    ``2h + 1`` shifted copies (faster than ``conv2d`` on three one-channel planes); anisotropic ones by
    FFT of the padded image (the kernel is point-symmetric, so convolution = correlation, and the
    circular wrap falls in the cropped margin)."""
    k = gaussian_kernel(sigma1, sigma2, theta)
    h = k.shape[-1] // 2
    xp = F.pad(x[None], (h, h, h, h), mode="reflect")[0]  # (3, H+2h, W+2h)
    H, W = x.shape[-2:]
    if sigma1 == sigma2:
        g = k.sum(0).tolist()
        rows = xp[:, :, 0:W] * g[0]
        for i in range(1, len(g)):
            rows.add_(xp[:, :, i:i + W], alpha=g[i])
        out = rows[:, 0:H] * g[0]
        for i in range(1, len(g)):
            out.add_(rows[:, i:i + H], alpha=g[i])
        return out
    n = _fft_size(max(xp.shape[-2:]))  # zeros beyond the padded image never reach the kept window
    planes = xp.new_zeros(4, n, n)  # the three planes and the kernel, transformed at once
    planes[:3, :xp.shape[1], :xp.shape[2]] = xp
    planes[3, :k.shape[0], :k.shape[1]] = k
    f = torch.fft.rfft2(planes)
    y = torch.fft.irfft2(f[:3] * f[3], s=(n, n))
    return y[:, 2 * h:2 * h + H, 2 * h:2 * h + W].contiguous()


def _fft_size(n: int) -> int:
    """The smallest ``m >= n`` whose only prime factors are 2, 3 and 5 (a fast FFT length)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


@lru_cache(maxsize=64)
def _matlab_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """MATLAB bicubic's ``(n_out, n_in)`` resampling matrix of one axis (:func:`lightsr.resize.weight_matrix`)."""
    from ..resize import weight_matrix

    return torch.from_numpy(weight_matrix(n_in, n_out, n_out / n_in)).float()


def resize(x: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """``x`` resized to ``size x size`` by ``mode`` (:data:`RESIZE_MODES`)."""
    if mode == "matlab":  # MATLAB imresize (lightsr.resize) as two products with its per-axis matrices
        h, w = x.shape[-2:]
        return _matlab_matrix(h, size) @ x @ _matlab_matrix(w, size).T
    if mode in ("bicubic", "bilinear"):
        return F.interpolate(x[None], size=(size, size), mode=mode, align_corners=False, antialias=True)[0]
    if mode == "area":
        return F.interpolate(x[None], size=(size, size), mode="area")[0]
    raise LightSRError(f"unknown resize mode {mode!r}; choose one of {', '.join(RESIZE_MODES)}")


def add_noise(x: torch.Tensor, kind: str, level: float, gray: bool, seed: int) -> torch.Tensor:
    """Gaussian ``x + N(0, level²)`` or Poisson ``x + level (Poisson(256 x)/256 - x)``; gray: one field
    for every channel (Poisson: of the luma). Clipped to [0, 1]."""
    rng = np.random.default_rng(seed)
    c, h, w = x.shape
    if kind == "gaussian":
        n = rng.standard_normal((1 if gray else c, h, w), dtype=np.float32) * level
    elif kind == "poisson":
        base = x.numpy().astype(np.float64)
        if gray:
            base = (0.299 * base[0] + 0.587 * base[1] + 0.114 * base[2])[None]
        base = np.clip(np.round(base * 255.0), 0, 255) / 255.0
        n = ((rng.poisson(base * 256.0) / 256.0 - base) * level).astype(np.float32)
    else:
        raise LightSRError(f"unknown noise {kind!r}; choose gaussian or poisson")
    return (x + torch.from_numpy(n)).clamp_(0.0, 1.0)


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Pillow JPEG round trip of the 8-bit image at ``quality``."""
    a = x.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return torch.from_numpy(jpeg_u8(a, quality)).permute(2, 0, 1).float().div_(255.0)


def jpeg_u8(a: np.ndarray, quality: int) -> np.ndarray:
    """Pillow JPEG round trip of a uint8 ``(H, W, C)`` image (C = 1 or 3) at ``quality``, Pillow's
    default chroma subsampling (4:2:0), as phones and the web save photos."""
    from PIL import Image

    gray = a.shape[2] == 1
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a[:, :, 0] if gray else a)).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        b = np.array(im.convert("L" if gray else "RGB"))  # a writable copy
    return np.ascontiguousarray(b[:, :, None] if gray else b)


def apply(hr: torch.Tensor, draws: list[RoundDraw]) -> torch.Tensor:
    """The LR patch of float ``hr`` (3, H, W) under ``draws`` (from :func:`sample`), rounded to 8 bit."""
    x = hr
    for d in draws:
        if d.blur is not None:
            x = blur(x, *d.blur)
        x = resize(x, d.size, d.mode)
        if d.noise is not None:
            x = add_noise(x.clamp(0.0, 1.0), *d.noise)
        if d.jpeg is not None:
            x = jpeg(x, d.jpeg)
    return x.mul(255.0).round_().clamp_(0, 255).div_(255.0)


def degrade(hr: torch.Tensor, deg: Degradation, rng: np.random.Generator, scale: int) -> torch.Tensor:
    """:func:`sample` then :func:`apply`: the LR patch (side ``H / scale``) of the HR patch ``hr``."""
    if deg.is_bicubic:
        raise LightSRError("the 'bicubic' preset is the whole-image MATLAB bicubic LR, not a patch pipeline")
    return apply(hr, sample(deg, rng, scale, hr.shape[-1] // scale))
