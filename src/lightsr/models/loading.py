"""Which architecture a checkpoint is for, read from its tensor names and shapes; one resolver on top.

``detect(state_dict) -> Descriptor`` never looks at file names (lightsr's own metadata only breaks an
exact tie, see below): one small detector per
architecture family recognises the family by a few distinctive keys and reads the scale and the
hyper-parameters from tensor shapes:

* the scale from the up-sampler: a pixel-shuffle conv with ``3 s^2`` output channels (IMDN, RLFN-S,
  HASN, RDB-ESA and the transformer skeleton), EDSR's ``log2 s`` convs of ``4C`` (``9C`` for x3),
  RDN's ``UPNet``; CARN-M carries x2, x3 and x4 heads, so its scale is ``[2, 3, 4]``; arbitrary-scale
  models (an ``encoder.*`` with an implicit head and no up-sampler) have scale ``None``;
* widths and depths from the first conv's output channels and from how many blocks are numbered;
* HASN's ablation ``block`` (``cb``: no LayerNorm; ``spab``: SPAN's block) and ``esa``/``cab`` from
  which keys exist;
* C2D options that change the weights from the layers' shapes: ``hie`` (the HiET MLP takes C + 2
  inputs), ``mlp``, ``norm`` (a pre-norm layer has ``norm1``), ``attention``, ``skips``/``unet``
  (fusions per block), ``blocks``, ``dim``, ``mlp_ratio``; implicit-head widths; AnySR's ``ase`` and
  ``lam``.

Every guess is then *verified*: the registered builder is run on the meta device with the guessed
scale and options and its state-dict names and shapes must equal the checkpoint's exactly (the same
check :func:`lightsr.checkpoint.check_state_dict` makes when loading). So a detector can only be
wrong by refusing, never by returning a model that does not fit.

When nothing fits, the error is one line naming the closest registered architectures (by how many
key families they share with the checkpoint) and why each did not fit.

Ambiguity rule: an AnySR-RDN model built with ``ase=None`` has exactly the keys and shapes of its base
model (AnySR only slices the same tensors), so a checkpoint of either fits both; the base model
wins (:data:`PREFER`), and the AnySR variant has to be named (``--model anysr_liif_rdn --opt
ase=none``). Any other exact tie is refused. Options that do not change the weights (C2D window
sizes for a given number of layers, AnySR widths / mode, MambaIRv2 routing, EDSR's ``rgb_range``, HASN's
``act``/``fusion``/``block_residual``) cannot
be read from a checkpoint: the builder's defaults are reported; pass others with ``--opt``.

``resolve(spec, weights, scale, options) -> (model, Descriptor)`` builds the model for a registered
name, a checkpoint path, or both, and loads the weights strictly.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ..checkpoint import check_state_dict, is_derived, read_metadata, read_state_dict
from ..errors import LightSRError
from .registry import create_model, get_entry, list_models, pick_device

__all__ = ["Descriptor", "detect", "describe", "read_any_state_dict", "resolve", "PREFER"]

# (winner, loser): both fit the same keys and shapes exactly; the winner is reported (module docstring)
PREFER: tuple[tuple[str, str], ...] = tuple(
    (f"{h}_rdn", f"anysr_{h}_rdn") for h in ("liif", "metasr", "srno", "arbsr"))

# input requirements and tiling, by model name: (window multiple, minimum size, tiling exact).
# "window multiple": the model pads its input to this multiple inside (so tiles that are multiples
# avoid the padding); "minimum size": smaller inputs are padded inside (ESA's strided conv + 7x7
# pooling); "tiling exact": a purely local CNN, whose tiles with enough context padding reproduce the
# whole-image output; channel attention, ESA's pooling, window attention, state-space scans and
# implicit heads (their coordinates are relative to the whole image) make tiling approximate.
_INPUT: dict[str, tuple[int, int, bool]] = {
    "imdn": (1, 1, False),  # contrast-aware channel attention: global statistics
    "carn_m": (1, 1, True),
    "edsr_baseline": (1, 1, True),
    "rdn": (1, 1, True),
    "rlfn_s": (1, 15, False),
    "hasn": (1, 15, False),
    "rdb_esa": (1, 15, False),
    "swinir_light": (8, 1, False),
    "srformer_light": (16, 1, False),
    "hit_sir": (64, 1, False),  # per-layer padding to the largest hierarchical window
    "hit_srf": (64, 1, False),
    "hit_sng": (128, 1, False),  # N-Gram layers pad to twice their window
    "mambairv2_light": (16, 1, False),
    "bicubic": (1, 1, True),  # no weights; a 4x4 kernel
}
_CONTINUOUS_INPUT = (1, 1, False)


@dataclass
class Descriptor:
    """What a checkpoint (or a named model) is: enough to build it, run it and tile it.

    ``options`` are the builder keyword arguments that differ from the defaults (``create_model(model,
    scale, **options)`` rebuilds it); ``details`` the hyper-parameters read from the shapes."""

    model: str
    scale: int | tuple[int, ...] | None  # a tuple: one network with several heads (CARN-M); None: continuous
    options: dict = field(default_factory=dict)
    params: int = 0
    family: str = ""
    details: dict = field(default_factory=dict)
    window_multiple: int = 1
    min_size: int = 1
    tiling_exact: bool = False
    bf16: bool = True  # bf16 costs at most 0.02 dB (registry flag); fp32 always works
    source: str | None = None  # the weights file
    detected: bool = True  # read from the checkpoint's keys and shapes (False: named by the caller)

    @property
    def continuous(self) -> bool:
        return self.scale is None

    @property
    def multi_scale(self) -> bool:
        return isinstance(self.scale, tuple)

    def run_scale(self, scale: float | None = None) -> float | None:
        """The scale to run at: ``scale`` checked against the checkpoint's, or the checkpoint's own."""
        if self.continuous:
            return scale
        have = self.scale if isinstance(self.scale, tuple) else (self.scale,)
        if scale is None:
            if len(have) > 1:
                raise LightSRError(f"{self.source or self.model} is one {self.model} network with "
                                   f"{', '.join(f'x{s}' for s in have)} heads; pass --scale")
            return have[0]
        if float(scale) not in have:
            raise LightSRError(f"{self.source or self.model} is a {self.model} checkpoint for "
                               f"{', '.join(f'x{s}' for s in have)}, not x{scale:g}")
        return int(scale)

    def to_json(self) -> dict:
        out = asdict(self)
        out["scale"] = list(self.scale) if isinstance(self.scale, tuple) else self.scale
        out["continuous"] = self.continuous
        return out

    def summary(self) -> str:
        scale = ("any (continuous)" if self.continuous else
                 ", ".join(f"x{s}" for s in self.scale) if isinstance(self.scale, tuple) else f"x{self.scale}")
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items()) or "(defaults)"
        lines = [f"model:        {self.model}" + (f"  ({self.family})" if self.family else ""),
                 f"scale:        {scale}",
                 f"options:      {opts}",
                 f"shapes:       " + (", ".join(f"{k}={v}" for k, v in self.details.items()) or "-"),
                 f"parameters:   {self.params:,}",
                 f"input:        any size" + (f"; padded inside to a multiple of {self.window_multiple}"
                                                  if self.window_multiple > 1 else "")
                 + (f"; padded inside to at least {self.min_size} px" if self.min_size > 1 else ""),
                 "tiling:       " + ("exact (local CNN)" if self.tiling_exact
                                     else "approximate (global or windowed context)"),
                 "precision:    " + ("fp32, bf16 (within 0.02 dB)" if self.bf16
                                     else "fp32 (bf16 costs more than 0.02 dB)"),
                 f"weights:      {self.source or '-'}" + ("  (architecture read from keys and shapes)"
                                                         if self.detected and self.source else "")]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------


def read_any_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """The flat ``{name: tensor}`` dict of any supported checkpoint layout and its lightsr metadata.

    :func:`lightsr.checkpoint.read_state_dict` does the reading (``torch.load(weights_only=True)`` or
    safetensors, so no pickled code runs): tensors at the top level or under ``params_ema`` (BasicSR's
    EMA weights, preferred as its test scripts do), ``params``, ``state_dict``, ``model``, ``net``,
    ``generator``, LIIF's ``model`` -> ``sd``; a ``module.`` prefix dropped."""
    sd = read_state_dict(path)
    try:
        meta = read_metadata(path)
    except Exception:  # noqa: BLE001  (metadata is only a tie-break)
        meta = {}
    return sd, meta


# ---------------------------------------------------------------------------------------------
# shape helpers for the detectors
# ---------------------------------------------------------------------------------------------


class _Miss(Exception):
    """A detector's reason for not matching (becomes part of the one-line error)."""


class _Shapes:
    def __init__(self, sd: Mapping[str, Any]):
        self.shapes = {k: tuple(v.shape) if hasattr(v, "shape") else tuple(v) for k, v in sd.items()}

    def __contains__(self, key: str) -> bool:
        return key in self.shapes

    def shape(self, key: str) -> tuple[int, ...]:
        if key not in self.shapes:
            raise _Miss(f"no {key}")
        return self.shapes[key]

    def out(self, key: str) -> int:
        return self.shape(key)[0]

    def inp(self, key: str) -> int:
        s = self.shape(key)
        if len(s) < 2:
            raise _Miss(f"{key} is not a weight matrix")
        return s[1]

    def stepped(self, pattern: str, step: int = 2) -> int:
        """How many of ``pattern.format(0)``, ``(step)``, ``(2 step)`` ... exist, in a row (Sequential
        indices with an activation or a PixelShuffle between the weighted layers)."""
        n = 0
        while pattern.format(n * step) in self.shapes:
            n += 1
        return n

    def count(self, pattern: str) -> int:
        """How many of ``pattern.format(0)``, ``pattern.format(1)``, ... (or from 1) exist, in a row."""
        start = 0 if pattern.format(0) in self.shapes else 1
        n = 0
        while pattern.format(start + n) in self.shapes:
            n += 1
        return n


def _pixel_shuffle_scale(out_channels: int, per: int = 3) -> int:
    s = math.isqrt(max(out_channels // per, 0))
    if s < 2 or per * s * s != out_channels:
        raise _Miss(f"up-sampler conv has {out_channels} output channels, not {per} x s^2")
    return s


def _nondefault(values: dict, defaults: dict) -> dict:
    return {k: v for k, v in values.items() if defaults.get(k, object()) != v}


Guess = tuple[str, "int | tuple[int, ...] | None", dict, dict]  # name, scale, options, details


@dataclass(frozen=True)
class _Detector:
    label: str
    signature: tuple[str, ...]  # keys that identify the family (all present = it is this family)
    infer: Callable[[_Shapes], list[Guess]]


_DETECTORS: list[_Detector] = []


def _detector(label: str, *signature: str):
    def deco(fn: Callable[[_Shapes], list[Guess]]):
        _DETECTORS.append(_Detector(label, signature, fn))
        return fn
    return deco


# ---------------------------------------------------------------------------------------------
# CNN families
# ---------------------------------------------------------------------------------------------


def _builder_defaults(name: str) -> dict:
    import inspect

    params = inspect.signature(get_entry(name).builder).parameters.values()
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


def _one_step(name: str, s: _Shapes, details: dict) -> list[Guess]:
    """The guess for a CNN with a pixel-shuffle head (``upsampler.0``): the scale from its output
    channels; options = the details that differ from the builder's defaults."""
    return [(name, _pixel_shuffle_scale(s.out("upsampler.0.weight")),
             _nondefault(details, _builder_defaults(name)), details)]


@_detector("imdn", "fea_conv.weight", "IMDB1.c1.weight", "LR_conv.weight", "upsampler.0.weight")
def _imdn(s: _Shapes) -> list[Guess]:
    return _one_step("imdn", s, {"channels": s.out("fea_conv.weight"), "num_blocks": s.count("IMDB{}.c1.weight")})


@_detector("rlfn_s", "fea_conv.weight", "B1.c1_r.weight", "B1.esa.conv1.weight", "upsampler.0.weight")
def _rlfn(s: _Shapes) -> list[Guess]:
    return _one_step("rlfn_s", s, {"channels": s.out("fea_conv.weight"), "mid_channels": s.out("B1.c1_r.weight"),
                                   "num_blocks": s.count("B{}.c1_r.weight")})


@_detector("hasn", "conv_1.weight", "block_1.dwconv.conv.weight", "conv_2.weight", "upsampler.0.weight")
def _hasn(s: _Shapes) -> list[Guess]:
    c = s.out("conv_1.weight")
    [(name, scale, opts, details)] = _one_step("hasn", s, {
        "channels": c, "num_blocks": s.count("block_{}.dwconv.conv.weight"),
        "mlp_ratio": s.out("block_1.f1.conv.weight") // c, "kernel_size": s.shape("block_1.dwconv.conv.weight")[-1]})
    # ablations (hasn.py): no LayerNorm = the CB base network; ESA branch and CAB on/off (Table 7)
    block = "hasb" if "block_1.ln.weight" in s else "cb"
    esa, cab = "block_1.esa.conv1.weight" in s, "block_1.cab.cab.0.weight" in s
    opts = {**opts, **({"block": block} if block != "hasb" else {}),
            **{k: v for k, v in (("esa", esa), ("cab", cab)) if v != (block == "hasb")}}
    return [(name, scale, opts, details)]


@_detector("hasn", "conv_1.weight", "block_1.c1_r.weight", "conv_2.weight", "upsampler.0.weight")
def _hasn_spab(s: _Shapes) -> list[Guess]:
    """HASN with SPAN's block in place of HASB (HASN Table 6, ``block=spab``)."""
    return [(name, scale, {**opts, "block": "spab"}, details) for name, scale, opts, details in _one_step(
        "hasn", s, {"channels": s.out("conv_1.weight"), "num_blocks": s.count("block_{}.c1_r.weight")})]


@_detector("rdb_esa", "head.0.weight", "blocks.0.fuse.weight", "fusion.weight", "esa.conv1.weight",
           "upsampler.0.weight")
def _rdb_esa(s: _Shapes) -> list[Guess]:
    return _one_step("rdb_esa", s, {"channels": s.out("head.0.weight"), "num_blocks": s.count("blocks.{}.fuse.weight"),
                                    "esa_channels": s.out("esa.conv1.weight")})


@_detector("carn_m", "entry.weight", "b1.b1.body.0.weight", "c1.body.0.weight", "exit.weight")
def _carn_m(s: _Shapes) -> list[Guess]:
    heads = tuple(k for k in (2, 3, 4) if f"upsample.up{k}.body.0.weight" in s)
    if heads != (2, 3, 4):
        raise _Miss("not the multi-scale network with up2/up3/up4 heads (lightsr builds that one)")
    c = s.out("entry.weight")
    d = {"channels": c, "groups": c // s.inp("b1.b1.body.0.weight")}
    return [("carn_m", heads, _nondefault(d, _builder_defaults("carn_m")), d)]


def _edsr_tail_scale(s: _Shapes, prefix: str, feats: int) -> int:
    n = s.stepped(prefix + "{}.weight")
    out = s.out(prefix + "0.weight")
    if n == 1 and out == 9 * feats:
        return 3
    if out == 4 * feats and n >= 1:
        return 2 ** n
    raise _Miss(f"up-sampler {prefix}0 has {out} output channels, not 4C or 9C")


@_detector("edsr_baseline", "head.0.weight", "body.0.body.0.weight", "tail.0.0.weight")
def _edsr(s: _Shapes) -> list[Guess]:
    feats, blocks = s.out("head.0.weight"), s.count("body.{}.body.0.weight")
    if (feats, blocks) != (64, 16):
        raise _Miss(f"EDSR with {blocks} blocks x {feats} channels; lightsr registers EDSR-baseline (16 x 64)")
    return [("edsr_baseline", _edsr_tail_scale(s, "tail.0.", feats), {}, {"n_feats": feats, "n_resblocks": blocks})]


def _rdn_config(s: _Shapes, prefix: str = "") -> tuple[str, dict]:
    from .rdn import RDN

    d = {"blocks": s.count(prefix + "RDBs.{}.LFF.weight"), "convs": s.count(prefix + "RDBs.0.convs.{}.conv.0.weight"),
         "growth": s.out(prefix + "RDBs.0.convs.0.conv.0.weight")}
    g0 = s.out(prefix + "SFENet1.weight")
    found = [k for k, v in RDN.CONFIGS.items() if v == (d["blocks"], d["convs"], d["growth"])]
    if not found or g0 != 64:
        raise _Miss(f"RDN with D={d['blocks']}, C={d['convs']}, G={d['growth']}, G0={g0}: "
                    f"not configuration A or B")
    return found[0], d


@_detector("rdn", "SFENet1.weight", "SFENet2.weight", "RDBs.0.LFF.weight", "GFF.0.weight", "UPNet.0.weight")
def _rdn(s: _Shapes) -> list[Guess]:
    config, d = _rdn_config(s)
    g, out = d["growth"], s.out("UPNet.0.weight")
    scale = 4 if "UPNet.4.weight" in s else _pixel_shuffle_scale(out, g)
    return [("rdn", scale, {} if config == "B" else {"config": config}, d)]


# ---------------------------------------------------------------------------------------------
# the lightweight transformer skeleton (SwinIR, SRFormer, HiT, MambaIRv2, C2D) and the C2D twins
# ---------------------------------------------------------------------------------------------

_SKELETON = ("conv_first.weight", "patch_embed.norm.weight", "layers.0.conv.weight", "conv_after_body.weight")


def _skeleton_scale(s: _Shapes, prefix: str) -> int | None:
    if prefix:  # an ImplicitSR twin: no up-sampler
        return None
    return _pixel_shuffle_scale(s.out("upsample.0.weight"))


def _hiif_head(s: _Shapes, in_dim: int) -> dict:
    """HIIF-L head options that change its weights (models/hiif.py), non-default only: ``dim`` (the
    first MLP's output), ``heads`` (dim / the width of the per-head K LayerNorm), ``hidden``,
    ``levels`` (MLPs), ``freq`` (the 3x3 conv on F_D) and ``blocks`` (attention blocks)."""
    from .hiif import default_heads

    dim = s.out("fc_layers.0.fc2.weight")
    head_dim = s.out("attn.0.kln.weight")
    if head_dim < 1 or dim % head_dim:
        raise _Miss(f"HIIF-L attention width {dim} is not a multiple of its head width {head_dim}")
    found = {"dim": dim, "heads": dim // head_dim, "hidden": s.out("fc_layers.0.fc1.weight"),
             "levels": s.count("fc_layers.{}.fc1.weight"), "freq": "freq.weight" in s,
             "blocks": s.count("attn.{}.qkv_proj.weight")}
    return _nondefault(found, {"dim": in_dim, "heads": default_heads(dim), "hidden": 256, "levels": 3,
                               "freq": True, "blocks": 1})


def _transformer(s: _Shapes) -> list[Guess]:
    """SwinIR-light, SRFormer-light, HiT-SIR/SRF/SNG, MambaIRv2-light: told apart by the block keys;
    their builders take no shape options (a checkpoint of another width fails verification)."""
    blk = "layers.0.residual_group.blocks.0."
    scale = _pixel_shuffle_scale(s.out("upsample.0.weight"))
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
        raise _Miss(f"unknown transformer block (no {blk}attn.* / correlation.*)")
    return [(name, scale, {}, d)]


def _hiet_mlp(s: _Shapes, attn: str) -> tuple[str, int]:
    """(mlp kind, its input width) of a HiET attention's eq. 3 MLP."""
    if attn + "mlp.linear.weight" in s:
        return "dfe", s.inp(attn + "mlp.linear.weight")
    if attn + "mlp.0.weight" in s:
        return "mlp", s.inp(attn + "mlp.0.weight")
    return "linear", s.inp(attn + "mlp.weight")


def _c2d(s: _Shapes, prefix: str) -> list[Guess]:
    """SwinIR-C2D / SRFormer-C2D / MambaIRv2-C2D and their continuous (HIIF-L) twins."""
    from .c2d import WINDOWS_6
    from .mambairv2 import C2D_WINDOWS

    rg = prefix + "layers.{}.residual_group."
    lay = rg.format(0) + "layers.0."
    dim = s.out(prefix + "conv_first.weight")
    blocks = s.count(prefix + "layers.{}.conv.weight")
    n_layers = s.count(rg.format(0) + "layers.{}.norm2.weight")
    skips = s.count(rg.format(0) + "fusions.{}.weight")
    mamba = lay + "assm.selectiveScan.A_logs" in s
    name = "mambairv2_c2d" if mamba else ("srformer_c2d" if lay + "ffn.dwconv.depthwise_conv.0.weight" in s
                                          else "swinir_c2d")
    windows = C2D_WINDOWS if mamba else WINDOWS_6
    if n_layers != len(windows):
        raise _Miss(f"{n_layers} layers per block: their window sizes cannot be read from the weights "
                    f"(name the model and pass --opt windows=[...])")
    mlp, mlp_in = _hiet_mlp(s, lay + "attn.")
    d: dict[str, Any] = {"dim": dim, "blocks": blocks, "layers": n_layers, "skips": skips, "mlp": mlp}
    opts: dict[str, Any] = {"mlp": mlp, "skips": skips}
    if mamba:
        defaults = {"mlp": "dfe", "skips": 1}
    else:
        attention = "scc" if lay + "attn.scc.proj.weight" in s else "csc"
        hie = mlp_in == dim + 2
        d.update(hie=hie, attention=attention, norm="pre" if lay + "norm1.weight" in s else "post",
                 mlp_ratio=s.out(lay + "ffn.fc1.weight") / dim)
        opts.update(dim=dim, blocks=blocks, hie=hie, attention=attention, norm=d["norm"],
                    mlp_ratio=d["mlp_ratio"])
        if attention == "scc":
            opts["heads"] = d["heads"] = s.out(lay + "attn.scc.pos.pos3.2.weight") \
                if lay + "attn.scc.pos.pos3.2.weight" in s else 6
        defaults = {"dim": 60, "blocks": 4, "hie": True, "attention": "csc", "norm": "post", "mlp_ratio": 2.0,
                    "skips": 1, "mlp": "dfe", "heads": 6}
    opts = _nondefault(opts, defaults)
    if opts.get("skips") == 0 and not mamba:  # the linear (non-U-Net) block, spelled as its ablation
        del opts["skips"]
        opts["unet"] = False
    if not prefix:
        return [(name, _skeleton_scale(s, prefix), opts, d)]
    head = _hiif_head(s, dim)
    if head:
        opts["head_opts"] = head
    return [(name + "_hiif", None, opts, d)]


@_detector("transformer skeleton", *_SKELETON)
def _skeleton(s: _Shapes) -> list[Guess]:
    if "layers.0.residual_group.fusions.0.weight" in s or "layers.0.residual_group.layers.0.attn.norm.weight" in s:
        return _c2d(s, "")
    return _transformer(s)


@_detector("C2D continuous twin (HIIF-L)", *("encoder." + k for k in _SKELETON), "fc_layers.0.fc1.weight",
           "attn.0.kln.weight")
def _skeleton_twin(s: _Shapes) -> list[Guess]:
    return _c2d(s, "encoder.")


@_detector("C2D stage-1 twin of a discrete network (HIIF-L)", "fc_layers.0.fc1.weight", "attn.0.kln.weight")
def _network_twin(s: _Shapes) -> list[Guess]:
    """``NAME_hiif`` (models/c2d.py ``TWIN_BASES``): ``encoder.*`` is NAME's body without its
    up-sampler. The body's own detector reads it, given a stand-in x4 up-sampler weight."""
    from .c2d import TWIN_BASES

    body = {k[len("encoder."):]: v for k, v in s.shapes.items() if k.startswith("encoder.")}
    if not body:
        raise _Miss("no encoder.* keys")
    dim = s.inp("freq.weight") if "freq.weight" in s else (s.inp("fc_layers.0.fc1.weight") - 4) // 4
    stand_in = (3 * 16, dim, 3, 3)
    b = _Shapes({**body, "upsampler.0.weight": stand_in, "upsample.0.weight": stand_in})
    out: list[Guess] = []
    for det in _DETECTORS:
        if det.infer in (_network_twin, _skeleton_twin) or not all(k in b for k in det.signature):
            continue
        try:
            guesses = det.infer(b)
        except _Miss:
            continue
        for name, _, opts, details in guesses:
            if name in TWIN_BASES:
                head = _hiif_head(s, dim)
                out.append((f"{name}_hiif", None, {**opts, **({"head_opts": head} if head else {})}, details))
    if not out:
        raise _Miss("its encoder.* is not the body of a network with a registered twin")
    return out


# ---------------------------------------------------------------------------------------------
# arbitrary-scale models: encoder.* (EDSR-baseline or RDN-B) + an implicit head; AnySR
# ---------------------------------------------------------------------------------------------


def _implicit_head(s: _Shapes, in_dim: int) -> tuple[str, dict]:
    """(head name, head options) from the head's own top-level keys."""
    if "sa_upsample.offset.weight" in s:
        return "arbsr", {}
    if "conv00.weight" in s:
        width, heads = s.out("conv00.weight"), s.out("conv0.kln.weight")
        return "srno", _nondefault({"width": width, "heads": heads}, {"width": 256, "heads": 16})
    if "fc_layers.0.fc1.weight" in s:
        return "hiif_l", _hiif_head(s, in_dim)
    if "imnet.layers.0.weight" in s:
        first = s.shape("imnet.layers.0.weight")
        if first[1] == 3:  # Meta-SR's weight-prediction MLP takes [rel_coord, 1/s]
            return "metasr", _nondefault({"hidden": first[0]}, {"hidden": 256})
        n = s.stepped("imnet.layers.{}.weight")
        hidden = tuple(s.out(f"imnet.layers.{2 * i}.weight") for i in range(n - 1))
        extra = first[1] - 9 * in_dim
        unfold = extra in (2, 4)
        cell = (first[1] - (9 if unfold else 1) * in_dim) == 4
        opts = _nondefault({"hidden": hidden, "feat_unfold": unfold, "cell_decode": cell},
                           {"hidden": (256,) * 4, "feat_unfold": True, "cell_decode": True})
        return "liif", opts
    raise _Miss("no implicit head (imnet.* LIIF/MetaSR, conv00 SRNO, fc_layers HIIF-L, sa_upsample ArbSR)")


def _anysr_ase(s: _Shapes, fc1: str, c_in: int, lam_default: int) -> dict:
    if fc1 not in s:
        return {"ase": None}
    extra = s.inp(fc1) - c_in
    if extra == 2:
        return {"ase": "concat"}  # (also what ase="fi" with lam=1 would give: documented as concat)
    if extra < 2 or extra % 2:
        raise _Miss(f"AnySR attention input {s.inp(fc1)} is not C_in + 2 lambda")
    return {} if extra // 2 == lam_default else {"lam": extra // 2}


@_detector("arbitrary-scale EDSR", "encoder.head.0.weight", "encoder.body.16.weight")
def _implicit_edsr(s: _Shapes) -> list[Guess]:
    feats = s.out("encoder.head.0.weight")
    head, opts = _implicit_head(s, feats)
    d = {"encoder": "edsr", "head": head}
    if "encoder.body.0.conv1.weight" in s:  # AnySR residual blocks (conv1/conv2/fc1/fc2)
        if head == "hiif_l":
            raise _Miss("AnySR has no HIIF-L variant")
        return [(f"anysr_{head}_edsr", None, _anysr_ase(s, "encoder.body.0.fc1.weight", feats, 4), d)]
    return [(f"{head}_edsr", None, opts, d)]


@_detector("arbitrary-scale RDN", "encoder.SFENet1.weight", "encoder.RDBs.0.LFF.weight", "encoder.GFF.0.weight")
def _implicit_rdn(s: _Shapes) -> list[Guess]:
    _rdn_config(s, "encoder.")
    head, opts = _implicit_head(s, s.out("encoder.SFENet1.weight"))
    d = {"encoder": "rdn", "head": head}
    growth = s.out("encoder.RDBs.0.convs.0.conv.0.weight")
    if "encoder.RDBs.0.fc1.weight" in s:
        if head == "hiif_l":
            raise _Miss("AnySR has no HIIF-L variant")
        return [(f"anysr_{head}_rdn", None, _anysr_ase(s, "encoder.RDBs.0.fc1.weight", 2 * growth, 8), d)]
    guesses: list[Guess] = [(f"{head}_rdn", None, opts, d)]
    if head != "hiif_l" and not opts:  # AnySR-RDN without ASE: the same tensors (PREFER decides)
        guesses.append((f"anysr_{head}_rdn", None, {"ase": None}, d))
    return guesses


# ---------------------------------------------------------------------------------------------
# verification and detection
# ---------------------------------------------------------------------------------------------


def _key(opts: dict) -> str:
    """Options as a hashable cache key (JSON; tuples come back as lists, which every builder takes)."""
    return json.dumps(opts, sort_keys=True)


@lru_cache(maxsize=256)
def _meta_build(name: str, scale, opts_key: str = "{}") -> tuple[tuple[tuple[str, tuple[int, ...]], ...], int]:
    """(state-dict names and shapes, parameter count) of a registered model built on the meta device."""
    build_scale = max(scale) if isinstance(scale, tuple) else scale
    opts = json.loads(opts_key)
    with torch.device("meta"):
        model = create_model(name, build_scale, **opts)
    shapes = tuple((k, tuple(v.shape)) for k, v in model.state_dict().items())
    return shapes, sum(p.numel() for p in model.parameters())


class _MetaModel(nn.Module):
    """Stands in for a model in :func:`check_state_dict`: only ``state_dict()`` (shapes) is read."""

    def __init__(self, name: str, scale, shapes):
        super().__init__()
        self.registry_name, self.scale, self._shapes = name, (None if isinstance(scale, tuple) else scale), shapes

    def state_dict(self, *a, **k):  # type: ignore[override]
        return {n: torch.empty(s, device="meta") for n, s in self._shapes}


def _verify(guess: Guess, sd: Mapping[str, Any]) -> int:
    """Parameter count of the guessed model if ``sd`` fits it exactly; else a :class:`_Miss`."""
    name, scale, opts, _ = guess
    try:
        shapes, params = _meta_build(name, scale, _key(opts))
    except LightSRError as exc:
        raise _Miss(str(exc)) from None
    try:
        check_state_dict(_MetaModel(name, scale, shapes), sd, source="the checkpoint")
    except LightSRError as exc:
        raise _Miss(str(exc).split(": ", 1)[-1]) from None
    return params


def _pattern(key: str) -> str:
    return re.sub(r"\.\d+(?=\.|$)", ".#", key)


def _relevant(keys) -> set[str]:
    return {_pattern(k) for k in keys if not is_derived(k)}


@lru_cache(maxsize=1)
def _registry_patterns() -> dict[str, set[str]]:
    out = {}
    for name in list_models():
        entry = get_entry(name)
        try:
            shapes, _ = _meta_build(name, 4 if entry.scales else None)
        except Exception:  # noqa: BLE001
            continue
        if shapes:
            out[name] = _relevant(k for k, _ in shapes)
    return out


def _short_list(items: list[str], n: int = 2) -> str:
    return ", ".join(sorted(items)[:n]) + (f" (+{len(items) - n})" if len(items) > n else "")


def _closest(sd: Mapping[str, Any], reasons: dict[str, str], limit: int = 3) -> str:
    have = _relevant(sd)
    ranked = []
    for name, pats in _registry_patterns().items():
        shared = len(have & pats)
        if shared or name in reasons:
            ranked.append((name in reasons, shared / len(have | pats), name, pats))
    ranked.sort(key=lambda r: (not r[0], -r[1], r[2]))  # a detector's own reason first
    parts = []
    for _, _, name, pats in ranked[:limit]:
        why = reasons.get(name)
        if why is None:
            missing, extra = sorted(pats - have), sorted(have - pats)
            bits = ([f"missing {len(missing)} key families ({_short_list(missing)})"] if missing else []) + \
                   ([f"{len(extra)} unexpected ({_short_list(extra)})"] if extra else [])
            why = "; ".join(bits) or "same key families, other shapes"
        parts.append(f"{name}: {why}")
    return " | ".join(parts) if parts else "it shares no key family with any registered model"


def _preferred(fits: list[tuple[Guess, int]]) -> list[tuple[Guess, int]]:
    names = {g[0] for g, _ in fits}
    losers = {lose for win, lose in PREFER if win in names and lose in names}
    return [f for f in fits if f[0][0] not in losers]


def detect(state_dict: Mapping[str, Any], *, source: str | None = None, hint: str | None = None) -> Descriptor:
    """The architecture, scale and options a state dict is for, from its keys and tensor shapes only.

    ``state_dict``: ``{name: tensor}`` (any device, meta included) or ``{name: shape}``. ``hint``: a model
    name (lightsr's own metadata) used only to choose between candidates that fit exactly. Raises
    :class:`LightSRError` with one line when no registered architecture fits, or more than one does."""
    what = source or "the state dict"
    if not state_dict:
        raise LightSRError(f"{what} holds no tensors")
    s = _Shapes(state_dict)
    shapes_sd = {k: torch.empty(v, device="meta") for k, v in s.shapes.items()}
    fits: list[tuple[Guess, int]] = []
    reasons: dict[str, str] = {}
    for det in _DETECTORS:
        present = [k for k in det.signature if k in s]
        if len(present) < len(det.signature):
            continue
        try:
            guesses = det.infer(s)
        except _Miss as exc:
            reasons[det.label] = str(exc)
            continue
        for guess in guesses:
            try:
                fits.append((guess, _verify(guess, shapes_sd)))
            except _Miss as exc:
                reasons.setdefault(guess[0], str(exc))
    if len(fits) > 1 and hint:
        fits = [f for f in fits if f[0][0] == hint] or fits
    fits = _preferred(fits)
    if len(fits) > 1:
        names = ", ".join(f"{g[0]}{_opts_text(g[2])}" for g, _ in fits)
        raise LightSRError(f"{what} is ambiguous: its keys and shapes fit {names} exactly; name the model "
                           f"(--model NAME)")
    if not fits:
        registered = set(_registry_patterns())
        family_only = {k: v for k, v in reasons.items() if k not in registered}
        lead = "; ".join(f"{k}: {v}" for k, v in family_only.items())
        closest = _closest(state_dict, {k: v for k, v in reasons.items() if k in registered})
        raise LightSRError(f"cannot tell which architecture {what} is for"
                           + (f" ({lead})" if lead else "") + f"; closest: {closest}")
    (name, scale, opts, details), params = fits[0]
    return _descriptor(name, scale, opts, params, details, source, detected=True)


def _opts_text(opts: dict) -> str:
    return f" ({', '.join(f'{k}={v!r}' for k, v in opts.items())})" if opts else ""


def _descriptor(name: str, scale, opts: dict, params: int, details: dict, source: str | None,
                detected: bool) -> Descriptor:
    entry = get_entry(name)
    if name in _INPUT:
        multiple, min_size, exact = _INPUT[name]
    elif entry.scales is None:
        multiple, min_size, exact = _CONTINUOUS_INPUT
    elif entry.family == "c2d":  # every HiET layer pads to its own window; the largest is 64
        multiple, min_size, exact = max(opts.get("windows") or (64,)), 1, False
    else:  # a model added to the registry but not to the table: the cautious answer
        multiple, min_size, exact = 1, 1, False
    return Descriptor(model=entry.name, scale=scale, options=dict(opts), params=int(params), family=entry.family,
                      details=dict(details), window_multiple=multiple, min_size=min_size, tiling_exact=exact,
                      bf16=bool(getattr(entry, "bf16", True)), source=source, detected=detected)


def describe(path: str | os.PathLike) -> Descriptor:
    """:func:`detect` on a checkpoint file (lightsr's metadata, if any, only breaks exact ties)."""
    sd, meta = read_any_state_dict(path)
    hint = meta.get("model") if isinstance(meta.get("model"), str) else None
    return detect(sd, source=str(path), hint=hint)


# ---------------------------------------------------------------------------------------------
# the resolver
# ---------------------------------------------------------------------------------------------

_CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".bin")


def _is_path(spec) -> bool:
    if isinstance(spec, Path):
        return True
    return Path(spec).suffix.lower() in _CHECKPOINT_SUFFIXES or Path(spec).is_file() or os.sep in str(spec)


def resolve(spec: str | os.PathLike | None = None, weights: str | os.PathLike | None = None,
            scale: float | None = None, options: dict | None = None,
            device: str | torch.device | None = "cpu", shipped: bool = True) -> tuple[nn.Module, Descriptor]:
    """Build a model and load its weights strictly; returns ``(model in eval mode, descriptor)``.

    ``spec``: a registered name, a checkpoint path, or None (then ``weights`` is the checkpoint).
    With a checkpoint and no name, the architecture, scale and weight-shaping options are read from
    its keys and shapes (:func:`detect`); a name given with a checkpoint is checked against it.
    ``scale``: required for a multi-scale checkpoint (CARN-M); for a continuous model it is only the
    default forward scale. ``options``: builder options (``--opt``), on top of the detected ones.
    A name without weights loads the weights shipped with lightsr for that scale if there are some
    (``shipped=True``), else the model keeps its random initialisation (``descriptor.source`` None).
    """
    options = dict(options or {})
    name: str | None = None
    if spec is not None and _is_path(spec):
        if weights is not None:
            raise LightSRError("pass either a checkpoint path or a model name with weights, not both")
        weights = spec
    elif spec is not None:
        name = get_entry(str(spec)).name
    if name is None and weights is None:
        raise LightSRError("name a model or a checkpoint to load")
    if weights is None and shipped:
        weights = get_entry(name).shipped_weights(4 if scale is None else scale)
    sd, desc = None, None
    if weights is not None:
        sd, meta = read_any_state_dict(weights)
        hint = name or (meta.get("model") if isinstance(meta.get("model"), str) else None)
        try:
            desc = detect(sd, source=str(weights), hint=hint)
        except LightSRError:
            if name is None:
                raise
            desc = None  # a named model: its strict load below says what does not fit
        if desc is not None and name is not None and desc.model != name:
            raise LightSRError(f"{weights} holds {desc.model} weights, not {name}; leave out the model name "
                               f"to load it as {desc.model}")
        if desc is not None:
            name = desc.model
            run = desc.run_scale(scale)
            desc.options = {**desc.options, **options}
            options = desc.options
            scale = run
    model = create_model(name, scale, **options)
    model.registry_name = get_entry(name).name
    if sd is not None:
        model.load_state_dict(check_state_dict(model, sd, source=f"checkpoint {weights}"), strict=False)
    params = sum(p.numel() for p in model.parameters())
    if desc is None or weights is None:
        entry = get_entry(name)
        built = getattr(model, "scale", None)
        desc = _descriptor(entry.name, None if entry.scales is None else built, options, params, {},
                           None if weights is None else str(weights), detected=False)
    desc.params = params
    return model.eval().to(pick_device(device)), desc
