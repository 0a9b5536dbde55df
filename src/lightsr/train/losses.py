"""Pixel losses of the recipes: L1, L2, Charbonnier, HASN's stage-2 ``L1 + KL`` (HASN eq. 5)
and L1 with a total-variation regulariser.

All take ``(pred, target)`` of shape (B, C, H, W) in [0, 1] and return a scalar (mean reduction).
Adding a loss is one function decorated with :func:`register_loss`: its name is then a ``--loss``
choice (:data:`LOSSES`).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import LightSRError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LOSSES: dict[str, LossFn] = {}  # --loss NAME -> fn(pred, target), filled by @register_loss


def register_loss(fn: LossFn) -> LossFn:
    """Decorator: ``fn`` becomes the training loss ``--loss <fn.__name__>``."""
    LOSSES[fn.__name__] = fn
    return fn


@register_loss
def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error (HASN eq. 4; C2D, LIIF, HIIF, AnySR)."""
    return F.l1_loss(pred, target)


@register_loss
def l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error (RFDN's fine-tuning stage, after L1 pre-training)."""
    return F.mse_loss(pred, target)


@register_loss
def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """``mean(sqrt((pred - target)^2 + eps^2))`` (LapSRN's robust L1)."""
    return torch.sqrt((pred - target).pow(2) + eps * eps).mean()


def kl_divergence(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """HASN's ``L_DKL = sum_i P_HR(i) log(P_HR(i) / P_SR(i))`` (HASN eq. 5).

    The paper leaves "the probability distribution of the i-th pixel" undefined; the official code
    (``nathan66666/HASN``, ``basicsr/losses/basic_loss.py``, ``KLLoss``) makes it a softmax over the
    channel axis of each pixel, takes ``log(softmax(pred) + 1e-8)`` and averages
    ``F.kl_div(..., reduction='mean')`` over all B*C*H*W elements. That is reproduced exactly here.
    """
    p_sr = F.softmax(pred.float(), dim=1)
    p_hr = F.softmax(target.float(), dim=1)
    # = F.kl_div(log(p_sr + 1e-8), p_hr, reduction="mean"), written out (that reduction is deprecated)
    return (torch.xlogy(p_hr, p_hr) - p_hr * torch.log(p_sr + 1e-8)).mean()


@register_loss
def l1_kl(pred: torch.Tensor, target: torch.Tensor, alpha: float = 1.0, beta: float = 1.0) -> torch.Tensor:
    """HASN stage 2: ``L_s2 = alpha L1 + beta L_DKL`` with alpha = beta = 1 (HASN eq. 5)."""
    return alpha * l1(pred, target) + beta * kl_divergence(pred, target)


TV_WEIGHT = 1e-2  # l1_tv's weight of the total variation (both mean-reduced)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation ``mean|x[i+1, j] - x[i, j]| + mean|x[i, j+1] - x[i, j]|`` over
    (B, C, H, W): a smoothness regulariser of the prediction alone."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


@register_loss
def l1_tv(pred: torch.Tensor, target: torch.Tensor, weight: float = TV_WEIGHT) -> torch.Tensor:
    """``L1 + 0.01 * TV(pred)`` (weight :data:`TV_WEIGHT`). Set5's HR images have TV 0.04 to 0.09,
    so the term is about 5e-4 against an x4 L1 of about 2e-2, and it adds at most 4 % (four
    neighbour differences, each of slope ``weight``) to any pixel's gradient: a gentle brake on noise."""
    return l1(pred, target) + weight * total_variation(pred)


def get_loss(name: str) -> LossFn:
    """A registered loss by name (``-`` and ``+`` read as ``_``: ``l1+tv`` is ``l1_tv``)."""
    key = name.lower().replace("-", "_").replace("+", "_")
    if key not in LOSSES:
        raise LightSRError(f"unknown loss {name!r}; choose from {', '.join(LOSSES)}")
    return LOSSES[key]
