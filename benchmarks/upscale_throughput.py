"""Upscaler throughput at 720p output (1280x720): plain vs tiled vs bf16 (and fp16 on GPU), peak memory.

    python benchmarks/upscale_throughput.py                       # default model, CPU (+ GPU if present)
    python benchmarks/upscale_throughput.py --model imdn --threads 2 --repeat 3

Weights do not change the speed, so the model is randomly initialised (no checkpoint needed). Each
configuration runs in a fresh child process so that CPU peak memory (max RSS) is its own; GPU peak is
``torch.cuda.max_memory_allocated``. Megapixels/s counts output pixels (0.92 MP per 720p frame).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time


def _run(cfg: dict, queue) -> None:
    import torch

    from lightsr.models import create_model, list_models
    from lightsr.models.resolve import DEFAULT_MODEL
    from lightsr.upscaler import Upscaler

    torch.set_num_threads(cfg["threads"])
    name = cfg["model"] or (DEFAULT_MODEL if DEFAULT_MODEL in list_models() else "imdn")
    model = create_model(name, scale=cfg["scale"])
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg["dtype"]]
    up = Upscaler(model, cfg["device"], dtype=dtype, tile=cfg["tile"], tile_pad=cfg["tile_pad"])
    s = cfg["scale"]
    x = torch.rand(1, 3, 720 // s, 1280 // s)
    cuda = cfg["device"].startswith("cuda")
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    up.upscale_tensor(x)  # warm-up (cudnn autotune, allocator)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(cfg["repeat"]):
        t0 = time.perf_counter()
        up.upscale_tensor(x)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    best = min(times)
    peak = (torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    queue.put({"model": name, "seconds": best, "mps": 1280 * 720 / 1e6 / best, "peak_mib": peak / 2**20,
               "base_rss_mib": base_rss / 1024})


def measure(cfg: dict) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_run, args=(cfg, q))
    p.start()
    res = q.get()
    p.join()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="registered model (default: lightsr's default, else imdn)")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs (best is reported)")
    ap.add_argument("--tile", type=int, default=128, help="tile size of the tiled configuration")
    ap.add_argument("--tile-pad", type=int, default=16)
    ap.add_argument("--no-cpu", action="store_true")
    args = ap.parse_args()

    import torch

    configs = []
    if not args.no_cpu:
        configs += [("cpu", "fp32", None), ("cpu", "fp32", args.tile), ("cpu", "bf16", None)]
    if torch.cuda.is_available():
        configs += [("cuda", "fp32", None), ("cuda", "fp32", args.tile), ("cuda", "bf16", None),
                    ("cuda", "fp16", None)]
    print(f"torch {torch.__version__}; output 1280x720, x{args.scale}; CPU threads {args.threads}"
          + (f"; GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
    print(f"{'device':6s} {'dtype':5s} {'tile':>6s} {'model':10s} {'s/frame':>8s} {'MP/s':>7s} {'peak MiB':>9s}")
    for device, dtype, tile in configs:
        cfg = dict(model=args.model, scale=args.scale, threads=args.threads, repeat=args.repeat, device=device,
                   dtype=dtype, tile=tile, tile_pad=args.tile_pad)
        r = measure(cfg)
        kind = "max RSS" if device == "cpu" else "max alloc"
        print(f"{device:6s} {dtype:5s} {str(tile or '-'):>6s} {r['model']:10s} {r['seconds']:8.3f} {r['mps']:7.2f} "
              f"{r['peak_mib']:9.0f}  ({kind})", flush=True)


if __name__ == "__main__":
    main()
