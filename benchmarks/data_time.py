"""Data time against step time for degraded training patches, measured in one process.

    python benchmarks/data_time.py                       # preset photo, RLFN-S x4, batch 16, LR 48, 1 thread
    python benchmarks/data_time.py --preset photo_jpeg --threads 2 --repeats 7

For ``--repeats`` rounds, interleaved: the time the training dataset takes to make one batch of
(LR, HR) patches with the preset (:class:`lightsr.data.patches.FixedScalePatches` on T91: crop, flips,
the degradations of :mod:`lightsr.data.degradations`) and the time of one training step (forward + L1 + backward + Adam) of the model in
the precision training runs (``auto``: bf16 + channels_last where native). Prints the medians and the
share ``data / (data + step)``: the ``data_frac`` a training log shows when the data is made in the
training process (no ``--workers``). The machine is shared and noisy: read the ratio, not the times.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

SHARED = Path(__file__).resolve().parents[2] / "shared"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="photo")
    p.add_argument("--model", default="rlfn_s")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr-patch", type=int, default=48)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--precision", default="auto")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from lightsr import precision as P
    from lightsr.data.patches import FixedScalePatches
    from lightsr.models.resolve import resolve

    hr_side = args.lr_patch * args.scale
    ds = FixedScalePatches([str(SHARED / "data" / "train" / "T91")], args.scale, args.lr_patch, args.batch,
                           degradation=args.preset)
    desc = resolve(args.model, None, args.scale, pretrained=False)
    model = desc.module.train()
    prec = P.choose(args.precision, "cpu", desc.bf16)
    cl = P.prepare(model, torch.device("cpu"), prec)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = P.to_format(torch.rand(args.batch, 3, args.lr_patch, args.lr_patch), cl)
    y = torch.rand(args.batch, 3, hr_side, hr_side)

    def data(round_: int) -> float:
        t = time.perf_counter()
        for g in range(round_ * args.batch, (round_ + 1) * args.batch):
            ds[g % len(ds)]
        return time.perf_counter() - t

    def step() -> float:
        t = time.perf_counter()
        with P.autocast("cpu", prec):
            loss = (model(x).float() - y).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t

    step(), data(args.repeats)  # warm-up: kernels, caches of the resize matrices
    d, s = [], []
    for r in range(args.repeats):
        d.append(data(r))
        s.append(step())
    dm, sm = statistics.median(d), statistics.median(s)
    print(f"{args.model} x{args.scale}, batch {args.batch}, LR {args.lr_patch}, {prec}, {args.threads} thread(s), "
          f"preset {args.preset}, {args.repeats} rounds (medians): data {dm * 1e3:.1f} ms "
          f"({dm / args.batch * 1e3:.2f} ms/sample), step {sm * 1e3:.1f} ms, data share {dm / (dm + sm):.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
