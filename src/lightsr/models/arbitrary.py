"""Arbitrary-scale models: a backbone's features + an implicit head (one file per paper: lightsr.models.liif, metasr, srno, arbsr, hiif
(HIIF-L)).

``<head>_<backbone>`` for head in liif, metasr, srno, hiif_l, arbsr and backbone in edsr (EDSR-baseline
encoder, 16 x 64) and rdn (RDN-B encoder). All are continuous (``forward(x, scale=s)`` or
``forward(x, coord=..., cell=...)``; see :class:`lightsr.layers.coords.ImplicitSR`).
Keys: ``encoder.*`` + the official head keys (LIIF ``imnet.*``, SRNO ``conv00/conv0/conv1/fc1/fc2``).
"""
from __future__ import annotations

from torch import nn

from ..layers.coords import ImplicitSR
from .arbsr import ArbSRHead
from .edsr import EDSR
from .hiif import HIIFL
from .liif import LIIFHead
from .metasr import MetaSRHead
from .rdn import RDN
from .registry import register_model
from .srno import SRNOHead

HEADS = {
    "liif": (LIIFHead, "Chen et al., CVPR 2021 (LIIF)"),
    "metasr": (MetaSRHead, "Hu et al., CVPR 2019 (Meta-SR, LIIF re-implementation)"),
    "srno": (SRNOHead, "Wei & Zhang, CVPR 2023 (SRNO)"),
    "hiif_l": (HIIFL, "C2D-ISR HIIF-L (seed 000 eqs. 7-9)"),
    "arbsr": (ArbSRHead, "Wang et al., ICCV 2021 (ArbSR: scale-aware adaption every 4 blocks + SA up-sampler)"),
}
ARBSR_K = 4  # ArbSR's adaption period on the 16-block EDSR/RDN encoders (the official code: K=1 on RCAN's 10 groups)
BACKBONES = {"edsr": lambda head: EDSR(None, adapt_every=ARBSR_K if head == "arbsr" else None),
             "rdn": lambda head: RDN(None, adapt_every=ARBSR_K if head == "arbsr" else None)}


def build_implicit(head: str, backbone: nn.Module, max_queries: int = 65536, **head_opts) -> ImplicitSR:
    """``ImplicitSR(backbone, HEADS[head](backbone.out_dim, **head_opts))``."""
    return ImplicitSR(backbone, HEADS[head][0](backbone.out_dim, **head_opts), max_queries=max_queries)


def _register(head: str, bb: str) -> None:
    def builder(scale: float | None = None, max_queries: int = 65536, **head_opts) -> ImplicitSR:
        # ``scale`` (the registry's default/evaluation scale) does not change a continuous model
        return build_implicit(head, BACKBONES[bb](head), max_queries, **head_opts)

    builder.__name__ = f"{head}_{bb}"
    builder.__doc__ = f"{HEADS[head][1]} on the {bb.upper()} encoder; continuous scale."
    register_model(f"{head}_{bb}", scales=None, paper=HEADS[head][1], family="arbitrary-scale")(builder)


for _h in HEADS:
    for _b in BACKBONES:
        _register(_h, _b)
