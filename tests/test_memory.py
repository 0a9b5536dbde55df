"""Bounded memory for large images (issues 17 and 29): peak RSS of ``lightsr upscale`` in a fresh process.

The benchmark (benchmarks/peak_memory.py, 2000x1500 at x4 with --tile 256) holds the issue's bound,
growth <= 1.3 x uint8 output + 256 MB. This is its small case in the default suite, with a bound
that a whole float output would break: 1000x750 at x4 with --tile 64 is a 34 MB uint8 result whose
float copy alone is 137 MB, while a band of 64-pixel tiles is 15 MB. Measured: growth 88 MB (bound
141 MB); checked to fail by collecting every band before the first is used (``yield from
list(bands)`` in ``Upscaler._native_bands``): growth 200 MB.

``--max-memory`` (issue 29) must bound the growth of the whole process's RSS over its post-load
baseline (``benchmarks/peak_memory.py --max-memory``; its 3000x2000 case is in results/upscale.md).
Small case: 1000x750 at x4 (rlfn_s, bf16 here) with ``--max-memory 200M``, one thread, ~10 s.
Measured: tiles 112-152, growth 121-171 MB over 6 runs. Checked to fail with the old code (tile from
4 x the largest module output, 384 B per input pixel where the calls of a tile measure 1.2-1.7 KB,
and nothing else counted): tile 704, growth 480 MB; and with only the old per-pixel estimate inside
the new plan: growth 323 MB.
"""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import lightsr
from lightsr.errors import LightSRError
from lightsr.memory import BUDGET_FILL
from lightsr.upscaler import Upscaler

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from peak_memory import measure, measure_budget  # noqa: E402


@pytest.mark.parametrize("outscale", [None, 3.5], ids=["native", "outscale"])
def test_tiled_upscale_peak_memory_is_bounded(outscale):
    res = measure((750, 1000), tile=64, outscale=outscale, repeat=1, threads=2)
    bound = 1.3 * res["output_uint8_mb"] + 96
    assert res["growth_mb"] <= bound, res


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_max_memory_bounds_peak_rss():
    res = measure_budget((750, 1000), "200M", None, repeat=1, threads=1)
    assert res["tiles"] and "None" not in res["tiles"], res  # it tiled
    assert res["growth_max_mb"] <= res["budget_mb"], res


def test_max_memory_too_small_says_so_in_one_line():
    # a 16-pixel tile's call (48 x 48 pixels with its context) alone takes ~2.5 MB on this CPU
    up = lightsr.load(None, scale=4, max_memory=2 * 2**20)
    with pytest.raises(LightSRError) as err:
        up(np.full((100, 100, 3), 128, np.uint8))
    msg = str(err.value)
    assert "\n" not in msg and "--max-memory 2M is too small" in msg and "need about" in msg, msg


class _Wide(nn.Module):
    """A small fixed-scale CNN (x2) to plan tiles for."""

    scale = 2

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 12, 3, padding=1),
                                  nn.PixelShuffle(2))

    def forward(self, x):
        return self.body(x)


def test_budget_tile_is_the_largest_whose_plan_fits():
    """With a given measured cost (bytes per pixel, what the probes kept, what a shape keeps), the tile
    is the largest multiple of 8 whose planned peak stays under BUDGET_FILL of the budget; a bigger
    budget never gives a smaller tile; the run calls the model on tiles no larger than tile + 2 pad and
    gives the whole image's result; a budget below the output plus a 16-pixel tile is refused in one
    line. Replaces test_upscale.py's tests of the old estimate (4 x the largest module output)."""
    pad = 8
    up = Upscaler(_Wide(), precision="fp32", tile_pad=pad)
    planner = up.planner
    planner.bpp, planner.fixed_bytes, planner.shape_bytes = 1000.0, 4e6, 5e5  # as if measured
    fit = lambda budget, h, w, **kw: planner.tile_for_budget(budget, h, w, 2, pad=pad, **kw)  # noqa: E731
    assert fit(10**12, 100, 100) is None  # the whole image fits
    prev = 0
    for budget in (2**29 + 2**27, 2**30, 1.5 * 2**30, 2**31, 2**32):
        tile = fit(budget, 3000, 4000)
        plan = lambda t: planner.plan_bytes(3000, 4000, 2, t, pad=pad)  # noqa: E731
        assert tile % 8 == 0 and tile >= prev, (budget, tile, prev)
        assert plan(tile) <= BUDGET_FILL * budget < plan(tile + 8), (budget, tile)
        # the plan holds the uint8 output (3000 x 4000 x 4 x 3 bytes) and the float band of the tiles
        assert plan(tile) > 3000 * 4000 * 12 + 12 * 2 * 8000 * tile
        prev = tile
    with pytest.raises(LightSRError) as err:  # the 8000x6000 output is 144 MB, 336 MB with Pillow's copy
        fit(2**28, 3000, 4000)
    assert "\n" not in str(err.value) and "is too small for a 4000x3000 image at x2" in str(err.value)
    planner.fixed_bytes = planner.shape_bytes = 0.0  # a 64x64 float image, between the plans of tiles 24 and 32
    plan = lambda t: planner.plan_bytes(64, 64, 2, t, pad=pad, itemsize=4)  # noqa: E731
    up.max_memory = (plan(24) + plan(32)) / 2 / BUDGET_FILL
    assert fit(up.max_memory, 64, 64, itemsize=4) == 24
    calls = []
    up.model.register_forward_pre_hook(lambda m, i: calls.append(tuple(i[0].shape[-2:])))
    x = torch.rand(1, 3, 64, 64)
    y = up(x)
    assert y.shape == (1, 3, 128, 128) and len(calls) == 9  # 3 x 3 tiles of 24
    assert max(h * w for h, w in calls) <= (24 + 2 * pad) ** 2, calls
    up.max_memory = None
    assert (y - up(x)).abs().max().item() < 1e-5  # the same as the whole image (a local model)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_probe_measures_the_calls_at_the_running_precision():
    """The CPU probe reads the process's real peak (not 4 x the largest module output): rlfn_s x4 in
    bf16 + channels_last measures 1.2-1.7 KB per input pixel on an AVX512-BF16 CPU, well above the
    old 384-byte estimate; in any precision it is far above the 4-byte float input alone."""
    up = lightsr.load(None, scale=4, max_memory=2**30)
    bpp = up.planner.bytes_per_pixel(4)
    assert bpp > 4 * 96 if up.precision == "bf16" else bpp > 12 * 16, (up.precision, bpp)
    assert up.planner.fixed_bytes >= 0 and up.planner.shape_bytes >= 0  # what the probe keeps: may be 0 when the heap is reused
