"""The fast path, measured: latency of every inference mode as a ratio to the plain fp32 path in the
same run, the PSNR each mode costs, and training throughput plain vs fast.

    python benchmarks/fast_path.py                          # CPU, the issue's model list, 320x180, x4
    python benchmarks/fast_path.py imdn rlfn_s --psnr       # some models, + Set5/Set14 PSNR change
    python benchmarks/fast_path.py --train-only             # training patches/s only
    python benchmarks/fast_path.py --device cuda --out DIR  # the same on a GPU (+ CUDA graphs)
    python benchmarks/fast_path.py --tiny --out DIR         # seconds-long smoke run (CI runs it)

Modes (all eager unless named):

=============  =================================================================================
plain          fp32, contiguous NCHW: what every model did before the fast path
cl             fp32, channels_last (oneDNN's blocked kernels on CPU)
compiled       fp32, channels_last, ``torch.compile``
bf16           bf16 autocast, channels_last
bf16+compile   bf16 autocast, channels_last, ``torch.compile``
auto           what ``lightsr.load(...)`` picks on this device (``precision="auto"``)
cuda-graph     (CUDA) bf16 through ``torch.compile(mode="reduce-overhead")``
=============  =================================================================================

Latency: median of ``--repeats`` timed calls after ``--warmup`` untimed ones (compile happens in the
warm-up), batch 1. The machine is shared and noisy; ratios measured within one run are what count.
Output: a markdown table on stdout, and ``fast_path.md`` / ``fast_path.json`` in ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REFERENCE = {  # registry name -> checkpoint of ../shared/weights/reference (x4)
    "imdn": "imdn_x4.pth", "carn_m": "carn_m.pth", "rlfn_s": "rlfn_s_x4.pth", "hit_srf": "hit_srf_x4.pth",
    "mambairv2_light": "mambairv2_light_x4.pth",
}
MODELS = ["imdn", "carn_m", "rlfn_s", "hit_srf", "mambairv2_light", "DEFAULT", "hasn", "swinir_light",
          "srformer_light", "swinir_c2d", "srformer_c2d"]
TRAIN_MODELS = ["DEFAULT", "hasn", "swinir_c2d", "srformer_c2d", "edsr_baseline"]


def default_model() -> str:
    from lightsr.models.resolve import DEFAULT_MODEL

    return DEFAULT_MODEL


def weights_for(name: str, scale: int) -> str | None:
    """Reference checkpoint, else the shipped weights, else None (random weights)."""
    from lightsr.models import get_entry

    ref = SHARED / "weights" / "reference" / REFERENCE.get(name, "-")
    if ref.is_file() and scale == 4:
        return str(ref)
    shipped = get_entry(name).shipped_weights(scale)
    return str(shipped) if shipped else None


def build(name: str, scale: int, weights: str | None):
    from lightsr.models import build_model

    torch.manual_seed(0)  # random-weight models: the same weights in every mode
    return build_model(name, scale, weights, device="cpu")


def mode_runner(name: str, scale: int, weights: str | None, mode: str, device: torch.device):
    """A callable ``f(x) -> y`` for one mode, and the precision that runs inside."""
    from lightsr.inference import Runner

    model = build(name, scale, weights)
    if mode == "plain":
        model = model.to(device)

        def f(x):
            with torch.inference_mode():
                return model(x.to(device))
        return f, "fp32"
    prec = {"cl": "fp32", "compiled": "fp32", "bf16": "bf16", "bf16+compile": "bf16", "auto": "auto",
            "cuda-graph": "bf16"}[mode]
    r = Runner(model, device, prec, compile=mode in ("compiled", "bf16+compile"), channels_last=True
               if mode != "auto" and device.type == "cpu" else None)
    if mode == "cuda-graph":
        r.compiled = torch.compile(r.model, mode="reduce-overhead")
    return (lambda x: r(x)), r.precision


def time_call(f, x, warmup: int, repeats: int, device: torch.device) -> float:
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        f(x)
    sync()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        f(x)
        sync()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def psnr_change(name: str, scale: int, weights: str, device, sets) -> dict:
    """Set5/Set14 PSNR of fp32 and the bf16 change (standard protocol, the eval pipeline); ``auto``
    is bf16's change where the registry allows bf16 for the model, else 0. The fp32 fast-path modes
    (cl, compiled) compute the same function: their max |output difference| is in the latency table."""
    from lightsr.evaluate import evaluate
    from lightsr.models import get_entry

    out = {}
    for prec in ("fp32", "bf16"):
        res = evaluate(build(name, scale, weights), sets, scale, device=device, progress=False, precision=prec)
        out[prec] = {k: v["psnr"] for k, v in res.items()}
    out["bf16"] = {k: out["bf16"][k] - out["fp32"][k] for k in out["fp32"]}
    out["auto"] = dict(out["bf16"]) if get_entry(name).bf16 else {k: 0.0 for k in out["fp32"]}
    return out


def train_step(name: str, scale: int, mode: str, device, batch: int, patch: int):
    """One training step (forward, L1, backward, Adam) as a closure: ``plain`` fp32, ``fast`` (bf16 +
    channels_last where native) or ``compiled`` (fast, the model under ``torch.compile``: ``lightsr
    train --compile``)."""
    from lightsr import precision as P
    from lightsr.models import create_model

    torch.manual_seed(0)
    model = create_model(name, scale=scale).to(device).train()
    fast = mode != "plain"
    prec = P.choose("auto", device) if fast else "fp32"
    cl = fast and P.prepare(model, device, prec)
    net = torch.compile(model) if mode == "compiled" else model
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    x = P.to_format(torch.rand(batch, 3, patch, patch, device=device), cl)
    y = P.to_format(torch.rand(batch, 3, patch * scale, patch * scale, device=device), cl)

    def step(_=None):
        with P.autocast(device, prec):
            p = net(x)
        loss = (p.float() - y).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def train_rates(name: str, scale: int, modes, device, batch: int, patch: int, steps: int, rounds: int) -> dict:
    """Training patches/s per mode, the modes interleaved: every mode is built and warmed up (compiled
    in its warm-up) first, then each of ``rounds`` rounds times ``steps`` steps of every mode in turn;
    the figure is the median over rounds of each round's median step. Interleaving puts every mode
    under the same machine state, so the ratios hold on a noisy, shared host."""
    steps_of = {m: train_step(name, scale, m, device, batch, patch) for m in modes}
    for f in steps_of.values():
        time_call(f, None, 2, 1, device)
    per_round = {m: [] for m in modes}
    for _ in range(rounds):
        for m, f in steps_of.items():
            per_round[m].append(time_call(f, None, 0, steps, device))
    return {m: batch / statistics.median(ts) for m, ts in per_round.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", help=f"registry names (default: {' '.join(MODELS)}; DEFAULT = the "
                    "default upscaler model)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", default="180x320", help="input HxW (default 180x320: 1280x720 out at x4)")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--modes", default=None, help="comma list (default: plain,cl,compiled,bf16,auto on CPU)")
    ap.add_argument("--psnr", action="store_true", help="Set5/Set14 PSNR change of bf16/auto (models with weights)")
    ap.add_argument("--train", action="store_true", help="also training patches/s (plain vs fast)")
    ap.add_argument("--train-only", action="store_true")
    ap.add_argument("--psnr-only", action="store_true", help="only the PSNR change (no timing: may share the CPU)")
    ap.add_argument("--train-models", default=None, help="comma list (default: DEFAULT,hasn,swinir_c2d,srformer_c2d,edsr_baseline)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=48, help="LR training patch")
    ap.add_argument("--train-steps", type=int, default=5, help="timed steps per mode per round")
    ap.add_argument("--train-rounds", type=int, default=3, help="interleaved rounds (median over rounds)")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes and two small models: a smoke run")
    ap.add_argument("--out", default=None, help="folder for fast_path.md / fast_path.json")
    ap.add_argument("--budget", type=float, default=None, metavar="SEC",
                    help="start no new model after SEC seconds (the GPU check: --budget 420 fits 8 minutes)")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if args.tiny:
        args.models = args.models or ["rlfn_s"]
        args.modes = args.modes or "plain,cl,bf16,auto"
        args.size, args.warmup, args.repeats, args.train_steps, args.train_rounds = "16x16", 1, 1, 1, 1
        args.batch, args.patch = 2, 16
        args.train_models = args.train_models or "rlfn_s"
    default = default_model()
    models = [default if m == "DEFAULT" else m for m in (args.models or MODELS)]
    train_models = [default if m == "DEFAULT" else m for m in (args.train_models or ",".join(TRAIN_MODELS)).split(",")]
    if args.modes:
        modes = args.modes.split(",")
    elif cuda:
        modes = ["plain", "compiled", "bf16", "bf16+compile", "cuda-graph", "auto"]
    else:
        modes = ["plain", "cl", "compiled", "bf16", "auto"]
    h, w = (int(v) for v in args.size.lower().split("x"))
    from lightsr import precision as P

    info = {"device": str(device), "threads": args.threads, "torch": torch.__version__, "input": [h, w],
            "scale": args.scale, "native_bf16": P.native_bf16(device),
            "gpu": torch.cuda.get_device_name(device) if cuda else None}
    print(f"# fast path: {info}", flush=True)
    rows, psnr_rows, train_rows = [], {}, []
    t_start = time.perf_counter()

    def over_budget(what: str) -> bool:
        if args.budget is not None and time.perf_counter() - t_start > args.budget:
            print(f"  skipped {what}: over the {args.budget:g} s budget", file=sys.stderr, flush=True)
            info.setdefault("skipped", []).append(what)
            return True
        return False

    if not args.train_only:
        x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)).to(device)
        for name in models:
            if over_budget(name):
                continue
            weights = weights_for(name, args.scale)
            row = {"model": name, "weights": Path(weights).name if weights else "random"}
            ref = None
            for mode in ([] if args.psnr_only else modes):
                try:
                    f, prec = mode_runner(name, args.scale, weights, mode, device)
                    sec = time_call(f, x, args.warmup, args.repeats, device)
                    y = f(x).float()
                    if mode == "plain":
                        ref = y
                    diff = float((y - ref).abs().max()) if ref is not None else float("nan")
                    row[mode] = {"sec": sec, "precision": prec, "max_abs_diff": diff}
                except Exception as exc:  # noqa: BLE001 - report the mode as failed, keep going
                    row[mode] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"}
                print(f"  {name:16s} {mode:13s} {row[mode]}", file=sys.stderr, flush=True)
            if not args.psnr_only:
                rows.append(row)
            if (args.psnr or args.psnr_only) and weights:
                sets = [SHARED / "data" / "benchmark" / s for s in ("Set5", "Set14")]
                if all(s.is_dir() for s in sets):
                    psnr_rows[name] = psnr_change(name, args.scale, weights, device, sets)
                    print(f"  {name:16s} psnr {psnr_rows[name]}", file=sys.stderr, flush=True)
    if (args.train or args.train_only or args.tiny) and not args.psnr_only:
        for name in train_models:
            if over_budget(f"train {name}"):
                continue
            rates = train_rates(name, args.scale, ("plain", "fast") + (() if args.tiny else ("compiled",)), device,
                                args.batch, args.patch, args.train_steps, args.train_rounds)
            train_rows.append({"model": name, **rates, "ratio": rates["fast"] / rates["plain"],
                               **({"compiled_ratio": rates["compiled"] / rates["plain"]} if "compiled" in rates else {})})
            print(f"  train {name}: " + ", ".join(f"{m} {r:.1f}" for m, r in rates.items()) + " patches/s",
                  file=sys.stderr, flush=True)
    text = render(info, rows, modes, psnr_rows, train_rows, args)
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "fast_path.md").write_text(text)
        (out / "fast_path.json").write_text(json.dumps(
            {"info": info, "latency": rows, "psnr": psnr_rows, "train": train_rows}, indent=1, allow_nan=False,
            default=lambda v: None))
    return 0


def render(info, rows, modes, psnr_rows, train_rows, args) -> str:
    lines = [f"device {info['device']}{' (' + info['gpu'] + ')' if info['gpu'] else ''}, {info['threads']} threads, "
             f"torch {info['torch']}, input {info['input'][0]}x{info['input'][1]}, x{info['scale']}, native bf16: "
             f"{info['native_bf16']}; median of {args.repeats} after {args.warmup} warm-up", ""]
    if rows:
        lines.append("| model | weights | " + " | ".join(modes) + " |")
        lines.append("|---|---|" + "---|" * len(modes))
        for r in rows:
            base = r.get("plain", {}).get("sec")
            cells = []
            for m in modes:
                c = r.get(m, {})
                if "sec" not in c:
                    cells.append("failed")
                    continue
                ratio = f" ({base / c['sec']:.2f}x)" if base else ""
                tag = f" [{c['precision']}]" if m == "auto" else ""
                cells.append(f"{c['sec'] * 1000:.0f} ms{ratio}{tag}")
            lines.append(f"| {r['model']} | {r['weights']} | " + " | ".join(cells) + " |")
        lines.append("")
        diffs = [f"{r['model']} {m}: {r[m]['max_abs_diff']:.1e}" for r in rows for m in ("cl", "compiled")
                 if "max_abs_diff" in r.get(m, {})]
        if diffs:
            lines += ["fp32 fast path vs plain, max |output difference|: " + "; ".join(diffs), ""]
    if psnr_rows:
        lines += ["| model | fp32 Set5 / Set14 | " + " | ".join(k for k in next(iter(psnr_rows.values())) if k != "fp32")
                  + " |", "|---|---|" + "---|" * (len(next(iter(psnr_rows.values()))) - 1)]
        for name, d in psnr_rows.items():
            base = d["fp32"]
            cells = [" / ".join(f"{v:+.4f}" for v in d[k].values()) for k in d if k != "fp32"]
            lines.append(f"| {name} | {' / '.join(f'{v:.4f}' for v in base.values())} | " + " | ".join(cells) + " |")
        lines.append("")
    if train_rows:
        lines += [f"training patches/s (batch {args.batch}, LR patch {args.patch}, x{args.scale}, forward + L1 + "
                  "backward + Adam; compiled = fast under torch.compile, `lightsr train --compile`; modes interleaved, "
                  f"median over {args.train_rounds} rounds of {args.train_steps} steps):", "",
                  "| model | plain fp32 | fast | ratio | compiled | ratio |", "|---|---|---|---|---|---|"]
        for r in train_rows:
            comp = f"{r['compiled']:.1f} | {r['compiled_ratio']:.2f}x" if "compiled" in r else "- | -"
            lines.append(f"| {r['model']} | {r['plain']:.1f} | {r['fast']:.1f} | {r['ratio']:.2f}x | {comp} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
