"""lightsr against the runtimes a CPU user would deploy with, on the same model, in one process.

    python benchmarks/runtimes.py                           # RLFN-S, IMDN, HASN, HiT-SRF, SwinIR-C2D; 320x180
    python benchmarks/runtimes.py rlfn_s imdn --rounds 7 --size 180x320 --out results/runtimes

Each model (its reference or shipped x4 weights where there are some; timing does not depend on the
values) runs in every mode below on the same input; the modes are timed in interleaved rounds (one
call of each per round, after warm-up), so a noisy neighbour hits them alike, and the table gives the
median per mode as a ratio to ``lightsr auto`` (below 1: faster than lightsr's default).

===================  =========================================================================
lightsr fp32         ``lightsr.load(..., precision="fp32")``: float32, channels_last
lightsr auto         ``precision="auto"``: what lightsr runs by default on this CPU
lightsr auto+frozen  ``auto`` under ``torch.compile`` with inductor's freezing (weights pre-packed)
lightsr openvino     ``--backend openvino`` (lightsr.backends): the module converted by OpenVINO, bf16
onnxruntime fp32     the ``lightsr export`` ONNX file, CPUExecutionProvider
openvino f32/bf16    the same ONNX file compiled by OpenVINO with INFERENCE_PRECISION_HINT f32 / bf16
===================  =========================================================================

Missing runtimes (``pip install onnxruntime openvino``) are skipped with a note. Threads: every mode
gets ``torch.get_num_threads()`` (``--threads``). Output: markdown on stdout; ``--out DIR`` also writes
``runtimes.md`` and ``runtimes.json``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "weights" / "reference"
MODELS = ["rlfn_s", "imdn", "hasn", "hit_srf", "swinir_c2d"]
WEIGHTS = {"imdn": "imdn_x4.pth", "hit_srf": "hit_srf_x4.pth"}  # reference checkpoints (x4)


def descriptor(name: str):
    """``name`` x4 with its reference or shipped weights, else a (seeded) random initialisation,
    which times the same."""
    from lightsr.models.resolve import MissingWeights, resolve

    ref = REFERENCE / WEIGHTS.get(name, "-")
    torch.manual_seed(0)
    try:
        return resolve(name, str(ref) if ref.is_file() else None, 4)
    except MissingWeights:
        return resolve(name, None, 4, pretrained=False)


def load(name: str, precision: str, compile: bool = False, backend: str = "torch"):
    """How lightsr runs ``name`` (:func:`lightsr.backends.make_runner`)."""
    from lightsr.backends import make_runner

    return make_runner(descriptor(name), "cpu", precision, compile=compile, backend=backend)


def frozen(name: str):
    """``auto`` under ``--compile``: inductor with freezing (constant weights folded and pre-packed)."""
    return load(name, "auto", compile=True)


def modes(name: str, x: torch.Tensor, tmp: Path, threads: int, skip: set[str]) -> dict:
    """name -> callable(x) -> y (numpy or tensor), each checked once against fp32."""
    out = {}
    fp32 = load(name, "fp32")
    out["lightsr fp32"] = fp32
    out["lightsr auto"] = load(name, "auto")
    if "frozen" not in skip:
        out["lightsr auto+frozen"] = frozen(name)
    if not descriptor(name).continuous and "openvino" not in skip:
        try:
            out["lightsr openvino"] = load(name, "auto", backend="openvino")
            out["lightsr openvino"](x)  # converts here: a model OpenVINO cannot take is left out
        except Exception as exc:  # noqa: BLE001
            out.pop("lightsr openvino", None)
            print(f"  {name}: lightsr --backend openvino unavailable ({str(exc).splitlines()[0][:120]})")
    onnx_path = tmp / f"{name}.onnx"
    try:
        from lightsr.export import export_onnx

        from lightsr.errors import LightSRError

        plain = load(name, "fp32").model.to(memory_format=torch.contiguous_format)
        try:
            export_onnx(plain, onnx_path, sample_hw=tuple(x.shape[-2:]), overwrite=True)
        except LightSRError as exc:  # a graph that follows one input size only (window models)
            if "--fixed-size" not in str(exc):
                raise
            export_onnx(plain, onnx_path, fixed_size=tuple(x.shape[-2:]), overwrite=True)
    except Exception as exc:  # noqa: BLE001
        print(f"  {name}: no ONNX file ({str(exc).splitlines()[0][:120]}); runtimes skipped")
        return out
    try:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        out["onnxruntime fp32"] = lambda t: sess.run(None, {"input": t.numpy()})[0]
    except ImportError:
        print("  onnxruntime not installed: skipped")
    try:
        import openvino as ov

        core = ov.Core()
        for hint in ("f32", "bf16"):
            cm = core.compile_model(str(onnx_path), "CPU", {"INFERENCE_PRECISION_HINT": hint,
                                                            "INFERENCE_NUM_THREADS": threads,
                                                            "PERFORMANCE_HINT": "LATENCY"})
            req = cm.create_infer_request()
            out[f"openvino {hint}"] = (lambda r: lambda t: r.infer({0: t.numpy()})[0])(req)
    except ImportError:
        print("  openvino not installed: skipped")
    return out


def bench(name: str, size: tuple[int, int], rounds: int, warmup: int, threads: int, skip: set[str]) -> dict:
    torch.manual_seed(0)
    x = torch.rand(1, 3, *size)
    with tempfile.TemporaryDirectory() as tmp:
        fns = modes(name, x, Path(tmp), threads, skip)
        ref = None
        diffs, warm_s = {}, {}
        for mode, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(warmup):
                y = fn(x)
            warm_s[mode] = time.perf_counter() - t0
            y = torch.as_tensor(np.asarray(y)).float()
            ref = y if ref is None else ref
            diffs[mode] = float((y - ref).abs().max())
        times = {m: [] for m in fns}
        for _ in range(rounds):
            for mode, fn in fns.items():
                t0 = time.perf_counter()
                fn(x)
                times[mode].append(time.perf_counter() - t0)
    med = {m: statistics.median(v) for m, v in times.items()}
    base = med.get("lightsr auto")
    return {"model": name, "median_s": med, "ratio": {m: v / base for m, v in med.items()},
            "max_abs_diff_vs_fp32": diffs, "warmup_s": warm_s, "times": times}


def psnr_costs(name: str) -> dict | None:
    """Set5 / Set14 Y-PSNR of fp32, ``auto`` and ``--backend openvino`` (bf16) on the model's real
    weights (None without any: a random network's PSNR means nothing)."""
    from lightsr.errors import LightSRError
    from lightsr.evaluate import evaluate

    desc = descriptor(name)
    if desc.origin is None:
        return None
    sets = [ROOT.parent / "shared" / "data" / "benchmark" / s for s in ("Set5", "Set14")]
    out = {}
    for mode, precision, backend in (("fp32", "fp32", "torch"), ("lightsr auto", "auto", "torch"),
                                     ("lightsr openvino", "auto", "openvino")):
        try:
            res = evaluate(descriptor(name), sets, 4, precision=precision, backend=backend, progress=False)
        except LightSRError as exc:  # OpenVINO cannot convert this model
            print(f"  {name} {mode}: {exc}")
            continue
        out[mode] = {k: res[k]["psnr"] for k in ("Set5", "Set14")}
    return {m: {k: v - out["fp32"][k] for k, v in r.items()} for m, r in out.items() if m != "fp32"} | {
        "fp32": out["fp32"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", default=MODELS)
    ap.add_argument("--size", default="180x320", help="LR input HxW")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--skip", nargs="*", default=[], help="modes to leave out: frozen")
    ap.add_argument("--psnr", action="store_true", help="also the Set5 / Set14 PSNR change of auto and "
                    "--backend openvino against fp32, for models with real weights")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    print(f"torch {torch.__version__}, {threads} threads, LR {size[0]}x{size[1]} -> x4, "
          f"{args.rounds} interleaved rounds, medians; ratios to lightsr auto (lower is faster)")
    results = [bench(m, size, args.rounds, args.warmup, threads, set(args.skip)) for m in args.models]
    cols = sorted({m for r in results for m in r["ratio"]}, key=lambda m: (not m.startswith("lightsr"), m))
    lines = ["| model | " + " | ".join(cols) + " | lightsr auto (s) |", "|---" * (len(cols) + 2) + "|"]
    for r in results:
        cells = [f"{r['ratio'][c]:.2f}" if c in r["ratio"] else "" for c in cols]
        lines.append(f"| {r['model']} | " + " | ".join(cells) + f" | {r['median_s']['lightsr auto']:.3f} |")
    table = "\n".join(lines)
    print(table, flush=True)
    for r in results:
        print(f"{r['model']}: max |y - fp32| " + ", ".join(f"{m} {d:.1e}" for m, d in r["max_abs_diff_vs_fp32"].items()))
    if args.psnr:
        rows = ["| model | mode | dPSNR Set5 | dPSNR Set14 |", "|---|---|---|---|"]
        for r in results:
            r["psnr"] = psnr_costs(r["model"])
            rows += [f"| {r['model']} | {mode} | {d['Set5']:+.4f} | {d['Set14']:+.4f} |"
                     for mode, d in (r["psnr"] or {}).items() if mode != "fp32"]
        table += "\n\nPSNR change against fp32 (Y, standard protocol, real weights only):\n\n" + "\n".join(rows)
        print("\n".join(rows), flush=True)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "runtimes.md").write_text(table + "\n")
        (out / "runtimes.json").write_text(json.dumps(results, indent=1))

if __name__ == "__main__":
    main()
