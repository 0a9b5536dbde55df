"""HASN: Hybrid Attention Separable Network for Efficient Image Super-resolution
(Cao, Lei, Shi, Liang, Li, Bai). Official code: nathan66666/HASN
``basicsr/archs/hasn_arch.py`` (keys and layout below follow it).

LR -> conv3x3 (3 -> 52) -> 6 x HASB -> conv3x3 (52 -> 52) -> + shallow features ->
conv3x3 (52 -> 3 s^2) -> PixelShuffle(s). No mean shift, input in [0, 1].

Parameters (design/architectures.md section 7): x4 435,272; x3 425,423; x2 418,388; one HASB
64,486 (ESA 10,076, CAB 16,138). MACs at 1280x720 output: see results/cnn_models.md.

Ablation options (section 5; every default keeps the network above, weights and init included).
The ablation networks follow the authors' own ablation code, which the official repository ships
only as Python 3.9 bytecode (``basicsr/archs/__pycache__/starsr*_arch``, ``sum_arch``); read with a
marshal dump, see results/cnn_models.md:

* ``block="cb"``: the plain convolutional block of Fig. 4a / 6c (``StarSR2``), i.e. eq. 6 without
  LayerNorm, without the third FC + ESA branch and without CAB. The base network of Tables 2, 4, 5,
  7 (first row) and 8: 227,756 parameters at x4 (Tables 2 and 4: 227K).
* ``esa``, ``cab`` (Table 7): the ESA branch ``+ ESA(FC(F_o))`` of eq. 6 and the closing CAB.
  ``None`` = as the block has them (on for ``hasb``, off for ``cb``); ``cb`` + ESA is the official
  ``starsr_esa2`` (the branch exactly as in eq. 6), ``cb`` + CAB is ``starsr_ca``.
* ``act`` (Table 8): the gate's activation, ``relu`` / ``leakyrelu`` (slope 0.01) / ``relu6``.
* ``fusion`` (Table 2): ``mul`` (``act(F_d1) * F_d2``, eq. 6) or ``add`` (``act(F_d1) + F_d2``).
* ``block_residual`` (Table 5 (b), Fig. 6b): the deep-feature conv of eq. 2 takes the sum of every
  block's output, ``H_Conv(F_K + ... + F_1)`` (official ``StarSRres``); no parameters.
* ``block="spab"`` (Table 6): SPAN's block in place of HASB; see :class:`SPAB`.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import LightSRError
from ..layers.conv import CAB, ESA, ESA_MIN_SIZE, DepthwiseConv, PointwiseConv, conv_layer, pad_min_size
from ..layers.upsample import UpsampleOneStep
from .detect import Guess, Shapes, builder_defaults, detector, one_step
from .registry import Traits, register_model


class HASB(nn.Module):
    """Hybrid attention separable block (HASN eq. 6, Fig. 3a; official ``Block``).

        F_o = LN(DWConv7(F_in))
        F_d1, F_d2, F_d3 = FC(F_o), FC(F_o), FC(F_o)           (1x1 convs, C -> 3C)
        F_d = ReLU6(F_d1) * F_d2 + ESA(F_d3)
        F_d = DWConv7(FC(F_d)) + F_in                           (FC: 3C -> C)
        F_out = CAB(F_d)                                        (no residual around CAB)

    The switches (module docstring) drop parts of eq. 6 and keep the rest, names and creation order
    included: ``ln=False, esa=False, cab=False`` is the convolutional block (CB) of Fig. 6c,
    ``F_out = DWConv7(FC(act(FC(F_o)) * FC(F_o))) + F_in`` with ``F_o = DWConv7(F_in)``.
    """

    def __init__(self, dim: int = 52, mlp_ratio: int = 3, kernel_size: int = 7, esa_channels: int = 16, *,
                 ln: bool = True, esa: bool = True, cab: bool = True, act: str = "relu6", fusion: str = "mul"):
        super().__init__()
        hidden = mlp_ratio * dim
        self.fusion = fusion
        self.dwconv = DepthwiseConv(dim, kernel_size)
        self.ln = nn.LayerNorm(dim) if ln else None
        self.f1 = PointwiseConv(dim, hidden)
        self.f2 = PointwiseConv(dim, hidden)
        self.f3 = PointwiseConv(dim, hidden) if esa else None  # feeds only the ESA branch
        self.g = PointwiseConv(hidden, dim)
        self.dwconv2 = DepthwiseConv(dim, kernel_size)
        self.act = ACTIVATIONS[act]()
        self.esa = ESA(esa_channels, hidden) if esa else None
        self.cab = CAB(dim) if cab else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f_o = self.dwconv(x)
        if self.ln is not None:
            # LayerNorm over channels, in fp32: under bf16 autocast the depthwise conv hands it bf16, and
            # CPU's bf16 LayerNorm backward sums its weight gradient badly (14 % off fp32's on a 16x52x48x48
            # batch; 0.3 % computed in fp32)
            f_o = self.ln(f_o.permute(0, 2, 3, 1).float()).permute(0, 3, 1, 2)
        gate, f_d2 = self.act(self.f1(f_o)), self.f2(f_o)
        f_d = gate * f_d2 if self.fusion == "mul" else gate + f_d2  # Table 2: multiply or add
        if self.esa is not None:
            f_d = f_d + self.esa(self.f3(f_o))
        f_d = self.dwconv2(self.g(f_d)) + x
        return self.cab(f_d) if self.cab is not None else f_d


class SPAB(nn.Module):
    """SPAN's swift parameter-free attention block (Wan et al., CVPR 2024; HASN ref. [146], Table 6),
    in its deployed form (each conv a plain 3x3 with bias):

        h_1 = SiLU(Conv3(x)),  h_2 = SiLU(Conv3(h_1)),  h_3 = Conv3(h_2)
        out = (h_3 + x) * (sigmoid(h_3) - 0.5)           (the attention map has no parameters)

    SPAN trains each conv as an over-parameterised ``Conv3XC`` (1x1 -> 3x3 -> 1x1 at twice the
    width, plus a 1x1 skip) that folds into exactly this 3x3 conv for inference; the functions the
    block can express are the same, and the deployed count is how HASN Table 1 counts SPAN (498K).
    """

    def __init__(self, dim: int = 52):
        super().__init__()
        self.c1_r = nn.Conv2d(dim, dim, 3, 1, 1)
        self.c2_r = nn.Conv2d(dim, dim, 3, 1, 1)
        self.c3_r = nn.Conv2d(dim, dim, 3, 1, 1)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c3_r(self.act(self.c2_r(self.act(self.c1_r(x)))))
        return (h + x) * (torch.sigmoid(h) - 0.5)


ACTIVATIONS = {"relu": nn.ReLU, "leakyrelu": nn.LeakyReLU, "relu6": nn.ReLU6}  # Table 8 (eq. 6: ReLU6)
FUSIONS = ("mul", "add")  # Table 2 (eq. 6: multiply)
BLOCKS = ("hasb", "cb", "spab")  # eq. 6 / Fig. 6c (Tables 2, 4, 5, 7, 8) / Table 6


def check_options(block, esa, cab, act, fusion, block_residual) -> tuple[str, bool, bool, str]:
    """The ablation options, validated: (block, esa, cab, act) with esa/cab resolved for the block
    and act lower-cased. Anything else is a one-line :class:`LightSRError`."""
    if block not in BLOCKS:
        raise LightSRError(f"HASN option block={block!r} is not one of {', '.join(BLOCKS)}")
    for key, value in (("esa", esa), ("cab", cab)):
        if value is not None and not isinstance(value, bool):
            raise LightSRError(f"HASN option {key} takes true or false (Table 7), not {value!r}")
    if not isinstance(block_residual, bool):
        raise LightSRError(f"HASN option block_residual takes true or false (Table 5), not {block_residual!r}")
    if not isinstance(act, str) or act.lower() not in ACTIVATIONS:
        raise LightSRError(f"HASN option act={act!r} is not one of {', '.join(ACTIVATIONS)} (Table 8)")
    if fusion not in FUSIONS:
        raise LightSRError(f"HASN option fusion={fusion!r} is not one of {', '.join(FUSIONS)} (Table 2)")
    if block == "spab":  # SPAN's block has no ESA, CAB or gate: refuse rather than ignore
        for key, on in (("esa", esa is True), ("cab", cab is True), ("act", act.lower() != "relu6"),
                        ("fusion", fusion != "mul")):
            if on:
                raise LightSRError(f"HASN option {key} does not apply to block=spab (SPAN's block has no ESA, "
                                   f"CAB or gate)")
        return block, False, False, act.lower()
    default = block == "hasb"
    return block, default if esa is None else esa, default if cab is None else cab, act.lower()


class HASN(nn.Module):
    def __init__(self, scale: int = 4, channels: int = 52, num_blocks: int = 6, mlp_ratio: int = 3,
                 kernel_size: int = 7, *, block: str = "hasb", esa: bool | None = None, cab: bool | None = None,
                 act: str = "relu6", fusion: str = "mul", block_residual: bool = False):
        super().__init__()
        block, esa, cab, act = check_options(block, esa, cab, act, fusion, block_residual)
        self.scale = scale
        self.num_blocks = num_blocks
        self.block_residual = block_residual
        self.conv_1 = conv_layer(3, channels, 3)
        for i in range(1, num_blocks + 1):  # official names block_1..block_6
            self.add_module(f"block_{i}", SPAB(channels) if block == "spab" else
                            HASB(channels, mlp_ratio, kernel_size, ln=block == "hasb", esa=esa, cab=cab, act=act,
                                 fusion=fusion))
        self.conv_2 = conv_layer(channels, channels, 3)
        self.upsampler = UpsampleOneStep(scale, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        out = self.upsampler(self.forward_features(x, crop=False))  # eq. 3
        return out[..., : h * self.scale, : w * self.scale]

    def forward_features(self, x: torch.Tensor, crop: bool = True) -> torch.Tensor:
        """F_D = H_Conv(F_K) + F_0 (eq. 2), what the up-sampler sees (``crop=False`` keeps the
        padding of images under 15 px)."""
        h, w = x.shape[-2:]
        x = pad_min_size(x, ESA_MIN_SIZE)  # only images smaller than 15 px are padded
        fea = self.conv_1(x)
        out = fea
        outs = []  # kept only for block_residual
        for i in range(1, self.num_blocks + 1):
            out = getattr(self, f"block_{i}")(out)
            if self.block_residual:
                outs.append(out)
        if self.block_residual:  # Table 5 (b): H_Conv(F_K + F_{K-1} + ... + F_1), summed in this order
            out = outs[-1]
            for o in reversed(outs[:-1]):
                out = out + o
        out = self.conv_2(out) + fea  # eq. 2
        return out[..., :h, :w] if crop else out


@register_model("hasn", scales=(2, 3, 4), paper="Cao et al., HASN: Hybrid Attention Separable Network for Efficient Image Super-resolution", family="cnn",
                traits=Traits(min_size=ESA_MIN_SIZE),  # ESA's strided conv + 7x7 pooling; ESA: tiling approximate
                pretrained={4: "hasn_x4.safetensors", 2: "hasn_x2.safetensors", 3: "hasn_x3.safetensors"})  # trained here: experiments/long_runs/hasn_x4, results/hasn.md
def hasn(scale: int = 4, channels: int = 52, num_blocks: int = 6, mlp_ratio: int = 3, kernel_size: int = 7, *,
         block: str = "hasb", esa: bool | None = None, cab: bool | None = None, act: str = "relu6",
         fusion: str = "mul", block_residual: bool = False) -> HASN:
    """HASN (hybrid attention separable network), 435K params at x4."""
    return HASN(scale=scale, channels=channels, num_blocks=num_blocks, mlp_ratio=mlp_ratio, kernel_size=kernel_size,
                block=block, esa=esa, cab=cab, act=act, fusion=fusion, block_residual=block_residual)


@detector("hasn", "conv_1.weight", "block_1.dwconv.conv.weight", "conv_2.weight", "upsampler.0.weight")
def _hasn(s: Shapes) -> list[Guess]:
    c = s.out("conv_1.weight")
    [(name, scale, opts, details)] = one_step("hasn", s, {
        "channels": c, "num_blocks": s.count("block_{}.dwconv.conv.weight"),
        "mlp_ratio": s.out("block_1.f1.conv.weight") // c, "kernel_size": s.shape("block_1.dwconv.conv.weight")[-1]})
    # ablations (above): no LayerNorm = the CB base network; ESA branch and CAB on/off (Table 7)
    default = builder_defaults("hasn")["block"]  # "hasb": ESA and CAB on unless switched off
    block = "hasb" if "block_1.ln.weight" in s else "cb"
    esa, cab = "block_1.esa.conv1.weight" in s, "block_1.cab.cab.0.weight" in s
    opts = {**opts, **({"block": block} if block != default else {}),
            **{k: v for k, v in (("esa", esa), ("cab", cab)) if v != (block == "hasb")}}
    return [(name, scale, opts, details)]


@detector("hasn", "conv_1.weight", "block_1.c1_r.weight", "conv_2.weight", "upsampler.0.weight")
def _hasn_spab(s: Shapes) -> list[Guess]:
    """HASN with SPAN's block in place of HASB (HASN Table 6, ``block=spab``)."""
    return [(name, scale, {**opts, "block": "spab"}, details) for name, scale, opts, details in one_step(
        "hasn", s, {"channels": s.out("conv_1.weight"), "num_blocks": s.count("block_{}.c1_r.weight")})]
