"""Any folder of HR images -> (name, LR, HR) uint8 pairs, as the SR benchmarks are built.

For each image file of the folder (sorted by name; the extensions of
:data:`lightsr.imageio.READ_EXTENSIONS`, hidden files and other extensions ignored):

1. read it as 8 bit (16-bit files are scaled to 8 bit, an alpha channel is dropped); a grayscale file
   stays one channel under the matlab protocol and is replicated to RGB under the standard one
   (:data:`lightsr.metrics.PROTOCOLS` decides);
2. crop HR bottom/right so that ``LR = floor(H / s)`` and ``HR = round(LR * s)`` (for an integer
   scale: HR cropped to a multiple of ``s``);
3. LR = MATLAB bicubic :func:`~lightsr.resize.imresize` of HR as float in [0, 1] to the LR size,
   x255, rounded and clipped to uint8; with ``jpeg=q`` (``lightsr eval --jpeg q``) then saved as
   JPEG at quality ``q`` and decoded, the compressed input users bring.

Non-integer scales (x2.5, continuous models) follow LIIF/HIIF's benchmark wrapper
(``SRImplicitDownsampled``): ``h_lr = floor(H / s + 1e-9)``, HR cropped to ``round(h_lr * s)``, LR
resized to the explicit size ``(h_lr, w_lr)`` (MATLAB then uses ``scale = out / in`` per axis);
LIIF's resize is PIL bicubic, here it is MATLAB's, as for the integer scales. An asymmetric scale
(s_h, s_w) (continuous models, ``lightsr eval --scale 2x3``) applies the same rule per axis.

The LR of a gray file is computed on its single channel (identical to downscaling the replicated
RGB image), so the LR cache does not depend on the protocol. The cache lives in
``<cache_dir>/v2/<folder name>-<hash of its path>/x<scale>/<file name>.<content hash>.npy``
(``cache_dir`` defaults to ``$LIGHTSR_CACHE/benchmark``, :mod:`lightsr.cache`); an edited file
gets a new entry, and an unwritable cache is silently skipped.
"""
from __future__ import annotations

import hashlib
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import LightSRError
from ..layers.coords import norm_scale
from .. import imageio
from ..imageio import READ_EXTENSIONS
from ..metrics import get_protocol

__all__ = ["Pair", "BenchmarkFolder", "list_images", "lr_size", "crop_hr", "make_lr",
           "to_rgb", "default_cache_dir", "scale_text"]

_CACHE_VERSION = "v2"  # bump when the LR recipe changes


@dataclass
class Pair:
    name: str  # file name, e.g. "baby.png"
    lr: np.ndarray  # (h, w, C) uint8, C = 3, or 1 for a gray file under the matlab protocol
    hr: np.ndarray  # (H, W, C) uint8, same C

    @property
    def gray(self) -> bool:
        return self.hr.shape[2] == 1


def to_rgb(img: np.ndarray) -> np.ndarray:
    """(H, W, 1) or (H, W) gray -> (H, W, 3); RGB unchanged."""
    if img.ndim == 2:
        img = img[:, :, None]
    return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img


def as_8bit(img: np.ndarray) -> np.ndarray:
    """(H, W, C) uint8/uint16 with C in 1, 3, 4 -> uint8 with C in 1, 3 (alpha dropped)."""
    if img.dtype == np.uint16:
        img = ((img.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise LightSRError(f"unsupported image dtype {img.dtype}")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 4:
        img = img[..., :3]
    elif img.shape[2] == 2:
        img = img[..., :1]
    return np.ascontiguousarray(img)


def scale_text(scale) -> str:
    """``4``, ``2.5`` or ``2x3`` (s_h x s_w), for messages and cache folders."""
    s = norm_scale(scale)
    return f"{s[0]:g}x{s[1]:g}" if isinstance(s, tuple) else f"{s:g}"


def lr_size(hr_hw: tuple[int, int], scale) -> tuple[int, int]:
    """LR size of an HR image: ``floor(H / s)`` per axis (LIIF's ``+ 1e-9`` guards x2.5 etc.);
    ``scale`` is a number or an (s_h, s_w) pair."""
    from ..layers.coords import parse_scale

    return tuple(int(math.floor(n / s + 1e-9)) for n, s in zip(hr_hw, parse_scale(scale)))  # type: ignore[return-value]


def crop_hr(hr: np.ndarray, scale) -> np.ndarray:
    """Crop bottom/right to ``round(floor(H / s) * s)`` per axis: a multiple of an integer scale."""
    from ..layers.coords import parse_scale

    h, w = lr_size(hr.shape[:2], scale)
    if h < 1 or w < 1:
        raise LightSRError(f"image of {hr.shape[0]}x{hr.shape[1]} is too small for x{scale_text(scale)}")
    sh, sw = parse_scale(scale)
    return hr[: int(round(h * sh)), : int(round(w * sw))]


def make_lr(hr_u8: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB-bicubic LR of an (already cropped) uint8 HR: float [0, 1] in, rounded uint8 out."""
    from ..layers.coords import parse_scale
    from ..resize import imresize

    # the HR is already cropped to round(h_lr * s), so round(H / s) gives back h_lr (floor would not:
    # 344 -> h_lr 137 -> HR 342 at x2.5, and floor(342 / 2.5) = 136)
    size = tuple(int(round(n / s)) for n, s in zip(hr_u8.shape[:2], parse_scale(scale)))
    out = imresize(hr_u8.astype(np.float64) / 255.0, output_size=size)
    return np.clip(np.floor(out * 255.0 + 0.5), 0, 255).astype(np.uint8)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files of a folder, sorted; a clear error for a missing, non-folder or image-less path."""
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise LightSRError(f"data folder not found: {folder}")
    if not folder.is_dir():
        raise LightSRError(f"{folder} is not a folder of images")
    try:
        files = imageio.list_images(folder)
    except PermissionError:
        raise LightSRError(f"cannot read data folder {folder}: permission denied") from None
    if not files:
        raise LightSRError(f"no images ({', '.join(READ_EXTENSIONS)}) in data folder {folder}")
    return files


def default_cache_dir() -> Path:
    from ..cache import cache_dir

    return cache_dir("benchmark")


def _scale_tag(scale) -> str:
    return f"x{scale_text(scale)}"


class BenchmarkFolder:
    """The (LR, HR) pairs of one folder of HR images at one scale, under one protocol.

    >>> for pair in BenchmarkFolder("../shared/data/benchmark/Set5", 4): ...
    """

    def __init__(self, folder: str | os.PathLike, scale: float, protocol: str = "standard",
                 cache_dir: str | os.PathLike | None = None, cache: bool = True,
                 files: list[Path] | None = None, name: str | None = None, jpeg: int | None = None):
        """``files``: only these images (of ``folder``), e.g. a training folder's held-out ones;
        ``name``: the key of the results (default: the folder's name); ``jpeg``: the LR is saved as
        JPEG at this quality and decoded (Pillow, 4:2:0), as users' compressed photos are."""
        if jpeg is not None and not (isinstance(jpeg, int) and 1 <= jpeg <= 100):
            raise LightSRError(f"the JPEG quality must be an integer from 1 to 100, got {jpeg!r}")
        self.jpeg = jpeg
        if isinstance(scale, (int, float)) and not (math.isfinite(scale) and scale > 1):
            raise LightSRError(f"the evaluation scale must be a number above 1, got {scale:g}")
        self.scale = norm_scale(scale)  # a number, or (s_h, s_w): each above 1
        if isinstance(self.scale, tuple) and min(self.scale) <= 1:
            raise LightSRError(f"the evaluation scale must be above 1 on both axes, got {scale_text(self.scale)}")
        self.folder = Path(folder).expanduser()
        self.name = name or self.folder.resolve().name
        self.protocol = get_protocol(protocol)
        self.files = [Path(f) for f in files] if files is not None else list_images(self.folder)
        root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        key = hashlib.sha1(str(self.folder.resolve()).encode()).hexdigest()[:12]
        self.cache_dir = root / _CACHE_VERSION / f"{self.name}-{key}" / _scale_tag(self.scale) if cache else None

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self) -> Iterator[Pair]:
        for path in self.files:
            yield self.load(path)

    def load(self, path: Path) -> Pair:
        from ..imageio import read_image

        hr = as_8bit(read_image(path))
        hr = crop_hr(hr, self.scale)
        lr = self._cached_lr(path, hr)
        if self.jpeg is not None:
            from .degradations import jpeg_u8

            lr = jpeg_u8(lr, self.jpeg)
        if self.protocol.gray_to_rgb:
            hr, lr = to_rgb(hr), to_rgb(lr)
        return Pair(path.name, lr, hr)

    def _cached_lr(self, path: Path, hr: np.ndarray) -> np.ndarray:
        shape = (*lr_size(hr.shape[:2], self.scale), hr.shape[2])
        if self.cache_dir is None:
            return make_lr(hr, self.scale)
        digest = hashlib.sha1(path.read_bytes()).hexdigest()[:16]
        entry = self.cache_dir / f"{path.name}.{digest}.npy"
        try:
            lr = np.load(entry, allow_pickle=False)
            if lr.shape == shape and lr.dtype == np.uint8:
                return lr
        except (OSError, ValueError):
            pass
        lr = make_lr(hr, self.scale)
        self._store(entry, lr, path.name)
        return lr

    def _store(self, entry: Path, lr: np.ndarray, file_name: str) -> None:
        tmp = None
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            for old in entry.parent.glob("*.npy"):  # stale entries of an edited file
                if old.name.rsplit(".", 2)[0] == file_name and old != entry:
                    old.unlink(missing_ok=True)
            fd, tmp = tempfile.mkstemp(dir=entry.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                np.save(f, lr, allow_pickle=False)
            os.replace(tmp, entry)
            tmp = None
        except OSError:
            pass  # caching is an optimisation only
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
