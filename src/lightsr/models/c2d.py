"""C2D-ISR (Jiang et al. 2025): HiET layer (eqs. 2-6), U-Net HiET block (eq. 1), and the
SwinIR-C2D / SRFormer-C2D models with the discrete pixel-shuffle head (eq. 10) or, for stage 1,
the HIIF-L continuous head.

Seed 000 fixes (and this file follows; design/architectures.md section 4 is superseded where it
differs, see its "Read first"):

* eq. 2: HE = (floor(2u / w_i) mod 2, floor(2v / h_i) mod 2), one bit per axis from the layer's OWN
  window (u column, v row, on the map padded to the window) -- :func:`hierarchical_encoding`;
* eq. 3: F0 = MLP([F, HE]) (C + 2 -> C); eq. 4: Q, V = the two C/2 channel halves of each window;
* eq. 5: CSC at width C/2, F1 = ((Q^T V / (h_i w_i)) V^T)^T (``layers.attention.channel_self_correlation``,
  the normaliser is the padded window size, as HiT);
* eq. 6: window reverse, crop, LN(Linear(C/2 -> C)); then the skip and the backbone's FFN;
* eq. 1: decoder input F_l^d = Conv1x1([O_{l+1}^d, O_l^e]); windows [64, 32, 8, 8, 32, 64].

The choice (C = 60, 4 blocks x 6 layers, FFN hidden 120)
--------------------------------------------------------
The seed leaves open the form of the eq. 3 "MLP", the norm placement and how many 1x1 fusions a
6-layer block has. Chosen: **MLP = HiT's DFE** (``layers.attention.DFE``: Conv1x1(C+2 -> 12) -
LReLU - Conv3x3 - LReLU - Conv1x1(12 -> C), gated by Conv1x1(C+2 -> C)), **post-norm** (HiT's;
eq. 6's LN is the attention's output norm, then ``x + LN2(FFN(x))``), **one 1x1 fusion per block**
(the outermost skip, [d1, e0] -> the last 64-window layer; ``skips=2`` fuses [d2, e1] too): the only
combination within 2 % of every Table 1 parameter count. FLOPs fall short of Table 1 by 7.9-10.8 %.
Counts: SwinIR-C2D 759,048 / 767,163 / 778,524 params (x2 / x3 / x4), SRFormer-C2D 833,928 /
842,043 / 853,404 (asserted in tests/test_c2d.py). The 12 combinations counted, why no
seed-conformant design reaches the FLOPs, and the Table 2 ablation deltas: results/c2d.md,
"Design notes".

Options of ``swinir_c2d`` / ``srformer_c2d`` (``--opt key=value``): ``hie`` (bool), ``attention``
(csc | scc), ``unet`` (bool), ``windows`` (list), ``skips`` (0..L, None = all), ``mlp`` (linear |
mlp | dfe), ``norm`` (post | pre), ``blocks``, ``dim``, ``mlp_ratio``, ``heads`` (SCC only).

Reuse (MambaIRv2-C2D)
---------------------
* ``HiETAttention(dim, window, hie=True, mlp="dfe", attention="csc")``: eqs. 2-6 on a (B, H, W, C)
  map -> (B, H, W, C), padding to its window and cropping back inside; no residual, no FFN. A
  drop-in replacement for a window-MSA (MambaIRv2's attentive layer).
* ``HiETLayer(dim, window, ffn, norm="post", **attention_options)``: the full HiET layer on tokens,
  ``forward(x (B, HW, C), size)``.
* ``HiETBlock(dim, windows, layer_factory, skips=None)``: eq. 1 for any number of layers;
  ``layer_factory(index, window) -> module(tokens, size) -> tokens``; ``skips`` = number of fused
  decoder layers (outermost first; None = all L; 0 = linear block). Keys ``layers.{i}``,
  ``fusions.{l}``. For 5 windows [64, 32, 8, 32, 64]: e0, e1, e2, then Conv([e2, e1]) -> 32,
  Conv([d1, e0]) -> 64.

Stage 1 / stage 2: ``swinir_c2d_hiif`` / ``srformer_c2d_hiif`` = the same backbone
(``upsample=None``) + ``models.hiif.HIIFL`` in ``layers.coords.ImplicitSR`` (keys ``encoder.*``);
:func:`stage1_body` maps f_S, f_D onto the discrete model (eq. 10) for :func:`lightsr.checkpoint.warm_start`.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from ..errors import LightSRError
from ..layers.attention import DFE, SCC, channel_self_correlation
from ..layers.ffn import make_ffn
from ..layers.skeleton import LightweightSR, map_to_tokens, tokens_to_map
from ..layers.window import pad_to_multiple, tensor_cache, window_partition, window_reverse
from .detect import Guess, Miss, Shapes, defaults_of, detector, detectors, nondefault, pixel_shuffle_scale
from .hiif import HIIFL, head_options
from .registry import Traits, register_model
from .swinir import SKELETON, transformer_guess

PAPER = "C2D-ISR: Optimizing Attention-based Image Super-resolution from Continuous to Discrete Scales (Jiang et al. 2025)"
WINDOWS_6 = (64, 32, 8, 8, 32, 64)
WINDOWS_5 = (64, 32, 8, 32, 64)  # MambaIRv2-C2D's (Table 1; models/mambairv2.py)
MLPS = ("linear", "mlp", "dfe")


def _pair(w: int | Sequence[int]) -> tuple[int, int]:
    return (int(w), int(w)) if isinstance(w, int) else (int(w[0]), int(w[1]))


@tensor_cache(maxsize=12)  # a few (size, window) pairs: the 3 windows of the current image size
def _he_table(h: int, w: int, wh: int, ww: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    u = torch.arange(w, device=device)
    v = torch.arange(h, device=device)
    bu = (2 * u // ww) % 2  # floor(u / w_i * 2) mod 2, column bit
    bv = (2 * v // wh) % 2  # floor(v / h_i * 2) mod 2, row bit
    return torch.stack(torch.broadcast_tensors(bu[None, :], bv[:, None]), -1).to(dtype)


def hierarchical_encoding(h: int, w: int, window: int | Sequence[int], device=None,
                          dtype=torch.float32) -> Tensor:
    """Eq. 2: (H, W, 2) map of (floor(2u / w_i) mod 2, floor(2v / h_i) mod 2) for column u, row v.

    ``window`` is (h_i, w_i). Each bit says which half of its window a pixel lies in along that axis.
    """
    wh, ww = _pair(window)
    return _he_table(h, w, wh, ww, torch.device(device or "cpu"), dtype)  # input-independent: cached


class HiETAttention(nn.Module):
    """The attention part of a HiET layer, eqs. 2-6, on a (B, H, W, C) map -> (B, H, W, C).

    ``F0 = MLP([F, HE])`` (eqs. 2-3) on the map padded to the window, window partition, ``[Q, V] =
    split(F0)`` (eq. 4, two C/2 halves), ``F1 = CSC(Q, V)`` (eq. 5), window reverse + crop,
    ``LN(Linear(C/2 -> C))`` (eq. 6). This is a drop-in replacement for a window-MSA inside another
    layer (MambaIRv2-C2D): it has no residual and no FFN.

    Args:
        dim: C. window: (h_i, w_i) or an int. hie: concatenate the 2 HE channels (False: v2.1 ablation).
        mlp: the eq. 3 MLP: ``"dfe"`` (default, the chosen design) HiT's conv-gated DFE(C+2 -> C);
            ``"linear"`` Linear(C+2 -> C); ``"mlp"`` Linear(C+2 -> C) -> GELU -> Linear(C -> C).
        attention: ``"csc"`` (eq. 5) or ``"scc"`` (v2.2 ablation: HiT's spatial-channel correlation,
            S-SC on C/2 + C-SC on C/2, whose concatenation is C wide, so the output Linear is C -> C).
        heads: heads of the SCC spatial branch (ablation only).
        pad_mode: per-layer padding to the window (``mirror_pad``, works for any size).
    Keys: ``mlp.*``, ``proj``, ``norm`` (and ``scc.*`` for the SCC ablation).
    """

    def __init__(self, dim: int, window: int | Sequence[int], *, hie: bool = True, mlp: str = "dfe",
                 attention: str = "csc", heads: int = 6, pad_mode: str = "reflect"):
        super().__init__()
        self.dim, self.window, self.hie, self.pad_mode = dim, _pair(window), hie, pad_mode
        in_dim = dim + 2 if hie else dim
        if mlp == "linear":
            self.mlp = nn.Linear(in_dim, dim)
        elif mlp == "mlp":
            self.mlp = nn.Sequential(nn.Linear(in_dim, dim), nn.GELU(), nn.Linear(dim, dim))
        elif mlp == "dfe":  # HiT's conv-gated projection on the map: conv(x) * linear(x)
            self.mlp = DFE(in_dim, dim)
        else:
            raise ValueError(f"unknown HiET mlp {mlp!r} (linear, mlp or dfe)")
        self.conv_mlp = mlp == "dfe"
        if attention == "csc":
            self.scc = None
            self.proj = nn.Linear(dim // 2, dim)  # eq. 6 Linear(C/2 -> C)
        elif attention == "scc":
            # v2.2: HiT's SCC (S-SC + C-SC, then its proj = Linear(C -> C)) on the MLP's Q/V, i.e.
            # the shared SCC with its own QV projection (DFE) replaced by this layer's MLP.
            self.scc = SCC(dim, self.window, heads)
            self.scc.qv = nn.Identity()
            self.proj = None
        else:
            raise ValueError(f"unknown HiET attention {attention!r} (csc or scc)")
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        b, h, w, c = x.shape
        xp = pad_to_multiple(x.permute(0, 3, 1, 2), self.window, self.pad_mode).permute(0, 2, 3, 1)
        hp, wp = xp.shape[1:3]
        if self.hie:  # eqs. 2-3: F0 = MLP([F, {delta_hw}])
            he = hierarchical_encoding(hp, wp, self.window, x.device, x.dtype)
            xp = torch.cat([xp, he.expand(b, hp, wp, 2)], -1)
        if self.conv_mlp:
            f0 = self.mlp(xp.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        else:
            f0 = self.mlp(xp)
        if self.scc is not None:  # v2.2 ablation: SCC + its Linear(C -> C)
            return self.norm(self.scc(f0.permute(0, 3, 1, 2))[:, :h, :w])
        # eq. 4: [Q, V] = the two C/2 halves, each partitioned into (B*nW, h_i*w_i, C/2) windows (split
        # first: each half is then contiguous, which the matrix products of eq. 5 take without a copy)
        q, v = (window_partition(t, self.window) for t in f0.chunk(2, -1))
        f1 = channel_self_correlation(q, v)  # eq. 5
        f3 = window_reverse(f1, self.window, hp, wp)[:, :h, :w]  # F_{i,2} -> F_{i,3}
        return self.norm(self.proj(f3))  # eq. 6


class HiETLayer(nn.Module):
    """HiET layer on tokens: eqs. 2-6, a skip connection, then the backbone's FFN.

    ``norm="post"`` (HiT's placement; eq. 6's LN is the attention's output norm)::

        x = x + LN(Linear(CSC(split(MLP([x, HE])))))     # eqs. 2-6 + skip
        x = x + LN2(FFN(x))

    ``norm="pre"`` (SwinIR's placement, one more LN)::

        x = x + HiETAttention(LN1(x));  x = x + FFN(LN2(x))

    Keys: ``attn.*``, ``norm1`` (pre only), ``norm2``, ``ffn.*``.
    """

    def __init__(self, dim: int, window: int | Sequence[int], ffn: nn.Module, *, norm: str = "post",
                 **attn_kw):
        super().__init__()
        if norm not in ("post", "pre"):
            raise ValueError(f"unknown norm placement {norm!r} (post or pre)")
        self.pre = norm == "pre"
        self.norm1 = nn.LayerNorm(dim) if self.pre else None
        self.attn = HiETAttention(dim, window, **attn_kw)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = ffn

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        b, n, c = x.shape
        y = self.norm1(x) if self.pre else x
        x = x + self.attn(y.reshape(b, size[0], size[1], c)).reshape(b, n, c)
        if self.pre:
            return x + self.ffn(self.norm2(x), size)
        return x + self.norm2(self.ffn(x, size))


class HiETBlock(nn.Module):
    """Eq. 1: a U-Net of layers whose windows shrink then grow, skips fused by 1x1 convs.

    ``layer_factory(index, window) -> module(tokens (B, HW, C), size) -> tokens`` builds each layer,
    so any layer (HiETLayer, or MambaIRv2's attentive layer with HiETAttention inside) can be used.
    With n = len(windows) layers and L = (n - 1) // 2: the first n - L layers run in sequence (the
    L + 1 encoder layers, plus the bottom layer when n is even); each of the last L (decoder) layers
    takes ``Conv1x1([O^d_{l+1}, O^e_l])`` (eq. 1), the decoder layer at depth l (counted from the
    output) pairing with encoder output l (same window)::

        windows [64, 32, 8, 8, 32, 64]:  e0 -> e1 -> e2 -> d2;  d1 = L4(F1[d2, e1]);  d0 = L5(F0[d1, e0])
        windows [64, 32, 8, 32, 64]:     e0 -> e1 -> e2;        d1 = L3(F1[e2, e1]);  d0 = L4(F0[d1, e0])

    ``skips`` = number of fused decoder layers, outermost first (default L; 0 = the linear
    (v3.1, non-U-Net) block: the same layers in sequence). Keys: ``layers.{i}``, ``fusions.{l}``
    (fusion l feeds the decoder layer paired with encoder output l).
    """

    def __init__(self, dim: int, windows: Sequence[int], layer_factory: Callable[[int, int], nn.Module],
                 skips: int | None = None):
        super().__init__()
        n = len(windows)
        self.depth = (n - 1) // 2
        self.skips = self.depth if skips is None else int(skips)
        if not 0 <= self.skips <= self.depth:
            raise ValueError(f"skips must be in [0, {self.depth}] for {n} layers, not {skips}")
        self.windows = tuple(windows)
        self.layers = nn.ModuleList(layer_factory(i, w) for i, w in enumerate(windows))
        self.fusions = nn.ModuleList(nn.Conv2d(2 * dim, dim, 1) for _ in range(self.skips))

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        n = len(self.layers)
        enc: list[Tensor] = []
        for i, layer in enumerate(self.layers):
            level = n - 1 - i  # encoder output this decoder layer pairs with
            if i >= n - self.depth and level < self.skips:  # eq. 1: F_l^d = Conv([O_{l+1}^d, O_l^e])
                cat = torch.cat([tokens_to_map(x, size), tokens_to_map(enc[level], size)], 1)
                x = map_to_tokens(self.fusions[level](cat))
            x = layer(x, size)
            if i <= self.depth:
                enc.append(x)
        return x


class C2DNet(LightweightSR):
    """The lightweight skeleton (layers/skeleton.py) with HiET blocks and no global padding (every
    HiET layer pads to its own window). ``forward_features(x)`` gives F_D for any head (eq. 10 or
    HIIF-L), so stage 2 initialises from stage 1 (:func:`stage1_body`)."""


def c2d_backbone(scale: int, ffn: str, *, dim: int = 60, blocks: int = 4,
                 windows: Sequence[int] = WINDOWS_6, hie: bool = True, attention: str = "csc",
                 unet: bool = True, skips: int | None = 1, mlp: str = "dfe", norm: str = "post",
                 mlp_ratio: float = 2.0, heads: int = 6,
                 upsample: nn.Module | str | None = "pixelshuffledirect") -> C2DNet:
    """``blocks`` HiET blocks of ``len(windows)`` HiET layers in the common skeleton.

    ``ffn``: the backbone's FFN (``"mlp"`` SwinIR, ``"conv"`` SRFormer ConvFFN), hidden C * mlp_ratio.
    ``unet=False`` is the linear block (skips = 0); ``skips=None`` fuses every decoder layer.
    """
    if not isinstance(windows, (list, tuple)) or not windows or \
            not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in windows):
        raise LightSRError(f"C2D option windows must be a list of positive integers, not {windows!r}")
    for key, value, allowed in (("mlp", mlp, MLPS), ("norm", norm, ("post", "pre")),
                                ("attention", attention, ("csc", "scc"))):
        if value not in allowed:
            raise LightSRError(f"C2D option {key}={value!r} is not one of {', '.join(allowed)}")
    if attention == "scc" and any(w > 8 and w % 8 for w in windows):
        raise LightSRError(f"C2D attention=scc needs windows <= 8 or multiples of 8, not {windows}")
    depth = (len(windows) - 1) // 2
    if skips is not None and not (isinstance(skips, int) and 0 <= skips <= depth):
        raise LightSRError(f"C2D option skips must be an integer in [0, {depth}], not {skips!r}")
    hidden = int(dim * mlp_ratio)

    def factory(i: int, w: int) -> nn.Module:
        return HiETLayer(dim, w, make_ffn(ffn, dim, hidden), norm=norm, hie=_flag(hie), mlp=mlp,
                         attention=attention, heads=heads)

    skips = 0 if not _flag(unet) else skips
    bodies = [HiETBlock(dim, windows, factory, skips=skips) for _ in range(blocks)]
    return C2DNet(bodies, dim, scale, pad_multiple=1, upsample=upsample)


def _flag(v) -> bool:
    if isinstance(v, bool):
        return v
    raise LightSRError(f"C2D options hie/unet take true or false, not {v!r}")


def stage1_body(sd: dict) -> dict:
    """Eq. 10 as a warm-start filter (:func:`lightsr.checkpoint.warm_start`): the f_S and f_D of a stage-1
    continuous twin (its ``encoder.*``) under the discrete model's own names, the implicit head (HIIF-L)
    dropped; ``warm_start(model, twin, fresh=("upsample",), filter=stage1_body)`` is stage 2's start. A
    state dict without ``encoder.*`` (not a twin) passes unchanged."""
    if not any(k.startswith("encoder.") for k in sd):
        return sd
    return {k[len("encoder."):]: v for k, v in sd.items() if k.startswith("encoder.")}


def c2d_traits(options: dict) -> Traits:
    """A discrete C2D model's input traits: every HiET layer pads to its own window, so the input
    multiple is the largest window (64 by default); window attention makes tiling approximate."""
    return Traits(window_multiple=max(options.get("windows") or (64,)), min_size=1, tiling_exact=False)


@register_model("swinir_c2d", paper=PAPER, family="c2d", traits=c2d_traits)
def swinir_c2d(scale: int = 4, **opts) -> C2DNet:
    """SwinIR-C2D (C2D-ISR Table 1): 4 U-Net HiET blocks [64,32,8,8,32,64], C=60, SwinIR MLP FFN."""
    return c2d_backbone(scale, "mlp", **opts)


@register_model("srformer_c2d", paper=PAPER, family="c2d", traits=c2d_traits)
def srformer_c2d(scale: int = 4, **opts) -> C2DNet:
    """SRFormer-C2D (C2D-ISR Table 1): 4 U-Net HiET blocks [64,32,8,8,32,64], C=60, ConvFFN."""
    return c2d_backbone(scale, "conv", **opts)


# SwinIR-C2D at a CPU budget (not in the paper): 2 U-Net HiET blocks instead of 4, windows halved (the
# paper's Table 2 varies them too), dim 60. The first C2D model trained here and shipped (x4: the
# transformer study's arm A, 4,000 steps of batch 16 on BSDS400 + T91, continued as a long run;
# results/c2d.md, "The claim on a C2D transformer").
SMALL = {"blocks": 2, "windows": [32, 16, 8, 8, 16, 32]}


@register_model("swinir_c2d_small", paper=PAPER, family="c2d", traits=lambda o: c2d_traits({**SMALL, **o}),
                pretrained={4: "swinir_c2d_small_x4.safetensors"})  # experiments/long_runs/swinir_c2d_small_x4
def swinir_c2d_small(scale: int = 4, **opts) -> C2DNet:
    """SwinIR-C2D reduced for CPU training: 2 U-Net HiET blocks [32,16,8,8,16,32], C=60, SwinIR MLP FFN."""
    return c2d_backbone(scale, "mlp", **{**SMALL, **opts})


# C2D's two-stage training for any discrete network (beyond the paper, which applies it to attention
# models): stage 1 trains the network's body with HIIF-L on continuous scales, stage 2 puts the
# discrete head back (eq. 10; the engine's ``--init`` maps ``encoder.*`` onto the body).
HEAD_MODULES = ("upsample", "upsampler", "tail")  # where the registered models keep their up-sampler
# (EDSR-baseline + HIIF-L is registered already, as ``hiif_l_edsr``, models/arbitrary.py)
TWIN_BASES = ("rlfn_s", "imdn", "hasn", "rdb_esa", "hit_sir", "hit_srf", "hit_sng")


def continuous_twin(model: nn.Module, head_opts: dict | None = None, max_queries: int = 65536) -> nn.Module:
    """Stage-1 twin of a discrete network: its ``forward_features`` (F_D, what its up-sampler sees)
    followed by HIIF-L (eqs. 7-9) instead of its up-sampler, which is removed. The network
    normalises its own input (``ImplicitSR(norm=None)``); state-dict keys ``encoder.*`` + HIIF-L's."""
    from ..layers.coords import ImplicitSR

    if not callable(getattr(model, "forward_features", None)):
        raise LightSRError(f"{type(model).__name__} has no forward_features (F_D before its up-sampler); "
                           "C2D's stage 1 needs one")
    for name in HEAD_MODULES:
        if isinstance(getattr(model, name, None), nn.Module):
            setattr(model, name, None)
    dim = getattr(model, "dim", None)
    if not isinstance(dim, int):  # the width of F_D, read off a tiny probe
        with torch.no_grad():
            dim = int(model.forward_features(torch.zeros(1, 3, 16, 16)).shape[1])
    return ImplicitSR(model, HIIFL(dim, **(head_opts or {})), norm=None, max_queries=int(max_queries))


def _twin_builder(base: str) -> Callable[..., nn.Module]:
    def build(max_queries: int = 65536, head_opts: dict | None = None, **opts) -> nn.Module:
        from .registry import create_model
        return continuous_twin(create_model(base, **opts), head_opts, max_queries)

    build.__doc__ = f"C2D stage 1 for {base}: its body + HIIF-L (eqs. 7-9); continuous scale."
    return build


for _base in TWIN_BASES:
    register_model(f"{_base}_hiif", scales=None, paper=PAPER, family="c2d")(_twin_builder(_base))


def _continuous(ffn: str, head_opts: dict | None = None, max_queries: int = 65536, **opts) -> nn.Module:
    return continuous_twin(c2d_backbone(1, ffn, upsample=None, **opts), head_opts, max_queries)


@register_model("swinir_c2d_hiif", scales=None, paper=PAPER, family="c2d")
def swinir_c2d_hiif(max_queries: int = 65536, **opts) -> nn.Module:
    """SwinIR-C2D stage-1 twin: the same backbone + HIIF-L (eqs. 7-9); continuous scale."""
    return _continuous("mlp", max_queries=max_queries, **opts)


@register_model("srformer_c2d_hiif", scales=None, paper=PAPER, family="c2d")
def srformer_c2d_hiif(max_queries: int = 65536, **opts) -> nn.Module:
    """SRFormer-C2D stage-1 twin: the same backbone + HIIF-L (eqs. 7-9); continuous scale."""
    return _continuous("conv", max_queries=max_queries, **opts)


# ---------------------------------------------------------------------------------------------
# detection: the transformer skeleton (SwinIR, SRFormer, HiT, MambaIRv2, C2D) and the C2D twins
# ---------------------------------------------------------------------------------------------


def _skeleton_scale(s: Shapes, prefix: str) -> int | None:
    if prefix:  # an ImplicitSR twin: no up-sampler
        return None
    return pixel_shuffle_scale(s.out("upsample.0.weight"))


def _hiet_mlp(s: Shapes, attn: str) -> tuple[str, int]:
    """(mlp kind, its input width) of a HiET attention's eq. 3 MLP."""
    if attn + "mlp.linear.weight" in s:
        return "dfe", s.inp(attn + "mlp.linear.weight")
    if attn + "mlp.0.weight" in s:
        return "mlp", s.inp(attn + "mlp.0.weight")
    return "linear", s.inp(attn + "mlp.weight")


def _c2d(s: Shapes, prefix: str) -> list[Guess]:
    """SwinIR-C2D / SRFormer-C2D / MambaIRv2-C2D and their continuous (HIIF-L) twins."""
    rg = prefix + "layers.{}.residual_group."
    lay = rg.format(0) + "layers.0."
    dim = s.out(prefix + "conv_first.weight")
    blocks = s.count(prefix + "layers.{}.conv.weight")
    n_layers = s.count(rg.format(0) + "layers.{}.norm2.weight")
    skips = s.count(rg.format(0) + "fusions.{}.weight")
    mamba = lay + "assm.selectiveScan.A_logs" in s
    name = "mambairv2_c2d" if mamba else ("srformer_c2d" if lay + "ffn.dwconv.depthwise_conv.0.weight" in s
                                          else "swinir_c2d")
    windows = WINDOWS_5 if mamba else WINDOWS_6
    if n_layers != len(windows):
        raise Miss(f"{n_layers} layers per block: their window sizes cannot be read from the weights "
                   f"(name the model and pass --opt windows=[...])")
    mlp, mlp_in = _hiet_mlp(s, lay + "attn.")
    d: dict[str, Any] = {"dim": dim, "blocks": blocks, "layers": n_layers, "skips": skips, "mlp": mlp}
    opts: dict[str, Any] = {"mlp": mlp, "skips": skips}
    if mamba:
        defaults = {"mlp": "dfe", "skips": 1}  # mambairv2.mambairv2_c2d_backbone's
    else:
        attention = "scc" if lay + "attn.scc.proj.weight" in s else "csc"
        hie = mlp_in == dim + 2
        d.update(hie=hie, attention=attention, norm="pre" if lay + "norm1.weight" in s else "post",
                 mlp_ratio=s.out(lay + "ffn.fc1.weight") / dim)
        opts.update(dim=dim, blocks=blocks, hie=hie, attention=attention, norm=d["norm"],
                    mlp_ratio=d["mlp_ratio"])
        if attention == "scc":
            opts["heads"] = d["heads"] = s.out(lay + "attn.scc.pos.pos3.2.weight") \
                if lay + "attn.scc.pos.pos3.2.weight" in s else 6
        defaults = defaults_of(c2d_backbone)
    opts = nondefault(opts, defaults)
    if opts.get("skips") == 0 and not mamba:  # the linear (non-U-Net) block, spelled as its ablation
        del opts["skips"]
        opts["unet"] = False
    if not prefix:
        scale = _skeleton_scale(s, prefix)
        small = [("swinir_c2d_small", scale, {}, d)] if name == "swinir_c2d" and opts == {"blocks": 2} else []
        return [(name, scale, opts, d)] + small  # the same tensors: PREFER reports swinir_c2d, a hint the variant
    head = head_options(s, dim)
    if head:
        opts["head_opts"] = head
    return [(name + "_hiif", None, opts, d)]


@detector("transformer skeleton", *SKELETON)
def _skeleton(s: Shapes) -> list[Guess]:
    if "layers.0.residual_group.fusions.0.weight" in s or "layers.0.residual_group.layers.0.attn.norm.weight" in s:
        return _c2d(s, "")
    return transformer_guess(s)  # models/swinir.py: SwinIR, SRFormer, HiT, MambaIRv2 (light)


@detector("C2D continuous twin (HIIF-L)", *("encoder." + k for k in SKELETON), "fc_layers.0.fc1.weight",
          "attn.0.kln.weight")
def _skeleton_twin(s: Shapes) -> list[Guess]:
    return _c2d(s, "encoder.")


@detector("C2D stage-1 twin of a discrete network (HIIF-L)", "fc_layers.0.fc1.weight", "attn.0.kln.weight")
def _network_twin(s: Shapes) -> list[Guess]:
    """``NAME_hiif`` (``TWIN_BASES``): ``encoder.*`` is NAME's body without its up-sampler. The body's
    own detector reads it, given a stand-in x4 up-sampler weight."""
    body = {k[len("encoder."):]: v for k, v in s.shapes.items() if k.startswith("encoder.")}
    if not body:
        raise Miss("no encoder.* keys")
    dim = s.inp("freq.weight") if "freq.weight" in s else (s.inp("fc_layers.0.fc1.weight") - 4) // 4
    stand_in = (3 * 16, dim, 3, 3)
    b = Shapes({**body, "upsampler.0.weight": stand_in, "upsample.0.weight": stand_in})
    out: list[Guess] = []
    for det in detectors():
        if det.infer in (_network_twin, _skeleton_twin) or not all(k in b for k in det.signature):
            continue
        try:
            guesses = det.infer(b)
        except Miss:
            continue
        for name, _, opts, details in guesses:
            if name in TWIN_BASES:
                head = head_options(s, dim)
                out.append((f"{name}_hiif", None, {**opts, **({"head_opts": head} if head else {})}, details))
    if not out:
        raise Miss("its encoder.* is not the body of a network with a registered twin")
    return out
