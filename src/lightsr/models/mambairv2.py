"""MambaIRv2-light (Guo et al., "MambaIRv2: Attentive State Space Restoration", CVPR 2025) in pure
PyTorch: no ``mamba_ssm`` / ``causal_conv1d``, runs on any device.

Layout (design/architectures.md section 2.4; official ``basicsr/archs/mambairv2light_arch.py``):
the common lightweight skeleton (``layers/skeleton.py``; mirror-concat padding to a multiple of 16)
around 4 ASSB groups of 5 *attentive layers*, C = 48. One attentive layer::

    xw = x + WMSA_16(LN1(x))                 # window MSA, shift 8 on odd layers
    xw = xw + GatedMLP1(LN2(xw))
    x  = s1 * x + xw                         # layer scale on the identity path
    xa = x + ASSM(LN3(x))                    # attentive state space
    x  = s2 * x + xa + GatedMLP2(LN4(xa))

The ASSM (the paper's attentive state-space module; the MambaIRv2 paper is not among the seeds,
so its parts are named, not numbered):

* routing: ``route(x) = LogSoftmax(Linear(GELU(Linear(x))))`` picks one of 64 prompt classes per
  token (one-hot ``pi``);
* prompt pool ``P = E_B E_A`` (64 x 32 times 32 x 8; E_A lives in the layer), prompt ``p = pi P``;
* attentive state-space equation (ASE): the scan's output matrix becomes ``C_t + p_t``::

      h_t = exp(Delta_t A) h_{t-1} + Delta_t B_t x_t,   y_t = (C_t + p_t) h_t + D x_t

* semantic neighbouring: tokens are sorted by class so that same-class tokens are adjacent in the
  1-D scan, and un-sorted afterwards.

Choices made here (documented, measured in results/mambairv2.md):

* **Deterministic inference.** The official forward draws Gumbel noise even at evaluation
  (``F.gumbel_softmax(hard=True)``), so its output changes from run to run. In eval mode this model
  takes the noise-free argmax of the same logits (``route="argmax"``, default); training always
  uses ``gumbel_softmax(hard=True)`` (straight-through), as the official code. ``route="gumbel"``
  restores the official stochastic inference.
* **Stable semantic sort.** The official ``torch.sort(stable=False)`` leaves the order inside a
  class to the device; ``stable_sort=True`` (default) keeps raster order inside each class, the
  same everywhere. This alone moves Set5 by ~0.017 dB (weights/reference/README.md). It sorts the
  tie-free key ``class * L + position``, so any sort (ONNX's TopK too) gives that one order.
* **Prompt order, as official.** The official code adds the prompts in *raster* order to the
  *sorted* sequence (``selectiveScan(semantic_x, prompt)`` without sorting ``prompt``); the
  checkpoint was trained that way, so it is kept: ``C_t += p_{t}`` with t the sorted position.

MambaIRv2-C2D (C2D-ISR, Table 1: 631K / 638K / 647K at x2 / x3 / x4, 40.0 G at x4)
--------------------------------------------------------------------------------------------
Each attentive layer keeps LN1 and its residual form, both GatedMLPs, the ASSM (global, over the
whole sequence), the layer scales and E_A, and swaps the window MSA (``wqkv``, rel-pos table,
``proj``: 13,252 parameters) for the HiET attention of ``c2d.HiETAttention`` (eqs. 2-6: HE bits
of the layer's own window, MLP, Q/V = the two C/2 halves, CSC, Linear(C/2 -> C) + LN). Four HiET
U-Net blocks (eq. 1, ``c2d.HiETBlock``) of 5 layers with windows [64, 32, 8, 32, 64] (encoder
3 layers, decoder 2); no global padding (each HiET attention pads to its window).

Chosen: **HiT's DFE as the eq. 3 MLP and one 1x1 skip fusion per block** (the outermost,
Conv1x1([d1, e0]) before the last 64-window layer), the same design ``c2d.py`` chose for
SwinIR-/SRFormer-C2D, so the three C2D models share one HiET definition: 641,516 / 648,011 /
657,104 params (x2 / x3 / x4, +1.6 %), 38.66 G MACs at x4 (-3.3 %). The 9 MLP x fusion
combinations counted and why the others were rejected: results/mambairv2.md, "Design notes".
Options: ``mlp`` (linear | mlp | dfe), ``skips`` (0..2), ``windows``, ``route``, ``stable_sort``,
``scan_impl``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers.attention import WindowAttention
from ..layers.conv import DepthwiseConv2d
from ..layers.scan import selective_scan
from ..layers.skeleton import LightweightSR, init_transformer_weights, tokens_to_map
from ..layers.window import shifted_window_mask, window_partition, window_reverse
from .c2d import WINDOWS_5, c2d_traits
from .registry import Published, Traits, register_model

PAPER = "MambaIRv2: Attentive State Space Restoration (Guo et al., CVPR 2025)"


class Gate(nn.Module):
    """Spatial gate of the GatedMLP: ``x1 * DWConv5x5(LN(x2))`` on the two channel halves."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.conv = DepthwiseConv2d(dim, 5)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        x1, x2 = x.chunk(2, dim=-1)
        x2 = self.conv(tokens_to_map(self.norm(x2), size)).flatten(2).transpose(1, 2)
        return x1 * x2


class GatedMLP(nn.Module):
    """fc1 -> GELU -> Gate -> fc2 (hidden h, gate on h/2 channels)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.sg = Gate(hidden // 2)
        self.fc2 = nn.Linear(hidden // 2, dim)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        return self.fc2(self.sg(self.act(self.fc1(x)), size))


class SelectiveScan(nn.Module):
    """S6 parameters of a single-direction scan (K = 1), official key names:
    ``x_proj_weight`` (1, r + 2n, d), ``dt_projs_weight`` (1, d, r), ``dt_projs_bias`` (1, d),
    ``A_logs`` (d, n), ``Ds`` (d,)."""

    def __init__(self, d_inner: int, d_state: int, dt_min: float = 1e-3, dt_max: float = 0.1,
                 dt_floor: float = 1e-4, impl: str = "auto"):
        super().__init__()
        self.d_inner, self.d_state, self.impl = d_inner, d_state, impl
        self.dt_rank = math.ceil(d_inner / 16)
        r, n = self.dt_rank, d_state
        bound = 1 / math.sqrt(d_inner)
        self.x_proj_weight = nn.Parameter(torch.empty(1, r + 2 * n, d_inner).uniform_(-bound, bound))
        std = r ** -0.5
        self.dt_projs_weight = nn.Parameter(torch.empty(1, d_inner, r).uniform_(-std, std))
        # dt bias: softplus(bias) log-uniform in [dt_min, dt_max] (Mamba's init)
        dt = torch.exp(torch.rand(d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_floor)
        self.dt_projs_bias = nn.Parameter((dt + torch.log(-torch.expm1(-dt))).unsqueeze(0))
        # S4D-real init: A = -(1..n) per channel
        self.A_logs = nn.Parameter(torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(d_inner, 1))
        self.Ds = nn.Parameter(torch.ones(d_inner))

    def forward(self, x: Tensor, prompt: Tensor) -> Tensor:
        """x: (B, L, d) sequence; prompt: (B, L, n) added to C (the ASE). Returns (B, L, d)."""
        u = x.transpose(1, 2).float()                                     # (B, d, L)
        r, n = self.dt_rank, self.d_state
        dbl = torch.einsum("bdl,cd->bcl", u, self.x_proj_weight[0])      # (B, r + 2n, L)
        dt, Bs, Cs = torch.split(dbl, [r, n, n], dim=1)
        dt = torch.einsum("brl,dr->bdl", dt, self.dt_projs_weight[0])    # Delta before softplus
        Cs = Cs + prompt.transpose(1, 2).float()                          # attentive C_t + p_t
        A = -torch.exp(self.A_logs.float())
        y = selective_scan(u, dt, A, Bs, Cs, self.Ds.float(), self.dt_projs_bias[0].float(),
                           delta_softplus=True, impl=self.impl)
        return y.transpose(1, 2)


def inverse_permutation(index: Tensor) -> Tensor:
    """For (B, L) permutations ``index``, the permutations that undo them."""
    inv = torch.empty_like(index)
    return inv.scatter_(-1, index, torch.arange(index.shape[-1], device=index.device).expand_as(index))


def semantic_order(cls: Tensor, stable: bool = True) -> Tensor:
    """Permutation (B, L) putting same-class tokens next to each other; with ``stable``, raster order
    inside a class, by sorting the unique key ``cls * L + position`` (exportable: no stable flag)."""
    if not stable:
        return torch.sort(cls, dim=-1).indices
    pos = torch.arange(cls.shape[-1], device=cls.device)
    return torch.sort(cls * cls.shape[-1] + pos, dim=-1).indices


def gather_tokens(x: Tensor, index: Tensor) -> Tensor:
    """x: (B, L, C) reordered along L by index (B, L)."""
    return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class ASSM(nn.Module):
    """Attentive state-space module: routing, prompt pool, semantic sort, scan."""

    def __init__(self, dim: int, d_state: int = 8, num_tokens: int = 64, inner_rank: int = 32,
                 mlp_ratio: float = 1.0, route: str = "argmax", stable_sort: bool = True,
                 scan_impl: str = "auto"):
        super().__init__()
        if route not in ("argmax", "gumbel"):
            raise ValueError(f"route must be 'argmax' or 'gumbel', not {route!r}")
        hidden = int(dim * mlp_ratio)
        self.d_state, self.route_mode, self.stable_sort = d_state, route, stable_sort
        self.selectiveScan = SelectiveScan(hidden, d_state, impl=scan_impl)
        self.out_norm = nn.LayerNorm(hidden)
        self.out_proj = nn.Linear(hidden, dim)
        self.in_proj = nn.Sequential(nn.Conv2d(dim, hidden, 1))
        self.CPE = nn.Sequential(DepthwiseConv2d(hidden, 3))
        self.embeddingB = nn.Embedding(num_tokens, inner_rank)
        nn.init.uniform_(self.embeddingB.weight, -1 / num_tokens, 1 / num_tokens)
        self.route = nn.Sequential(nn.Linear(dim, dim // 3), nn.GELU(), nn.Linear(dim // 3, num_tokens),
                                   nn.LogSoftmax(dim=-1))

    def classify(self, x: Tensor, pool: Tensor) -> tuple[Tensor, Tensor]:
        """Class index (B, L) and prompt (B, L, n) per token; one-hot pi through the pool P."""
        logits = self.route(x)
        if self.training or self.route_mode == "gumbel":
            onehot = F.gumbel_softmax(logits, hard=True, dim=-1)           # straight-through
            return onehot.detach().argmax(-1), onehot @ pool
        cls = logits.argmax(-1)                                             # noise-free route
        return cls, pool[cls]                                               # = onehot(cls) @ P

    def forward(self, x: Tensor, size: tuple[int, int], embedding_a: nn.Embedding) -> Tensor:
        pool = self.embeddingB.weight @ embedding_a.weight                  # P = E_B E_A (64, n)
        cls, prompt = self.classify(x, pool)
        order = semantic_order(cls, self.stable_sort)                       # semantic neighbours
        f = self.in_proj(tokens_to_map(x, size))
        f = (f * torch.sigmoid(self.CPE(f))).flatten(2).transpose(1, 2)     # (B, L, hidden)
        y = self.selectiveScan(gather_tokens(f, order), prompt)            # prompt in raster order
        y = self.out_proj(self.out_norm(y))
        return gather_tokens(y, inverse_permutation(order))


class AttentiveLayer(nn.Module):
    """Window MSA + GatedMLP, then ASSM + GatedMLP, each half with a layer-scaled identity."""

    def __init__(self, dim: int = 48, heads: int = 4, window: int = 16, shift: int = 0,
                 d_state: int = 8, inner_rank: int = 32, num_tokens: int = 64, mlp_ratio: float = 1.0,
                 window_msa: bool = True, **assm_opts):
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1, self.norm2, self.norm3, self.norm4 = (nn.LayerNorm(dim) for _ in range(4))
        self.scale1 = nn.Parameter(1e-4 * torch.ones(dim))
        self.scale2 = nn.Parameter(1e-4 * torch.ones(dim))
        if window_msa:  # C2D replaces it (HiETAttentiveLayer)
            self.wqkv = nn.Linear(dim, 3 * dim)
            self.win_mhsa = WindowAttention(dim, window, heads, qkv=False)
        self.assm = ASSM(dim, d_state, num_tokens, inner_rank, mlp_ratio, **assm_opts)
        hidden = int(dim * mlp_ratio)
        self.convffn1 = GatedMLP(dim, hidden)
        self.convffn2 = GatedMLP(dim, hidden)
        self.embeddingA = nn.Embedding(inner_rank, d_state)
        nn.init.uniform_(self.embeddingA.weight, -1 / inner_rank, 1 / inner_rank)

    def attention(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        """(Shifted) window MSA on LN1(x); H, W are multiples of the window (global padding)."""
        h, w = size
        b, _, c = x.shape
        ws, s = self.window, self.shift
        qkv = self.wqkv(x).view(b, h, w, 3 * c)
        mask = None
        if s:
            qkv = torch.roll(qkv, (-s, -s), dims=(1, 2))
            mask = shifted_window_mask(h, w, (ws, ws), (s, s)).to(x.device, x.dtype)
        out = window_reverse(self.win_mhsa(window_partition(qkv, ws), mask), ws, h, w)
        if s:
            out = torch.roll(out, (s, s), dims=(1, 2))
        return out.reshape(b, h * w, c)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        xw = x + self.attention(self.norm1(x), size)
        xw = xw + self.convffn1(self.norm2(xw), size)
        x = x * self.scale1 + xw
        xa = x + self.assm(self.norm3(x), size, self.embeddingA)
        return x * self.scale2 + xa + self.convffn2(self.norm4(xa), size)


class HiETAttentiveLayer(AttentiveLayer):
    """MambaIRv2-C2D layer: the attentive layer with its window MSA (``wqkv``, rel-pos table,
    ``proj``) replaced by C2D's HiET attention (C2D-ISR eqs. 2-6, ``c2d.HiETAttention``, keys
    ``attn.*``); LN1, the residual form, GatedMLPs, ASSM (global, sequence-wide), layer scales and
    E_A are unchanged (design/architectures.md section 4.4)."""

    def __init__(self, dim: int = 48, window: int = 64, mlp: str = "dfe", **layer_opts):
        from .c2d import HiETAttention

        super().__init__(dim=dim, window=window, window_msa=False, **layer_opts)
        self.attn = HiETAttention(dim, window, mlp=mlp)

    def attention(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        b, n, c = x.shape
        return self.attn(x.reshape(b, size[0], size[1], c)).reshape(b, n, c)


class AttentiveLayers(nn.Module):
    """The body of one ASSB (``residual_group``): ``depth`` attentive layers, shift on odd ones."""

    def __init__(self, depth: int = 5, window: int = 16, **layer_opts):
        super().__init__()
        self.layers = nn.ModuleList(
            AttentiveLayer(window=window, shift=0 if i % 2 == 0 else window // 2, **layer_opts)
            for i in range(depth))

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        for layer in self.layers:
            x = layer(x, size)
        return x


def _check(scale: int | None = None, route: str = "argmax", scan_impl: str = "auto") -> None:
    from ..errors import LightSRError
    from ..layers.scan import IMPLS

    if scale is not None and scale not in (2, 3, 4):
        raise LightSRError(f"MambaIRv2 supports scales x2, x3, x4, not x{scale}")
    if route not in ("argmax", "gumbel"):
        raise LightSRError(f"MambaIRv2 option route={route!r} is not one of argmax, gumbel")
    if scan_impl not in IMPLS:
        raise LightSRError(f"MambaIRv2 option scan_impl={scan_impl!r} is not one of {', '.join(IMPLS)}")


@register_model("mambairv2_light", scales=(2, 3, 4), paper=PAPER, family="mambairv2", published={
    4: Published(  # NTIRE 2025 ESR, team40
        "https://github.com/Amazingren/NTIRE2025_ESR/raw/b69fb668c0362deb696eecbfdebfaa5c2fcdfcb4/"
        "model_zoo/team40_mambairv2light.pth", "3e80def799232727ff0663f2b922135ba7d377699ad7b527862256f402414317",
        "MIT", {"Set5": (32.5099, 0.8989), "Set14": (28.8940, 0.7888)},
        "the builder's defaults: noise-free argmax route, stable sort")},
    traits=Traits(window_multiple=16))  # window attention (16) and a state-space scan: tiling approximate
def mambairv2_light(scale: int = 4, route: str = "argmax", stable_sort: bool = True,
                    scan_impl: str = "auto") -> nn.Module:
    """MambaIRv2-light: 4 ASSB x 5 attentive layers, C 48, window 16, d_state 8 (790K at x4)."""
    _check(scale, route, scan_impl)
    opts = dict(dim=48, heads=4, d_state=8, inner_rank=32, num_tokens=64, mlp_ratio=1.0,
                route=route, stable_sort=bool(stable_sort), scan_impl=scan_impl)
    bodies = [AttentiveLayers(depth=5, window=16, **opts) for _ in range(4)]
    model = LightweightSR(bodies, dim=48, scale=scale, pad_multiple=16, pad_mode="symmetric")
    init_transformer_weights(model)
    return model


C2D_WINDOWS = WINDOWS_5  # (64, 32, 8, 32, 64), C2D-ISR Table 1


def mambairv2_c2d_backbone(scale: int, *, windows=C2D_WINDOWS, skips: int | None = 1,
                           mlp: str = "dfe", route: str = "argmax", stable_sort: bool = True,
                           scan_impl: str = "auto", upsample: nn.Module | str | None = "pixelshuffledirect"
                           ) -> LightweightSR:
    """4 HiET U-Net blocks (eq. 1) of HiET attentive layers in the MambaIRv2 skeleton, C = 48."""
    from ..errors import LightSRError
    from .c2d import HiETBlock

    _check(None, route, scan_impl)
    if not isinstance(windows, (list, tuple)) or not all(isinstance(w, int) and w >= 1 for w in windows):
        raise LightSRError(f"mambairv2_c2d option windows must be a list of positive integers, not {windows!r}")
    if mlp not in ("linear", "mlp", "dfe"):
        raise LightSRError(f"mambairv2_c2d option mlp={mlp!r} is not one of linear, mlp, dfe")
    depth = (len(windows) - 1) // 2
    if skips is not None and not (isinstance(skips, int) and 0 <= skips <= depth):
        raise LightSRError(f"mambairv2_c2d option skips must be an integer in [0, {depth}], not {skips!r}")
    opts = dict(dim=48, d_state=8, inner_rank=32, num_tokens=64, mlp_ratio=1.0, mlp=mlp, route=route,
                stable_sort=bool(stable_sort), scan_impl=scan_impl)

    def factory(i: int, w: int) -> nn.Module:
        return HiETAttentiveLayer(window=w, **opts)

    bodies = [HiETBlock(48, windows, factory, skips=skips) for _ in range(4)]
    # no global padding: each HiET attention pads to its own window, the ASSM is global
    model = LightweightSR(bodies, dim=48, scale=scale, pad_multiple=1, upsample=upsample)
    init_transformer_weights(model)
    return model


@register_model("mambairv2_c2d", scales=(2, 3, 4), paper=PAPER, family="c2d", traits=c2d_traits)
def mambairv2_c2d(scale: int = 4, **opts) -> nn.Module:
    """MambaIRv2-C2D (C2D-ISR Table 1): 4 U-Net blocks [64,32,8,32,64] of HiET attentive layers."""
    _check(scale)
    return mambairv2_c2d_backbone(scale, **opts)


@register_model("mambairv2_c2d_hiif", scales=None, paper=PAPER, family="c2d")
def mambairv2_c2d_hiif(max_queries: int = 65536, head_opts: dict | None = None, **opts) -> nn.Module:
    """MambaIRv2-C2D stage-1 twin: the same backbone + HIIF-L (C2D-ISR eqs. 7-9); continuous scale.
    Stage 2 copies its backbone into ``mambairv2_c2d`` through ``c2d.stage1_body`` (eq. 10)."""
    from .c2d import continuous_twin

    return continuous_twin(mambairv2_c2d_backbone(1, upsample=None, **opts), head_opts, max_queries)
