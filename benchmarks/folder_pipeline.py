"""`lightsr upscale` on a folder vs the model alone on the same images, in the same run (issue 19).

    python benchmarks/folder_pipeline.py                  # both folders, 3 repeats, medians
    python benchmarks/folder_pipeline.py --png-levels     # PNG zlib levels 0-9 on real x4 outputs

Folders (made in a temporary directory, from ../shared/data/benchmark/BSD100):

* ``small``: the first 50 BSD100 images, HR cropped to a multiple of 4, LR by lightsr's MATLAB bicubic
  (:func:`lightsr.data.benchmark.make_lr`), upscaled x4 (80x120 -> 320x480);
* ``large``: 10 BSD100 HR images cropped to 480x320 (or 320x480) used as the LR, upscaled x2.

For each folder and repeat: the command's time (``lightsr.cli.main(["upscale", folder, ...])`` in this
process: the wall time its summary line reports, i.e. reading + model + writing, without start-up and
model loading, which are printed separately) and the model-only time (``up = lightsr.load(...)``, the
same decoded arrays in a Python loop). Rows: the pipelined command at the default PNG level, the same
run serially (``LIGHTSR_PIPELINE=0``) and the serial run at Pillow's old level 6 (the behaviour before
issue 19). A warm-up pass over both image shapes comes first and the order of the timed runs
alternates between repeats. Times are medians of ``--repeat`` runs; a ratio is the median over the
repeats of (command / model-only loop of the same repeat). The machine may be shared, so read the
ratios (measured back to back in one process), not the absolute times.
"""
from __future__ import annotations

import argparse
import io as _io
import os
import statistics
import sys
import tempfile
import time
from contextlib import redirect_stderr
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BSD100 = ROOT.parent / "shared" / "data" / "benchmark" / "BSD100"


def make_folders(tmp: Path, n_small: int, n_large: int) -> dict:
    from lightsr.data.benchmark import make_lr
    from lightsr.imageio import read_image, write_image

    files = sorted(p for p in BSD100.iterdir() if p.suffix.lower() == ".png")
    if len(files) < max(n_small, n_large):
        sys.exit(f"need {max(n_small, n_large)} images in {BSD100}")
    small, large = tmp / "small_x4", tmp / "large_x2"
    small.mkdir()
    large.mkdir()
    for f in files[:n_small]:
        hr = read_image(f)[..., :3]
        h, w = hr.shape[0] // 4 * 4, hr.shape[1] // 4 * 4
        write_image(small / f.name, make_lr(hr[:h, :w], 4), png_level=6)
    for f in files[:n_large]:
        hr = read_image(f)[..., :3]
        h, w = (320, 480) if hr.shape[1] >= hr.shape[0] else (480, 320)
        write_image(large / f.name, hr[:h, :w], png_level=6)
    return {"small": (small, 4), "large": (large, 2)}


def command_time(folder: Path, scale: int, out: Path, serial: bool, png_level: int | None,
                 fast_png: bool = True) -> dict:
    """One in-process `lightsr upscale` run: the summary's wall and model seconds, and the whole call.
    ``fast_png=False``: PNG through Pillow, as before lightsr.imageio.fast_png."""
    import lightsr.imageio as lio
    from lightsr.cli import main

    argv = ["upscale", str(folder), "-o", str(out), "--scale", str(scale), "-q"]
    if png_level is not None:
        argv += ["--png-level", str(png_level)]
    old = os.environ.get("LIGHTSR_PIPELINE")
    os.environ["LIGHTSR_PIPELINE"] = "0" if serial else "1"
    err = _io.StringIO()
    kept = lio.fast_png
    if not fast_png:
        lio.fast_png = lambda *a, **k: None
    t0 = time.perf_counter()
    try:
        with redirect_stderr(err):
            rc = main(argv)
    finally:
        lio.fast_png = kept
        if old is None:
            os.environ.pop("LIGHTSR_PIPELINE")
        else:
            os.environ["LIGHTSR_PIPELINE"] = old
    total = time.perf_counter() - t0
    line = err.getvalue().strip().splitlines()[-1]
    if rc != 0:
        sys.exit(f"upscale failed ({rc}): {err.getvalue()}")
    # "... in 2.3 s (... model 1.9 s = 83 % of the wall time)"
    wall = float(line.split(" in ")[1].split(" s")[0])
    model = float(line.split("model ")[1].split(" s")[0])
    return {"wall": wall, "model_in_cmd": model, "total": total, "line": line}


def model_time(up, arrays: list[np.ndarray]) -> float:
    t0 = time.perf_counter()
    for a in arrays:
        up(a)
    return time.perf_counter() - t0


def bench(args) -> None:
    import torch

    import lightsr
    from lightsr.imageio import PNG_LEVEL, read_image

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs visible; default PNG level "
          f"{PNG_LEVEL}; medians of {args.repeat} repeats (shared machine: ratios, not absolute times)")
    with tempfile.TemporaryDirectory(prefix="lightsr_folder_bench_") as tmp:
        tmp = Path(tmp)
        folders = make_folders(tmp, args.small, args.large)
        folders = {k: v for k, v in folders.items() if k in args.folders}
        rows = []
        for key, (folder, scale) in folders.items():
            files = sorted(folder.iterdir())
            arrays = [read_image(f) for f in files]
            up = lightsr.load(scale=scale)
            for a in {a.shape: a for a in arrays}.values():  # warm-up: every input shape once
                up(a)
            configs = [("pipelined", False, None, True), ("serial", True, None, True),
                       ("serial, Pillow PNG level 1", True, None, False), ("serial, PNG level 6", True, 6, True)]
            res = {name: [] for name, *_ in configs}
            res["model only"] = []
            for r in range(args.repeat):
                order = configs if r % 2 == 0 else configs[::-1]
                if r % 2:
                    res["model only"].append(model_time(up, arrays))
                for name, serial, level, fast in order:
                    out = tmp / f"out_{key}_{r}_{name.replace(' ', '_').replace(',', '')}"
                    res[name].append(command_time(folder, scale, out, serial, level, fast))
                if not r % 2:
                    res["model only"].append(model_time(up, arrays))
            m = statistics.median(res["model only"])
            h, w = arrays[0].shape[:2]
            print(f"\n{key}: {len(files)} images, LR {w}x{h} (or {h}x{w}) at x{scale}; model only: {m:.2f} s "
                  f"(median of {[round(x, 2) for x in res['model only']]})")
            for name, serial, *_ in configs:
                wall = statistics.median(x["wall"] for x in res[name])
                inner = statistics.median(x["model_in_cmd"] for x in res[name])
                total = statistics.median(x["total"] for x in res[name])
                # each repeat's command against the model-only loop of the same repeat, then the median
                ratio = statistics.median(x["wall"] / mo for x, mo in zip(res[name], res["model only"]))
                print(f"  {name:22s} command {wall:6.2f} s  ratio {ratio:5.2f}   (model inside it {inner:.2f} s; "
                      f"whole call with model loading {total:.2f} s; runs {[round(x['wall'], 2) for x in res[name]]})")
                rows.append((key, name, wall, m, ratio))
                if serial:  # I/O per core: the serial run's non-model time on one core against the
                    # model's core-seconds (its wall time on every thread)
                    share = statistics.median((x["wall"] - x["model_in_cmd"]) / (args.threads * x["model_in_cmd"])
                                              for x in res[name])
                    io_ms = statistics.median(x["wall"] - x["model_in_cmd"] for x in res[name]) / len(files) * 1e3
                    print(f"  {'':22s} I/O {io_ms:.1f} core-ms per image = {100 * share:.0f} % of the model's core-seconds")
            print(f"  last summary line: {res['pipelined'][-1]['line']}")
        print("\n| folder | command | command s | model-only s | ratio (median of per-repeat ratios) |\n| --- | --- | --- | --- | --- |")
        for key, name, wall, m, ratio in rows:
            print(f"| {key} | {name} | {wall:.2f} | {m:.2f} | {ratio:.2f} |")


def png_levels(args) -> None:
    """Encode real outputs through write_image (Pillow's PNG encoder) at each zlib level."""
    import torch
    from PIL import Image

    import lightsr
    from lightsr.data.benchmark import make_lr
    from lightsr.imageio import read_image, write_image
    from lightsr.api import SAMPLE

    torch.set_num_threads(args.threads)
    files = sorted(p for p in BSD100.iterdir() if p.suffix.lower() == ".png")[: args.n_png]
    up = lightsr.load(scale=4)
    photos = []
    for f in files:
        hr = read_image(f)[..., :3]
        h, w = hr.shape[0] // 4 * 4, hr.shape[1] // 4 * 4
        photos.append(up(make_lr(hr[:h, :w], 4)))
    sample = read_image(SAMPLE)
    sets = {f"{len(photos)} BSD100 x4 outputs (320x480)": photos, "sample.png x4 output (768x768)": [up(sample)],
            "pixel art (sample.png, nearest x3, 576x576)": [np.kron(sample, np.ones((3, 3, 1), np.uint8))]}
    configs = [("write_image", lv, "Pillow, adaptive filters") for lv in args.levels]
    configs += [("Pillow default", 6, "what write_image did before")]

    def encode(writer: str, level: int, path: Path, o: np.ndarray) -> None:
        if writer == "write_image":
            write_image(path, o, overwrite=True, png_level=level)
        else:  # what write_image did before issue 19 (level 6 = Pillow's default)
            Image.fromarray(o).save(path, format="PNG")

    print(f"encode + write to a temporary folder (write_image, atomic), median of {args.repeat} passes; "
          f"threads {args.threads}")
    with tempfile.TemporaryDirectory(prefix="lightsr_png_levels_") as tmp:
        for title, outs in sets.items():
            rows = []
            for writer, level, how in configs:
                times = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    for i, o in enumerate(outs):
                        encode(writer, level, Path(tmp) / f"{i}.png", o)
                    times.append(time.perf_counter() - t0)
                size = sum((Path(tmp) / f"{i}.png").stat().st_size for i in range(len(outs)))
                rows.append((writer, level, how, statistics.median(times) / len(outs) * 1e3, size / len(outs) / 1024))
            ref = [r for r in rows if r[0] == "Pillow default"][0]
            print(f"\n{title}\n\n| writer | level | filter, zlib strategy | ms / image | KB / image | "
                  f"time, size vs Pillow level 6 |\n| --- | --- | --- | --- | --- | --- |")
            for writer, level, how, ms, kb in rows:
                print(f"| {writer} | {level} | {how} | {ms:.1f} | {kb:.0f} | {ms / ref[3]:.2f}x, "
                      f"{100 * kb / ref[4] - 100:+.1f} % |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--small", type=int, default=50, help="images of the x4 folder")
    ap.add_argument("--large", type=int, default=10, help="images of the 480x320 x2 folder")
    ap.add_argument("--folders", nargs="+", default=["small", "large"], choices=["small", "large"])
    ap.add_argument("--png-levels", action="store_true", help="measure PNG levels instead")
    ap.add_argument("--levels", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5, 6, 9])
    ap.add_argument("--n-png", type=int, default=20, help="outputs encoded by --png-levels")
    args = ap.parse_args()
    if not BSD100.is_dir():
        sys.exit(f"BSD100 not found at {BSD100}: place the shared folder beside the repository")
    (png_levels if args.png_levels else bench)(args)


if __name__ == "__main__":
    main()
