"""HIIF-L: the continuous up-sampler of C2D-ISR's first (continuous-scale) training stage (C2D-ISR,
sec. 3.3, eqs. 7-9), assembled from the building blocks of HIIF (Jiang et al., CVPR 2025), of which
the seed calls it the smaller version ("three MLPs and a linear attention module").

What the seed fixes
-------------------
* eq. 7: delta_h(x_q, j) = floor(x_q 2^(j+1)) mod 2, the hierarchical code of level j of the local
  coordinate x_q (position of the query inside its LR pixel, :func:`lightsr.layers.coords.local_coord`;
  HIIF's code measures it differently in the half pixel outside the outermost LR centres);
* eq. 8: z0 = MHA(MLP([F_D, delta_h(x_q, 0), cell])), a multi-head *linear* attention over all the
  queries of the image, of width dim = C (the backbone width); cell = [2/s_H, 2/s_W];
* eq. 9: z1 = MLP([z0, delta_h(x_q, 1)]) towards the RGB output.

What is taken from HIIF's blocks (the seed names them but does not spell them out)
---------------------------------------------------------------------------------
* every MLP is LayerNorm -> Linear -> GELU -> Linear with a hidden width of 256 (``hidden``);
* F_D first goes through a 3x3 convolution (HIIF's "freq" layer, C -> dim) on the LR grid;
* F_D at a query is the concatenation of its 4 nearest LR codes, each multiplied by the area weight
  of the local ensemble (4 * dim values), not their sum;
* the hierarchical code of the next level is appended before every MLP (``levels`` MLPs in all,
  level j reading delta_h(x_q, j)); the last one outputs RGB, to which the bilinearly up-sampled
  input is added;
* the attention: [Q K V] = Linear(X); LayerNorm over each head's channels of K and of V (one
  LayerNorm of head width, shared by the heads); O = Q (K^T V) / N; R = X + O; output
  X + Linear(GELU(Linear(R))).

The reading chosen (``HIIFL(in_dim)`` defaults; experiments/hiif_candidates.py counts the others and
results/c2d.md "HIIF-L candidates" records them): freq conv on, hidden 256, three MLP levels (eq. 8's
MLP, eq. 9's MLP, and a third level that turns z1 into RGB), one attention block after the first
MLP, 2 heads.

Keys: ``freq.*``, ``fc_layers.{j}.{norm,fc1,fc2}.*``, ``attn.{i}.{qkv_proj,kln,vln,proj1,proj2}.*``.
Chunked rendering (:meth:`lightsr.layers.coords.ImplicitSR.query`) uses ``embed`` / ``attn_blocks`` /
``project``; the attention blocks accept the K^T V of the whole grid.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers.coords import (cell_map, grid_sample_bilinear, ensemble_weights, hierarchical_bits,
                             local_coord, neighbours)
from .detect import Miss, Shapes, defaults_of, nondefault
from .srno import LinearAttention

__all__ = ["HIIFL", "HIIFAttention", "NormMLP", "default_heads", "head_options"]

HEADS_DEFAULT = 2


def default_heads(dim: int) -> int:
    """Heads of the attention when not given: 2 (the chosen reading), or 1 for an odd ``dim``."""
    return HEADS_DEFAULT if dim % HEADS_DEFAULT == 0 else 1


class NormMLP(nn.Module):
    """LayerNorm -> Linear -> GELU -> Linear on channels-last tensors (HIIF's MLP block; its
    shortcut only applies when the input and output widths agree, which never happens here)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.fc1 = nn.Linear(in_dim, hidden)
        self.fc2 = nn.Linear(hidden, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


class HIIFAttention(LinearAttention):
    """Multi-head linear attention of HIIF on (B, H, W, dim) query maps (all H*W queries attend):

        [Q | K | V] per head = Linear(dim -> 3 dim)(X)    (per head its 3 * d channels, d = dim/heads)
        K, V <- LN_k(K), LN_v(V)                           LayerNorm over the d channels of each head
        O = Q (K^T V) / N                                  no softmax; N = number of queries
        out = X + W2 GELU(W1 (X + O))

    ``kv(x)`` gives K^T V of a chunk of queries (it sums over chunks); ``forward(x, kv, n)`` uses
    the K^T V and the query count of the whole grid when ``x`` is one chunk of it (both from
    :class:`lightsr.models.srno.LinearAttention`; SRNO's block differs in its LayerNorm and layout)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if heads < 1 or dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        self.heads, self.head_dim = heads, dim // heads
        self.qkv_proj = nn.Linear(dim, 3 * dim)
        self.kln = nn.LayerNorm(self.head_dim)
        self.vln = nn.LayerNorm(self.head_dim)
        self.proj1 = nn.Linear(dim, dim)
        self.proj2 = nn.Linear(dim, dim)

    def _qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, h, w, _ = x.shape
        t = self.qkv_proj(x).reshape(b, h * w, self.heads, 3 * self.head_dim).transpose(1, 2)
        q, k, v = t.chunk(3, dim=-1)  # (B, heads, N, d) each
        return q, self.kln(k), self.vln(v)

    def _finish(self, x: Tensor, o: Tensor) -> Tensor:
        o = o.transpose(1, 2).reshape(x.shape)
        return x + self.proj2(F.gelu(self.proj1(x + o)))


class HIIFL(nn.Module):
    """HIIF-L (C2D-ISR eqs. 7-9) with HIIF's blocks; see the module docstring.

    ``HIIFL(in_dim, dim=None, heads=None, hidden=256, levels=3, freq=True, blocks=1)``:
    ``in_dim`` the width C of F_D; ``dim`` the attention width (default C: "we set dim equal to C");
    ``heads`` of the attention (default :func:`default_heads`); ``hidden`` of every MLP; ``levels``
    the number of MLPs (>= 2; MLP j reads delta_h(x_q, j)); ``freq`` the 3x3 convolution C -> dim
    on F_D; ``blocks`` attention blocks after the first MLP (the seed: one).
    """

    global_queries = True

    def __init__(self, in_dim: int, dim: int | None = None, heads: int | None = None, hidden: int = 256,
                 levels: int = 3, freq: bool = True, blocks: int = 1):
        super().__init__()
        dim = int(dim or in_dim)
        if levels < 2:
            raise ValueError(f"HIIF-L needs at least 2 MLP levels (eqs. 8 and 9), not {levels}")
        if blocks < 1:
            raise ValueError(f"HIIF-L needs at least one attention block, not {blocks}")
        self.levels = int(levels)
        self.freq = nn.Conv2d(in_dim, dim, 3, padding=1) if freq else None
        width = dim if freq else in_dim
        self.fc_layers = nn.ModuleList(
            [NormMLP(4 * width + 4, hidden, dim)]
            + [NormMLP(dim + 2, hidden, 3 if j == levels - 1 else dim) for j in range(1, levels)])
        heads = default_heads(dim) if heads is None else int(heads)
        self.attn = nn.ModuleList(HIIFAttention(dim, heads) for _ in range(blocks))

    @property
    def attn_blocks(self) -> list[HIIFAttention]:
        return list(self.attn)

    def prepare(self, feat: Tensor) -> Tensor:
        """Per-image work on F_D, done once per image (chunked rendering calls :meth:`embed` once per
        chunk and pass with the result): HIIF's freq 3x3 convolution. Nothing is cached on the
        module, so it runs alike under autograd, ``no_grad`` and ``inference_mode``."""
        return feat if self.freq is None else self.freq(feat)

    def embed(self, feat: Tensor, coord: Tensor, cell: Tensor, inp: Tensor | None = None) -> Tensor:
        """MLP_0([F_D, delta_h(x_q, 0), cell]) of eq. 8 -> (B, Hq, Wq, dim); ``feat`` as returned
        by :meth:`prepare`."""
        h, w = feat.shape[-2:]
        zs, rels = zip(*neighbours(feat, coord))
        zs = [z * a for z, a in zip(zs, ensemble_weights(rels))]  # area-weighted, concatenated
        xq = local_coord(coord, (h, w))
        g = torch.cat([*zs, hierarchical_bits(xq, 0), cell_map(cell, (h, w), xq)], 1)
        return self.fc_layers[0](g.permute(0, 2, 3, 1))

    def project(self, z: Tensor, feat: Tensor, coord: Tensor, cell: Tensor, inp: Tensor | None = None) -> Tensor:
        """Levels 1 .. L-1: z <- MLP_j([z, delta_h(x_q, j)]) (eq. 9 at j = 1), RGB + bilinear input."""
        xq = local_coord(coord, tuple(feat.shape[-2:])).permute(0, 2, 3, 1)
        for j in range(1, self.levels):
            z = self.fc_layers[j](torch.cat([z, hierarchical_bits(xq, j)], -1))
        out = z.permute(0, 3, 1, 2)
        return out + grid_sample_bilinear(inp, coord) if inp is not None else out

    def forward(self, feat: Tensor, coord: Tensor, cell: Tensor, inp: Tensor | None = None) -> Tensor:
        z = self.embed(self.prepare(feat), coord, cell, inp)
        for blk in self.attn:  # eq. 8: z0 = MHA(MLP_0(...))
            z = blk(z)
        return self.project(z, feat, coord, cell, inp)


def head_options(s: Shapes, in_dim: int) -> dict:
    """HIIF-L head options that change its weights, read from a checkpoint's shapes (the detectors of
    models/arbitrary.py and models/c2d.py), non-default only: ``dim`` (the first MLP's output),
    ``heads`` (dim / the width of the per-head K LayerNorm), ``hidden``, ``levels`` (MLPs), ``freq``
    (the 3x3 conv on F_D) and ``blocks`` (attention blocks)."""
    dim = s.out("fc_layers.0.fc2.weight")
    head_dim = s.out("attn.0.kln.weight")
    if head_dim < 1 or dim % head_dim:
        raise Miss(f"HIIF-L attention width {dim} is not a multiple of its head width {head_dim}")
    found = {"dim": dim, "heads": dim // head_dim, "hidden": s.out("fc_layers.0.fc1.weight"),
             "levels": s.count("fc_layers.{}.fc1.weight"), "freq": "freq.weight" in s,
             "blocks": s.count("attn.{}.qkv_proj.weight")}
    # HIIFL's defaults; dim=None and heads=None mean C (in_dim) and default_heads(dim)
    return nondefault(found, {**defaults_of(HIIFL), "dim": in_dim, "heads": default_heads(dim)})
