"""AnySR's Algorithm 1 (Zhan et al.): training the width-sliced sub-networks.

For a batch of scale s (lines 2-3: t ~ U{1..T}, s ~ S_t), the sub-network F_t of the scale's group
runs, reset to the full network with probability p (line 4); after the optimiser step only the
entries F_t used are kept updated (line 7). The architecture and its checkpoint mapping are in
:mod:`lightsr.models.anysr`.

* :class:`AnySRGroups` -- lines 2-3 as the data's scale schedule (``TrainConfig.scale_schedule =
  "lightsr.train.anysr:AnySRGroups"``, the ``anysr`` recipe's default; the official code's sweep is
  :class:`lightsr.train.recipes.AnySRSweep`);
* :func:`train_step_hook` -- the training engine's step hook (``TrainConfig.step_hook =
  "lightsr.train.anysr:train_step_hook"``, the ``anysr`` recipe); it returns the chosen width and
  scale under ``"log"``, which the engine writes to the run's ``steps.csv``;
* :func:`anysr_train_step` -- the same as a self-contained loop body;
* :func:`choose_subnet`, :class:`SubnetGuard`, :func:`sample_group_scale` -- its parts.
"""
from __future__ import annotations

import random
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import LightSRError
from ..layers.coords import parse_scale
from ..layers.slimmable import SlimConv2d
from ..models.anysr import SCALE_GROUPS, AnySR, scale_group

__all__ = ["sample_group_scale", "AnySRGroups", "choose_subnet", "SubnetGuard", "anysr_train_step",
           "train_step_hook"]


def sample_group_scale(rng: random.Random | None = None) -> tuple[int, float]:
    """Algorithm 1 lines 2-3: t ~ U{1..T}, s ~ S_t (isotropic). Returns (t 0-based, s)."""
    rng = rng or random
    t = rng.randrange(len(SCALE_GROUPS))
    return t, rng.choice(SCALE_GROUPS[t])


class AnySRGroups:
    """Algorithm 1 lines 2-3 as a scale schedule: per step, t ~ U{1..T} and s ~ S_t
    (:func:`sample_group_scale`), seeded from the data stream's per-step generator, so that the
    scale is a pure function of (seed, step) and a resumed or multi-process run draws the same.
    Each group is drawn with probability 1/T whatever its size (S_1 has 7 scales, S_2 8)."""

    def __init__(self, cfg=None):  # the engine builds a schedule from its TrainConfig; nothing to read
        pass

    def __call__(self, rng: np.random.Generator, step: int) -> float:
        return sample_group_scale(random.Random(int(rng.integers(1 << 62))))[1]


def choose_subnet(scale: float | Sequence[float], widths: Sequence[float], p: float = 0.6,
                  rng: random.Random | None = None, reset: str = "all") -> float:
    """Algorithm 1 lines 2-4 for a batch of scale s: t = group(s); t <- T with probability p.
    ``reset="all"`` (seed) resets any group; ``"smallest"`` (official code) only S_1."""
    rng = rng or random
    t = scale_group(scale)
    if t is None:
        return 1.0
    if (reset == "all" or t == 0) and rng.random() < p:
        t = len(widths) - 1
    return widths[t]


class SubnetGuard:
    """Algorithm 1 line 7, "only Theta_F[1:|Theta_F_t|] are updated": snapshot the width-sliced
    weights before the optimiser step; :meth:`restore` puts back every entry the last forward did
    not use (Adam's momentum would otherwise move them even with a zero gradient)."""

    def __init__(self, model: nn.Module):
        self.slim = {n: m for n, m in model.named_modules() if isinstance(m, SlimConv2d)}
        self.saved = {n: (m.weight.detach().clone(), None if m.bias is None else m.bias.detach().clone())
                      for n, m in self.slim.items()}

    @torch.no_grad()
    def restore(self) -> None:
        for n, m in self.slim.items():
            if not hasattr(m, "last_used"):
                continue
            wm, bm = m.active_mask()
            w0, b0 = self.saved[n]
            m.weight[~wm] = w0[~wm]
            if bm is not None:
                m.bias[~bm] = b0[~bm]


def anysr_train_step(model: AnySR, batch: dict, optimizer: torch.optim.Optimizer, *, p: float = 0.6,
                     rng: random.Random | None = None, reset: str = "all",
                     loss_fn: Callable[[Tensor, Tensor], Tensor] = F.l1_loss,
                     only_subnet: bool = True) -> dict:
    """One iteration of Algorithm 1 with a single forward (a self-contained loop body; the training
    engine uses :func:`train_step_hook` instead).

    ``batch``: ``inp`` (B,3,h,w) in [0,1], ``gt`` (B,3,Hq,Wq) in [0,1], ``coord`` (B,Hq,Wq,2),
    ``cell`` (B,2), ``scale`` (float or (s_h, s_w), one per batch). The sub-network is chosen by the
    batch's scale group (reset to the full network with probability ``p``); after the optimiser step
    every weight entry the sub-network did not use is restored (``only_subnet``). Returns loss, width.
    """
    width = choose_subnet(batch["scale"], model.widths, p, rng, reset)
    model.set_width(width)
    try:
        model.train()
        guard = SubnetGuard(model) if only_subnet else None
        pred = model(batch["inp"], scale=batch["scale"], coord=batch.get("coord"), cell=batch.get("cell"))
        loss = loss_fn(pred, batch["gt"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if guard is not None:
            guard.restore()
    finally:
        model.set_width(None)
    return {"loss": float(loss.detach()), "width": width}


def train_step_hook(step: int, model: nn.Module, batch: dict) -> dict:
    """The training engine's step hook (``TrainConfig.step_hook = "lightsr.train.anysr:train_step_hook"``).

    Before the forward: the batch's scale (one per batch) rounded to 0.1 as the official code feeds
    the encoder, the sub-network by its group with the reset probability ``model.reset_p`` (rule
    ``model.reset_rule``), drawn from a per-step RNG so every DDP rank and a resumed run choose the
    same; after the optimiser step: restore unused entries and return to the inference mode. The
    width and scale are returned under ``"log"`` (the engine's ``steps.csv``)."""
    m = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    if not isinstance(m, AnySR):
        raise LightSRError("the AnySR step hook needs an anysr_* model")
    s = batch["scale"]
    s = s[0] if isinstance(s, Tensor) and s.dim() == 2 else s
    pair = tuple(round(float(v), 1) for v in (s.tolist() if isinstance(s, Tensor) else parse_scale(s)))
    if len(pair) == 1:
        pair = (pair[0], pair[0])
    width = choose_subnet(pair, m.widths, m.reset_p, random.Random(1_000_003 * step + 17), m.reset_rule)
    m.set_width(width)
    guard = SubnetGuard(m)

    def after_step() -> None:
        guard.restore()
        m.set_width(None)

    return {"scale": pair, "after_step": after_step,
            "log": {"width": width, "scale_h": pair[0], "scale_w": pair[1]}}
