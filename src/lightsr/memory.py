"""Process memory: what this process holds (Linux ``/proc``), handing freed heap back to the OS, and the
``--max-memory`` plan of tile sizes (:class:`TilePlanner`, used by :class:`lightsr.upscaler.Upscaler`).

Where there is no ``/proc`` (macOS, Windows) or no glibc, the readings are None and handing memory
back does nothing; the plan then falls back to an estimate.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Callable

import torch
from torch import nn

from .errors import LightSRError

# --max-memory: the plan of ``TilePlanner.tile_for_budget`` (issue 29; benchmarks/peak_memory.py --max-memory)
BUDGET_SAFETY = 1.5  # x the measured working memory per pixel: tiles in a run cost up to ~1.4 x a probe
BUDGET_FILL = 0.8  # plan to this share of the budget: allocator slack, fragmentation between tiles
ENCODER_COPY = 4 / 3  # writing the output, Pillow holds it again, RGB as 4 bytes a pixel (measured: 1.37)
TRIM_BYTES = 1 << 25  # below 32 MB of work freed, handing pages back costs more than it saves


def format_size(nbytes: float) -> str:
    """Bytes as --max-memory writes them: 1.5G, 640M."""
    for unit, mult in (("G", 2**30), ("M", 2**20), ("K", 2**10)):
        if nbytes >= mult:
            return f"{nbytes / mult:.3g}{unit}"
    return f"{nbytes:.0f}B"


def proc_status(key: str) -> int | None:
    """A ``/proc/self/status`` memory line in bytes (``VmRSS``, ``VmHWM``); None where there is none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS record of this process to its current RSS (Linux); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def trimmed_rss() -> int | None:
    """This process's resident memory (bytes) once freed heap is handed back; None without /proc."""
    trim = malloc_trim()
    if trim is not None:
        trim(0)
    return proc_status("VmRSS")


def peak_growth(fn) -> int | None:
    """Peak growth of this process's resident memory while ``fn()`` runs, in bytes, as the kernel
    records it (Linux); None where the peak cannot be reset and read."""
    trim = malloc_trim()
    if trim is not None:
        trim(0)  # freed heap back to the OS first: a call must not hide in pages kept from earlier work
    if not reset_peak_rss():
        return None
    before = proc_status("VmRSS")
    fn()
    peak = proc_status("VmHWM")
    if before is None or peak is None:
        return None
    return max(peak - before, 0)


@functools.lru_cache(maxsize=1)
def malloc_trim():
    """glibc's ``malloc_trim`` (call it with 0), or None where there is none."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): nothing to do
        return None


def release_freed_memory(size: int) -> None:
    """Hand freed memory back to the OS (glibc's ``malloc_trim``; a no-op elsewhere) after work on
    ``size`` bytes, when that is at least :data:`TRIM_BYTES`.

    A tiled run frees a band of tiles at a time, but glibc keeps freed heap pages: without this a
    2000x1500 x4 run peaks about 150 MB higher (benchmarks/peak_memory.py). A call costs up to
    ~1.5 ms, hence the threshold (small images in a folder would pay it per image)."""
    trim = malloc_trim() if size >= TRIM_BYTES else None
    if trim is not None:
        trim(0)


class TilePlanner:
    """``--max-memory``: the largest tile whose planned peak process memory fits a budget, from the
    working memory of the upscaler's model calls, measured once (:meth:`bytes_per_pixel`).

    ``run_tile(x, s)``: one model call on a (1, 3, h, w) uint8 CPU tile at scale ``s``, as the
    upscaler's tiles make it (float32 CPU output); ``model`` and ``device``: what it runs.
    """

    def __init__(self, run_tile: Callable[[torch.Tensor, float], torch.Tensor], model: nn.Module,
                 device: torch.device):
        self.run_tile, self.model, self.device = run_tile, model, torch.device(device)
        self.bpp: float | None = None  # measured working memory per input pixel of a tile's model call
        self.fixed_bytes = 0.0  # memory the probe calls keep (thread arenas, kernels): in the budget
        self.shape_bytes = 0.0  # memory a call on a new tile shape keeps (oneDNN's cached primitives)

    def tile_for_budget(self, budget: float, h: int, w: int, s: int, *, pad: int,
                        resized_hw: tuple[int, int] | None = None, itemsize: int = 1) -> int | None:
        """Largest tile (multiple of 8) whose planned peak memory fits ``budget`` (bytes); None when the
        whole image does. Raises :class:`LightSRError` (one line) when not even a 16-pixel tile does.

        The budget bounds the growth of the whole process's resident memory (RSS) once the model
        is loaded. The plan (:meth:`plan_bytes`) counts the input, the output, the float band of tiles,
        the model calls of tiles as measured by :meth:`bytes_per_pixel` (x :data:`BUDGET_SAFETY`) and
        what the calls keep, and must stay under :data:`BUDGET_FILL` of the budget; so must the output
        beside the copy an image encoder makes of it (:data:`ENCODER_COPY`), as ``lightsr upscale``
        writes it. Under a budget, the upscaler hands freed memory back after every band.
        ``s``: the native scale; ``pad``: the tiles' context pixels; ``resized_hw``: the output size
        when the native bands are resized (``--outscale``); ``itemsize``: bytes per value of the input
        tensor (1: uint8 pixels, 4: 16-bit or float), which is also the output's kind (uint8, uint16,
        float32).
        """
        s = int(s)
        if self.bpp is None:
            self.bpp = self.bytes_per_pixel(s)
        plan = functools.partial(self.plan_bytes, h, w, s, pad=pad, resized_hw=resized_hw, itemsize=itemsize)
        limit = BUDGET_FILL * budget
        if plan(None) <= limit:
            return None
        best = None
        for tile in range(16, max(h, w) + 8, 8):  # the plan grows with the tile
            if plan(tile) > limit:
                break
            best = tile
        if best is None:
            need = plan(16) / BUDGET_FILL
            oh, ow = resized_hw or (h * s, w * s)
            raise LightSRError(f"--max-memory {format_size(budget)} is too small for a {w}x{h} image at x{s}: "
                               f"its {ow}x{oh} output, an encoder's copy of it and the smallest tile need "
                               f"about {format_size(need)}")
        return best

    def plan_bytes(self, h: int, w: int, s: int, tile: int | None, *, pad: int,
                   resized_hw: tuple[int, int] | None = None, itemsize: int = 1) -> float:
        """Planned peak growth of process memory (bytes) upscaling an h x w image with ``tile`` (None:
        whole) and ``pad`` context pixels: the larger of the model phase and the writing phase.

        Model phase: the caller's image and its (3, h, w) copy (``itemsize`` each, an upper bound for
        the caller's), the output (``itemsize`` a value too), the band of tiles accumulated in float32
        (``(tile + 2 b) s`` rows of the native output width, plus the ``2 b s`` rows carried to the next
        band), the model calls on one tile's pixels (``bpp``: measured per input pixel, with their
        input, float output and the previous tile's output still referenced), what each distinct tile
        shape keeps (``shape_bytes``; up to 4 heights x 4 widths), and with ``--outscale`` a few rows
        of the resize. Writing phase: the image, the output, an encoder's copy of it and every shape's
        keep. Both add what the probe calls kept (``fixed_bytes``).
        """
        oh, ow = resized_hw or (h * s, w * s)
        image = h * w * 3 * itemsize
        output = oh * ow * 3 * itemsize  # uint8 out of uint8; 16-bit (int32 here) and float: 4, an upper bound
        bpp = self.bpp * BUDGET_SAFETY
        resize = 12.0 * 64 * (w * s + ow) if resized_hw is not None else 0.0
        if tile is None or (tile >= h and tile >= w):
            model = bpp * h * w + resize + self.shape_bytes
        else:
            b = min(pad // 2, tile // 2)
            th, tw = min(tile + 2 * pad, h), min(tile + 2 * pad, w)
            band = 12.0 * s * w * s * (min(tile, h) + 4 * b)
            sides = lambda n: len({min(t + tile + pad, n) - max(t - pad, 0) for t in range(0, n, tile)})  # noqa: E731
            shapes = sides(h) * sides(w) * self.shape_bytes
            model = band + bpp * th * tw + shapes + resize
        writing = 2 * image + output * (1 + ENCODER_COPY) + self.shape_bytes * 16
        return self.fixed_bytes + max(2 * image + output + model, writing)

    def _tiles_like(self, x: torch.Tensor, s: float, k: int) -> None:
        """``k`` model calls on ``x`` in a row, each output held until the next call ends, as tiles run."""
        y = None
        for _ in range(k):
            y = self.run_tile(x, s)
        del y

    def bytes_per_pixel(self, s: float, n: int = 64) -> float:
        """Working memory of the model calls of tiles, per input pixel, measured at the precision and
        memory format the upscaler runs: one n x n call, then three 2n x 2n calls in a row.

        CPU on Linux: the real peak of the process's resident memory during the probes, as the kernel
        records it (``VmHWM``, reset to the current RSS just before each probe through
        ``/proc/self/clear_refs``, after freed heap is handed back). The calls are the ones tiles make
        (``run_tile``: uint8 pixels made float, the channels_last and bf16 copies, oneDNN's scratch
        space, per-thread buffers, the float32 output and its copy), so whatever they touch counts;
        the three in a row, each output held until the next call ends as the upscaler's tiles hold it,
        also catch the heap the allocator does not reuse from one call to the next (one call alone
        measures 800-1300 B/px for rlfn_s in bf16 here, three in a row 1200-1650). The cost per pixel
        is the larger of the 2n probe's peak per pixel and the slope between the two probes (a fixed
        part makes large tiles cheaper per pixel, never dearer). A 16 x 16 call runs first: what the
        calls keep once freed heap is handed back (thread arenas, oneDNN's kernels and primitives) goes
        to ``fixed_bytes``, and the most one new shape kept to ``shape_bytes`` (each tile shape gets
        its own primitives: ~0.85 MB for rlfn_s). Resetting the high-water mark also resets what
        ``getrusage`` reports as this process's peak so far.
        CUDA: peak bytes allocated on the GPU, plus the float32 input and two outputs the host holds.
        Elsewhere (no /proc: macOS, Windows): an estimate, 16 x the largest module output per pixel
        (rlfn_s in bf16 measures 12-17 x here).
        """
        s = float(s)
        probe = lambda k: torch.randint(0, 256, (1, 3, k, k), dtype=torch.uint8)  # noqa: E731
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            base = torch.cuda.memory_allocated(self.device)
            self.run_tile(probe(n), s)
            torch.cuda.synchronize(self.device)
            return max(torch.cuda.max_memory_allocated(self.device) - base, 1) / (n * n) + 12.0 * (1 + 2 * s * s)
        rss0 = trimmed_rss()
        first = peak_growth(lambda: self.run_tile(probe(16), s))
        if rss0 is not None and first is not None:
            kept0 = trimmed_rss()
            small = peak_growth(lambda: self.run_tile(probe(n), s))
            kept1 = trimmed_rss()
            big = peak_growth(lambda: self._tiles_like(probe(2 * n), s, 3))
            kept2 = trimmed_rss()
            if None not in (small, big, kept0, kept1, kept2):
                self.fixed_bytes = float(max(kept2 - rss0, 0))
                self.shape_bytes = float(max(kept1 - kept0, kept2 - kept1, 0))
                p1, p2 = n * n, 4 * n * n
                return max(big / p2, (big - small) / (p2 - p1), 1.0)
        biggest = [0]

        def hook(_m, _i, out):
            if isinstance(out, torch.Tensor):
                biggest[0] = max(biggest[0], out.numel() * out.element_size())

        hooks = [m.register_forward_hook(hook) for m in self.model.modules() if not list(m.children())]
        try:
            self.run_tile(probe(n), s)
        finally:
            for hk in hooks:
                hk.remove()
        return 16.0 * biggest[0] / (n * n)
