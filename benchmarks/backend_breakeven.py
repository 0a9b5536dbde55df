"""From how many input pixels does OpenVINO's one-time setup pay for itself? (``backends.Measured.pays_from_mpx``)

    python benchmarks/backend_breakeven.py [--model rlfn_s] [--images 40] [--size 180x320] [--repeat 3]

A job as ``lightsr upscale FOLDER`` runs it, in a fresh process per backend: import, ``lightsr.load``,
then ``--images`` same-size images through ``Upscaler.upscale_array`` (decoding and encoding excluded:
they cost the same on both backends). Three arms, run in turn ``--repeat`` times (medians): PyTorch
(``--backend torch``), OpenVINO with an empty conversion cache (a first run: the ONNX trace) and with
the cache filled by the previous arm (every later run). From each arm's time to its first output
(setup) and its median time per image after the third, the break-even is
``(setup_ov - setup_torch) / (per_image_torch - per_image_ov)`` images, reported in input megapixels.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np, torch
torch.set_num_threads({threads})
import lightsr
up = lightsr.load({model!r}, scale=4, backend={backend!r})
h, w = {h}, {w}
img = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
marks = []
for i in range({images}):
    up.upscale_array(img)
    marks.append(time.perf_counter() - t0)
print(json.dumps({{"marks": marks, "backend": up.backend}}))
"""


def arm(model: str, backend: str, images: int, size: tuple[int, int], threads: int, cache: str) -> dict:
    code = CHILD.format(threads=threads, model=model, backend=backend, h=size[0], w=size[1], images=images)
    env = dict(os.environ, LIGHTSR_CACHE=cache, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    m = res["marks"]
    res["setup"] = m[0]
    res["per_image"] = statistics.median(b - a for a, b in zip(m[2:], m[3:]))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="rlfn_s")
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--size", default="180x320", help="input HxW")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", help="also write the figures as JSON (the record auto's table cites)")
    a = ap.parse_args()
    size = tuple(int(v) for v in a.size.lower().split("x"))
    runs = {"torch": [], "openvino, empty cache": [], "openvino, cached": []}
    for _ in range(a.repeat):
        with tempfile.TemporaryDirectory() as cache:
            runs["torch"].append(arm(a.model, "torch", a.images, size, a.threads, cache))
            runs["openvino, empty cache"].append(arm(a.model, "openvino", a.images, size, a.threads, cache))
            runs["openvino, cached"].append(arm(a.model, "openvino", a.images, size, a.threads, cache))
    mpx = size[0] * size[1] / 1e6
    med = {k: (statistics.median(r["setup"] for r in v), statistics.median(r["per_image"] for r in v))
           for k, v in runs.items()}
    print(f"{a.model} x4, {size[0]}x{size[1]} input ({mpx:.4f} Mpx), {a.threads} threads, {a.images} images, "
          f"medians of {a.repeat}")
    print("| arm | setup to first output (s) | per image (s) | break-even vs torch |")
    print("| --- | --- | --- | --- |")
    st, pt = med["torch"]
    record = {"model": a.model, "size": list(size), "threads": a.threads, "images": a.images, "repeat": a.repeat,
              "arms": {}}
    for k, (s, p) in med.items():
        pays = None
        if k == "torch" or p >= pt:
            be = "-" if k == "torch" else "never (not faster per image)"
        else:
            n = max((s - st) / (pt - p), 0.0)
            pays = n * mpx
            be = f"{n:.1f} images = {pays:.2f} Mpx"
        record["arms"][k] = {"setup_s": s, "per_image_s": p, "pays_from_mpx": pays,
                             "runs": [{"setup_s": r["setup"], "per_image_s": r["per_image"]} for r in runs[k]]}
        print(f"| {k} | {s:.3f} | {p:.4f} | {be} |")
    if a.out:
        os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
        with open(a.out, "w") as f:
            json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
