"""Training recipes: small presets of :class:`~lightsr.train.config.TrainConfig`, one function each.

``lightsr train --recipe NAME`` starts from one of these; every flag given on the command line
overrides it. Iteration counts are the papers' (DIV2K, one or more GPUs); on other data or budgets
pass ``--iters``/``--epochs``. Milestones and warm-ups below 1 are fractions of the run.

=====================  ==========================================================================
name                   what
=====================  ==========================================================================
``rdb_esa``            the study notes' "Possible Architecture" and its command (x2, 100 epochs, batch 16,
                       HR patch 128 = LR 64), L1, Adam 5e-4 with cosine decay
``cpu_long``           the shipped weights: RLFN-S (or ``--model``), bf16 on native CPUs, LR 48, batch 16,
                       Adam 5e-4 cosine over 200k iterations, EMA, held-out validation
``photo``              the photo model: ``cpu_long``'s network fine-tuned from its shipped weights on the
                       ``photo_jpeg`` degradations (JPEG, light blur and noise), validated on JPEG q75 LR
``c2d_stage1``         C2D-ISR stage 1: backbone + HIIF-L, s ~ U(1, 4) per sample, LR 64, "fast"
                       query grid, L1, Adam 4e-4 -> 1e-6 cosine after a 50-epoch warm-up, 700 of 1000
                       epochs, batch 16
``c2d_stage2``         C2D-ISR stage 2 (eq. 10): same backbone + PixelShuffle head at x2/3/4,
                       initialised from stage 1 (``--init``), Adam 1e-5 -> 1e-6, 300 epochs
``c2d_discrete``       the v1.1 ablation: stage 2's model trained discrete-only for both stages'
                       epochs (1000), stage 1's learning rates
``hasn_stage1``        HASN x4, LR 48 (GT 192), batch 128, Adam 2e-4 (0.9, 0.99),
                       500k iterations halved at 250k/400k/450k/475k, L1, EMA 0.999
``hasn_stage2``        HASN's warm start: HASN initialised from stage 1's 100k-iteration weights
                       (``--init``; stage 1 keeps that checkpoint, ``keep_steps``), 1000k iterations,
                       ``L_s2 = L1 + KL`` (eq. 5), else as stage 1
``anysr``              AnySR (Algorithm 1): SRNO on EDSR-baseline, one scale per step drawn
                       as lines 2-3 say (t ~ U{1..T}, s ~ S_t; ``anysr_sweep``: the official code's
                       sweep 1 -> 4.1 by 0.1), LR 128, Adam 1e-5 halved at epochs 200/400 of 500;
                       the per-step sub-network choice is the hook ``lightsr.train.anysr:train_step_hook``,
                       the width and scale of every step are in the run's ``steps.csv``
=====================  ==========================================================================
"""
from __future__ import annotations

import inspect
import math
from typing import Callable

import numpy as np

from ..errors import LightSRError
from .config import TrainConfig

TRAIN_DIRS = ["../shared/data/train/BSDS400", "../shared/data/train/T91"]
VAL_DIR = None  # validation on 10 images held out of the first training folder (never a benchmark set)


def rdb_esa(scale: float = 2) -> TrainConfig:
    """Seed 004's command: ``--scale 2 --epochs 100 --batch_size 16 --patch_size 128`` (HR patch)."""
    s = int(scale)
    return TrainConfig(model="rdb_esa", scale=s, train_dirs=list(TRAIN_DIRS), val_dir=VAL_DIR,
                       lr_patch=128 // s, batch_size=16, epochs=100, repeat=1, loss="l1", optimizer="adam",
                       lr=5e-4, betas=(0.9, 0.999), schedule="cosine", min_lr=1e-6, warmup=0.02,
                       ema=0.999, out=f"runs/rdb_esa_x{s}")


def cpu_long(scale: float = 4, model: str = "rlfn_s") -> TrainConfig:
    """The recipe behind the shipped weights (results/training.md): a small efficient network trained
    long on CPU. bf16 autocast + channels_last where native (``precision="auto"``), LR patch 48, batch
    16, Adam 5e-4 (0.9, 0.99) with 1k warm-up and cosine decay over 200k iterations, EMA 0.999,
    validation on 10 BSDS400 images held out of training, a checkpoint every 2k iterations."""
    s = int(scale)
    return TrainConfig(model=model, scale=s, train_dirs=list(TRAIN_DIRS), val_dir=None, holdout=10,
                       lr_patch=48, batch_size=16, iters=200_000, loss="l1", optimizer="adam", lr=5e-4,
                       betas=(0.9, 0.99), schedule="cosine", min_lr=1e-6, warmup=1000, ema=0.999,
                       precision="auto", val_every=2000, save_every=2000, log_every=100,
                       out=f"runs/{model}_x{s}_cpu_long")


def photo(scale: float = 4, model: str = "rlfn_s") -> TrainConfig:
    """The photo model (``lightsr upscale`` on compressed input): ``cpu_long``'s network and data,
    initialised from its shipped bicubic weights, fine-tuned on the ``photo_jpeg`` degradations (JPEG
    on 95 % of the samples, light blur, resize and noise, 10 % clean; :mod:`lightsr.data.degradations`)
    with L1, Adam 2e-4 after a 200-step warm-up, cosine over 5k iterations; validation on the held-out
    images with their LR as JPEG q75."""
    from ..models.registry import get_entry

    s = int(scale)
    cfg = cpu_long(s, model)
    shipped = get_entry(model).shipped_weights(s)
    cfg.init = str(shipped) if shipped is not None else None
    cfg.degradation, cfg.val_jpeg = "photo_jpeg", 75
    cfg.iters, cfg.lr, cfg.warmup, cfg.val_every, cfg.save_every = 5_000, 2e-4, 200, 1000, 1000
    cfg.out = f"runs/{model}_x{s}_photo"
    return cfg


def _c2d_base(model: str) -> str:
    """The discrete network of a C2D recipe: ``rlfn_s`` and ``rlfn_s_hiif`` both name RLFN-S."""
    return model[: -len("_hiif")] if model.endswith("_hiif") else model


def c2d_stage1(scale: float = 4, model: str = "srformer_c2d") -> TrainConfig:
    """Seed 000 section 4, stage 1 (continuous-scale pre-training with HIIF-L) of ``model``'s body:
    ``--model NAME`` trains ``NAME_hiif`` (any discrete network with a registered twin,
    :data:`lightsr.models.c2d.TWIN_BASES`, beyond the paper's attention models)."""
    base = _c2d_base(model)
    return TrainConfig(model=f"{base}_hiif", scale=scale, train_dirs=list(TRAIN_DIRS), val_dir=VAL_DIR,
                       lr_patch=64, batch_size=16, epochs=700, repeat=20, scale_min=1.0, scale_max=4.0,
                       scale_mode="sample", queries="fast", loss="l1", optimizer="adam", lr=4e-4,
                       betas=(0.9, 0.999), schedule="cosine", min_lr=1e-6, warmup=50 / 700,
                       warmup_start_lr=1e-6, out=f"runs/{base}_stage1")


def c2d_stage2(scale: float = 4, model: str = "srformer_c2d") -> TrainConfig:
    """Seed 000, stage 2 (eq. 10): ``I_HR = PixelShuffle(Conv(F_D))``, f_S and f_D from stage 1
    (``--init RUN_DIR`` of a ``c2d_stage1`` run). ``--head_warmup N`` first fits the fresh head alone
    (not in the paper, whose stage 1 is long enough; see results/c2d.md for the value measured here)."""
    s, base = int(scale), _c2d_base(model)
    return TrainConfig(model=base, scale=s, train_dirs=list(TRAIN_DIRS), val_dir=VAL_DIR,
                       lr_patch=64, batch_size=16, epochs=300, repeat=20, loss="l1", optimizer="adam",
                       lr=1e-5, betas=(0.9, 0.999), schedule="cosine", min_lr=1e-6, warmup=50 / 300,
                       warmup_start_lr=1e-6, out=f"runs/{base}_x{s}_stage2")


def c2d_discrete(scale: float = 4, model: str = "srformer_c2d") -> TrainConfig:
    """Table 2 v1.1: no continuous stage; the discrete model trained for the same 1000 epochs."""
    cfg = c2d_stage2(scale, model)
    cfg.epochs, cfg.lr, cfg.warmup = 1000, 4e-4, 50 / 1000
    cfg.out = f"runs/{cfg.model}_x{int(scale)}_discrete"
    return cfg


HASN_STAGE2_FROM = 100_000  # stage 2 starts from stage 1's weights at this iteration (HASN section 3.3)


def hasn_stage1(scale: float = 4) -> TrainConfig:
    """Seed 003 section 4 / ``train_HASN.yml``. The step-100k checkpoint (stage 2's start) is a
    ``keep_steps`` milestone: always written, never pruned by ``keep``."""
    s = int(scale)
    return TrainConfig(model="hasn", scale=s, train_dirs=list(TRAIN_DIRS), val_dir=VAL_DIR, lr_patch=192 // s,
                       batch_size=128, iters=500_000, loss="l1", optimizer="adam", lr=2e-4, betas=(0.9, 0.99),
                       schedule="multistep", milestones=[250_000, 400_000, 450_000, 475_000], gamma=0.5,
                       ema=0.999, save_every=5000, val_every=5000, keep_steps=[HASN_STAGE2_FROM],
                       out=f"runs/hasn_x{s}_stage1")


def hasn_stage2(scale: float = 4) -> TrainConfig:
    """Seed 003 section 3.3: warm start from stage 1's 100k-iteration weights, 1000k iterations of
    ``L1 + KL`` (eq. 5, alpha = beta = 1); the paper adds Flickr2K (``--train_dir``).

    ``init`` defaults to stage 1's milestone ``runs/hasn_x{s}_stage1/ckpt/step_00100000`` (its EMA
    weights; kept by stage 1's ``keep_steps``). ``--init RUN_DIR`` takes a run's final, else best,
    else newest step checkpoint (stage 1 stopped early); ``--init FILE`` any weights file."""
    s = int(scale)
    cfg = hasn_stage1(scale)
    cfg.iters, cfg.loss, cfg.init_head = 1_000_000, "l1_kl", ()  # same network: every tensor loaded
    cfg.init = f"runs/hasn_x{s}_stage1/ckpt/step_{HASN_STAGE2_FROM:08d}"
    cfg.keep_steps = []
    cfg.out = f"runs/hasn_x{s}_stage2"
    return cfg


class AnySRSweep:
    """The official AnySR code's scale schedule (``train.py``): s0 ~ U(1, 4.1), then s += 0.1 per
    iteration, minus 3.1 once above 4.1; here a pure function of the step, s0 drawn from the run's
    seed. Not the seed's Algorithm 1 (``lightsr.train.anysr:AnySRGroups``, the recipe's default);
    ``anysr(schedule="sweep")`` or ``scale_schedule="lightsr.train.recipes:AnySRSweep"`` selects it."""

    def __init__(self, cfg: TrainConfig):
        self.s0 = float(np.random.default_rng([cfg.seed, 0xA5]).uniform(1.0, 4.1))

    def __call__(self, rng: np.random.Generator, step: int) -> float:
        s = self.s0 + 0.1 * step
        return 1.0 + math.fmod(s - 1.0, 3.1) if s > 4.1 else s


ANYSR_SCHEDULES = {"groups": ("lightsr.train.anysr:AnySRGroups", 4.0),  # seed Algorithm 1 lines 2-3
                   "sweep": ("lightsr.train.recipes:AnySRSweep", 4.1)}  # the official code


def anysr(scale: float = 4, backbone: str = "edsr", schedule: str = "groups") -> TrainConfig:
    """Seed 002 Algorithm 1 on SRNO (design notes section 6): 500 epochs x 500 iterations. ``schedule``:
    ``"groups"`` (lines 2-3: t ~ U{1..T}, s ~ S_t) or ``"sweep"`` (the official code, :class:`AnySRSweep`)."""
    if schedule not in ANYSR_SCHEDULES:
        raise LightSRError(f"AnySR scale schedule {schedule!r}: choose {' or '.join(ANYSR_SCHEDULES)}")
    fn, s_max = ANYSR_SCHEDULES[schedule]
    return TrainConfig(model=f"anysr_srno_{backbone}", scale=scale, train_dirs=list(TRAIN_DIRS), val_dir=VAL_DIR,
                       lr_patch=128, batch_size=32 if backbone == "edsr" else 16, iters=250_000,
                       scale_min=1.0, scale_max=s_max, scale_mode="batch", queries="fast", scale_schedule=fn,
                       step_hook="lightsr.train.anysr:train_step_hook", loss="l1", optimizer="adam", lr=1e-5,
                       betas=(0.9, 0.999), schedule="multistep", milestones=[100_000, 200_000], gamma=0.5,
                       out=f"runs/anysr_{backbone}")


def anysr_sweep(scale: float = 4, backbone: str = "edsr") -> TrainConfig:
    """:func:`anysr` with the official code's scale sweep (:class:`AnySRSweep`) instead of Algorithm 1's groups."""
    cfg = anysr(scale, backbone, schedule="sweep")
    cfg.out = f"runs/anysr_{backbone}_sweep"
    return cfg


RECIPES: dict[str, Callable[..., TrainConfig]] = {
    "rdb_esa": rdb_esa,
    "cpu_long": cpu_long,
    "c2d_stage1": c2d_stage1,
    "c2d_stage2": c2d_stage2,
    "c2d_discrete": c2d_discrete,
    "hasn_stage1": hasn_stage1,
    "hasn_stage2": hasn_stage2,
    "anysr": anysr,
    "anysr_sweep": anysr_sweep,
    "photo": photo,
}


def get_recipe(name: str, scale: float | None = None, model: str | None = None) -> TrainConfig:
    """Recipe ``name`` at ``scale`` for ``model``: a recipe with a ``model`` parameter builds its
    own model from it (C2D stage 1 trains ``NAME_hiif``); for the others it replaces the model."""
    key = name.lower().replace("-", "_")
    if key not in RECIPES:
        raise LightSRError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}")
    fn = RECIPES[key]
    takes_model = "model" in inspect.signature(fn).parameters
    kw = {} if scale is None else {"scale": scale}
    cfg = fn(**kw, **({"model": model} if model and takes_model else {}))
    if model and not takes_model:
        cfg.model = model
    return cfg
