"""SwinIR-light (Liang et al., ICCV-W 2021), exact to ``JingyunLiang/SwinIR`` ``network_swinir.py``
(task ``lightweight_sr``: C = 60, 4 RSTB x 6 STB, 6 heads, window 8, mlp_ratio 2, pixelshuffledirect).

The shifted-window block :class:`SwinBlock` is written once here and reused by SRFormer-light
(``permuted=True``: PSA instead of W-MSA, ConvFFN). Keys follow the official code
(``layers.{i}.residual_group.blocks.{j}.{norm1,attn.{qkv,proj,relative_position_bias_table},norm2,mlp.fc1,mlp.fc2}``).
Parameters: 929,628 (x4), 918,267 (x3), 910,152 (x2).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..layers.attention import (PermutedSelfAttention, WindowAttention, cached_table,
                                permuted_window_mask)
from ..layers.ffn import make_ffn
from ..layers.skeleton import BlockStack, DropPath, LightweightSR, drop_path_rates, init_transformer_weights
from ..layers.window import shifted_window_mask, window_partition, window_reverse
from .detect import Guess, Miss, Shapes, pixel_shuffle_scale
from .registry import Traits, register_model


class SwinBlock(nn.Module):
    """Pre-norm (shifted-)window transformer block (SwinIR's STB; SRFormer's PSA block)::

        x = x + DropPath(unshift(reverse(Attn(partition(shift(LN1(x)))))))   # W-MSA / SW-MSA
        x = x + DropPath(FFN(LN2(x)))

    Attn is Swin's window MSA with a relative-position bias, or SRFormer's permuted
    self-attention (``permuted=True``: N queries vs N/4 folded keys). Odd blocks shift by
    ``shift`` with the -100 region mask (cached per feature size in eval).
    """

    def __init__(self, dim: int, heads: int, window: int, shift: int = 0, mlp_ratio: float = 2.0,
                 ffn: str = "mlp", permuted: bool = False, drop_path: float = 0.0):
        super().__init__()
        self.window, self.shift, self.permuted = window, shift, permuted
        self.norm1 = nn.LayerNorm(dim)
        self.attn = (PermutedSelfAttention if permuted else WindowAttention)(dim, window, heads)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = make_ffn(ffn, dim, int(dim * mlp_ratio))

    def mask(self, h: int, w: int, device) -> tuple[int, Tensor, Tensor, Tensor] | None:
        """For the shifted windows of an (h, w) map: the window count, the indices of the windows
        the mask leaves alone (all but the last window row and column), of those it touches, and
        their (n_touched, N, M) mask; cached per size."""
        if not self.shift:
            return None
        make = permuted_window_mask if self.permuted else shifted_window_mask
        win, shift = (self.window, self.window), (self.shift, self.shift)

        def build():
            mask = make(h, w, win, shift).to(device)
            masked = mask.flatten(1).ne(0).any(1)
            return mask.shape[0], (~masked).nonzero().flatten(), masked.nonzero().flatten(), mask[masked]

        return cached_table(self, ("mask", h, w, device), build)

    def attend(self, windows: Tensor, h: int, w: int) -> Tensor:
        """Attention in every window; with a shift, only the windows the mask touches get it, the
        others (the vast majority) take the mask-free fast path. Same result as masking all."""
        table = self.mask(h, w, windows.device)
        if table is None:
            return self.attn(windows, None)
        nw, inner, border, mask = table
        n, c = windows.shape[1:]
        x = windows.view(-1, nw, n, c)
        out = torch.empty_like(x)
        for idx, m in ((inner, None), (border, mask)):
            if idx.numel():
                y = self.attn(x.index_select(1, idx).reshape(-1, n, c), m)
                out.index_copy_(1, idx, y.view(x.shape[0], -1, n, c))
        return out.view(-1, n, c)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        (h, w), (b, _, c) = size, x.shape
        s = self.shift
        y = self.norm1(x).view(b, h, w, c)
        if s:
            y = y.roll((-s, -s), dims=(1, 2))
        y = window_reverse(self.attend(window_partition(y, self.window), h, w), self.window, h, w)
        if s:
            y = y.roll((s, s), dims=(1, 2))
        x = x + self.drop_path(y.reshape(b, h * w, c))
        return x + self.drop_path(self.mlp(self.norm2(x), size))


def swin_groups(dim: int, depths: tuple[int, ...], heads: int, window: int, mlp_ratio: float,
                drop_path_rate: float, ffn: str = "mlp", permuted: bool = False) -> list[BlockStack]:
    """Residual-group bodies of alternating W-MSA / SW-MSA blocks (shift = window / 2 on odd blocks)."""
    return [BlockStack([SwinBlock(dim, heads, window, 0 if j % 2 == 0 else window // 2, mlp_ratio,
                                  ffn, permuted, dp) for j, dp in enumerate(rates)])
            for rates in drop_path_rates(drop_path_rate, depths)]


class SwinIR(LightweightSR):
    """SwinIR with the lightweight head; reflect-pads the input to a multiple of the window."""

    def __init__(self, scale: int = 4, dim: int = 60, depths: tuple[int, ...] = (6, 6, 6, 6),
                 heads: int = 6, window: int = 8, mlp_ratio: float = 2.0, drop_path_rate: float = 0.1):
        groups = swin_groups(dim, depths, heads, window, mlp_ratio, drop_path_rate)
        super().__init__(groups, dim, scale, pad_multiple=window)
        init_transformer_weights(self)


@register_model("swinir_light", paper="SwinIR (Liang et al., ICCV-W 2021), lightweight SR",
                family="transformer", traits=Traits(window_multiple=8))  # window attention
def swinir_light(scale: int = 4, drop_path_rate: float = 0.1) -> nn.Module:
    """SwinIR-light: 4x6 Swin blocks, C=60, window 8 (930K params at x4)."""
    return SwinIR(scale, drop_path_rate=drop_path_rate)


# the lightweight transformer skeleton (layers/skeleton.py) shared by SwinIR, SRFormer, HiT, MambaIRv2 and
# C2D: the keys that identify it. Its detector is models/c2d.py's (a C2D body, else transformer_guess).
SKELETON = ("conv_first.weight", "patch_embed.norm.weight", "layers.0.conv.weight", "conv_after_body.weight")


def transformer_guess(s: Shapes) -> list[Guess]:
    """SwinIR-light, SRFormer-light, HiT-SIR/SRF/SNG, MambaIRv2-light: told apart by the block keys;
    their builders take no shape options (a checkpoint of another width fails verification)."""
    blk = "layers.0.residual_group.blocks.0."
    scale = pixel_shuffle_scale(s.out("upsample.0.weight"))
    body = "layers.0.residual_group." + ("blocks" if blk + "norm1.weight" in s else "layers")
    d = {"dim": s.out("conv_first.weight"), "groups": s.count("layers.{}.conv.weight"),
         "blocks": s.count(body + ".{}.norm1.weight")}
    if blk + "attn.qkv.weight" in s:
        name = "swinir_light"
    elif blk + "attn.kv.weight" in s:
        name = "srformer_light"
    elif blk + "correlation.ngram_window_partition.ngram_context.merge.weight" in s:
        name = "hit_sng"
    elif blk + "correlation.qv.linear.weight" in s:
        name = "hit_srf" if blk + "mlp.dwconv.depthwise_conv.0.weight" in s else "hit_sir"
    elif "layers.0.residual_group.layers.0.wqkv.weight" in s:
        name = "mambairv2_light"
    else:
        raise Miss(f"unknown transformer block (no {blk}attn.* / correlation.*)")
    return [(name, scale, {}, d)]
