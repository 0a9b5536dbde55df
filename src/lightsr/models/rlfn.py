"""RLFN-S: Residual Local Feature Network for Efficient Super-Resolution
(Kong, Li, He, Liu, Xu, et al.; CVPRW 2022, NTIRE 2022 efficient SR runtime-track winner).

Official architecture: ofsoundof/NTIRE2022_ESR ``models/team04_rlfn.py`` (``RLFN_cut``), the small
variant: 46 feature channels, 48 mid channels, 4 RLFBs, ESA with 16 channels.

LR -> conv3x3 (3 -> 46) -> 4 x RLFB -> conv3x3 -> + shallow features -> conv3x3 (46 -> 3 s^2) ->
PixelShuffle(s). No mean shift, but the challenge network was trained on pixel values in
[0, 255] (``data_range = 255.0`` for team 04 in the challenge's ``test_demo.py``): the model takes
[0, 1] like every lightsr model and multiplies by ``img_range`` = 255 inside (ESA's sigmoid makes
the network not scale-equivariant, so this matters: with [0, 1] input Set5 x4 drops to 25.5 dB). Parameters: x4 317,218 (= the challenge
checkpoint); x3 307,420; x2 300,418.
"""
from __future__ import annotations

import torch
from torch import nn

from ..layers.conv import ESA, ESA_MIN_SIZE, conv_layer, pad_min_size
from ..layers.upsample import UpsampleOneStep
from .detect import Guess, Shapes, detector, one_step
from .registry import Published, Traits, register_model


class RLFB(nn.Module):
    """Residual local feature block (RLFN Fig. 2): three conv3x3 + LeakyReLU(0.05) with a local
    residual, then conv1x1 and ESA (no residual after ESA)."""

    def __init__(self, channels: int = 46, mid_channels: int = 48, esa_channels: int = 16):
        super().__init__()
        self.c1_r = conv_layer(channels, mid_channels, 3)
        self.c2_r = conv_layer(mid_channels, mid_channels, 3)
        self.c3_r = conv_layer(mid_channels, channels, 3)
        self.c5 = conv_layer(channels, channels, 1)
        self.esa = ESA(esa_channels, channels)
        self.act = nn.LeakyReLU(0.05, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.c1_r(x))
        out = self.act(self.c2_r(out))
        out = self.act(self.c3_r(out))
        return self.esa(self.c5(out + x))


class RLFN(nn.Module):
    def __init__(self, scale: int = 4, channels: int = 46, mid_channels: int = 48, num_blocks: int = 4,
                 esa_channels: int = 16, img_range: float = 255.0):
        super().__init__()
        self.scale = scale
        self.img_range = img_range
        self.num_blocks = num_blocks
        self.fea_conv = conv_layer(3, channels, 3)
        for i in range(1, num_blocks + 1):  # official names B1..B4
            self.add_module(f"B{i}", RLFB(channels, mid_channels, esa_channels))
        self.LR_conv = conv_layer(channels, channels, 3)
        self.upsampler = UpsampleOneStep(scale, channels, 3)

    def forward_features(self, x: torch.Tensor, crop: bool = True) -> torch.Tensor:
        """F_D: what the up-sampler sees (``crop=False`` keeps the padding of images under 15 px)."""
        h, w = x.shape[-2:]
        x = pad_min_size(x, ESA_MIN_SIZE) * self.img_range  # only images under 15 px are padded
        fea = self.fea_conv(x)
        out = fea
        for i in range(1, self.num_blocks + 1):
            out = getattr(self, f"B{i}")(out)
        out = self.LR_conv(out) + fea
        return out[..., :h, :w] if crop else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        out = self.upsampler(self.forward_features(x, crop=False))
        return out[..., : h * self.scale, : w * self.scale] / self.img_range


@register_model("rlfn_s", scales=(2, 3, 4), paper="Kong et al., RLFN, CVPRW 2022", family="cnn",
                pretrained={2: "rlfn_s_x2.safetensors", 3: "rlfn_s_x3.safetensors", 4: "rlfn_s_x4.safetensors"},
                photo={4: "rlfn_s_photo_x4.safetensors", 2: "rlfn_s_photo_x2.safetensors"},  # for compressed input (lightsr.photo)
                published={4: Published(  # NTIRE 2022 ESR, team04 (the challenge entry; the shipped x4 comes first)
                    "https://github.com/ofsoundof/NTIRE2022_ESR/raw/e95ba4a4916bb13d6348f7ee172827e2452e8a31/"
                    "model_zoo/team04_rlfn.pth", "ca81b7757708ce749ac3766589690db6c2729961d026c0137e7659924ec36622",
                    "MIT", {"Set5": (32.0984, 0.8939), "Set14": (28.5984, 0.7816), "BSD100": (27.5778, 0.7360)},
                    "no official target (challenge entry); measured here, RESULTS.md")},
                traits=Traits(min_size=ESA_MIN_SIZE))  # ESA's strided conv + 7x7 pooling; ESA: tiling approximate
# trained here (results/training.md; x2 and x3 initialised from x4); the default wherever its file is shipped
def rlfn_s(scale: int = 4, channels: int = 46, mid_channels: int = 48, num_blocks: int = 4,
           img_range: float = 255.0) -> RLFN:
    """RLFN-S (residual local feature network, small; NTIRE 2022 ESR winner), 317K params at x4."""
    return RLFN(scale=scale, channels=channels, mid_channels=mid_channels, num_blocks=num_blocks,
                img_range=img_range)


@detector("rlfn_s", "fea_conv.weight", "B1.c1_r.weight", "B1.esa.conv1.weight", "upsampler.0.weight")
def _rlfn(s: Shapes) -> list[Guess]:
    return one_step("rlfn_s", s, {"channels": s.out("fea_conv.weight"), "mid_channels": s.out("B1.c1_r.weight"),
                                  "num_blocks": s.count("B{}.c1_r.weight")})
