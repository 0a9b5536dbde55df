"""Training: one engine (:mod:`.engine`), the papers' recipes (:mod:`.recipes`), losses (:mod:`.losses`).

``lightsr train --recipe NAME ...`` or, from Python::

    from lightsr.train import Trainer, TrainConfig, get_recipe
    Trainer(get_recipe("rdb_esa", scale=2)).fit()
"""
from .engine import EMA, Trainer, TrainConfig, init_from, lr_at
from .losses import charbonnier, get_loss, kl_divergence, l1, l1_kl
from .recipes import RECIPES, get_recipe

__all__ = ["Trainer", "TrainConfig", "EMA", "init_from", "lr_at", "get_recipe", "RECIPES",
           "l1", "charbonnier", "kl_divergence", "l1_kl", "get_loss"]
