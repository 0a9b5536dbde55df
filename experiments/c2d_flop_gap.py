"""Where do C2D-ISR's Table 1 FLOPs come from? (issue 16, item 4; results/flops.md "The C2D FLOP gap").

Counts SwinIR-C2D and SRFormer-C2D under the fvcore convention (``lightsr.profile``, meta device) as
built, and under counting hypotheses that change *how* the same model is counted (never what it
computes): global padding of the input to the largest window, every HiET layer run whole on its
padded map, the x3 input rounded down, and the padded sizes the window orders of Table 2 lead to.
It adds no computation to the model: a hypothesis is a different way of running or counting it.

    python experiments/c2d_flop_gap.py
"""
from __future__ import annotations

import contextlib
import sys

import torch

from lightsr.layers.skeleton import map_to_tokens, tokens_to_map
from lightsr.layers.window import pad_to_multiple
from lightsr.models import create_model
from lightsr.models import c2d
from lightsr.profile import count_fast, input_size_for

TABLE1 = {("swinir_c2d", 2): 201.2, ("swinir_c2d", 3): 90.6, ("swinir_c2d", 4): 52.7,
          ("srformer_c2d", 2): 218.4, ("srformer_c2d", 3): 98.3, ("srformer_c2d", 4): 57.0}
TABLE2 = {"wo1": ([32, 16, 8, 8, 16, 32], -0.7), "wo2": ([8, 32, 64, 64, 32, 8], 0.0),
          "wo3": ([64] * 6, 1.6)}  # SRFormer-C2D x4, FLOPs difference to the full model (G)


@contextlib.contextmanager
def whole_layer_padding():
    """Hypothesis: each HiET layer pads its input to its window and runs *everything* (MLP, CSC,
    Linear, LN, FFN) on the padded map, cropping only at its end (ours pads eqs. 2-5 only)."""
    orig = c2d.HiETLayer.forward

    def forward(self, x, size):
        h, w = size
        m = pad_to_multiple(tokens_to_map(x, size), self.attn.window, self.attn.pad_mode)
        y = orig(self, map_to_tokens(m), tuple(m.shape[-2:]))
        return map_to_tokens(tokens_to_map(y, tuple(m.shape[-2:]))[..., :h, :w])

    c2d.HiETLayer.forward = forward
    try:
        yield
    finally:
        c2d.HiETLayer.forward = orig


def g(name: str, scale: int, hypothesis: str = "ours", **opts) -> float:
    """fvcore FLOPs (G) of ``name`` x``scale`` under a counting hypothesis."""
    model = create_model(name, scale, **opts).eval()
    size = input_size_for(scale)
    ctx = contextlib.nullcontext()
    if hypothesis == "global64":  # SwinIR-style check_image_size to the largest window
        model.pad_multiple = max(opts.get("windows", c2d.WINDOWS_6))
    elif hypothesis == "layerpad":
        ctx = whole_layer_padding()
    elif hypothesis == "floor":  # 720 // s x 1280 // s (HiT-SR's fvcore script)
        size = (720 // scale, 1280 // scale)
    with ctx:
        return count_fast(model, scale, "fvcore", size) / 1e9


def _padded(n: int, m: int) -> int:
    return -(-n // m) * m


def window_term(scale: int, windows=c2d.WINDOWS_6, blocks: int = 4) -> int:
    """sum over layers of ws x (tokens of the map padded to ws): the size of a per-token cost of
    k * ws MACs (k fitted below); 4 blocks of ``windows``."""
    h, w = input_size_for(scale)
    return blocks * sum(ws * _padded(h, ws) * _padded(w, ws) for ws in windows)


def s_sc_term(scale: int, dim: int = 60, base: int = 8, windows=c2d.WINDOWS_6, blocks: int = 4) -> int:
    """HiT's spatial product, had it been counted in every HiET layer: Q V'^T and (.) V' at width
    C/2 against b x b aggregated keys, b = min(ws, 8): b^2 C MACs per (padded) token."""
    h, w = input_size_for(scale)
    return blocks * sum(min(ws, base) ** 2 * dim * _padded(h, ws) * _padded(w, ws) for ws in windows)


def fits(counts: dict) -> None:
    """Table 2's window orders fix k of a k * ws per-token term; then the rest of each Table 1 gap
    as alpha + beta * (LR pixels), least squares over the 6 rows."""
    import numpy as np

    d1 = window_term(4, TABLE2["wo1"][0]) - window_term(4)
    d3 = window_term(4, TABLE2["wo3"][0]) - window_term(4)
    k1, k3 = TABLE2["wo1"][1] * 1e9 / d1, (TABLE2["wo3"][1] - counts["wo3_ours"]) * 1e9 / d3
    print(f"\nk * ws per token: k = {k1:.1f} from wo1, {k3:.1f} from wo3 (after our own +{counts['wo3_ours']:.2f} G)")
    keys = list(TABLE1)
    print("HiT's S-SC product in every layer: " + ", ".join(
        f"x{s} {s_sc_term(s) / 1e9:.2f} G (gaps {TABLE1[('swinir_c2d', s)] - counts[('swinir_c2d', s)]:.2f}"
        f" / {TABLE1[('srformer_c2d', s)] - counts[('srformer_c2d', s)]:.2f} G)" for s in (2, 3, 4)))
    px = [input_size_for(s)[0] * input_size_for(s)[1] for _, s in keys]
    for k in (0.0, k1):
        rest = [(TABLE1[key] - counts[key]) * 1e9 - k * window_term(key[1]) for key in keys]
        a = np.array([[1.0, p] for p in px])
        (alpha, beta), *_ = np.linalg.lstsq(a, np.array(rest), rcond=None)
        resid = a @ np.array([alpha, beta]) - np.array(rest)
        terms = ", ".join(f"x{s} {k * window_term(s) / 1e9:.2f} G" for s in (2, 3, 4))
        print(f"k = {k:.1f} ({terms}): rest = {alpha / 1e9:.2f} G + {beta:,.0f} x LR pixels, residuals "
              + ", ".join(f"{n[:3]} x{s} {r / 1e9:+.2f}" for (n, s), r in zip(keys, resid)))


def main() -> int:
    torch.set_num_threads(1)
    hyps = ["ours", "floor", "global64", "layerpad"]
    counts = {}
    print("Table 1 (fvcore G; paper; difference)")
    print("| model | scale | " + " | ".join(hyps) + " | Table 1 |")
    for (name, s), paper in TABLE1.items():
        vals = [g(name, s, h) for h in hyps]
        counts[(name, s)] = vals[0]
        cells = [f"{v:.2f} ({(v / paper - 1) * 100:+.1f} %)" for v in vals]
        print(f"| {name} | x{s} | " + " | ".join(cells) + f" | {paper} |")
    print("\nTable 2 window orders, SRFormer-C2D x4 (difference to the full model, G)")
    print("| variant | " + " | ".join(hyps[:1] + hyps[2:]) + " | Table 2 |")
    base = {h: g("srformer_c2d", 4, h) for h in hyps}
    for key, (windows, paper) in TABLE2.items():
        diffs = [g("srformer_c2d", 4, h, windows=windows) - base[h] for h in hyps if h != "floor"]
        print(f"| {key} {windows} | " + " | ".join(f"{d:+.2f}" for d in diffs) + f" | {paper:+.1f} |")
        counts[key + "_ours"] = diffs[0]
    fits(counts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
