"""Complexity counting: MACs against hand-derived counts, and the CLI's JSON."""
import json

import torch
from torch import nn

from lightsr.profile import count_macs, count_params, profile_model


class TinySR(nn.Module):
    scale = 2

    def __init__(self):
        super().__init__()
        self.body = nn.Conv2d(3, 8, 3, padding=1)
        self.proj = nn.Linear(8, 8)
        self.up = nn.Sequential(nn.Conv2d(8, 12, 3, padding=1), nn.PixelShuffle(2))

    def forward(self, x):
        f = self.body(x)
        f = self.proj(f.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.up(f)


def test_macs_match_hand_count():
    m = TinySR()
    h, w = 360, 640  # input for a 720x1280 output at x2
    expected = h * w * (3 * 8 * 9 + 8 * 8 + 8 * 12 * 9)
    assert count_macs(m, 2) == expected
    assert count_params(m) == (3 * 8 * 9 + 8) + (8 * 8 + 8) + (8 * 12 * 9 + 12)


def test_matmul_attention_counted():
    class Attn(nn.Module):
        scale = 1

        def forward(self, x):  # (1,3,h,w): a (hw x 3) @ (3 x hw) product
            t = x.flatten(2).transpose(1, 2)
            return (t @ t.transpose(1, 2) @ t).transpose(1, 2).reshape(x.shape)

    m = Attn()
    m.register_buffer("dummy", torch.zeros(1))
    n = 8 * 8
    assert count_macs(m, 1, (8, 8)) == 2 * n * n * 3


def test_profile_dict_and_cli(tmp_path):
    from lightsr.cli import main

    r = profile_model(TinySR(), 2, (64, 64), latency=True, warmup=1, repeats=1)
    assert r["input_size"] == [32, 32] and r["latency_ms"] > 0
    out = tmp_path / "p.json"
    assert main(["profile", "--model", "bicubic", "--scale", "4", "--no-latency", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["model"] == "bicubic" and d["scale"] == 4 and d["params"] == 0 and "flops" in d
    # a user's file is never replaced unasked, and the refusal comes before any work
    out.write_text("mine")
    assert main(["profile", "--model", "bicubic", "--scale", "4", "--no-latency", "--json", str(out)]) == 2
    assert out.read_text() == "mine"
    assert main(["profile", "--model", "bicubic", "--scale", "4", "--no-latency", "--json", str(out),
                 "--overwrite"]) == 0
    assert json.loads(out.read_text())["params"] == 0
