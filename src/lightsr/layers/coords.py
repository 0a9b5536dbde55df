"""Shared coordinate code of the arbitrary-scale (continuous) SR heads, and the generic wrapper.

Conventions (LIIF, ``yinboc/liif``; design/architectures.md section 5)
--------------------------------------------------------------------
* A query coordinate is ``(y, x)`` in [-1, 1], pixel centres: ``make_coord((H, W))[i, j] =
  (-1 + (2i+1)/H, -1 + (2j+1)/W)``. A query grid is (B, Hq, Wq, 2).
* The cell of an HR pixel is ``(2/H_hr, 2/W_hr)``, shape (B, 2). For an LR map of h x w,
  ``cell * (h, w) = 2/s`` (the "rel_cell" of LIIF = the ``cell = [2/s_H, 2/s_W]`` of C2D-ISR).
* A head is an ``nn.Module`` with ``forward(feat, coord, cell, inp) -> (B, 3, Hq, Wq)`` where
  ``feat`` (B, C, h, w) are backbone features and ``inp`` is the (normalised) LR image the
  bilinear skip of SRNO/HIIF-L reads. ``head.global_queries`` is True when the head attends over
  all queries of an image (SRNO, HIIF-L): such heads also expose ``embed / attn_blocks / project``
  (and optionally ``prepare(feat)``, per-image work that ``embed`` then reads, done once per image)
  and are evaluated exactly in row chunks by accumulating each linear attention's K^T V over the
  grid (:meth:`ImplicitSR.query`); per-query heads (LIIF, MetaSR) are chunked directly. Memory is
  bounded by ``max_queries`` either way (ArbSR renders whole grids).

The heads, one paper per file: :mod:`lightsr.models.liif` (LIIF), :mod:`lightsr.models.metasr`
(Meta-SR), :mod:`lightsr.models.srno` (SRNO, Galerkin attention), :mod:`lightsr.models.arbsr`
(ArbSR), HIIF-L (C2D-ISR).

Wrapper
-------
:class:`ImplicitSR` ``(backbone, head, norm=0.5)`` turns a backbone with
``forward_features(x) -> (B, C, h, w)`` into a continuous model
(``forward(x, scale=None, coord=None, cell=None)``, ``model.continuous = True``).
"""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import LightSRError

__all__ = [
    "make_coord", "make_cell", "coord_grid", "parse_scale", "norm_scale", "output_size", "scale_from_cell",
    "neighbours", "ensemble_weights", "hierarchical_bits", "local_coord", "query_chunks", "ImplicitSR",
    "cell_map", "grid_sample_bilinear",
]

# ----------------------------------------------------------------------------------------------
# coordinates and cells
# ----------------------------------------------------------------------------------------------


def make_coord(shape: Sequence[int], ranges: Sequence[tuple[float, float]] | None = None,
               flatten: bool = True, device: torch.device | str | None = None) -> Tensor:
    """Pixel-centre coordinates of a grid (LIIF ``utils.make_coord``): (H, W, 2) or (H*W, 2)."""
    seqs = []
    for i, n in enumerate(shape):
        v0, v1 = (-1.0, 1.0) if ranges is None else ranges[i]
        r = (v1 - v0) / (2 * n)
        seqs.append(v0 + r + (2 * r) * torch.arange(n, device=device, dtype=torch.float32))
    ret = torch.stack(torch.meshgrid(*seqs, indexing="ij"), dim=-1)
    return ret.view(-1, ret.shape[-1]) if flatten else ret


def coord_grid(hr_size: tuple[int, int], batch: int = 1, device: torch.device | str | None = None) -> Tensor:
    """(B, H, W, 2) query grid of the pixel centres of an H x W output."""
    return make_coord(hr_size, flatten=False, device=device).unsqueeze(0).expand(batch, -1, -1, -1)


def make_cell(hr_size: tuple[int, int], batch: int = 1, device: torch.device | str | None = None) -> Tensor:
    """(B, 2) cell ``(2/H, 2/W)`` of the pixels of an H x W output."""
    h, w = hr_size
    return torch.tensor([2.0 / h, 2.0 / w], device=device).unsqueeze(0).repeat(batch, 1)


def parse_scale(scale: float | Sequence[float]) -> tuple[float, float]:
    """A float or (s_h, s_w) pair -> (s_h, s_w); a LightSRError for non-positive/invalid scales."""
    if isinstance(scale, Tensor):
        scale = scale.tolist()
    if isinstance(scale, (int, float)):
        pair = (float(scale), float(scale))
    else:
        try:
            if isinstance(scale, (str, bytes)):
                raise TypeError
            pair = tuple(float(s) for s in scale)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise LightSRError(f"scale must be a number or an (s_h, s_w) pair, not {scale!r}") from None
        if len(pair) != 2:
            raise LightSRError(f"scale must be a number or an (s_h, s_w) pair, not {scale!r}")
    if not all(math.isfinite(s) and s > 0 for s in pair):
        raise LightSRError(f"scale must be positive, got {scale!r}")
    return pair  # type: ignore[return-value]


def norm_scale(scale):
    """A scale as given -> None, a number (an integral one as an int), or (s_h, s_w) when the two differ
    (continuous-scale models); a LightSRError for an invalid one."""
    if scale is None:
        return None
    sh, sw = parse_scale(scale)
    if sh != sw:
        return sh, sw
    return int(sh) if sh.is_integer() else sh


def output_size(h: int, w: int, scale: float | Sequence[float]) -> tuple[int, int]:
    """Output size of an arbitrary-scale model: (round(h*s_h), round(w*s_w))."""
    sh, sw = parse_scale(scale)
    return max(1, round(h * sh)), max(1, round(w * sw))


def scale_from_cell(cell: Tensor, lr_size: tuple[int, int]) -> tuple[float, float]:
    """Recover (s_h, s_w) from a cell (2/H_hr, 2/W_hr) and the LR size (first sample)."""
    c = cell[0].detach().double().cpu()
    return float(2.0 / (c[0] * lr_size[0])), float(2.0 / (c[1] * lr_size[1]))


# ----------------------------------------------------------------------------------------------
# 4-neighbour local ensemble
# ----------------------------------------------------------------------------------------------


def neighbours(feat: Tensor, coord: Tensor, rel_scale: float = 1.0
               ) -> Iterator[tuple[Tensor, Tensor]]:
    """The 4 nearest LR codes of every query (LIIF local ensemble, design section 5.1).

    For v in {-1, +1}^2 (order (-1,-1), (-1,+1), (+1,-1), (+1,+1)): shift the query by half an LR
    pixel (+ eps 1e-6), clamp into the image, fetch the nearest code ``z*`` (B, C, Hq, Wq) and the
    relative offset ``rel = (x_q - v*) * (h, w) * rel_scale`` (B, 2, Hq, Wq). ``rel_scale = 1`` is
    the LIIF/SRNO scaling (rel in (-2, 2)); ``0.5`` gives LR-pixel units (HIIF).
    """
    b, _, h, w = feat.shape
    pos = make_coord((h, w), flatten=False, device=feat.device).permute(2, 0, 1)
    pos = pos.unsqueeze(0).expand(b, 2, h, w)
    rx, ry, eps = 1.0 / h, 1.0 / w, 1e-6
    mult = torch.tensor([h * rel_scale, w * rel_scale], device=feat.device).view(1, 2, 1, 1)
    for vx in (-1, 1):
        for vy in (-1, 1):
            shift = torch.tensor([vx * rx + eps, vy * ry + eps], device=coord.device, dtype=coord.dtype)
            c = (coord + shift).clamp(-1 + 1e-6, 1 - 1e-6).flip(-1)
            z = F.grid_sample(feat, c, mode="nearest", align_corners=False)
            centre = F.grid_sample(pos.to(coord.dtype), c, mode="nearest", align_corners=False)
            yield z, (coord.permute(0, 3, 1, 2) - centre) * mult


def ensemble_weights(rels: Sequence[Tensor]) -> list[Tensor]:
    """Bilinear-like blending weights (B, 1, Hq, Wq): each neighbour is weighted by the area of the
    diagonally opposite rectangle, ``area_{3-k} / sum(area)``, ``area = |rel_y * rel_x| + 1e-9``."""
    areas = [(r[:, 0] * r[:, 1]).abs() + 1e-9 for r in rels]
    tot = torch.stack(areas).sum(0)
    return [(areas[3 - k] / tot).unsqueeze(1) for k in range(4)]


def local_coord(coord: Tensor, lr_size: tuple[int, int]) -> Tensor:
    """Query position inside its LR pixel, in LR-pixel units measured from the upper-left
    neighbouring centre: (B, 2, Hq, Wq), clamped to [0, 1] (the x_q of C2D-ISR eq. 7)."""
    h, w = lr_size
    sizes = torch.tensor([h, w], device=coord.device, dtype=coord.dtype)
    # continuous LR-pixel index of the query, centres at integers
    t = (coord + 1) / 2 * sizes - 0.5
    return (t - torch.floor(t)).clamp(0, 1).permute(0, 3, 1, 2)


def hierarchical_bits(x_local: Tensor, level: int) -> Tensor:
    """Seed 000 eq. 7: delta_h(x_q, j) = floor(x_q * 2^(j+1)) mod 2 (HIIF's ``compute_hi_coord``,
    x_q clipped to [0, 1 - 1e-6] so that x_q = 1 stays in the last cell; HIIF's ``t - 1e-9`` is a
    no-op in float32)."""
    t = x_local.clamp(0, 1 - 1e-6)
    return torch.remainder(torch.floor(t * 2 ** (level + 1)), 2)


def grid_sample_bilinear(inp: Tensor, coord: Tensor) -> Tensor:
    return F.grid_sample(inp, coord.flip(-1), mode="bilinear", padding_mode="border", align_corners=False)


def cell_map(cell: Tensor, lr_size: tuple[int, int], like: Tensor) -> Tensor:
    rel_cell = cell * torch.tensor(lr_size, device=cell.device, dtype=cell.dtype)
    return rel_cell.view(-1, 2, 1, 1).expand(-1, 2, *like.shape[-2:])


# ----------------------------------------------------------------------------------------------
# the generic continuous model
# ----------------------------------------------------------------------------------------------


def query_chunks(hq: int, wq: int, max_queries: int) -> Iterator[slice]:
    """Row slices of an Hq x Wq query grid holding at most ~max_queries queries each."""
    rows = max(1, max_queries // max(1, wq))
    for r in range(0, hq, rows):
        yield slice(r, min(hq, r + rows))


class ImplicitSR(nn.Module):
    """backbone features + implicit head = a continuous-scale SR model.

    ``backbone.forward_features(x) -> (B, C, h, w)``; ``head(feat, coord, cell, inp)``.
    ``norm=0.5`` (LIIF family): the backbone and the head's bilinear skip see (x - 0.5) / 0.5 and the
    output is mapped back; ``norm=None``: the backbone normalises itself (the lightweight skeleton).
    A backbone with ``set_scale(s_h, s_w)`` (AnySR) is told the scale before every forward.
    State-dict keys: ``encoder.*`` (backbone) and the head's own keys at top level (official
    LIIF/SRNO layout; loading also accepts ``head.``-prefixed keys).
    """

    continuous = True

    def __init__(self, backbone: nn.Module, head: nn.Module, norm: float | None = 0.5,
                 max_queries: int = 65536):
        super().__init__()
        self.encoder = backbone
        self.head = head
        self.norm = norm
        self.max_queries = max_queries
        self.scale = None  # continuous
        self.register_state_dict_post_hook(ImplicitSR._flatten_head_keys)
        self._register_load_state_dict_pre_hook(self._official_keys)

    # keys: official checkpoints put the head's modules at top level; the module keeps them under
    # ``head.``; saving flattens them, loading accepts both (prefix-aware, so nesting/DDP work)
    @staticmethod
    def _flatten_head_keys(module, state_dict, prefix, local_metadata):
        for k in [k for k in state_dict if k.startswith(prefix + "head.")]:
            state_dict[prefix + k[len(prefix) + len("head."):]] = state_dict.pop(k)

    def _official_keys(self, state_dict, prefix, *args, **kwargs):
        for k in list(state_dict):
            if k.startswith(prefix):
                rest = k[len(prefix):]
                if not rest.startswith(("encoder.", "head.")):
                    state_dict[prefix + "head." + rest] = state_dict.pop(k)

    def _norm(self, x: Tensor) -> Tensor:
        return (x - 0.5) / self.norm if self.norm else x

    def _denorm(self, y: Tensor) -> Tensor:
        return y * self.norm + 0.5 if self.norm else y

    def features(self, x: Tensor, scale: tuple[float, float] | None) -> Tensor:
        if scale is not None and hasattr(self.encoder, "set_scale"):
            self.encoder.set_scale(*scale)
        return self.encoder.forward_features(x)

    def forward(self, x: Tensor, scale: float | Sequence[float] | None = None,
                coord: Tensor | None = None, cell: Tensor | None = None) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise LightSRError(f"expected an RGB batch (B, 3, h, w), got shape {tuple(x.shape)}")
        b, _, h, w = x.shape
        if coord is None:
            if scale is None:
                raise LightSRError("a continuous model needs scale= (or coord= and cell=)")
            size = output_size(h, w, scale)
            coord = coord_grid(size, b, x.device)
            cell = make_cell(size, b, x.device)
        elif cell is None:
            cell = make_cell(tuple(coord.shape[1:3]), b, x.device)
        pair = parse_scale(scale) if scale is not None else scale_from_cell(cell, (h, w))
        inp = self._norm(x)
        feat = self.features(inp, pair)
        return self._denorm(self.query(feat, coord, cell, inp))

    def query(self, feat: Tensor, coord: Tensor, cell: Tensor, inp: Tensor | None) -> Tensor:
        """Run the head on a query grid in row chunks of at most ``max_queries`` queries.

        Per-query heads: each chunk independently. Heads with global linear attention
        (``attn_blocks``, SRNO / HIIF-L): exact chunking in len(blocks) + 1 passes -- pass i
        recomputes the chunk's tokens up to block i and accumulates that block's K^T V over the
        whole grid, the last pass renders. Heads rendering whole grids only (ArbSR): one pass."""
        hq, wq = coord.shape[1:3]
        chunks = list(query_chunks(hq, wq, self.max_queries))
        if len(chunks) == 1 or (getattr(self.head, "global_queries", False)
                                and not hasattr(self.head, "attn_blocks")):
            return self.head(feat, coord, cell, inp)
        if not getattr(self.head, "global_queries", False):
            return torch.cat([self.head(feat, coord[:, sl], cell, inp) for sl in chunks], dim=2)
        blocks, n = self.head.attn_blocks, hq * wq
        prepare = getattr(self.head, "prepare", None)  # per-image work of the head, done once
        emb_feat = prepare(feat) if prepare is not None else feat
        stats: list[Tensor] = []
        for i in range(len(blocks) + 1):
            acc, rows = None, []
            for sl in chunks:
                x = self.head.embed(emb_feat, coord[:, sl], cell, inp)
                for blk, kv in zip(blocks[:i], stats):
                    x = blk(x, kv, n)
                if i < len(blocks):
                    kv_c = blocks[i].kv(x)
                    acc = kv_c if acc is None else acc + kv_c
                else:
                    rows.append(self.head.project(x, feat, coord[:, sl], cell, inp))
            if i < len(blocks):
                stats.append(acc)
        return torch.cat(rows, dim=2)
