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
from .detect import Guess, Miss, Shapes, defaults_of, detector, nondefault
from .edsr import EDSR
from .hiif import HIIFL, head_options
from .liif import LIIFHead
from .metasr import MetaSRHead
from .rdn import RDN, rdn_config
from .registry import register_model
from .srno import SRNOHead

HEADS = {
    "liif": (LIIFHead, "Chen et al., CVPR 2021 (LIIF)"),
    "metasr": (MetaSRHead, "Hu et al., CVPR 2019 (Meta-SR, LIIF re-implementation)"),
    "srno": (SRNOHead, "Wei & Zhang, CVPR 2023 (SRNO)"),
    "hiif_l": (HIIFL, "HIIF-L, eqs. 7-9 of C2D-ISR: Optimizing Attention-based Image Super-resolution from Continuous to Discrete Scales (Jiang et al. 2025)"),
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


# ---------------------------------------------------------------------------------------------
# detection: encoder.* (EDSR-baseline or RDN-B) + an implicit head; AnySR (models/anysr.py)
# ---------------------------------------------------------------------------------------------


def _implicit_head(s: Shapes, in_dim: int) -> tuple[str, dict]:
    """(head name, head options) from the head's own top-level keys."""
    if "sa_upsample.offset.weight" in s:
        return "arbsr", {}
    if "conv00.weight" in s:
        width, heads = s.out("conv00.weight"), s.out("conv0.kln.weight")
        return "srno", nondefault({"width": width, "heads": heads}, defaults_of(SRNOHead))
    if "fc_layers.0.fc1.weight" in s:
        return "hiif_l", head_options(s, in_dim)
    if "imnet.layers.0.weight" in s:
        first = s.shape("imnet.layers.0.weight")
        if first[1] == 3:  # Meta-SR's weight-prediction MLP takes [rel_coord, 1/s]
            return "metasr", nondefault({"hidden": first[0]}, defaults_of(MetaSRHead))
        n = s.stepped("imnet.layers.{}.weight")
        hidden = tuple(s.out(f"imnet.layers.{2 * i}.weight") for i in range(n - 1))
        extra = first[1] - 9 * in_dim
        unfold = extra in (2, 4)
        cell = (first[1] - (9 if unfold else 1) * in_dim) == 4
        opts = nondefault({"hidden": hidden, "feat_unfold": unfold, "cell_decode": cell}, defaults_of(LIIFHead))
        return "liif", opts
    raise Miss("no implicit head (imnet.* LIIF/MetaSR, conv00 SRNO, fc_layers HIIF-L, sa_upsample ArbSR)")


def _anysr_ase(s: Shapes, fc1: str, c_in: int, lam_default: int) -> dict:
    if fc1 not in s:
        return {"ase": None}
    extra = s.inp(fc1) - c_in
    if extra == 2:
        return {"ase": "concat"}  # (also what ase="fi" with lam=1 would give: documented as concat)
    if extra < 2 or extra % 2:
        raise Miss(f"AnySR attention input {s.inp(fc1)} is not C_in + 2 lambda")
    return {} if extra // 2 == lam_default else {"lam": extra // 2}


@detector("arbitrary-scale EDSR", "encoder.head.0.weight", "encoder.body.16.weight")
def _implicit_edsr(s: Shapes) -> list[Guess]:
    feats = s.out("encoder.head.0.weight")
    head, opts = _implicit_head(s, feats)
    d = {"encoder": "edsr", "head": head}
    if "encoder.body.0.conv1.weight" in s:  # AnySR residual blocks (conv1/conv2/fc1/fc2)
        if head == "hiif_l":
            raise Miss("AnySR has no HIIF-L variant")
        # lam: anysr.build_anysr's default on EDSR (lam or 4)
        return [(f"anysr_{head}_edsr", None, _anysr_ase(s, "encoder.body.0.fc1.weight", feats, 4), d)]
    return [(f"{head}_edsr", None, opts, d)]


@detector("arbitrary-scale RDN", "encoder.SFENet1.weight", "encoder.RDBs.0.LFF.weight", "encoder.GFF.0.weight")
def _implicit_rdn(s: Shapes) -> list[Guess]:
    rdn_config(s, "encoder.")
    head, opts = _implicit_head(s, s.out("encoder.SFENet1.weight"))
    d = {"encoder": "rdn", "head": head}
    growth = s.out("encoder.RDBs.0.convs.0.conv.0.weight")
    if "encoder.RDBs.0.fc1.weight" in s:
        if head == "hiif_l":
            raise Miss("AnySR has no HIIF-L variant")
        # lam: anysr.build_anysr's default on RDN (lam or 8)
        return [(f"anysr_{head}_rdn", None, _anysr_ase(s, "encoder.RDBs.0.fc1.weight", 2 * growth, 8), d)]
    guesses: list[Guess] = [(f"{head}_rdn", None, opts, d)]
    if head != "hiif_l" and not opts:  # AnySR-RDN without ASE: the same tensors (PREFER decides)
        guesses.append((f"anysr_{head}_rdn", None, {"ase": None}, d))
    return guesses
