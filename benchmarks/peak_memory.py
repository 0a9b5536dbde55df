"""Peak memory of ``lightsr upscale`` on a large image against the output's size (issue 17).

    python benchmarks/peak_memory.py                          # 2000x1500 at x4 with --tile 256, 3 repeats
    python benchmarks/peak_memory.py --size 500x400 --tile 128 --repeat 1     # the test's small case
    python benchmarks/peak_memory.py --outscale 3.5           # native x4, then bicubic to x3.5
    python benchmarks/peak_memory.py --size 3000x2000 --max-memory 1G   # the budget holds (issue 29)

Each run is a fresh ``python -m lightsr upscale IN -o OUT --tile T`` process; its peak resident
memory (``ru_maxrss`` of that child, read with ``os.wait4``) is compared with the same command on a
64x64 image (the interpreter, torch and the model: the fixed cost). The growth, large minus small,
is what the image costs; the bound is ``1.3 x (uint8 output bytes) + 256 MB`` (the input, the uint8
output, one band of tiles in float, the encoder's copy). Medians of ``--repeat`` runs of each; the
machine may be shared, which changes times, not peak memory. The input is a smooth synthetic
picture (random noise would make PNG encoding dominate the time and changes nothing in memory).

``--max-memory SIZE`` (issue 29) checks the budget instead: each run is ``lightsr upscale IN -o OUT
--max-memory SIZE`` in a fresh process started through a small wrapper that records the process's
resident memory right after the upscaler (the model) is built, resets the kernel's high-water mark
there (``/proc/self/clear_refs``), and reads the high-water mark (``VmHWM``) at exit and before each
reset the upscaler's own memory probe makes. Peak RSS growth is that peak minus the post-load
baseline: everything the image costs (decoding, the probe, the tiles, the output, the PNG encoder),
for the whole process. Reported with the tile the budget chose and the wall time (medians of
``--repeat``; growth: the largest of the runs too). Linux only.
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
    usage, wall = _run(cmd, threads, " ".join(cmd))
    return usage.ru_maxrss / 1024.0, wall  # Linux reports kilobytes


def _run(cmd: list[str], threads: int, name: str):
    """Run ``cmd`` with ``threads`` OpenMP threads; (its resource usage, wall seconds); exit on failure."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode()
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{name} failed:\n{err}")
    return usage, wall


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


# The child of ``--max-memory`` runs: ``lightsr upscale`` in-process, with the post-load baseline and the
# peak taken from /proc/self/status (kB); the record goes to the JSON file named by argv[1].
_WRAPPER = r"""
import json, os, sys, time

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)

def reset_hwm():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

rec = {"base": None, "hwm": 0, "tiles": []}
import lightsr.memory as M
import lightsr.upscaler as U

_init = U.Upscaler.__init__
def init(self, *a, **k):
    _init(self, *a, **k)
    if rec["base"] is None:  # the first upscaler: the model is loaded
        rec["base"] = status("VmRSS")
        reset_hwm()
U.Upscaler.__init__ = init

_reset = M.reset_peak_rss
def reset_wrapped():  # the upscaler's probe resets the high-water mark: keep the peak before it
    rec["hwm"] = max(rec["hwm"], status("VmHWM"))
    return _reset()
M.reset_peak_rss = reset_wrapped

_tile = M.TilePlanner.tile_for_budget
def tile_recorded(self, *a, **k):
    t = _tile(self, *a, **k)
    rec["tiles"].append(t)
    return t
M.TilePlanner.tile_for_budget = tile_recorded

from lightsr.cli import main
t0 = time.perf_counter()
rc = main(sys.argv[2:])
rec["run_s"] = time.perf_counter() - t0
rec["hwm"] = max(rec["hwm"], status("VmHWM"))
rec["rc"] = rc
with open(sys.argv[1], "w") as f:
    json.dump(rec, f)
sys.exit(rc)
"""


def run_budget(src: Path, out: Path, max_memory: str, outscale: float | None, threads: int,
               rec_path: Path) -> dict:
    """One ``lightsr upscale --max-memory`` process: baseline (MB), peak growth (MB), tile, wall seconds."""
    cmd = [sys.executable, "-c", _WRAPPER, str(rec_path), "upscale", str(src), "-o", str(out), "--quiet",
           "--overwrite", "--max-memory", max_memory]
    if outscale:
        cmd += ["--outscale", str(outscale)]
    usage, wall = _run(cmd, threads, f"{' '.join(cmd[:2])} ... {' '.join(cmd[3:])}")
    rec = json.loads(rec_path.read_text())
    base = rec["base"] / MB
    return {"base_mb": base, "growth_mb": rec["hwm"] / MB - base, "maxrss_growth_mb": usage.ru_maxrss / 1024.0 - base,
            "tiles": rec["tiles"], "wall_s": wall, "run_s": rec["run_s"]}


def measure_budget(size: tuple[int, int], max_memory: str, outscale: float | None, repeat: int,
                   threads: int) -> dict:
    """Peak RSS growth over the post-load baseline of ``lightsr upscale --max-memory`` (medians, max)."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # the outputs here are large on purpose
    h, w = size
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        big = tmp / "big.png"
        Image.fromarray(synthetic(h, w)).save(big, compress_level=1)
        for _ in range(repeat):
            runs.append(run_budget(big, tmp / "big_out.png", max_memory, outscale, threads, tmp / "rec.json"))
        with Image.open(tmp / "big_out.png") as im:
            ow, oh = im.size
    budget_mb = _parse_size(max_memory) / MB
    growth = [r["growth_mb"] for r in runs]
    return {"input": f"{w}x{h}", "output": f"{ow}x{oh}", "max_memory": max_memory, "budget_mb": round(budget_mb, 1),
            "outscale": outscale, "output_uint8_mb": round(oh * ow * 3 / MB, 1),
            "tiles": sorted({str(t) for r in runs for t in r["tiles"]}),
            "base_mb": round(statistics.median(r["base_mb"] for r in runs), 1),
            "growth_mb": round(statistics.median(growth), 1), "growth_max_mb": round(max(growth), 1),
            "growth_runs_mb": [round(g, 1) for g in growth],
            "maxrss_growth_max_mb": round(max(r["maxrss_growth_mb"] for r in runs), 1),
            "growth_over_budget": round(max(growth) / budget_mb, 3),
            "wall_s": round(statistics.median(r["wall_s"] for r in runs), 2),
            "wall_runs_s": [round(r["wall_s"], 2) for r in runs], "repeats": repeat, "threads": threads}


def _parse_size(text: str) -> float:
    from lightsr.cli._options import parse_memory

    return parse_memory(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="2000x1500", help="input WxH (default 2000x1500)")
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--outscale", type=float, default=None)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-memory", default=None, metavar="SIZE",
                   help="check this budget instead of --tile: peak RSS growth over the post-load baseline")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    a = p.parse_args(argv)
    w, h = (int(v) for v in a.size.lower().split("x"))
    if a.max_memory:
        res = measure_budget((h, w), a.max_memory, a.outscale, a.repeat, a.threads)
        if a.json:
            print(json.dumps(res))
            return 0
        print(f"input {res['input']} -> {res['output']}, --max-memory {a.max_memory} ({res['budget_mb']} MB)"
              + (f", --outscale {a.outscale}" if a.outscale else "")
              + f" ({a.repeat} repeats, OMP_NUM_THREADS={a.threads})")
        print(f"  tile chosen: {', '.join(res['tiles'])}; post-load baseline {res['base_mb']} MB")
        print(f"  peak RSS growth: median {res['growth_mb']} MB, max {res['growth_max_mb']} MB "
              f"(runs: {res['growth_runs_mb']}); uint8 output {res['output_uint8_mb']} MB")
        print(f"  max growth / budget = {res['growth_over_budget']}  "
              f"({'held' if res['growth_over_budget'] <= 1 else 'EXCEEDED'})")
        print(f"  wall: median {res['wall_s']} s (runs: {res['wall_runs_s']})")
        return 0
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
