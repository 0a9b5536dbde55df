"""The photo model (issue #26): RLFN-S fine-tuned from its shipped bicubic weights on degraded LR
(``lightsr train --recipe photo``), and the measurement of the issue's targets.

    python experiments/photo_model.py run pilot_photo        # 1,000 steps, --degradation photo_strong
    python experiments/photo_model.py run pilot_jpeg         # 1,000 steps, --degradation jpeg
    python experiments/photo_model.py run pilot_mild         # 1,000 steps, --degradation photo_mild
    python experiments/photo_model.py run x4 [--time_limit MIN]   # the shipped photo model, x4
    python experiments/photo_model.py run x4_jpeg           # second x4 candidate, --degradation photo_jpeg
    python experiments/photo_model.py table [--sets Set14 BSD100] [--runs pilot_photo x4 ...]
    python experiments/photo_model.py ship x4 [--overwrite]   # final weights -> src/lightsr/weights

``table`` prints Y-PSNR / SSIM (standard protocol, shave = scale) on benchmark images made into the
inputs users bring: HR -> MATLAB bicubic x4 -> JPEG at q40 / q60 / q75 / q90 (Pillow, 4:2:0), and the
clean LR, for bicubic, the shipped bicubic-trained default and each run's final (EMA) weights.
Runs live in ``experiments/photo/rlfn_s_{arm}``; results in results/photo.md.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "experiments" / "photo"
BENCH = ROOT.parent / "shared" / "data" / "benchmark"
QUALITIES = (None, 95, 90, 75, 60, 40)  # None: the clean LR
ARMS = {  # arm -> (scale, degradation, iterations)
    "pilot_photo": (4, "photo_strong", 1000),  # was named "photo" when it ran; same parameters
    "pilot_jpeg": (4, "jpeg", 1000),
    "pilot_mild": (4, "photo_mild", 1000),
    "x4": (4, "photo", 5_000),
    "x2": (2, "photo_jpeg", 5_000),  # the shipped x4 preset
    "x4_jpeg": (4, "photo_jpeg", 5_000),  # the second x4 candidate: JPEG first, 10 % clean
}


def run_dir(arm: str) -> Path:
    return RUNS / f"rlfn_s_{arm}"


def config(arm: str, seed: int):
    from lightsr.train.recipes import photo

    if arm not in ARMS:
        raise SystemExit(f"unknown arm {arm!r}: {', '.join(ARMS)}")
    scale, degradation, iters = ARMS[arm]
    cfg = photo(scale, "rlfn_s")
    cfg.init = str(Path(cfg.init).relative_to(ROOT))  # the shipped weights, as a path in the repository
    cfg.degradation, cfg.iters, cfg.seed = degradation, iters, seed
    cfg.out = str(run_dir(arm).relative_to(ROOT))
    if iters < 5000:  # pilots: validate and save twice
        cfg.val_every = cfg.save_every = iters // 2
    return cfg


def run(arm: str, seed: int, time_limit: float | None) -> int:
    from lightsr.train.engine import train

    cfg = config(arm, seed)
    cfg.time_limit, cfg.progress = time_limit, False
    res = train(cfg, resume=(run_dir(arm) / "config.json").is_file())
    return 0 if res.get("step") else 1


def table(sets: list[str], runs: list[str]) -> int:
    from lightsr.evaluate import evaluate
    from lightsr.models import build_model

    models = {}
    for arm in runs:
        scale = ARMS[arm][0]
        w = run_dir(arm) / "final.safetensors"
        if w.is_file():
            models[arm] = (scale, build_model("rlfn_s", scale, str(w)))
        else:
            print(f"# {arm}: not finished ({w} missing)", file=sys.stderr)
    scales = sorted({s for s, _ in models.values()} or {4})
    rows = []
    for scale in scales:
        lineup = {"bicubic": build_model("bicubic", scale),
                  "default": build_model("rlfn_s", scale, str(ROOT / f"src/lightsr/weights/rlfn_s_x{scale}.safetensors"))}
        lineup.update({a: m for a, (s, m) in models.items() if s == scale})
        for q in QUALITIES:
            for name, m in lineup.items():
                res = evaluate(m, [BENCH / s for s in sets], scale, jpeg=q, progress=False)
                rows.append({"scale": scale, "input": "clean" if q is None else f"q{q}", "model": name,
                             **{f"{s}_psnr": f"{res[s]['psnr']:.4f}" for s in sets},
                             **{f"{s}_ssim": f"{res[s]['ssim']:.4f}" for s in sets}})
                print(" ".join(f"{v}" for v in rows[-1].values()), flush=True)
    out = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
    out.writeheader()
    out.writerows(rows)
    return 0


def ship(arm: str, overwrite: bool) -> int:
    """The run's final (EMA) weights into the package as ``rlfn_s_photo_x{scale}.safetensors``, with
    the metadata every shipped file carries and its figures on clean and JPEG q75 input."""
    import json
    import subprocess

    from lightsr.checkpoint import read_metadata, read_state_dict, save_weights
    from lightsr.evaluate import evaluate
    from lightsr.models import build_model
    from lightsr.models.registry import WEIGHTS_DIR

    d = run_dir(arm)
    cfg = json.loads((d / "config.json").read_text())
    scale, final = int(cfg["scale"]), d / "final.safetensors"
    model = build_model("rlfn_s", scale, str(final))
    sets = [BENCH / s for s in ("Set5", "Set14", "BSD100")]
    clean = evaluate(model, sets, scale, progress=False)
    q75 = evaluate(model, sets, scale, progress=False, jpeg=75)
    cpu_h = sum(float(r["cpu_min"]) for r in csv.DictReader(open(d / "sessions.csv"))) / 60
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    fin = read_metadata(final)
    best = read_metadata(d / "best.safetensors")
    meta = {"model": "rlfn_s", "scale": scale, "kind": "photo", "step": int(cfg["iters"]), "recipe": "photo",
            "degradation": cfg["degradation"], "seed": cfg["seed"], "init": cfg["init"],
            "cpu_hours": round(cpu_h, 2), "ema": bool(cfg["ema"]),
            "data": "BSDS400 + T91 (10 BSDS400 images held out for validation)",
            "val": best.get("val"), "val_psnr_y": fin.get("val_psnr_y", best.get("val_psnr_y")),
            "commit": commit, "run": str(d.relative_to(ROOT)),
            **{f"{k.lower()}_psnr_y": round(v["psnr"], 4) for k, v in clean.items()},
            **{f"{k.lower()}_ssim": round(v["ssim"], 4) for k, v in clean.items()},
            **{f"{k.lower()}_q75_psnr_y": round(v["psnr"], 4) for k, v in q75.items()}}
    dst = WEIGHTS_DIR / f"rlfn_s_photo_x{scale}.safetensors"
    save_weights(read_state_dict(final), dst, meta, overwrite=overwrite)
    print(json.dumps(meta, indent=1))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("arm", choices=list(ARMS))
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--time_limit", type=float)
    t = sub.add_parser("table")
    t.add_argument("--sets", nargs="+", default=["Set14", "BSD100"])
    t.add_argument("--runs", nargs="*", default=list(ARMS))
    sh = sub.add_parser("ship")
    sh.add_argument("arm", choices=["x4", "x2", "x4_jpeg"])
    sh.add_argument("--overwrite", action="store_true")
    a = p.parse_args()
    if a.cmd == "ship":
        return ship(a.arm, a.overwrite)
    return run(a.arm, a.seed, a.time_limit) if a.cmd == "run" else table(a.sets, a.runs)


if __name__ == "__main__":
    sys.exit(main())
