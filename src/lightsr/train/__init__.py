"""Training: the configuration (:mod:`.config`), one engine (:mod:`.engine`; torchrun set-up in
:mod:`.distributed`), the papers' recipes (:mod:`.recipes`), losses (:mod:`.losses`) and AnySR's
Algorithm 1 as a step hook (:mod:`.anysr`).

``lightsr train --recipe NAME ...`` or, from Python::

    from lightsr.train import Trainer, TrainConfig, get_recipe
    Trainer(get_recipe("rdb_esa", scale=2)).fit()
"""
from .config import TrainConfig, lr_at
from .engine import EMA, Trainer, init_from
from .losses import charbonnier, get_loss, kl_divergence, l1, l1_kl
from .recipes import RECIPES, get_recipe

__all__ = ["Trainer", "TrainConfig", "EMA", "init_from", "lr_at", "get_recipe", "RECIPES",
           "l1", "charbonnier", "kl_divergence", "l1_kl", "get_loss"]
