"""One training loop for every recipe: fixed or continuous scale, AMP, EMA, clipping, validation,
exact resume and DDP through ``torchrun``. The run directory's files (config, logs, step checkpoints,
best and final weights) are read and written by :mod:`.rundir`.

Exactness. The data stream is a pure function of (seed, global sample index) (see
:mod:`lightsr.data.patches`) and the learning rate a pure function of the step, so a checkpoint
only needs: model, EMA, optimiser, GradScaler, step, best PSNR and the RNG states of every rank
(torch, CUDA, numpy, python). A run stopped at any step and resumed gives the same weights, bit for
bit on CPU in ``--deterministic`` mode, as an uninterrupted one, also for models that draw random
numbers while training (DropPath, MambaIRv2's Gumbel routing): nothing but the model draws from
torch's global generator (the DataLoader has its own, :meth:`Trainer.loader`). Checkpoints are
written to ``ckpt/.step_N.part`` and renamed when complete; a full disk stops the run with one line
and leaves the previous checkpoint as it was.

DDP. ``torchrun --nproc_per_node N -m lightsr train ...`` runs the same command on N processes
(nccl on GPU, gloo on CPU). ``--batch_size`` is per process; rank r takes a contiguous slice of
every global batch, so N processes with batch b see the samples 1 process with batch N*b sees.
Rank 0 alone validates and writes (log, best / final weights, checkpoints: each rank adds its RNG
state); a stop (``--stop_after``, ``--time_limit``, a signal reaching any rank) is agreed by all ranks.

Extension point. ``TrainConfig.step_hook = "module:function"`` names
``hook(step: int, model: nn.Module, batch: dict) -> dict | None``, called before every forward;
the dict returned is merged into the model's forward keyword arguments (AnySR Algorithm 1 picks the
sub-network width there; ``"scale"`` in it replaces the scale passed to a continuous model), except
``"log"`` (a dict of values written to ``steps.csv``, one row per step) and
``"after_step"``: a callable run right after the optimiser step (AnySR line 7 restores the weight
entries the sub-network did not use). The scale *distribution* is data, chosen by
``TrainConfig.scale_schedule`` (see :mod:`.recipes`).

The configuration and its schedules are in :mod:`.config`, the torchrun set-up in
:mod:`.distributed`, AnySR's step hook in :mod:`.anysr`; ``lightsr train`` is :mod:`lightsr.cli.train`.
"""
from __future__ import annotations

import copy
import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .. import precision as precision_mod
from ..files import json_text
from ..errors import LightSRError
from .config import TrainConfig, import_object, lr_at
from ..models.loading import describe_module
from .distributed import Dist, setup_distributed
from .losses import get_loss
from .rundir import (append_log, append_session, append_step_values, init_source, rng_state, set_rng_state,
                     step_checkpoints, trim_log, writing)

__all__ = ["Trainer", "TrainConfig", "EMA", "init_from", "lr_at", "validate_psnr", "train", "Dist", "setup_distributed"]

# ----------------------------------------------------------------------------------------------
# small pieces


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


def init_from(model: nn.Module, path: str | os.PathLike, head: Sequence[str], name: str | None = None) -> dict:
    """``--init``: the warm start (:func:`lightsr.checkpoint.warm_start`) of ``model`` from a file or a
    run directory (:func:`.rundir.init_source`). Every tensor must come from there (same name and
    shape) except those under a ``head`` prefix, which may be missing or of another shape and keep
    their fresh initialisation. ``name``: the registered model, whose entry may map foreign names
    (``key_filter``: AnySR from its arbitrary-scale original) and add fresh parameters (``fresh``). A
    fixed-scale model takes a checkpoint of its continuous stage-1 twin (``encoder.*`` plus an
    implicit head) through C2D's eq. 10 (:func:`lightsr.models.c2d.stage1_body`): f_S and f_D from
    stage 1, the implicit head dropped. Returns ``{"loaded", "fresh", "dropped", "path", "note"}``."""
    from ..checkpoint import warm_start
    from ..models import get_entry
    from ..models.c2d import stage1_body

    p, note = init_source(path)
    entry = get_entry(name) if name is not None else None
    fresh = tuple(head) + (entry.fresh if entry is not None else ())
    if entry is not None and entry.key_filter is not None:
        filt = entry.key_filter
    elif not any(k.startswith("encoder.") for k in model.state_dict()):
        filt = stage1_body  # a network without encoder.*: from its stage-1 twin, the body (C2D eq. 10)
    else:
        filt = None
    report = warm_start(model, p, fresh=fresh, filter=filt, what="--init")
    return {**report, "path": str(p), "note": note}


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
            from ..models import get_entry
            from ..models.resolve import resolve

            continuous = get_entry(cfg.model).scales is None  # their scale comes with every batch
            self.descriptor = resolve(cfg.model, None, None if continuous else cfg.scale, cfg.options,
                                      pretrained=False)
        else:
            self.descriptor = describe_module(model)
        self.model = self.descriptor.module.train().to(self.device)
        self.continuous = self.descriptor.continuous
        # a resumed run takes every weight from its checkpoint: --init is not read (it may be gone)
        initialise = cfg.init and not (resume and step_checkpoints(self.out))
        self.init_report = init_from(self.model, cfg.init, cfg.init_head, name=None if model is not None
                                     else self.descriptor.model) if initialise else None
        if self.init_report and self.init_report.get("note") and self.dist.main:
            print(f"lightsr train: {self.init_report['note']}", file=sys.stderr)
        self.precision = precision_mod.choose(cfg.precision, self.device)
        self.channels_last = precision_mod.prepare(self.model, self.device, self.precision)
        self.loss_fn = get_loss(cfg.loss)
        # what validation runs, imported before the first step: a run that outlives an edit of the
        # package then never mixes an old module with a new one at its first validation
        import lightsr.data.benchmark  # noqa: F401
        import lightsr.evaluate  # noqa: F401
        import lightsr.inference  # noqa: F401
        import lightsr.metrics  # noqa: F401
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
        self._frozen_body = self._body_params() if cfg.head_warmup > 0 else []
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        self.hook = hook or (import_object(cfg.step_hook, "step hook") if cfg.step_hook else None)
        self.step = 0
        self.best = -math.inf
        self._steps_written = False  # steps.csv: the first row of this process trims a resumed run's rows
        self.ddp = self.model
        if self.dist.on:
            self.ddp = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if cfg.compile:  # the forward and its backward, traced once (about a minute on 1 CPU thread)
            if self.continuous:
                raise LightSRError(f"--compile: {cfg.model} is a continuous-scale model, whose query shapes change "
                                   f"every step; train it without --compile")
            self.ddp = torch.compile(self.ddp)
        self._make_run_dir()
        torch.manual_seed(cfg.seed + 1 + self.dist.rank)  # per-rank stream for dropout etc.
        np.random.seed((cfg.seed + 1 + self.dist.rank) % 2**32)
        random.seed(cfg.seed + 1 + self.dist.rank)
        if resume:
            self._load_latest()

    # ---- setup ------------------------------------------------------------------------------

    def _body_params(self) -> list[nn.Parameter]:
        """Parameters outside the head (``init_head`` prefixes): frozen during ``head_warmup``."""
        head = tuple(self.cfg.init_head)
        named = list(self.model.named_parameters())
        body = [p for n, p in named if not n.startswith(head)]
        if len(body) == len(named):
            raise LightSRError(f"--head_warmup: {self.cfg.model} has no parameters under its head "
                               f"({', '.join(head)})")
        return body

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
            if cfg.degradation != "bicubic":
                raise LightSRError(f"--degradation {cfg.degradation} is for fixed-scale models; "
                                   f"{cfg.model} trains on bicubic LR of continuous scales")
            fn = import_object(cfg.scale_schedule, "scale schedule")(cfg) if cfg.scale_schedule else \
                uniform_scale(cfg.scale_min, cfg.scale_max)
            return ContinuousScalePatches(cfg.train_dirs, cfg.lr_patch, gb, cfg.seed, fn, cfg.scale_max,
                                          cfg.scale_mode, cfg.queries, cfg.repeat, cfg.augment, exclude=ex)
        from ..cache import cache_dir, overridden

        cache = str(cache_dir("train")) if overridden() and cfg.cache_dir else cfg.cache_dir
        ds = FixedScalePatches(cfg.train_dirs, int(cfg.scale), cfg.lr_patch, gb, cfg.seed, cfg.repeat,
                               cfg.augment, cache_dir=cache, exclude=ex, degradation=cfg.degradation)
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
        """This rank's batches from ``self.step`` on. The loader has its own seeded generator: making
        its iterator draws a worker base seed, which from torch's global generator would shift the
        stream that DropPath / random routing use after a resume (the data are a pure function of
        the index, so this generator needs no checkpoint)."""
        from ..data.patches import GlobalBatchSampler

        gen = torch.Generator().manual_seed(self.cfg.seed + 1 + self.dist.rank)
        sampler = GlobalBatchSampler(self.cfg.batch_size, self.dist.world, self.dist.rank, self.step, self.total)
        kw = {}
        if self.cfg.workers > 0:
            kw = dict(num_workers=self.cfg.workers, persistent_workers=False, prefetch_factor=4)
        return torch.utils.data.DataLoader(self.data, batch_sampler=sampler, generator=gen,
                                           pin_memory=self.device.type == "cuda", **kw)

    # ---- checkpoints ------------------------------------------------------------------------

    def _ckpts(self) -> list[Path]:
        return step_checkpoints(self.out)

    def save(self) -> Path:
        """Write ``ckpt/step_{step}`` (all ranks' RNG states included), then prune old ones."""
        final = self.out / "ckpt" / f"step_{self.step:08d}"
        tmp = self.out / "ckpt" / f".step_{self.step:08d}.part"  # renamed to `final` once complete
        with writing(final, tmp if self.dist.main else None):
            if self.dist.main:
                if tmp.exists():
                    shutil.rmtree(tmp)
                tmp.mkdir(parents=True)
            self.dist.barrier()
            torch.save(rng_state(), tmp / f"rng_rank{self.dist.rank}.pt")
            if self.dist.main:
                self._write_state(tmp)
        self.dist.barrier()
        if self.dist.main:
            if final.exists():  # only possible when re-saving the same step of this run
                shutil.rmtree(final)
            os.replace(tmp, final)
            milestones = {int(k) for k in self.cfg.keep_steps or ()}
            for old in self._ckpts()[:-self.cfg.keep]:
                if int(old.name.split("_")[-1]) not in milestones:  # --keep_steps: never pruned
                    shutil.rmtree(old)
        self.dist.barrier()
        return final

    def _write_state(self, tmp: Path) -> None:
        """Model, EMA, optimiser / scaler and ``state.json`` into the checkpoint being written."""
        from ..checkpoint import save_weights

        meta = {"step": self.step, "model": self.cfg.model, "scale": self.cfg.scale}
        save_weights(self.model, tmp / "model.safetensors", meta)
        if self.ema:
            save_weights(self.ema.module, tmp / "ema.safetensors", meta)
        torch.save({"optimizer": self.opt.state_dict(), "scaler": self.scaler.state_dict()}, tmp / "state.pt")
        (tmp / "state.json").write_text(json_text(
            {"step": self.step, "total": self.total, "best_psnr": self.best, "world": self.dist.world,
             "model": self.cfg.model, "data": self.data_fingerprint(), "precision": self.precision,
             "val_files": [p.name for p in self.val_files]}))

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
            set_rng_state(torch.load(rng, weights_only=False))
        elif self.dist.main:
            print("lightsr train: the run had fewer processes; RNG streams of new ranks start fresh",
                  file=sys.stderr)
        if self.dist.main:
            print(f"lightsr train: resumed {self.out} at step {self.step}/{self.total}", file=sys.stderr)

    # ---- logging / validation --------------------------------------------------------------------

    def _log(self, row: dict) -> None:
        if self.dist.main:
            append_log(self.out, row)

    def _log_step(self, values: dict | None) -> None:
        if values and self.dist.main:
            append_step_values(self.out, self.step + 1, values, first=not self._steps_written)
            self._steps_written = True

    def _log_session(self, start_step: int, t0: float, cpu0: float) -> None:
        if self.dist.main:
            mode = self.precision + ("+compile" if self.cfg.compile else "")
            append_session(self.out, t0=t0, cpu0=cpu0, precision=mode, start_step=start_step, end_step=self.step,
                           best=self.best)

    def val_description(self) -> str:
        q = f", LR as JPEG q{self.cfg.val_jpeg}" if self.cfg.val_jpeg is not None else ""
        if self.cfg.val_dir is not None:
            return str(self.cfg.val_dir) + q
        return f"{len(self.val_files)} images held out of {self.val_files[0].parent.name}{q}" if self.val_files else ""

    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema else self.model

    def validation_set(self):
        """``val_dir``, or the images held out of the first training folder."""
        from ..data.benchmark import BenchmarkFolder

        if self.cfg.val_dir is not None:
            if self.cfg.val_jpeg is None:
                return self.cfg.val_dir
            return BenchmarkFolder(self.cfg.val_dir, self.cfg.scale, jpeg=self.cfg.val_jpeg)
        if not self.val_files:
            return None
        return BenchmarkFolder(self.val_files[0].parent, self.cfg.scale, files=self.val_files,
                               name=f"holdout-{self.val_files[0].parent.name}", jpeg=self.cfg.val_jpeg)

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
                with writing(self.out / "best.safetensors"):
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
        self._log_step(kw.pop("log", None))  # the hook's per-step values (AnySR: width, scale) -> steps.csv
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
        if self.step < cfg.head_warmup:  # head-only phase: the body gets no update (Adam skips grad None)
            for p in self._frozen_body:
                p.grad = None
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
        if self.dist.main:
            trim_log(self.out, self.step)
        if dist.main and self.init_report:
            r = self.init_report
            print(f"lightsr train: --init {r['path']}: {r['loaded']} tensors loaded; head kept at init: "
                  f"{len(r['fresh'])} ({', '.join(r['fresh'][:4])}); checkpoint tensors dropped: "
                  f"{len(r['dropped'])} ({', '.join(r['dropped'][:4])})", file=sys.stderr)
        start_step, t0, cpu0 = self.step, time.time(), time.process_time()
        self._signalled = 0  # the number of the signal that asked to stop
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
            due = cfg.save_every and self.step % cfg.save_every == 0
            if (due or self.step in (cfg.keep_steps or ())) and self.step < self.total:
                self.save()
            if self.step < self.total:
                stop = bool(cfg.stop_after) and self.step - start_step >= cfg.stop_after
                stop = stop or bool(self._signalled)
                stop = stop or (cfg.time_limit is not None and (time.time() - t0) > cfg.time_limit * 60)
                if dist.any(stop, self.device):  # every rank stops at the same step (a signal may reach one)
                    stopped = True
                    break
        if bar:
            bar.close()
        result = {"step": self.step, "total": self.total, "seconds": time.time() - t0, "best_psnr": self.best}
        if stopped and self._signalled:
            result["signal"] = int(self._signalled)  # the CLI exits 128 + it (130 after Ctrl-C)
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
            self._signalled = int(signum)
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

            with writing(self.out / "final.safetensors"):
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
# a whole run


def train(cfg: TrainConfig, resume: bool = False, model: nn.Module | None = None) -> dict:
    """``lightsr train`` as a function: ``Trainer(cfg, model, resume).fit()``, a one-line report on
    stderr, and the process group closed under torchrun. Returns :meth:`Trainer.fit`'s result."""
    trainer = Trainer(cfg, model=model, resume=resume)
    res = trainer.fit()
    if trainer.dist.main:
        msg = f"lightsr train: {res['step']}/{res['total']} steps in {res['seconds']:.0f} s"
        if res.get("final_psnr") is not None:
            msg += f"; validation Y-PSNR {res['final_psnr']:.3f} dB (best {res['best_psnr']:.3f})"
        print(msg + f"; run directory {cfg.out}", file=sys.stderr)
    if trainer.dist.on:
        torch.distributed.destroy_process_group()
    return res
