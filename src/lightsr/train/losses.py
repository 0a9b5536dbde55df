"""Pixel losses of the recipes: L1, Charbonnier, and HASN's stage-2 ``L1 + KL`` (seed 003, eq. 5).

All take ``(pred, target)`` of shape (B, C, H, W) in [0, 1] and return a scalar (mean reduction).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import LightSRError


def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error (seed 003 eq. 4; C2D, LIIF, HIIF, AnySR)."""
    return F.l1_loss(pred, target)


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """``mean(sqrt((pred - target)^2 + eps^2))`` (LapSRN's robust L1)."""
    return torch.sqrt((pred - target).pow(2) + eps * eps).mean()


def kl_divergence(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """HASN's ``L_DKL = sum_i P_HR(i) log(P_HR(i) / P_SR(i))`` (seed 003, eq. 5).

    The paper leaves "the probability distribution of the i-th pixel" undefined; the official code
    (``nathan66666/HASN``, ``basicsr/losses/basic_loss.py``, ``KLLoss``) makes it a softmax over the
    channel axis of each pixel, takes ``log(softmax(pred) + 1e-8)`` and averages
    ``F.kl_div(..., reduction='mean')`` over all B*C*H*W elements. That is reproduced exactly here.
    """
    p_sr = F.softmax(pred.float(), dim=1)
    p_hr = F.softmax(target.float(), dim=1)
    # = F.kl_div(log(p_sr + 1e-8), p_hr, reduction="mean"), written out (that reduction is deprecated)
    return (torch.xlogy(p_hr, p_hr) - p_hr * torch.log(p_sr + 1e-8)).mean()


def l1_kl(pred: torch.Tensor, target: torch.Tensor, alpha: float = 1.0, beta: float = 1.0) -> torch.Tensor:
    """HASN stage 2: ``L_s2 = alpha L1 + beta L_DKL`` with alpha = beta = 1 (seed 003, eq. 5)."""
    return alpha * l1(pred, target) + beta * kl_divergence(pred, target)


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l1": l1,
    "charbonnier": charbonnier,
    "l1_kl": l1_kl,
}


def get_loss(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    key = name.lower().replace("-", "_").replace("+", "_")
    if key not in LOSSES:
        raise LightSRError(f"unknown loss {name!r}; choose from {', '.join(LOSSES)}")
    return LOSSES[key]
