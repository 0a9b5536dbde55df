"""Bounded memory for large images (issue 17): peak RSS of ``lightsr upscale`` in a fresh process.

The benchmark (benchmarks/peak_memory.py, 2000x1500 at x4 with --tile 256) holds the issue's bound,
growth <= 1.3 x uint8 output + 256 MB. This is its small case in the default suite, with a bound
that a whole float output would break: 1000x750 at x4 with --tile 64 is a 34 MB uint8 result whose
float copy alone is 137 MB, while a band of 64-pixel tiles is 15 MB. Measured: growth 88 MB (bound
141 MB); checked to fail by collecting every band before the first is used (``yield from
list(bands)`` in ``Upscaler._native_bands``): growth 200 MB.
"""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from peak_memory import measure  # noqa: E402


@pytest.mark.parametrize("outscale", [None, 3.5], ids=["native", "outscale"])
def test_tiled_upscale_peak_memory_is_bounded(outscale):
    res = measure((750, 1000), tile=64, outscale=outscale, repeat=1, threads=2)
    bound = 1.3 * res["output_uint8_mb"] + 96
    assert res["growth_mb"] <= bound, res
