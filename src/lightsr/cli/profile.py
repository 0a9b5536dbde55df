"""``lightsr profile``: parameters, FLOPs, latency, memory (:func:`lightsr.profile.run_profile`)."""
from __future__ import annotations

from ._options import model_args, parse_options


def add_parser(sub) -> None:
    p = sub.add_parser("profile", help="parameters, FLOPs (MACs) at 1280x720 output, latency, memory")
    model_args(p, scale_required=True)
    p.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.add_argument("--output-size", default=None, metavar="HxW", help="output size (default 720x1280)")
    p.add_argument("--input-size", default=None, metavar="HxW",
                   help="count on this LR input instead (e.g. 256x256, the NTIRE convention)")
    p.add_argument("--convention", default="macs", metavar="{macs,fvcore}",
                   help="macs: conv/linear/matmul multiply-accumulates (default); fvcore: fvcore's rules "
                        "(+ norms, bilinear resampling, adaptive pooling), as HiT-SR, C2D-ISR, HASN count")
    p.add_argument("--width", type=float, default=None, help="AnySR sub-network width")
    p.add_argument("--max-gflops", type=float, default=None, metavar="G",
                   help="AnySR: the widest sub-network whose encoder (Table 3's count) needs <= G x 1e9 MACs here")
    p.add_argument("--no-latency", action="store_true", help="count only, do not time")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="latency in this precision (default auto, what upscale runs and the README's latency "
                        "figures use: bf16 where the device does it natively and the model allows it, else "
                        "fp32; fp32: the plain path)")
    p.add_argument("--compile", action="store_true", help="latency with torch.compile")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..profile import run_profile, summary

    result = run_profile(args.model, args.scale, options=parse_options(args.opt), device=args.device,
                         width=args.width, max_gflops=args.max_gflops, output_size=args.output_size,
                         input_size=args.input_size,
                         convention=args.convention, latency=not args.no_latency, precision=args.precision,
                         compile=args.compile,
                         json_path=args.json, overwrite=args.overwrite)
    print(summary(result))
    return 0
