"""Which registered models export to ONNX with a dynamic input size, and which need ``--fixed-size``.

    python benchmarks/onnx_survey.py                       # every fixed-scale model at x4
    python benchmarks/onnx_survey.py hit_srf imdn --fixed 64x64

For each model (randomly initialised: export does not depend on the weights' values) it tries the
dynamic export, checked by onnxruntime at 48x40 and 29x37 inputs; if that is refused it exports for
one fixed size and checks there. Prints the outcome, the largest |onnxruntime - PyTorch| and the time.
Needs ``pip install 'lightsr[onnx]'``.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from lightsr import create_model, list_models
from lightsr.errors import LightSRError
from lightsr.export import export_onnx
from lightsr.models.registry import get_entry


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--fixed", default="64x64", help="size for the fixed-size fallback (HxW)")
    args = ap.parse_args()
    fixed = tuple(int(v) for v in args.fixed.split("x"))
    names = args.models or [n for n in list_models()
                            if get_entry(n).scales is not None and args.scale in get_entry(n).scales
                            and not getattr(create_model(n, scale=args.scale), "continuous", False)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, x{args.scale}")
    print(f"{'model':<18} {'export':<16} {'max |diff|':>10} {'seconds':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            torch.manual_seed(0)
            model = create_model(name, scale=args.scale).eval()
            t0 = time.perf_counter()
            try:
                res, kind = export_onnx(model, Path(tmp) / f"{name}.onnx", overwrite=True), "dynamic"
            except LightSRError as exc:
                if "--fixed-size" not in str(exc):
                    print(f"{name:<18} {'failed':<16} {'':>10} {time.perf_counter() - t0:8.1f}  {exc}")
                    continue
                try:
                    res = export_onnx(model, Path(tmp) / f"{name}.onnx", overwrite=True, fixed_size=fixed)
                    kind = f"fixed {args.fixed}"
                except LightSRError as exc2:
                    print(f"{name:<18} {'failed':<16} {'':>10} {time.perf_counter() - t0:8.1f}  {exc2}")
                    continue
            print(f"{name:<18} {kind:<16} {res['max_abs_error']:10.2e} {time.perf_counter() - t0:8.1f}", flush=True)


if __name__ == "__main__":
    main()
