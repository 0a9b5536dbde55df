"""One training loop for every recipe: fixed or continuous scale, AMP, EMA, clipping, validation,
exact resume and DDP through ``torchrun``.

Run directory (``--out``)::

    config.json                 resolved TrainConfig (a resumed run must match it)
    log.csv                     step, epoch, lr, loss, sec_per_iter, val_psnr_y
    ckpt/step_00001000/         model.safetensors, ema.safetensors, state.pt, rng_rank{r}.pt, state.json
    best.safetensors            weights (EMA when enabled) of the best validation PSNR, with metadata
    final.safetensors           weights (EMA when enabled) after the last iteration

Exactness. The data stream is a pure function of (seed, global sample index) (see
:mod:`lightsr.data.patches`) and the learning rate a pure function of the step, so a checkpoint
only needs: model, EMA, optimiser, GradScaler, step, best PSNR and the RNG states of every rank
(torch, CUDA, numpy, python). A run stopped at any step and resumed gives the same weights, bit for
bit on CPU in ``--deterministic`` mode, as an uninterrupted one.

DDP. ``torchrun --nproc_per_node N -m lightsr train ...`` runs the same command on N processes
(nccl on GPU, gloo on CPU). ``--batch_size`` is per process; rank r takes a contiguous slice of
every global batch, so N processes with batch b see the samples 1 process with batch N*b sees.

Extension point. ``TrainConfig.step_hook = "module:function"`` names
``hook(step: int, model: nn.Module, batch: dict) -> dict | None``, called before every forward;
the dict returned is merged into the model's forward keyword arguments (AnySR Algorithm 1 picks the
sub-network width there; ``"scale"`` in it replaces the scale passed to a continuous model), except
``"after_step"``: a callable run right after the optimiser step (AnySR line 7 restores the weight
entries the sub-network did not use). The scale *distribution* is data, chosen by
``TrainConfig.scale_schedule`` (see :mod:`.recipes`).
"""
from __future__ import annotations

import copy
import csv
import dataclasses
import importlib
import json
import math
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from .. import precision as precision_mod
from ..checkpoint import json_text
from ..errors import LightSRError
from .losses import get_loss

# ----------------------------------------------------------------------------------------------
# configuration


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
    amp: str = "none"  # legacy spelling of precision: none | bf16 | fp16
    # initialisation (stage 2 / warm start)
    init: str | None = None
    # module prefixes of the up-sampling head (may differ at --init); ``model.head_prefixes`` wins
    init_head: tuple = ("upsample", "upsampler", "conv_last", "tail", "conv_up", "conv_hr")
    step_hook: str | None = None
    # bookkeeping
    seed: int = 0
    deterministic: bool = False
    workers: int = 0
    device: str | None = None
    val_every: int = 1000
    save_every: int = 1000
    log_every: int = 50
    keep: int = 2  # step checkpoints kept
    stop_after: int | None = None  # stop (with a checkpoint) after this many steps in this run
    time_limit: float | None = None  # minutes; stop (with a checkpoint) when exceeded
    progress: bool = True

    # keys that may change between a run and its resumption
    RUNTIME_KEYS = ("cache_dir", "workers", "device", "stop_after", "time_limit", "progress", "val_every",
                    "log_every", "save_every", "keep", "val_dir", "out", "train_dirs")

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        d["init_head"] = list(self.init_head)
        return d


# ----------------------------------------------------------------------------------------------
# small pieces


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    """Learning rate of update ``step`` (0-based) out of ``total``: a pure function, so resume is exact."""
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


class EMA:
    """Exponential moving average of parameters (buffers copied): ``ema = d_t*ema + (1-d_t)*w`` with
    the warm-up ``d_t = min(d, (1 + t) / (10 + t))`` at update ``t`` (timm's and TensorFlow's), so that
    early averages are not dominated by the random initialisation (at d = 0.999 a plain EMA still
    holds 37 % of the first 1,000 steps' weights at step 2,000)."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def decay_at(self, t: int) -> float:
        return min(self.decay, (1.0 + t) / (10.0 + t))

    @torch.no_grad()
    def update(self, model: nn.Module, t: int | None = None) -> None:
        d = self.decay if t is None else self.decay_at(t)
        for e, p in zip(self.module.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1.0 - d)
        for e, b in zip(self.module.buffers(), model.buffers()):
            e.copy_(b)


def resolve(spec: str, what: str) -> Any:
    """``"package.module:name"`` -> the object."""
    if ":" not in spec:
        raise LightSRError(f"{what} must be 'module:function', got {spec!r}")
    mod, name = spec.split(":", 1)
    try:
        return getattr(importlib.import_module(mod), name)
    except (ImportError, AttributeError) as exc:
        raise LightSRError(f"{what} {spec!r} is not available: {exc}") from None


def _rng_state() -> dict:
    st = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    np.random.set_state(st["numpy"])
    random.setstate(st["python"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def init_from(model: nn.Module, path: str | os.PathLike, head: Sequence[str]) -> dict:
    """Stage-2 / warm-start initialisation: every tensor of ``model`` must come from ``path`` (same
    name and shape) except those under a head prefix (``head``, or ``model.head_prefixes``), which may
    be missing or of another shape and keep their fresh initialisation; checkpoint tensors of a
    dropped head are ignored. A checkpoint of a continuous stage-1 model (``encoder.*`` keys plus an
    implicit head, :class:`~lightsr.layers.implicit.ImplicitSR`) gives its ``encoder.*`` tensors
    (C2D eq. 10: f_S and f_D from stage 1) and drops the implicit head.
    Returns a report ``{"loaded", "head_kept", "dropped"}``; anything else that differs is an error."""
    from ..checkpoint import read_state_dict

    p = Path(path)
    if p.is_dir():  # a run directory: its final / best weights
        for name in ("final.safetensors", "best.safetensors"):
            if (p / name).is_file():
                p = p / name
                break
        else:
            raise LightSRError(f"--init {path}: no final.safetensors or best.safetensors in that run directory")
    custom = getattr(model, "init_from_checkpoint", None)
    if callable(custom):  # a model with its own mapping (AnySR from its arbitrary-scale original)
        report = custom(p)
        return {"path": str(p), "loaded": report["loaded"], "head_kept": report.get("fresh", []), "dropped": []}
    sd = read_state_dict(p)
    own = model.state_dict()
    head = tuple(getattr(model, "head_prefixes", head))
    dropped_head: list[str] = []
    if any(k.startswith("encoder.") for k in sd) and not any(k.startswith("encoder.") for k in own):
        # a continuous stage-1 twin (ImplicitSR: ``encoder.*`` + its implicit head): keep f_S, f_D
        dropped_head = [k for k in sd if not k.startswith("encoder.")]
        sd = {k[len("encoder."):]: v for k, v in sd.items() if k.startswith("encoder.")}

    def is_head(k: str) -> bool:
        return any(k == h or k.startswith(h + ".") for h in head)

    loaded, kept, bad = {}, [], []
    for k, v in own.items():
        if k in sd and tuple(sd[k].shape) == tuple(v.shape):
            loaded[k] = sd[k]
        elif is_head(k):
            kept.append(k)
        elif k.rsplit(".", 1)[-1] not in ("relative_position_index", "attn_mask"):
            bad.append(k if k not in sd else f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}")
    dropped = [k for k in sd if k not in own]
    bad_dropped = [k for k in dropped if not is_head(k)]
    dropped += dropped_head
    if bad or bad_dropped:
        what = []
        if bad:
            what.append(f"{len(bad)} backbone tensors missing or of another shape ({', '.join(bad[:3])})")
        if bad_dropped:
            what.append(f"{len(bad_dropped)} unexpected tensors ({', '.join(bad_dropped[:3])})")
        raise LightSRError(f"--init {p} does not fit this model outside its head: " + "; ".join(what))
    model.load_state_dict(loaded, strict=False)
    return {"loaded": len(loaded), "head_kept": kept, "dropped": dropped, "path": str(p)}


# ----------------------------------------------------------------------------------------------
# distributed


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def on(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.on:
            torch.distributed.barrier()

    def mean(self, x: float, device) -> float:
        if not self.on:
            return x
        t = torch.tensor([x], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(t)
        return float(t.item()) / self.world

    def any(self, flag: bool, device) -> bool:
        if not self.on:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return bool(t.item() > 0)


def setup_distributed(device: str | None) -> tuple[Dist, torch.device]:
    """torchrun's environment -> process group (nccl on GPU, gloo on CPU) and this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise LightSRError(f"device {device} requested but no CUDA GPU is available")
        if world > 1:
            dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank, world, local), dev


# ----------------------------------------------------------------------------------------------
# the trainer


class Trainer:
    """``Trainer(cfg).fit()``; ``model=``: a module that is not in the registry; ``hook=``: a step
    hook given as a callable instead of ``cfg.step_hook``; ``resume``: continue ``cfg.out``."""

    def __init__(self, cfg: TrainConfig, model: nn.Module | None = None, resume: bool = False,
                 hook: Callable[[int, nn.Module, dict], dict | None] | None = None):
        self.cfg = cfg
        self.resume = resume
        self.dist, self.device = setup_distributed(cfg.device)
        if cfg.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.out = Path(cfg.out)
        self._check_run_dir()
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        if model is None:
            from ..models import create_model, get_entry

            continuous = get_entry(cfg.model).scales is None  # their scale comes with every batch
            model = create_model(cfg.model, scale=None if continuous else cfg.scale, **cfg.options)
            model.registry_name = get_entry(cfg.model).name
        self.model = model.to(self.device)
        self.continuous = bool(getattr(model, "continuous", False))
        self.init_report = init_from(self.model, cfg.init, cfg.init_head) if cfg.init else None
        asked = cfg.amp if cfg.amp.lower() != "none" else cfg.precision
        self.precision = precision_mod.resolve(asked, self.device)
        self.channels_last = precision_mod.prepare(self.model, self.device, self.precision)
        self.loss_fn = get_loss(cfg.loss)
        self.data = self._dataset()
        self.total = self._total_iters()
        params = [p for p in self.model.parameters() if p.requires_grad]
        if cfg.optimizer.lower() == "adam":
            self.opt = torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
        elif cfg.optimizer.lower() == "adamw":
            self.opt = torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
        else:
            raise LightSRError(f"unknown optimizer {cfg.optimizer!r}; choose adam or adamw")
        self.ema = EMA(self.model, cfg.ema) if cfg.ema > 0 else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        self.hook = hook or (resolve(cfg.step_hook, "step hook") if cfg.step_hook else None)
        self.step = 0
        self.best = -math.inf
        self.ddp = self.model
        if self.dist.on:
            self.ddp = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self._make_run_dir()
        torch.manual_seed(cfg.seed + 1 + self.dist.rank)  # per-rank stream for dropout etc.
        np.random.seed((cfg.seed + 1 + self.dist.rank) % 2**32)
        random.seed(cfg.seed + 1 + self.dist.rank)
        if resume:
            self._load_latest()

    # ---- setup ------------------------------------------------------------------------------

    def _check_run_dir(self) -> None:
        exists = self.out.exists() and any(self.out.iterdir())
        if exists and not self.resume:
            raise LightSRError(f"run directory {self.out} already exists; pass --resume to continue it "
                               "or choose another --out")
        cfg_path = self.out / "config.json"
        if self.resume and cfg_path.is_file():
            old = json.loads(cfg_path.read_text())
            new = self.cfg.to_json()
            diff = [k for k in new if k not in TrainConfig.RUNTIME_KEYS and k in old and old[k] != new[k]]
            if diff:
                shown = ", ".join(f"{k}: {old[k]!r} -> {new[k]!r}" for k in diff[:3])
                raise LightSRError(f"--resume: settings differ from the run in {self.out} ({shown}); "
                                   "resume with the same settings or start a new --out")

    def _make_run_dir(self) -> None:
        """Created only once the model and data are known to be valid (a typo leaves nothing behind)."""
        self.dist.barrier()
        cfg_path = self.out / "config.json"
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            if not cfg_path.is_file():
                cfg_path.write_text(json.dumps(self.cfg.to_json(), indent=1))
        self.dist.barrier()

    def _dataset(self):
        from ..data.patches import ContinuousScalePatches, FixedScalePatches, held_out, uniform_scale

        cfg = self.cfg
        if not cfg.train_dirs:
            raise LightSRError("no training folders given (--train_dir DIR [DIR ...])")
        for name in ("batch_size", "lr_patch"):
            if int(getattr(cfg, name)) < 1:
                raise LightSRError(f"--{name} must be a positive number, got {getattr(cfg, name)}")
        self.val_files = held_out(cfg.train_dirs, cfg.holdout) if cfg.val_dir is None else []
        if cfg.val_dir is None and len(self.val_files) < cfg.holdout and self.dist.main:
            print(f"lightsr train: holding out {len(self.val_files)} of the first training folder's images for "
                  f"validation (asked {cfg.holdout}; at most a fifth of the folder)", file=sys.stderr)
        if cfg.val_dir is not None:
            from ..data.benchmark import list_images as list_val

            list_val(cfg.val_dir)  # a missing or empty validation folder fails now, before any step
        ex = self.val_files
        gb = cfg.batch_size * self.dist.world
        if self.continuous:
            fn = resolve(cfg.scale_schedule, "scale schedule")(cfg) if cfg.scale_schedule else \
                uniform_scale(cfg.scale_min, cfg.scale_max)
            return ContinuousScalePatches(cfg.train_dirs, cfg.lr_patch, gb, cfg.seed, fn, cfg.scale_max,
                                          cfg.scale_mode, cfg.queries, cfg.repeat, cfg.augment, exclude=ex)
        cache = os.environ.get("LIGHTSR_CACHE_DIR")
        cache = str(Path(cache) / "train") if cache and cfg.cache_dir else cfg.cache_dir
        ds = FixedScalePatches(cfg.train_dirs, int(cfg.scale), cfg.lr_patch, gb, cfg.seed, cfg.repeat,
                               cfg.augment, cache_dir=cache, exclude=ex)
        if cfg.workers > 0:  # before forking workers, so they share it; in-process LR is made on first use
            ds.precompute()
        return ds

    def _total_iters(self) -> int:
        for name in ("iters", "epochs"):
            v = getattr(self.cfg, name)
            if v is not None and v <= 0:
                raise LightSRError(f"--{name} must be positive, got {v:g}")
        if self.cfg.iters:
            return int(self.cfg.iters)
        if self.cfg.epochs:
            return max(1, math.ceil(self.cfg.epochs * self.data.epoch_len / (self.cfg.batch_size * self.dist.world)))
        raise LightSRError("give --iters or --epochs")

    def loader(self):
        from ..data.patches import GlobalBatchSampler

        sampler = GlobalBatchSampler(self.cfg.batch_size, self.dist.world, self.dist.rank, self.step, self.total)
        kw = {}
        if self.cfg.workers > 0:
            kw = dict(num_workers=self.cfg.workers, persistent_workers=False, prefetch_factor=4)
        return torch.utils.data.DataLoader(self.data, batch_sampler=sampler,
                                           pin_memory=self.device.type == "cuda", **kw)

    # ---- checkpoints ------------------------------------------------------------------------

    def _ckpts(self) -> list[Path]:
        d = self.out / "ckpt"
        if not d.is_dir():
            return []
        return sorted(p for p in d.glob("step_*") if (p / "state.json").is_file())

    def save(self) -> Path:
        """Write ``ckpt/step_{step}`` (all ranks' RNG states included), then prune old ones."""
        from ..checkpoint import save_weights

        final = self.out / "ckpt" / f"step_{self.step:08d}"
        tmp = self.out / "ckpt" / f".step_{self.step:08d}.part"
        if self.dist.main:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
        self.dist.barrier()
        torch.save(_rng_state(), tmp / f"rng_rank{self.dist.rank}.pt")
        if self.dist.main:
            meta = {"step": self.step, "model": self.cfg.model, "scale": self.cfg.scale}
            save_weights(self.model, tmp / "model.safetensors", meta)
            if self.ema:
                save_weights(self.ema.module, tmp / "ema.safetensors", meta)
            torch.save({"optimizer": self.opt.state_dict(), "scaler": self.scaler.state_dict()},
                       tmp / "state.pt")
            (tmp / "state.json").write_text(json_text(
                {"step": self.step, "total": self.total, "best_psnr": self.best, "world": self.dist.world,
                 "model": self.cfg.model, "data": self.data_fingerprint(), "precision": self.precision,
                 "val_files": [p.name for p in self.val_files]}))
        self.dist.barrier()
        if self.dist.main:
            if final.exists():  # only possible when re-saving the same step of this run
                shutil.rmtree(final)
            os.replace(tmp, final)
            for old in self._ckpts()[:-self.cfg.keep]:
                shutil.rmtree(old)
        self.dist.barrier()
        return final

    def _load_latest(self) -> None:
        from ..checkpoint import load_checkpoint

        ck = self._ckpts()
        if not ck:
            if self.dist.main:
                print(f"lightsr train: nothing to resume in {self.out}; starting at step 0", file=sys.stderr)
            return
        last = ck[-1]
        try:
            state = json.loads((last / "state.json").read_text())
        except (OSError, ValueError) as exc:
            raise LightSRError(f"--resume: {last}/state.json is unreadable ({exc}); nothing started") from None
        for f in ("model.safetensors", "state.pt") + (("ema.safetensors",) if self.ema else ()):
            if not (last / f).is_file():
                raise LightSRError(f"--resume: {last / f} is missing; the checkpoint is incomplete, nothing started")
        mismatch = []
        if int(state.get("world", self.dist.world)) != self.dist.world:
            mismatch.append(f"{state['world']} processes, now {self.dist.world}")
        if state.get("model", self.cfg.model) != self.cfg.model:
            mismatch.append(f"model {state['model']}, now {self.cfg.model}")
        if state.get("data") not in (None, self.data_fingerprint()):
            mismatch.append("other training images (file names or sizes differ)")
        if mismatch:
            raise LightSRError(f"--resume: the run in {self.out} was trained with " + "; ".join(mismatch)
                               + "; resume with the same setting or start a new --out")
        try:
            load_checkpoint(self.model, last / "model.safetensors")
            if self.ema:
                load_checkpoint(self.ema.module, last / "ema.safetensors")
            st = torch.load(last / "state.pt", map_location=self.device, weights_only=False)
        except LightSRError:
            raise
        except Exception as exc:  # a truncated or corrupt file
            raise LightSRError(f"--resume: the checkpoint {last} is damaged ({type(exc).__name__}: {exc}); "
                               "nothing started") from None
        self.opt.load_state_dict(st["optimizer"])
        self.scaler.load_state_dict(st["scaler"])
        self.step = int(state["step"])
        self.best = -math.inf if state["best_psnr"] is None else float(state["best_psnr"])  # null: no validation yet
        rng = last / f"rng_rank{self.dist.rank}.pt"
        if rng.is_file():
            _set_rng_state(torch.load(rng, weights_only=False))
        elif self.dist.main:
            print("lightsr train: the run had fewer processes; RNG streams of new ranks start fresh",
                  file=sys.stderr)
        if self.dist.main:
            print(f"lightsr train: resumed {self.out} at step {self.step}/{self.total}", file=sys.stderr)

    # ---- logging / validation --------------------------------------------------------------------

    def _log(self, row: dict) -> None:
        if not self.dist.main:
            return
        path = self.out / "log.csv"
        cols = ["step", "epoch", "lr", "loss", "sec_per_iter", "data_frac", "val_psnr_y"]
        new = not path.is_file()
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            if new:
                w.writeheader()
            w.writerow({k: row.get(k, "") for k in cols})

    def _trim_log(self) -> None:
        """Drop log rows after the resumed step (written by the interrupted run)."""
        path = self.out / "log.csv"
        if not (self.dist.main and path.is_file()):
            return
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        keep = [r for r in rows if int(r["step"]) <= self.step]
        if len(keep) != len(rows):
            with open(path, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(keep)

    def val_description(self) -> str:
        if self.cfg.val_dir is not None:
            return str(self.cfg.val_dir)
        return f"{len(self.val_files)} images held out of {self.val_files[0].parent.name}" if self.val_files else ""

    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema else self.model

    def validation_set(self):
        """``val_dir``, or the images held out of the first training folder."""
        from ..data.benchmark import BenchmarkFolder

        if self.cfg.val_dir is not None:
            return self.cfg.val_dir
        if not self.val_files:
            return None
        return BenchmarkFolder(self.val_files[0].parent, self.cfg.scale, files=self.val_files,
                               name=f"holdout-{self.val_files[0].parent.name}")

    def validate(self) -> float | None:
        val = self.validation_set()
        if val is None:
            return None
        psnr = None
        if self.dist.main:
            psnr = validate_psnr(self.eval_model(), val, self.cfg.scale, self.device)
            if psnr > self.best:
                from ..checkpoint import save_weights

                self.best = psnr
                save_weights(self.eval_model(), self.out / "best.safetensors",
                             {"step": self.step, "val_psnr_y": psnr, "val": self.val_description(),
                              "model": self.cfg.model, "scale": self.cfg.scale}, overwrite=True)
        self.dist.barrier()
        return psnr

    # ---- the loop ------------------------------------------------------------------------------

    def data_fingerprint(self) -> str:
        """Names (relative to their folder) and sizes of the training images: a resumed run must
        see the same images, wherever the folders now lie."""
        import hashlib

        h = hashlib.sha1()
        for p in self.data.bank.files:
            h.update(f"{p.parent.name}/{p.name}|{p.stat().st_size}\n".encode())
        return h.hexdigest()[:16]

    def _to(self, batch: dict) -> dict:
        out = {}
        for k, v in batch.items():
            if isinstance(v, torch.Tensor):
                v = v.to(self.device, non_blocking=True)
                if k in ("lr", "hr"):
                    v = precision_mod.to_format(v, self.channels_last)
            out[k] = v
        return out

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(prediction, target) of one batch."""
        kw = dict(self.hook(self.step, self.model, batch) or {}) if self.hook else {}
        self._after_step = kw.pop("after_step", None)
        if self.continuous:
            if "scale" not in kw:  # per-sample scales live in the cell only
                s = batch["scale"]
                kw["scale"] = (float(s[0, 0]), float(s[0, 1])) if self.cfg.scale_mode == "batch" else None
            pred = self.ddp(batch["lr"], coord=batch["coord"], cell=batch["cell"], **kw)
            return pred, batch["gt"]
        return self.ddp(batch["lr"], **kw), batch["hr"]

    def train_step(self, batch: dict) -> float:
        cfg = self.cfg
        lr = lr_at(cfg, self.step, self.total)
        for g in self.opt.param_groups:
            g["lr"] = lr
        self.model.train()
        with precision_mod.autocast(self.device, self.precision):
            pred, target = self.forward(batch)
        loss = self.loss_fn(pred.float(), target)
        if not torch.isfinite(loss):
            raise LightSRError(f"loss became {loss.item()} at step {self.step}; lower --lr or enable --clip-grad")
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if cfg.clip_grad > 0:
            self.scaler.unscale_(self.opt)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad)
        self.scaler.step(self.opt)
        self.scaler.update()
        if self._after_step is not None:  # e.g. AnySR: restore the weights the sub-network did not use
            self._after_step()
        if self.ema:
            self.ema.update(self.model, self.step)
        self.step += 1
        return float(loss.detach())

    def fit(self) -> dict:
        cfg, dist = self.cfg, self.dist
        self._trim_log()
        if dist.main and self.init_report:
            r = self.init_report
            print(f"lightsr train: --init {r['path']}: {r['loaded']} tensors loaded; head kept at init: "
                  f"{len(r['head_kept'])} ({', '.join(r['head_kept'][:4])}); checkpoint tensors dropped: "
                  f"{len(r['dropped'])} ({', '.join(r['dropped'][:4])})", file=sys.stderr)
        start_step, t0, cpu0 = self.step, time.time(), time.process_time()
        self._signalled = False
        previous = self._catch_signals()
        bar = None
        if dist.main and cfg.progress:
            from tqdm import tqdm

            bar = tqdm(total=self.total, initial=self.step, desc="train", dynamic_ncols=True, file=sys.stderr)
        acc, n_acc, t_log, t_data = 0.0, 0, time.time(), 0.0
        stopped = False
        it = iter(self.loader())
        while True:
            t_wait = time.perf_counter()
            batch = next(it, None)
            if batch is None:
                break
            batch = self._to(batch)
            t_data += time.perf_counter() - t_wait
            loss = self.train_step(batch)
            acc, n_acc = acc + loss, n_acc + 1
            if bar:
                bar.update(1)
            if self.step % cfg.log_every == 0 or self.step == self.total:
                mean = dist.mean(acc / n_acc, self.device)
                now = time.time()
                self._log({"step": self.step, "epoch": f"{self.step * cfg.batch_size * dist.world / self.data.epoch_len:.3f}",
                           "lr": f"{lr_at(cfg, self.step - 1, self.total):.3e}", "loss": f"{mean:.6f}",
                           "sec_per_iter": f"{(now - t_log) / n_acc:.4f}",
                           "data_frac": f"{t_data / max(1e-9, now - t_log):.3f}"})
                if bar:
                    bar.set_postfix(loss=f"{mean:.4f}", lr=f"{lr_at(cfg, self.step - 1, self.total):.2e}")
                acc, n_acc, t_log, t_data = 0.0, 0, now, 0.0
            if cfg.val_every and self.step % cfg.val_every == 0 and self.step < self.total:
                psnr = self.validate()
                if psnr is not None:
                    self._log({"step": self.step, "val_psnr_y": f"{psnr:.4f}"})
            if cfg.save_every and self.step % cfg.save_every == 0 and self.step < self.total:
                self.save()
            if self.step < self.total:
                stop = bool(cfg.stop_after) and self.step - start_step >= cfg.stop_after
                stop = stop or self._signalled
                if cfg.time_limit is not None:  # every rank must agree to stop
                    stop = dist.any(stop or (time.time() - t0) > cfg.time_limit * 60, self.device)
                if stop:
                    stopped = True
                    break
        if bar:
            bar.close()
        result = {"step": self.step, "total": self.total, "seconds": time.time() - t0, "best_psnr": self.best}
        try:
            return self._finish(result, stopped, start_step, t0, cpu0)
        finally:
            self._restore_signals(previous)

    def _catch_signals(self) -> dict:
        """SIGTERM / SIGINT stop the run cleanly: the current step finishes, a checkpoint is written."""
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum, frame):
            if self._signalled:  # a second signal: stop now
                raise KeyboardInterrupt
            self._signalled = True
            if self.dist.main:
                print(f"lightsr train: signal {signum}: stopping after this step with a checkpoint",
                      file=sys.stderr)

        previous = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, handler)
        return previous

    @staticmethod
    def _restore_signals(previous: dict) -> None:
        import signal

        for sig, h in previous.items():
            signal.signal(sig, h)

    def _log_session(self, start_step: int, t0: float, cpu0: float) -> None:
        """One row per run of this process in ``sessions.csv``: steps, wall and CPU minutes, host."""
        if not self.dist.main:
            return
        import platform

        path = self.out / "sessions.csv"
        cols = ["started", "host", "threads", "precision", "start_step", "end_step", "wall_min", "cpu_min",
                "best_val_psnr"]
        new = not path.is_file()
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            if new:
                w.writeheader()
            w.writerow({"started": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0)), "host": platform.node(),
                        "threads": torch.get_num_threads(), "precision": self.precision,
                        "start_step": start_step, "end_step": self.step,
                        "wall_min": f"{(time.time() - t0) / 60:.2f}",
                        "cpu_min": f"{(time.process_time() - cpu0) / 60:.2f}",
                        "best_val_psnr": "" if not math.isfinite(self.best) else f"{self.best:.4f}"})

    def _finish(self, result: dict, stopped: bool, start_step: int, t0: float, cpu0: float) -> dict:
        cfg, dist = self.cfg, self.dist
        if stopped:
            result["checkpoint"] = str(self.save())
            self._log_session(start_step, t0, cpu0)
            if dist.main:
                print(f"lightsr train: stopped at step {self.step}/{self.total}; continue with --resume",
                      file=sys.stderr)
            return result
        psnr = self.validate()
        if psnr is not None:
            self._log({"step": self.step, "val_psnr_y": f"{psnr:.4f}"})
            result["final_psnr"], result["best_psnr"] = psnr, self.best
        result["checkpoint"] = str(self.save())
        self._log_session(start_step, t0, cpu0)
        if dist.main:
            from ..checkpoint import save_weights

            save_weights(self.eval_model(), self.out / "final.safetensors",
                         {"step": self.step, "model": self.cfg.model, "scale": self.cfg.scale,
                          "ema": bool(self.ema), "val_psnr_y": psnr}, overwrite=True)
        dist.barrier()
        return result


# ----------------------------------------------------------------------------------------------
# validation


@torch.no_grad()
def validate_psnr(model: nn.Module, val_dir, scale: float, device) -> float:
    """Mean Y-PSNR (standard protocol, shave = scale) of ``model`` on the HR images of ``val_dir``."""
    was = model.training
    model.eval()
    try:
        from ..evaluate import evaluate

        res = evaluate(model, [val_dir], scale=scale, device=device, progress=False)
        return float(_mean_psnr(res))
    finally:
        model.train(was)


def _mean_psnr(res: dict) -> float:
    """Mean PSNR over the folders of ``lightsr.evaluate.evaluate``'s result (one folder here)."""
    return float(np.mean([v["psnr"] for v in res.values()]))


# ----------------------------------------------------------------------------------------------
# command line


def config_from_args(args) -> TrainConfig:
    """Recipe defaults, then the flags given on the command line."""
    from .recipes import get_recipe

    if args.recipe:
        cfg = get_recipe(args.recipe, scale=args.scale)
    elif args.model in (None, "rdb_esa"):  # the study-notes command names no model: its network
        cfg = get_recipe("rdb_esa", scale=args.scale)
    else:
        cfg = TrainConfig(out="")
    if args.model:
        cfg.model = args.model
    if args.scale is not None:
        cfg.scale = args.scale
    simple = {"val_dir": "val_dir", "out": "out", "iters": "iters", "epochs": "epochs", "batch_size": "batch_size",
              "lr": "lr", "device": "device", "workers": "workers", "seed": "seed", "init": "init",
              "loss": "loss", "amp": "amp", "ema": "ema", "clip_grad": "clip_grad", "val_every": "val_every",
              "save_every": "save_every", "log_every": "log_every", "stop_after": "stop_after",
              "time_limit": "time_limit", "schedule": "schedule", "optimizer": "optimizer", "repeat": "repeat",
              "precision": "precision", "holdout": "holdout", "keep": "keep"}
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
    if args.no_progress:
        cfg.progress = False
    if args.opt:
        from ..cli import parse_options

        cfg.options = {**cfg.options, **parse_options(args.opt)}
    if not cfg.out:
        cfg.out = f"runs/{cfg.model}_x{cfg.scale:g}"
    return cfg


def run_cli(args) -> int:
    cfg = config_from_args(args)
    trainer = Trainer(cfg, resume=args.resume)
    res = trainer.fit()
    if trainer.dist.main:
        msg = f"lightsr train: {res['step']}/{res['total']} steps in {res['seconds']:.0f} s"
        if res.get("final_psnr") is not None:
            msg += f"; validation Y-PSNR {res['final_psnr']:.3f} dB (best {res['best_psnr']:.3f})"
        print(msg + f"; run directory {cfg.out}", file=sys.stderr)
    if trainer.dist.on:
        torch.distributed.destroy_process_group()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m lightsr.train.engine ...`` (= ``lightsr train ...``), for torchrun scripts."""
    from ..cli import main as cli_main

    return cli_main(["train", *(argv if argv is not None else sys.argv[1:])])
