"""The common lightweight-SR skeleton (SwinIR-light, SRFormer-light, HiT-*, MambaIRv2-light, C2D).

Written once, used by every token-based lightweight model (design/architectures.md section 1)::

    x  = (img - mean) * img_range                          # DIV2K RGB mean, img_range 1
    x  = pad(x)                                            # model-specific global padding (may be none)
    f0 = conv_first(x)                                     # Conv3x3 3 -> C        (shallow features)
    t  = patch_embed(f0)                                   # (B, HW, C) + LayerNorm
    t  = layers[i](t, size) for each residual group        # t + conv(unembed(residual_group(t)))
    fD = conv_after_body(unembed(norm(t))) + f0            # long skip             (deep features F_D)
    y  = upsample(fD) / img_range + mean, cropped to (sH, sW)

State-dict keys follow the official code: ``conv_first``, ``patch_embed.norm``,
``layers.{i}.residual_group.<body>``, ``layers.{i}.conv``, ``norm``, ``conv_after_body``,
``upsample.0``. A model supplies only its residual-group bodies (a module ``body(tokens, (h, w)) ->
tokens``); wrap each in :class:`ResidualGroup` (or pass the bodies and let :class:`LightweightSR`
wrap them).

Example::

    bodies = [MyLayers(dim=60, depth=6) for _ in range(4)]        # keys .blocks.{j} / .layers.{j}
    model = LightweightSR(bodies, dim=60, scale=4, pad_multiple=8)
    feats = model.forward_features(img)     # (B, 60, H, W): what an (arbitrary-scale) head sees
    sr = model(img)                          # (B, 3, 4H, 4W)
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from .upsample import UpsampleOneStep
from .window import pad_to_multiple

DIV2K_MEAN = (0.4488, 0.4371, 0.4040)


def tokens_to_map(x: Tensor, size: tuple[int, int]) -> Tensor:
    """(B, HW, C) -> (B, C, H, W) (SwinIR's PatchUnEmbed)."""
    b, _, c = x.shape
    return x.transpose(1, 2).reshape(b, c, size[0], size[1])


def map_to_tokens(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, HW, C) (SwinIR's PatchEmbed without norm)."""
    return x.flatten(2).transpose(1, 2)


class DropPath(nn.Module):
    """Stochastic depth per sample (timm's ``DropPath``); identity in eval mode or at rate 0."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def drop_path_rates(rate: float, depths: Sequence[int]) -> list[list[float]]:
    """SwinIR's linearly increasing stochastic-depth rates, split per residual group."""
    total = sum(depths)
    rates = [rate * i / (total - 1) if total > 1 else 0.0 for i in range(total)]
    out, start = [], 0
    for d in depths:
        out.append(rates[start:start + d])
        start += d
    return out


class PatchEmbed(nn.Module):
    """(B, C, H, W) -> (B, HW, C), then LayerNorm (``patch_embed.norm``; patch size 1)."""

    def __init__(self, dim: int, norm: bool = True):
        super().__init__()
        self.norm = nn.LayerNorm(dim) if norm else None

    def forward(self, x: Tensor) -> Tensor:
        x = map_to_tokens(x)
        return self.norm(x) if self.norm is not None else x


class BlockStack(nn.Module):
    """A residual group's body: ``blocks.{j}`` applied in turn, each ``block(tokens, size)``
    (SwinIR/SRFormer/HiT ``BasicLayer``)."""

    def __init__(self, blocks: Sequence[nn.Module]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        for block in self.blocks:
            x = block(x, size)
        return x


class ResidualGroup(nn.Module):
    """RSTB / PSA_Group / RHTB / ASSB: ``x + conv3x3(unembed(residual_group(x, size)))``.

    ``body(tokens (B, HW, C), size (h, w)) -> tokens`` is the model's stack of layers; its keys
    appear under ``residual_group.`` exactly as in the official code.
    """

    def __init__(self, body: nn.Module, dim: int):
        super().__init__()
        self.residual_group = body
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        return x + map_to_tokens(self.conv(tokens_to_map(self.residual_group(x, size), size)))


def init_transformer_weights(model: nn.Module) -> nn.Module:
    """The official initialisation: Linear trunc_normal(0.02) / bias 0, LayerNorm 1 / 0."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


class LightweightSR(nn.Module):
    """The shared outer pipeline of section 1; see the module docstring.

    Args:
        groups: residual-group bodies (wrapped in :class:`ResidualGroup`) or ready
            :class:`ResidualGroup` modules; any module ``(tokens, size) -> tokens`` works.
        dim: embedding width C.
        scale: up-scaling factor.
        pad_multiple: global bottom/right padding to a multiple (SwinIR/SRFormer: the window;
            MambaIRv2: 16; HiT: 1 = none, it pads per layer). An int or an (mh, mw) pair.
        pad_mode: ``reflect`` (SwinIR/SRFormer) or ``symmetric`` (MambaIRv2's flip-concat).
            Both work for any pad size (images smaller than a window).
        upsample: ``"pixelshuffledirect"`` (default; Conv3x3 C -> 3 s^2 + PixelShuffle), or a
            module mapping F_D (B, C, H, W) to the normalised output, or ``None`` for no head
            (feature extractors of arbitrary-scale models).
    """

    def __init__(self, groups: Sequence[nn.Module], dim: int, scale: int, *, in_ch: int = 3,
                 pad_multiple: int | tuple[int, int] = 1, pad_mode: str = "reflect",
                 upsample: nn.Module | str | None = "pixelshuffledirect", img_range: float = 1.0,
                 mean: Sequence[float] = DIV2K_MEAN):
        super().__init__()
        self.scale = scale
        self.dim = dim
        self.img_range = img_range
        self.pad_multiple = pad_multiple
        self.pad_mode = pad_mode
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, in_ch, 1, 1),
                             persistent=False)
        self.conv_first = nn.Conv2d(in_ch, dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(dim)
        self.layers = nn.ModuleList(g if isinstance(g, ResidualGroup) else ResidualGroup(g, dim)
                                    for g in groups)
        self.norm = nn.LayerNorm(dim)
        self.conv_after_body = nn.Conv2d(dim, dim, 3, 1, 1)
        if upsample == "pixelshuffledirect":
            upsample = UpsampleOneStep(scale, dim, in_ch)
        elif isinstance(upsample, str):
            raise ValueError(f"unknown upsampler {upsample!r}")
        self.upsample = upsample

    # -- pieces ------------------------------------------------------------------------------
    def normalize(self, x: Tensor) -> Tensor:
        return (x - self.mean.to(x.dtype)) * self.img_range

    def denormalize(self, y: Tensor) -> Tensor:
        return y / self.img_range + self.mean.to(y.dtype)

    def pad(self, x: Tensor) -> Tensor:
        return pad_to_multiple(x, self.pad_multiple, self.pad_mode) if self.pad_multiple != 1 else x

    def forward_body(self, f0: Tensor) -> Tensor:
        """Residual groups + norm + conv_after_body + long skip on shallow features f0 (B, C, H, W)."""
        size = (f0.shape[-2], f0.shape[-1])
        t = self.patch_embed(f0)
        for layer in self.layers:
            t = layer(t, size)
        return self.conv_after_body(tokens_to_map(self.norm(t), size)) + f0

    # -- public ------------------------------------------------------------------------------
    def forward_features(self, x: Tensor, crop: bool = True) -> Tensor:
        """Deep features F_D (B, C, H, W) of RGB x in [0, 1]: what the up-sampler sees.

        ``crop=False`` keeps the globally padded size (the official heads run on it).
        """
        h, w = x.shape[-2:]
        f = self.forward_body(self.conv_first(self.pad(self.normalize(x))))
        return f[..., :h, :w] if crop else f

    def forward(self, x: Tensor) -> Tensor:
        if self.upsample is None:
            raise RuntimeError("this model has no up-sampler; use forward_features")
        h, w = x.shape[-2:]
        y = self.denormalize(self.upsample(self.forward_features(x, crop=False)))
        return y[..., :h * self.scale, :w * self.scale]
