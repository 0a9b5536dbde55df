"""Count candidate readings of C2D-ISR's HIIF-L head against Table 2's v1.2 row (issue 16, item 2).

Seed 000 describes HIIF-L only as "three MLPs and a linear attention module", smaller than HIIF, with
eqs. 7-9; HIIF's official code fixes the blocks (LayerNorm-Linear-GELU-Linear MLPs of hidden width
256, a 3x3 "freq" convolution before sampling, a hierarchical code appended at every level, multi-head
linear attention with a per-head LayerNorm on K and V). This script builds each reading as the
stage-1 model ``srformer_c2d_hiif`` (Table 2 uses the SRFormer backbone at x4), counts its
parameters and its FLOPs under the fvcore convention (``lightsr.profile``, meta device, 1x3x180x320
input -> 720x1280 output, the paper's Table 1 protocol) and subtracts the discrete model
``srformer_c2d`` x4 (the full C2D-ISR of Table 2). Paper: +188 K parameters, +143.3 G FLOPs.

    python experiments/hiif_candidates.py           # print the table
    python experiments/hiif_candidates.py --write   # also (re)write the section in results/c2d.md
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lightsr.layers.coords import hierarchical_bits, local_coord
from lightsr.models import create_model
from lightsr.models.hiif import HIIFL
from lightsr.profile import count_fast, count_params

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "c2d.md"
SECTION = "## HIIF-L candidates"
PAPER_PARAMS, PAPER_FLOPS = 188e3, 143.3e9  # Table 2, v1.2 w/o D (SRFormer-C2D, x4)
SCALE, INPUT = 4, (180, 320)


class AttentionAfterLevel1(HIIFL):
    """The same weights with the attention moved behind MLP_1 (not eq. 8's placement): for counting."""

    def forward(self, feat, coord, cell, inp=None):
        z = self.embed(self.prepare(feat), coord, cell, inp)
        xq = local_coord(coord, tuple(feat.shape[-2:])).permute(0, 2, 3, 1)
        for j in range(1, self.levels):
            z = self.fc_layers[j](torch.cat([z, hierarchical_bits(xq, j)], -1))
            if j == 1:
                for blk in self.attn:
                    z = blk(z)
        return z.permute(0, 3, 1, 2) + torch.nn.functional.grid_sample(
            inp, coord.flip(-1), mode="bilinear", padding_mode="border", align_corners=False)


@dataclass
class Candidate:
    label: str
    opts: dict = field(default_factory=dict)
    conformant: bool = True  # a reading of seed 000's description (3 MLPs, 1 linear MHA, dim = C, eq. 8 order)
    note: str = ""
    cls: type = HIIFL


CANDIDATES = [
    Candidate("A. eqs. 8-9 literally, hidden = C (the head before issue 16)",
              dict(hidden=60, levels=2, freq=False, heads=6),
              note="third MLP = the attention's FFN; the old class had 200 more parameters "
                   "(per-head LN weights) and +15,507 / +36.60 G MACs"),
    Candidate("B. as A, hidden 256", dict(levels=2, freq=False, heads=6),
              note="third MLP = the attention's FFN"),
    Candidate("C. as B + freq conv", dict(levels=2, heads=6), note="third MLP = the attention's FFN"),
    Candidate("D. hidden 128, freq, 3 levels, 2 heads", dict(hidden=128)),
    Candidate("E. hidden 256, no freq, 3 levels, 2 heads", dict(freq=False)),
    Candidate("F. hidden 256, freq, 3 levels, 6 heads", dict(heads=6)),
    Candidate("G. hidden 256, freq, 3 levels, 4 heads", dict(heads=4),
              note="head width 15, nearest to HIIF's 16 (256 / 16 heads)"),
    Candidate("H. hidden 256, freq, 3 levels, 2 heads (chosen)", dict()),
    Candidate("I. hidden 256, freq, 3 levels, 1 head", dict(heads=1), conformant=False,
              note="one head is not the MHA of eq. 8"),
    Candidate("J. as H, attention after MLP_1", dict(), conformant=False, cls=AttentionAfterLevel1,
              note="eq. 8 puts the attention right after the first MLP"),
    Candidate("K. as H, two attention blocks (HIIF has two)", dict(blocks=2), conformant=False,
              note="the seed: one linear attention module"),
    Candidate("L. hidden 256, freq, 4 levels, 2 heads", dict(levels=4), conformant=False,
              note="four MLPs"),
    Candidate("M. hidden 256, no freq, 4 levels, 2 heads", dict(levels=4, freq=False), conformant=False,
              note="four MLPs"),
    Candidate("N. HIIF width: dim = hidden = 256, freq C -> 256, 3 levels, 16 heads",
              dict(dim=256, heads=16), conformant=False, note="the seed sets dim = C"),
    Candidate("O. HIIF itself: dim 256, 6 levels, 2 attention blocks, 16 heads",
              dict(dim=256, heads=16, levels=6, blocks=2), conformant=False,
              note="HIIF-L is described as smaller than HIIF"),
]


def _build(c: Candidate):
    model = create_model("srformer_c2d_hiif", head_opts=c.opts)
    if c.cls is not HIIFL:
        model.head.__class__ = c.cls
    return model


def count(c: Candidate | None) -> tuple[int, int, int]:
    """(all parameters, head parameters, fvcore FLOPs) of the stage-1 model (None: the discrete one)."""
    torch.manual_seed(0)
    model = create_model("srformer_c2d", SCALE) if c is None else _build(c)
    model.eval()
    head = model.upsample if c is None else model.head
    return count_params(model), count_params(head), count_fast(model, SCALE, "fvcore", INPUT)


def rows() -> tuple[tuple[int, int, int], list[tuple[Candidate, int, int, int, float]]]:
    base = count(None)
    out = []
    for c in CANDIDATES:
        p, hp, f = count(c)
        dp, df = p - base[0], f - base[2]
        dist = abs(dp / PAPER_PARAMS - 1) + abs(df / PAPER_FLOPS - 1)
        out.append((c, hp, dp, df, dist))
    return base, out


def _pct(v: float, ref: float) -> str:
    return f"{(v / ref - 1) * 100:+.1f} %"


def table(base, results) -> str:
    best = min((r for r in results if r[0].conformant), key=lambda r: r[4])
    lines = [
        SECTION, "",
        "Issue 16, item 2. Code: `src/lightsr/models/hiif.py`; counts: `python experiments/hiif_candidates.py`"
        " (`--write` rewrites this section). Every candidate is the stage-1 model `srformer_c2d_hiif` with"
        " `head_opts`, minus the discrete `srformer_c2d` x4"
        f" ({base[0]:,} params, {base[2] / 1e9:.2f} G, of which the PixelShuffle head {base[1]:,}),"
        " counted under the fvcore convention (`lightsr.profile`) at a 1x3x180x320 input (x4 -> 720x1280,"
        " Table 1's protocol; the continuous model renders all 921,600 queries in one pass). Table 2 v1.2"
        " (\"w/o D\"): **+188 K / +143.3 G**. All candidates: dim = C = 60 unless said, one attention"
        " block right after MLP_0 (eq. 8), LN-Linear-GELU-Linear MLPs; \"levels\" = number of MLPs, each"
        " appending delta_h(x_q, j) of its level; distance = |params gap| + |FLOPs gap| (relative).",
        "",
        "| candidate | head params | Δ params | vs +188 K | Δ FLOPs (fvcore) | vs +143.3 G | distance"
        " | seed-conformant | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c, hp, dp, df, dist in results:
        name = f"**{c.label}**" if c is best[0] else c.label
        lines.append(f"| {name} | {hp:,} | {dp:+,} | {_pct(dp, PAPER_PARAMS)} | {df / 1e9:+.2f} G | "
                     f"{_pct(df, PAPER_FLOPS)} | {dist * 100:.1f} % | {'yes' if c.conformant else 'no'} | {c.note} |")
    c, hp, dp, df, dist = best
    # the remaining gap as x per-query parameters (1 MAC per query each) + y LR-grid parameters
    n_q, n_lr = 720 * 1280, INPUT[0] * INPUT[1]
    gp, gf = PAPER_PARAMS - dp, PAPER_FLOPS - df
    per_query = (gf - n_lr * gp) / (n_q - n_lr)
    over = {r[0].label[0]: r[3] / PAPER_FLOPS - 1 for r in results}
    lines += [
        "",
        f"**Chosen: {c.label.split(' (')[0]}** — +{dp:,} parameters ({_pct(dp, PAPER_PARAMS)}) and"
        f" {df / 1e9:+.2f} G FLOPs ({_pct(df, PAPER_FLOPS)}) over the discrete model: the seed-conformant"
        " reading closest to Table 2 (smallest distance among the rows marked \"yes\"). It is HIIF's own"
        " blocks cut down as the seed describes: HIIF's freq conv and hidden-256 MLPs, but the attention"
        " at dim = C (HIIF: 256), one attention block (HIIF: two) and three MLP levels (HIIF: six):"
        " MLP_0 of eq. 8 -> MHA -> MLP_1 of eq. 9 -> MLP_2 (level 2) -> RGB + bilinear input. Among the"
        " conformant readings the head count only moves the FLOPs (K^T V and Q (K^T V) cost 2 dim²/heads"
        " per query): 2 heads is the smallest count that is still multi-head.",
        "",
        f"Why no conformant reading reaches +188 K: the chosen one is {gp / 1e3:.1f} K parameters but only"
        f" {gf / 1e9:.1f} G FLOPs short. A parameter used once per query costs {n_q:,} multiply-accumulates"
        f" at x4, one used on the LR grid {n_lr:,}, so the gap is mostly weights that cost almost nothing"
        f" per query (≈ {(gp - per_query) / 1e3:.1f} K LR-grid parameters + ≈ {per_query / 1e3:.1f} K per-query"
        " ones fit both numbers); one more attention block (K) or MLP level (L) narrows the parameter gap but"
        f" overshoots the FLOPs by {over['K'] * 100:.1f} % / {over['L'] * 100:.1f} %. One reading that"
        " fits without extra compute, unverifiable without the authors' code: the stage-1 model still holding the"
        f" unused PixelShuffle head ({base[1]:,} parameters, no FLOPs), which would make the chosen"
        f" reading +{dp + base[1]:,} ({_pct(dp + base[1], PAPER_PARAMS)}).",
        "",
        f"Pinned in `tests/test_hiif.py`: `test_table2_v12_counts` asserts {dp:+,} parameters and {df:+,}"
        f" FLOPs exactly and the gaps to Table 2 ({_pct(dp, PAPER_PARAMS)}, {_pct(df, PAPER_FLOPS)}) to"
        " 0.1 %; `test_head_matches_naive_reference` compares the head with a per-query implementation of"
        " eqs. 7-9 (the chosen reading and one with every option changed), and `test_reference_catches`"
        " shows that comparison failing on three planted defects.",
        "",
    ]
    return "\n".join(lines)


def write(text: str) -> None:
    doc = RESULTS.read_text()
    pattern = re.compile(re.escape(SECTION) + r"\n.*?(?=\n## |\Z)", re.S)
    doc = pattern.sub(lambda _: text.rstrip("\n"), doc) if pattern.search(doc) else doc.rstrip("\n") + "\n\n" + text
    RESULTS.write_text(doc if doc.endswith("\n") else doc + "\n")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"rewrite the '{SECTION}' section of {RESULTS.name}")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    text = table(*rows())
    print(text)
    if args.write:
        write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
