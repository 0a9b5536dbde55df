"""``lightsr train``: a recipe plus the flags given -> :class:`~lightsr.train.config.TrainConfig` ->
:func:`lightsr.train.engine.train`. ``torchrun --nproc_per_node N -m lightsr train ...`` runs it under DDP;
scripts that register their own models first call :func:`main` with the train flags."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import LightSRError
from ._options import parse_options


def loss_name(name: str) -> str:
    """``--loss``: a name of the loss registry (:data:`lightsr.train.losses.LOSSES`), read when given."""
    from ..train.losses import get_loss

    try:
        get_loss(name)
    except LightSRError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return name


def step_list(text: str) -> list[int]:
    """``--keep_steps 100000,200000`` -> [100000, 200000] (positive integers)."""
    try:
        steps = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        steps = []
    if not steps or min(steps) < 1:
        raise argparse.ArgumentTypeError(f"expected positive step numbers separated by commas, got {text!r}")
    return steps


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model (recipes, resume, torchrun)",
                       description="Train a model: `lightsr train --recipe NAME` or the study-notes form "
                       "`lightsr train --train_dir DIR --val_dir DIR --scale 2 --epochs 100 --batch_size 16 "
                       "--patch_size 128`. Flags override the recipe. Same command under `torchrun "
                       "--nproc_per_node N -m lightsr train ...` for DDP (batch size is per process).")

    def flag(name: str, **kw) -> None:  # --study_notes_spelling and --dash-spelling alike
        names = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        p.add_argument(*names, dest=name, **kw)

    # literal, not read from lightsr.train.recipes.RECIPES (that imports numpy and torch, and --help
    # stays instant); tests/test_new_user.py checks it lists RECIPES' keys, in their order
    flag("recipe", help="preset (lightsr.train.recipes): rdb_esa, cpu_long, c2d_stage1, c2d_stage2, "
         "c2d_discrete, hasn_stage1, hasn_stage2, anysr, anysr_sweep, photo")
    flag("model", help="registered model name (default: the recipe's, else rdb_esa)")
    flag("scale", type=float, help="scale of a fixed-scale model; validation scale of a continuous one")
    flag("opt", action="append", metavar="KEY=VALUE", help="model option, repeatable")
    flag("train_dir", nargs="+", metavar="DIR", help="folder(s) of HR training images")
    flag("val_dir", metavar="DIR", help="folder of HR images for validation PSNR (Y, shave = scale)")
    flag("out", metavar="DIR", help="run directory (an existing one needs --resume)")
    flag("resume", action="store_true", help="continue the run in --out from its last checkpoint, with the "
         "settings of its config.json (flags given override them where exact resume allows)")
    flag("iters", type=int, help="total iterations")
    flag("epochs", type=float, help="total epochs (when --iters is not given)")
    flag("batch_size", type=int, help="batch size per process")
    flag("patch_size", type=int, help="HR patch side (LR patch = patch_size / scale)")
    flag("lr_patch", type=int, help="LR patch side (alternative to --patch_size)")
    flag("repeat", type=int, help="times every image is visited per epoch")
    flag("degradation", metavar="NAME", help="how fixed-scale LR patches are made (lightsr.data.degradations): "
         "bicubic (default, MATLAB bicubic), jpeg (+ JPEG q 30-95), photo (the photo weights': mild blur, "
         "resize, noise, JPEG, 1-2 rounds, 20 %% of samples clean), photo_jpeg, photo_mild, photo_strong")
    flag("val_jpeg", type=int, metavar="Q", help="validate on LR saved as JPEG at quality Q (1-100; photo "
         "models), not the clean LR")
    flag("lr", type=float, help="peak learning rate")
    flag("loss", type=loss_name, metavar="NAME", help="pixel loss: a name of lightsr.train.losses.LOSSES "
         "(l1, l2, charbonnier, l1_kl, l1_tv, ...)")
    flag("optimizer", choices=["adam", "adamw"])
    flag("schedule", choices=["multistep", "cosine", "constant"])
    flag("ema", type=float, help="EMA decay (0 = off)")
    flag("clip_grad", type=float, help="max gradient norm (0 = off)")
    flag("precision", help="auto (bf16 where the device does it natively, else fp32), fp32, bf16, fp16 (CUDA)")
    flag("compile", action="store_true", help="torch.compile the training step of a fixed-scale model: a "
         "minute of tracing, then faster steps (HASN 1.36x over the eager fast path; results/fast_path.md)")
    flag("holdout", type=int, metavar="N", help="without --val_dir: validate on N images held out of the "
         "first training folder (default 10)")
    flag("keep", type=int, metavar="N", help="step checkpoints kept (default 2)")
    flag("keep_steps", type=step_list, metavar="S1,S2", help="milestone steps whose checkpoints are always "
         "written and never pruned by --keep (e.g. 100000,200000)")
    flag("head_warmup", type=int, metavar="N", help="first N iterations train only the head (e.g. the fresh "
         "up-sampler of C2D stage 2) at the peak LR; the schedule runs over the rest")
    flag("head_lr", type=float, metavar="LR", help="the --head_warmup phase's LR (default: the peak --lr), e.g. "
         "a fresh head fitted fast before a whole network fine-tuned at a small LR")
    flag("init", metavar="FROM", help="initialise from a weights file, a step checkpoint (RUN/ckpt/step_N) or "
         "a run directory (its final, else best, else newest step weights); only the head may differ")
    flag("device", help="cpu, cuda ... (default: cuda if available)")
    flag("workers", type=int, help="DataLoader worker processes")
    flag("seed", type=int)
    flag("deterministic", action="store_true", help="deterministic algorithms (exact resume)")
    flag("val_every", type=int, metavar="N")
    flag("save_every", type=int, metavar="N")
    flag("log_every", type=int, metavar="N")
    flag("stop_after", type=int, metavar="N", help="stop with a checkpoint after N steps of this run")
    flag("time_limit", type=float, metavar="MIN", help="stop with a checkpoint after MIN minutes")
    flag("no_progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def config_from_args(args):
    """Recipe defaults, then the flags given on the command line: a :class:`~lightsr.train.config.TrainConfig`.
    With ``--resume`` and a ``config.json`` in the run directory, that file replaces the recipe: only
    ``--out DIR --resume`` is needed, and flags given still override it (the trainer refuses, in one
    line, a change that would break exact resume)."""
    cfg = apply_flags(base_config(args), args)
    saved = Path(cfg.out) / "config.json"
    if args.resume and saved.is_file():
        from ..train.config import TrainConfig

        try:
            data = json.loads(saved.read_text())
        except (OSError, ValueError) as exc:
            raise LightSRError(f"--resume: {saved} is unreadable ({exc})") from None
        saved_cfg = TrainConfig.from_json(data, source=str(saved))
        for k in TrainConfig.SESSION_KEYS:  # that session's limits, not this one's
            setattr(saved_cfg, k, getattr(TrainConfig, k))
        cfg = apply_flags(saved_cfg, args)
    return cfg


def base_config(args):
    """The recipe's config (``--recipe``; rdb_esa for the study-notes command naming no model), or the defaults."""
    from ..train.config import TrainConfig
    from ..train.recipes import get_recipe

    if args.recipe:
        cfg = get_recipe(args.recipe, scale=args.scale, model=args.model)
    elif args.model in (None, "rdb_esa"):  # the study-notes command names no model: its network
        cfg = get_recipe("rdb_esa", scale=args.scale)
    else:
        cfg = TrainConfig(out="")
    return cfg


def apply_flags(cfg, args):
    """The flags given on the command line, over ``cfg``."""
    if args.model and not args.recipe:  # a recipe applied --model itself (get_recipe)
        cfg.model = args.model
    if args.scale is not None:
        cfg.scale = args.scale
    simple = {"val_dir": "val_dir", "out": "out", "iters": "iters", "epochs": "epochs", "batch_size": "batch_size",
              "lr": "lr", "device": "device", "workers": "workers", "seed": "seed", "init": "init",
              "loss": "loss", "ema": "ema", "clip_grad": "clip_grad", "val_every": "val_every",
              "save_every": "save_every", "log_every": "log_every", "stop_after": "stop_after",
              "time_limit": "time_limit", "schedule": "schedule", "optimizer": "optimizer", "repeat": "repeat",
              "precision": "precision", "holdout": "holdout", "keep": "keep", "keep_steps": "keep_steps",
              "head_warmup": "head_warmup", "head_lr": "head_lr", "degradation": "degradation", "val_jpeg": "val_jpeg"}
    for a, k in simple.items():
        v = getattr(args, a, None)
        if v is not None:
            setattr(cfg, k, v)
    if args.train_dir:
        cfg.train_dirs = list(args.train_dir)
    if args.patch_size is not None:  # study-notes form: the HR patch side
        s = int(cfg.scale)
        if args.patch_size % s:
            raise LightSRError(f"--patch_size {args.patch_size} is not a multiple of the scale {s}")
        cfg.lr_patch = args.patch_size // s
    if args.lr_patch is not None:
        cfg.lr_patch = args.lr_patch
    if args.deterministic:
        cfg.deterministic = True
    if args.compile:
        cfg.compile = True
    if args.no_progress:
        cfg.progress = False
    if args.opt:
        cfg.options = {**cfg.options, **parse_options(args.opt)}
    if not cfg.out:
        cfg.out = f"runs/{cfg.model}_x{cfg.scale:g}"
    return cfg


def run(args) -> int:
    """Exit 0 at the end of the run; 128 + N when signal N stopped it (130 for Ctrl-C), with a checkpoint."""
    from ..train.engine import train

    res = train(config_from_args(args), resume=args.resume)
    return 128 + int(res["signal"]) if res.get("signal") else 0


def main(argv: list[str] | None = None) -> int:
    """``lightsr train ...`` with these flags (for torchrun scripts that register models first)."""
    from ._dispatch import dispatch

    parser = argparse.ArgumentParser(prog="lightsr")
    add_parser(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return dispatch(parser.parse_args(["train", *(argv if argv is not None else sys.argv[1:])]))
