"""CPU latency of registered models at 320x180 input (1280x720 output at x4), relative to SwinIR-light
measured in the same run; optionally parameters and MACs at 1280x720 output for several scales.

    python benchmarks/cpu_speed.py                                # the five transformer baselines
    python benchmarks/cpu_speed.py swinir_c2d imdn --threads 2    # any registered models, by name
    python benchmarks/cpu_speed.py --official-hit                 # + HiT with the official per-forward bias
    python benchmarks/cpu_speed.py --flops --scales 2,3,4 --no-latency

``name@official`` (HiT models, or ``--official-hit``) runs the official HiT formulation: the
(ws^2 x ws^2) relative-position gather rebuilt on every forward and the literal S-SC product
(Q V'^T / d + P) V'; it gives the same outputs (tests/test_transformers.py) and shows what the
eval cache and the re-association save. With ``--flops`` it also gives the literal MAC count.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time

import torch

DEFAULT = ["swinir_light", "srformer_light", "hit_sir", "hit_srf", "hit_sng"]
BASELINE = "swinir_light"


def literal_position_bias(self) -> torch.Tensor:
    """HiT's official bias: MLP table -> (N, N) gather -> mean over the r x r pixels of each key."""
    (wh, ww), (bh, bw) = self.window, self.base
    dev = self.spatial_linear.weight.device
    dh, dw = torch.meshgrid(torch.arange(1 - wh, wh, device=dev), torch.arange(1 - ww, ww, device=dev),
                            indexing="ij")
    table = self.pos(torch.stack([dh.flatten(), dw.flatten()], 1).float())
    ci, cj = [t.flatten() for t in torch.meshgrid(torch.arange(wh, device=dev), torch.arange(ww, device=dev),
                                                  indexing="ij")]
    idx = (ci[:, None] - ci[None] + wh - 1) * (2 * ww - 1) + (cj[:, None] - cj[None] + ww - 1)
    n = wh * ww
    bias = table[idx.view(-1)].view(n, bh, wh // bh, bw, ww // bw, -1).permute(0, 1, 3, 5, 2, 4)
    return bias.reshape(n, bh * bw, self.heads, -1).mean(-1).permute(2, 0, 1)


def literal_s_sc(q, v, bias, scale):
    return (q @ v.transpose(-2, -1) / scale + bias) @ v


@contextlib.contextmanager
def official_hit(enabled: bool):
    """Temporarily swap SCC's bias and S-SC for the official (uncached, literal) forms."""
    if not enabled:
        yield
        return
    from lightsr.layers import attention

    saved = attention.SCC.position_bias, attention.spatial_self_correlation
    attention.SCC.position_bias = literal_position_bias
    attention.spatial_self_correlation = literal_s_sc
    try:
        yield
    finally:
        attention.SCC.position_bias, attention.spatial_self_correlation = saved


def latency_ms(model, x: torch.Tensor, warmup: int, repeats: int) -> float:
    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=None, help="registered names; name@official for HiT")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--input", default="180x320", help="LR input HxW (default 180x320)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--official-hit", action="store_true", help="add name@official for each HiT model")
    ap.add_argument("--flops", action="store_true", help="also params and MACs at 1280x720 output")
    ap.add_argument("--scales", default=None, help="scales for --flops, e.g. 2,3,4 (default: --scale)")
    ap.add_argument("--no-latency", action="store_true")
    args = ap.parse_args(argv)

    from lightsr.models import build_model

    if args.threads:
        torch.set_num_threads(args.threads)
    names = list(args.models or DEFAULT)
    if args.official_hit:
        names += [f"{n}@official" for n in names if n.startswith("hit_") and "@" not in n]
    if not args.no_latency and BASELINE not in names:
        names.insert(0, BASELINE)
    h, w = (int(v) for v in args.input.lower().split("x"))
    torch.manual_seed(0)
    x = torch.rand(1, 3, h, w)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, input {h}x{w}, x{args.scale}, "
          f"median of {args.repeats} after {args.warmup} warm-up", flush=True)

    if not args.no_latency:
        base = None
        rows = []
        for spec in names:
            name, _, variant = spec.partition("@")
            model = build_model(name, args.scale)
            with official_hit(variant == "official"):
                ms = latency_ms(model, x, args.warmup, args.repeats)
            base = ms if spec == BASELINE else base
            rows.append((spec, ms))
            print(f"{spec:28s} {ms:10.1f} ms", flush=True)
        print("\n| model | ms | vs SwinIR-light |\n|---|---|---|")
        for spec, ms in rows:
            print(f"| {spec} | {ms:.0f} | {ms / base:.2f}x |")

    if args.flops:
        from lightsr.profile import count_flops, count_params

        scales = [int(s) for s in (args.scales or str(args.scale)).split(",")]
        print("\n| model | scale | params | MACs at 1280x720 (G) |\n|---|---|---|---|")
        for spec in names:
            name, _, variant = spec.partition("@")
            for s in scales:
                model = build_model(name, s)
                with official_hit(variant == "official"):
                    macs = count_flops(model, s, (720, 1280))
                print(f"| {spec} | x{s} | {count_params(model):,} | {macs / 1e9:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
