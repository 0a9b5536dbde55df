"""Does int8 pay on this CPU? PyTorch's x86 int8 path (PT2E static quantization with torchao's
X86InductorQuantizer, compiled ahead of time by AOTInductor) against ``lightsr auto`` and OpenVINO bf16
on the same weights: Set5 PSNR cost and time at 320x180 -> x4, interleaved rounds, medians.

    pip install --no-deps torchao==0.18.0      # not a lightsr dependency: this probe only
    python benchmarks/int8_probe.py [--model rlfn_s] [--keep-float fea_conv upsampler] [--rounds 7]
    python benchmarks/int8_probe.py --engine openvino-qdq          # ONNX Runtime's QDQ file, run by OpenVINO
    pip install nncf==3.4.0                    # not a lightsr dependency either
    python benchmarks/int8_probe.py --engine openvino-nncf [--preset mixed] [--max-drop 0.012]

Calibration: 32 BSDS400 training images reduced 4x (never the benchmark). ``--keep-float NAME ...``
leaves those sub-modules in float (the first and last convolutions are the usual choice). Result and
verdict in results/runtimes.md, "int8".
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def quantize(model: torch.nn.Module, keep_float: list[str], calib: list[torch.Tensor], path: str):
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    import torch._inductor.config as inductor_config

    dyn = torch.export.Dim.AUTO
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        m = torch.export.export(model, (x,), dynamic_shapes=({2: dyn, 3: dyn},)).module()
        q = xiq.X86InductorQuantizer()
        q.set_global(xiq.get_default_x86_inductor_quantization_config())
        for name in keep_float:
            q.set_module_name_qconfig(name, None)
        m = prepare_pt2e(m, q)
        for c in calib:
            m(c)
        m = convert_pt2e(m)
        # AOTInductor, not torch.compile: with nn-module inlining, torch.compile's freezing leaves the
        # int8 weights as graph inputs and fails on onednn.qconv_prepack (pytorch/pytorch#126093)
        inductor_config.freezing = True
        t0 = time.perf_counter()
        ep = torch.export.export(m, (x,), dynamic_shapes=({2: dyn, 3: dyn},))
        torch._inductor.aoti_compile_and_package(ep, package_path=path)
        print(f"# AOTInductor compile {time.perf_counter() - t0:.1f} s")
    return torch._inductor.aoti_load_package(path)


def quantize_qdq(model: torch.nn.Module, keep_float: list[str], calib: list[torch.Tensor], tmp: str, threads: int):
    """The other route: ONNX Runtime's static quantizer writes a QDQ ONNX file (int8 weights per
    channel, uint8 activations, calibrated min-max), which OpenVINO compiles to int8 kernels (the
    layers left in float run in bf16 where native). Uses only lightsr's optional extras (onnx, openvino)."""
    import onnx
    import openvino as ov
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from lightsr.export import export_onnx

    fp, pre, q = f"{tmp}/fp32.onnx", f"{tmp}/pre.onnx", f"{tmp}/int8.onnx"
    export_onnx(model.to(memory_format=torch.contiguous_format), fp, sample_hw=(64, 64), overwrite=True)
    quant_pre_process(fp, pre)
    names = [n.name for n in onnx.load(pre).graph.node]
    exclude = [n for n in names if any(f"/{k}/" in n or n.startswith(f"/{k}") for k in keep_float)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib)

        def get_next(self):
            c = next(self.it, None)
            return None if c is None else {"input": c.numpy()}

    quantize_static(pre, q, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=exclude)
    cm = ov.Core().compile_model(q, "CPU", {"INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": threads,
                                           "PERFORMANCE_HINT": "LATENCY"})
    req = cm.create_infer_request()
    print(f"# QDQ file: {len(exclude)} nodes left in float: {exclude}")
    return lambda t: torch.from_numpy(req.infer({0: t.float().numpy()})[0].copy())


def quantize_nncf(model: torch.nn.Module, keep_float: list[str], calib: list[torch.Tensor], tmp: str, threads: int,
                  shape: tuple[int, ...], preset: str = "performance", max_drop: float | None = None):
    """The third route: OpenVINO's own post-training quantizer (NNCF, ``pip install nncf``) on the
    graph lightsr's OpenVINO backend runs (the traced ONNX file read by OpenVINO): FakeQuantize nodes
    (per-channel symmetric int8 weights, activations per ``--preset``), calibrated on the same images,
    then compiled by OpenVINO with bf16 for whatever stays in float. With ``max_drop`` (dB), NNCF's
    accuracy control reverts the most sensitive operations to float until the Y-PSNR (x4, standard
    protocol) on 12 other BSDS400 training images (200-211; never the benchmark) is within it. Returns
    the dynamic-size callable (for PSNR) and one compiled for ``shape`` (for time, as the bf16 runner
    compiles a repeated size)."""
    import nncf
    import openvino as ov

    from lightsr.data.benchmark import BenchmarkFolder
    from lightsr.evaluate import to_batch, to_u8
    from lightsr.export import trace_onnx
    from lightsr.metrics import psnr_ssim

    core = ov.Core()
    trace_onnx(model.to(memory_format=torch.contiguous_format), f"{tmp}/fp32.onnx", (64, 64))
    fp = core.read_model(f"{tmp}/fp32.onnx")
    ignored = nncf.IgnoredScope(patterns=[f".*/{k}/.*" for k in keep_float], validate=False) if keep_float else None
    kw = {"ignored_scope": ignored} if ignored else {}
    kw["preset"] = getattr(nncf.QuantizationPreset, preset.upper())
    data = nncf.Dataset(calib, lambda t: t.numpy())
    if max_drop is None:
        q = nncf.quantize(fp, data, subset_size=len(calib), **kw)
    else:
        files = sorted((DATA / "train" / "BSDS400").glob("*"))[200:212]
        val = [(p.lr, p.hr) for p in BenchmarkFolder(files[0].parent, 4, files=files, name="bsds400_200_211")]
        as_input = lambda lr: to_batch(lr, torch.device("cpu")).numpy()  # noqa: E731

        def y_psnr(compiled, pairs) -> float:
            out = compiled.outputs[0]
            return float(np.mean([psnr_ssim(to_u8(torch.from_numpy(compiled(as_input(lr))[out])), hr, 4)[0]
                                  for lr, hr in pairs]))

        q = nncf.quantize_with_accuracy_control(fp, data, nncf.Dataset(val, lambda v: as_input(v[0])), y_psnr,
                                                max_drop=max_drop, drop_type=nncf.DropType.ABSOLUTE,
                                                subset_size=len(calib), **kw)
    cfg = {"INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    dyn = core.compile_model(q, "CPU", cfg).create_infer_request()
    fixed = q.clone()
    fixed.reshape({0: list(shape)})
    static = core.compile_model(fixed, "CPU", cfg).create_infer_request()
    n_fq = sum(op.get_type_name() == "FakeQuantize" for op in q.get_ops())
    print(f"# NNCF ({preset}, max drop {max_drop}): {n_fq} FakeQuantize nodes; left in float: {keep_float or 'none'}")
    # the timed call as OpenVINORunner makes it: input shared, output not copied
    return (lambda t: torch.from_numpy(dyn.infer({0: t.float().numpy()})[0].copy()),
            lambda t: torch.from_numpy(static.infer({0: t.float().contiguous().numpy()}, share_inputs=True)[0]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="rlfn_s")
    ap.add_argument("--weights", default=None, help="a checkpoint (default: the shipped or published weights)")
    ap.add_argument("--keep-float", nargs="*", default=[])
    ap.add_argument("--calib", type=int, default=32, help="calibration images (BSDS400, reduced 4x)")
    ap.add_argument("--max-drop", type=float, default=None,
                    help="NNCF: accuracy control, at most this Y-PSNR drop (dB) on 12 held-out BSDS400 images")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--engine", choices=("aoti", "openvino-qdq", "openvino-nncf"), default="aoti",
                    help="aoti: torchao PT2E + AOTInductor; openvino-qdq: ONNX Runtime's QDQ file run by OpenVINO; "
                         "openvino-nncf: OpenVINO's own quantizer (NNCF)")
    ap.add_argument("--preset", choices=("performance", "mixed"), default="performance",
                    help="NNCF: symmetric (performance) or asymmetric (mixed) activations")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    from lightsr.backends import make_runner
    from lightsr.evaluate import evaluate
    from lightsr.imageio import read_image
    from lightsr.inference import Runner
    from lightsr.models.resolve import resolve

    desc = resolve(a.model, a.weights, scale=4)
    calib = [torch.from_numpy(np.ascontiguousarray(read_image(f)[::4, ::4, :3])).permute(2, 0, 1)[None].float() / 255
             for f in sorted((DATA / "train" / "BSDS400").glob("*"))[:a.calib]]
    x = torch.rand(1, 3, 180, 320)
    with tempfile.TemporaryDirectory() as tmp:
        if a.engine == "aoti":
            int8 = timed = quantize(desc.module.eval(), a.keep_float, calib, f"{tmp}/int8.pt2")
        elif a.engine == "openvino-qdq":
            int8 = timed = quantize_qdq(desc.module.eval(), a.keep_float, calib, tmp, a.threads)
        else:  # int8: any size (for PSNR); timed: compiled for x's size
            int8, timed = quantize_nncf(desc.module.eval(), a.keep_float, calib, tmp, a.threads, tuple(x.shape),
                                        a.preset, a.max_drop)
        for name in ("Set5", "Set14"):
            bench = [DATA / "benchmark" / name]
            fp32 = evaluate(desc.module, bench, 4, progress=False)[name]["psnr"]
            q = evaluate(None, bench, 4, progress=False, forward=lambda t: int8(t.float()))[name]["psnr"]
            print(f"{name} x4 Y-PSNR: fp32 {fp32:.4f}, int8 {q:.4f} ({q - fp32:+.4f} dB)")

        auto = Runner(resolve(a.model, a.weights, scale=4), precision="auto")
        fns = {"lightsr auto": lambda: auto(x), f"int8 ({a.engine})": lambda: timed(x)}
        try:
            ov = make_runner(resolve(a.model, a.weights, scale=4), "cpu", precision="auto", backend="openvino")
            fns["OpenVINO bf16"] = lambda: ov(x)
        except Exception as exc:  # noqa: BLE001 - OpenVINO is optional
            print(f"# OpenVINO skipped: {exc}")
        times = {k: [] for k in fns}
        with torch.inference_mode():
            for f in fns.values():
                for _ in range(3):
                    f()
            for _ in range(a.rounds):  # interleaved: drift hits every mode alike
                for k, f in fns.items():
                    t = time.perf_counter()
                    f()
                    times[k].append(time.perf_counter() - t)
    base = statistics.median(times["lightsr auto"])
    print(f"320x180 -> x4, {a.threads} threads, median of {a.rounds} interleaved rounds:")
    for k, v in times.items():
        print(f"  {k:20s} {statistics.median(v) * 1e3:7.1f} ms  {statistics.median(v) / base:.2f}x auto")


if __name__ == "__main__":
    main()
