"""Ship a long run's best weights (EMA: the run's best.safetensors or its latest checkpoint's EMA,
whichever scores higher on the held-out validation images, never on a benchmark set) into src/lightsr/weights/ with the metadata the package promises, after evaluating them on
Set5, Set14 and BSD100 (standard protocol).

    python experiments/ship_weights.py experiments/long_runs/rlfn_s_x4 [--overwrite]
    python experiments/ship_weights.py experiments/c2d_claim/swinir_c2d_small_A_s1 --as swinir_c2d_small

``--as NAME``: ship under a registered variant whose builder holds the run's options (the run trained
``swinir_c2d`` with ``--opt blocks=2 windows=[...]``; the file is ``swinir_c2d_small_x4``).
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT.parent / "shared" / "data" / "benchmark"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--overwrite", action="store_true", help="replace the shipped file")
    ap.add_argument("--as", dest="variant", help="a registered variant holding the run's options")
    ap.add_argument("--recipe", default="cpu_long", help="how the run was trained, for the metadata")
    ap.add_argument("--stage1", help="the stage-1 run this one started from (C2D): its CPU time counts too")
    args = ap.parse_args()
    import torch

    from lightsr.checkpoint import read_metadata, read_state_dict, save_weights
    from lightsr.evaluate import evaluate
    from lightsr.models import build_model
    from lightsr.models.registry import WEIGHTS_DIR

    torch.set_num_threads(2)
    run = Path(args.run)
    cfg = json.loads((run / "config.json").read_text())
    from lightsr.data.benchmark import BenchmarkFolder
    from lightsr.data.patches import held_out

    name, scale = cfg["model"], int(cfg["scale"])
    options = cfg.get("options") or None
    if args.variant:
        from lightsr.models import create_model
        variant = create_model(args.variant, scale)
        trained = create_model(name, scale, **(options or {}))
        def layout(m):  # tensor shapes and every window size
            return ({k: v.shape for k, v in m.state_dict().items()},
                    [(n, getattr(x, "windows", None), getattr(x, "window", None)) for n, x in m.named_modules()])
        if layout(variant) != layout(trained):
            raise SystemExit(f"{args.variant} is not {name} with {options}")
        name, options = args.variant, None
    last = sorted((run / "ckpt").glob("step_*"))[-1]
    state = json.loads((last / "state.json").read_text())
    files = held_out([ROOT.parent / "shared" / "data" / "train" / Path(d).name for d in cfg["train_dirs"]],
                     cfg["holdout"])
    val = BenchmarkFolder(files[0].parent, scale, files=files, name="holdout")
    cands = {run / "best.safetensors": read_metadata(run / "best.safetensors")["step"],
             last / "ema.safetensors": state["step"]}
    scored = {p: evaluate(build_model(name, scale, str(p), options), [val], scale, progress=False)["holdout"]["psnr"]
              for p in cands}
    best = max(scored, key=scored.get)
    meta = {"step": cands[best], "val_psnr_y": scored[best], "val": f"{len(files)} images held out of {files[0].parent.name}"}
    print({str(p): round(v, 4) for p, v in scored.items()}, "->", best)
    model = build_model(name, scale, str(best), options)
    res = evaluate(model, [BENCH / s for s in ("Set5", "Set14", "BSD100")], scale, progress=False)
    sessions = list(csv.DictReader(open(run / "sessions.csv")))
    if args.stage1:
        sessions += list(csv.DictReader(open(Path(args.stage1) / "sessions.csv")))
    cpu_h = sum(float(r["cpu_min"]) for r in sessions) / 60
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    held = state["val_files"]
    out = {"model": name, "scale": scale, "step": meta["step"], "recipe": args.recipe,
           "cpu_hours": round(cpu_h, 2), "ema": bool(cfg["ema"]), "seed": cfg["seed"], "loss": cfg["loss"],
           "init": cfg.get("init"),  # the run it started from (its CPU time is not in cpu_hours)
           "data": f"BSDS400 + T91 ({len(held)} BSDS400 images held out for validation)",
           "val_psnr_y": meta["val_psnr_y"], "val": meta.get("val"), "commit": commit,
           "run": str(run.relative_to(ROOT) if run.is_absolute() else run),
           **{f"{k.lower()}_psnr_y": round(v["psnr"], 4) for k, v in res.items()},
           **{f"{k.lower()}_ssim": round(v["ssim"], 4) for k, v in res.items()}}
    dst = WEIGHTS_DIR / f"{name}_x{scale}.safetensors"
    save_weights(read_state_dict(best), dst, out, overwrite=args.overwrite)
    print(json.dumps(out, indent=1))
    print(f"| {name} x{scale} (ours, step {meta['step']}, {cpu_h:.2f} CPU-h) | "
          + " | ".join(f"{v['psnr']:.4f} / {v['ssim']:.4f}" for v in res.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
