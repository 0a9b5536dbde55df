"""Peak memory of ``lightsr upscale`` on a large image against the output's size (issue 17).

    python benchmarks/peak_memory.py                          # 2000x1500 at x4 with --tile 256, 3 repeats
    python benchmarks/peak_memory.py --size 500x400 --tile 128 --repeat 1     # the test's small case
    python benchmarks/peak_memory.py --outscale 3.5           # native x4, then bicubic to x3.5

Each run is a fresh ``python -m lightsr upscale IN -o OUT --tile T`` process; its peak resident
memory (``ru_maxrss`` of that child, read with ``os.wait4``) is compared with the same command on a
64x64 image (the interpreter, torch and the model: the fixed cost). The growth, large minus small,
is what the image costs; the bound is ``1.3 x (uint8 output bytes) + 256 MB`` (the input, the uint8
output, one band of tiles in float, the encoder's copy). Medians of ``--repeat`` runs of each; the
machine may be shared, which changes times, not peak memory. The input is a smooth synthetic
picture (random noise would make PNG encoding dominate the time and changes nothing in memory).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MB = 1024 * 1024


def synthetic(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth colour picture with edges (gradients, rings, a checker), uint8 (h, w, 3)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot(yy - h / 2, xx - w / 2)
    img = np.stack([0.5 + 0.5 * np.sin(r / 9.0), xx / w, ((yy // 32 + xx // 32) % 2) * 0.6 + 0.2], axis=2)
    img += rng.normal(0, 0.02, img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def run_once(src: Path, out: Path, tile: int, outscale: float | None, threads: int) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one ``lightsr upscale`` process."""
    cmd = [sys.executable, "-m", "lightsr", "upscale", str(src), "-o", str(out), "--quiet", "--overwrite"]
    if tile:
        cmd += ["--tile", str(tile)]
    if outscale:
        cmd += ["--outscale", str(outscale)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode()
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err}")
    return usage.ru_maxrss / 1024.0, wall  # Linux reports kilobytes


def measure(size: tuple[int, int], tile: int, outscale: float | None, repeat: int, threads: int) -> dict:
    from PIL import Image

    h, w = size
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        big, small = tmp / "big.png", tmp / "small.png"
        Image.fromarray(synthetic(h, w)).save(big, compress_level=1)
        Image.fromarray(synthetic(64, 64)).save(small)
        rows = {"big": [], "small": []}
        for _ in range(repeat):
            for name, src in (("small", small), ("big", big)):
                rows[name].append(run_once(src, tmp / f"{name}_out.png", tile, outscale, threads))
        with Image.open(tmp / "big_out.png") as im:
            ow, oh = im.size
    out_mb = oh * ow * 3 / MB
    peak_big = statistics.median(r[0] for r in rows["big"])
    peak_small = statistics.median(r[0] for r in rows["small"])
    growth = peak_big - peak_small
    bound = 1.3 * out_mb + 256
    return {"input": f"{w}x{h}", "output": f"{ow}x{oh}", "tile": tile, "outscale": outscale,
            "output_uint8_mb": round(out_mb, 1), "peak_small_mb": round(peak_small, 1),
            "peak_big_mb": round(peak_big, 1), "growth_mb": round(growth, 1), "bound_mb": round(bound, 1),
            "growth_over_bound": round(growth / bound, 3),
            "wall_s_big": round(statistics.median(r[1] for r in rows["big"]), 2), "repeats": repeat}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="2000x1500", help="input WxH (default 2000x1500)")
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--outscale", type=float, default=None)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    a = p.parse_args(argv)
    w, h = (int(v) for v in a.size.lower().split("x"))
    res = measure((h, w), a.tile, a.outscale, a.repeat, a.threads)
    if a.json:
        print(json.dumps(res))
    else:
        print(f"input {res['input']} -> {res['output']}, --tile {a.tile}"
              + (f", --outscale {a.outscale}" if a.outscale else "") + f" ({a.repeat} repeats, medians)")
        print(f"  peak RSS: small image {res['peak_small_mb']} MB, large {res['peak_big_mb']} MB, "
              f"growth {res['growth_mb']} MB")
        print(f"  uint8 output {res['output_uint8_mb']} MB; bound 1.3 x output + 256 MB = {res['bound_mb']} MB; "
              f"growth / bound = {res['growth_over_bound']}  ({'met' if res['growth_over_bound'] <= 1 else 'MISSED'})")
        print(f"  wall {res['wall_s_big']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
