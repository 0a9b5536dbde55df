"""Training patches: random HR crops, MATLAB-bicubic LR, flips/rotations, fixed or continuous scale.

Every sample is a pure function of ``(seed, g)``, where ``g`` is its *global sample index*
(``g = step * global_batch + rank * batch + k``). Nothing depends on iteration order, worker
processes or earlier samples, which gives for free:

* exact resume: the data position is just the step counter;
* deterministic DDP sharding: rank ``r`` of ``W`` takes a contiguous slice of every global batch,
  so ``W`` processes with batch ``b`` see exactly the samples 1 process with batch ``W*b`` sees;
* any number of DataLoader workers, same stream.

Images are visited epoch by epoch: epoch ``e`` is a seeded permutation of the (repeated) image list,
so every image is used ``repeat`` times per epoch.

Two datasets:

* :class:`FixedScalePatches` (discrete models): the HR image is cropped to a multiple of ``scale``
  and its LR made once (MATLAB bicubic on float [0, 1], rounded to 8 bit, exactly the benchmark
  protocol), then aligned patches ``(lr: 3 x P x P, hr: 3 x sP x sP)`` are cut.
* :class:`ContinuousScalePatches` (implicit heads, LIIF/HIIF/C2D stage 1/AnySR): a scale ``s`` is
  drawn per batch (``scale_mode="batch"``: every sample of a step shares it) or per sample
  (``"sample"``, C2D / LIIF); an HR patch of ``round(s*P)`` pixels is cut and bicubic-resized to the
  fixed LR size ``P`` (on the fly, as LIIF). ``queries="full"`` returns the whole HR patch with its
  coordinate grid; ``queries="fast"`` is the HIIF/AnySR "fast" sampler (design notes 5.2): ``P*P`` HR
  pixels drawn without replacement and laid out as a ``P x P`` grid of coordinates and RGB values.

Coordinates follow LIIF's ``make_coord``: pixel centres in [-1, 1], ``[..., 0]`` along H, ``[..., 1]``
along W; the cell of an HR pixel is ``(2/H_hr, 2/W_hr)``.
"""
from __future__ import annotations

import hashlib
import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import LightSRError

from .. import imageio
from ..imageio import READ_EXTENSIONS
from .benchmark import as_8bit, to_rgb

from ..layers.coords import make_coord  # one coordinate convention for the package


# ----------------------------------------------------------------------------------------------
# images


def list_images(dirs: str | Path | Sequence[str | Path]) -> list[Path]:
    """Sorted image files of one or more folders (recursive; hidden files and folders skipped:
    :func:`lightsr.imageio.list_images`); a clear error for none."""
    if isinstance(dirs, (str, Path)):
        dirs = [dirs]
    files: list[Path] = []
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise LightSRError(f"training folder not found: {d}")
        found = imageio.list_images(d, recursive=True)
        if not found:
            raise LightSRError(f"no images ({', '.join(READ_EXTENSIONS)}) in {d}")
        files += found
    return files


def held_out(dirs: str | Path | Sequence[str | Path], n: int) -> list[Path]:
    """``n`` validation images held aside from the *first* training folder: evenly spaced over its
    sorted file list (deterministic, independent of the machine), at most a fifth of the folder
    (none for a folder of under 5 images). The training set excludes them."""
    if n <= 0:
        return []
    first = dirs if isinstance(dirs, (str, Path)) else dirs[0]
    files = list_images(first)
    n = min(n, len(files) // 5)  # never more than a fifth of the folder
    if n <= 0:
        return []
    idx = np.unique(np.linspace(0, len(files) - 1, n).round().astype(int))
    return [files[i] for i in idx]


def load_rgb(path: Path) -> np.ndarray:
    """8-bit RGB (H, W, 3); grayscale replicated, alpha dropped (the benchmark protocol's rule)."""
    from ..imageio import read_image

    return np.ascontiguousarray(to_rgb(as_8bit(read_image(path))))


def to_tensor(a: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (3, H, W) in [0, 1]."""
    return torch.from_numpy(np.array(a, copy=True)).permute(2, 0, 1).float().div_(255.0)


def bicubic_lr(hr: torch.Tensor, scale: float | None = None, size: tuple[int, int] | None = None,
               quantize: bool = True) -> torch.Tensor:
    """MATLAB bicubic down-scaling of float [0, 1] ``hr`` (C, H, W); rounded to 8 bit like the
    benchmark LR images (``quantize``)."""
    from ..resize import imresize

    lr = imresize(hr, scale=None if scale is None else 1.0 / scale, output_size=size)
    if quantize:
        lr = lr.mul(255.0).round_().clamp_(0, 255).div_(255.0)
    return lr


def augment(rng: np.random.Generator, *tensors: torch.Tensor) -> list[torch.Tensor]:
    """The same random hflip / vflip / transpose (= the 8 rot90-flip symmetries) on every tensor
    whose last two dims are (H, W)."""
    hflip, vflip, transpose = rng.random(3) < 0.5
    out = []
    for t in tensors:
        if hflip:
            t = t.flip(-1)
        if vflip:
            t = t.flip(-2)
        if transpose:
            t = t.transpose(-2, -1)
        out.append(t.contiguous())
    return out


class _ImageBank:
    """All training images held in memory as uint8 (BSDS400+T91 ~ 200 MB)."""

    def __init__(self, dirs, min_size: int = 1, exclude: Sequence[Path] = ()):
        drop = {Path(p).resolve() for p in exclude}
        self.files = [p for p in list_images(dirs) if p.resolve() not in drop]
        if not self.files:
            raise LightSRError("no training images left once the validation images are held out")
        self.images = [load_rgb(p) for p in self.files]
        small = [p.name for p, a in zip(self.files, self.images) if min(a.shape[:2]) < min_size]
        if small:
            keep = [i for i, a in enumerate(self.images) if min(a.shape[:2]) >= min_size]
            if not keep:
                raise LightSRError(f"every training image is smaller than the {min_size}px patch")
            self.files = [self.files[i] for i in keep]
            self.images = [self.images[i] for i in keep]
        self.skipped = small

    def __len__(self) -> int:
        return len(self.images)


# ----------------------------------------------------------------------------------------------
# deterministic index -> sample


class _PatchBase(Dataset):
    """Map-style dataset indexed by the global sample index ``g`` (unbounded)."""

    def __init__(self, dirs, lr_patch: int, global_batch: int, seed: int = 0, repeat: int = 1,
                 augment: bool = True, min_size: int = 1, exclude: Sequence[Path] = ()):
        if lr_patch < 1 or global_batch < 1:
            raise LightSRError("patch size and batch size must be positive")
        self.bank = _ImageBank(dirs, min_size=min_size, exclude=exclude)
        self.lr_patch = int(lr_patch)
        self.global_batch = int(global_batch)
        self.seed = int(seed)
        self.repeat = max(1, int(repeat))
        self.augment = augment

    @property
    def epoch_len(self) -> int:
        """Samples per epoch (images x repeat)."""
        return len(self.bank) * self.repeat

    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(self.epoch_len / self.global_batch))

    @lru_cache(maxsize=4)
    def _perm(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch, 0x5EED]).permutation(self.epoch_len) % len(self.bank)

    def image_index(self, g: int) -> int:
        return int(self._perm(g // self.epoch_len)[g % self.epoch_len])

    def rng(self, g: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, g, 0xDA7A])

    def __len__(self) -> int:  # nominal; indices beyond it are valid too
        return self.epoch_len

    def __getitem__(self, g: int) -> dict:
        raise NotImplementedError


class FixedScalePatches(_PatchBase):
    """Aligned (LR, HR) patches at an integer scale; LR of the whole image made once, cached
    (``cache_dir``: also on disk, keyed by path, size and mtime, as ``x{scale}/<stem>.<key>.npy``).
    Another ``degradation`` preset (:mod:`.degradations`) makes the LR patch from the HR patch instead,
    its random choices seeded by ``(seed, g)`` too; the crop and flips are the ``bicubic`` stream's."""

    def __init__(self, dirs, scale: int, lr_patch: int = 48, global_batch: int = 16, seed: int = 0,
                 repeat: int = 1, augment: bool = True, cache_dir: str | Path | None = None,
                 exclude: Sequence[Path] = (), degradation: str = "bicubic"):
        from .degradations import get_degradation

        if int(scale) != scale or scale < 1:
            raise LightSRError(f"fixed-scale training needs an integer scale, got {scale}")
        self.scale = int(scale)
        self.degradation = get_degradation(degradation)  # lightsr.data.degradations.PRESETS
        super().__init__(dirs, lr_patch, global_batch, seed, repeat, augment,
                         min_size=lr_patch * int(scale), exclude=exclude)
        self._lr: dict[int, np.ndarray] = {}
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None

    def pair(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Image ``i`` mod-cropped (uint8 HR) and its 8-bit MATLAB-bicubic LR (computed once, kept in
        memory and, with a cache folder, on disk)."""
        s = self.scale
        a = self.bank.images[i]
        hr = a[: a.shape[0] - a.shape[0] % s, : a.shape[1] - a.shape[1] % s]
        if i not in self._lr:
            entry = None
            if self.cache_dir is not None:
                st = self.bank.files[i].stat()
                key = hashlib.sha1(f"{self.bank.files[i].resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
                entry = self.cache_dir / f"x{s}" / f"{self.bank.files[i].stem}.{key.hexdigest()[:16]}.npy"
                if entry.is_file():
                    try:
                        self._lr[i] = np.load(entry)
                    except (OSError, ValueError):
                        entry.unlink(missing_ok=True)
            if i not in self._lr:
                lr = bicubic_lr(to_tensor(hr), scale=s)
                self._lr[i] = lr.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
                if entry is not None:
                    try:  # an unwritable cache is skipped
                        entry.parent.mkdir(parents=True, exist_ok=True)
                        tmp = entry.with_suffix(f".{os.getpid()}.tmp.npy")
                        np.save(tmp, self._lr[i])
                        os.replace(tmp, entry)
                    except OSError:
                        pass
        return hr, self._lr[i]

    def precompute(self) -> None:
        """Make every LR image now (before forking DataLoader workers, so they share it)."""
        if not self.degradation.is_bicubic:  # LR patches are made per sample
            return
        for i in range(len(self.bank)):
            self.pair(i)

    def __getitem__(self, g: int) -> dict:
        if not self.degradation.is_bicubic:
            return self._degraded(int(g))
        g = int(g)
        rng = self.rng(g)
        hr, lr = self.pair(self.image_index(g))
        p, s = self.lr_patch, self.scale
        y = int(rng.integers(0, lr.shape[0] - p + 1))
        x = int(rng.integers(0, lr.shape[1] - p + 1))
        lr_t = to_tensor(lr[y:y + p, x:x + p])
        hr_t = to_tensor(hr[y * s:(y + p) * s, x * s:(x + p) * s])
        if self.augment:
            lr_t, hr_t = augment(rng, lr_t, hr_t)
        return {"lr": lr_t, "hr": hr_t}

    def _degraded(self, g: int) -> dict:
        """The ``bicubic`` stream's crop and flips; the LR patch degraded from the HR patch, its random
        choices drawn from ``(seed, g, 0xDE6A)``."""
        from .degradations import degrade

        rng = self.rng(g)
        a = self.bank.images[self.image_index(g)]
        p, s = self.lr_patch, self.scale
        y = int(rng.integers(0, a.shape[0] // s - p + 1))  # the ranges of the whole-image LR's crop
        x = int(rng.integers(0, a.shape[1] // s - p + 1))
        hr_t = to_tensor(a[y * s:(y + p) * s, x * s:(x + p) * s])
        lr_t = degrade(hr_t, self.degradation, np.random.default_rng([self.seed, g, 0xDE6A]), s)
        if self.augment:
            lr_t, hr_t = augment(rng, lr_t, hr_t)
        return {"lr": lr_t, "hr": hr_t}


class uniform_scale:  # noqa: N801 - reads like the function it replaces; a class so workers can pickle it
    """``s ~ U(lo, hi)``: the LIIF / HIIF / C2D stage-1 distribution; ``f(rng, step) -> s``."""

    def __init__(self, lo: float = 1.0, hi: float = 4.0):
        self.lo, self.hi = float(lo), float(hi)

    def __call__(self, rng: np.random.Generator, step: int) -> float:
        return float(rng.uniform(self.lo, self.hi))


class ContinuousScalePatches(_PatchBase):
    """LR patch fixed at ``lr_patch``; HR patch ``round(s * lr_patch)`` for a scale drawn per batch or
    per sample by ``scale_fn(rng, step)`` (default U(1, 4))."""

    def __init__(self, dirs, lr_patch: int = 48, global_batch: int = 16, seed: int = 0,
                 scale_fn: Callable[[np.random.Generator, int], float] | None = None,
                 scale_max: float = 4.0, scale_mode: str = "batch", queries: str = "fast",
                 repeat: int = 1, augment: bool = True, exclude: Sequence[Path] = ()):
        if scale_mode not in ("batch", "sample"):
            raise LightSRError(f"scale_mode must be 'batch' or 'sample', got {scale_mode!r}")
        if queries not in ("fast", "full"):
            raise LightSRError(f"queries must be 'fast' or 'full', got {queries!r}")
        if scale_mode == "sample" and queries == "full":
            raise LightSRError("per-sample scales need the 'fast' query grid (HR patches differ in size)")
        super().__init__(dirs, lr_patch, global_batch, seed, repeat, augment,
                         min_size=round(scale_max * lr_patch), exclude=exclude)
        self.scale_fn = scale_fn or uniform_scale(1.0, scale_max)
        self.scale_max = float(scale_max)
        self.scale_mode = scale_mode
        self.queries = queries

    def scale_at(self, g: int) -> float:
        """The scale of sample ``g``: shared by its whole global batch in ``"batch"`` mode."""
        step = g // self.global_batch
        if self.scale_mode == "batch":
            rng = np.random.default_rng([self.seed, step, 0x5CA1E])
        else:
            rng = np.random.default_rng([self.seed, g, 0x5CA1E])
        s = float(self.scale_fn(rng, step))
        if not (1.0 <= s <= self.scale_max + 1e-9):
            raise LightSRError(f"scale schedule gave x{s:g}, outside [1, {self.scale_max:g}]")
        return s

    def __getitem__(self, g: int) -> dict:
        g = int(g)
        rng = self.rng(g)
        s = self.scale_at(g)
        p = self.lr_patch
        h = w = round(s * p)  # HR patch = round(scale x LR)
        img = self.bank.images[self.image_index(g)]
        y = int(rng.integers(0, img.shape[0] - h + 1))
        x = int(rng.integers(0, img.shape[1] - w + 1))
        hr = to_tensor(img[y:y + h, x:x + w])
        if self.augment:
            (hr,) = augment(rng, hr)
        lr = bicubic_lr(hr, size=(p, p))
        coord = make_coord((h, w), flatten=False)  # (h, w, 2)
        cell = torch.tensor([2.0 / h, 2.0 / w])
        out = {"lr": lr, "cell": cell, "scale": torch.tensor([h / p, w / p], dtype=torch.float64)}
        if self.queries == "full":
            out.update(coord=coord, gt=hr)
        else:  # "fast": p*p HR pixels without replacement, as a p x p grid
            idx = torch.from_numpy(rng.permutation(h * w)[: p * p])
            out["coord"] = coord.reshape(-1, 2)[idx].reshape(p, p, 2)
            out["gt"] = hr.reshape(3, -1)[:, idx].reshape(3, p, p)
        return out


class GlobalBatchSampler(torch.utils.data.Sampler):
    """Yields, for steps ``start_step .. total_steps-1``, the global sample indices this rank owns:
    ``[step*B*W + rank*B + k for k < B]``. Deterministic; resume = start at another step."""

    def __init__(self, batch: int, world: int = 1, rank: int = 0, start_step: int = 0,
                 total_steps: int | None = None):
        self.batch, self.world, self.rank = int(batch), int(world), int(rank)
        self.start_step, self.total_steps = int(start_step), total_steps

    def __iter__(self):
        step = self.start_step
        gb = self.batch * self.world
        while self.total_steps is None or step < self.total_steps:
            base = step * gb + self.rank * self.batch
            yield list(range(base, base + self.batch))
            step += 1

    def __len__(self) -> int:
        if self.total_steps is None:
            raise TypeError("infinite sampler")
        return max(0, self.total_steps - self.start_step)
