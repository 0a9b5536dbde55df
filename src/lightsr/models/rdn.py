"""RDN (Zhang et al., CVPR 2018), configuration B: D = 16 RDBs, C = 8 convs each, G = G0 = 64.

Keys follow ``yinboc/liif/models/rdn.py`` (EDSR-PyTorch): ``SFENet1/2``, ``RDBs.{i}.convs.{j}.conv.0``,
``RDBs.{i}.LFF``, ``GFF.{0,1}``, ``UPNet.*``.

    f_-1 = SFENet1(x); F_0 = SFENet2(f_-1)
    F_d  = RDB_d(F_{d-1}) = LFF([F_{d-1}, c_1, ..., c_C]) + F_{d-1},  c_j = ReLU(Conv3x3([F_{d-1}, c_1..c_{j-1}]))
    F_D  = GFF([F_1..F_D]) + f_-1                          (forward_features: the headless encoder)
    y    = UPNet(F_D)

Parameters: x4 22,271,107 (22.27M); x2 22,123,395; x3 22,308,035; headless encoder 21,973,952.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .arbsr import SAAdapt
from .detect import Guess, Miss, Shapes, builder_defaults, defaults_of, detector, pixel_shuffle_scale
from .registry import Traits, register_model


class RDBConv(nn.Module):
    """c = ReLU(Conv3x3(x)); returns [x, c] (dense connection)."""

    def __init__(self, cin: int, growth: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(cin, growth, 3, padding=1), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, self.conv(x)], 1)


class RDB(nn.Module):
    """Residual dense block: C dense convs, 1x1 local feature fusion, local residual."""

    def __init__(self, g0: int, growth: int, n_convs: int):
        super().__init__()
        self.convs = nn.Sequential(*[RDBConv(g0 + c * growth, growth) for c in range(n_convs)])
        self.LFF = nn.Conv2d(g0 + n_convs * growth, g0, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.LFF(self.convs(x)) + x


class RDN(nn.Module):
    """RDN; ``scale=None`` builds the headless encoder. ``rdbs`` replaces the blocks (AnySR);
    ``adapt_every=K``: ArbSR's scale-aware feature adaption after every K RDBs (``sa_adapt.{i}``)."""

    CONFIGS = {"A": (20, 6, 32), "B": (16, 8, 64)}
    _scale: tuple[float, float] = (4.0, 4.0)

    def __init__(self, scale: int | None = 4, g0: int = 64, config: str = "B",
                 rdbs: list[nn.Module] | None = None, adapt_every: int | None = None):
        super().__init__()
        self.scale = scale
        self.D, c, g = self.CONFIGS[config]
        self.out_dim = g0
        self.SFENet1 = nn.Conv2d(3, g0, 3, padding=1)
        self.SFENet2 = nn.Conv2d(g0, g0, 3, padding=1)
        self.RDBs = nn.ModuleList(rdbs if rdbs is not None else [RDB(g0, g, c) for _ in range(self.D)])
        self.GFF = nn.Sequential(nn.Conv2d(self.D * g0, g0, 1), nn.Conv2d(g0, g0, 3, padding=1))
        if scale in (2, 3):
            self.UPNet = nn.Sequential(nn.Conv2d(g0, g * scale * scale, 3, padding=1), nn.PixelShuffle(scale),
                                       nn.Conv2d(g, 3, 3, padding=1))
        elif scale == 4:
            self.UPNet = nn.Sequential(nn.Conv2d(g0, g * 4, 3, padding=1), nn.PixelShuffle(2),
                                       nn.Conv2d(g, g * 4, 3, padding=1), nn.PixelShuffle(2),
                                       nn.Conv2d(g, 3, 3, padding=1))
        elif scale is not None:
            raise ValueError("RDN supports scales 2, 3 and 4")
        self.adapt_every = adapt_every
        if adapt_every:
            self.sa_adapt = nn.ModuleList(SAAdapt(g0) for _ in range(self.D // adapt_every))

    def set_scale(self, s_h: float, s_w: float) -> None:
        self._scale = (float(s_h), float(s_w))

    def forward_features(self, x: Tensor) -> Tensor:
        f1 = self.SFENet1(x)
        x = self.SFENet2(f1)
        outs = []
        for d, rdb in enumerate(self.RDBs):
            x = rdb(x)
            if self.adapt_every and (d + 1) % self.adapt_every == 0:
                x = self.sa_adapt[d // self.adapt_every](x, self._scale)
            outs.append(x)
        return self.GFF(torch.cat(outs, 1)) + f1

    def forward(self, x: Tensor) -> Tensor:
        f = self.forward_features(x)
        return f if self.scale is None else self.UPNet(f)


@register_model("rdn", scales=(2, 3, 4), paper="Zhang et al., CVPR 2018 (RDN, config B)", family="cnn",
                traits=Traits(tiling_exact=True))  # a purely local CNN
def rdn(scale: int = 4, config: str = "B") -> RDN:
    """RDN config B (D=16, C=8, G=64), input/output RGB in [0, 1] as LIIF's RDN."""
    return RDN(scale, config=config)


def rdn_config(s: Shapes, prefix: str = "") -> tuple[str, dict]:
    """(configuration name, ``blocks``/``convs``/``growth``) of an RDN body under ``prefix`` (the
    arbitrary-scale models' encoder: ``encoder.``); a :class:`Miss` for any other configuration."""
    d = {"blocks": s.count(prefix + "RDBs.{}.LFF.weight"), "convs": s.count(prefix + "RDBs.0.convs.{}.conv.0.weight"),
         "growth": s.out(prefix + "RDBs.0.convs.0.conv.0.weight")}
    g0 = s.out(prefix + "SFENet1.weight")
    found = [k for k, v in RDN.CONFIGS.items() if v == (d["blocks"], d["convs"], d["growth"])]
    if not found or g0 != defaults_of(RDN)["g0"]:
        raise Miss(f"RDN with D={d['blocks']}, C={d['convs']}, G={d['growth']}, G0={g0}: "
                   f"not configuration A or B")
    return found[0], d


@detector("rdn", "SFENet1.weight", "SFENet2.weight", "RDBs.0.LFF.weight", "GFF.0.weight", "UPNet.0.weight")
def _rdn(s: Shapes) -> list[Guess]:
    config, d = rdn_config(s)
    g, out = d["growth"], s.out("UPNet.0.weight")
    scale = 4 if "UPNet.4.weight" in s else pixel_shuffle_scale(out, g)
    return [("rdn", scale, {} if config == builder_defaults("rdn")["config"] else {"config": config}, d)]
