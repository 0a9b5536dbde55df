"""What a training run depends on: :class:`TrainConfig` and the schedules that are pure functions
of the step (the learning rate here; the scale distribution is named by ``TrainConfig.scale_schedule``,
see :mod:`.recipes`), so that a resumed run is exact.

``TrainConfig.to_json()`` is the run directory's ``config.json``; its field names are the on-disk
format of every committed run and never change. Recipes (:mod:`.recipes`) import this module only,
never the engine.
"""
from __future__ import annotations

import dataclasses
import importlib
import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import LightSRError

__all__ = ["TrainConfig", "lr_at", "import_object"]

@dataclass
class TrainConfig:
    """Everything a run depends on. Milestones / warm-up below 1 are fractions of ``iters``."""

    model: str = "rdb_esa"
    scale: float = 2  # fixed-scale models: the scale; continuous: the validation scale
    options: dict = field(default_factory=dict)
    train_dirs: list = field(default_factory=list)
    val_dir: str | None = None  # None: validate on ``holdout`` images held aside from the training folders
    holdout: int = 10  # images of the first training folder kept out of training for validation
    out: str = "runs/train"
    # data
    lr_patch: int = 48  # LR patch side (HR = scale x LR)
    batch_size: int = 16  # per process
    repeat: int = 1  # an epoch visits every image `repeat` times
    iters: int | None = None
    epochs: float | None = None  # converted to iters when iters is None
    scale_min: float = 1.0  # continuous models
    scale_max: float = 4.0
    scale_mode: str = "batch"  # "batch": one scale per step; "sample": one per sample (C2D, LIIF)
    queries: str = "fast"  # "fast" grid of lr_patch^2 HR queries, or "full" HR patch
    scale_schedule: str | None = None  # "module:function" -> f(rng, step) -> scale; None = U(min, max)
    augment: bool = True
    degradation: str = "bicubic"  # LR of fixed-scale patches: a preset of lightsr.data.degradations.PRESETS
    val_jpeg: int | None = None  # validation LR saved as JPEG at this quality (photo models); None: clean
    cache_dir: str | None = "~/.cache/lightsr/train"  # LR of fixed-scale training images; None = memory only
    # optimisation
    loss: str = "l1"
    optimizer: str = "adam"
    lr: float = 2e-4
    betas: tuple = (0.9, 0.99)
    weight_decay: float = 0.0
    schedule: str = "multistep"  # multistep | cosine | constant
    milestones: list = field(default_factory=lambda: [0.5, 0.8, 0.9, 0.95])
    gamma: float = 0.5
    warmup: float = 0  # iterations (or fraction) of linear warm-up from warmup_start_lr
    warmup_start_lr: float = 0.0
    min_lr: float = 1e-6  # cosine floor
    clip_grad: float = 0.0  # max global grad norm; 0 = off
    ema: float = 0.0  # EMA decay (0.999 in BasicSR recipes); 0 = off
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (lightsr.precision); auto = bf16 where native
    compile: bool = False  # torch.compile the training step (fixed-scale models); rounding differs from eager
    # initialisation (stage 2 / warm start)
    init: str | None = None
    # module prefixes of the up-sampling head: fresh at --init (may be missing or of another shape there)
    init_head: tuple = ("upsample", "upsampler", "conv_last", "tail", "conv_up", "conv_hr")
    step_hook: str | None = None
    # the first iterations train only the head (``init_head`` prefixes) at the peak LR, the rest frozen:
    # a fresh head fitted to a transferred body (C2D stage 2) before the whole network trains; the
    # schedule (warm-up, decay) then runs over the remaining iterations
    head_warmup: int = 0
    head_lr: float | None = None  # the head-only phase's constant LR (default: the peak LR ``lr``)
    # bookkeeping
    seed: int = 0
    deterministic: bool = False
    workers: int = 0
    device: str | None = None
    val_every: int = 1000
    save_every: int = 1000
    log_every: int = 50
    keep: int = 2  # step checkpoints kept
    keep_steps: list = field(default_factory=list)  # milestone steps: always saved, never pruned
    stop_after: int | None = None  # stop (with a checkpoint) after this many steps in this run
    time_limit: float | None = None  # minutes; stop (with a checkpoint) when exceeded
    progress: bool = True

    # keys that may change between a run and its resumption
    RUNTIME_KEYS = ("cache_dir", "workers", "device", "stop_after", "time_limit", "progress", "val_every",
                    "log_every", "save_every", "keep", "keep_steps", "val_dir", "out", "train_dirs", "compile")
    # limits of one session: ``lightsr train --resume`` does not take them from the run's config.json
    SESSION_KEYS = ("stop_after", "time_limit")

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        d["init_head"] = list(self.init_head)
        return d

    @classmethod
    def from_json(cls, d: dict, source: str = "config.json") -> "TrainConfig":
        """The inverse of :meth:`to_json` (a run directory's ``config.json``); a setting this version
        does not know is refused (it would be silently dropped)."""
        if not isinstance(d, dict):
            raise LightSRError(f"{source}: not a training configuration (a JSON object)")
        if d.get("amp") == "none":  # run directories written before --precision was the one spelling
            d = {k: v for k, v in d.items() if k != "amp"}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise LightSRError(f"{source}: settings unknown to this version of lightsr ({', '.join(unknown[:3])})")
        kw = dict(d)
        for k in ("betas", "init_head"):
            if k in kw:
                kw[k] = tuple(kw[k])
        return cls(**kw)


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    """Learning rate of update ``step`` (0-based) out of ``total``: a pure function, so resume is exact."""
    if step < cfg.head_warmup:  # head-only phase: a constant LR, the peak unless head_lr says otherwise
        return cfg.lr if cfg.head_lr is None else cfg.head_lr
    step, total = step - cfg.head_warmup, total - cfg.head_warmup
    warm = _as_iters(cfg.warmup, total)
    if step < warm:
        return cfg.warmup_start_lr + (cfg.lr - cfg.warmup_start_lr) * step / warm
    if cfg.schedule == "cosine":
        t = (step - warm) / max(1, total - warm)
        return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, t)))
    if cfg.schedule == "multistep":
        return cfg.lr * cfg.gamma ** sum(step >= _as_iters(m, total) for m in cfg.milestones)
    if cfg.schedule == "constant":
        return cfg.lr
    raise LightSRError(f"unknown schedule {cfg.schedule!r}; choose multistep, cosine or constant")


def _as_iters(v: float, total: int) -> int:
    return int(round(v * total)) if 0 < v < 1 else int(v)


def import_object(spec: str, what: str) -> Any:
    """``"package.module:name"`` -> the object."""
    if ":" not in spec:
        raise LightSRError(f"{what} must be 'module:function', got {spec!r}")
    mod, name = spec.split(":", 1)
    try:
        return getattr(importlib.import_module(mod), name)
    except (ImportError, AttributeError) as exc:
        raise LightSRError(f"{what} {spec!r} is not available: {exc}") from None
