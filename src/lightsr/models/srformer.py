"""SRFormer-light (Zhou et al., ICCV 2023), exact to ``HVision-NKU/SRFormer`` ``srformer_arch.py`` with
``train_SRFormer_light_SRx4_scratch.yml`` (C = 60, 4 groups x 6 PSA blocks, 6 heads, window 16,
shift 8 on odd blocks, mlp_ratio 2 with ConvFFN, pixelshuffledirect).

Permuted self-attention (PSA, :class:`~lightsr.layers.attention.PermutedSelfAttention`): queries of a
16x16 window attend to 8x8 keys/values made by folding each 2x2 pixel group's C/4 channels into one
C-wide token. Blocks are SwinIR's :class:`~lightsr.models.swinir.SwinBlock` with ``permuted=True``.
Keys: ``layers.{i}.residual_group.blocks.{j}.{norm1,attn.{q,kv,proj,relative_position_bias_table},
norm2,mlp.{fc1,dwconv.depthwise_conv.0,fc2}}``. Parameters: 872,748 (x4), 861,387 (x3), 853,272 (x2).
"""
from __future__ import annotations

from torch import nn

from ..layers.skeleton import LightweightSR, init_transformer_weights
from .registry import Traits, register_model
from .swinir import swin_groups


class SRFormer(LightweightSR):
    """SRFormer with the lightweight head; reflect-pads the input to a multiple of the window."""

    def __init__(self, scale: int = 4, dim: int = 60, depths: tuple[int, ...] = (6, 6, 6, 6),
                 heads: int = 6, window: int = 16, mlp_ratio: float = 2.0, drop_path_rate: float = 0.1):
        groups = swin_groups(dim, depths, heads, window, mlp_ratio, drop_path_rate,
                             ffn="conv", permuted=True)
        super().__init__(groups, dim, scale, pad_multiple=window)
        init_transformer_weights(self)


@register_model("srformer_light", paper="SRFormer (Zhou et al., ICCV 2023), lightweight SR",
                family="transformer", traits=Traits(window_multiple=16))  # permuted window attention
def srformer_light(scale: int = 4, drop_path_rate: float = 0.1) -> nn.Module:
    """SRFormer-light: 4x6 permuted-self-attention blocks, C=60, window 16 (873K params at x4)."""
    return SRFormer(scale, drop_path_rate=drop_path_rate)
